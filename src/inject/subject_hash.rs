//! OpenSSL's subject-name hash (`X509_NAME_hash`, what `openssl x509 -subject_hash` prints and
//! `openssl rehash` names `/etc/ssl/certs/<hash>.0` after).
//!
//! Hand-written because no crate exposes it: it is SHA-1 over OpenSSL's *canonical* name
//! encoding (string values converted to UTF-8, trimmed, inner whitespace collapsed, ASCII
//! lower-cased, re-tagged UTF8String; each RDN a DER SET, with no outer SEQUENCE), first four
//! bytes read little-endian. Follows `x509_name_canon` and `asn1_string_canon` in OpenSSL's
//! `crypto/x509/x_name.c`.

use sha1::{Digest, Sha1};
use x509_parser::prelude::{FromDer, X509Certificate};

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(crate::truststore::der_length(content.len()));
    out.extend_from_slice(content);
    out
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Converts a string value to UTF-8 the way `ASN1_STRING_to_UTF8` does; `None` for types that
/// OpenSSL does not canonicalise.
fn to_utf8(tag: u32, data: &[u8]) -> Option<Vec<u8>> {
    Some(match tag {
        12 => data.to_vec(),
        19 | 22 | 26 | 20 => data
            .iter()
            .flat_map(|b| char::from(*b).to_string().into_bytes())
            .collect(),
        30 => {
            let units: Vec<u16> = data
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            char::decode_utf16(units)
                .map(|c| c.unwrap_or('\u{fffd}'))
                .collect::<String>()
                .into_bytes()
        }
        28 => data
            .chunks(4)
            .filter(|c| c.len() == 4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .map(|u| char::from_u32(u).unwrap_or('\u{fffd}'))
            .collect::<String>()
            .into_bytes(),
        _ => return None,
    })
}

/// `asn1_string_canon`: trim, collapse inner whitespace to one space, lower-case ASCII.
fn canonicalize(value: &[u8]) -> Vec<u8> {
    let start = value
        .iter()
        .position(|b| !is_space(*b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_space(*b))
        .map_or(start, |i| i + 1);
    let mut out = Vec::with_capacity(end - start);
    let mut index = start;
    while index < end {
        let byte = value[index];
        if !byte.is_ascii() {
            out.push(byte);
            index += 1;
        } else if is_space(byte) {
            out.push(b' ');
            while index < end && is_space(value[index]) {
                index += 1;
            }
        } else {
            out.push(byte.to_ascii_lowercase());
            index += 1;
        }
    }
    out
}

/// The canonical encoding of a certificate's subject.
fn canonical_subject(cert: &X509Certificate<'_>) -> Vec<u8> {
    let mut encoded = Vec::new();
    for rdn in cert.subject().iter() {
        let mut members: Vec<Vec<u8>> = rdn
            .iter()
            .map(|ava| {
                let oid = ava.attr_type().as_bytes();
                let value = ava.attr_value();
                let tag = value.tag().0;
                let value_der = match to_utf8(tag, value.data) {
                    Some(utf8) => tlv(0x0c, &canonicalize(&utf8)),
                    None => tlv(
                        value
                            .header
                            .raw_tag()
                            .and_then(|t| t.first().copied())
                            .unwrap_or(tag as u8),
                        value.data,
                    ),
                };
                let mut sequence = tlv(0x06, oid);
                sequence.extend(value_der);
                tlv(0x30, &sequence)
            })
            .collect();
        members.sort();
        encoded.extend(tlv(0x31, &members.concat()));
    }
    encoded
}

/// `X509_NAME_hash` of the certificate's subject, as 8 lowercase hex digits.
pub fn subject_hash(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let digest = Sha1::digest(canonical_subject(&cert));
    Some(format!(
        "{:08x}",
        u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalisation_matches_openssl_rules() {
        assert_eq!(canonicalize(b"  Mixed \t  CASE  name "), b"mixed case name");
        assert_eq!(canonicalize(b"   "), b"");
        assert_eq!(canonicalize("Ünï Code".as_bytes()), "Ünï code".as_bytes());
    }

    /// Every certificate fixture, against `openssl x509 -subject_hash` itself.
    #[test]
    fn agrees_with_openssl_on_every_fixture_and_on_odd_names() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("odd.pem");
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout"])
            .arg(dir.path().join("odd.key"))
            .arg("-out")
            .arg(&odd)
            .args(["-days", "1", "-utf8", "-subj", "/C=DE/O=  Ünïcode   GmbH /OU=Team A+CN=  Mixed\tCase   Root  /emailAddress=Admin@Example.TEST"])
            .status()
            .expect("openssl is installed");
        assert!(status.success());
        let mut files = vec![odd];
        for name in [
            "root-ca.pem",
            "intermediate.pem",
            "leaf.pem",
            "expired.pem",
            "rsa1024-weak.pem",
            "self-signed-leaf.pem",
        ] {
            files.push(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("fixtures/certs")
                    .join(name),
            );
        }
        for file in files {
            let output = std::process::Command::new("openssl")
                .args(["x509", "-noout", "-subject_hash", "-in"])
                .arg(&file)
                .output()
                .unwrap();
            let expected = String::from_utf8_lossy(&output.stdout).trim().to_string();
            let pem = fs_err::read(&file).unwrap();
            let der = crate::detect::pem::blocks(&pem).remove(0).body.unwrap();
            assert_eq!(
                subject_hash(&der).as_deref(),
                Some(expected.as_str()),
                "{}",
                file.display()
            );
        }
    }
}
