//! The CAs to inject, read from PEM files: every certificate in each file, checked to be a CA
//! (unless the caller allows others), duplicates dropped, and a warning for each that has
//! expired or expires within 30 days. It does not decide what to do with them: `plan` does.

use super::plan::Ca;
use std::path::Path;

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read CA file `{path}`")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----`)")]
    NoCertificate { path: String },
    #[error("`{path}`: a certificate does not decode: {reason}")]
    Decode { path: String, reason: String },
    #[error("`{path}`: a certificate does not parse as X.509")]
    Parse { path: String },
    #[error(
        "`{path}`: `{subject}` is not a CA certificate (basicConstraints CA:TRUE is missing); pass --allow-non-ca to trust it anyway"
    )]
    NotCa { path: String, subject: String },
}

/// How soon before its expiry a CA is worth a warning.
const EXPIRY_WARNING_SECONDS: i64 = 30 * 86_400;

/// Reads the CAs in `bytes` (the contents of `path`), judged at `now` (Unix seconds), adding
/// new ones to `cas`; returns warnings about expired or expiring CAs.
pub fn add_from_pem(
    cas: &mut Vec<Ca>,
    path: &Path,
    bytes: &[u8],
    allow_non_ca: bool,
    now: i64,
) -> Result<Vec<String>, Error> {
    let name = || path.display().to_string();
    let blocks: Vec<_> = crate::detect::pem::blocks(bytes)
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE" || b.label == "TRUSTED CERTIFICATE")
        .collect();
    if blocks.is_empty() {
        return Err(Error::NoCertificate { path: name() });
    }
    let mut warnings = Vec::new();
    for block in blocks {
        let der = block.body.map_err(|reason| Error::Decode {
            path: name(),
            reason: reason.to_string(),
        })?;
        let der = der[..crate::x509::certificate_len(&der).unwrap_or(der.len())].to_vec();
        let ca = Ca::new(der).ok_or_else(|| Error::Parse { path: name() })?;
        if !ca.info.is_ca && !allow_non_ca {
            return Err(Error::NotCa {
                path: name(),
                subject: ca.info.subject,
            });
        }
        if ca.info.not_after_unix < now {
            warnings.push(format!(
                "`{}` expired on {}",
                ca.info.subject, ca.info.not_after
            ));
        } else if ca.info.not_after_unix - now < EXPIRY_WARNING_SECONDS {
            warnings.push(format!(
                "`{}` expires soon, on {}",
                ca.info.subject, ca.info.not_after
            ));
        }
        if !cas.iter().any(|c| c.der == ca.der) {
            cas.push(ca);
        }
    }
    Ok(warnings)
}

/// Reads every file of `paths` with `add_from_pem`.
pub fn load(
    paths: &[impl AsRef<Path>],
    allow_non_ca: bool,
    now: i64,
) -> Result<(Vec<Ca>, Vec<String>), Error> {
    let mut cas = Vec::new();
    let mut warnings = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let bytes = fs_err::read(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        warnings.extend(add_from_pem(&mut cas, path, &bytes, allow_non_ca, now)?);
    }
    Ok((cas, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::fixture;

    #[test]
    fn a_ca_is_read_once_and_a_leaf_or_garbage_is_refused() {
        let root = fixture("certs/root-ca.pem");
        let mut cas = Vec::new();
        let path = Path::new("root-ca.pem");
        add_from_pem(&mut cas, path, &root, false, 0).unwrap();
        add_from_pem(&mut cas, path, &root, false, 0).unwrap();
        assert_eq!(cas.len(), 1, "the same CA twice is one CA");

        let leaf = fixture("certs/leaf.pem");
        let error = add_from_pem(&mut cas, Path::new("leaf.pem"), &leaf, false, 0).unwrap_err();
        assert!(error.to_string().contains("--allow-non-ca"), "{error}");
        add_from_pem(&mut cas, Path::new("leaf.pem"), &leaf, true, 0).unwrap();
        assert_eq!(cas.len(), 2);

        let garbage = add_from_pem(&mut cas, Path::new("x.pem"), b"not pem", false, 0);
        assert!(matches!(garbage, Err(Error::NoCertificate { .. })));
    }

    #[test]
    fn an_expired_ca_is_a_warning_not_an_error() {
        let root = fixture("certs/root-ca.pem");
        let mut cas = Vec::new();
        let warnings = add_from_pem(
            &mut cas,
            Path::new("root-ca.pem"),
            &root,
            false,
            i64::MAX / 2,
        )
        .unwrap();
        assert_eq!(cas.len(), 1);
        assert!(
            warnings.iter().any(|w| w.contains("expired on")),
            "{warnings:?}"
        );
    }
}
