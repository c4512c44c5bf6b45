//! Certificate findings: validity against `now`, weak keys and signatures, self-signed leaves,
//! and trust anchors against Mozilla's root program. It does not pair keys with certificates:
//! that is the parent's.

use super::{Context, Status, finding};
use crate::detect::CertEncoding;
use crate::finding::{Finding, Location, Rule};
use crate::truststore::Standing;
use crate::x509::{self, CertInfo};

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

pub(super) fn certificate_findings(
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
