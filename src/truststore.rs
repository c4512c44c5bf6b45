//! Trust stores: which paths hold the system's and runtimes' trust anchors (`CATALOGUE`, the one
//! list that scanning and `inject` both use), and whether an
//! anchor is in Mozilla's root program (the certificates compiled into `webpki-root-certs`),
//! was in it once (`mozilla-history.txt`: an out-of-date distro bundle), or never was.
//!
//! A certificate in a trust store is a trust anchor: it goes to the inventory and raises no
//! expiry noise, but a root Mozilla does not include is how a corporate or malicious root
//! shows up. This module does not modify trust stores (that is `inject`).

use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::OnceLock;

/// The system bundle `inject` creates in an image that has none (and points `SSL_CERT_FILE` at).
pub const CREATED_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The image label in which `ocicert inject` lists the fingerprints of the CAs it added.
pub const INJECTED_CAS_LABEL: &str = "dev.ocicert.injected-cas";

/// How a catalogue entry matches a path.
#[derive(Clone, Copy, Debug)]
pub enum Pattern {
    Exact(&'static str),
    /// Every path under a directory, or starting with a file-name prefix.
    Prefix(&'static str),
    /// Any path ending so, wherever a runtime is installed.
    Suffix(&'static str),
}

impl Pattern {
    fn matches(self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => path == exact,
            Self::Prefix(prefix) => path.starts_with(prefix) || path == prefix,
            Self::Suffix(suffix) => path.ends_with(suffix),
        }
    }
}

/// What `inject` does with a store of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A PEM bundle that OpenSSL, GnuTLS, NSS or Go read on some distribution: the CAs are
    /// appended (and the first one is created when an image has none).
    SystemBundle,
    /// A Java `cacerts` (JKS, JCEKS or PKCS#12): trusted entries are added.
    JavaStore,
    /// Python `certifi`'s bundle: the CAs are appended.
    Certifi,
    /// Scanned for anchors only.
    ScanOnly,
}

/// One trust store: where it is, its name in reports, and its role in injection.
#[derive(Clone, Copy, Debug)]
pub struct Store {
    pub pattern: Pattern,
    pub name: &'static str,
    pub role: Role,
}

const fn store(pattern: Pattern, name: &'static str, role: Role) -> Store {
    Store {
        pattern,
        name,
        role,
    }
}

/// Every trust store ocicert knows, for scanning (the first match names a path's store) and
/// for injection (system bundles are tried in this order). Adding a trust store is one row.
pub const CATALOGUE: &[Store] = {
    use Pattern::{Exact, Prefix, Suffix};
    use Role::{Certifi, JavaStore, ScanOnly, SystemBundle};
    &[
        store(Suffix("/certifi/cacert.pem"), "python-certifi", Certifi),
        store(Suffix("/lib/security/cacerts"), "java-cacerts", JavaStore),
        store(
            Exact("/etc/ssl/certs/java/cacerts"),
            "java-cacerts",
            JavaStore,
        ),
        store(
            Exact("/etc/pki/ca-trust/extracted/java/cacerts"),
            "rhel-ca-trust",
            JavaStore,
        ),
        store(Exact("/etc/pki/java/cacerts"), "java-cacerts", JavaStore),
        store(Exact(CREATED_BUNDLE), "debian-alpine-certs", SystemBundle),
        store(
            Exact("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"),
            "rhel-ca-trust",
            SystemBundle,
        ),
        store(
            Exact("/etc/pki/tls/certs/ca-bundle.crt"),
            "rhel-tls-bundle",
            SystemBundle,
        ),
        store(
            Exact("/etc/pki/tls/cert.pem"),
            "rhel-tls-bundle",
            SystemBundle,
        ),
        store(
            Exact("/etc/ssl/cert.pem"),
            "alpine-openssl-bundle",
            SystemBundle,
        ),
        store(Exact("/etc/ssl/ca-bundle.pem"), "suse-bundle", SystemBundle),
        store(
            Exact("/var/lib/ca-certificates/ca-bundle.pem"),
            "suse-ca-certificates",
            SystemBundle,
        ),
        store(Prefix("/etc/ssl/certs/"), "debian-alpine-certs", ScanOnly),
        store(
            Prefix("/usr/share/ca-certificates/"),
            "debian-ca-certificates",
            ScanOnly,
        ),
        store(
            Prefix("/usr/local/share/ca-certificates/"),
            "debian-local-anchors",
            ScanOnly,
        ),
        store(Prefix("/etc/pki/ca-trust/"), "rhel-ca-trust", ScanOnly),
        store(
            Prefix("/etc/pki/tls/certs/ca-bundle"),
            "rhel-tls-bundle",
            ScanOnly,
        ),
        store(
            Prefix("/usr/share/pki/ca-trust-source/"),
            "rhel-ca-trust",
            ScanOnly,
        ),
        store(Prefix("/usr/share/pki/trust/"), "suse-trust", ScanOnly),
        store(
            Prefix("/var/lib/ca-certificates/"),
            "suse-ca-certificates",
            ScanOnly,
        ),
        store(Prefix("/etc/ca-certificates/"), "ca-certificates", ScanOnly),
    ]
};

/// The catalogue entry a path belongs to, if any.
pub fn catalogue_entry(path: &str) -> Option<&'static Store> {
    CATALOGUE.iter().find(|store| store.pattern.matches(path))
}

