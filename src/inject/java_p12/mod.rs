//! Adds trusted certificates to a PKCS#12 Java store without changing how the store is
//! protected: every existing bag stays byte for byte, the new certificates go into a
//! SafeContents of their own that is plain where the store's certificates are plain (JDK 18+
//! `cacerts`, which the JVM opens with no password and whose encrypted bags it would skip) and
//! encrypted with the same scheme and iteration count where they are encrypted, and a MAC is
//! recomputed only where the store had one (same digest, iterations and salt length). It does not
//! edit or remove entries, and reads DER only (what keytool and OpenSSL write).
//!
//! Written on the RustCrypto types (pkcs12, cms, pkcs5) rather than through p12-keystore's
//! writer: p12-keystore 0.4 re-encodes every entry, always encrypts certificate bags with the
//! password and always adds a MAC, and has no option to do otherwise. It still decodes the store
//! here (MAC check and decryption, with its iteration caps), to find the certificates already in it.
//! Encrypting and MACing the new content is `protect`.

mod protect;

use super::java::{Error, Trusted};
use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use pkcs5::der::asn1::{BmpString, ObjectIdentifier, OctetString, SetOfVec};
use pkcs5::der::{Any, Decode, Encode, Header, Length, Reader, SliceReader, Tag};
use pkcs12::cms::cert::x509::attr::{Attribute, Attributes};
use pkcs12::{CertBag, Pfx, SafeBag};
use protect::{encrypted, mac};

const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const X509_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const FRIENDLY_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.20");
/// Java's `ORACLE_TrustedKeyUsage`: what keytool marks a trusted-certificate entry with; the JDK
/// loads a certificate bag without it as a chain certificate, not as a trust anchor.
const TRUSTED_KEY_USAGE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113894.746875.1.1");
const ANY_EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");

fn asn1(what: &str) -> impl Fn(pkcs5::der::Error) -> Error + '_ {
    move |e| Error::Format {
        reason: format!("PKCS#12 {what}: {e}"),
    }
}

fn unsupported(reason: String) -> Error {
    Error::Format { reason }
}

/// How the store protects its certificates, which the new ones copy.
enum Protection {
    Plain,
    Encrypted(pkcs12::cms::cert::x509::spki::AlgorithmIdentifierOwned),
}

