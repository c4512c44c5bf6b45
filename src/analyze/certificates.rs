//! Certificate findings: validity against `now`, weak keys and signatures, self-signed leaves,
//! and trust anchors against Mozilla's root program. It does not pair keys with certificates:
//! that is the parent's.

use super::{Context, Status, finding};
use crate::detect::CertEncoding;
use crate::finding::{Finding, Location, Rule};
use crate::truststore::Standing;
use crate::x509::{self, CertInfo};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn status(info: &CertInfo, context: &Context) -> (Status, i64) {
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

pub(super) fn is_anchor(location: &Location, encoding: CertEncoding) -> Option<String> {
    if encoding == CertEncoding::TrustedPem {
        return Some("openssl-trusted-certificate".into());
    }
    location
        .path
        .as_deref()
        .and_then(crate::truststore::store_of)
        .map(str::to_string)
}

/// Roots Mozilla has removed, gathered per store so that each store gets one finding.
#[derive(Default)]
pub(super) struct RemovedAnchors {
    /// (store, directory, layer) → the first location, the files, and every root's subject.
    /// One bundle file is a store; so is an anchor directory with a file per root.
    stores: BTreeMap<(String, String, Option<usize>), Store>,
}

struct Store {
    location: Location,
    files: BTreeSet<String>,
    subjects: BTreeSet<String>,
}

impl RemovedAnchors {
    fn add(&mut self, store: String, location: &Location, subject: &str) {
        let path = location.path.clone().unwrap_or_default();
        let directory = path
            .rsplit_once('/')
            .map_or(String::new(), |(dir, _)| dir.to_string());
        let entry = self
            .stores
            .entry((store, directory, location.layer_index))
            .or_insert_with(|| Store {
                location: location.clone(),
                files: BTreeSet::new(),
                subjects: BTreeSet::new(),
            });
        entry.files.insert(path);
        entry.subjects.insert(subject.to_string());
    }

    /// One `removed-trust-anchor` finding per store, naming how many roots and a few of them.
    pub(super) fn findings(self, out: &mut Vec<Finding>) {
        for ((_, directory, _), store) in self.stores {
            let mut location = store.location;
            if store.files.len() > 1 {
                location.path = Some(directory);
                location.archive_path = None;
            }
            let place = location.display_path();
            let count = store.subjects.len();
            let named: Vec<String> = store
                .subjects
                .iter()
                .take(3)
                .map(|s| format!("`{s}`"))
                .collect();
            let more = if count > named.len() {
                format!(" and {} more", count - named.len())
            } else {
                String::new()
            };
            let roots = if count == 1 { "root" } else { "roots" };
            let message = format!(
                "`{place}` holds {count} {roots} Mozilla has since removed from its root program (the CA bundle is out of date): {}{more}",
                named.join(", ")
            );
            let fingerprint = super::location_fingerprint(Rule::RemovedTrustAnchor, &location);
            out.push(finding(
                Rule::RemovedTrustAnchor,
                message,
                &location,
                &fingerprint,
            ));
        }
    }
}

/// Whether the policy trusts this root (`trusted_roots`: certificate or SPKI fingerprint).
fn trusted(info: &CertInfo, context: &Context) -> bool {
    let spki = format!("sha256:{}", info.spki_sha256);
    context
        .trusted_roots
        .iter()
        .any(|root| *root == info.fingerprint || *root == spki)
}

pub(super) fn certificate_findings(
    info: &CertInfo,
    encoding: CertEncoding,
    location: &Location,
    context: &Context,
    removed: &mut RemovedAnchors,
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
    if let Some(store) = is_anchor(location, encoding) {
        if context.injected_cas.contains(&info.fingerprint) {
            push(
                out,
                Rule::InjectedTrustAnchor,
                format!(
                    "trust anchor `{subject}` was added by `ocicert inject` (the image's `{}` label names it)",
                    crate::truststore::INJECTED_CAS_LABEL
                ),
            );
        } else if !trusted(info, context) {
            match crate::truststore::mozilla_standing(&info.spki_sha256) {
                Standing::Current => {}
                Standing::Removed => removed.add(store, location, subject),
                Standing::Unknown => push(
                    out,
                    Rule::UnknownTrustAnchor,
                    format!(
                        "trust anchor `{subject}` is not in Mozilla's root program, now or ever"
                    ),
                ),
            }
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
