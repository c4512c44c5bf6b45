//! `ocicert-enroll [--config PATH] [--renew] -- PROGRAM ARGS…`: enroll (or reuse), then exec
//! PROGRAM with `OCICERT_*` env vars; with `--renew`, supervise it instead.
//!
//! Exit codes of the stub itself (once PROGRAM runs, its status is the container's): 64 bad
//! arguments, 70 required enrollment failed, 126/127 PROGRAM cannot be executed / not found.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode};

use ocicert_enroll::cli::{self, USAGE};
use ocicert_enroll::der::format_time;
use ocicert_enroll::renew::{self, log};
use ocicert_enroll::run::{self, Outcome, Plan};
use ocicert_enroll::template::process_env;

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args_os().skip(1)) {
        Ok(cli::Command::Run(args)) => args,
        Ok(cli::Command::Help) => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(cli::Command::Version) => {
            let _ = writeln!(
                std::io::stdout(),
                "ocicert-enroll {}",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            log(&format!("{error}\n{USAGE}"));
            return ExitCode::from(64);
        }
    };

    // A config that cannot be read leaves no way to know whether enrollment is optional: fail.
    let config = match run::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            log(&format!("enrollment failed ({})", error.one_line()));
            return ExitCode::from(70);
        }
    };
    let required = config.required;
    // Enrollment secrets stay with the stub unless the config passes them on.
    let scrub: Vec<String> = if config.keep_secret_env {
        Vec::new()
    } else {
        config
            .ca
            .secret_env()
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    let renew_mode = args.renew || config.renew.enabled;
    let result = Plan::new(config, &process_env).and_then(|plan| {
        let outcome = plan.obtain(&process_env)?;
        Ok((plan, outcome))
    });
    let (envs, plan_and_info) = match result {
        Ok((plan, outcome)) => {
            let info = outcome.info().clone();
            let sans: Vec<String> = plan.sans.iter().map(ToString::to_string).collect();
            match &outcome {
                Outcome::Reused(_) => log(&format!(
                    "reusing the certificate in {} for {} (valid until {})",
                    plan.paths.dir.display(),
                    sans.join(", "),
                    format_time(info.not_after)
                )),
                Outcome::Enrolled { reason, .. } => log(&format!(
                    "enrolled with {} at {} ({reason}): certificate for {} valid until {} in {}",
                    plan.config.ca.protocol(),
                    plan.config.ca.url(),
                    sans.join(", "),
                    format_time(info.not_after),
                    plan.paths.dir.display()
                )),
            }
            (plan.env(), Some((plan, info)))
        }
        Err(error) => {
            log(&format!("enrollment failed ({})", error.one_line()));
            if required {
                return ExitCode::from(70);
            }
            log("enrollment is optional: starting the program without a certificate");
            (Vec::new(), None)
        }
    };

    if renew_mode && let Some((plan, info)) = &plan_and_info {
        let child = renew::Child {
            program: &args.program,
            envs,
            scrub: &scrub,
        };
        return match renew::supervise(plan, &process_env, child, Some(info.clone())) {
            Ok(code) => code,
            Err(error) => {
                log(&error.to_string());
                ExitCode::from(70)
            }
        };
    }

    let Some((program, rest)) = args.program.split_first() else {
        return ExitCode::from(64);
    };
    let mut command = Command::new(program);
    command.args(rest).envs(envs);
    for name in &scrub {
        command.env_remove(name);
    }
    let error = command.exec();
    log(&format!(
        "cannot exec `{}`: {error}",
        program.to_string_lossy()
    ));
    ExitCode::from(if error.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}
