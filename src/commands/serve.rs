//! `ocicert serve`: load the configuration, open the store, and run the service with a scanner
//! that opens each image through the registry client and scans it with the shared layer cache.

use crate::cli::ServeArgs;
use crate::image::Selection;
use crate::pipeline;
use crate::registry::{self, Target};
use crate::report::Report;
use crate::serve::{self, ScanError, config::AllowedRegistry};
use crate::store::{self, Store};
use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;

/// Test-only: sleep this many milliseconds in every scan, so tests can kill a process mid-scan.
pub const TEST_SCAN_DELAY_ENV: &str = "OCICERT_TEST_SCAN_DELAY_MS";

/// Runs the service until SIGTERM or Ctrl-C.
pub fn run(args: &ServeArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<super::Status> {
    let config = serve::config::load(&args.config, &|name| std::env::var(name).ok())?;
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| config.data_dir.clone())
        .context(
            "no data directory: pass `--data-dir DIR` or set `data_dir` in the configuration",
        )?;
    let listen = args.listen.unwrap_or(config.listen);
    let policy = config
        .policy
        .as_deref()
        .map(crate::policy::load)
        .transpose()?;
    let cache = crate::cache::Cache::open(&data_dir.join("cache"))?;
    let delay = std::env::var(TEST_SCAN_DELAY_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    let handle = runtime.handle().clone();
    let budget = config.job_timeout;
    let memory = config.job_memory;
    let scanner: serve::Scanner = Arc::new(move |job, allowed| {
        let deadline = std::time::Instant::now() + budget;
        let scanned = scan_job(
            job,
            allowed,
            &cache,
            policy.as_ref(),
            delay,
            &handle,
            (deadline, memory),
        );
        scanned.map_err(|error| {
            let text = format!("{error:#}");
            if rate_limited(&error) {
                ScanError::RateLimited(text)
            } else if out_of_time(&error) {
                ScanError::OutOfBudget(format!(
                    "stopped after the {} s job budget (`job_timeout_seconds`): {text}",
                    budget.as_secs()
                ))
            } else if out_of_memory(&error) {
                ScanError::OutOfBudget(format!(
                    "stopped at the {} MiB memory budget (`job_memory_mib`): {text}",
                    memory >> 20
                ))
            } else {
                ScanError::Failed(text)
            }
        })
    });
    runtime.block_on(async {
        let store = match args.database.as_deref().filter(|url| *url != "sqlite") {
            Some(url) => Store::Postgres(
                store::postgres::Postgres::connect(url, config.workers + 4)
                    .await
                    .context("cannot use the PostgreSQL database given by `--database`")?,
            ),
            None => Store::Sqlite(store::sqlite::Sqlite::open(&data_dir)?),
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on `{listen}`"))?;
        tracing::warn!(
            "ocicert serve listening on http://{}",
            listener.local_addr().unwrap_or(listen)
        );
        let app = Arc::new(serve::App::new(config, store, scanner)?);
        serve::run(app, listener).await?;
        Ok(super::Status::Clean)
    })
}

/// Scans one queued image: all platforms, the policy applied, judged as of now.
fn scan_job(
    job: &store::Job,
    allowed: &AllowedRegistry,
    cache: &crate::cache::Cache,
    policy: Option<&crate::policy::Policy>,
    delay: Option<Duration>,
    handle: &tokio::runtime::Handle,
    (deadline, memory_limit): (std::time::Instant, u64),
) -> anyhow::Result<Report> {
    let reference = format!("{}/{}@{}", job.registry, job.repository, job.digest);
    let target = Target::parse(&reference)
        .map_err(|reason| anyhow::anyhow!("`{reference}` is not a valid reference: {reason}"))?;
    let client = super::source::client(&target, allowed.options())?;
    let selection = Selection {
        platform: None,
        all_platforms: true,
    };
    let opened = super::source::open_registry(&reference, target, client, &selection, handle)?;
    if let Some(delay) = delay {
        std::thread::sleep(delay);
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let request = pipeline::Request {
        cache: Some(cache.clone()),
        deadline: Some(deadline),
        memory_limit: Some(memory_limit),
        ..pipeline::Request::new(now, policy)
    };
    let scanned =
        pipeline::scan_images(opened.store.as_ref(), &opened.images, &request, &|_, _| {})
            .with_context(|| format!("failed to scan `{reference}`"))?;
    for expired in &scanned.expired {
        tracing::warn!("{expired}");
    }
    Ok(Report::new(&reference, now, scanned.images))
}

/// Whether the scan stopped at its deadline.
fn out_of_time(error: &anyhow::Error) -> bool {
    use crate::layer::Error::OutOfTime;
    error.chain().any(|cause| {
        // `scan::Error::Layer` is transparent: the layer's error is not a cause of its own.
        matches!(
            cause.downcast_ref::<crate::scan::Error>(),
            Some(crate::scan::Error::Layer(OutOfTime { .. }))
        ) || matches!(
            cause.downcast_ref::<crate::layer::Error>(),
            Some(OutOfTime { .. })
        )
    })
}

/// Whether the scan stopped at its memory budget.
fn out_of_memory(error: &anyhow::Error) -> bool {
    use crate::layer::Error::OutOfMemory;
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<crate::scan::Error>(),
            Some(crate::scan::Error::Layer(OutOfMemory { .. }))
        ) || matches!(
            cause.downcast_ref::<crate::layer::Error>(),
            Some(OutOfMemory { .. })
        )
    })
}

/// Whether the registry answered 429 even after the client's own retries.
fn rate_limited(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let registry = cause.downcast_ref::<registry::Error>().or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<registry::Error>())
        });
        matches!(registry, Some(registry::Error::Status { status: 429, .. }))
    })
}
