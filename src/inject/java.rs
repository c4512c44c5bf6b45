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

/// Adds trusted certificates to a Java store of any supported kind.
pub fn add_trusted(
    store: &[u8],
    password: &str,
    certs: &[Trusted<'_>],
) -> Result<Option<Vec<u8>>, Error> {
    match store.get(..4) {
        Some([0xfe, 0xed, 0xfe, 0xed]) | Some([0xce, 0xce, 0xce, 0xce]) => {
            add_to_jks(store, password, certs)
        }
        Some([0x30, ..]) => super::java_p12::add(store, password, certs),
        _ => Err(format_error("unknown magic bytes")),
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
