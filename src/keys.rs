//! Private-key analysis: algorithm, size, encryption, and the public key's SPKI fingerprint.
//!
//! Every parser here reads key material only to derive public facts about it; nothing returned
//! holds private bytes, so a `KeyInfo` is always safe to print. This module does not locate keys
//! in files (that is `detect`) and does not judge them (that is `analyze`).

use pkcs8::der::{Decode, Encode, asn1::BitStringRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How a private key was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyFormat {
    Pkcs1,
    Pkcs8,
    Sec1,
    DsaTraditional,
    EncryptedPkcs8,
    LegacyEncryptedPem,
    Openssh,
    Pgp,
    Putty,
    Pkcs12,
    JavaKeystore,
}

impl KeyFormat {
    /// The kebab-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pkcs1 => "PKCS#1",
            Self::Pkcs8 => "PKCS#8",
            Self::Sec1 => "SEC1",
            Self::DsaTraditional => "OpenSSL DSA",
            Self::EncryptedPkcs8 => "encrypted PKCS#8",
            Self::LegacyEncryptedPem => "legacy encrypted PEM",
            Self::Openssh => "OpenSSH",
            Self::Pgp => "OpenPGP",
            Self::Putty => "PuTTY",
            Self::Pkcs12 => "PKCS#12",
            Self::JavaKeystore => "Java keystore",
        }
    }
}

/// Public facts about a private key. Never contains key material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// How the key was stored.
    pub format: KeyFormat,
    /// `rsa`, `ec`, `ed25519`, `ed448`, `x25519`, `dsa`, `ssh-…`, `pgp` or `unknown`.
    pub algorithm: String,
    /// Key size in bits, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
    /// Named curve for EC keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
    /// Whether the key is protected by a passphrase.
    pub encrypted: bool,
    /// SHA-256 of the DER SubjectPublicKeyInfo derived from the key, when it can be derived.
    /// This is what pairs a key with its certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
    /// Stable identity of the key: `sha256:` + the SPKI hash when known, otherwise a hash of
    /// the key's public part or, for encrypted keys, of the encrypted blob.
    pub fingerprint: String,
    /// How an encrypted PKCS#8 key is protected, and whether a well-known passphrase opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// The passphrase encryption of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC`, `PBES1 MD5-DES`, `PKCS#12 PBE SHA1-3DES`.
    pub scheme: String,
    /// DES, 2DES, RC2, RC4 or MD2/MD5: barely encryption.
    pub weak: bool,
    /// Which kind of candidate opened it (`empty`, `well-known default`, `configured`); the
    /// passphrase itself is never reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_with: Option<String>,
}

/// A key that could not be analysed.
#[derive(Debug, thiserror::Error)]
#[error("{format:?} key does not parse: {reason}")]
pub struct Error {
    /// What the bytes were supposed to be.
    pub format: KeyFormat,
    /// Why they are not.
    pub reason: String,
}

fn error(format: KeyFormat, reason: impl std::fmt::Display) -> Error {
    Error {
        format,
        reason: reason.to_string(),
    }
}

