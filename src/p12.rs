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
use pkcs12::pbe_params::EncryptedPrivateKeyInfo;
use pkcs12::{MacData, Pfx, SafeBag, kdf};

/// Key-derivation work one store may cost, over its MAC, its encrypted items and every candidate
/// password, in units of one PBKDF2 iteration (scrypt counts N·r·p): about 2.5 s on one core.
/// keytool's default store (10,000 iterations for the MAC and each item) costs a few tens of
/// thousands per password.
pub const WORK_BUDGET: u64 = 5_000_000;

pub use crate::pbe::MAX_SCRYPT_MEMORY;
use crate::pbe::{cost, decrypt};

const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
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
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for bag in elements(&contents)? {
            let decoded = SafeBag::from_der(bag).map_err(asn1("bag"))?;
            if decoded.bag_id == pkcs12::PKCS_12_SECRET_BAG_OID {
                opened.secret_bags += 1;
                continue;
            }
            if decoded.bag_id == pkcs12::PKCS_12_PKCS8_KEY_BAG_OID {
                // Decrypted here, whatever its scheme (p12-keystore knows PBES2 and PKCS#12's
                // 3DES/RC2 only), and handed on as a plain key bag.
                let shrouded =
                    ContextSpecific::<EncryptedPrivateKeyInfo>::from_der(&decoded.bag_value)
                        .map_err(asn1("key bag"))?;
                let algorithm = &shrouded.value.encryption_algorithm;
                if let Err(reason) = spend(algorithm, &mut budget) {
                    opened.skipped.push(format!("a private key bag: {reason}"));
                    continue;
                }
                match decrypt(
                    algorithm,
                    shrouded.value.encrypted_data.as_bytes(),
                    candidates[password],
                ) {
                    Ok(plain) if starts_with_sequence(&plain) => {
                        kept.push(plain_key_bag(&plain, bag)?);
                    }
                    _ => opened.skipped.push(format!(
                        "a private key bag encrypted with {}, which the store's password does not open",
                        crate::pbe::describe(algorithm).0
                    )),
                }
                continue;
            }
            kept.push(bag.to_vec());
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

/// A keyBag (PKCS#8 in the clear) with the attributes of the shrouded `bag` it replaces.
fn plain_key_bag(plain: &[u8], bag: &[u8]) -> Result<Vec<u8>, String> {
    const KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
    let parts = elements(bag)?;
    let value = [
        Header::new(
            Tag::ContextSpecific {
                constructed: true,
                number: pkcs5::der::TagNumber(0),
            },
            Length::try_from(plain.len()).map_err(asn1("key bag"))?,
        )
        .to_der()
        .map_err(asn1("key bag"))?,
        plain.to_vec(),
    ]
    .concat();
    let mut fields = vec![KEY_BAG.to_der().map_err(asn1("key bag"))?, value];
    fields.extend(parts.get(2).map(|attributes| attributes.to_vec()));
    sequence(&fields)
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
