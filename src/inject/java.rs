//! Adding trusted certificates to Java `cacerts` stores: JKS/JCEKS (edited in place, keeping
//! every existing entry byte for byte and recomputing the keyed SHA-1 integrity digest, so no
//! JVM is needed) and PKCS#12 (`java_p12`: new bags appended with the store's own protection, so
//! a password-less JDK 18+ `cacerts` stays readable without a password). It refuses a store whose
//! password does not verify rather than writing one `keytool` would reject.

use sha1::{Digest, Sha1};

/// Why a Java store could not be updated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the store password is wrong (the integrity check fails); pass --java-store-password")]
    WrongPassword,
    #[error("the store is not a JKS, JCEKS or PKCS#12 keystore: {reason}")]
    Format { reason: String },
    #[error("the store holds JCEKS secret-key entries, which cannot be rewritten without a JVM")]
    SecretEntries,
    /// The rewritten store, read back the way the JVM will read it, lost certificates: it is
    /// never written.
    #[error(
        "read back {how}, as the JVM will read it, the rewritten store has {kept} of its {before} \
         original certificates and {added} of {wanted} new ones; refusing to write a store that \
         takes trust away"
    )]
    ReadBack {
        how: &'static str,
        before: usize,
        kept: usize,
        wanted: usize,
        added: usize,
    },
}

fn format_error(reason: impl Into<String>) -> Error {
    Error::Format {
        reason: reason.into(),
    }
}

/// A certificate to add: alias and DER.
pub struct Trusted<'a> {
    pub alias: String,
    pub der: &'a [u8],
    /// Milliseconds since the epoch recorded as the entry's creation date (fixed for
    /// reproducible layers: the certificate's notBefore).
    pub created_millis: u64,
}

fn integrity(password: &str, data: &[u8]) -> [u8; 20] {
    let mut hasher = Sha1::new();
    for unit in password.encode_utf16() {
        hasher.update(unit.to_be_bytes());
    }
    hasher.update(b"Mighty Aphrodite");
    hasher.update(data);
    hasher.finalize().into()
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| format_error("truncated"))?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn utf(&mut self) -> Result<&'a [u8], Error> {
        let b = self.take(2)?;
        self.take(u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn blob(&mut self) -> Result<&'a [u8], Error> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// The entries of a JKS or JCEKS body (the store without its 20-byte integrity digest).
struct Jks<'a> {
    version: u32,
    count: u32,
    entries_start: usize,
    aliases: Vec<String>,
    /// The DER of every trusted-certificate entry.
    ders: Vec<&'a [u8]>,
}

fn parse_jks(body: &[u8]) -> Result<Jks<'_>, Error> {
    let mut reader = Reader { data: body, at: 4 };
    let version = reader.u32()?;
    let count = reader.u32()?;
    let entries_start = reader.at;
    let mut aliases = Vec::new();
    let mut ders: Vec<&[u8]> = Vec::new();
    for _ in 0..count {
        let tag = reader.u32()?;
        aliases.push(String::from_utf8_lossy(reader.utf()?).into_owned());
        reader.take(8)?;
        match tag {
            1 => {
                reader.blob()?;
                let chain = reader.u32()?;
                for _ in 0..chain {
                    if version == 2 {
                        reader.utf()?;
                    }
                    reader.blob()?;
                }
            }
            2 => {
                if version == 2 {
                    reader.utf()?;
                }
                ders.push(reader.blob()?);
            }
            3 => return Err(Error::SecretEntries),
            other => return Err(format_error(format!("unknown entry tag {other}"))),
        }
    }
    if reader.at != body.len() {
        return Err(format_error("trailing bytes after the entries"));
    }
    Ok(Jks {
        version,
        count,
        entries_start,
        aliases,
        ders,
    })
}

/// Adds certificates to a JKS or JCEKS store; returns `None` when every certificate is already
/// in it (nothing to change).
fn add_to_jks(
    store: &[u8],
    password: &str,
    certs: &[Trusted<'_>],
) -> Result<Option<Vec<u8>>, Error> {
    if store.len() < 32 {
        return Err(format_error("too short"));
    }
    let (body, digest) = store.split_at(store.len() - 20);
    if integrity(password, body) != digest {
        return Err(Error::WrongPassword);
    }
    let Jks {
        version,
        count,
        entries_start,
        aliases,
        ders,
    } = parse_jks(body)?;
    let new: Vec<&Trusted<'_>> = certs
        .iter()
        .filter(|c| !ders.contains(&c.der) && !aliases.contains(&c.alias))
        .collect();
    if new.is_empty() {
        return Ok(None);
    }
    let mut out =
        Vec::with_capacity(store.len() + new.iter().map(|c| c.der.len() + 64).sum::<usize>());
    out.extend_from_slice(&body[..4]);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(count + new.len() as u32).to_be_bytes());
    out.extend_from_slice(&body[entries_start..]);
    for cert in new {
        out.extend_from_slice(&2u32.to_be_bytes());
        out.extend_from_slice(&(cert.alias.len() as u16).to_be_bytes());
        out.extend_from_slice(cert.alias.as_bytes());
        out.extend_from_slice(&cert.created_millis.to_be_bytes());
        if version == 2 {
            out.extend_from_slice(&5u16.to_be_bytes());
            out.extend_from_slice(b"X.509");
        }
        out.extend_from_slice(&(cert.der.len() as u32).to_be_bytes());
        out.extend_from_slice(cert.der);
    }
    let digest = integrity(password, &out);
    out.extend_from_slice(&digest);
    Ok(Some(out))
}

