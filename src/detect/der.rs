//! Binary DER files: certificates, PKCS#1/PKCS#8/SEC1/DSA keys, PKCS#10 requests and PKCS#12,
//! recognised by ASN.1 structure rather than by file extension.
//!
//! Only inputs whose outer SEQUENCE spans the whole file (allowing trailing whitespace) are
//! tried, so arbitrary binaries that start with 0x30 cost a few byte comparisons. Extensions are
//! used only to decide whether a non-parsing file deserves a `der-unparseable` note.

use super::{Artifact, CertEncoding, UnparseableKind, has_extension};
use crate::keys::{self, KeyFormat};
use x509_parser::prelude::FromDer;

const CRYPTO_EXTENSIONS: &[&str] = &["der", "cer", "crt", "key", "pk8", "p8", "csr", "req"];

/// Length of the outer DER element (header plus content), if the header is well formed.
pub fn outer_len(data: &[u8]) -> Option<usize> {
    let first = *data.get(1)?;
    if first < 0x80 {
        return Some(2 + first as usize);
    }
    let count = (first & 0x7f) as usize;
    if count == 0 || count > 4 {
        return None;
    }
    let bytes = data.get(2..2 + count)?;
    let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
    Some(2 + count + len)
}

/// How a file's outer DER element relates to the file.
pub enum Span<'a> {
    /// The element spans the whole file (trailing whitespace or NULs allowed).
    Whole(&'a [u8]),
    /// The header is not DER, or the element is longer than the file.
    Broken(&'static str),
    /// Bytes follow the element: an arbitrary binary that happens to start with 0x30.
    Trailing,
}

/// Where the outer DER element of `data` ends.
pub fn span(data: &[u8]) -> Span<'_> {
    let Some(total) = outer_len(data) else {
        return Span::Broken("the DER header is malformed");
    };
    if total > data.len() {
        return Span::Broken("the file is shorter than its DER header says (truncated)");
    }
    if !data[total..]
        .iter()
        .all(|b| b.is_ascii_whitespace() || *b == 0)
    {
        return Span::Trailing;
    }
    Span::Whole(&data[..total])
}

/// DER files: only files that start with a SEQUENCE tag are tried.
pub const DETECTOR: super::Detector = super::Detector {
    name: "der",
    detect: |input| {
        if input.data.first() == Some(&0x30) {
            detect(input.data, input.lower_name)
        } else {
            Vec::new()
        }
    },
    examples: &[EXAMPLES],
};

pub const EXAMPLES: super::Examples = super::Examples {
    module: "der",
    positive: &[
        ("certs/leaf.der", &["cert:Der:CN=app.example.test"]),
        (
            "certs/blob-self-signed.bin",
            &["cert:Der:CN=selfsigned.example.test"],
        ),
        ("keys/rsa-pkcs1.der", &["key:PKCS#1:rsa"]),
        ("keys/ec-sec1-nopub.der", &["key:SEC1:ec"]),
        ("keys/ed25519.der", &["key:PKCS#8:ed25519"]),
        ("keys/dsa-pkcs8.der", &["key:PKCS#8:dsa"]),
        ("certs/revoked.crl", &["crl"]),
        (
            "keys/pkcs8-schemes/v1-pbe-sha1-3des.der",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PKCS#12 PBE SHA1-3DES:opened-with-well-known default",
            ],
        ),
    ],
    negative: &[
        // Starts like a DER SEQUENCE spanning the file, then claims a 2 GiB INTEGER.
        ("negative/random.bin", &[]),
        // A DigestInfo: shaped like an EncryptedPrivateKeyInfo, with a digest for a scheme.
        ("negative/digest-info.bin", &[]),
    ],
};

/// Detects DER structures in a file that starts with a SEQUENCE tag. A PKCS#12 file is left to
/// the `pkcs12` detector.
pub fn detect(data: &[u8], lower_name: &str) -> Vec<Artifact> {
    let crypto_name = has_extension(lower_name, CRYPTO_EXTENSIONS);
    let der = match span(data) {
        Span::Whole(der) => der,
        Span::Broken(reason) => return unparseable(crypto_name, reason),
        Span::Trailing => return Vec::new(),
    };
    if let Ok(info) = crate::x509::analyze(der) {
        return vec![Artifact::Certificate {
            info: Box::new(info),
            encoding: CertEncoding::Der,
        }];
    }
    if super::pkcs12::looks_like(der) || super::pkcs7::looks_like(der) {
        return Vec::new();
    }
    let key = |info| {
        vec![Artifact::Key {
            info,
            keystore: None,
        }]
    };
    if let Ok(info) = keys::pkcs8(der) {
        return key(info);
    }
    if let Ok(info) = keys::encrypted_pkcs8(der, &super::key_passphrases(), false) {
        return key(info);
    }
    if let Ok(info) = keys::rsa_pkcs1(der, KeyFormat::Pkcs1) {
        return key(info);
    }
    if let Ok(info) = keys::ec_sec1(der, None, KeyFormat::Sec1) {
        return key(info);
    }
    if let Ok(info) = keys::dsa_traditional(der) {
        return key(info);
    }
    if let Some(subject) = csr_subject(der) {
        return vec![Artifact::CertificateRequest { subject }];
    }
    if has_extension(lower_name, &["crl"]) {
        // Counted, not parsed: a revocation list is neither a secret nor an identity.
        return vec![Artifact::RevocationList];
    }
    unparseable(
        crypto_name,
        "it is neither a certificate, a key nor a keystore",
    )
}

fn unparseable(crypto_name: bool, reason: &str) -> Vec<Artifact> {
    if !crypto_name {
        return Vec::new();
    }
    vec![Artifact::Unparseable {
        what: "DER certificate or key".into(),
        reason: reason.into(),
        kind: UnparseableKind::Der,
    }]
}

/// The subject of a PKCS#10 certificate request.
pub fn csr_subject(der: &[u8]) -> Option<String> {
    x509_parser::certification_request::X509CertificationRequest::from_der(der)
        .ok()
        .map(|(_, csr)| csr.certification_request_info.subject.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_length_handles_short_and_long_forms() {
        assert_eq!(outer_len(&[0x30, 0x03, 1, 2, 3]), Some(5));
        assert_eq!(outer_len(&[0x30, 0x82, 0x01, 0x00]), Some(260));
        assert_eq!(outer_len(&[0x30, 0x80]), None);
        assert_eq!(outer_len(&[0x30]), None);
    }

    #[test]
    fn truncated_der_with_a_key_name_is_reported() {
        let found = detect(&[0x30, 0x82, 0x10, 0x00, 1, 2], "server.key");
        assert!(matches!(
            &found[..],
            [Artifact::Unparseable {
                kind: UnparseableKind::Der,
                ..
            }]
        ));
        assert!(detect(&[0x30, 0x82, 0x10, 0x00, 1, 2], "blob.bin").is_empty());
    }
}
