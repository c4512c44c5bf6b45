//! Every detector's positive and negative examples, run as one test (Nosey Parker style).
//! Each row names a fixture and the exact summary of what must be detected in it.

use super::{Artifact, Options, scan_file};
use std::path::Path;

fn summary(artifact: &Artifact) -> String {
    match artifact {
        Artifact::Certificate { info, encoding } => format!("cert:{encoding:?}:{}", info.subject),
        Artifact::Key { info, keystore } => format!(
            "key:{}:{}{}{}",
            info.format.as_str(),
            info.algorithm,
            if info.encrypted { ":encrypted" } else { "" },
            keystore
                .map(|k| format!(":in-{}", k.as_str()))
                .unwrap_or_default()
        ),
        Artifact::CertificateRequest { subject } => format!("csr:{subject}"),
        Artifact::Keystore { kind, password, .. } => {
            format!("keystore:{}:{password:?}", kind.as_str())
        }
        Artifact::Unparseable { kind, .. } => format!("unparseable:{kind:?}"),
        Artifact::LimitReached { .. } => "limit".to_string(),
    }
}

/// (fixture, expected summaries in detection order)
const EXAMPLES: &[(&str, &[&str])] = &[
    ("certs/leaf.pem", &["cert:Pem:CN=app.example.test"]),
    (
        "certs/leaf-chain.pem",
        &[
            "cert:Pem:CN=app.example.test",
            "cert:Pem:CN=ocicert Test Intermediate",
        ],
    ),
    ("certs/leaf.der", &["cert:Der:CN=app.example.test"]),
    (
        "certs/blob-self-signed.bin",
        &["cert:Der:CN=selfsigned.example.test"],
    ),
    (
        "certs/trusted-cert.pem",
        &["cert:TrustedPem:CN=ocicert Test Root CA, O=ocicert tests"],
    ),
    ("certs/csr.pem", &["csr:CN=csr.example.test"]),
    ("keys/rsa-pkcs1.pem", &["key:PKCS#1:rsa"]),
    ("keys/rsa-pkcs1.der", &["key:PKCS#1:rsa"]),
    ("keys/rsa-pkcs8.pem", &["key:PKCS#8:rsa"]),
    ("keys/ec-sec1.pem", &["key:SEC1:ec"]),
    ("keys/ec-sec1-nopub.der", &["key:SEC1:ec"]),
    ("keys/ed25519.der", &["key:PKCS#8:ed25519"]),
    ("keys/dsa.pem", &["key:OpenSSL DSA:dsa"]),
    ("keys/dsa-pkcs8.der", &["key:PKCS#8:dsa"]),
    (
        "keys/encrypted-pkcs8.pem",
        &["key:encrypted PKCS#8:unknown:encrypted"],
    ),
    (
        "keys/legacy-encrypted.pem",
        &["key:legacy encrypted PEM:rsa:encrypted"],
    ),
    ("keys/openssh-ed25519", &["key:OpenSSH:ssh-ed25519"]),
    (
        "keys/openssh-rsa-encrypted",
        &["key:OpenSSH:ssh-rsa:encrypted"],
    ),
    ("keys/pgp-private.asc", &["key:OpenPGP:pgp-eddsa"]),
    ("keys/putty.ppk", &["key:PuTTY:ssh-ed25519"]),
    ("elf/embedded-key.bin", &["key:SEC1:ec"]),
    (
        "certs/bundle.p12",
        &[
            "keystore:PKCS#12:WellKnownDefault",
            "cert:Pkcs12:CN=app.example.test",
            "cert:Pkcs12:CN=ocicert Test Intermediate",
            "key:PKCS#12:ec:in-PKCS#12",
        ],
    ),
    ("certs/bundle-secret.p12", &["keystore:PKCS#12:Unknown"]),
    (
        "certs/truststore.jks",
        &[
            "keystore:JKS:NotNeeded",
            "cert:JavaKeystore:CN=ocicert Test Root CA, O=ocicert tests",
            "cert:JavaKeystore:CN=ocicert Test Intermediate",
        ],
    ),
    (
        "archives/app.jar",
        &["key:PKCS#8:rsa", "cert:Pem:CN=app.example.test"],
    ),
    (
        "archives/nested.war",
        &["key:PKCS#8:rsa", "cert:Pem:CN=app.example.test"],
    ),
    ("archives/deep.zip", &["limit"]),
    ("archives/bomb.zip", &["limit"]),
];

