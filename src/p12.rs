//! Opening a PKCS#12 store within a work budget: the key-derivation cost of its MAC and of every
//! encrypted item is read from its parameters before any key is derived, each candidate password
//! is checked once against the MAC, and what would pass the budget (and every secret bag) is left
//! out of the store handed on, each named. It does not parse keys or certificates (p12-keystore
//! does, on the store returned) and it does not write stores for keeping.
//!
//! Written around p12-keystore rather than through it: p12-keystore 0.4 caps each derivation
//! (10^6 iterations, 1 GiB of scrypt) but not their sum over bags and candidate passwords,
//! decrypts secret bags unasked, and has no hook to skip an item. Encrypted content lists are
//! decrypted here (PBES2 through pkcs5, PKCS#12's own PBEs through the pkcs12 KDF), so that what
//! they hold is budgeted too.

use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use pkcs5::der::asn1::{ContextSpecific, ObjectIdentifier, OctetString};
use pkcs5::der::{Any, Decode, Encode, Header, Length, Reader, SliceReader, Tag};
use pkcs12::cms::cert::x509::spki::AlgorithmIdentifierOwned;
use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
use pkcs12::{MacData, Pfx, SafeBag, kdf};

/// Key-derivation work one store may cost, over its MAC, its encrypted items and every candidate
/// password, in units of one PBKDF2 iteration (scrypt counts N·r·p): about 2.5 s on one core.
/// keytool's default store (10,000 iterations for the MAC and each item) costs a few tens of
/// thousands per password.
pub const WORK_BUDGET: u64 = 5_000_000;

/// The most memory one scrypt derivation may take (128·N·r bytes).
pub const MAX_SCRYPT_MEMORY: u64 = 64 << 20;

const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// What `open` made of a store.
#[derive(Debug)]
pub enum Outcome {
    /// A candidate opened it (the MAC matched, or with no MAC, its first encrypted item
    /// decrypted).
    Opened(Opened),
    /// No candidate that was tried matched; `limit` says why not all were tried.
    UnknownPassword { limit: Option<String> },
    /// Not a PKCS#12 store ocicert can read.
    Malformed(String),
}

/// A store that a candidate password opened.
#[derive(Debug)]
pub struct Opened {
    /// The store to hand p12-keystore with the same password: its kept items, with the encrypted
    /// content lists already decrypted and no MAC (it was checked here).
    pub store: Vec<u8>,
    /// Which candidate opened it.
    pub password: usize,
    /// Secret bags, never opened (they hold no key or certificate that ocicert reports).
    pub secret_bags: usize,
    /// Items left out, each with why (over the budget, or encrypted in a way ocicert cannot
    /// decrypt).
    pub skipped: Vec<String>,
}

/// Opens `der` with the first of `candidates` that fits, within `WORK_BUDGET`.
pub fn open(der: &[u8], candidates: &[&str]) -> Outcome {
    open_within(der, candidates, WORK_BUDGET)
}

/// `open` with another budget.
pub fn open_within(der: &[u8], candidates: &[&str], budget: u64) -> Outcome {
    match try_open(der, candidates, budget) {
        Ok(outcome) => outcome,
        Err(reason) => Outcome::Malformed(reason),
    }
}