/// Adds `certs` as trusted-certificate entries; `None` when every one is already in the store.
pub(super) fn add(
    store: &[u8],
    password: &str,
    certs: &[Trusted<'_>],
) -> Result<Option<Vec<u8>>, Error> {
    let pfx = Pfx::from_der(store).map_err(asn1("store"))?;
    if pfx.auth_safe.content_type != DATA {
        return Err(unsupported(format!(
            "PKCS#12 content type {} (only password-integrity stores are supported)",
            pfx.auth_safe.content_type
        )));
    }
    let (safe_der, safes) = authenticated_safe(&pfx)?;
    let protection = protection(&safes)?;

    let archive = archive(store, password)?;
    let new: Vec<&Trusted<'_>> = certs
        .iter()
        .filter(|c| {
            !archive.certs.iter().any(|bag| {
                bag.cert.as_der() == c.der || bag.friendly_name.as_deref() == Some(&c.alias)
            })
        })
        .collect();
    if new.is_empty() {
        return Ok(None);
    }

    let bags = new
        .iter()
        .map(|cert| trusted_bag(cert))
        .collect::<Result<Vec<SafeBag>, Error>>()?;
    let contents = bags.to_der().map_err(asn1("new bags"))?;
    let info = match &protection {
        Protection::Plain => ContentInfo {
            content_type: DATA,
            content: any(&OctetString::new(contents).map_err(asn1("new bags"))?)?,
        },
        Protection::Encrypted(algorithm) => encrypted(algorithm, password, &contents)?,
    };

    // The existing ContentInfos are copied as bytes, not decoded and re-encoded.
    let mut reader = SliceReader::new(&safe_der).map_err(asn1("content list"))?;
    let header = Header::decode(&mut reader).map_err(asn1("content list"))?;
    let existing = reader
        .read_slice(header.length())
        .map_err(asn1("content list"))?;
    let appended = info.to_der().map_err(asn1("new content"))?;
    let length = Length::try_from(existing.len() + appended.len()).map_err(asn1("content list"))?;
    let mut new_safe = Header::new(Tag::Sequence, length)
        .to_der()
        .map_err(asn1("content list"))?;
    new_safe.extend_from_slice(existing);
    new_safe.extend_from_slice(&appended);

    let mac_data = match &pfx.mac_data {
        Some(old) => Some(mac(old, password, &new_safe)?),
        None => None,
    };
    let out = Pfx {
        version: pfx.version,
        auth_safe: ContentInfo {
            content_type: DATA,
            content: any(&OctetString::new(new_safe).map_err(asn1("store"))?)?,
        },
        mac_data,
    };
    out.to_der().map(Some).map_err(asn1("store"))
}

/// The certificates in the store's plain (unencrypted) SafeContents: all that the JVM reads when
/// it opens the store without a password, skipping encrypted bags.
pub(super) fn plain_certificates(store: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let pfx = Pfx::from_der(store).map_err(asn1("store"))?;
    let (_, safes) = authenticated_safe(&pfx)?;
    let mut out = Vec::new();
    for info in safes.iter().filter(|info| info.content_type == DATA) {
        for bag in plain_bags(info)?
            .iter()
            .filter(|bag| bag.bag_id == CERT_BAG)
        {
            // pkcs12 0.2.0-pre.0 decodes `bagValue` with its `[0] EXPLICIT` tag still on (and
            // encodes it without), so the wrapper is taken off here.
            let cert = pkcs5::der::asn1::ContextSpecific::<CertBag>::from_der(&bag.bag_value)
                .map(|explicit| explicit.value)
                .map_err(asn1("certificate bag"))?;
            if cert.cert_id == X509_CERTIFICATE {
                out.push(cert.cert_value.into_bytes().into_vec());
            }
        }
    }
    Ok(out)
}

/// Every certificate in the store, decrypting with `password` (the MAC, where there is one, is
/// checked too).
pub(super) fn all_certificates(store: &[u8], password: &str) -> Result<Vec<Vec<u8>>, Error> {
    Ok(archive(store, password)?
        .certs
        .iter()
        .map(|bag| bag.cert.as_der().to_vec())
        .collect())
}

/// The store decoded with `password`, within `p12::WORK_BUDGET` of key derivation: a store whose
/// MAC or certificates would cost more is refused rather than edited without knowing what it holds.
fn archive(store: &[u8], password: &str) -> Result<p12_keystore::Pkcs12Archive, Error> {
    let opened = match crate::p12::open(store, &[password]) {
        crate::p12::Outcome::Opened(opened) => opened,
        crate::p12::Outcome::UnknownPassword { limit: None } => return Err(Error::WrongPassword),
        crate::p12::Outcome::UnknownPassword { limit: Some(limit) } => {
            return Err(unsupported(limit));
        }
        crate::p12::Outcome::Malformed(reason) => return Err(unsupported(reason)),
    };
    // The budget, when it was the reason, says most about why.
    let reason = opened
        .skipped
        .iter()
        .find(|s| s.contains("work budget"))
        .or(opened.skipped.first());
    if let Some(reason) = reason {
        return Err(unsupported(format!(
            "{} of its items were not read ({reason})",
            opened.skipped.len()
        )));
    }
    p12_keystore::Pkcs12Archive::from_pkcs12(&opened.store, password)
        .map_err(|e| unsupported(e.to_string()))
}

/// The authenticated safe's DER (the content the MAC covers) and its ContentInfos.
fn authenticated_safe(pfx: &Pfx) -> Result<(Vec<u8>, Vec<ContentInfo>), Error> {
    let safe_der = OctetString::from_der(&pfx.auth_safe.content.to_der().map_err(asn1("store"))?)
        .map_err(asn1("authenticated safe"))?
        .into_bytes();
    let safes = pkcs12::AuthenticatedSafe::from_der(&safe_der).map_err(asn1("content list"))?;
    Ok((safe_der.into_vec(), safes))
}

/// The bags of a plain (`data`) SafeContents.
fn plain_bags(info: &ContentInfo) -> Result<Vec<SafeBag>, Error> {
    let bytes = OctetString::from_der(&info.content.to_der().map_err(asn1("contents"))?)
        .map_err(asn1("contents"))?;
    Vec::<SafeBag>::from_der(bytes.as_bytes()).map_err(asn1("bags"))
}

fn any(value: &impl Encode) -> Result<Any, Error> {
    Any::from_der(&value.to_der().map_err(asn1("encoding"))?).map_err(asn1("encoding"))
}

/// Plain where any plain SafeContents holds certificates (keytool's NONE protection, JDK 18+);
/// otherwise the scheme of the first encrypted one (keytool's default before JDK 18).
fn protection(safes: &[ContentInfo]) -> Result<Protection, Error> {
    let mut encrypted = None;
    for info in safes {
        if info.content_type == DATA {
            if plain_bags(info)?.iter().any(|bag| bag.bag_id == CERT_BAG) {
                return Ok(Protection::Plain);
            }
        } else if info.content_type == ENCRYPTED_DATA && encrypted.is_none() {
            let data = EncryptedData::from_der(&info.content.to_der().map_err(asn1("contents"))?)
                .map_err(asn1("encrypted contents"))?;
            encrypted = Some(data.enc_content_info.content_enc_alg);
        }
    }
    Ok(encrypted.map_or(Protection::Plain, Protection::Encrypted))
}

/// A certificate bag as keytool writes a trusted-certificate entry: the alias as friendlyName and
/// Java's trusted-key-usage attribute with anyExtendedKeyUsage (what `keytool -importcert` and
/// `KeyStore.setCertificateEntry` record).
fn trusted_bag(cert: &Trusted<'_>) -> Result<SafeBag, Error> {
    let name = BmpString::from_utf8(&cert.alias).map_err(asn1("alias"))?;
    let mut attributes = Attributes::new();
    for (oid, value) in [
        (FRIENDLY_NAME, any(&name)?),
        (TRUSTED_KEY_USAGE, any(&ANY_EXTENDED_KEY_USAGE)?),
    ] {
        attributes
            .insert(Attribute {
                oid,
                values: SetOfVec::from_iter([value]).map_err(asn1("attribute"))?,
            })
            .map_err(asn1("attribute"))?;
    }
    let bag = CertBag {
        cert_id: X509_CERTIFICATE,
        cert_value: OctetString::new(cert.der).map_err(asn1("certificate"))?,
    };
    Ok(SafeBag {
        bag_id: CERT_BAG,
        bag_value: bag.to_der().map_err(asn1("certificate"))?,
        bag_attributes: Some(attributes),
    })
}

#[cfg(test)]
mod tests;
