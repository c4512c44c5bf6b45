//! Adding trusted certificates to Java `cacerts` stores: JKS/JCEKS (`crate::jks`: edited in
//! place, keeping every existing entry byte for byte and recomputing the keyed SHA-1 integrity
//! digest, so no JVM is needed) and PKCS#12 (`java_p12`: new bags appended with the store's own protection, so
//! a password-less JDK 18+ `cacerts` stays readable without a password). It refuses a store whose
//! password does not verify rather than writing one `keytool` would reject.

use crate::jks;

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

/// A whole, undamaged JKS or JCEKS store.
fn parse(store: &[u8]) -> Result<jks::Store<'_>, Error> {
    let parsed = jks::parse(store).map_err(|e| format_error(e.to_string()))?;
    match &parsed.damaged {
        Some(reason) => Err(format_error(reason.to_string())),
        None => Ok(parsed),
    }
}

/// The trusted-certificate DERs of a JKS or JCEKS store (the digest is not checked here).
fn jks_trusted(store: &[u8]) -> Result<Vec<&[u8]>, Error> {
    let parsed = parse(store)?;
    let mut ders = Vec::new();
    for entry in &parsed.entries {
        match entry {
            jks::Entry::Trusted { der, .. } => ders.push(*der),
            jks::Entry::PrivateKey { .. } => {}
            jks::Entry::Secret { .. } => return Err(Error::SecretEntries),
        }
    }
    Ok(ders)
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
    let (body, digest) = store.split_at(store.len() - jks::DIGEST_LEN);
    if jks::integrity(password, body) != digest {
        return Err(Error::WrongPassword);
    }
    let parsed = parse(body)?;
    if parsed
        .entries
        .iter()
        .any(|e| matches!(e, jks::Entry::Secret { .. }))
    {
        return Err(Error::SecretEntries);
    }
    if parsed.entries_end != body.len() {
        return Err(format_error("trailing bytes after the entries"));
    }
    let present = |cert: &Trusted<'_>| {
        parsed.entries.iter().any(|entry| match entry {
            jks::Entry::Trusted { alias, der } => *der == cert.der || *alias == cert.alias,
            jks::Entry::PrivateKey { alias, .. } | jks::Entry::Secret { alias } => {
                *alias == cert.alias
            }
        })
    };
    let new: Vec<jks::NewTrusted<'_>> = certs
        .iter()
        .filter(|cert| !present(cert))
        .map(|cert| jks::NewTrusted {
            alias: &cert.alias,
            der: cert.der,
            created_millis: cert.created_millis,
        })
        .collect();
    if new.is_empty() {
        return Ok(None);
    }
    Ok(Some(jks::append_trusted(body, &parsed, password, &new)))
}

fn is_jks(store: &[u8]) -> bool {
    jks::kind(store).is_some()
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
        let (body, digest) = store.split_at(store.len() - jks::DIGEST_LEN);
        if let Some(password) = password
            && jks::integrity(password, body) != digest
        {
            return Err(Error::WrongPassword);
        }
        Ok(jks_trusted(body)?.into_iter().map(<[u8]>::to_vec).collect())
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
    use crate::test_fixtures::fixture;

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
