//! Java keystores: JKS (magic `FEEDFEED`) and JCEKS (magic `CECECECE`), read with `crate::jks`.
//!
//! It lists trusted-certificate entries (parsed) and private-key entries, whose certificate
//! chain tells the key's algorithm and SPKI. It does not decrypt keys nor check the store's
//! integrity digest: an entry list needs no password.

use super::{Artifact, CertEncoding, KeystoreKind, KeystorePassword, UnparseableKind};
use crate::jks;
use crate::keys::{KeyFormat, KeyInfo};

/// Lists a Java keystore, or `None` when the bytes do not start with a keystore magic.
pub fn detect(data: &[u8]) -> Option<Vec<Artifact>> {
    let kind = match jks::kind(data)? {
        jks::Kind::Jks => KeystoreKind::Jks,
        jks::Kind::Jceks => KeystoreKind::Jceks,
    };
    let store = match jks::parse(data) {
        Ok(store) => store,
        Err(reason) => {
            return Some(vec![Artifact::Unparseable {
                what: format!("{} keystore", kind.as_str()),
                reason: reason.to_string(),
                kind: UnparseableKind::Keystore,
            }]);
        }
    };
    let mut out = Vec::new();
    for entry in &store.entries {
        match entry {
            jks::Entry::PrivateKey {
                protected, chain, ..
            } => {
                let mut first = None;
                for der in chain {
                    if let Ok(info) = crate::x509::analyze(der) {
                        if first.is_none() {
                            first = Some(info.clone());
                        }
                        out.push(Artifact::Certificate {
                            info: Box::new(info),
                            encoding: CertEncoding::JavaKeystore,
                        });
                    }
                }
                out.push(Artifact::Key {
                    info: key_from_chain(first.as_ref(), protected),
                    keystore: Some(kind),
                });
            }
            jks::Entry::Trusted { der, .. } => match crate::x509::analyze(der) {
                Ok(info) => out.push(Artifact::Certificate {
                    info: Box::new(info),
                    encoding: CertEncoding::JavaKeystore,
                }),
                Err(e) => out.push(Artifact::Unparseable {
                    what: "keystore certificate entry".into(),
                    reason: e.to_string(),
                    kind: UnparseableKind::Keystore,
                }),
            },
            // Nothing after a JCEKS secret key can be located; what came before is listed.
            jks::Entry::Secret { .. } => {}
        }
    }
    match store.damaged {
        // What was listed before the damage is kept, as for any partly readable file.
        Some(reason) => out.push(Artifact::Unparseable {
            what: format!("{} keystore", kind.as_str()),
            reason: reason.to_string(),
            kind: UnparseableKind::Keystore,
        }),
        None => out.insert(
            0,
            Artifact::Keystore {
                kind,
                password: KeystorePassword::NotNeeded,
                entries: store.entries.len(),
            },
        ),
    }
    Some(out)
}

/// A keystore key is encrypted with the entry password; its public facts come from the first
/// certificate of its chain.
fn key_from_chain(first: Option<&crate::x509::CertInfo>, protected: &[u8]) -> KeyInfo {
    let mut info = crate::keys::encrypted(KeyFormat::JavaKeystore, "unknown", protected);
    if let Some(cert) = first {
        info.algorithm = cert.key_algorithm.clone();
        info.bits = cert.key_bits;
        info.curve = cert.curve.clone();
        info.spki_sha256 = Some(cert.spki_sha256.clone());
        info.fingerprint = format!("sha256:{}", cert.spki_sha256);
    }
    info
}

pub const DETECTOR: super::Detector = super::Detector {
    name: "jks",
    detect: |input| detect(input.data).unwrap_or_default(),
    examples: &[EXAMPLES],
};

pub const EXAMPLES: super::Examples = super::Examples {
    module: "jks",
    positive: &[(
        "certs/truststore.jks",
        &[
            "keystore:JKS:NotNeeded",
            "cert:JavaKeystore:CN=ocicert Test Root CA, O=ocicert tests",
            "cert:JavaKeystore:CN=ocicert Test Intermediate",
        ],
    )],
    negative: &[("negative/not-a-keystore.jks", &["unparseable:Keystore"])],
};