fn is_jks(store: &[u8]) -> bool {
    matches!(
        store.get(..4),
        Some([0xfe, 0xed, 0xfe, 0xed] | [0xce, 0xce, 0xce, 0xce])
    )
}

/// Adds trusted certificates to a Java store of any supported kind. The new store is read back
/// (`check_read_back`) before it is returned: a store that would lose trust is an error.
pub fn add_trusted(
    store: &[u8],
    password: &str,
    certs: &[Trusted<'_>],
) -> Result<Option<Vec<u8>>, Error> {
    let updated = if is_jks(store) {
        add_to_jks(store, password, certs)?
    } else if store.first() == Some(&0x30) {
        super::java_p12::add(store, password, certs)?
    } else {
        return Err(format_error("unknown magic bytes"));
    };
    match updated {
        Some(updated) => {
            check_read_back(store, &updated, password, certs)?;
            Ok(Some(updated))
        }
        None => Ok(None),
    }
}

/// The certificates a JVM reads from `store` as a trust store: with `password`, or, with none, as
/// it opens `cacerts` at run time unless `javax.net.ssl.trustStorePassword` is set (a JKS without
/// its integrity check, a PKCS#12 skipping every encrypted bag).
fn readable(store: &[u8], password: Option<&str>) -> Result<Vec<Vec<u8>>, Error> {
    if is_jks(store) {
        if store.len() < 32 {
            return Err(format_error("too short"));
        }
        let body = &store[..store.len() - 20];
        if let Some(password) = password
            && integrity(password, body) != store[store.len() - 20..]
        {
            return Err(Error::WrongPassword);
        }
        Ok(parse_jks(body)?
            .ders
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect())
    } else {
        match password {
            None => super::java_p12::plain_certificates(store),
            Some(password) => super::java_p12::all_certificates(store, password),
        }
    }
}

/// Reads `updated` back the way the JVM will read it (with no password when the original gave
/// the JVM its certificates without one, else with the store password) and fails unless every
/// certificate the original gave is still there and every added one is readable too.
pub(super) fn check_read_back(
    original: &[u8],
    updated: &[u8],
    password: &str,
    added: &[Trusted<'_>],
) -> Result<(), Error> {
    let without_password = readable(original, None)?;
    let (how, before, after) = if without_password.is_empty() {
        (
            "with the store password",
            readable(original, Some(password))?,
            readable(updated, Some(password))?,
        )
    } else {
        (
            "without a password",
            without_password,
            readable(updated, None)?,
        )
    };
    let kept = before.iter().filter(|der| after.contains(der)).count();
    let new: Vec<&[u8]> = added
        .iter()
        .map(|c| c.der)
        .filter(|der| !before.iter().any(|b| b == der))
        .collect();
    let readable_new = new
        .iter()
        .filter(|der| after.iter().any(|a| a == *der))
        .count();
    if kept == before.len() && readable_new == new.len() {
        Ok(())
    } else {
        Err(Error::ReadBack {
            how,
            before: before.len(),
            kept,
            wanted: new.len(),
            added: readable_new,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        fs_err::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures")
                .join(name),
        )
        .unwrap()
    }

    fn leaf_der() -> Vec<u8> {
        crate::detect::pem::blocks(&fixture("certs/leaf.pem"))
            .remove(0)
            .body
            .unwrap()
    }

    /// keytool (a real JVM reader) lists the new entry and accepts the integrity digest.
    #[test]
    fn keytool_accepts_the_rewritten_jks_and_idempotency_holds() {
        let der = leaf_der();
        let cert = Trusted {
            alias: "ocicert-test".into(),
            der: &der,
            created_millis: 1_735_689_600_000,
        };
        let updated = add_trusted(
            &fixture("certs/truststore.jks"),
            "changeit",
            std::slice::from_ref(&cert),
        )
        .unwrap()
        .unwrap();
        assert!(
            add_trusted(&updated, "changeit", &[cert])
                .unwrap()
                .is_none(),
            "a second run changes nothing"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cacerts");
        fs_err::write(&path, &updated).unwrap();
        let output = std::process::Command::new("keytool")
            .args([
                "-list",
                "-keystore",
                path.to_str().unwrap(),
                "-storepass",
                "changeit",
            ])
            .output()
            .expect("keytool is installed (openjdk-17-jre-headless)");
        let listing = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{listing}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(listing.contains("ocicert-test"), "{listing}");
        assert!(listing.contains("3 entries"), "{listing}");
    }

    #[test]
    fn a_wrong_password_or_garbage_is_refused() {
        let der = leaf_der();
        let cert = Trusted {
            alias: "a".into(),
            der: &der,
            created_millis: 0,
        };
        assert!(matches!(
            add_trusted(
                &fixture("certs/truststore.jks"),
                "wrong",
                std::slice::from_ref(&cert)
            ),
            Err(Error::WrongPassword)
        ));
        assert!(matches!(
            add_trusted(b"garbage!", "changeit", std::slice::from_ref(&cert)),
            Err(Error::Format { .. })
        ));
        // The bundle already holds the leaf, so adding it again changes nothing.
        assert!(matches!(
            add_trusted(
                &fixture("certs/bundle.p12"),
                "changeit",
                std::slice::from_ref(&cert)
            ),
            Ok(None)
        ));
        assert!(matches!(
            add_trusted(&fixture("certs/bundle.p12"), "nope", &[cert]),
            Err(Error::WrongPassword)
        ));
    }
}
