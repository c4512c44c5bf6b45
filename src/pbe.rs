//! Password-based encryption of private keys and PKCS#12 contents, by name, cost and
//! decryption: PBES2 (PKCS#5 v2, through pkcs5), PBES1 (PKCS#5 v1.5: MD2/MD5/SHA-1 with DES or
//! RC2) and PKCS#12's own PBEs (SHA-1 with 3DES, 2DES, RC2 or RC4). Shared by encrypted PKCS#8
//! keys (`keys`) and PKCS#12 stores (`p12`). It does not choose passwords or budgets.
//!
//! PBES1 is decrypted by hand (PBKDF1, then DES-CBC or RC2-CBC from the des and rc2 crates):
//! pkcs5 0.8 parses PBES1 parameters but answers `NoPbes1CryptSupport` to decrypting them. RC4
//! and MD2 are named, never decrypted: no maintained crate is in the tree for them.

use pkcs5::der::asn1::ObjectIdentifier;
use pkcs5::der::{Decode, Encode};
use pkcs12::cms::cert::x509::spki::AlgorithmIdentifierOwned;
use pkcs12::kdf;
use pkcs12::pbe_params::Pkcs12PbeParams;

/// The most memory one scrypt derivation may take (128·N·r bytes).
pub const MAX_SCRYPT_MEMORY: u64 = 64 << 20;

pub const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");

/// PBES1 schemes (RFC 8018 appendix A.3): (OID, digest, cipher).
const PBES1: &[(&str, &str, &str)] = &[
    ("1.2.840.113549.1.5.1", "MD2", "DES"),
    ("1.2.840.113549.1.5.4", "MD2", "RC2"),
    ("1.2.840.113549.1.5.3", "MD5", "DES"),
    ("1.2.840.113549.1.5.6", "MD5", "RC2"),
    ("1.2.840.113549.1.5.10", "SHA1", "DES"),
    ("1.2.840.113549.1.5.11", "SHA1", "RC2"),
];

/// PKCS#12 PBE schemes (RFC 7292 appendix C): (OID, cipher, key length in bytes).
const PKCS12_PBE: &[(&str, &str, usize)] = &[
    ("1.2.840.113549.1.12.1.1", "RC4-128", 16),
    ("1.2.840.113549.1.12.1.2", "RC4-40", 5),
    ("1.2.840.113549.1.12.1.3", "3DES", 24),
    ("1.2.840.113549.1.12.1.4", "2DES", 16),
    ("1.2.840.113549.1.12.1.5", "RC2-128", 16),
    ("1.2.840.113549.1.12.1.6", "RC2-40", 5),
];

fn pbes1(oid: ObjectIdentifier) -> Option<(&'static str, &'static str)> {
    PBES1
        .iter()
        .find(|(known, _, _)| ObjectIdentifier::new(known).is_ok_and(|k| k == oid))
        .map(|(_, digest, cipher)| (*digest, *cipher))
}

fn pkcs12_pbe(oid: ObjectIdentifier) -> Option<(&'static str, usize)> {
    PKCS12_PBE
        .iter()
        .find(|(known, _, _)| ObjectIdentifier::new(known).is_ok_and(|k| k == oid))
        .map(|(_, cipher, len)| (*cipher, *len))
}

