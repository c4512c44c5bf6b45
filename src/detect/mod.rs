//! Detectors: find private keys, certificates and keystores in the bytes of one file.
//!
//! Each format lives in its own module and is a pure function over bytes. `scan_file` runs them
//! all and recurses into nested archives within the limits of `Options`. Nothing here knows about
//! layers, whiteouts or severities: that is `layer` and `analyze`. Detections never hold key
//! material, only the public facts about it (`KeyInfo`, `CertInfo`).

pub mod archive;
pub mod config;
pub mod der;
pub mod jks;
pub mod openssh;
pub mod pem;
pub mod pgp;
pub mod pkcs12;
pub mod pkcs7;
pub mod putty;
pub mod sshcert;

use crate::keys::{self, KeyFormat, KeyInfo};
use crate::x509::{self, CertInfo};
use serde::{Deserialize, Serialize};

/// How a certificate was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertEncoding {
    Pem,
    TrustedPem,
    Der,
    Pkcs12,
    JavaKeystore,
    /// A PKCS#7 / CMS certificate bundle (`.p7b`, `BEGIN PKCS7`).
    Pkcs7,
    /// The signer chain of a JAR signature (`META-INF/*.RSA`, `*.EC`, `*.DSA`): code signing.
    JarSignature,
}

/// Which kind of keystore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeystoreKind {
    Pkcs12,
    Jks,
    Jceks,
}

impl KeystoreKind {
    /// The name users know the format by.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pkcs12 => "PKCS#12",
            Self::Jks => "JKS",
            Self::Jceks => "JCEKS",
        }
    }
}

/// What opened a keystore. The password itself is never reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeystorePassword {
    /// The empty password.
    Empty,
    /// One of the well-known defaults (`changeit`, `password`, …).
    WellKnownDefault,
    /// A password the user supplied with `--keystore-password` or the policy file.
    Configured,
    /// None of the candidates; the entries could not be read.
    Unknown,
    /// The format lists entries without a password (JKS).
    NotNeeded,
}

/// One thing a detector found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "artifact", rename_all = "kebab-case")]
pub enum Artifact {
    /// A certificate, parsed.
    Certificate {
        info: Box<CertInfo>,
        encoding: CertEncoding,
    },
    /// A private key, analysed. `keystore` is set when it was a keystore entry.
    Key {
        info: KeyInfo,
        keystore: Option<KeystoreKind>,
    },
    /// A PKCS#10 certificate request (inventory only).
    CertificateRequest { subject: String },
    /// A certificate revocation list (`BEGIN X509 CRL`, a DER `.crl`): counted, not parsed.
    RevocationList,
    /// An OpenSSH certificate (`*-cert.pub`), inventory only.
    SshCertificate {
        certificate: Box<sshcert::SshCertificate>,
    },
    /// A keystore container.
    Keystore {
        kind: KeystoreKind,
        password: KeystorePassword,
        entries: usize,
    },
    /// Bytes that claim to be a key, certificate or keystore but do not parse.
    Unparseable {
        what: String,
        reason: String,
        kind: UnparseableKind,
    },
    /// A safety limit stopped part of the scan.
    LimitReached { reason: String },
    /// A PEM block that does not parse, in a program, program text or documentation, where
    /// PEM markers are string constants and examples: inventory only, no finding.
    InertPem { label: String, reason: String },
}

/// Which family an unparseable artifact belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnparseableKind {
    Pem,
    Der,
    Keystore,
}

/// An artifact and where it sits inside nested archives of the scanned file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// What was found.
    pub artifact: Artifact,
    /// Path inside nested archives, `lib/app.jar!/META-INF/app.key`; `None` for the file itself.
    pub archive_path: Option<String>,
}

/// Tunables for one scan.
#[derive(Clone, Debug)]
pub struct Options {
    /// Extra keystore passwords to try after the empty one and the built-in defaults.
    pub keystore_passwords: Vec<String>,
    /// How many archives deep to look (`a.war!/b.jar!/c.key` is depth 2).
    pub max_archive_depth: u32,
    /// The largest archive entry that is inflated into memory.
    pub max_entry_bytes: u64,
    /// The most bytes inflated from nested archives of one top-level file.
    pub max_total_inflated: u64,
    /// The largest inflated:compressed ratio accepted for entries over 1 MiB.
    pub max_ratio: u64,
    /// When the scan must stop (a service job's time budget): layers not finished by then
    /// fail with `layer::Error::OutOfTime`. Not part of the cache key: it changes no result.
    pub deadline: Option<std::time::Instant>,
    /// The process's resident memory (bytes) past which the scan stops (a service job's memory
    /// budget): layers fail with `layer::Error::OutOfMemory`. Not part of the cache key either.
    pub memory_limit: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            keystore_passwords: Vec::new(),
            max_archive_depth: 3,
            max_entry_bytes: 64 * 1024 * 1024,
            max_total_inflated: 512 * 1024 * 1024,
            max_ratio: 200,
            deadline: None,
            memory_limit: None,
        }
    }
}

