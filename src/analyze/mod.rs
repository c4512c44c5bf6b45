//! Turns raw detections into an inventory and findings: pairs keys with certificates, tells
//! trust anchors from leaf identities, and judges validity against a fixed `now`.
//!
//! Pure and deterministic: the same observations and `now` give the same output. Severity
//! overrides and exceptions belong to `policy`, not here.

use crate::detect::{Artifact, KeystoreKind, KeystorePassword, UnparseableKind};
use crate::finding::{Finding, Location, Rule};
use crate::keys::KeyInfo;
use crate::x509::CertInfo;
use serde::{Deserialize, Serialize};

mod certificates;
mod keys;

use certificates::{RemovedAnchors, certificate_findings, is_anchor, status};
use keys::{Ownership, Published, key_findings};
use std::collections::{BTreeMap, HashMap};

/// A detection with its place in the image.
#[derive(Clone, Debug)]
pub struct Observation {
    pub artifact: Artifact,
    pub location: Location,
    /// For a file in no package's list: the package (`name version`) whose own directory
    /// holds it, which makes it look like the package's when it is not.
    pub package_directory: Option<String>,
}

/// The clock and windows used to judge certificates, and the origins treated as public.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// "Now", Unix seconds.
    pub now: i64,
    /// Warn about certificates expiring within this many days.
    pub expiry_warn_days: i64,
    /// Package origins to treat as public besides the distributions (`packages::is_public`).
    pub public_origins: Vec<String>,
    /// Roots the policy trusts (`sha256:` certificate or SPKI fingerprints): no anchor finding.
    pub trusted_roots: Vec<String>,
    /// Certificates `ocicert inject` added to this image, by fingerprint (its label).
    pub injected_cas: Vec<String>,
}

/// Validity of a certificate at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Valid,
    Expiring,
    Expired,
    NotYetValid,
}

/// One distinct certificate and everywhere it was found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertificateEntry {
    #[serde(flatten)]
    pub info: CertInfo,
    pub status: Status,
    /// Whole days until notAfter (negative when expired).
    pub days_left: i64,
    /// Found in a trust store: an anchor, not an identity.
    pub trust_anchor: bool,
    /// The trust stores it was found in.
    pub trust_stores: Vec<String>,
    /// Its key is one of Mozilla's roots.
    pub in_mozilla_roots: bool,
    /// Its private key ships in the image too.
    pub private_key_in_image: bool,
    /// It signs code (found in a JAR signature): listed, not judged like a TLS certificate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub code_signing: bool,
    pub locations: Vec<Location>,
}

/// One distinct private key and everywhere it was found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyEntry {
    #[serde(flatten)]
    pub info: KeyInfo,
    /// The keystore that holds it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keystore: Option<KeystoreKind>,
    /// Fingerprint of the certificate for this key, when that certificate is in the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    pub locations: Vec<Location>,
}

/// A keystore container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeystoreEntry {
    pub kind: KeystoreKind,
    pub password: KeystorePassword,
    pub entries: usize,
    pub location: Location,
}

/// Everything crypto-related the image carries.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Inventory {
    pub certificates: Vec<CertificateEntry>,
    pub keys: Vec<KeyEntry>,
    pub keystores: Vec<KeystoreEntry>,
    pub certificate_requests: Vec<CertificateRequestEntry>,
    /// OpenSSH certificates, with their validity at `now`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_certificates: Vec<SshCertificateEntry>,
    /// PEM blocks that do not parse in programs, source code and documentation: string
    /// constants and examples, listed here instead of as `pem-unparseable` findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inert_pem: Vec<InertPemEntry>,
    /// Where certificate revocation lists are (counted, not parsed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_lists: Vec<Location>,
}

/// A PEM block that does not parse, in a program or text about programs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InertPemEntry {
    pub label: String,
    pub reason: String,
    pub location: Location,
}

/// An OpenSSH certificate found in the image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SshCertificateEntry {
    #[serde(flatten)]
    pub certificate: crate::detect::sshcert::SshCertificate,
    pub status: Status,
    pub location: Location,
}

/// A PKCS#10 request found in the image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertificateRequestEntry {
    pub subject: String,
    pub location: Location,
}

fn finding(rule: Rule, message: String, location: &Location, fingerprint: &str) -> Finding {
    Finding::new(rule, message, location.clone(), fingerprint.to_string())
}

