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

use super::java::{Error, Trusted};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::encrypted_data::EncryptedData;
use cms::enveloped_data::EncryptedContentInfo;
use pkcs5::der::asn1::{BmpString, ObjectIdentifier, OctetString, SetOfVec};
use pkcs5::der::{Any, Decode, Encode, Header, Length, Reader, SliceReader, Tag};
use pkcs12::cms::cert::x509::attr::{Attribute, Attributes};
use pkcs12::pbe_params::Pkcs12PbeParams;
use pkcs12::{CertBag, DigestInfo, MacData, Pfx, SafeBag, kdf};
use sha2::Digest as _;

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
const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

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

    let archive = match p12_keystore::Pkcs12Archive::from_pkcs12(store, password) {
        Ok(archive) => archive,
        Err(p12_keystore::error::Error::MacError(_)) => return Err(Error::WrongPassword),
        Err(e) if pfx.mac_data.is_none() && matches!(protection, Protection::Encrypted(_)) => {
            return Err(unsupported(format!(
                "its certificates could not be decrypted ({e}); is --java-store-password right?"
            )));
        }
        Err(e) => return Err(unsupported(e.to_string())),
    };
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
    match p12_keystore::Pkcs12Archive::from_pkcs12(store, password) {
        Ok(archive) => Ok(archive
            .certs
            .iter()
            .map(|bag| bag.cert.as_der().to_vec())
            .collect()),
        Err(p12_keystore::error::Error::MacError(_)) => Err(Error::WrongPassword),
        Err(e) => Err(unsupported(e.to_string())),
    }
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
fn encrypted(
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
            .map_err(|_| unsupported("MAC key length".into()))?;
        mac.update($data);
        mac.finalize().into_bytes().to_vec()
    }};
}

