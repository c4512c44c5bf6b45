//! The policy file (`ocicert.toml`): parse it, validate it (reporting every problem at once, with
//! its line and column), and apply it to findings: severity overrides, trusted corporate roots,
//! and exceptions (`[[allow]]`) that may expire.
//!
//! Parsing walks the spanned TOML tree by hand instead of deriving `Deserialize`, because serde
//! stops at the first error. Applying a policy never drops a finding it suppresses: the finding
//! stays in the report, marked. It does not read the clock: "today" is the scan's `--now`.
//!
//! ```toml
//! fail_on = "high"
//! expiry_warn_days = 45
//! trusted_roots = ["sha256:…"]
//! [severity]
//! cert-expiring = "medium"
//! [[allow]]
//! path = "/opt/test/**"
//! reason = "test fixture"
//! expires = 2026-12-31
//! ```

use crate::finding::FailOn;
use crate::finding::{Exception, Finding, Rule, Severity};
use crate::report::ImageReport;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

mod parse;
#[cfg(test)]
mod tests;

pub use parse::parse;

/// The file picked up from the working directory when `--policy` is not given.
pub const FILE_NAME: &str = "ocicert.toml";

/// A validated policy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Where it was read from, as shown in messages.
    pub source: String,
    pub fail_on: Option<FailOn>,
    pub expiry_warn_days: Option<u32>,
    pub keystore_passwords: Vec<String>,
    /// `sha256:` + hex, each either a certificate fingerprint or an SPKI hash.
    pub trusted_roots: Vec<String>,
    pub severity: BTreeMap<Rule, Severity>,
    pub allow: Vec<Allow>,
    /// Package origins to treat as public like the distributions (`packages::is_public`).
    pub public_origins: Vec<String>,
}

/// A glob as written, and its compiled matcher.
pub type Glob = (String, globset::GlobMatcher);

/// One `[[allow]]` exception. Every matcher given must match.
#[derive(Clone, Debug)]
pub struct Allow {
    pub rule: Option<Rule>,
    /// The glob as written, and its compiled matcher.
    pub path: Option<Glob>,
    pub fingerprint: Option<String>,
    /// A glob on the owner's `ecosystem:name` (`dpkg:libgnutls30`).
    pub owner: Option<Glob>,
    /// Only files whose bytes are in this state against their package's record.
    pub owner_integrity: Option<crate::packages::Integrity>,
    pub reason: String,
    /// Last day the exception applies.
    pub expires: Option<time::Date>,
    /// Line of the entry in the policy file.
    pub line: usize,
}

/// One thing wrong in a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why a policy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the policy file `{path}`")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(path, problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

fn render(path: &str, problems: &[Problem]) -> String {
    let mut text = format!(
        "the policy file `{path}` has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        text.push_str(&format!(
            "\n  {path}:{}:{}: {}",
            problem.line, problem.column, problem.message
        ));
    }
    text
}

/// An exception that matched findings but is past its `expires` date, so it no longer applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredException {
    /// `ocicert.toml:12`.
    pub source: String,
    pub reason: String,
    pub expires: String,
    /// Findings it would have suppressed.
    pub findings: usize,
}

impl fmt::Display for ExpiredException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the exception at {} (\"{}\") expired on {}; ",
            self.source, self.reason, self.expires
        )?;
        match self.findings {
            0 => write!(f, "it matches nothing any more and can be removed"),
            1 => write!(f, "the 1 finding it covered counts again"),
            n => write!(f, "the {n} findings it covered count again"),
        }
    }
}

/// `sha256:` + 64 lowercase hex digits, from `sha256:AB…`, `AB:CD:…` (openssl's form) or bare hex.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let text = text.trim();
    let hex = text
        .strip_prefix("sha256:")
        .or_else(|| text.strip_prefix("SHA256:"))
        .unwrap_or(text);
    let hex: String = hex
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

/// Reads and validates a policy file.
pub fn load(path: &Path) -> Result<Policy, Error> {
    let name = path.display().to_string();
    let text = fs_err::read_to_string(path).map_err(|source| Error::Read {
        path: name.clone(),
        source,
    })?;
    parse(&name, &text)
}

