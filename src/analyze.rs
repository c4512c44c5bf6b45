//! Turns raw detections into an inventory and findings: pairs keys with certificates, tells
//! trust anchors from leaf identities, and judges validity against a fixed `now`.
//!
//! Pure and deterministic: the same observations and `now` give the same output. Severity
//! overrides and exceptions belong to `policy`, not here.

use crate::detect::{Artifact, CertEncoding, KeystoreKind, KeystorePassword, UnparseableKind};
use crate::finding::{Finding, Location, Rule};
use crate::keys::KeyInfo;
use crate::packages::{
    self, Integrity, Owner,
    generated::{self, Generated},
};
use crate::truststore::Standing;
use crate::x509::{self, CertInfo};
use serde::{Deserialize, Serialize};
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
}

/// A PKCS#10 request found in the image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertificateRequestEntry {
    pub subject: String,
    pub location: Location,
}

fn status(info: &CertInfo, context: &Context) -> (Status, i64) {
    let days_left = (info.not_after_unix - context.now).div_euclid(86_400);
    let status = if context.now > info.not_after_unix {
        Status::Expired
    } else if context.now < info.not_before_unix {
        Status::NotYetValid
    } else if info.not_after_unix - context.now <= context.expiry_warn_days * 86_400 {
        Status::Expiring
    } else {
        Status::Valid
    };
    (status, days_left)
}

fn is_anchor(location: &Location, encoding: CertEncoding) -> Option<String> {
    if encoding == CertEncoding::TrustedPem {
        return Some("openssl-trusted-certificate".into());
    }
    location
        .path
        .as_deref()
        .and_then(crate::truststore::store_of)
        .map(str::to_string)
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
                    locations: Vec::new(),
                });
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
            certificate_findings(
                info,
                *encoding,
                &observation.location,
                context,
                &mut findings,
            );
        }
    }

    for observation in observations {
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
                let ownership =
                    Ownership::of(location, observation.package_directory.as_deref(), context);
                key_findings(
                    &info,
                    keystore,
                    certificate.as_ref(),
                    location,
                    &ownership,
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
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.rule.cmp(&b.rule))
            .then_with(|| a.location.cmp(&b.location))
    });
    (findings, inventory)
}

fn location_fingerprint(rule: Rule, location: &Location) -> String {
    crate::keys::sha256_fingerprint(format!("{}|{}", rule.id(), location.display_path()).as_bytes())
}

fn certificate_findings(
    info: &CertInfo,
    encoding: CertEncoding,
    location: &Location,
    context: &Context,
    out: &mut Vec<Finding>,
) {
    // A certificate that only survives in history is inventory, not a live problem.
    if !location.in_final_image {
        return;
    }
    let subject = &info.subject;
    let push = |out: &mut Vec<Finding>, rule: Rule, message: String| {
        out.push(finding(rule, message, location, &info.fingerprint))
    };
    if is_anchor(location, encoding).is_some() {
        match crate::truststore::mozilla_standing(&info.spki_sha256) {
            Standing::Current => {}
            Standing::Removed => push(
                out,
                Rule::RemovedTrustAnchor,
                format!(
                    "trust anchor `{subject}` was removed from Mozilla's root program (the CA bundle is out of date)"
                ),
            ),
            Standing::Unknown => push(
                out,
                Rule::UnknownTrustAnchor,
                format!("trust anchor `{subject}` is not in Mozilla's root program"),
            ),
        }
        if x509::is_weak_key(info) {
            push(
                out,
                Rule::WeakKey,
                format!(
                    "trust anchor `{subject}` has a weak {} key",
                    key_description(info)
                ),
            );
        }
        return;
    }
    let (status, days_left) = status(info, context);
    match status {
        Status::Expired => push(
            out,
            Rule::CertExpired,
            format!(
                "`{subject}` expired on {} ({} days ago)",
                info.not_after, -days_left
            ),
        ),
        Status::NotYetValid => push(
            out,
            Rule::CertNotYetValid,
            format!("`{subject}` is not valid until {}", info.not_before),
        ),
        Status::Expiring => push(
            out,
            Rule::CertExpiring,
            format!(
                "`{subject}` expires on {} (in {days_left} days)",
                info.not_after
            ),
        ),
        Status::Valid => {}
    }
    if x509::is_weak_key(info) {
        push(
            out,
            Rule::WeakKey,
            format!("`{subject}` has a weak {} key", key_description(info)),
        );
    }
    if x509::is_weak_signature(&info.signature_algorithm) {
        push(
            out,
            Rule::WeakSignature,
            format!("`{subject}` is signed with {}", info.signature_algorithm),
        );
    }
    if info.self_signed && !info.is_ca {
        push(
            out,
            Rule::SelfSignedLeaf,
            format!("`{subject}` is a self-signed certificate that is not a CA"),
        );
    }
}

