//! Key generation and the PKCS#10 request: the private key exists only in memory and, once
//! enrolled, in the 0600 key file.
//!
//! It does not talk to a CA and never formats key material for humans: [`Key`] has no `Debug`
//! that shows the key, and nothing here logs.

use ocicert_enroll_config::KeyType;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData as _, SanType};

use crate::der::San;

/// Why a key or CSR could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The crypto library refused.
    #[error("key generation failed")]
    Generate(#[source] rcgen::Error),
    /// RSA generation failed.
    #[error("RSA key generation failed")]
    Rsa(#[source] rsa::Error),
    /// RSA key encoding failed.
    #[error("RSA key encoding failed")]
    RsaEncode(#[source] rsa::pkcs8::Error),
    /// A SAN rcgen cannot encode (not IA5).
    #[error("SubjectAltName `{0}` cannot be encoded")]
    San(String),
    /// CSR serialization failed.
    #[error("building the certificate request failed")]
    Csr(#[source] rcgen::Error),
    /// The key file is not a PKCS#8 key this stub can read.
    #[error("the key file is not a readable PKCS#8 key")]
    Load(#[source] rcgen::Error),
}

/// A private key held in memory.
pub struct Key {
    pair: KeyPair,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("algorithm", &self.pair.algorithm())
            .finish_non_exhaustive()
    }
}

impl Key {
    /// A fresh key of `key_type`.
    pub fn generate(key_type: KeyType) -> Result<Self, Error> {
        let pair = match key_type {
            KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
            KeyType::Rsa2048 => return Self::generate_rsa(2048),
            KeyType::Rsa3072 => return Self::generate_rsa(3072),
        }
        .map_err(Error::Generate)?;
        Ok(Self { pair })
    }

    /// ring cannot generate RSA keys; the RustCrypto `rsa` crate does, and ring signs with them.
    fn generate_rsa(bits: usize) -> Result<Self, Error> {
        use rsa::pkcs8::EncodePrivateKey as _;
        let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits).map_err(Error::Rsa)?;
        let document = private.to_pkcs8_der().map_err(Error::RsaEncode)?;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(document.as_bytes().to_vec());
        let pair = KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)
            .map_err(Error::Generate)?;
        Ok(Self { pair })
    }

    /// Reads a PKCS#8 PEM key file's contents.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        KeyPair::from_pem(pem)
            .map(|pair| Self { pair })
            .map_err(Error::Load)
    }

    /// The SubjectPublicKeyInfo, DER.
    pub fn spki(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// PKCS#8 PEM, for the 0600 key file only.
    pub fn to_pem(&self) -> String {
        crate::der::pem_encode("PRIVATE KEY", &self.to_pkcs8_der())
    }

    /// PKCS#8 DER, for the key file and a TLS client identity only.
    ///
    /// ring writes Ed25519 keys as PKCS#8 v2 (RFC 5958, with the public key), which OpenSSL 3.0
    /// refuses to load; apps get the v1 form (RFC 8410 §7) instead, which ring also reads.
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        let der = self.pair.serialize_der();
        const V2_PREFIX: &[u8] = &[
            0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        if der.len() == 0x53 && der.starts_with(V2_PREFIX) {
            let mut v1 = vec![
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20,
            ];
            v1.extend_from_slice(&der[16..48]);
            return v1;
        }
        der
    }

    /// Reads PKCS#8 DER (a TLS client key).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        KeyPair::try_from(der)
            .map(|pair| Self { pair })
            .map_err(Error::Load)
    }

    /// A PKCS#10 request (DER) for `sans`, subject `CN=common_name`.
    pub fn csr(&self, common_name: Option<&str>, sans: &[San]) -> Result<Vec<u8>, Error> {
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        if let Some(common_name) = common_name {
            subject.push(DnType::CommonName, common_name);
        }
        params.distinguished_name = subject;
        params.subject_alt_names = sans
            .iter()
            .map(|san| {
                match san {
                    San::Dns(name) => name.clone().try_into().map(SanType::DnsName),
                    San::Uri(uri) => uri.clone().try_into().map(SanType::URI),
                    San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
                }
                .map_err(|_| Error::San(san.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let request = params.serialize_request(&self.pair).map_err(Error::Csr)?;
        Ok(request.der().to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_key_type_makes_a_csr_and_round_trips() {
        for key_type in [
            KeyType::EcdsaP256,
            KeyType::EcdsaP384,
            KeyType::Ed25519,
            KeyType::Rsa2048,
        ] {
            let key = Key::generate(key_type).unwrap();
            let csr = key
                .csr(Some("a.example"), &[San::Dns("a.example".into())])
                .unwrap();
            assert_eq!(csr[0], 0x30);
            let pem = key.to_pem();
            let back = Key::from_pem(&pem).unwrap();
            if key_type == KeyType::Ed25519 {
                assert_eq!(key.to_pkcs8_der().len(), 48, "Ed25519 files use PKCS#8 v1");
            }
            assert_eq!(back.spki(), key.spki(), "{key_type:?}");
            assert!(!format!("{key:?}").contains("BEGIN"));
        }
    }
}
