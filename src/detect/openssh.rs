//! OpenSSH private keys (`openssh-key-v1`), parsed with the ssh-key crate.
//!
//! The public half of an OpenSSH key is stored in clear even when the private half is
//! encrypted, so every OpenSSH key gets its algorithm, size and a key-derived fingerprint. For
//! RSA, ECDSA and Ed25519 that fingerprint is the SPKI hash, the same one an X.509 certificate
//! for that key would have. It never decrypts anything.

use crate::keys::{self, Error, KeyFormat, KeyInfo};
use ssh_key::public::KeyData;

/// Analyses the decoded body of an `OPENSSH PRIVATE KEY` block.
pub fn analyze(body: &[u8]) -> Result<KeyInfo, Error> {
    let key = ssh_key::PrivateKey::from_bytes(body).map_err(|e| Error {
        format: KeyFormat::Openssh,
        reason: e.to_string(),
    })?;
    let mut info = from_public(key.public_key().key_data(), KeyFormat::Openssh);
    info.encrypted = key.is_encrypted();
    Ok(info)
}

/// Public facts of an SSH public key, shared with the PuTTY detector.
pub fn from_public(data: &KeyData, format: KeyFormat) -> KeyInfo {
    let algorithm = data.algorithm().as_str().to_string();
    let (bits, curve, spki) = match data {
        KeyData::Rsa(rsa) => {
            let modulus = rsa.n.as_positive_bytes().unwrap_or_default();
            let exponent = rsa.e.as_positive_bytes().unwrap_or_default();
            let spki = pkcs1::UintRef::new(modulus)
                .and_then(|modulus| {
                    let public_exponent = pkcs1::UintRef::new(exponent)?;
                    pkcs8::der::Encode::to_der(&pkcs1::RsaPublicKey {
                        modulus,
                        public_exponent,
                    })
                })
                .ok()
                .and_then(|public| keys::spki_hash(keys::OID_RSA, None, &public));
            (Some(keys::bits_of(modulus)), None, spki)
        }
        KeyData::Ecdsa(ecdsa) => {
            let (name, oid, bits) = match ecdsa.curve().as_str() {
                "nistp256" => ("P-256", "1.2.840.10045.3.1.7", 256),
                "nistp384" => ("P-384", "1.3.132.0.34", 384),
                _ => ("P-521", "1.3.132.0.35", 521),
            };
            let spki = keys::spki_hash(keys::OID_EC, Some(oid), ecdsa.as_sec1_bytes());
            (Some(bits), Some(name), spki)
        }
        KeyData::Ed25519(ed) => (
            Some(256),
            None,
            keys::spki_hash(keys::OID_ED25519, None, &ed.0),
        ),
        _ => (None, None, None),
    };
    let fallback = data.fingerprint(ssh_key::HashAlg::Sha256);
    let mut info = keys::with_spki(format, &algorithm, bits, curve, spki, fallback.as_bytes());
    if info.spki_sha256.is_none() {
        info.fingerprint = format!("sha256:{}", hex::encode(fallback.as_bytes()));
    }
    info
}

/// Read through the PEM detector (`OPENSSH PRIVATE KEY` blocks).
pub const EXAMPLES: super::Examples = super::Examples {
    module: "openssh",
    positive: &[
        ("keys/openssh-ed25519", &["key:OpenSSH:ssh-ed25519"]),
        (
            "keys/openssh-rsa-encrypted",
            &["key:OpenSSH:ssh-rsa:encrypted"],
        ),
    ],
    negative: &[("negative/ssh-public.pub", &[])],
};
