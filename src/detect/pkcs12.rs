//! PKCS#12 (`.p12`/`.pfx`) keystores, opened with p12-keystore by trying the empty password, the
//! well-known defaults and the user's configured passwords.
//!
//! A keystore that none of them opens is still reported (`keystore-unknown-password`): its
//! presence is a finding even when its contents stay unknown. The password that worked is never
//! reported, only which kind of password it was.

use super::{Artifact, CertEncoding, KeystoreKind, KeystorePassword, Options, UnparseableKind};
use p12_keystore::Pkcs12Archive;

/// Whether `der` starts like a PFX: SEQUENCE { INTEGER 3, SEQUENCE { … } }.
pub fn looks_like(der: &[u8]) -> bool {
    let content_start = match der.get(1) {
        Some(b) if *b < 0x80 => 2,
        Some(b) => 2 + (b & 0x7f) as usize,
        None => return false,
    };
    der.get(content_start..content_start + 4) == Some(&[0x02, 0x01, 0x03, 0x30])
}

/// PKCS#12 files: a DER PFX anywhere, and a `.p12`/`.pfx` name on bytes that are neither DER nor
/// a Java keystore (keytool writes JKS under those names too), which is noted as unparseable.
pub const DETECTOR: super::Detector = super::Detector {
    name: "pkcs12",
    detect: |input| {
        let data = input.data;
        if data.first() == Some(&0x30) {
            return match super::der::span(data) {
                super::der::Span::Whole(der) if looks_like(der) => detect(der, input.options),
                _ => Vec::new(),
            };
        }
        if crate::jks::kind(data).is_some()
            || !super::has_extension(input.lower_name, &["p12", "pfx"])
        {
            return Vec::new();
        }
        vec![Artifact::Unparseable {
            what: "PKCS#12 keystore".into(),
            reason: if data.is_empty() {
                "the file is empty".into()
            } else {
                "it is not DER".into()
            },
            kind: UnparseableKind::Keystore,
        }]
    },
    examples: &[EXAMPLES],
};

pub const EXAMPLES: super::Examples = super::Examples {
    module: "pkcs12",
    positive: &[
        (
            "certs/bundle.p12",
            &[
                "keystore:PKCS#12:WellKnownDefault",
                "cert:Pkcs12:CN=app.example.test",
                "cert:Pkcs12:CN=ocicert Test Intermediate",
                "key:PKCS#12:ec:in-PKCS#12",
            ],
        ),
        ("certs/bundle-secret.p12", &["keystore:PKCS#12:Unknown"]),
        // keytool's store under a product's default password (Jetty's).
        (
            "certs/jetty-default.p12",
            &[
                "keystore:PKCS#12:WellKnownDefault",
                "cert:Pkcs12:O=ocicert tests, CN=jetty.example.test",
                "key:PKCS#12:ec:in-PKCS#12",
            ],
        ),
        // No MAC: nothing to guess (plain bags), or bags under the empty password.
        (
            "certs/bundle-nomac-plain.p12",
            &[
                "keystore:PKCS#12:Empty",
                "cert:Pkcs12:CN=app.example.test",
                "cert:Pkcs12:CN=ocicert Test Intermediate",
                "key:PKCS#12:ec:in-PKCS#12",
            ],
        ),
        (
            "certs/bundle-nomac-empty.p12",
            &[
                "keystore:PKCS#12:Empty",
                "cert:Pkcs12:CN=app.example.test",
                "cert:Pkcs12:CN=ocicert Test Intermediate",
                "key:PKCS#12:ec:in-PKCS#12",
            ],
        ),
        // Key bags under PBES1 (which p12-keystore cannot decrypt), and no certificate.
        (
            "keys/pkcs8-schemes/p12-keypbe-pbe-md5-des.p12",
            &[
                "keystore:PKCS#12:WellKnownDefault",
                "key:PKCS#12:rsa:in-PKCS#12",
            ],
        ),
        (
            "keys/pkcs8-schemes/p12-keypbe-pbe-sha1-rc2-64.p12",
            &[
                "keystore:PKCS#12:WellKnownDefault",
                "key:PKCS#12:rsa:in-PKCS#12",
            ],
        ),
    ],
    negative: &[("negative/empty.p12", &["unparseable:Keystore"])],
};

/// Lists the certificates and keys of a PKCS#12 file, within `p12::WORK_BUDGET` of key
/// derivation; what the budget leaves out is a `LimitReached`.
pub fn detect(der: &[u8], options: &Options) -> Vec<Artifact> {
    let mut candidates = vec![("", KeystorePassword::Empty)];
    candidates.extend(
        super::DEFAULT_KEYSTORE_PASSWORDS
            .iter()
            .map(|p| (*p, KeystorePassword::WellKnownDefault)),
    );
    candidates.extend(
        options
            .keystore_passwords
            .iter()
            .map(|p| (p.as_str(), KeystorePassword::Configured)),
    );
    let passwords: Vec<&str> = candidates.iter().map(|(p, _)| *p).collect();
    let unparseable = |reason: String| Artifact::Unparseable {
        what: "PKCS#12 keystore".into(),
        reason,
        kind: UnparseableKind::Keystore,
    };
    let opened = match crate::p12::open(der, &passwords) {
        crate::p12::Outcome::Opened(opened) => opened,
        crate::p12::Outcome::UnknownPassword { limit } => {
            let mut out = vec![Artifact::Keystore {
                kind: KeystoreKind::Pkcs12,
                password: KeystorePassword::Unknown,
                entries: 0,
            }];
            out.extend(limit.map(|reason| Artifact::LimitReached { reason }));
            return out;
        }
        crate::p12::Outcome::Malformed(reason) => return vec![unparseable(reason)],
    };
    let (password, kind) = candidates[opened.password];
    let mut out = match Pkcs12Archive::from_pkcs12(&opened.store, password) {
        Ok(store) => contents(&store, kind),
        Err(e) => vec![unparseable(e.to_string())],
    };
    if opened.secret_bags > 0 {
        out.push(Artifact::LimitReached {
            reason: format!(
                "{} PKCS#12 secret bags were not opened (ocicert reads keys and certificates only)",
                opened.secret_bags
            ),
        });
    }
    out.extend(
        opened
            .skipped
            .into_iter()
            .map(|item| Artifact::LimitReached {
                reason: format!("PKCS#12 {item}"),
            }),
    );
    out
}

/// Every key and certificate bag of the store, linked to each other or not (p12-keystore's
/// `KeyStore` drops a key without a certificate, and a certificate bag it does not link).
fn contents(store: &Pkcs12Archive, password: KeystorePassword) -> Vec<Artifact> {
    let mut out = vec![Artifact::Keystore {
        kind: KeystoreKind::Pkcs12,
        password,
        entries: store.keys.len() + store.certs.len() + store.secrets.len(),
    }];
    for bag in &store.certs {
        if let Ok(info) = crate::x509::analyze(bag.cert.as_der()) {
            out.push(Artifact::Certificate {
                info: Box::new(info),
                encoding: CertEncoding::Pkcs12,
            });
        }
    }
    for bag in &store.keys {
        out.push(match crate::keys::pkcs8(bag.key.as_der()) {
            Ok(mut info) => {
                info.format = crate::keys::KeyFormat::Pkcs12;
                Artifact::Key {
                    info,
                    keystore: Some(KeystoreKind::Pkcs12),
                }
            }
            Err(e) => Artifact::Unparseable {
                what: "PKCS#12 key bag".into(),
                reason: e.reason,
                kind: UnparseableKind::Keystore,
            },
        });
    }
    out
}