fn key_description(info: &CertInfo) -> String {
    match (info.key_bits, &info.curve) {
        (_, Some(curve)) => format!("{} {curve}", info.key_algorithm.to_uppercase()),
        (Some(bits), None) => format!("{} {bits}-bit", info.key_algorithm.to_uppercase()),
        (None, None) => info.key_algorithm.to_uppercase(),
    }
}

fn describe_key(info: &KeyInfo) -> String {
    if info.algorithm == "unknown" {
        return String::new();
    }
    let mut text = info.algorithm.to_uppercase();
    if let Some(curve) = &info.curve {
        text.push_str(&format!(" {curve}"));
    } else if let Some(bits) = info.bits {
        text.push_str(&format!(" {bits}-bit"));
    }
    text.push(' ');
    text
}

/// What a key's owner says about it.
enum Ownership {
    /// Unchanged in a public package: every copy of the package holds it.
    Public(Owner),
    /// Written by a package's installer while the image was built.
    Generated(&'static Generated),
    /// The rule stands; this says why the owner does not make it public.
    Note(String),
}

impl Ownership {
    fn of(location: &Location, package_directory: Option<&str>, context: &Context) -> Self {
        let path = location.path.as_deref().unwrap_or_default();
        let Some(owner) = &location.owner else {
            if let Some(generated) = generated::generator(path) {
                return Self::Generated(generated);
            }
            return Self::Note(match package_directory {
                Some(package) => format!(
                    "; it is in the directory of package {package} but in no package's file list"
                ),
                None => String::new(),
            });
        };
        let package = format!(
            "{} package {} {}",
            owner.ecosystem.as_str(),
            owner.name,
            owner.version
        );
        Self::Note(match owner.integrity {
            Integrity::Modified => format!(
                "; the file differs from what {package} installed: changed after installation"
            ),
            Integrity::Unrecorded => format!(
                "; {package} records no checksum for it, so it cannot be shown to be the package's"
            ),
            Integrity::Verified if packages::is_public(owner, &context.public_origins) => {
                return Self::Public(owner.clone());
            }
            Integrity::Verified => format!(
                "; {package} comes from {}, not a public distribution: a private package may carry a production key",
                owner.origin.as_deref().unwrap_or("an unknown origin")
            ),
        })
    }
}

fn key_findings(
    info: &KeyInfo,
    keystore: Option<KeystoreKind>,
    certificate: Option<&(String, String, bool)>,
    location: &Location,
    ownership: &Ownership,
    out: &mut Vec<Finding>,
) {
    let key = describe_key(info);
    match ownership {
        Ownership::Public(owner) => {
            let message = format!(
                "{key}private key ships unchanged in {} package {} {}: public test material, not a secret of this image{}",
                owner.ecosystem.as_str(),
                owner.name,
                owner.version,
                history_note(location)
            );
            out.push(finding(
                Rule::PackageKey,
                message,
                location,
                &info.fingerprint,
            ));
            return;
        }
        Ownership::Generated(generated) => {
            let message = format!(
                "{key}private key at the path where {}'s install script generates it while the image is built: every container started from this image shares it; {}, or use `ocicert inject --enroll`{}",
                generated.package,
                generated.fix,
                history_note(location)
            );
            out.push(finding(
                Rule::BuildGeneratedKey,
                message,
                location,
                &info.fingerprint,
            ));
            return;
        }
        Ownership::Note(_) => {}
    }
    let note = match ownership {
        Ownership::Note(why) => format!("{why}{}", history_note(location)),
        _ => history_note(location).to_string(),
    };
    let (rule, message) = match (keystore, certificate) {
        (Some(kind), Some((_, subject, _))) => (
            Rule::KeystorePrivateKey,
            format!(
                "{} keystore holds the {key}private key of `{subject}`{note}",
                kind.as_str()
            ),
        ),
        (Some(kind), None) => (
            Rule::KeystorePrivateKey,
            format!("{} keystore holds a {key}private key{note}", kind.as_str()),
        ),
        (None, Some((_, subject, true))) => (
            Rule::CaPrivateKey,
            format!("{key}private key of CA `{subject}` ships in the image{note}"),
        ),
        (None, Some((_, subject, false))) if !info.encrypted => (
            Rule::IdentityKeyPair,
            format!("{key}private key ships with its certificate `{subject}`{note}"),
        ),
        (None, _) if info.encrypted => (
            Rule::PrivateKeyEncrypted,
            format!(
                "passphrase-protected {key}private key ({}){note}",
                info.format.as_str()
            ),
        ),
        (None, _) => (
            Rule::PrivateKey,
            format!(
                "unencrypted {key}private key ({}){note}",
                info.format.as_str()
            ),
        ),
    };
    out.push(finding(rule, message, location, &info.fingerprint));
}
