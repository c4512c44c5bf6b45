//! The stub's command line: `ocicert-enroll [--config PATH] [--renew] -- PROGRAM ARGS…`.
//!
//! Hand-parsed (no clap: every kilobyte of the stub ships in customers' images). Everything after
//! `--` is the program's exact argv and is never interpreted.

use std::ffi::OsString;
use std::path::PathBuf;

use ocicert_enroll_config::DEFAULT_CONFIG_PATH;

/// Usage text for `--help` and errors.
pub const USAGE: &str = "usage: ocicert-enroll [--config PATH] [--renew] -- PROGRAM [ARGS...]

Gets a certificate at container start (or reuses a still-valid one), writes it to the output
dir, then execs PROGRAM with OCICERT_CERT_FILE, OCICERT_KEY_FILE, OCICERT_CA_FILE and
OCICERT_CHAIN_FILE added to its environment.

  --config PATH   enrollment config (default /.ocicert/enroll.json)
  --renew         stay as a minimal init: forward signals, reap zombies, renew the
                  certificate before it expires and signal PROGRAM (SIGHUP by default)
  --version       print the version";

/// What to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Enroll, then run the program.
    Run(Args),
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// Arguments of a run.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    /// Config file.
    pub config: PathBuf,
    /// `--renew`.
    pub renew: bool,
    /// The program and its arguments, exactly as given.
    pub program: Vec<OsString>,
}

/// Bad arguments.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown flag.
    #[error("unknown option `{0}`")]
    Unknown(String),
    /// `--config` without a value.
    #[error("`--config` needs a path")]
    MissingValue,
    /// Nothing to run.
    #[error("no program to run after `--`")]
    NoProgram,
}

/// Parses `argv` (without argv\[0\]).
pub fn parse(arguments: impl IntoIterator<Item = OsString>) -> Result<Command, Error> {
    let mut config = PathBuf::from(DEFAULT_CONFIG_PATH);
    let mut renew = false;
    let mut arguments = arguments.into_iter();
    let mut program = Vec::new();
    while let Some(argument) = arguments.next() {
        match argument.to_str() {
            Some("--") => {
                program.extend(arguments.by_ref());
                break;
            }
            Some("--config") => config = arguments.next().ok_or(Error::MissingValue)?.into(),
            Some(flag) if flag.starts_with("--config=") => {
                config = PathBuf::from(&flag["--config=".len()..])
            }
            Some("--renew") => renew = true,
            Some("--help" | "-h") => return Ok(Command::Help),
            Some("--version" | "-V") => return Ok(Command::Version),
            Some(flag) if flag.starts_with('-') => return Err(Error::Unknown(flag.to_owned())),
            _ => {
                // No `--`: the first operand starts the program.
                program.push(argument);
                program.extend(arguments.by_ref());
                break;
            }
        }
    }
    if program.is_empty() {
        return Err(Error::NoProgram);
    }
    Ok(Command::Run(Args {
        config,
        renew,
        program,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args(list: &[&str]) -> Result<Command, Error> {
        parse(list.iter().map(OsString::from))
    }

    #[test]
    fn parses_the_wrapper_form() {
        let Command::Run(run) =
            args(&["--config", "/c.json", "--", "/bin/sh", "-c", "echo --renew"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(run.config, PathBuf::from("/c.json"));
        assert!(!run.renew);
        assert_eq!(
            run.program,
            ["/bin/sh", "-c", "echo --renew"].map(OsString::from)
        );
        let Command::Run(run) = args(&["--renew", "--", "app", "--config", "x"]).unwrap() else {
            panic!()
        };
        assert!(run.renew);
        assert_eq!(run.config, PathBuf::from(DEFAULT_CONFIG_PATH));
        assert_eq!(run.program, ["app", "--config", "x"].map(OsString::from));
        let Command::Run(run) = args(&["app", "-x"]).unwrap() else {
            panic!()
        };
        assert_eq!(run.program, ["app", "-x"].map(OsString::from));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(matches!(args(&["--"]), Err(Error::NoProgram)));
        assert!(matches!(args(&[]), Err(Error::NoProgram)));
        assert!(matches!(args(&["--config"]), Err(Error::MissingValue)));
        assert!(matches!(
            args(&["--bogus", "--", "x"]),
            Err(Error::Unknown(_))
        ));
        assert_eq!(args(&["--help"]).unwrap(), Command::Help);
    }
}