fn try_open(der: &[u8], candidates: &[&str], mut budget: u64) -> Result<Outcome, String> {
    let pfx = Pfx::from_der(der).map_err(asn1("store"))?;
    if pfx.auth_safe.content_type != DATA {
        return Err(format!(
            "content type {} (only password-integrity stores are read)",
            pfx.auth_safe.content_type
        ));
    }
    let safe = octets(&pfx.auth_safe.content)?;
    let infos = elements(&safe)?;
    let found = match &pfx.mac_data {
        Some(mac) => by_mac(mac, &safe, candidates, &mut budget)?,
        None => by_decryption(&infos, candidates, &mut budget)?,
    };
    let password = match found {
        Ok(index) => index,
        Err(limit) => return Ok(Outcome::UnknownPassword { limit }),
    };
    let mut opened = Opened {
        store: Vec::new(),
        password,
        secret_bags: 0,
        skipped: Vec::new(),
    };
    let mut kept_infos = Vec::new();
    for info in &infos {
        let info = ContentInfo::from_der(info).map_err(asn1("content list"))?;
        let contents = if info.content_type == DATA {
            octets(&info.content)?
        } else if info.content_type == ENCRYPTED_DATA {
            match decrypt_contents(&info, candidates[password], &mut budget)? {
                Ok(contents) => contents,
                Err(reason) => {
                    opened
                        .skipped
                        .push(format!("an encrypted content list: {reason}"));
                    continue;
                }
            }
        } else {
            opened.skipped.push(format!(
                "a content list of type {} (not password-protected)",
                info.content_type
            ));
            continue;
        };
        let mut kept = Vec::new();
        for bag in elements(&contents)? {
            let decoded = SafeBag::from_der(bag).map_err(asn1("bag"))?;
            if decoded.bag_id == pkcs12::PKCS_12_SECRET_BAG_OID {
                opened.secret_bags += 1;
                continue;
            }
            if decoded.bag_id == pkcs12::PKCS_12_PKCS8_KEY_BAG_OID {
                // p12-keystore decrypts this bag; its cost is taken here first.
                let shrouded =
                    ContextSpecific::<EncryptedPrivateKeyInfo>::from_der(&decoded.bag_value)
                        .map_err(asn1("key bag"))?;
                if let Err(reason) = spend(&shrouded.value.encryption_algorithm, &mut budget) {
                    opened.skipped.push(format!("a private key bag: {reason}"));
                    continue;
                }
            }
            kept.push(bag);
        }
        kept_infos.push(data_info(&sequence(&kept)?)?);
    }
    let auth_safe = ContentInfo {
        content_type: DATA,
        content: any(&OctetString::new(sequence(&kept_infos)?).map_err(asn1("store"))?)?,
    };
    opened.store = Pfx {
        version: pfx.version,
        auth_safe,
        mac_data: None,
    }
    .to_der()
    .map_err(asn1("store"))?;
    Ok(Outcome::Opened(opened))
}

/// The candidate whose MAC matches; `Err(limit)` when none did, saying why not all were tried.
fn by_mac(
    mac: &MacData,
    safe: &[u8],
    candidates: &[&str],
    budget: &mut u64,
) -> Result<Result<usize, Option<String>>, String> {
    let cost = u64::try_from(mac.iterations).map_err(|_| "a negative MAC iteration count")?;
    for (index, password) in candidates.iter().enumerate() {
        if cost > *budget {
            return Ok(Err(Some(over_budget(
                &format!(
                    "checking its MAC ({cost} iterations) with {} passwords",
                    candidates.len()
                ),
                index,
            ))));
        }
        *budget -= cost;
        let digest = mac_digest(
            mac.mac.algorithm.oid,
            password,
            mac.mac_salt.as_bytes(),
            mac.iterations,
            safe,
        )?;
        if digest.as_slice() == mac.mac.digest.as_bytes() {
            return Ok(Ok(index));
        }
    }
    Ok(Err(None))
}

/// With no MAC, the candidate that decrypts the store's cheapest encrypted content list or key
/// bag (a ruinous item does not hide the password from the others); the first candidate when
/// nothing is encrypted.
fn by_decryption(
    infos: &[&[u8]],
    candidates: &[&str],
    budget: &mut u64,
) -> Result<Result<usize, Option<String>>, String> {
    let items = encrypted_items(infos)?;
    if items.is_empty() {
        return Ok(Ok(0));
    }
    let Some((cost, algorithm, ciphertext)) = items
        .into_iter()
        .filter_map(|(algorithm, ciphertext)| Some((cost(&algorithm).ok()?, algorithm, ciphertext)))
        .min_by_key(|(cost, _, _)| *cost)
    else {
        return Ok(Err(Some(
            "none of its encrypted items can be decrypted within the limits".into(),
        )));
    };
    for (index, password) in candidates.iter().enumerate() {
        if cost > *budget {
            return Ok(Err(Some(over_budget(
                "decrypting its cheapest encrypted item with each password",
                index,
            ))));
        }
        *budget -= cost;
        if let Ok(plain) = decrypt(&algorithm, ciphertext.as_bytes(), password)
            && starts_with_sequence(&plain)
        {
            return Ok(Ok(index));
        }
    }
    Ok(Err(None))
}

/// Whether decrypted bytes look like what a right password gives: a DER SEQUENCE (PKCS#7 padding
/// alone passes for a wrong password once in 256 tries).
fn starts_with_sequence(plain: &[u8]) -> bool {
    SliceReader::new(plain)
        .and_then(|mut reader| Header::decode(&mut reader))
        .is_ok_and(|header| {
            header.tag() == Tag::Sequence
                && usize::try_from(header.length()).is_ok_and(|len| len <= plain.len())
        })
}

