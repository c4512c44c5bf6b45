//! `ocicert scan`: open the reference, scan it, write the report, and pick the exit status.

use super::Status;
use crate::analyze::Context;
use crate::cli::ScanArgs;
use crate::detect::Options;
use crate::image::{self, Selection, platform::Platform, reference::Reference};
use crate::report::{self, Report};
use crate::scan::{self, Settings};
use anyhow::{Context as _, bail};
use std::io::IsTerminal;

/// Parses `--now`, defaulting to the current time.
pub fn parse_now(now: Option<&str>) -> anyhow::Result<i64> {
    match now {
        None => Ok(time::OffsetDateTime::now_utc().unix_timestamp()),
        Some(text) => {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| t.unix_timestamp())
                .with_context(|| {
                    format!("`--now {text}` is not an RFC 3339 time such as 2026-06-01T00:00:00Z")
                })
        }
    }
}

/// The layer cache chosen by the flags, if any.
pub fn cache(args: &crate::cli::CacheArgs) -> Option<crate::cache::Cache> {
    if args.no_cache {
        return None;
    }
    let dir = args
        .cache_dir
        .clone()
        .or_else(crate::cache::Cache::default_dir)?;
    match crate::cache::Cache::open(&dir) {
        Ok(cache) => Some(cache),
        Err(error) => {
            tracing::warn!(error = %error, "scanning without a layer cache");
            None
        }
    }
}

/// Runs the scan and writes the report to `out`.
pub fn run(
    args: &ScanArgs,
    runtime: &tokio::runtime::Runtime,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<Status> {
    let now = parse_now(args.now.as_deref())?;
    let selection = Selection {
        platform: match &args.platform {
            Some(text) => match Platform::parse(text) {
                Some(platform) => Some(platform),
                None => bail!("`--platform {text}` is not of the form os/arch[/variant]"),
            },
            None => None,
        },
        all_platforms: args.all_platforms,
    };
    let settings = Settings {
        options: Options {
            keystore_passwords: args.keystore_passwords.clone(),
            max_archive_depth: args.max_archive_depth,
            ..Options::default()
        },
        context: Context {
            now,
            expiry_warn_days: i64::from(args.expiry_warn),
        },
        threads: args.threads,
        cache: cache(&args.cache),
    };
    let images = match Reference::parse(&args.image)? {
        Reference::Dir { path } => vec![
            scan::scan_directory(&path, &settings)
                .with_context(|| format!("failed to scan `{}`", args.image))?,
        ],
        _ => {
            let options = super::source::registry_options(&args.registry, None)?;
            let opened = super::source::open(&args.image, &selection, options, runtime)?;
            scan_with_progress(
                opened.store.as_ref(),
                &opened.images,
                &settings,
                &args.image,
            )?
        }
    };
    let report = Report::new(&args.image, now, images);
    report::write(&report, args.format, out).context("failed to write the report")?;
    let failed = args
        .fail_on
        .threshold()
        .is_some_and(|threshold| report.findings().any(|f| f.severity >= threshold));
    Ok(if failed {
        Status::Violations
    } else {
        Status::Clean
    })
}

fn scan_with_progress(
    store: &dyn image::BlobStore,
    images: &[image::Image],
    settings: &Settings,
    reference: &str,
) -> anyhow::Result<Vec<report::ImageReport>> {
    let layers: std::collections::HashSet<&str> = images
        .iter()
        .flat_map(|i| i.layers.iter().map(|l| l.digest.as_str()))
        .collect();
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(layers.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} scanning layers {pos}/{len} {wide_bar} {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let on_layer = |digest: &str, bytes: u64| {
        tracing::debug!(layer = digest, bytes, "layer scanned");
        bar.inc(1);
    };
    let result = scan::scan_images(store, images, settings, &on_layer)
        .with_context(|| format!("failed to scan `{reference}`"));
    bar.finish_and_clear();
    result
}
