//! The job queue and result store of `ocicert serve`, over SQLite (one process) or PostgreSQL
//! (several processes sharing one queue).
//!
//! A job is one (kind, registry, repository, digest): enqueueing the same one twice is a no-op,
//! so a registry that redelivers a notification causes no second scan. A worker claims a job
//! with a lease it keeps extending while it works; a job whose lease ran out (its process died)
//! is requeued, and a completion is accepted only from the lease's current owner, in the same
//! transaction that stores the report. That is what makes each job complete exactly once.
//! Failures are retried with exponential backoff up to a limit. Notifications are jobs too
//! (`Kind::Notify`), inserted by the scan's completion, so they survive a crash as well.
//!
//! This module does not scan, talk HTTP or read the clock: callers pass `now` (Unix ms).

mod ops;
pub mod postgres;
pub mod sql;
pub mod sqlite;

pub use ops::rank;

use crate::finding::Severity;
use crate::report::Report;
use serde::Serialize;
use std::collections::BTreeMap;

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Scan the image and store its report.
    Scan,
    /// Tell the configured notify URL about a stored report.
    Notify,
}

impl Kind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scan => "scan",
            Self::Notify => "notify",
        }
    }

    fn parse(text: &str) -> Self {
        if text == "notify" {
            Self::Notify
        } else {
            Self::Scan
        }
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Done,
    Failed,
}

impl State {
    /// Every state, for metrics.
    pub const ALL: [Self; 4] = [Self::Queued, Self::Running, Self::Done, Self::Failed];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => Self::Queued,
        }
    }
}

/// An image to scan, as a webhook named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    pub registry: String,
    pub repository: String,
    /// The manifest (or index) digest.
    pub digest: String,
    /// The tag it was pushed under, when known.
    pub tag: Option<String>,
    /// The webhook that named it (`distribution`, `dockerhub`, `github`).
    pub source: String,
    /// Docker Hub's `callback_url`, told the outcome when the job ends.
    pub callback_url: Option<String>,
}

/// A stored job.
#[derive(Clone, Debug, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: Kind,
    pub registry: String,
    pub repository: String,
    pub digest: String,
    pub tag: Option<String>,
    pub source: String,
    pub state: State,
    /// Claims so far, including one that is running.
    pub attempts: u32,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub callback_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The answer to an enqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job with this id.
    New(i64),
    /// The job already existed (a redelivery or a second tag for the same digest).
    Duplicate(i64),
}

/// How claims and retries behave.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Claims before a job is marked failed.
    pub max_attempts: u32,
    /// The first retry waits this long; each next one twice as long.
    pub backoff_ms: i64,
    /// No retry waits longer than this.
    pub max_backoff_ms: i64,
}

impl Retry {
    /// When the next attempt may start after `attempts` failed ones, or `None` when the job
    /// has used up its attempts.
    pub fn next_attempt(&self, attempts: u32, now: i64) -> Option<i64> {
        if attempts >= self.max_attempts {
            return None;
        }
        let factor = 1i64 << attempts.saturating_sub(1).min(20);
        Some(
            now + self
                .backoff_ms
                .saturating_mul(factor)
                .min(self.max_backoff_ms),
        )
    }
}

/// One finding as stored for queries (the full report is stored as well).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FindingRow {
    pub rule: String,
    pub severity: String,
    pub message: String,
    pub path: String,
    pub fingerprint: String,
    pub in_final_image: bool,
    /// The package the file belongs to: `dpkg:libgnutls30 3.7.9-2+deb12u3 (verified)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One certificate as stored for the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertificateRow {
    pub fingerprint: String,
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    pub not_after_unix: i64,
    pub is_ca: bool,
    pub self_signed: bool,
    pub trust_anchor: bool,
    pub key_algorithm: String,
    /// Where it was found in one image, `display_path` form, one per line.
    #[serde(skip)]
    pub paths: String,
}

/// What a finished scan stores, in one transaction with the job's completion.
#[derive(Clone, Debug)]
pub struct ScanResult {
    /// The report as `ocicert scan --format json` writes it.
    pub report: String,
    pub highest_severity: Option<String>,
    pub findings: Vec<FindingRow>,
    pub certificates: Vec<CertificateRow>,
    /// Queue a notification job for the same image.
    pub notify: bool,
}