/// A scheme's name ("PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC", "PBES1 MD5-DES", "PKCS#12 PBE
/// SHA1-3DES", or the OID of one ocicert does not know), and whether it is weak: DES, 2DES,
/// RC2, RC4, MD2, MD5, or a PRF of SHA-1 with few iterations are barely encryption.
pub fn describe(algorithm: &AlgorithmIdentifierOwned) -> (String, bool) {
    if let Some((digest, cipher)) = pbes1(algorithm.oid) {
        return (format!("PBES1 {digest}-{cipher}"), true);
    }
    if let Some((cipher, _)) = pkcs12_pbe(algorithm.oid) {
        return (format!("PKCS#12 PBE SHA1-{cipher}"), cipher != "3DES");
    }
    if algorithm.oid != PBES2 {
        return (format!("an unknown scheme ({})", algorithm.oid), false);
    }
    let Some(parameters) = parameters(algorithm)
        .ok()
        .and_then(|p| pkcs5::pbes2::Parameters::from_der(&p).ok())
    else {
        return ("PBES2 with parameters ocicert cannot read".into(), false);
    };
    use pkcs5::pbes2::{EncryptionScheme, Kdf, Pbkdf2Prf};
    let kdf = match &parameters.kdf {
        Kdf::Pbkdf2(kdf) => format!(
            "PBKDF2-{}",
            match kdf.prf {
                Pbkdf2Prf::HmacWithSha1 => "HMAC-SHA1",
                Pbkdf2Prf::HmacWithSha224 => "HMAC-SHA224",
                Pbkdf2Prf::HmacWithSha256 => "HMAC-SHA256",
                Pbkdf2Prf::HmacWithSha384 => "HMAC-SHA384",
                Pbkdf2Prf::HmacWithSha512 => "HMAC-SHA512",
                _ => "HMAC",
            }
        ),
        Kdf::Scrypt(_) => "scrypt".into(),
        _ => "an unknown KDF".into(),
    };
    let (cipher, weak) = match parameters.encryption {
        EncryptionScheme::Aes128Cbc { .. } => ("AES-128-CBC", false),
        EncryptionScheme::Aes192Cbc { .. } => ("AES-192-CBC", false),
        EncryptionScheme::Aes256Cbc { .. } => ("AES-256-CBC", false),
        EncryptionScheme::Aes128Gcm { .. } => ("AES-128-GCM", false),
        EncryptionScheme::Aes256Gcm { .. } => ("AES-256-GCM", false),
        EncryptionScheme::DesEde3Cbc { .. } => ("DES-EDE3-CBC", false),
        EncryptionScheme::DesCbc { .. } => ("DES-CBC", true),
        _ => ("an unknown cipher", false),
    };
    (format!("PBES2 {kdf} {cipher}"), weak)
}

/// The key-derivation work of `algorithm`, in PBKDF2 iterations (scrypt: N·r·p); an error for
/// schemes ocicert cannot decrypt and for scrypt over `MAX_SCRYPT_MEMORY`.
pub fn cost(algorithm: &AlgorithmIdentifierOwned) -> Result<u64, String> {
    let params = parameters(algorithm)?;
    if algorithm.oid == PBES2 {
        use pkcs5::pbes2::{Kdf, Parameters};
        let parameters = Parameters::from_der(&params).map_err(asn1("PBES2 parameters"))?;
        return match &parameters.kdf {
            Kdf::Pbkdf2(kdf) => Ok(u64::from(kdf.iteration_count)),
            Kdf::Scrypt(kdf) => {
                let (n, r, p) = (
                    kdf.cost_parameter,
                    u64::from(kdf.block_size),
                    u64::from(kdf.parallelization),
                );
                let memory = n.saturating_mul(r).saturating_mul(128);
                if memory > MAX_SCRYPT_MEMORY {
                    return Err(format!(
                        "scrypt with N={n}, r={r} needs {} MiB, over the {} MiB limit",
                        memory >> 20,
                        MAX_SCRYPT_MEMORY >> 20
                    ));
                }
                Ok(n.saturating_mul(r).saturating_mul(p))
            }
            _ => Err("a PBES2 key derivation ocicert does not know".into()),
        };
    }
    let decryptable = pkcs12_pbe(algorithm.oid)
        .is_some_and(|(cipher, _)| !cipher.starts_with("RC4"))
        || pbes1(algorithm.oid).is_some_and(|(digest, _)| digest != "MD2");
    if decryptable {
        let pbe = Pkcs12PbeParams::from_der(&params).map_err(asn1("PBE parameters"))?;
        let iterations =
            u64::try_from(pbe.iterations).map_err(|_| "a negative PBE iteration count")?;
        // Two derivations (key and IV), each of one or two digest blocks.
        return Ok(iterations.saturating_mul(3));
    }
    Err(format!(
        "encrypted with {}, which ocicert does not decrypt",
        describe(algorithm).0
    ))
}

fn parameters(algorithm: &AlgorithmIdentifierOwned) -> Result<Vec<u8>, String> {
    algorithm
        .parameters
        .as_ref()
        .ok_or("its encryption parameters are missing")?
        .to_der()
        .map_err(asn1("encryption parameters"))
}