/// Passwords tried on every keystore (and encrypted PKCS#8 key) after the empty one: generic
/// ones, then what products ship (docs/policy.md lists where each comes from). A store opened
/// with one is reported as `well-known-default`, never with the password.
pub const DEFAULT_KEYSTORE_PASSWORDS: &[&str] = &[
    "changeit",
    "changeme",
    "password",
    "secret",
    "123456",
    "keystore",
    "storepass",
    "admin",
    "storepwd",
    "keypwd",
    "importkey",
    "test1234",
    "confluent",
    "cassandra",
    "DemoIdentityKeyStorePassPhrase",
    "DemoTrustKeyStorePassPhrase",
    "wso2carbon",
];

/// The passphrases tried on an encrypted PKCS#8 key, with their kind: the empty one and the
/// well-known defaults. (A key file has no options to carry configured ones.)
pub fn key_passphrases() -> Vec<(&'static str, &'static str)> {
    std::iter::once(("", "empty"))
        .chain(
            DEFAULT_KEYSTORE_PASSWORDS
                .iter()
                .map(|p| (*p, "well-known default")),
        )
        .collect()
}

/// Identifies the detection logic for the layer cache: bump the suffix whenever detectors
/// change what they report, or a layer records more (rules.5: package databases and the
/// checksums of files with detections), so cached layer results from older rules are not
/// reused. rules.6: SHA-1 as well, for apk; rules.7: jars' Maven records; rules.8: encrypted
/// PKCS#8 of every scheme, by name, opened with the well-known passphrases, also in PKCS#12;
/// rules.9: products' default keystore passwords; rules.10: PKCS#7 bundles and JAR signatures;
/// rules.11: CRLs and OpenSSH certificates; rules.12: broken PEM in source code and docs is
/// inert.
pub const RULESET_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+rules.12");

/// Files up to this size are read whole and given to every detector; larger files are
/// streamed through the PEM scanner only (a certificate or key file is never this large).
pub const MAX_WHOLE_FILE: u64 = 32 * 1024 * 1024;

/// What every detector is given: one file's bytes and what is known about the file.
pub struct Input<'a> {
    /// The whole file (or archive entry).
    pub data: &'a [u8],
    /// The file name, lower-cased: for extension hints only, never to decide a format alone.
    pub lower_name: &'a str,
    /// Keystore passwords and limits.
    pub options: &'a Options,
}

/// One detector: a pure function from a file's bytes to what the file holds, with the examples
/// that prove it. Adding a key format means one module with one `DETECTOR` and its `EXAMPLES`,
/// plus a row in `DETECTORS`.
pub struct Detector {
    /// Short name, for tests and docs.
    pub name: &'static str,
    /// Finds this detector's formats in one file; returns nothing for other formats.
    pub detect: fn(&Input<'_>) -> Vec<Artifact>,
    /// The examples of every module this detector relies on (PEM hands its blocks to the
    /// OpenSSH and OpenPGP readers, so their examples run through it).
    pub examples: &'static [Examples],
}

/// A detector module's examples: fixtures under `fixtures/`, each with the exact summaries a
/// scan of that file must give (see `examples.rs` for the summary form). Negative examples
/// must give nothing, or only the listed `unparseable` notes.
pub struct Examples {
    /// The module (file under `src/detect/`) that declares them.
    pub module: &'static str,
    pub positive: &'static [(&'static str, &'static [&'static str])],
    pub negative: &'static [(&'static str, &'static [&'static str])],
}

/// Every detector, in the order their findings are listed for one file. Archives are not in
/// the table: they are containers whose entries run through the table again (`archive::scan`).
pub const DETECTORS: &[Detector] = &[
    pem::DETECTOR,
    putty::DETECTOR,
    der::DETECTOR,
    jks::DETECTOR,
    pkcs12::DETECTOR,
    pkcs7::DETECTOR,
    sshcert::DETECTOR,
];

