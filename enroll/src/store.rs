//! The output dir: decide whether the certificate already there can be reused, and write a new
//! key, cert, chain and CA bundle atomically (temp file in the same dir, fsync, rename).
//!
//! The key file is created with mode 0600 and never read back except to compare its public key.
//! This module does not enroll and does not decide policy beyond "enough life left, same key,
//! every wanted SAN present".

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use ocicert_enroll_config::files;

use crate::der::{self, CertInfo, San};
use crate::key::Key;

/// What a CA returned.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The leaf, DER.
    pub leaf: Vec<u8>,
    /// Intermediates, leaf's issuer first, DER.
    pub chain: Vec<Vec<u8>>,
    /// The issuing CA bundle, DER.
    pub ca: Vec<Vec<u8>>,
}

/// Why the output dir could not be written or an issued certificate is unusable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The dir or a file cannot be created, written or renamed.
    #[error("cannot write `{path}`{hint}")]
    Write {
        /// The file or dir.
        path: PathBuf,
        /// A hint for read-only roots and permissions.
        hint: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CA returned a certificate that is not DER X.509.
    #[error("the issued certificate cannot be parsed")]
    Parse(#[source] der::Error),
    /// The CA certified another key.
    #[error("the issued certificate is not for the key the stub generated")]
    WrongKey,
    /// The CA left out a SAN we asked for.
    #[error("the issued certificate lacks the SubjectAltName `{0}`")]
    MissingSan(String),
    /// `app_ca_file` cannot be read.
    #[error("cannot read `app_ca_file` `{path}`")]
    AppCa {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `renew_before` is neither a percentage nor a duration.
    #[error(
        "`renew_before` `{0}` is neither a percentage (`33%`) nor a duration (`90s`, `30m`, `12h`, `7d`)"
    )]
    Threshold(String),
}

/// When a certificate counts as due for renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// This share (percent) of the total lifetime left.
    Percent(u8),
    /// This many seconds left.
    Seconds(i64),
}

impl Threshold {
    /// Parses `"33%"`, `"90s"`, `"30m"`, `"12h"`, `"7d"`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = || Error::Threshold(text.to_owned());
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            let percent: u8 = percent.trim().parse().map_err(|_| bad())?;
            return if percent <= 100 {
                Ok(Self::Percent(percent))
            } else {
                Err(bad())
            };
        }
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = text.split_at(split);
        let number: i64 = number.parse().map_err(|_| bad())?;
        let factor = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        Ok(Self::Seconds(number.saturating_mul(factor)))
    }

    /// The Unix time at which `info` becomes due for renewal.
    pub fn renew_at(self, info: &CertInfo) -> i64 {
        let left = match self {
            Self::Percent(percent) => {
                (info.not_after - info.not_before).max(0) * i64::from(percent) / 100
            }
            Self::Seconds(seconds) => seconds,
        };
        info.not_after - left
    }
}

/// The files of the output dir.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The dir.
    pub dir: PathBuf,
    /// `key.pem`.
    pub key: PathBuf,
    /// `cert.pem`: leaf + intermediates.
    pub cert: PathBuf,
    /// `chain.pem`: intermediates.
    pub chain: PathBuf,
    /// `ca.pem`.
    pub ca: PathBuf,
}

impl Paths {
    /// The files under `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            key: dir.join(files::KEY),
            cert: dir.join(files::CERT),
            chain: dir.join(files::CHAIN),
            ca: dir.join(files::CA),
        }
    }
}

/// The outcome of looking at the output dir.
#[derive(Debug)]
pub enum Existing {
    /// Reuse this certificate.
    Reuse(CertInfo),
    /// Enroll, for this reason (for the log line).
    Enroll(String),
}

/// Is there a certificate worth keeping? It must parse, match the key file, hold every wanted
/// SAN, have started, and have more than `threshold` of life left at `now`.
pub fn check(paths: &Paths, wanted: &[San], threshold: Threshold, now: i64) -> Existing {
    let Ok(cert_text) = fs::read_to_string(&paths.cert) else {
        return Existing::Enroll("no certificate in the output dir".into());
    };
    let Some(info) = der::pem_decode_all(&cert_text, "CERTIFICATE")
        .ok()
        .and_then(|blocks| blocks.into_iter().next())
        .and_then(|leaf| der::parse_certificate(&leaf).ok())
    else {
        return Existing::Enroll("the existing certificate does not parse".into());
    };
    let key_matches = fs::read_to_string(&paths.key)
        .ok()
        .and_then(|pem| Key::from_pem(&pem).ok())
        .is_some_and(|key| key.spki() == info.spki);
    if !key_matches {
        return Existing::Enroll("the existing key does not match the certificate".into());
    }
    if let Some(missing) = wanted.iter().find(|san| !info.sans.contains(san)) {
        return Existing::Enroll(format!("the existing certificate lacks `{missing}`"));
    }
    if now < info.not_before {
        return Existing::Enroll("the existing certificate is not valid yet".into());
    }
    if now >= threshold.renew_at(&info) {
        return Existing::Enroll("the existing certificate is due for renewal".into());
    }
    Existing::Reuse(info)
}