fn date_text(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

impl Allow {
    fn matches(&self, finding: &Finding) -> bool {
        let owner = finding.location.owner.as_ref();
        // A published key is the same everywhere: an exception written for the package's test
        // key must not silence a copy of it in production, so only a path can allow it.
        if finding.rule == Rule::KnownPublicKey && self.path.is_none() {
            return false;
        }
        self.rule.is_none_or(|rule| rule == finding.rule)
            && self.owner.as_ref().is_none_or(|(_, glob)| {
                owner.is_some_and(|o| glob.is_match(format!("{}:{}", o.ecosystem.as_str(), o.name)))
            })
            && self
                .owner_integrity
                .is_none_or(|wanted| owner.is_some_and(|o| o.integrity == wanted))
            && self
                .fingerprint
                .as_ref()
                .is_none_or(|fingerprint| *fingerprint == finding.fingerprint)
            && self.path.as_ref().is_none_or(|(_, glob)| {
                // `/opt/x/**` and `opt/x/**` both match `/opt/x/…`; config fields have no slash.
                let location = &finding.location;
                let display = location.display_path();
                [
                    location.path.as_deref().unwrap_or_default(),
                    display.as_str(),
                ]
                .iter()
                .filter(|candidate| !candidate.is_empty())
                .any(|candidate| {
                    glob.is_match(candidate) || glob.is_match(candidate.trim_start_matches('/'))
                })
            })
    }

    fn exception(&self, source: &str) -> Exception {
        Exception {
            reason: self.reason.clone(),
            expires: self.expires.map(date_text),
            source: format!("{source}:{}", self.line),
        }
    }
}

impl Policy {
    fn trusted(&self, image: &ImageReport, fingerprint: &str) -> bool {
        if self.trusted_roots.iter().any(|root| root == fingerprint) {
            return true;
        }
        image
            .inventory
            .certificates
            .iter()
            .filter(|c| c.info.fingerprint == fingerprint)
            .any(|c| {
                let spki = format!("sha256:{}", c.info.spki_sha256);
                self.trusted_roots.contains(&spki)
            })
    }

    /// Applies the policy to scanned images, as of `now` (Unix seconds): drops
    /// `unknown-trust-anchor` and `removed-trust-anchor` for trusted roots, overrides severities, and marks findings that
    /// an exception suppresses. Returns the exceptions that expired.
    pub fn apply(&self, images: &mut [ImageReport], now: i64) -> Vec<ExpiredException> {
        let today = time::OffsetDateTime::from_unix_timestamp(now)
            .map(|t| t.date())
            .unwrap_or(time::Date::MIN);
        let mut expired_matches = vec![0usize; self.allow.len()];
        for image in images.iter_mut() {
            let mut findings = std::mem::take(&mut image.findings);
            findings.retain(|finding| {
                !(matches!(
                    finding.rule,
                    Rule::UnknownTrustAnchor | Rule::RemovedTrustAnchor
                ) && self.trusted(image, &finding.fingerprint))
            });
            for finding in &mut findings {
                if let Some(severity) = self.severity.get(&finding.rule) {
                    finding.severity = *severity;
                }
                for (index, allow) in self.allow.iter().enumerate() {
                    if !allow.matches(finding) {
                        continue;
                    }
                    if allow.expires.is_some_and(|expires| today > expires) {
                        expired_matches[index] += 1;
                        if finding.expired_exception.is_none() {
                            finding.expired_exception = Some(allow.exception(&self.source));
                        }
                    } else if finding.suppressed.is_none() {
                        finding.suppressed = Some(allow.exception(&self.source));
                    }
                }
                if finding.suppressed.is_some() {
                    finding.expired_exception = None;
                }
            }
            findings.sort_by(|a, b| {
                b.severity
                    .cmp(&a.severity)
                    .then(a.rule.cmp(&b.rule))
                    .then_with(|| a.location.cmp(&b.location))
            });
            image.findings = findings;
        }
        self.allow
            .iter()
            .zip(expired_matches)
            .filter_map(|(allow, findings)| {
                let expires = allow.expires.filter(|expires| today > *expires)?;
                Some(ExpiredException {
                    source: format!("{}:{}", self.source, allow.line),
                    reason: allow.reason.clone(),
                    expires: date_text(expires),
                    findings,
                })
            })
            .collect()
    }
}