/// Runs every detector over the bytes of one file. `name` is used for extension hints and
/// archive-path display only; detection is by content.
pub fn scan_file(name: &str, data: &[u8], options: &Options) -> Vec<Detection> {
    let mut out = Vec::new();
    let mut budget = archive::Budget::new(options);
    crate::keys::reset_work_budget();
    scan_nested(name, data, options, 0, None, &mut budget, &mut out);
    cap(&mut out);
    out
}

/// The most detections reported for one file; past it, one `LimitReached` says how many more
/// there were (millions of tiny PEM blocks would otherwise become millions of findings).
pub const MAX_DETECTIONS_PER_FILE: usize = 10_000;

/// Cuts `out` to `MAX_DETECTIONS_PER_FILE` (keeping every note of a limit reached, which say
/// what was left out already) and says how many more were left out.
pub fn cap(out: &mut Vec<Detection>) {
    let notes = out
        .iter()
        .filter(|d| matches!(d.artifact, Artifact::LimitReached { .. }))
        .count();
    if out.len() - notes > MAX_DETECTIONS_PER_FILE {
        let dropped = out.len() - notes - MAX_DETECTIONS_PER_FILE;
        let mut kept = 0;
        out.retain(|d| {
            if matches!(d.artifact, Artifact::LimitReached { .. }) {
                return true;
            }
            kept += 1;
            kept <= MAX_DETECTIONS_PER_FILE
        });
        out.push(Detection {
            artifact: Artifact::LimitReached {
                reason: format!(
                    "{dropped} more detections in this file were not reported (at most {MAX_DETECTIONS_PER_FILE} per file)"
                ),
            },
            archive_path: None,
        });
    }
}

fn scan_nested(
    name: &str,
    data: &[u8],
    options: &Options,
    depth: u32,
    archive_path: Option<&str>,
    budget: &mut archive::Budget,
    out: &mut Vec<Detection>,
) {
    let mut push = |artifact: Artifact| {
        out.push(Detection {
            artifact,
            archive_path: archive_path.map(str::to_string),
        });
    };
    let lower = name.to_ascii_lowercase();
    let input = Input {
        data,
        lower_name: &lower,
        options,
    };
    for detector in DETECTORS {
        (detector.detect)(&input).into_iter().for_each(&mut push);
    }
    if archive::is_archive(data, &lower) {
        archive::scan(name, data, options, depth, archive_path, budget, out);
    }
}

/// Whether `data` is a program or text about programs: a compiled program or library (ELF, PE,
/// Mach-O), CPython byte code, or source code or documentation by its content. There, a PEM
/// marker with no valid body is a string constant or an example, not a broken key: such blocks
/// are kept as `InertPem`, not reported. Valid keys and certificates in them still are.
pub fn is_program(data: &[u8]) -> bool {
    const MAGICS: &[&[u8]] = &[
        b"\x7fELF",
        b"MZ",
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
    ];
    MAGICS.iter().any(|magic| data.starts_with(magic))
        || is_byte_code(data)
        || is_source_or_docs(data)
}

/// CPython byte code: a two-byte version magic, then `\r\n`.
fn is_byte_code(data: &[u8]) -> bool {
    data.len() >= 16 && data.get(2..4) == Some(b"\r\n") && data[0] != b'-'
}

/// Line starts that base64 cannot produce (each holds a space or a character outside its
/// alphabet) and that source code and documentation are full of.
const CODE_LINE_STARTS: &[&str] = &[
    "def ",
    "class ",
    "import ",
    "from ",
    "#include",
    "#define",
    "package ",
    "func ",
    "function ",
    "const ",
    "var ",
    "let ",
    "return ",
    "public ",
    "private ",
    "static ",
    "// ",
    "/* ",
    "* ",
    "```",
    "<!--",
    "<html",
    "<p>",
    "<div",
    "<pre",
    ".. ",
    "#!/",
    "use ",
    "fn ",
    "impl ",
    "if (",
    "if ",
    "for ",
    "while ",
    "elif ",
    "else:",
    "try:",
    "except",
    "module.exports",
    "require(",
    "export ",
    "my $",
    "sub ",
    ".TH ",
    ".SH ",
    "=head",
    ">>> ",
    "assert ",
    "raise ",
    "print(",
];