/// Checks what the CA issued against our key and SANs, then writes the four files. Returns the
/// leaf's details.
pub fn write(
    paths: &Paths,
    key: &Key,
    issued: &Issued,
    wanted: &[San],
    app_ca_file: Option<&Path>,
) -> Result<CertInfo, Error> {
    let info = der::parse_certificate(&issued.leaf).map_err(Error::Parse)?;
    if info.spki != key.spki() {
        return Err(Error::WrongKey);
    }
    if let Some(missing) = wanted.iter().find(|san| !info.sans.contains(san)) {
        return Err(Error::MissingSan(missing.to_string()));
    }
    let pem = |blocks: &[Vec<u8>]| {
        blocks
            .iter()
            .map(|der| der::pem_encode("CERTIFICATE", der))
            .collect::<String>()
    };
    let chain = pem(&issued.chain);
    let cert = der::pem_encode("CERTIFICATE", &issued.leaf) + &chain;
    let ca = match app_ca_file {
        Some(path) => fs::read_to_string(path).map_err(|source| Error::AppCa {
            path: path.to_owned(),
            source,
        })?,
        None => pem(&issued.ca),
    };

    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&paths.dir)
        .map_err(|source| write_error(&paths.dir, source))?;
    // The key first: a crash before the cert lands leaves a key that does not match the old
    // cert, which the next start detects and re-enrolls.
    atomic_write(&paths.key, key.to_pem().as_bytes(), 0o600)?;
    atomic_write(&paths.cert, cert.as_bytes(), 0o644)?;
    atomic_write(&paths.chain, chain.as_bytes(), 0o644)?;
    atomic_write(&paths.ca, ca.as_bytes(), 0o644)?;
    Ok(info)
}

fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&temp);
        write_error(path, source)
    })
}

fn write_error(path: &Path, source: std::io::Error) -> Error {
    let hint = match source.raw_os_error() {
        Some(30) => " (read-only file system: mount a tmpfs or Kubernetes emptyDir there)",
        Some(13) => " (permission denied: the output dir must be writable by the container's user)",
        _ => "",
    };
    Error::Write {
        path: path.to_owned(),
        hint,
        source,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(Threshold::parse("33%").unwrap(), Threshold::Percent(33));
        assert_eq!(Threshold::parse("90s").unwrap(), Threshold::Seconds(90));
        assert_eq!(Threshold::parse("12h").unwrap(), Threshold::Seconds(43_200));
        assert_eq!(Threshold::parse("7d").unwrap(), Threshold::Seconds(604_800));
        for bad in ["", "33", "101%", "5w", "h"] {
            assert!(Threshold::parse(bad).is_err(), "{bad}");
        }
        let info = CertInfo {
            version: 2,
            self_issued: false,
            not_before: 0,
            not_after: 90,
            spki: Vec::new(),
            sans: Vec::new(),
        };
        assert_eq!(Threshold::Percent(33).renew_at(&info), 61);
        assert_eq!(Threshold::Seconds(30).renew_at(&info), 60);
    }

    #[test]
    fn write_then_reuse_then_renew() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(&dir.path().join("out"));
        let key = Key::generate(ocicert_enroll_config::KeyType::EcdsaP256).unwrap();
        let sans = vec![San::Dns("a.example".into())];
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 31);
        let issuer_key = rcgen::KeyPair::generate().unwrap();
        let issuer_params = rcgen::CertificateParams::default();
        let issuer = rcgen::Issuer::from_params(&issuer_params, &issuer_key);
        let pem = key.to_pem();
        let subject_key = rcgen::KeyPair::from_pem(&pem).unwrap();
        let leaf = params.signed_by(&subject_key, &issuer).unwrap();
        let issued = Issued {
            leaf: leaf.der().to_vec(),
            chain: Vec::new(),
            ca: vec![leaf.der().to_vec()],
        };
        let info = write(&paths, &key, &issued, &sans, None).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs::metadata(&paths.key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let start = info.not_before;
        assert!(matches!(
            check(&paths, &sans, Threshold::Percent(33), start + 86_400),
            Existing::Reuse(_)
        ));
        assert!(matches!(
            check(&paths, &sans, Threshold::Percent(33), start + 25 * 86_400),
            Existing::Enroll(_)
        ));
        let more = vec![San::Dns("a.example".into()), San::Dns("b.example".into())];
        assert!(matches!(
            check(&paths, &more, Threshold::Percent(33), start + 86_400),
            Existing::Enroll(_)
        ));
        // A foreign key in the dir (crash between the two renames) forces enrollment.
        let other = Key::generate(ocicert_enroll_config::KeyType::EcdsaP256).unwrap();
        atomic_write(&paths.key, other.to_pem().as_bytes(), 0o600).unwrap();
        assert!(matches!(
            check(&paths, &sans, Threshold::Percent(33), start + 86_400),
            Existing::Enroll(_)
        ));
        assert!(matches!(
            write(&paths, &other, &issued, &sans, None),
            Err(Error::WrongKey)
        ));
    }
}
