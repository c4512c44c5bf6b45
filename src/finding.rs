//! The data model of a scan result: rules, severities, locations and findings.
//!
//! Findings are data, not errors: a scan that finds an expired certificate succeeded. This module
//! does not decide *what* is a finding (that is `analyze`) nor how findings are shown (`report`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// How much a finding matters, from `info` up to `critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// All severities, most severe first.
    pub const ALL_DESCENDING: [Self; 5] = [
        Self::Critical,
        Self::High,
        Self::Medium,
        Self::Low,
        Self::Info,
    ];

    /// The lowercase name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// The severity at which a scan fails (exit status 1): `--fail-on`, or a policy's `fail_on`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    Critical,
    High,
    Medium,
    Low,
    Info,
    /// Always exit 0 when the scan itself worked.
    Never,
}

impl FailOn {
    /// Every level, most severe first.
    pub const ALL: [Self; 6] = [
        Self::Critical,
        Self::High,
        Self::Medium,
        Self::Low,
        Self::Info,
        Self::Never,
    ];

    /// The lowercase name, as `--fail-on` and policies spell it.
    pub fn as_str(self) -> &'static str {
        match self.threshold() {
            Some(severity) => severity.as_str(),
            None => "never",
        }
    }

    /// The level named `text`, ignoring case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(text))
    }

    /// The severity threshold, or `None` for `never`.
    pub fn threshold(self) -> Option<Severity> {
        Some(match self {
            Self::Critical => Severity::Critical,
            Self::High => Severity::High,
            Self::Medium => Severity::Medium,
            Self::Low => Severity::Low,
            Self::Info => Severity::Info,
            Self::Never => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! rules {
    ($( $variant:ident = $id:literal, $severity:ident, $summary:literal; )*) => {
        /// A stable rule id. The kebab-case names are part of the public interface: policy files,
        /// baselines and SARIF alerts refer to them, so a name never changes once released.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Rule {
            $( #[serde(rename = $id)] $variant, )*
        }

        impl Rule {
            /// Every rule, in documentation order.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )* ];

            /// The stable kebab-case id.
            pub fn id(self) -> &'static str {
                match self { $( Self::$variant => $id, )* }
            }

            /// The severity a finding of this rule gets unless a policy overrides it.
            pub fn default_severity(self) -> Severity {
                match self { $( Self::$variant => Severity::$severity, )* }
            }

            /// A one-line description of what the rule reports.
            pub fn summary(self) -> &'static str {
                match self { $( Self::$variant => $summary, )* }
            }

            /// Looks a rule up by its kebab-case id.
            pub fn from_id(id: &str) -> Option<Self> {
                match id { $( $id => Some(Self::$variant), )* _ => None }
            }
        }
    };
}

rules! {
    CaPrivateKey = "ca-private-key", Critical, "The private key of a CA certificate ships in the image";
    IdentityKeyPair = "identity-key-pair", Critical, "A private key ships together with its certificate: a usable identity";
    KnownPublicKey = "known-public-key", Critical, "A private key that a public package publishes is used outside that package: anyone can impersonate what uses it";
    PrivateKey = "private-key", High, "An unencrypted private key ships in the image";
    BuildGeneratedKey = "build-generated-key", High, "A package's install script generated a key at build time: every container from the image shares it";
    PackageDefaultKey = "package-default-key", Medium, "A public package installs a private key where a server may load it by default: make sure no service uses it";
    PackageKey = "package-key", Low, "A private key ships unchanged in a package from a public distribution or registry: public material, not a secret of this image";
    PrivateKeyEncrypted = "private-key-encrypted", Medium, "A passphrase-protected private key ships in the image";
    KeystorePrivateKey = "keystore-private-key", High, "A keystore (PKCS#12, JKS, JCEKS) holds a private key";
    KeystoreUnknownPassword = "keystore-unknown-password", Medium, "A keystore whose password is not one of the known defaults";
    KeystoreUnparseable = "keystore-unparseable", Low, "A file looks like a keystore but does not parse";
    CertExpired = "cert-expired", Medium, "A certificate is past its notAfter date";
    CertExpiring = "cert-expiring", Low, "A certificate expires within the warning window";
    CertNotYetValid = "cert-not-yet-valid", Low, "A certificate's notBefore date is in the future";
    WeakKey = "weak-key", Medium, "A certificate uses a weak key (RSA < 2048 bits, DSA, EC < 256 bits)";
    WeakSignature = "weak-signature", Low, "A certificate is signed with MD5 or SHA-1";
    SelfSignedLeaf = "self-signed-leaf", Low, "A self-signed certificate that is not a CA";
    UnknownTrustAnchor = "unknown-trust-anchor", Medium, "A trust store holds a root that is not in Mozilla's root program";
    RemovedTrustAnchor = "removed-trust-anchor", Low, "A trust store holds roots that Mozilla has removed from its root program";
    InjectedTrustAnchor = "injected-trust-anchor", Info, "A trust store holds a root that `ocicert inject` added";
    PemUnparseable = "pem-unparseable", Info, "A PEM block that does not parse as what its label says";
    DerUnparseable = "der-unparseable", Info, "A certificate or key file whose DER content does not parse";
    ScanIncomplete = "scan-incomplete", Info, "Part of a file was not scanned because a safety limit was reached";
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Where something was found: a file in a layer (possibly inside nested archives), or a field
/// of the image configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Location {
    /// Zero-based index of the layer; absent for the image config and for `dir:` sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_index: Option<usize>,
    /// Digest of the layer blob as named by the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_digest: Option<String>,
    /// Absolute path of the file in the image filesystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Path inside nested archives, `outer.jar!/META-INF/x.key` style, relative to `path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_path: Option<String>,
    /// Field of the image configuration, for example `config.Env[2]` or `history[3].created_by`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_field: Option<String>,
    /// Whether the file is still visible in the final image. `false` means it was deleted or
    /// overwritten by a later layer, but anyone with the image can still recover it.
    pub in_final_image: bool,
    /// The package the file belongs to, per the image's package databases (as of the layer
    /// that wrote it, for a file no longer in the final image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::packages::Owner>,
}

impl Location {
    /// A short human-readable form: `/app/outer.jar!/META-INF/x.key`.
    pub fn display_path(&self) -> String {
        let mut text = String::new();
        if let Some(path) = &self.path {
            text.push_str(path);
        }
        if let Some(inner) = &self.archive_path {
            text.push_str("!/");
            text.push_str(inner);
        }
        if let Some(field) = &self.config_field {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(field);
        }
        text
    }
}

/// One thing worth telling the user about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The stable rule id.
    pub rule: Rule,
    /// Severity after policy overrides.
    pub severity: Severity,
    /// One-line human message. Never contains key material.
    pub message: String,
    /// Where it was found.
    pub location: Location,
    /// Stable identity of the key or certificate (`sha256:` + hex). For keys it is derived from
    /// the key itself, so the same leaked key in a rebuilt image has the same fingerprint.
    pub fingerprint: String,
    /// How many times the file holds it (the same key 13 times in a test-vector file is one
    /// finding with 13 occurrences). Absent when once.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub occurrences: usize,
    /// The policy exception that suppresses this finding: it stays in the report but does not
    /// count toward `--fail-on` and is left out of SARIF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Exception>,
    /// A policy exception that matched but is past its `expires` date, so the finding counts
    /// again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_exception: Option<Exception>,
    /// With `--baseline`: whether the finding is absent from the baseline report. Absent
    /// without `--baseline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<bool>,
}