/// Fixtures that must produce nothing, or only the listed "unparseable" notes.
const NEGATIVE_EXAMPLES: &[(&str, &[&str])] = &[
    ("negative/docs-mention.md", &[]),
    ("negative/random.bin", &[]),
    ("negative/public-key.pem", &[]),
    ("negative/ssh-public.pub", &[]),
    ("negative/fake-pem.txt", &["unparseable:Pem"]),
    ("negative/pem-strings.elf", &[]),
    ("negative/not-a-keystore.jks", &["unparseable:Keystore"]),
    ("negative/empty.p12", &["unparseable:Keystore"]),
];

fn run(fixture: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(fixture);
    let data = fs_err::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    scan_file(&name, &data, &Options::default())
        .iter()
        .map(|d| summary(&d.artifact))
        .collect()
}

#[test]
fn every_positive_example_is_detected_exactly() {
    let mut failures = Vec::new();
    for (fixture, expected) in EXAMPLES {
        let got = run(fixture);
        let mut sorted_got = got.clone();
        sorted_got.sort();
        let mut sorted_expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        sorted_expected.sort();
        if sorted_got != sorted_expected {
            failures.push(format!("{fixture}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_negative_example_stays_quiet() {
    let mut failures = Vec::new();
    for (fixture, expected) in NEGATIVE_EXAMPLES {
        let got = run(fixture);
        if got != *expected {
            failures.push(format!("{fixture}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_configured_keystore_password_opens_the_keystore() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/certs/bundle-secret.p12");
    let data = fs_err::read(path).unwrap_or_default();
    let options = Options {
        keystore_passwords: vec!["Zq8-very-unguessable".into()],
        ..Options::default()
    };
    let found: Vec<String> = scan_file("bundle-secret.p12", &data, &options)
        .iter()
        .map(|d| summary(&d.artifact))
        .collect();
    assert!(
        found.contains(&"keystore:PKCS#12:Configured".to_string()),
        "{found:?}"
    );
    assert!(
        found.iter().any(|s| s.starts_with("key:PKCS#12:ec")),
        "{found:?}"
    );
}

#[test]
fn nested_archive_paths_name_each_level() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/archives/nested.war");
    let data = fs_err::read(path).unwrap_or_default();
    let paths: Vec<_> = scan_file("nested.war", &data, &Options::default())
        .into_iter()
        .filter_map(|d| d.archive_path)
        .collect();
    assert!(
        paths.contains(&"WEB-INF/lib/app.jar!/META-INF/app.key".to_string()),
        "{paths:?}"
    );
}

#[test]
fn a_deeper_limit_reaches_the_deep_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/archives/deep.zip");
    let data = fs_err::read(path).unwrap_or_default();
    let options = Options {
        max_archive_depth: 8,
        ..Options::default()
    };
    let found: Vec<String> = scan_file("deep.zip", &data, &options)
        .iter()
        .map(|d| summary(&d.artifact))
        .collect();
    assert_eq!(found, ["key:SEC1:ec"]);
}

/// The ruleset version (the layer cache's key) that goes with the examples' expected output,
/// and a hash of that output. Changing what a detector reports means changing `EXAMPLES`, which
/// changes the hash: the test below then fails until `RULESET_VERSION` is bumped and the new
/// pair stored here, so a cache can never serve layer results of an older ruleset.
const RULESET_PIN: (&str, &str) = (
    "rules.4",
    "185287d626f4fe897d0e63912220d608ca142244a78f4a8a002bf61f8d8fa83b",
);

#[test]
fn the_ruleset_version_moves_with_what_the_detectors_report() {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for (fixture, expected) in EXAMPLES {
        hasher.update(fixture.as_bytes());
        for summary in *expected {
            hasher.update(b"\t");
            hasher.update(summary.as_bytes());
        }
        hasher.update(b"\n");
    }
    let hash = hex::encode(hasher.finalize());
    let version = super::RULESET_VERSION
        .rsplit('+')
        .next()
        .unwrap_or_default();
    assert_eq!(
        (version, hash.as_str()),
        RULESET_PIN,
        "the examples' output changed: bump RULESET_VERSION in src/detect/mod.rs and store the \
         new (version, hash) pair in RULESET_PIN"
    );
}
