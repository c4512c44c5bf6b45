//! The report: one versioned document for a scan, and writers that render it.
//!
//! `Report` is the JSON schema (`schemas/report-v1.schema.json`); every other format is a view
//! of it. Writers take `impl Write` and never print on their own; choosing stdout or a file is
//! the command's business.

pub mod cbom;
pub mod dockerfile;
pub mod json;
pub mod markdown;
pub mod sarif;
pub mod table;

use crate::analyze::Inventory;
use crate::finding::{Finding, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever a field changes meaning or disappears; additions keep the version.
pub const SCHEMA_VERSION: u32 = 1;

/// The result of scanning one reference (one or more platforms).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    /// The reference as the user gave it.
    pub reference: String,
    /// The digest of the manifest or index the reference named (registry sources and OCI
    /// layouts), the one to pin a deployment to; a multi-platform image's index digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The instant certificates were judged against (RFC 3339).
    pub now: String,
    /// One entry per scanned platform.
    pub images: Vec<ImageReport>,
    pub summary: Summary,
}

/// Name and version of the tool that wrote the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

/// One single-platform image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub layers: Vec<LayerReport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_layers: Vec<String>,
    pub findings: Vec<Finding>,
    pub inventory: Inventory,
}

/// One layer of an image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerReport {
    pub index: usize,
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The history entry that created the layer (`RUN …`, `COPY …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Regular files read.
    pub files: u64,
    /// Uncompressed bytes of file content read.
    pub bytes: u64,
}

/// Counts across all images of the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Findings per severity (every severity present, zero included), not counting findings
    /// suppressed by the policy.
    pub findings: BTreeMap<Severity, usize>,
    pub certificates: usize,
    pub keys: usize,
    /// The highest severity among findings not suppressed by the policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub highest_severity: Option<Severity>,
    /// Findings suppressed by a policy exception.
    #[serde(default)]
    pub suppressed: usize,
    /// With `--baseline`: findings (not suppressed) absent from the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<usize>,
}

impl Report {
    /// Records the digest of the manifest or index the reference named.
    #[must_use]
    pub fn with_digest(mut self, digest: Option<String>) -> Self {
        self.digest = digest;
        self
    }

    /// Assembles a report and computes its summary.
    pub fn new(reference: &str, now: i64, images: Vec<ImageReport>) -> Self {
        let mut findings: BTreeMap<Severity, usize> =
            Severity::ALL_DESCENDING.iter().map(|s| (*s, 0)).collect();
        let active = || {
            images
                .iter()
                .flat_map(|i| &i.findings)
                .filter(|f| f.suppressed.is_none())
        };
        for finding in active() {
            *findings.entry(finding.severity).or_default() += 1;
        }
        let baseline_used = images
            .iter()
            .flat_map(|i| &i.findings)
            .any(|f| f.new.is_some());
        let summary = Summary {
            highest_severity: active().map(|f| f.severity).max(),
            findings,
            certificates: images.iter().map(|i| i.inventory.certificates.len()).sum(),
            keys: images.iter().map(|i| i.inventory.keys.len()).sum(),
            suppressed: images
                .iter()
                .flat_map(|i| &i.findings)
                .filter(|f| f.suppressed.is_some())
                .count(),
            new: baseline_used.then(|| active().filter(|f| f.new == Some(true)).count()),
        };
        Self {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: env!("CARGO_PKG_NAME").into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            reference: reference.to_string(),
            digest: None,
            now: crate::x509::rfc3339(now),
            images,
            summary,
        }
    }

    /// Every finding of every image.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.images.iter().flat_map(|i| &i.findings)
    }
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable, grouped by severity.
    Table,
    /// The versioned JSON document.
    Json,
    /// SARIF 2.1.0 for GitHub code scanning.
    Sarif,
    /// CycloneDX 1.6 cryptography bill of materials (CBOM).
    Cyclonedx,
    /// A short GitHub-flavoured Markdown summary (for `$GITHUB_STEP_SUMMARY`).
    Markdown,
}

/// What some writers need beyond the report itself.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The Dockerfile that built the image, to point SARIF results at the instruction that
    /// created each layer.
    pub dockerfile: Option<dockerfile::Dockerfile>,
    /// The table lists every finding instead of one entry per repeated rule and place.
    pub show_all: bool,
}

/// Writes `report` in `format`.
pub fn write(report: &Report, format: Format, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    write_with(report, format, &Options::default(), out)
}

/// Writes `report` in `format`, with writer options.
pub fn write_with(
    report: &Report,
    format: Format,
    options: &Options,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match format {
        Format::Table => table::write(report, options.show_all, out),
        Format::Json => json::write(report, out),
        Format::Sarif => sarif::write(report, options.dockerfile.as_ref(), out),
        Format::Cyclonedx => cbom::write(report, out),
        Format::Markdown => markdown::write(report, out),
    }
}
