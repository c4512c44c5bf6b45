//! Baselines: an earlier JSON report whose findings are "known", so that only new ones count
//! toward `--fail-on`.
//!
//! Findings are matched by (rule, fingerprint), never by layer or line, so a rebuilt image with
//! the same old key is not new. It reads only our own JSON report (schema version 1), and does
//! not judge whether the baseline is stale.

use crate::finding::Rule;
use crate::report::ImageReport;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;

/// The (rule, fingerprint) pairs of an earlier report.
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    known: HashSet<(Rule, String)>,
}

/// Why a baseline could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the baseline `{path}`")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the baseline `{path}` is not an ocicert JSON report (`--format json`)")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the baseline `{path}` has schema version {found}; this ocicert reads version {expected}"
    )]
    Version {
        path: String,
        found: u32,
        expected: u32,
    },
}

#[derive(Deserialize)]
struct Document {
    schema_version: u32,
    images: Vec<Image>,
}

#[derive(Deserialize)]
struct Image {
    findings: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    rule: String,
    fingerprint: String,
}

impl Baseline {
    /// Reads an earlier JSON report.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let name = path.display().to_string();
        let bytes = fs_err::read(path).map_err(|source| Error::Read {
            path: name.clone(),
            source,
        })?;
        Self::parse(&name, &bytes)
    }

    /// Parses an earlier JSON report; `name` is used in messages.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Self, Error> {
        let document: Document = serde_json::from_slice(bytes).map_err(|source| Error::Parse {
            path: name.to_string(),
            source,
        })?;
        if document.schema_version != crate::report::SCHEMA_VERSION {
            return Err(Error::Version {
                path: name.to_string(),
                found: document.schema_version,
                expected: crate::report::SCHEMA_VERSION,
            });
        }
        // Rules unknown to this version cannot match anything; they are skipped, not refused.
        let known = document
            .images
            .into_iter()
            .flat_map(|image| image.findings)
            .filter_map(|entry| Some((Rule::from_id(&entry.rule)?, entry.fingerprint)))
            .collect();
        Ok(Self { known })
    }

    /// Marks every finding `new: true` or `new: false`.
    pub fn mark(&self, images: &mut [ImageReport]) {
        for finding in images.iter_mut().flat_map(|i| &mut i.findings) {
            let key = (finding.rule, finding.fingerprint.clone());
            finding.new = Some(!self.known.contains(&key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_other_documents_and_versions() {
        assert!(matches!(
            Baseline::parse("b.json", b"{\"runs\": []}"),
            Err(Error::Parse { .. })
        ));
        assert!(matches!(
            Baseline::parse("b.json", br#"{"schema_version": 2, "images": []}"#),
            Err(Error::Version { found: 2, .. })
        ));
        let baseline = Baseline::parse(
            "b.json",
            br#"{"schema_version": 1, "images": [{"findings": [{"rule": "private-key", "fingerprint": "sha256:aa"}, {"rule": "future-rule", "fingerprint": "sha256:bb"}]}]}"#,
        )
        .unwrap();
        assert_eq!(baseline.known.len(), 1);
    }
}