/// The trust store a path belongs to, if any.
pub fn store_of(path: &str) -> Option<&'static str> {
    catalogue_entry(path).map(|store| store.name)
}

/// Whether `inject` treats `path` as a store of `role`.
pub fn has_role(path: &str, role: Role) -> bool {
    catalogue_entry(path).is_some_and(|store| store.role == role)
}

/// The system bundles, in the order injection tries them.
pub fn system_bundles() -> impl Iterator<Item = &'static str> {
    CATALOGUE.iter().filter_map(|store| match store {
        Store {
            pattern: Pattern::Exact(path),
            role: Role::SystemBundle,
            ..
        } => Some(*path),
        _ => None,
    })
}

/// SPKI SHA-256 of every root in Mozilla's current TLS root store.
fn mozilla_spki_hashes() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .filter_map(|cert| {
                let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
                Some(hex::encode(Sha256::digest(parsed.public_key().raw)))
            })
            .collect()
    })
}

/// SPKI SHA-256 of every root Mozilla's store has held: generated by
/// `scripts/gen-mozilla-history.py` from every certifi release on PyPI (each one's `cacert.pem`
/// is a snapshot of Mozilla's store, back to 2011) and Debian 12's ca-certificates.
fn mozilla_history() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        include_str!("mozilla-history.txt")
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_whitespace().next())
            .collect()
    })
}

/// Where an anchor stands with Mozilla's root program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// In the current root store.
    Current,
    /// In an earlier snapshot, since removed (distrusted or expired).
    Removed,
    /// Never seen in Mozilla's store: a private, corporate or unknown root.
    Unknown,
}

/// Whether an anchor (by SPKI SHA-256) is in Mozilla's root program, was, or never was.
pub fn mozilla_standing(spki_sha256: &str) -> Standing {
    if mozilla_spki_hashes().contains(spki_sha256) {
        Standing::Current
    } else if mozilla_history().contains(spki_sha256) {
        Standing::Removed
    } else {
        Standing::Unknown
    }
}

/// Mozilla's current TLS roots as one PEM bundle, each preceded by a `# subject` line.
pub fn mozilla_bundle_pem() -> String {
    use base64::Engine as _;
    let mut out = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let der = cert.as_ref();
        if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(der) {
            out.push_str(&format!("# {}\n", parsed.subject()));
        }
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        for line in text.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// The DER encoding of a length.
pub fn der_length(len: usize) -> Vec<u8> {
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
    mozilla_standing(spki_sha256) == Standing::Current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_gives_injection_its_stores_in_order() {
        let bundles: Vec<&str> = system_bundles().collect();
        assert_eq!(bundles[0], CREATED_BUNDLE);
        assert!(bundles.contains(&"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"));
        assert_eq!(bundles.len(), 7);
        for java in [
            "/usr/lib/jvm/java-17-openjdk-amd64/lib/security/cacerts",
            "/etc/ssl/certs/java/cacerts",
            "/etc/pki/ca-trust/extracted/java/cacerts",
            "/etc/pki/java/cacerts",
        ] {
            assert!(has_role(java, Role::JavaStore), "{java}");
        }
        assert!(has_role(
            "/usr/lib/python3/dist-packages/pip/_vendor/certifi/cacert.pem",
            Role::Certifi
        ));
        assert!(!has_role(
            "/etc/ssl/certs/ca-certificates.crt",
            Role::JavaStore
        ));
        assert!(has_role("/etc/ssl/certs/1234abcd.0", Role::ScanOnly));
        // Every store injection edits is also one that scanning reports.
        for store in CATALOGUE.iter().filter(|s| s.role != Role::ScanOnly) {
            if let Pattern::Exact(path) = store.pattern {
                assert_eq!(store_of(path), Some(store.name), "{path}");
            }
        }
    }

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
    fn anchors_are_current_removed_or_unknown() {
        let current: Vec<&String> = mozilla_spki_hashes().iter().collect();
        assert_eq!(mozilla_standing(current[0]), Standing::Current);
        // TrustCor RootCert CA-1: in Debian 12's bundle, distrusted by Mozilla in 2022.
        let trustcor = include_str!("mozilla-history.txt")
            .lines()
            .find(|l| l.contains("CN=TrustCor RootCert CA-1"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap();
        assert_eq!(mozilla_standing(trustcor), Standing::Removed);
        assert_eq!(mozilla_standing(&"ab".repeat(32)), Standing::Unknown);
    }

    #[test]
    fn the_bundle_holds_exactly_the_current_roots() {
        let bundle = mozilla_bundle_pem();
        let hashes: HashSet<String> = crate::detect::pem::blocks(bundle.as_bytes())
            .iter()
            .filter_map(|block| {
                let der = block.body.as_ref().ok()?;
                let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
                Some(hex::encode(Sha256::digest(cert.public_key().raw)))
            })
            .collect();
        assert_eq!(&hashes, mozilla_spki_hashes());
    }

    #[test]
    fn mozilla_set_is_loaded_and_lengths_encode() {
        assert!(mozilla_spki_hashes().len() > 100);
        assert_eq!(der_length(0x7f), vec![0x7f]);
        assert_eq!(der_length(0x100), vec![0x82, 0x01, 0x00]);
    }
}
