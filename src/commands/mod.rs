//! Command implementations: the only place that turns library errors into `anyhow` context,
//! talks to the terminal, and decides the exit status.

pub mod copy;
pub mod destination;
pub mod inject;
pub mod keys;
pub mod scan;
pub mod serve;
pub mod sign;
pub mod source;

use std::process::ExitCode;

/// The outcome of a command, mapped to the process exit code by `main`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Nothing at or above `--fail-on`.
    Clean,
    /// Findings at or above `--fail-on`.
    Violations,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        match status {
            Status::Clean => Self::SUCCESS,
            Status::Violations => Self::from(1),
        }
    }
}

/// Prints the rule catalogue.
pub fn rules(out: &mut dyn std::io::Write) -> anyhow::Result<Status> {
    for rule in crate::finding::Rule::ALL {
        writeln!(
            out,
            "{:<26} {:<8} {}",
            rule.id(),
            rule.default_severity(),
            rule.summary()
        )?;
    }
    Ok(Status::Clean)
}

/// Prints Mozilla's current TLS roots as a PEM bundle.
pub fn roots(out: &mut dyn std::io::Write) -> anyhow::Result<Status> {
    out.write_all(crate::truststore::mozilla_bundle_pem().as_bytes())?;
    Ok(Status::Clean)
}

/// Prints a completion script generated from the clap definition.
pub fn completions(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<Status> {
    let mut command = <crate::cli::Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "ocicert", out);
    Ok(Status::Clean)
}

/// Prints the man page generated from the clap definition.
pub fn man(out: &mut dyn std::io::Write) -> anyhow::Result<Status> {
    clap_mangen::Man::new(<crate::cli::Cli as clap::CommandFactory>::command()).render(out)?;
    Ok(Status::Clean)
}