impl ScanResult {
    /// The rows to store for `report`.
    pub fn new(report: &Report, notify: bool) -> Result<Self, Error> {
        let mut findings = Vec::new();
        let mut certificates: BTreeMap<String, CertificateRow> = BTreeMap::new();
        for image in &report.images {
            for finding in &image.findings {
                findings.push(FindingRow {
                    rule: finding.rule.id().to_string(),
                    severity: finding.severity.as_str().to_string(),
                    message: finding.message.clone(),
                    path: finding.location.display_path(),
                    fingerprint: finding.fingerprint.clone(),
                    in_final_image: finding.location.in_final_image,
                    owner: finding.location.owner.as_ref().map(ToString::to_string),
                });
            }
            for certificate in &image.inventory.certificates {
                let info = &certificate.info;
                let row = certificates
                    .entry(info.fingerprint.clone())
                    .or_insert_with(|| CertificateRow {
                        fingerprint: info.fingerprint.clone(),
                        subject: info.subject.clone(),
                        issuer: info.issuer.clone(),
                        not_after: info.not_after.clone(),
                        not_after_unix: info.not_after_unix,
                        is_ca: info.is_ca,
                        self_signed: info.self_signed,
                        trust_anchor: certificate.trust_anchor,
                        key_algorithm: info.key_algorithm.clone(),
                        paths: String::new(),
                    });
                for location in &certificate.locations {
                    let path = location.display_path();
                    if !row.paths.lines().any(|line| line == path) {
                        if !row.paths.is_empty() {
                            row.paths.push('\n');
                        }
                        row.paths.push_str(&path);
                    }
                }
            }
        }
        Ok(Self {
            report: serde_json::to_string(report).map_err(Error::Encode)?,
            highest_severity: report
                .summary
                .highest_severity
                .map(|s| s.as_str().to_string()),
            findings,
            certificates: certificates.into_values().collect(),
            notify,
        })
    }
}

/// An image as listed: its latest scan job and report summary.
#[derive(Clone, Debug, Serialize)]
pub struct ImageRow {
    pub registry: String,
    pub repository: String,
    pub digest: String,
    pub tag: Option<String>,
    pub state: State,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub updated_at: i64,
    pub highest_severity: Option<String>,
    pub findings: Option<i64>,
    pub certificates: Option<i64>,
    pub scanned_at: Option<i64>,
}

/// Which images to list.
#[derive(Clone, Debug, Default)]
pub struct ImageQuery {
    /// Case-insensitive text matched against repository, tag, digest, finding rules and paths,
    /// and certificate subjects and fingerprints. Empty matches everything.
    pub text: String,
    pub limit: u32,
    pub offset: u32,
}

/// A finding with the image it is in.
#[derive(Clone, Debug, Serialize)]
pub struct ImageFinding {
    pub registry: String,
    pub repository: String,
    pub digest: String,
    pub tag: Option<String>,
    #[serde(flatten)]
    pub finding: FindingRow,
}

/// Which findings to list.
#[derive(Clone, Debug, Default)]
pub struct FindingQuery {
    /// Case-insensitive text matched against rule, message, path, repository and digest.
    pub text: String,
    /// Only this rule id.
    pub rule: Option<String>,
    /// Only this repository.
    pub repository: Option<String>,
    /// Only findings at or above this severity.
    pub min_severity: Option<Severity>,
    pub limit: u32,
    pub offset: u32,
}

/// Which certificates to list.
#[derive(Clone, Debug, Default)]
pub struct CertificateQuery {
    /// Case-insensitive text matched against subject, issuer, fingerprint and repository.
    pub text: String,
    /// Only certificates whose notAfter is before this instant (Unix seconds): expiring soon,
    /// or expired already.
    pub expiring_before: Option<i64>,
    /// Certificates (not rows) per page.
    pub limit: u32,
    pub offset: u32,
}

/// An image a certificate was found in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub digest: String,
    pub tag: Option<String>,
    /// Where in the image.
    pub paths: Vec<String>,
}

/// One certificate across every image that carries it.
#[derive(Clone, Debug, Serialize)]
pub struct InventoryEntry {
    #[serde(flatten)]
    pub certificate: CertificateRow,
    pub images: Vec<ImageRef>,
}