fn one() -> usize {
    1
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_one(count: &usize) -> bool {
    *count == 1
}

impl Finding {
    /// A finding as the analysis produces it, before any policy or baseline is applied.
    pub fn new(rule: Rule, message: String, location: Location, fingerprint: String) -> Self {
        Self {
            rule,
            severity: rule.default_severity(),
            message,
            location,
            fingerprint,
            occurrences: 1,
            suppressed: None,
            expired_exception: None,
            new: None,
        }
    }

    /// Whether the finding counts toward `--fail-on`: not suppressed, and new when a baseline
    /// was given.
    pub fn counts(&self) -> bool {
        self.suppressed.is_none() && self.new != Some(false)
    }
}

/// A policy exception (`[[allow]]` entry) as recorded on a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    /// Why the exception exists, from the policy file.
    pub reason: String,
    /// Last day the exception applies (`YYYY-MM-DD`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Where the exception is written, `ocicert.toml:12`.
    pub source: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_on_levels_parse_in_any_case_and_map_to_thresholds() {
        for level in FailOn::ALL {
            assert_eq!(FailOn::parse(level.as_str()), Some(level));
        }
        assert_eq!(FailOn::parse("HIGH"), Some(FailOn::High));
        assert_eq!(FailOn::parse("severe"), None);
        assert_eq!(FailOn::Never.threshold(), None);
        assert_eq!(FailOn::Medium.threshold(), Some(Severity::Medium));
    }

    #[test]
    fn rule_ids_are_unique_kebab_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for rule in Rule::ALL {
            let id = rule.id();
            assert!(seen.insert(id), "duplicate rule id {id}");
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{id} is not kebab-case"
            );
            assert_eq!(Rule::from_id(id), Some(*rule));
            let json = serde_json::to_string(rule).unwrap_or_default();
            assert_eq!(json, format!("\"{id}\""));
        }
    }

    #[test]
    fn every_rule_is_documented_in_docs_rules_md() {
        let docs = include_str!("../docs/rules.md");
        for rule in Rule::ALL {
            assert!(
                docs.contains(&format!("## {}", rule.id())),
                "docs/rules.md lacks `{}`",
                rule.id()
            );
        }
    }

    #[test]
    fn severities_order_from_info_to_critical() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Low > Severity::Info);
    }
}