/// `sha256:` + lowercase hex.
pub fn sha256_fingerprint(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub(crate) const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
pub(crate) const OID_EC: &str = "1.2.840.10045.2.1";
const OID_DSA: &str = "1.2.840.10040.4.1";
pub(crate) const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";
const OID_X25519: &str = "1.3.101.110";
const OID_X448: &str = "1.3.101.111";

/// Name and size of a named curve, by OID.
pub fn curve_name(oid: &str) -> Option<(&'static str, u32)> {
    Some(match oid {
        "1.2.840.10045.3.1.7" => ("P-256", 256),
        "1.3.132.0.34" => ("P-384", 384),
        "1.3.132.0.35" => ("P-521", 521),
        "1.3.132.0.10" => ("secp256k1", 256),
        "1.2.840.10045.3.1.1" => ("P-192", 192),
        "1.3.132.0.33" => ("P-224", 224),
        "1.3.36.3.3.2.8.1.1.7" => ("brainpoolP256r1", 256),
        "1.3.36.3.3.2.8.1.1.11" => ("brainpoolP384r1", 384),
        "1.3.36.3.3.2.8.1.1.13" => ("brainpoolP512r1", 512),
        _ => return None,
    })
}

pub(crate) fn bits_of(unsigned_big_endian: &[u8]) -> u32 {
    let trimmed: &[u8] = {
        let start = unsigned_big_endian
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(unsigned_big_endian.len());
        &unsigned_big_endian[start..]
    };
    match trimmed.first() {
        None => 0,
        Some(first) => (trimmed.len() as u32 - 1) * 8 + (8 - first.leading_zeros()),
    }
}

pub(crate) fn spki_hash(
    algorithm_oid: &str,
    parameters_oid: Option<&str>,
    public_key: &[u8],
) -> Option<String> {
    let oid = pkcs8::ObjectIdentifier::new(algorithm_oid).ok()?;
    let parameters = match (algorithm_oid, parameters_oid) {
        (_, Some(curve)) => Some(pkcs8::der::Any::from(
            pkcs8::ObjectIdentifier::new(curve).ok()?,
        )),
        (OID_RSA, None) => Some(pkcs8::der::Any::null()),
        _ => None,
    };
    let spki = pkcs8::spki::SubjectPublicKeyInfo {
        algorithm: pkcs8::spki::AlgorithmIdentifier { oid, parameters },
        subject_public_key: BitStringRef::from_bytes(public_key).ok()?,
    };
    let der = spki.to_der().ok()?;
    Some(hex::encode(Sha256::digest(der)))
}

pub(crate) fn with_spki(
    format: KeyFormat,
    algorithm: &str,
    bits: Option<u32>,
    curve: Option<&str>,
    spki: Option<String>,
    fallback_identity: &[u8],
) -> KeyInfo {
    let fingerprint = match &spki {
        Some(hash) => format!("sha256:{hash}"),
        None => sha256_fingerprint(fallback_identity),
    };
    KeyInfo {
        format,
        algorithm: algorithm.to_string(),
        bits,
        curve: curve.map(str::to_string),
        encrypted: false,
        spki_sha256: spki,
        fingerprint,
        encryption: None,
    }
}

/// Analyses a PKCS#1 `RSAPrivateKey`.
pub fn rsa_pkcs1(der: &[u8], format: KeyFormat) -> Result<KeyInfo, Error> {
    let key = pkcs1::RsaPrivateKey::from_der(der).map_err(|e| error(format, e))?;
    let public = pkcs1::RsaPublicKey {
        modulus: key.modulus,
        public_exponent: key.public_exponent,
    }
    .to_der()
    .map_err(|e| error(format, e))?;
    let bits = bits_of(key.modulus.as_bytes());
    let spki = spki_hash(OID_RSA, None, &public);
    Ok(with_spki(format, "rsa", Some(bits), None, spki, &public))
}

/// Analyses a SEC1 `ECPrivateKey`; `curve_hint` comes from a PKCS#8 wrapper when present.
pub fn ec_sec1(der: &[u8], curve_hint: Option<&str>, format: KeyFormat) -> Result<KeyInfo, Error> {
    let key = sec1::EcPrivateKey::from_der(der).map_err(|e| error(format, e))?;
    let curve_oid = key
        .parameters
        .and_then(|p| p.named_curve())
        .map(|oid| oid.to_string())
        .or_else(|| curve_hint.map(str::to_string));
    let (curve, bits) = match curve_oid.as_deref().and_then(curve_name) {
        Some((name, bits)) => (Some(name), Some(bits)),
        None => (None, Some(key.private_key.len() as u32 * 8)),
    };
    let public: Option<Vec<u8>> = match key.public_key {
        Some(point) => Some(point.to_vec()),
        None => derive_ec_public(curve, key.private_key),
    };
    let spki = match (&public, &curve_oid) {
        (Some(point), Some(oid)) => spki_hash(OID_EC, Some(oid), point),
        _ => None,
    };
    let identity = public.unwrap_or_default();
    Ok(with_spki(format, "ec", bits, curve, spki, &identity))
}

/// Computes the uncompressed public point for curves we carry arithmetic for.
fn derive_ec_public(curve: Option<&str>, scalar: &[u8]) -> Option<Vec<u8>> {
    match curve? {
        "P-256" => {
            let secret = p256::SecretKey::from_slice(scalar).ok()?;
            Some(
                p256::EncodedPoint::from(secret.public_key())
                    .as_bytes()
                    .to_vec(),
            )
        }
        "P-384" => {
            let secret = p384::SecretKey::from_slice(scalar).ok()?;
            Some(
                p384::EncodedPoint::from(secret.public_key())
                    .as_bytes()
                    .to_vec(),
            )
        }
        _ => None,
    }
}

/// Analyses a PKCS#8 `PrivateKeyInfo` (unencrypted).
pub fn pkcs8(der: &[u8]) -> Result<KeyInfo, Error> {
    let format = KeyFormat::Pkcs8;
    let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(|e| error(format, e))?;
    let oid = info.algorithm.oid.to_string();
    match oid.as_str() {
        OID_RSA | OID_RSA_PSS => rsa_pkcs1(info.private_key, format),
        OID_EC => {
            let curve = info
                .algorithm
                .parameters_oid()
                .ok()
                .map(|oid| oid.to_string());
            ec_sec1(info.private_key, curve.as_deref(), format)
        }
        OID_ED25519 => {
            let seed = pkcs8::der::asn1::OctetStringRef::from_der(info.private_key)
                .map_err(|e| error(format, e))?;
            let seed: [u8; 32] = seed
                .as_bytes()
                .try_into()
                .map_err(|_| error(format, "Ed25519 seed is not 32 bytes"))?;
            let public = match info.public_key {
                Some(public) => public.to_vec(),
                None => ed25519_dalek::SigningKey::from_bytes(&seed)
                    .verifying_key()
                    .to_bytes()
                    .to_vec(),
            };
            let spki = spki_hash(OID_ED25519, None, &public);
            Ok(with_spki(format, "ed25519", Some(256), None, spki, &public))
        }
        OID_DSA => {
            // The parameters are Dss-Parms { p, q, g }; the key is the INTEGER x, so the public
            // y = g^x mod p is computed to fingerprint the key by its SubjectPublicKeyInfo.
            let parameters = info
                .algorithm
                .parameters
                .and_then(|any| any.decode_as::<Vec<pkcs8::der::asn1::UintRef<'_>>>().ok())
                .filter(|pqg| pqg.len() == 3)
                .ok_or_else(|| error(format, "DSA parameters are not p, q, g"))?;
            let x = pkcs8::der::asn1::UintRef::from_der(info.private_key)
                .map_err(|e| error(format, e))?;
            let [p, q, g] = [0, 1, 2].map(|i| parameters[i].as_bytes());
            let y = dsa_public(p, g, x.as_bytes())
                .ok_or_else(|| error(format, "DSA parameters are out of range"))?;
            let spki = dsa_spki(p, q, g, &y);
            Ok(with_spki(format, "dsa", Some(bits_of(p)), None, spki, &y))
        }
        other => {
            let name = match other {
                OID_ED448 => "ed448",
                OID_X25519 => "x25519",
                OID_X448 => "x448",
                _ => "unknown",
            };
            let spki = info
                .public_key
                .and_then(|public| spki_hash(other, None, public));
            let identity = info.public_key.unwrap_or(other.as_bytes()).to_vec();
            Ok(with_spki(format, name, None, None, spki, &identity))
        }
    }
}

/// Analyses OpenSSL's traditional `DSA PRIVATE KEY`: SEQUENCE { 0, p, q, g, y, x }.
pub fn dsa_traditional(der: &[u8]) -> Result<KeyInfo, Error> {
    let format = KeyFormat::DsaTraditional;
    let integers: Vec<pkcs8::der::asn1::UintRef<'_>> =
        Vec::from_der(der).map_err(|e| error(format, e))?;
    if integers.len() != 6 {
        return Err(error(format, "expected six integers"));
    }
    let [p, q, g, y] = [1, 2, 3, 4].map(|i| integers[i].as_bytes());
    let spki = dsa_spki(p, q, g, y);
    Ok(with_spki(format, "dsa", Some(bits_of(p)), None, spki, y))
}

/// The largest DSA modulus whose public key is computed: OpenSSL's own limit
/// (`OPENSSL_DSA_MAX_MODULUS_BITS`); FIPS 186 stops at 3072 bits.
const MAX_DSA_BITS: u32 = 10_000;

/// The largest private exponent: x < q, and q is at most 256 bits in FIPS 186 (512 leaves room).
const MAX_DSA_EXPONENT_BITS: u32 = 512;

/// The modular-exponentiation work (modulus bits × exponent bits) one file or one image
/// configuration may spend on DSA public keys: 64 keys of the largest size. A key past it is
/// reported as not analysed.
const DSA_WORK_PER_FILE: u64 = 64 * MAX_DSA_BITS as u64 * MAX_DSA_EXPONENT_BITS as u64;

thread_local! {
    static DSA_WORK_LEFT: std::cell::Cell<u64> = const { std::cell::Cell::new(DSA_WORK_PER_FILE) };
}

/// Starts a new file's (or image configuration's) DSA work budget on this thread.
pub fn reset_work_budget() {
    DSA_WORK_LEFT.with(|left| left.set(DSA_WORK_PER_FILE));
}

/// y = g^x mod p, for a DSA private key x; `None` for parameters out of range, or when the
/// file's DSA work budget is spent.
fn dsa_public(p: &[u8], g: &[u8], x: &[u8]) -> Option<Vec<u8>> {
    if bits_of(p) > MAX_DSA_BITS || bits_of(x) > MAX_DSA_EXPONENT_BITS {
        return None;
    }
    let work = u64::from(bits_of(p)) * u64::from(bits_of(x));
    let affordable = DSA_WORK_LEFT.with(|left| {
        let remaining = left.get();
        left.set(remaining.saturating_sub(work));
        remaining >= work
    });
    if !affordable {
        return None;
    }
    let p = num_bigint::BigUint::from_bytes_be(p);
    if p < num_bigint::BigUint::from(3u8) {
        return None;
    }
    let y =
        num_bigint::BigUint::from_bytes_be(g).modpow(&num_bigint::BigUint::from_bytes_be(x), &p);
    Some(y.to_bytes_be())
}

/// SHA-256 of a DSA SubjectPublicKeyInfo: { dsa, Dss-Parms { p, q, g } } with the INTEGER y, as
/// `openssl pkey -pubout -outform DER` writes it.
fn dsa_spki(p: &[u8], q: &[u8], g: &[u8], y: &[u8]) -> Option<String> {
    use pkcs8::der::asn1::UintRef;
    let integers = [p, q, g]
        .into_iter()
        .map(UintRef::new)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let parameters = pkcs8::der::Any::from_der(&integers.to_der().ok()?).ok()?;
    let public = UintRef::new(y).ok()?.to_der().ok()?;
    let spki = pkcs8::spki::SubjectPublicKeyInfo {
        algorithm: pkcs8::spki::AlgorithmIdentifier {
            oid: pkcs8::ObjectIdentifier::new(OID_DSA).ok()?,
            parameters: Some(parameters),
        },
        subject_public_key: BitStringRef::from_bytes(&public).ok()?,
    };
    Some(hex::encode(Sha256::digest(spki.to_der().ok()?)))
}

/// Analyses a PKCS#8 `EncryptedPrivateKeyInfo` of any scheme (PBES2, PBES1, PKCS#12 PBE, or an
/// OID ocicert does not know): the scheme by name, and, when one of `candidates` (with its kind)
/// opens it within `p12::WORK_BUDGET` of key derivation, the key itself. `any_oid` accepts an
/// unknown scheme (a PEM label says what the bytes are; bare DER does not).
pub fn encrypted_pkcs8(
    der: &[u8],
    candidates: &[(&str, &str)],
    any_oid: bool,
) -> Result<KeyInfo, Error> {
    let format = KeyFormat::EncryptedPkcs8;
    let envelope =
        <pkcs12::pbe_params::EncryptedPrivateKeyInfo as pkcs5::der::Decode>::from_der(der)
            .map_err(|e| Error {
                format,
                reason: e.to_string(),
            })?;
    let algorithm = &envelope.encryption_algorithm;
    let (scheme, weak) = crate::pbe::describe(algorithm);
    if !any_oid && scheme.starts_with("an unknown scheme") {
        return Err(Error {
            format,
            reason: format!("{scheme} is not a password-based encryption"),
        });
    }
    let mut encryption = Encryption {
        scheme,
        weak,
        opened_with: None,
    };
    let opened = crate::pbe::cost(algorithm).ok().and_then(|cost| {
        let affordable = crate::p12::WORK_BUDGET / cost.max(1);
        candidates
            .iter()
            .take(usize::try_from(affordable).unwrap_or(usize::MAX))
            .find_map(|(password, kind)| {
                let plain =
                    crate::pbe::decrypt(algorithm, envelope.encrypted_data.as_bytes(), password)
                        .ok()?;
                Some((pkcs8(&plain).ok()?, *kind))
            })
    });
    if let Some((mut info, kind)) = opened {
        encryption.opened_with = Some(kind.to_string());
        info.format = format;
        info.encrypted = true;
        info.encryption = Some(encryption);
        return Ok(info);
    }
    let mut info = encrypted(format, "unknown", der);
    info.encryption = Some(encryption);
    Ok(info)
}

/// A key whose body is encrypted: its fingerprint is the hash of the encrypted blob.
pub fn encrypted(format: KeyFormat, algorithm: &str, blob: &[u8]) -> KeyInfo {
    KeyInfo {
        format,
        algorithm: algorithm.to_string(),
        bits: None,
        curve: None,
        encrypted: true,
        spki_sha256: None,
        fingerprint: sha256_fingerprint(blob),
        encryption: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        fs_err::read(path).unwrap_or_default()
    }

    fn expected_spki(name: &str) -> String {
        String::from_utf8(fixture(&format!("keys/{name}.spki.sha256")))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    #[test]
    fn derives_the_same_spki_as_openssl_for_every_key_type() {
        let cases = [
            ("rsa-pkcs1.der", "rsa-pkcs1"),
            ("ec-sec1.der", "ec-sec1"),
            ("ec-sec1-nopub.der", "ec-sec1-nopub"),
            ("ed25519.der", "ed25519"),
        ];
        for (file, spki_name) in cases {
            let der = fixture(&format!("keys/{file}"));
            let info = match file {
                "rsa-pkcs1.der" => rsa_pkcs1(&der, KeyFormat::Pkcs1),
                f if f.starts_with("ec-") => ec_sec1(&der, None, KeyFormat::Sec1),
                _ => pkcs8(&der),
            }
            .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(
                info.spki_sha256.as_deref(),
                Some(expected_spki(spki_name).as_str()),
                "{file}"
            );
            assert!(!info.encrypted);
        }
    }

    #[test]
    fn dsa_keys_get_the_spki_openssl_gives_in_both_encodings() {
        let pem = String::from_utf8(fixture("keys/dsa.pem")).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let traditional =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap();
        let expected = expected_spki("dsa");
        let from_traditional = dsa_traditional(&traditional).unwrap();
        let from_pkcs8 = pkcs8(&fixture("keys/dsa-pkcs8.der")).unwrap();
        for info in [&from_traditional, &from_pkcs8] {
            assert_eq!(info.spki_sha256.as_deref(), Some(expected.as_str()));
            assert_eq!(info.fingerprint, format!("sha256:{expected}"));
            assert_eq!((info.algorithm.as_str(), info.bits), ("dsa", Some(2048)));
        }
        // Parameters out of range are an error, not a hang on a huge modpow.
        assert!(dsa_public(&[0xff; 4096], &[2], &[3]).is_none());
        assert!(dsa_public(&[1], &[2], &[3]).is_none());
    }

    #[test]
    fn reports_rsa_size_and_ec_curve() {
        let rsa = rsa_pkcs1(&fixture("keys/rsa-pkcs1.der"), KeyFormat::Pkcs1).unwrap();
        assert_eq!((rsa.algorithm.as_str(), rsa.bits), ("rsa", Some(2048)));
        let ec = ec_sec1(&fixture("keys/ec-sec1.der"), None, KeyFormat::Sec1).unwrap();
        assert_eq!((ec.curve.as_deref(), ec.bits), (Some("P-256"), Some(256)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(pkcs8(b"\x30\x03\x02\x01").is_err());
        assert!(rsa_pkcs1(&[0x30, 0x82, 0xff, 0xff], KeyFormat::Pkcs1).is_err());
        assert!(ec_sec1(&[], None, KeyFormat::Sec1).is_err());
        assert!(dsa_traditional(b"\x30\x00").is_err());
        assert!(encrypted_pkcs8(b"garbage", &[], true).is_err());
    }
}