fn history_note(location: &Location) -> &'static str {
    if location.in_final_image {
        ""
    } else {
        " (deleted or replaced in a later layer, still recoverable from this one)"
    }
}

/// Builds the inventory and findings for one image.
pub fn analyze(observations: Vec<Observation>, context: &Context) -> (Vec<Finding>, Inventory) {
    let mut certificates: BTreeMap<String, CertificateEntry> = BTreeMap::new();
    let mut by_spki: HashMap<String, String> = HashMap::new();
    let mut findings = Vec::new();
    let mut inventory = Inventory::default();
    let mut keys: BTreeMap<String, KeyEntry> = BTreeMap::new();
    let mut removed = RemovedAnchors::default();

    // Certificates first, so keys can be paired with any certificate in the image.
    for observation in &observations {
        if let Artifact::Certificate { info, encoding } = &observation.artifact {
            let anchor = is_anchor(&observation.location, *encoding);
            let (status, days_left) = status(info, context);
            let entry = certificates
                .entry(info.fingerprint.clone())
                .or_insert_with(|| CertificateEntry {
                    info: (**info).clone(),
                    status,
                    days_left,
                    trust_anchor: false,
                    trust_stores: Vec::new(),
                    in_mozilla_roots: crate::truststore::in_mozilla_roots(&info.spki_sha256),
                    private_key_in_image: false,
                    code_signing: false,
                    locations: Vec::new(),
                });
            if *encoding == crate::detect::CertEncoding::JarSignature {
                entry.code_signing = true;
            }
            if let Some(store) = anchor {
                entry.trust_anchor = true;
                if !entry.trust_stores.contains(&store) {
                    entry.trust_stores.push(store);
                }
            }
            entry.locations.push(observation.location.clone());
            let previous = by_spki
                .entry(info.spki_sha256.clone())
                .or_insert_with(|| info.fingerprint.clone());
            // Prefer pairing a key with a CA certificate's entry only when nothing else is known.
            if *previous != info.fingerprint && !info.is_ca {
                *previous = info.fingerprint.clone();
            }
            // A JAR's signer chain is inventory: signed code stays valid past the signer's
            // expiry when it was timestamped, so expiry and self-signing say nothing here.
            if *encoding != crate::detect::CertEncoding::JarSignature {
                certificate_findings(
                    info,
                    *encoding,
                    &observation.location,
                    context,
                    &mut removed,
                    &mut findings,
                );
            }
        }
    }
    removed.findings(&mut findings);

    // What each key's owner says, and the keys that public packages publish (their verified,
    // unchanged files): the image's own "known public keys".
    let ownerships: Vec<Option<Ownership>> = observations
        .iter()
        .map(|observation| {
            matches!(observation.artifact, Artifact::Key { .. }).then(|| {
                Ownership::of(
                    &observation.location,
                    observation.package_directory.as_deref(),
                    context,
                )
            })
        })
        .collect();
    let mut published: HashMap<String, Published> = HashMap::new();
    for (observation, ownership) in observations.iter().zip(&ownerships) {
        if let (Artifact::Key { info, .. }, Some(Ownership::Public(owner))) =
            (&observation.artifact, ownership)
        {
            // Named by its first path in sort order, whatever order the layers came in.
            let path = observation.location.display_path();
            match published.get_mut(&info.fingerprint) {
                Some(entry) if entry.path <= path => {}
                Some(entry) => *entry = Published::in_image(owner, path),
                None => {
                    published.insert(info.fingerprint.clone(), Published::in_image(owner, path));
                }
            }
        }
    }

    for (observation, ownership) in observations.into_iter().zip(ownerships) {
        let location = &observation.location;
        match observation.artifact {
            Artifact::Certificate { .. } => {}
            Artifact::Key { info, keystore } => {
                let paired = info
                    .spki_sha256
                    .as_ref()
                    .and_then(|spki| by_spki.get(spki))
                    .and_then(|fingerprint| certificates.get_mut(fingerprint));
                let certificate = paired.map(|cert| {
                    cert.private_key_in_image = true;
                    (
                        cert.info.fingerprint.clone(),
                        cert.info.subject.clone(),
                        cert.info.is_ca,
                    )
                });
                let ownership = ownership.unwrap_or_else(|| {
                    Ownership::of(location, observation.package_directory.as_deref(), context)
                });
                key_findings(
                    &info,
                    keystore,
                    certificate.as_ref(),
                    location,
                    (
                        &ownership,
                        published
                            .get(&info.fingerprint)
                            .cloned()
                            .or_else(|| Published::listed(&info.fingerprint))
                            .as_ref(),
                    ),
                    &mut findings,
                );
                let entry = keys
                    .entry(info.fingerprint.clone())
                    .or_insert_with(|| KeyEntry {
                        info: info.clone(),
                        keystore,
                        certificate: certificate
                            .as_ref()
                            .map(|(fingerprint, _, _)| fingerprint.clone()),
                        locations: Vec::new(),
                    });
                entry.locations.push(location.clone());
            }
            Artifact::RevocationList => inventory.revocation_lists.push(location.clone()),
            Artifact::InertPem { label, reason } => inventory.inert_pem.push(InertPemEntry {
                label,
                reason,
                location: location.clone(),
            }),
            Artifact::SshCertificate { certificate } => {
                let now = u64::try_from(context.now).unwrap_or(0);
                let status = if now < certificate.valid_after {
                    Status::NotYetValid
                } else if now >= certificate.valid_before {
                    Status::Expired
                } else {
                    Status::Valid
                };
                inventory.ssh_certificates.push(SshCertificateEntry {
                    certificate: *certificate,
                    status,
                    location: location.clone(),
                });
            }
            Artifact::CertificateRequest { subject } => {
                inventory
                    .certificate_requests
                    .push(CertificateRequestEntry {
                        subject,
                        location: location.clone(),
                    });
            }
            Artifact::Keystore {
                kind,
                password,
                entries,
            } => {
                if password == KeystorePassword::Unknown {
                    findings.push(finding(
                        Rule::KeystoreUnknownPassword,
                        format!("{} keystore could not be opened with the empty, default or configured passwords{}", kind.as_str(), history_note(location)),
                        location,
                        &location_fingerprint(Rule::KeystoreUnknownPassword, location),
                    ));
                }
                inventory.keystores.push(KeystoreEntry {
                    kind,
                    password,
                    entries,
                    location: location.clone(),
                });
            }
            Artifact::Unparseable { what, reason, kind } => {
                let rule = match kind {
                    UnparseableKind::Pem => Rule::PemUnparseable,
                    UnparseableKind::Der => Rule::DerUnparseable,
                    UnparseableKind::Keystore => Rule::KeystoreUnparseable,
                };
                findings.push(finding(
                    rule,
                    format!("{what} does not parse: {reason}"),
                    location,
                    &location_fingerprint(rule, location),
                ));
            }
            Artifact::LimitReached { reason } => {
                let rule = Rule::ScanIncomplete;
                findings.push(finding(
                    rule,
                    reason,
                    location,
                    &location_fingerprint(rule, location),
                ));
            }
        }
    }
    inventory.certificates = certificates.into_values().collect();
    inventory.keys = keys.into_values().collect();
    for certificate in &mut inventory.certificates {
        dedupe(&mut certificate.locations);
    }
    for key in &mut inventory.keys {
        dedupe(&mut key.locations);
    }
    let mut findings = once_per_place(findings);
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.rule.cmp(&b.rule))
            .then_with(|| a.location.cmp(&b.location))
    });
    (findings, inventory)
}

/// Identical findings (same rule, object, place and message: one key written 13 times into a
/// test-vector file) become one, with their number in `occurrences`.
fn once_per_place(findings: Vec<Finding>) -> Vec<Finding> {
    let mut index: HashMap<(Rule, String, Location, String), usize> = HashMap::new();
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for finding in findings {
        let key = (
            finding.rule,
            finding.fingerprint.clone(),
            finding.location.clone(),
            finding.message.clone(),
        );
        match index.get(&key) {
            Some(&at) => out[at].occurrences += 1,
            None => {
                index.insert(key, out.len());
                out.push(finding);
            }
        }
    }
    out
}

/// Keeps the first of each location, in order.
fn dedupe(locations: &mut Vec<Location>) {
    let mut seen = std::collections::HashSet::new();
    locations.retain(|location| seen.insert(location.clone()));
}

pub(super) fn location_fingerprint(rule: Rule, location: &Location) -> String {
    crate::keys::sha256_fingerprint(format!("{}|{}", rule.id(), location.display_path()).as_bytes())
}