/// Groups (certificate, image) rows, ordered by expiry, into one entry per certificate.
pub fn group_inventory(rows: Vec<(CertificateRow, ImageRef)>) -> Vec<InventoryEntry> {
    let mut entries: Vec<InventoryEntry> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (certificate, mut image) in rows {
        image.paths = certificate.paths.lines().map(str::to_string).collect();
        match index.get(&certificate.fingerprint) {
            Some(&at) => {
                let entry = &mut entries[at];
                match entry.images.iter_mut().find(|i| {
                    (&i.registry, &i.repository, &i.digest)
                        == (&image.registry, &image.repository, &image.digest)
                }) {
                    Some(known) => {
                        for path in image.paths {
                            if !known.paths.contains(&path) {
                                known.paths.push(path);
                            }
                        }
                    }
                    None => entry.images.push(image),
                }
            }
            None => {
                index.insert(certificate.fingerprint.clone(), entries.len());
                entries.push(InventoryEntry {
                    certificate,
                    images: vec![image],
                });
            }
        }
    }
    entries
}

/// `text` as a SQL `LIKE` pattern matching it anywhere, lowercased, with `\` as the escape.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SQLite error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL error")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("cannot get a PostgreSQL connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("invalid PostgreSQL connection settings")]
    PostgresConfig(#[source] tokio_postgres::Error),
    #[error("cannot set up the PostgreSQL connection pool: {0}")]
    PoolSetup(String),
    #[error("cannot open the database in `{dir}`")]
    Open {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another `ocicert serve` uses `{path}`; SQLite serves one process, use PostgreSQL (`--database postgres://…`) to run several"
    )]
    Locked { path: std::path::PathBuf },
    #[error("cannot encode the report")]
    Encode(#[source] serde_json::Error),
    #[error("a database task stopped unexpectedly")]
    Task(#[from] tokio::task::JoinError),
    #[error("the database writer stopped before confirming the job")]
    Unconfirmed,
    #[error("column {column} of a stored row is unexpectedly empty")]
    Null { column: usize },
    #[error(
        "the database is at schema version {found}, newer than this ocicert knows ({known}); upgrade ocicert before using it"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("cannot apply schema migration {version}")]
    Migration {
        version: i64,
        #[source]
        source: Box<Self>,
    },
}

/// The store: one SQLite file or one PostgreSQL database.
pub enum Store {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops() {
        let retry = Retry {
            max_attempts: 4,
            backoff_ms: 1000,
            max_backoff_ms: 3000,
        };
        assert_eq!(retry.next_attempt(1, 0), Some(1000));
        assert_eq!(retry.next_attempt(2, 0), Some(2000));
        assert_eq!(retry.next_attempt(3, 0), Some(3000), "capped");
        assert_eq!(retry.next_attempt(4, 0), None, "out of attempts");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Team_A%"), "%team\\_a\\%%");
        assert_eq!(like_pattern(""), "%%");
    }

    fn row(fingerprint: &str, path: &str) -> CertificateRow {
        CertificateRow {
            fingerprint: fingerprint.into(),
            subject: "CN=x".into(),
            issuer: "CN=x".into(),
            not_after: "2030-01-01T00:00:00Z".into(),
            not_after_unix: 0,
            is_ca: false,
            self_signed: true,
            trust_anchor: false,
            key_algorithm: "ec".into(),
            paths: path.into(),
        }
    }

    fn image(digest: &str) -> ImageRef {
        ImageRef {
            registry: "r".into(),
            repository: "a".into(),
            digest: digest.into(),
            tag: None,
            paths: Vec::new(),
        }
    }

    #[test]
    fn inventory_groups_by_fingerprint_in_order() {
        let entries = group_inventory(vec![
            (row("sha256:1", "/a.pem"), image("sha256:i1")),
            (row("sha256:2", "/b.pem"), image("sha256:i1")),
            (row("sha256:1", "/c.pem"), image("sha256:i2")),
            (row("sha256:1", "/a.pem"), image("sha256:i2")),
        ]);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].certificate.fingerprint, "sha256:1");
        let images: Vec<(&str, Vec<String>)> = entries[0]
            .images
            .iter()
            .map(|i| (i.digest.as_str(), i.paths.clone()))
            .collect();
        assert_eq!(
            images,
            [
                ("sha256:i1", vec!["/a.pem".to_string()]),
                (
                    "sha256:i2",
                    vec!["/c.pem".to_string(), "/a.pem".to_string()]
                )
            ]
        );
    }
}
