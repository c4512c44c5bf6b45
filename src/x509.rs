//! Certificate analysis with x509-parser: names, validity, keys, usage and fingerprints.
//!
//! `analyze` turns DER bytes into a printable `CertInfo`. Judging a certificate (expired, weak,
//! untrusted) happens in `analyze.rs`, against a `--now` chosen by the caller; this module never
//! reads the clock.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// Public facts about one certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// Subject DN in RFC 4514 form.
    pub subject: String,
    /// Issuer DN in RFC 4514 form.
    pub issuer: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Subject alternative names (`DNS:…`, `IP:…`, `email:…`, `URI:…`).
    pub sans: Vec<String>,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Start of validity, Unix seconds.
    pub not_before_unix: i64,
    /// End of validity, Unix seconds.
    pub not_after_unix: i64,
    /// `rsa`, `ec`, `ed25519`, `dsa`, …
    pub key_algorithm: String,
    /// Public key size in bits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_bits: Option<u32>,
    /// Named curve for EC keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
    /// Signature algorithm short name, for example `sha256WithRSAEncryption`.
    pub signature_algorithm: String,
    /// basicConstraints CA flag.
    pub is_ca: bool,
    /// keyUsage bits by name.
    pub key_usage: Vec<String>,
    /// extendedKeyUsage purposes by name.
    pub extended_key_usage: Vec<String>,
    /// SHA-256 of the whole DER certificate, `sha256:` + hex.
    pub fingerprint: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex.
    pub spki_sha256: String,
    /// Subject equals issuer and the key identifiers, where present, agree.
    pub self_signed: bool,
}

/// Why bytes are not a certificate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The DER does not parse as an X.509 certificate.
    #[error("not a valid X.509 certificate: {reason}")]
    Parse { reason: String },
}

/// Parses one DER certificate. Trailing bytes after the certificate are allowed (OpenSSL's
/// `TRUSTED CERTIFICATE` form appends trust settings).
pub fn analyze(der: &[u8]) -> Result<CertInfo, Error> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| Error::Parse {
        reason: e.to_string(),
    })?;
    let consumed = &der[..der.len() - rest.len()];
    Ok(describe(&cert, consumed))
}

/// Length of the certificate at the start of `der`, if it parses as one.
pub fn certificate_len(der: &[u8]) -> Option<usize> {
    X509Certificate::from_der(der)
        .ok()
        .map(|(rest, _)| der.len() - rest.len())
}

fn describe(cert: &X509Certificate<'_>, der: &[u8]) -> CertInfo {
    let tbs = &cert.tbs_certificate;
    let registry = x509_parser::objects::oid_registry();
    let signature_oid = &cert.signature_algorithm.algorithm;
    let signature_algorithm = x509_parser::objects::oid2sn(signature_oid, registry)
        .map(str::to_string)
        .unwrap_or_else(|_| signature_oid.to_id_string());

    let spki = &tbs.subject_pki;
    let algorithm_oid = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .and_then(|oid| crate::keys::curve_name(&oid.to_id_string()))
        .map(|(name, _)| name.to_string());
    let (key_algorithm, key_bits) = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => ("rsa", Some(rsa.key_size() as u32)),
        Ok(PublicKey::EC(point)) => ("ec", Some(ec_bits(curve.as_deref(), point.key_size()))),
        Ok(PublicKey::DSA(y)) => ("dsa", Some(y.len() as u32 * 8)),
        Ok(PublicKey::GostR3410(_) | PublicKey::GostR3410_2012(_)) => ("gost", None),
        _ => match algorithm_oid.as_str() {
            "1.3.101.112" => ("ed25519", Some(256)),
            "1.3.101.113" => ("ed448", Some(456)),
            _ => ("unknown", None),
        },
    };

    let mut sans = Vec::new();
    let mut is_ca = false;
    let mut key_usage = Vec::new();
    let mut extended_key_usage = Vec::new();
    let mut subject_key_id = None;
    let mut authority_key_id = None;
    for extension in tbs.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                sans.extend(san.general_names.iter().filter_map(general_name));
            }
            ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
            ParsedExtension::KeyUsage(usage) => {
                key_usage = usage
                    .to_string()
                    .split(", ")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                let named = [
                    (eku.any, "any"),
                    (eku.server_auth, "serverAuth"),
                    (eku.client_auth, "clientAuth"),
                    (eku.code_signing, "codeSigning"),
                    (eku.email_protection, "emailProtection"),
                    (eku.time_stamping, "timeStamping"),
                    (eku.ocsp_signing, "OCSPSigning"),
                ];
                extended_key_usage = named
                    .iter()
                    .filter(|(set, _)| *set)
                    .map(|(_, name)| name.to_string())
                    .collect();
                extended_key_usage.extend(eku.other.iter().map(|oid| oid.to_id_string()));
            }
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
            }
            _ => {}
        }
    }
    let same_name = tbs.subject.as_raw() == tbs.issuer.as_raw();
    let ids_agree = match (&subject_key_id, &authority_key_id) {
        (Some(subject), Some(authority)) => subject == authority,
        _ => true,
    };

    CertInfo {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        serial: hex::encode(tbs.raw_serial()),
        sans,
        not_before: rfc3339(tbs.validity.not_before.timestamp()),
        not_after: rfc3339(tbs.validity.not_after.timestamp()),
        not_before_unix: tbs.validity.not_before.timestamp(),
        not_after_unix: tbs.validity.not_after.timestamp(),
        key_algorithm: key_algorithm.to_string(),
        key_bits,
        curve,
        signature_algorithm,
        is_ca,
        key_usage,
        extended_key_usage,
        fingerprint: format!("sha256:{}", hex::encode(Sha256::digest(der))),
        spki_sha256: hex::encode(Sha256::digest(spki.raw)),
        self_signed: same_name && ids_agree,
    }
}