/// The store's MAC over the new contents: same digest, iteration count and salt length.
fn mac(old: &MacData, password: &str, data: &[u8]) -> Result<MacData, Error> {
    let salt = derived("pkcs12 mac salt", data, old.mac_salt.as_bytes().len());
    let iterations = old.iterations;
    let digest = match old.mac.algorithm.oid {
        SHA1 => pkcs12_hmac!(sha1_11::Sha1, password, &salt, iterations, data),
        SHA224 => pkcs12_hmac!(sha2_11::Sha224, password, &salt, iterations, data),
        SHA256 => pkcs12_hmac!(sha2_11::Sha256, password, &salt, iterations, data),
        SHA384 => pkcs12_hmac!(sha2_11::Sha384, password, &salt, iterations, data),
        SHA512 => pkcs12_hmac!(sha2_11::Sha512, password, &salt, iterations, data),
        other => {
            return Err(unsupported(format!(
                "the store's MAC uses digest {other}, which ocicert cannot write"
            )));
        }
    };
    Ok(MacData {
        mac: DigestInfo {
            algorithm: old.mac.algorithm.clone(),
            digest: OctetString::new(digest).map_err(asn1("MAC"))?,
        },
        mac_salt: OctetString::new(salt).map_err(asn1("MAC salt"))?,
        iterations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::java::{add_trusted, check_read_back};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn leaf_der() -> Vec<u8> {
        let pem = fs_err::read(root().join("fixtures/certs/leaf.pem")).unwrap();
        crate::detect::pem::blocks(&pem).remove(0).body.unwrap()
    }

    fn run(command: &mut Command) -> String {
        let output = command.output().expect("the command is installed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{command:?}: {text}");
        text
    }

    /// The trust anchors a JVM loads from `store` as its default trust store: with no password,
    /// as it opens `cacerts` at run time (keytool, which always has one, cannot show this).
    fn jvm_anchors(store: &Path, password: Option<&str>) -> Vec<String> {
        let mut command = Command::new("java");
        command.arg(format!("-Djavax.net.ssl.trustStore={}", store.display()));
        if let Some(password) = password {
            command.arg(format!("-Djavax.net.ssl.trustStorePassword={password}"));
        }
        command.arg(root().join("tests/support/TrustAnchors.java"));
        let text = run(&mut command);
        let mut lines = text.lines();
        let count: usize = lines
            .next()
            .and_then(|l| l.strip_prefix("anchors "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{text}"));
        let subjects: Vec<String> = lines.map(str::to_string).collect();
        assert_eq!(subjects.len(), count, "{text}");
        subjects
    }

    /// The fixture JKS (a root and an intermediate) converted by keytool with extra options.
    fn keytool_p12(dir: &Path, options: &[&str]) -> PathBuf {
        let out = dir.join(format!("store-{}.p12", options.len()));
        let mut command = Command::new("keytool");
        command.args(options).args([
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            root()
                .join("fixtures/certs/truststore.jks")
                .to_str()
                .unwrap(),
            "-srcstorepass",
            "changeit",
            "-deststoretype",
            "PKCS12",
            "-deststorepass",
            "changeit",
            "-destkeystore",
            out.to_str().unwrap(),
        ]);
        run(&mut command);
        out
    }

    fn inject(store: &Path, dir: &Path) -> PathBuf {
        let der = leaf_der();
        let cert = Trusted {
            alias: "ocicert-test".into(),
            der: &der,
            created_millis: 0,
        };
        let original = fs_err::read(store).unwrap();
        // Through the public entry, so the read-back check runs on every shape.
        let updated = add_trusted(&original, "changeit", std::slice::from_ref(&cert))
            .unwrap()
            .expect("a new certificate changes the store");
        assert!(
            add_trusted(&updated, "changeit", &[cert])
                .unwrap()
                .is_none(),
            "a second run changes nothing"
        );
        let out = dir.join("injected.p12");
        fs_err::write(&out, &updated).unwrap();
        out
    }

    const LEAF: &str = "CN=app.example.test";

    /// JDK 18+'s `cacerts` layout (GenerateCacerts stores with a null password: plain
    /// certificate bags, no MAC). The regression: the rewritten store had every bag encrypted,
    /// and the JVM's default trust manager then loaded 0 anchors instead of all of them.
    #[test]
    fn a_password_less_store_stays_readable_by_the_jvm_without_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let store = keytool_p12(
            dir.path(),
            &[
                "-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE",
                "-J-Dkeystore.pkcs12.macAlgorithm=NONE",
            ],
        );
        let before = jvm_anchors(&store, None);
        assert_eq!(before.len(), 2, "{before:?}");
        let injected = inject(&store, dir.path());
        let after = jvm_anchors(&injected, None);
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(before.iter().all(|s| after.contains(s)), "{after:?}");
        // The read-back check's model of the JVM agrees with the JVM.
        let injected_bytes = fs_err::read(&injected).unwrap();
        assert_eq!(plain_certificates(&injected_bytes).unwrap().len(), 3);
        assert!(after.iter().any(|s| s.contains(LEAF)), "{after:?}");
        let pfx = Pfx::from_der(&fs_err::read(&injected).unwrap()).unwrap();
        assert!(pfx.mac_data.is_none(), "no MAC where there was none");
        // The original certificate bags are still there byte for byte.
        let original = fs_err::read(&store).unwrap();
        let old = Pfx::from_der(&original).unwrap();
        let old_safe = old.auth_safe.content.value();
        let new = fs_err::read(&injected).unwrap();
        let inner = &old_safe[4..];
        assert!(new.windows(inner.len()).any(|w| w == inner));
    }

    /// Plain certificate bags under a MAC (keytool with only certProtectionAlgorithm=NONE): the
    /// JVM reads every anchor with no password, and the MAC is recomputed with the same digest,
    /// iterations and salt length, which OpenSSL verifies.
    #[test]
    fn plain_bags_under_a_mac_stay_plain_and_the_mac_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let store = keytool_p12(
            dir.path(),
            &["-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE"],
        );
        let injected = inject(&store, dir.path());
        let after = jvm_anchors(&injected, None);
        assert_eq!(after.len(), 3, "{after:?}");
        let info = |path: &Path| {
            run(Command::new("openssl").args([
                "pkcs12",
                "-info",
                "-nokeys",
                "-noout",
                "-passin",
                "pass:changeit",
                "-in",
                path.to_str().unwrap(),
            ]))
        };
        let (before, after) = (info(&store), info(&injected));
        let shape = |text: &str| -> Vec<String> {
            let mut lines: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with("MAC") || l.starts_with("PKCS7"))
                .map(str::to_string)
                .collect();
            lines.dedup();
            lines
        };
        assert_eq!(shape(&before), shape(&after), "{before}\n---\n{after}");
        assert!(shape(&after).contains(&"PKCS7 Data".to_string()), "{after}");
        assert!(after.contains("MAC: sha256, Iteration 10000"), "{after}");
        assert!(!after.contains("Encrypted"), "{after}");
    }

    /// keytool's default before JDK 18 (PBES2 AES-256 certificate bags, SHA-256 MAC): the new
    /// bag is encrypted the same way, so the JVM reads all three with the password and, as
    /// before, none without it; OpenSSL verifies the recomputed MAC and reports one scheme.
    #[test]
    fn an_encrypted_store_keeps_its_scheme_and_its_mac() {
        let dir = tempfile::tempdir().unwrap();
        let store = keytool_p12(dir.path(), &[]);
        let injected = inject(&store, dir.path());
        assert_eq!(jvm_anchors(&injected, Some("changeit")).len(), 3);
        assert_eq!(jvm_anchors(&injected, None).len(), 0);
        let info = run(Command::new("openssl").args([
            "pkcs12",
            "-info",
            "-nokeys",
            "-passin",
            "pass:changeit",
            "-in",
            injected.to_str().unwrap(),
        ]));
        assert!(info.contains("MAC: sha256, Iteration 10000"), "{info}");
        assert_eq!(
            info.matches("PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256")
                .count(),
            2,
            "{info}"
        );
        assert!(info.contains("app.example.test"), "{info}");
        let original = fs_err::read(&store).unwrap();
        let der = leaf_der();
        let cert = Trusted {
            alias: "x".into(),
            der: &der,
            created_millis: 0,
        };
        assert!(matches!(
            add(&original, "wrong", &[cert]),
            Err(Error::WrongPassword)
        ));
    }

    /// OpenSSL's PKCS#12 PBE schemes: 40-bit RC2 (`-legacy`, keytool before JDK 12) and
    /// SHA1-3DES, each read back by OpenSSL with the recomputed SHA-1 MAC.
    #[test]
    fn legacy_pbe_stores_get_bags_in_their_own_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let pem = root().join("fixtures/certs/root-ca.pem");
        for (name, options, scheme) in [
            (
                "rc2",
                &["-legacy"][..],
                "pbeWithSHA1And40BitRC2-CBC, Iteration 2048",
            ),
            (
                "3des",
                &["-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"][..],
                "pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
            ),
        ] {
            let store = dir.path().join(format!("{name}.p12"));
            run(Command::new("openssl")
                .args(["pkcs12", "-export", "-nokeys", "-passout", "pass:changeit"])
                .args(options)
                .args([
                    "-in",
                    pem.to_str().unwrap(),
                    "-out",
                    store.to_str().unwrap(),
                ]));
            let injected = inject(&store, dir.path());
            let info = run(Command::new("openssl")
                .args(["pkcs12", "-info", "-nokeys", "-passin", "pass:changeit"])
                .args(options.iter().filter(|o| **o == "-legacy"))
                .args(["-in", injected.to_str().unwrap()]));
            assert!(info.contains("MAC: sha1"), "{name}: {info}");
            assert_eq!(info.matches(scheme).count(), 2, "{name}: {info}");
            assert!(info.contains("app.example.test"), "{name}: {info}");
            // The JVM (which knows both schemes) reads the new entry as a trust anchor.
            let anchors = jvm_anchors(&injected, Some("changeit"));
            assert!(
                anchors.iter().any(|s| s.contains(LEAF)),
                "{name}: {anchors:?}"
            );
        }
    }

    /// The read-back check catches the regression itself: the old rewrite of a password-less
    /// store (p12-keystore's writer, which encrypts every bag) leaves the JVM none of its roots,
    /// and is refused with the counts, before anything is written.
    #[test]
    fn the_read_back_check_refuses_a_rewrite_that_hides_the_roots_from_the_jvm() {
        use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
        let dir = tempfile::tempdir().unwrap();
        let store = keytool_p12(
            dir.path(),
            &[
                "-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE",
                "-J-Dkeystore.pkcs12.macAlgorithm=NONE",
            ],
        );
        let original = fs_err::read(&store).unwrap();
        let der = leaf_der();
        let mut keystore =
            KeyStore::from_pkcs12(&original, "changeit", Pkcs12ImportPolicy::Relaxed).unwrap();
        keystore.add_entry(
            "ocicert-test",
            KeyStoreEntry::Certificate(Certificate::from_der(&der).unwrap()),
        );
        let rewritten = keystore.writer("changeit").write().unwrap();
        let cert = Trusted {
            alias: "ocicert-test".into(),
            der: &der,
            created_millis: 0,
        };
        let error = check_read_back(&original, &rewritten, "changeit", &[cert]).unwrap_err();
        assert!(
            matches!(
                error,
                Error::ReadBack {
                    how: "without a password",
                    before: 2,
                    kept: 0,
                    wanted: 1,
                    added: 0
                }
            ),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("0 of its 2 original certificates"),
            "{error}"
        );
        // The same rewrite read with the password has everything: keytool would not notice.
        let path = dir.path().join("rewritten.p12");
        fs_err::write(&path, &rewritten).unwrap();
        assert_eq!(jvm_anchors(&path, Some("changeit")).len(), 3);
        assert_eq!(jvm_anchors(&path, None).len(), 0);
    }
}
