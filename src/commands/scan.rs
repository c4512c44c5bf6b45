//! `ocicert scan`: open the reference, scan it, write the report, and pick the exit status.

use super::Status;
use crate::baseline::Baseline;
use crate::cache::Cache;
use crate::cli::{FailOn, OutputTarget, ScanArgs};
use crate::image::{self, Selection, platform::Platform, reference::Reference};
use crate::pipeline;
use crate::policy::{self, Policy};
use crate::report::{self, Report, dockerfile::Dockerfile};
use anyhow::{Context as _, bail};
use std::io::IsTerminal;
use std::path::Path;

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

/// Runs the scan and writes the report to `out`.
pub fn run(
    args: &ScanArgs,
    runtime: &tokio::runtime::Runtime,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<Status> {
    let now = parse_now(args.now.as_deref())?;
    // Everything the user wrote is checked before anything is scanned.
    let policy = load_policy(args)?;
    let baseline = args.baseline.as_deref().map(Baseline::load).transpose()?;
    let dockerfile = args
        .dockerfile
        .as_deref()
        .map(read_dockerfile)
        .transpose()?;
    let fail_on = args
        .fail_on
        .or(policy.as_ref().and_then(|p| p.fail_on))
        .unwrap_or(FailOn::High);
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
    let request = pipeline::Request {
        keystore_passwords: args.keystore_passwords.clone(),
        expiry_warn_days: args.expiry_warn,
        max_archive_depth: args.max_archive_depth,
        threads: args.threads,
        cache: Cache::choose(args.cache.no_cache, args.cache.cache_dir.as_deref()),
        ..pipeline::Request::new(now, policy.as_ref())
    };
    let mut top_digest = None;
    let reference = Reference::parse(&args.image)?;
    let verifiers = super::keys::load_verifiers(&args.registry.verify_keys)?;
    super::source::check_verifiable(&reference, &verifiers)?;
    let scanned = match reference {
        Reference::Dir { path } => pipeline::scan_directory(&path, &request)
            .with_context(|| format!("failed to scan `{}`", args.image))?,
        reference => {
            let options = super::source::registry_options(&args.registry, None)?;
            let opened = super::source::open(reference, &args.image, &selection, options, runtime)?;
            super::source::verify(&opened, &verifiers, runtime)?;
            top_digest = opened.digest.clone();
            scan_with_progress(opened.store.as_ref(), &opened.images, &request, &args.image)?
        }
    };
    for expired in &scanned.expired {
        warn(&expired.to_string());
    }
    let mut images = scanned.images;
    if let Some(baseline) = &baseline {
        baseline.mark(&mut images);
    }
    let report = Report::new(&args.image, now, images).with_digest(top_digest);
    let options = report::Options {
        dockerfile,
        show_all: args.show_all,
    };
    for target in &args.outputs {
        write_output(&report, target, &options)?;
    }
    report::write_with(&report, args.format, &options, out)
        .context("failed to write the report")?;
    let failed = fail_on.threshold().is_some_and(|threshold| {
        report
            .findings()
            .any(|f| f.counts() && f.severity >= threshold)
    });
    Ok(if failed {
        Status::Violations
    } else {
        Status::Clean
    })
}

#[expect(
    clippy::print_stderr,
    reason = "policy warnings are for the person running the scan"
)]
fn warn(message: &str) {
    eprintln!("warning: {message}");
}

/// `--policy PATH`, else `ocicert.toml` in the working directory unless `--no-policy`.
fn load_policy(args: &ScanArgs) -> anyhow::Result<Option<Policy>> {
    if args.no_policy {
        return Ok(None);
    }
    if let Some(path) = &args.policy {
        return Ok(Some(policy::load(path)?));
    }
    let default = Path::new(policy::FILE_NAME);
    if !default.is_file() {
        return Ok(None);
    }
    tracing::info!("using the policy file `{}`", policy::FILE_NAME);
    Ok(Some(policy::load(default)?))
}

fn read_dockerfile(path: &Path) -> anyhow::Result<Dockerfile> {
    let text = fs_err::read_to_string(path).context("cannot read the Dockerfile")?;
    // The path as given, with `/` separators, is the SARIF artifact URI. An absolute path
    // becomes a `file://` URI, which upload-sarif makes relative to the checkout.
    let mut uri = path.to_string_lossy().replace('\\', "/");
    if path.is_absolute() {
        uri = format!("file://{uri}");
    }
    Ok(Dockerfile::parse(&uri, &text))
}

/// Writes one `--output` file: into a temporary file next to it, then renamed over it, so a
/// reader never sees half a report.
fn write_output(
    report: &Report,
    target: &OutputTarget,
    options: &report::Options,
) -> anyhow::Result<()> {
    let path = &target.path;
    let write = || -> anyhow::Result<()> {
        let Some(name) = path.file_name() else {
            bail!("it names a directory, not a file");
        };
        let temporary = path.with_file_name(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let result = (|| -> anyhow::Result<()> {
            let mut writer = std::io::BufWriter::new(fs_err::File::create(&temporary)?);
            report::write_with(report, target.format, options, &mut writer)?;
            std::io::Write::flush(&mut writer)?;
            fs_err::rename(&temporary, path)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs_err::remove_file(&temporary);
        }
        result
    };
    write().with_context(|| {
        format!(
            "failed to write the {} report to `{}`",
            clap::ValueEnum::to_possible_value(&target.format)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default(),
            path.display()
        )
    })
}

fn scan_with_progress(
    store: &dyn image::BlobStore,
    images: &[image::Image],
    request: &pipeline::Request<'_>,
    reference: &str,
) -> anyhow::Result<pipeline::Scanned> {
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
    let result = pipeline::scan_images(store, images, request, &on_layer)
        .with_context(|| format!("failed to scan `{reference}`"));
    bar.finish_and_clear();
    result
}