/// Source code or documentation, by content: at least three of its first 64 KiB of lines start
/// the way code and docs do.
fn is_source_or_docs(data: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&data[..data.len().min(64 * 1024)]);
    head.lines()
        .map(str::trim_start)
        .filter(|line| CODE_LINE_STARTS.iter().any(|start| line.starts_with(start)))
        .take(3)
        .count()
        >= 3
}

/// An unparseable PEM block of a program or text about programs, kept for the inventory.
pub fn inert(artifact: Artifact) -> Artifact {
    match artifact {
        Artifact::Unparseable {
            what,
            reason,
            kind: UnparseableKind::Pem,
        } => Artifact::InertPem {
            label: what,
            reason,
        },
        other => other,
    }
}

/// Whether `lower_name` ends with one of the extensions (without dot).
pub fn has_extension(lower_name: &str, extensions: &[&str]) -> bool {
    lower_name
        .rsplit_once('.')
        .is_some_and(|(_, ext)| extensions.contains(&ext))
}

fn unparseable_pem(label: &str, reason: impl Into<String>) -> Artifact {
    Artifact::Unparseable {
        what: format!("PEM {label}"),
        reason: reason.into(),
        kind: UnparseableKind::Pem,
    }
}

/// Turns one PEM block into its artifacts: several for a PKCS#7 bundle, one for a key or a
/// certificate, none for labels that are neither (public keys, CRLs, parameters).
pub fn interpret_pem_all(block: &pem::Block) -> Vec<Artifact> {
    match (block.label.as_str(), &block.body) {
        ("PKCS7" | "PKCS #7 SIGNED DATA" | "CMS", Ok(body)) => {
            if pkcs7::looks_like(body) {
                pkcs7::artifacts(body, "")
            } else {
                vec![unparseable_pem(&block.label, "not a PKCS#7 SignedData")]
            }
        }
        _ => interpret_pem(block).into_iter().collect(),
    }
}

/// Turns one PEM block into an artifact (`interpret_pem_all` for PKCS#7 bundles). Labels that
/// are not secrets or certificates (public keys, parameters) give `None`; a CRL is counted.
fn interpret_pem(block: &pem::Block) -> Option<Artifact> {
    let label = block.label.as_str();
    let body = match &block.body {
        Ok(body) => body.as_slice(),
        Err(reason) => {
            return is_interesting(label).then(|| unparseable_pem(label, reason.clone()));
        }
    };
    let key = |result: Result<KeyInfo, keys::Error>| match result {
        Ok(info) => Artifact::Key {
            info,
            keystore: None,
        },
        Err(e) => unparseable_pem(label, e.reason),
    };
    let legacy_encrypted = block
        .headers
        .iter()
        .any(|(name, value)| name == "Proc-Type" && value.contains("ENCRYPTED"));
    Some(match label {
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => match x509::analyze(body) {
            Ok(info) => Artifact::Certificate {
                info: Box::new(info),
                encoding: if label == "TRUSTED CERTIFICATE" {
                    CertEncoding::TrustedPem
                } else {
                    CertEncoding::Pem
                },
            },
            Err(e) => unparseable_pem(label, e.to_string()),
        },
        "X509 CRL" => Artifact::RevocationList,
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => match der::csr_subject(body) {
            Some(subject) => Artifact::CertificateRequest { subject },
            None => unparseable_pem(label, "not a PKCS#10 request"),
        },
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "DSA PRIVATE KEY" if legacy_encrypted => {
            let algorithm = label
                .split(' ')
                .next()
                .unwrap_or("unknown")
                .to_ascii_lowercase();
            key(Ok(keys::encrypted(
                KeyFormat::LegacyEncryptedPem,
                &algorithm,
                body,
            )))
        }
        "RSA PRIVATE KEY" => key(keys::rsa_pkcs1(body, KeyFormat::Pkcs1)),
        "EC PRIVATE KEY" => key(keys::ec_sec1(body, None, KeyFormat::Sec1)),
        "DSA PRIVATE KEY" => key(keys::dsa_traditional(body)),
        "PRIVATE KEY" => key(keys::pkcs8(body)),
        "ENCRYPTED PRIVATE KEY" => key(keys::encrypted_pkcs8(body, &key_passphrases(), true)),
        "OPENSSH PRIVATE KEY" => key(openssh::analyze(body)),
        "PGP PRIVATE KEY BLOCK" => key(pgp::analyze(body)),
        _ => return None,
    })
}

fn is_interesting(label: &str) -> bool {
    label.contains("PRIVATE KEY") || label.contains("CERTIFICATE")
}

#[cfg(test)]
mod examples;