fn over_budget(what: &str, tried: usize) -> String {
    format!(
        "{what} would pass the PKCS#12 work budget ({WORK_BUDGET} key-derivation iterations); \
         {tried} were tried"
    )
}

/// The algorithm and ciphertext of every encrypted content list and shrouded key bag.
fn encrypted_items(
    infos: &[&[u8]],
) -> Result<Vec<(AlgorithmIdentifierOwned, OctetString)>, String> {
    let mut out = Vec::new();
    for info in infos {
        let info = ContentInfo::from_der(info).map_err(asn1("content list"))?;
        if info.content_type == ENCRYPTED_DATA {
            let data = EncryptedData::from_der(&info.content.to_der().map_err(asn1("content"))?)
                .map_err(asn1("encrypted content list"))?;
            if let Some(ciphertext) = data.enc_content_info.encrypted_content {
                out.push((data.enc_content_info.content_enc_alg, ciphertext));
            }
        } else if info.content_type == DATA {
            for bag in elements(&octets(&info.content)?)? {
                let bag = SafeBag::from_der(bag).map_err(asn1("bag"))?;
                if bag.bag_id == pkcs12::PKCS_12_PKCS8_KEY_BAG_OID {
                    let key = ContextSpecific::<EncryptedPrivateKeyInfo>::from_der(&bag.bag_value)
                        .map_err(asn1("key bag"))?;
                    out.push((key.value.encryption_algorithm, key.value.encrypted_data));
                }
            }
        }
    }
    Ok(out)
}

/// The SafeContents of an encryptedData content list, or why it was left out.
fn decrypt_contents(
    info: &ContentInfo,
    password: &str,
    budget: &mut u64,
) -> Result<Result<Vec<u8>, String>, String> {
    let data = EncryptedData::from_der(&info.content.to_der().map_err(asn1("content"))?)
        .map_err(asn1("encrypted content list"))?;
    let Some(ciphertext) = data.enc_content_info.encrypted_content else {
        return Ok(Ok(sequence::<&[u8]>(&[])?));
    };
    let algorithm = &data.enc_content_info.content_enc_alg;
    if let Err(reason) = spend(algorithm, budget) {
        return Ok(Err(reason));
    }
    Ok(decrypt(algorithm, ciphertext.as_bytes(), password))
}