fn asn1(what: &str) -> impl Fn(pkcs5::der::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Decrypts `ciphertext` (the caller has budgeted the derivation with `cost`).
pub fn decrypt(
    algorithm: &AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    password: &str,
) -> Result<Vec<u8>, String> {
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
    let params = parameters(algorithm)?;
    if algorithm.oid == PBES2 {
        let parameters =
            pkcs5::pbes2::Parameters::from_der(&params).map_err(asn1("PBES2 parameters"))?;
        return parameters
            .decrypt(password.as_bytes(), ciphertext)
            .map_err(|e| format!("PBES2 decryption failed: {e}"));
    }
    let failed = |_| "decryption failed (wrong password or corrupt data)".to_string();
    let bad_length = |_| "key length".to_string();
    // Both PBES1 and PKCS#12 PBE parameters are SEQUENCE { salt OCTET STRING, iterations }.
    let pbe = Pkcs12PbeParams::from_der(&params).map_err(asn1("PBE parameters"))?;
    if let Some((digest, cipher)) = pbes1(algorithm.oid) {
        let derived = pbkdf1(digest, password, pbe.salt.as_bytes(), pbe.iterations)?;
        let (key, iv) = derived.split_at(8);
        return if cipher == "DES" {
            cbc::Decryptor::<des::Des>::new_from_slices(key, iv)
                .map_err(bad_length)?
                .decrypt_padded_vec::<Pkcs7>(ciphertext)
                .map_err(failed)
        } else {
            // RC2 with a 64-bit effective key, as PBES1 specifies.
            use cbc::cipher::InnerIvInit as _;
            let rc2 = rc2::Rc2::new_with_eff_key_len(key, 64);
            cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(rc2, iv)
                .map_err(bad_length)?
                .decrypt_padded_vec::<Pkcs7>(ciphertext)
                .map_err(failed)
        };
    }
    let Some((cipher, key_len)) = pkcs12_pbe(algorithm.oid).filter(|(c, _)| !c.starts_with("RC4"))
    else {
        return Err(format!(
            "encrypted with {}, which ocicert does not decrypt",
            describe(algorithm).0
        ));
    };
    let derive = |kind, len| {
        kdf::derive_key_utf8::<sha1_11::Sha1>(
            password,
            pbe.salt.as_bytes(),
            kind,
            pbe.iterations,
            len,
        )
        .map_err(asn1("key derivation"))
    };
    let key = derive(kdf::Pkcs12KeyType::EncryptionKey, key_len)?;
    let iv = derive(kdf::Pkcs12KeyType::Iv, 8)?;
    match cipher {
        "3DES" => cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(bad_length)?
            .decrypt_padded_vec::<Pkcs7>(ciphertext)
            .map_err(failed),
        "2DES" => cbc::Decryptor::<des::TdesEde2>::new_from_slices(&key, &iv)
            .map_err(bad_length)?
            .decrypt_padded_vec::<Pkcs7>(ciphertext)
            .map_err(failed),
        _ => cbc::Decryptor::<rc2::Rc2>::new_from_slices(&key, &iv)
            .map_err(bad_length)?
            .decrypt_padded_vec::<Pkcs7>(ciphertext)
            .map_err(failed),
    }
}

/// PBKDF1 (RFC 8018 section 5.1): 16 bytes, DES or RC2 key then IV.
fn pbkdf1(digest: &str, password: &str, salt: &[u8], iterations: i32) -> Result<Vec<u8>, String> {
    use sha2_11::Digest as _;
    let rounds = usize::try_from(iterations).map_err(|_| "a negative iteration count")?;
    let mut block: Vec<u8> = [password.as_bytes(), salt].concat();
    for _ in 0..rounds.max(1) {
        block = match digest {
            "MD5" => md5::Md5::digest(&block).to_vec(),
            "SHA1" => sha1_11::Sha1::digest(&block).to_vec(),
            other => {
                return Err(format!(
                    "PBES1 with {other}, which ocicert does not decrypt"
                ));
            }
        };
    }
    block.truncate(16);
    Ok(block)
}

#[cfg(test)]
mod tests;
