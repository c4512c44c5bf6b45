//! `--renew` mode: the stub stays as a minimal init. It runs the program as its child, forwards
//! every catchable signal to it, reaps zombies (as PID 1 or as a child subreaper), renews the
//! certificate when the renewal threshold is reached (2/3 of the lifetime by default), and
//! signals the program after each renewal (SIGHUP by default). It exits with the program's status.
//!
//! It does not restart the program, does not manage more than one program, and does not kill the
//! program when a renewal fails: it logs and retries with backoff until the certificate expires.

use std::ffi::OsString;
use std::io::Write as _;
use std::process::{Command, ExitCode};
use std::sync::mpsc;
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions};
use signal_hook::consts::signal as sig;

use crate::der::{CertInfo, format_time};
use crate::run::{Plan, now};

/// Signals forwarded to the program (every catchable one except SIGCHLD, which the init uses,
/// and the synchronous fault signals).
const FORWARDED: &[i32] = &[
    sig::SIGHUP,
    sig::SIGINT,
    sig::SIGQUIT,
    sig::SIGUSR1,
    sig::SIGUSR2,
    sig::SIGPIPE,
    sig::SIGALRM,
    sig::SIGTERM,
    sig::SIGCONT,
    sig::SIGTSTP,
    sig::SIGTTIN,
    sig::SIGTTOU,
    sig::SIGURG,
    sig::SIGXCPU,
    sig::SIGXFSZ,
    sig::SIGVTALRM,
    sig::SIGPROF,
    sig::SIGWINCH,
    sig::SIGIO,
    sig::SIGSYS,
];

/// Why the init could not start the program.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// The program could not be started.
    #[error("cannot start `{program}`")]
    Spawn {
        /// argv\[0\].
        program: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `renew.signal` name this stub does not know.
    #[error("unknown `renew.signal` `{0}`")]
    SignalName(String),
}

/// Parses `"SIGHUP"`, `"HUP"`, `"usr1"`, `"none"`.
pub fn signal_by_name(name: &str) -> Result<Option<Signal>, Error> {
    let upper = name.trim().to_ascii_uppercase();
    let short = upper.strip_prefix("SIG").unwrap_or(&upper);
    let signal = match short {
        "NONE" | "" => return Ok(None),
        "HUP" => Signal::HUP,
        "INT" => Signal::INT,
        "QUIT" => Signal::QUIT,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "TERM" => Signal::TERM,
        "WINCH" => Signal::WINCH,
        "ALRM" => Signal::ALARM,
        _ => return Err(Error::SignalName(name.to_owned())),
    };
    Ok(Some(signal))
}

/// The program the stub supervises: its argv, the `OCICERT_*` variables it gets, and the
/// variables removed from its environment (the enrollment secrets).
pub struct Child<'a> {
    pub program: &'a [OsString],
    pub envs: Vec<(&'static str, String)>,
    pub scrub: &'a [String],
}

/// Runs `program` with `envs` under the renewing init; returns the program's exit status.
pub fn supervise(
    plan: &Plan,
    lookup: &dyn Fn(&str) -> Option<String>,
    child: Child<'_>,
    mut current: Option<CertInfo>,
) -> Result<ExitCode, Error> {
    let Child {
        program,
        envs,
        scrub,
    } = child;
    let reload = signal_by_name(&plan.config.renew.signal)?;
    // Orphans of the program's descendants are re-parented to us even when we are not PID 1.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));

    let mut watched = FORWARDED.to_vec();
    watched.push(sig::SIGCHLD);
    let mut signals = signal_hook::iterator::Signals::new(&watched).map_err(Error::Signals)?;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if sender.send(signal).is_err() {
                break;
            }
        }
    });

    let Some((first, rest)) = program.split_first() else {
        return Ok(ExitCode::from(2));
    };
    let mut command = Command::new(first);
    command.args(rest).envs(envs);
    for name in scrub {
        command.env_remove(name);
    }
    let child = command.spawn().map_err(|source| Error::Spawn {
        program: first.to_string_lossy().into_owned(),
        source,
    })?;
    let child_pid = Pid::from_child(&child);
    // Reaping happens through `wait` below, never through `child.wait()`.
    drop(child);

    let mut retry_at: Option<i64> = None;
    loop {
        let due = retry_at.or_else(|| current.as_ref().map(|info| plan.threshold.renew_at(info)));
        let timeout = due.map_or(Duration::from_secs(3600), |due| {
            Duration::from_millis(u64::try_from((due - now()).max(0)).unwrap_or(0) * 1000 + 50)
        });
        match receiver.recv_timeout(timeout) {
            Ok(sig::SIGCHLD) => {
                if let Some(code) = reap(child_pid) {
                    return Ok(code);
                }
            }
            Ok(number) => {
                if let Some(signal) = Signal::from_named_raw(number) {
                    let _ = rustix::process::kill_process(child_pid, signal);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if due.is_some_and(|due| now() >= due) {
                    match plan.enroll(lookup, true) {
                        Ok(info) => {
                            log(&format!(
                                "renewed the certificate in {} (valid until {})",
                                plan.paths.dir.display(),
                                format_time(info.not_after)
                            ));
                            current = Some(info);
                            retry_at = None;
                            if let Some(signal) = reload {
                                let _ = rustix::process::kill_process(child_pid, signal);
                            }
                        }
                        Err(error) => {
                            let left = current.as_ref().map_or(0, |info| info.not_after - now());
                            let backoff = (left / 10).clamp(1, 300);
                            log(&format!(
                                "renewal failed ({}); retrying in {backoff}s",
                                error.one_line()
                            ));
                            retry_at = Some(now() + backoff);
                        }
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(ExitCode::from(1)),
        }
    }
}

/// Reaps every exited child; returns the program's exit code if it was among them.
fn reap(child_pid: Pid) -> Option<ExitCode> {
    let mut result = None;
    while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
        if pid == child_pid {
            let code = status
                .exit_status()
                .or_else(|| status.terminating_signal().map(|signal| 128 + signal))
                .unwrap_or(1);
            result = Some(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)));
        }
    }
    result
}

/// One stderr line, prefixed.
pub fn log(line: &str) {
    let _ = writeln!(std::io::stderr(), "ocicert-enroll: {line}");
}