fn ec_bits(curve: Option<&str>, point_bits: usize) -> u32 {
    curve
        .and_then(|name| match name {
            "P-256" | "secp256k1" | "brainpoolP256r1" => Some(256),
            "P-384" | "brainpoolP384r1" => Some(384),
            "P-521" => Some(521),
            "P-192" => Some(192),
            "P-224" => Some(224),
            _ => None,
        })
        .unwrap_or(point_bits as u32)
}

fn general_name(name: &GeneralName<'_>) -> Option<String> {
    Some(match name {
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::RFC822Name(email) => format!("email:{email}"),
        GeneralName::URI(uri) => format!("URI:{uri}"),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => format!(
                "IP:{}",
                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).ok()?)
            ),
            16 => format!(
                "IP:{}",
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).ok()?)
            ),
            _ => return None,
        },
        _ => return None,
    })
}

/// Formats Unix seconds as RFC 3339 UTC; out-of-range values fall back to the number.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Whether the signature algorithm is MD2, MD5 or SHA-1 based.
pub fn is_weak_signature(signature_algorithm: &str) -> bool {
    let name = signature_algorithm.to_ascii_lowercase();
    name.contains("md5")
        || name.contains("md2")
        || name.contains("sha1")
        || name.contains("sha-1")
        || matches!(
            signature_algorithm,
            "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" | "1.2.840.10040.4.3"
        )
}

/// Whether the public key is too weak: RSA < 2048, any DSA, EC < 256.
pub fn is_weak_key(info: &CertInfo) -> bool {
    match (info.key_algorithm.as_str(), info.key_bits) {
        ("rsa", Some(bits)) => bits < 2048,
        ("dsa", _) => true,
        ("ec", Some(bits)) => bits < 256,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/certs")
            .join(name);
        let text = fs_err::read(path).unwrap_or_default();
        crate::detect::pem::blocks(&text)
            .into_iter()
            .next()
            .and_then(|block| block.body.ok())
            .unwrap_or_default()
    }

    #[test]
    fn leaf_facts_match_how_the_fixture_was_made() {
        let info = analyze(&pem_fixture("leaf.pem")).unwrap();
        assert!(
            info.subject.contains("CN=app.example.test"),
            "{}",
            info.subject
        );
        assert!(
            info.issuer.contains("ocicert Test Intermediate"),
            "{}",
            info.issuer
        );
        assert!(info.sans.contains(&"DNS:www.example.test".to_string()));
        assert!(info.sans.contains(&"IP:127.0.0.1".to_string()));
        assert_eq!(info.key_algorithm, "ec");
        assert_eq!(info.curve.as_deref(), Some("P-256"));
        assert!(!info.is_ca);
        assert!(!info.self_signed);
        assert!(info.extended_key_usage.contains(&"serverAuth".to_string()));
        assert_eq!(info.not_before, "2025-01-01T00:00:00Z");
    }

    #[test]
    fn root_is_a_self_signed_ca_and_weak_ones_are_weak() {
        let root = analyze(&pem_fixture("root-ca.pem")).unwrap();
        assert!(root.is_ca && root.self_signed);
        assert_eq!(root.key_bits, Some(2048));
        assert!(!is_weak_key(&root));
        let weak = analyze(&pem_fixture("rsa1024-weak.pem")).unwrap();
        assert!(is_weak_key(&weak));
        let sha1 = analyze(&pem_fixture("sha1-signed.pem")).unwrap();
        assert!(
            is_weak_signature(&sha1.signature_algorithm),
            "{}",
            sha1.signature_algorithm
        );
        assert!(!is_weak_signature(&root.signature_algorithm));
    }

    #[test]
    fn garbage_asn1_is_an_error() {
        assert!(analyze(b"\x30\x82\x01\x00garbage").is_err());
        assert!(analyze(&[]).is_err());
        assert_eq!(certificate_len(b"\x30\x03\x02\x01\x00"), None);
    }
}
