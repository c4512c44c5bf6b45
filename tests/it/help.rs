//! `ocicert <COMMAND> --help` ends with an "Examples:" block for every subcommand.

use crate::common::ocicert;
use clap::CommandFactory as _;

#[test]
fn every_subcommand_help_has_examples_of_itself() {
    let subcommands: Vec<String> = ocicert::cli::Cli::command()
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    // The list comes from the parser, so a new subcommand without examples fails here; the
    // fixed names guard against the list itself coming back short.
    for expected in [
        "scan",
        "copy",
        "inject",
        "sign",
        "generate-key-pair",
        "rules",
        "completions",
        "man",
        "serve",
    ] {
        assert!(
            subcommands.iter().any(|s| s == expected),
            "{expected} is not a subcommand: {subcommands:?}"
        );
    }
    for subcommand in &subcommands {
        let help = ocicert(&[subcommand, "--help"]);
        assert_eq!(help.code, 0, "{subcommand} --help: {}", help.stderr);
        let (_, examples) = help.stdout.split_once("Examples:\n").unwrap_or_else(|| {
            panic!(
                "`{subcommand} --help` has no Examples: block\n{}",
                help.stdout
            )
        });
        let invocation = format!("ocicert {subcommand}");
        assert!(
            examples
                .lines()
                .any(|line| !line.trim_start().starts_with('#') && line.contains(&invocation)),
            "the examples of `{subcommand} --help` never run `{invocation}`:\n{examples}"
        );
    }
    let top = ocicert(&["--help"]);
    assert_eq!(top.code, 0, "{}", top.stderr);
    assert!(top.stdout.contains("Examples:\n"), "{}", top.stdout);
}
