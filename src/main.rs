//! The `ocicert` binary: parse arguments, run a command, print the error chain, and exit with
//! 0 (clean), 1 (findings at or above `--fail-on`) or 2 (error).

use clap::Parser;
use ocicert::cli::{Cli, Command};
use ocicert::commands;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::level_filters::LevelFilter::WARN,
        1 => tracing::level_filters::LevelFilter::INFO,
        _ => tracing::level_filters::LevelFilter::DEBUG,
    };
    let logger = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false);
    // An `EnvFilter` compiles regular expressions (~20 ms at every start); a plain level needs
    // none, so the directive syntax is used only when OCICERT_LOG asks for it.
    match tracing_subscriber::EnvFilter::try_from_env("OCICERT_LOG") {
        Ok(filter) => logger.with_env_filter(filter).init(),
        Err(_) => logger.with_max_level(level).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            #[expect(clippy::print_stderr, reason = "main reports the final error")]
            {
                eprintln!("error: cannot start the async runtime: {error}");
            }
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match &cli.command {
        Command::Scan(args) => commands::scan::run(args, &runtime, &mut out),
        Command::Copy(args) => commands::copy::run(args, &runtime, &mut out),
        Command::Inject(args) => commands::inject::run(args, &runtime, &mut out),
        Command::Sign(args) => commands::sign::run(args, &runtime, &mut out),
        Command::GenerateKeyPair(args) => commands::sign::generate(args, &mut out),
        Command::Rules => commands::rules(&mut out),
        Command::Roots => commands::roots(&mut out),
        Command::Completions { shell } => commands::completions(*shell, &mut out),
        Command::Man => commands::man(&mut out),
        Command::Serve(args) => commands::serve::run(args, &runtime),
    };
    let flushed = std::io::Write::flush(&mut out);
    // A stopped `serve` may leave scans running on the blocking pool; do not wait for them.
    runtime.shutdown_background();
    match result.and_then(|status| flushed.map(|()| status).map_err(Into::into)) {
        Ok(status) => status.into(),
        Err(error) => {
            #[expect(clippy::print_stderr, reason = "main reports the final error")]
            {
                eprintln!("error: {error}");
                for cause in error.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
            }
            ExitCode::from(2)
        }
    }
}