/// Takes the cost of deriving `algorithm`'s key from `budget`, or says why it cannot be.
fn spend(algorithm: &AlgorithmIdentifierOwned, budget: &mut u64) -> Result<(), String> {
    let cost = cost(algorithm)?;
    if cost > *budget {
        return Err(format!(
            "its key derivation ({cost} units) is over what is left of the PKCS#12 work budget \
             ({} of {WORK_BUDGET})",
            *budget
        ));
    }
    *budget -= cost;
    Ok(())
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
    if pbe_key_length(algorithm.oid).is_some() {
        let pbe = Pkcs12PbeParams::from_der(&params).map_err(asn1("PBE parameters"))?;
        let iterations =
            u64::try_from(pbe.iterations).map_err(|_| "a negative PBE iteration count")?;
        // Two derivations (key and IV), each of one or two SHA-1 blocks.
        return Ok(iterations.saturating_mul(3));
    }
    Err(format!(
        "encrypted with {}, which ocicert does not decrypt",
        algorithm.oid
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

/// The key length of PKCS#12's own PBEs that ocicert decrypts (RFC 7292 appendix C).
fn pbe_key_length(oid: ObjectIdentifier) -> Option<usize> {
    match oid {
        pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC => Some(24),
        pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC => Some(5),
        pkcs12::PKCS_12_PBE_WITH_SHAAND128_BIT_RC2_CBC => Some(16),
        _ => None,
    }
}

/// Decrypts `ciphertext` (the caller has budgeted the derivation).
fn decrypt(
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
    let key_len =
        pbe_key_length(algorithm.oid).ok_or_else(|| format!("encrypted with {}", algorithm.oid))?;
    let pbe = Pkcs12PbeParams::from_der(&params).map_err(asn1("PBE parameters"))?;
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
    let failed = |_| "PBE decryption failed (wrong password or corrupt data)".to_string();
    if key_len == 24 {
        cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|_| "PBE key length".to_string())?
            .decrypt_padded_vec::<Pkcs7>(ciphertext)
            .map_err(failed)
    } else {
        cbc::Decryptor::<rc2::Rc2>::new_from_slices(&key, &iv)
            .map_err(|_| "PBE key length".to_string())?
            .decrypt_padded_vec::<Pkcs7>(ciphertext)
            .map_err(failed)
    }
}

macro_rules! pkcs12_hmac {
    ($digest:ty, $password:expr, $salt:expr, $iterations:expr, $data:expr) => {{
        use hmac13::{KeyInit as _, Mac as _};
        let size = <$digest as hmac13::digest::OutputSizeUser>::output_size();
        let key = kdf::derive_key_utf8::<$digest>(
            $password,
            $salt,
            kdf::Pkcs12KeyType::Mac,
            $iterations,
            size,
        )
        .map_err(asn1("MAC key"))?;
        let mut mac = hmac13::Hmac::<$digest>::new_from_slice(&key)
            .map_err(|_| "MAC key length".to_string())?;
        mac.update($data);
        mac.finalize().into_bytes().to_vec()
    }};
}

/// PKCS#12's MAC (RFC 7292 appendix B key derivation, then HMAC) of `data` with `digest`.
pub fn mac_digest(
    digest: ObjectIdentifier,
    password: &str,
    salt: &[u8],
    iterations: i32,
    data: &[u8],
) -> Result<Vec<u8>, String> {
    Ok(match digest {
        SHA1 => pkcs12_hmac!(sha1_11::Sha1, password, salt, iterations, data),
        SHA224 => pkcs12_hmac!(sha2_11::Sha224, password, salt, iterations, data),
        SHA256 => pkcs12_hmac!(sha2_11::Sha256, password, salt, iterations, data),
        SHA384 => pkcs12_hmac!(sha2_11::Sha384, password, salt, iterations, data),
        SHA512 => pkcs12_hmac!(sha2_11::Sha512, password, salt, iterations, data),
        other => {
            return Err(format!(
                "a MAC with digest {other}, which ocicert does not compute"
            ));
        }
    })
}

fn asn1(what: &str) -> impl Fn(pkcs5::der::Error) -> String + '_ {
    move |e| format!("PKCS#12 {what}: {e}")
}

/// The bytes of an OCTET STRING held in `content`.
fn octets(content: &Any) -> Result<Vec<u8>, String> {
    Ok(
        OctetString::from_der(&content.to_der().map_err(asn1("content"))?)
            .map_err(asn1("content"))?
            .into_bytes()
            .into_vec(),
    )
}

/// The encoded elements of a DER SEQUENCE OF, each as its own bytes.
fn elements(der: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut reader = SliceReader::new(der).map_err(asn1("list"))?;
    let header = Header::decode(&mut reader).map_err(asn1("list"))?;
    let body = reader.read_slice(header.length()).map_err(asn1("list"))?;
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let mut reader = SliceReader::new(rest).map_err(asn1("list"))?;
        let header = Header::decode(&mut reader).map_err(asn1("list element"))?;
        let total = usize::try_from(
            (header.encoded_len().map_err(asn1("list element"))? + header.length())
                .map_err(asn1("list element"))?,
        )
        .map_err(asn1("list element"))?;
        let (element, tail) = rest
            .split_at_checked(total)
            .ok_or("PKCS#12 list: truncated")?;
        out.push(element);
        rest = tail;
    }
    Ok(out)
}

/// A DER SEQUENCE of already-encoded elements.
fn sequence<T: AsRef<[u8]>>(elements: &[T]) -> Result<Vec<u8>, String> {
    let len: usize = elements.iter().map(|e| e.as_ref().len()).sum();
    let mut out = Header::new(Tag::Sequence, Length::try_from(len).map_err(asn1("list"))?)
        .to_der()
        .map_err(asn1("list"))?;
    for element in elements {
        out.extend_from_slice(element.as_ref());
    }
    Ok(out)
}

/// A plain `data` ContentInfo holding `contents`.
fn data_info(contents: &[u8]) -> Result<Vec<u8>, String> {
    ContentInfo {
        content_type: DATA,
        content: any(&OctetString::new(contents).map_err(asn1("content"))?)?,
    }
    .to_der()
    .map_err(asn1("content"))
}

fn any(value: &impl Encode) -> Result<Any, String> {
    Any::from_der(&value.to_der().map_err(asn1("encoding"))?).map_err(asn1("encoding"))
}

#[cfg(test)]
mod tests;
