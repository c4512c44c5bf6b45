//! Trust stores: which paths hold the system's and runtimes' trust anchors, and whether an
//! anchor is in Mozilla's root program (the list compiled into `webpki-roots`).
//!
//! A certificate in a trust store is a trust anchor: it goes to the inventory and raises no
//! expiry noise, but a root Mozilla does not include is how a corporate or malicious root
//! shows up. This module does not modify trust stores (that is `inject`).

use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::OnceLock;

/// Path patterns of trust stores, with the store's name.
const STORES: &[(&str, &str)] = &[
    ("/etc/ssl/certs/java/cacerts", "java-cacerts"),
    ("/etc/ssl/certs/", "debian-alpine-certs"),
    ("/usr/share/ca-certificates/", "debian-ca-certificates"),
    ("/usr/local/share/ca-certificates/", "debian-local-anchors"),
    ("/etc/ssl/cert.pem", "alpine-openssl-bundle"),
    ("/etc/ssl/ca-bundle.pem", "suse-bundle"),
    ("/etc/pki/ca-trust/", "rhel-ca-trust"),
    ("/etc/pki/tls/certs/ca-bundle", "rhel-tls-bundle"),
    ("/etc/pki/tls/cert.pem", "rhel-tls-bundle"),
    ("/etc/pki/java/cacerts", "java-cacerts"),
    ("/usr/share/pki/ca-trust-source/", "rhel-ca-trust"),
    ("/usr/share/pki/trust/", "suse-trust"),
    ("/var/lib/ca-certificates/", "suse-ca-certificates"),
    ("/etc/ca-certificates/", "ca-certificates"),
];

/// The trust store a path belongs to, if any.
pub fn store_of(path: &str) -> Option<&'static str> {
    if path.ends_with("/certifi/cacert.pem") {
        return Some("python-certifi");
    }
    if path.ends_with("/lib/security/cacerts") {
        return Some("java-cacerts");
    }
    STORES
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix) || *prefix == path)
        .map(|(_, name)| *name)
}

fn mozilla_spki_hashes() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        webpki_roots::TLS_SERVER_ROOTS
            .iter()
            .map(|anchor| {
                // webpki-roots stores the SPKI without its outer SEQUENCE header; put it back so
                // the hash equals the certificate's `spki_sha256`.
                let content = anchor.subject_public_key_info.as_ref();
                let mut der = vec![0x30];
                der.extend(der_length(content.len()));
                der.extend_from_slice(content);
                hex::encode(Sha256::digest(&der))
            })
            .collect()
    })
}

/// The DER encoding of a length.
pub(crate) fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// Whether a certificate's key is one of Mozilla's trusted roots.
pub fn in_mozilla_roots(spki_sha256: &str) -> bool {
    mozilla_spki_hashes().contains(spki_sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_distro_and_runtime_stores() {
        assert_eq!(
            store_of("/etc/ssl/certs/ca-certificates.crt"),
            Some("debian-alpine-certs")
        );
        assert_eq!(
            store_of("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"),
            Some("rhel-ca-trust")
        );
        assert_eq!(
            store_of("/usr/lib/python3/site-packages/certifi/cacert.pem"),
            Some("python-certifi")
        );
        assert_eq!(
            store_of("/usr/lib/jvm/java-17/lib/security/cacerts"),
            Some("java-cacerts")
        );
        assert_eq!(store_of("/etc/ssl/cert.pem"), Some("alpine-openssl-bundle"));
        assert_eq!(store_of("/app/certs/server.pem"), None);
        assert_eq!(store_of("/etc/ssl/private/key.pem"), None);
    }

    #[test]
    fn mozilla_set_is_loaded_and_lengths_encode() {
        assert!(mozilla_spki_hashes().len() > 100);
        assert_eq!(der_length(0x7f), vec![0x7f]);
        assert_eq!(der_length(0x100), vec![0x82, 0x01, 0x00]);
    }
}
