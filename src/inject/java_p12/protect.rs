//! Protecting new PKCS#12 content the way the store protects its own: encryption with the
//! store's scheme and iteration count (PBES2, or PKCS#12's RC2-40 and 3DES PBEs) and the MAC
//! with the store's digest, iteration count and salt length. Salts and IVs are derived from the
//! content, so the same injection gives the same bytes.

use super::{DATA, ENCRYPTED_DATA, any, asn1, unsupported};
use crate::inject::java::Error;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::encrypted_data::EncryptedData;
use cms::enveloped_data::EncryptedContentInfo;
use pkcs5::der::asn1::{ObjectIdentifier, OctetString};
use pkcs5::der::{Any, Decode, Encode};
use pkcs12::pbe_params::Pkcs12PbeParams;
use pkcs12::{DigestInfo, MacData, kdf};
use sha2::Digest as _;

const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");

/// `len` bytes derived from `data`: salts and IVs are fixed by what they protect, so the same
/// injection gives the same layer (and an IV never repeats for different contents).
fn derived(label: &str, data: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u32;
    while out.len() < len {
        let mut hasher = sha2::Sha256::new();
        hasher.update(label.as_bytes());
        hasher.update(counter.to_be_bytes());
        hasher.update(data);
        out.extend_from_slice(&hasher.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// An encryptedData ContentInfo with the store's own scheme and iteration count.
pub(super) fn encrypted(
    algorithm: &pkcs12::cms::cert::x509::spki::AlgorithmIdentifierOwned,
    password: &str,
    contents: &[u8],
) -> Result<ContentInfo, Error> {
    let params = algorithm
        .parameters
        .as_ref()
        .ok_or_else(|| unsupported("encryption parameters are missing".into()))?
        .to_der()
        .map_err(asn1("encryption parameters"))?;
    let (parameters, ciphertext) = if algorithm.oid == PBES2 {
        pbes2(&params, password, contents)?
    } else {
        pkcs12_pbe(algorithm.oid, &params, password, contents)?
    };
    let data = EncryptedData {
        version: CmsVersion::V0,
        enc_content_info: EncryptedContentInfo {
            content_type: DATA,
            content_enc_alg: pkcs12::cms::cert::x509::spki::AlgorithmIdentifierOwned {
                oid: algorithm.oid,
                parameters: Some(parameters),
            },
            encrypted_content: Some(OctetString::new(ciphertext).map_err(asn1("ciphertext"))?),
        },
        unprotected_attrs: None,
    };
    Ok(ContentInfo {
        content_type: ENCRYPTED_DATA,
        content: any(&data)?,
    })
}

fn pbes2(params: &[u8], password: &str, contents: &[u8]) -> Result<(Any, Vec<u8>), Error> {
    use pkcs5::pbes2::{EncryptionScheme, Kdf, Parameters};
    let mut parameters = Parameters::from_der(params).map_err(asn1("PBES2 parameters"))?;
    match &mut parameters.kdf {
        Kdf::Pbkdf2(kdf) => {
            let salt = derived("pbes2 salt", contents, kdf.salt.as_ref().len());
            kdf.salt = salt.as_slice().try_into().map_err(asn1("PBES2 salt"))?;
        }
        Kdf::Scrypt(kdf) => {
            let salt = derived("pbes2 salt", contents, kdf.salt.as_ref().len());
            kdf.salt = salt.as_slice().try_into().map_err(asn1("PBES2 salt"))?;
        }
        _ => {
            return Err(unsupported(
                "the store's certificates use a PBES2 key derivation ocicert cannot write".into(),
            ));
        }
    }
    match &mut parameters.encryption {
        EncryptionScheme::Aes128Cbc { iv }
        | EncryptionScheme::Aes192Cbc { iv }
        | EncryptionScheme::Aes256Cbc { iv } => {
            let fresh = derived("pbes2 iv", contents, iv.len());
            iv.copy_from_slice(&fresh);
        }
        other => {
            return Err(unsupported(format!(
                "the store's certificates use PBES2 with {:?}, which ocicert cannot write",
                other.oid()
            )));
        }
    }
    let ciphertext = parameters
        .encrypt(password.as_bytes(), contents)
        .map_err(|e| unsupported(format!("PBES2 encryption: {e}")))?;
    Ok((any(&parameters)?, ciphertext))
}

/// PKCS#12's own PBE schemes (RFC 7292 appendix C), the certificate protection of keytool before
/// JDK 12 (40-bit RC2) and of `openssl pkcs12 -legacy` (3DES for keys, RC2 for certificates).
fn pkcs12_pbe(
    oid: ObjectIdentifier,
    params: &[u8],
    password: &str,
    contents: &[u8],
) -> Result<(Any, Vec<u8>), Error> {
    use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
    let old = Pkcs12PbeParams::from_der(params).map_err(asn1("PBE parameters"))?;
    let salt = derived("pkcs12 pbe salt", contents, old.salt.as_bytes().len());
    let key_len = match oid {
        pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC => 24,
        pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC => 5,
        other => {
            return Err(unsupported(format!(
                "the store's certificates are encrypted with {other}, which ocicert cannot write"
            )));
        }
    };
    let derive = |kind, len| {
        kdf::derive_key_utf8::<sha1_11::Sha1>(password, &salt, kind, old.iterations, len)
            .map_err(asn1("key derivation"))
    };
    let key = derive(kdf::Pkcs12KeyType::EncryptionKey, key_len)?;
    let iv = derive(kdf::Pkcs12KeyType::Iv, 8)?;
    let bad_length = |_| unsupported("PBE key length".into());
    let ciphertext = if key_len == 24 {
        cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(bad_length)?
            .encrypt_padded_vec::<Pkcs7>(contents)
    } else {
        cbc::Encryptor::<rc2::Rc2>::new_from_slices(&key, &iv)
            .map_err(bad_length)?
            .encrypt_padded_vec::<Pkcs7>(contents)
    };
    let params = Pkcs12PbeParams {
        salt: OctetString::new(salt).map_err(asn1("PBE salt"))?,
        iterations: old.iterations,
    };
    Ok((any(&params)?, ciphertext))
}

/// The store's MAC over the new contents: same digest, iteration count and salt length.
pub(super) fn mac(old: &MacData, password: &str, data: &[u8]) -> Result<MacData, Error> {
    let salt = derived("pkcs12 mac salt", data, old.mac_salt.as_bytes().len());
    let iterations = old.iterations;
    let digest = crate::p12::mac_digest(old.mac.algorithm.oid, password, &salt, iterations, data)
        .map_err(unsupported)?;
    Ok(MacData {
        mac: DigestInfo {
            algorithm: old.mac.algorithm.clone(),
            digest: OctetString::new(digest).map_err(asn1("MAC"))?,
        },
        mac_salt: OctetString::new(salt).map_err(asn1("MAC salt"))?,
        iterations,
    })
}
