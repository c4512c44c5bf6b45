//! Runs every detector's positive and negative examples (Nosey Parker style). The examples live
//! in each `detect/<format>.rs` as an `Examples` value; each row names a fixture and the exact
//! summary of what must be detected in it.

use super::{Artifact, DETECTORS, Examples, Options, scan_file};
use std::path::Path;

fn summary(artifact: &Artifact) -> String {
    match artifact {
        Artifact::Certificate { info, encoding } => format!("cert:{encoding:?}:{}", info.subject),
        Artifact::Key { info, keystore } => format!(
            "key:{}:{}{}{}{}",
            info.format.as_str(),
            info.algorithm,
            if info.encrypted { ":encrypted" } else { "" },
            info.encryption
                .as_ref()
                .map(|e| format!(
                    ":{}{}{}",
                    e.scheme,
                    if e.weak { ":weak" } else { "" },
                    e.opened_with
                        .as_ref()
                        .map(|kind| format!(":opened-with-{kind}"))
                        .unwrap_or_default()
                ))
                .unwrap_or_default(),
            keystore
                .map(|k| format!(":in-{}", k.as_str()))
                .unwrap_or_default()
        ),
        Artifact::CertificateRequest { subject } => format!("csr:{subject}"),
        Artifact::RevocationList => "crl".to_string(),
        Artifact::SshCertificate { certificate } => {
            format!("ssh-cert:{}:{}", certificate.kind, certificate.key_id)
        }
        Artifact::Keystore { kind, password, .. } => {
            format!("keystore:{}:{password:?}", kind.as_str())
        }
        Artifact::Unparseable { kind, .. } => format!("unparseable:{kind:?}"),
        Artifact::LimitReached { .. } => "limit".to_string(),
        Artifact::InertPem { label, .. } => format!("inert:{label}"),
    }
}

/// Every module's examples: those of each detector in `DETECTORS`, and the archive container's.
fn groups() -> impl Iterator<Item = &'static Examples> {
    DETECTORS
        .iter()
        .flat_map(|detector| detector.examples.iter())
        .chain(std::iter::once(&super::archive::EXAMPLES))
}

/// Modules under `src/detect/` that are not file detectors: the table and this runner, and
/// `config`, which reads the image config's JSON (its own unit tests are its examples).
const NOT_DETECTORS: &[&str] = &["mod", "examples", "config"];

#[test]
fn every_detector_module_declares_positive_and_negative_examples() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/detect");
    let mut modules: Vec<String> = fs_err::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let stem = path.file_stem()?.to_str()?.to_string();
            (path.extension()? == "rs" || path.is_dir()).then_some(stem)
        })
        .filter(|module| !NOT_DETECTORS.contains(&module.as_str()))
        .collect();
    modules.sort();
    let mut failures = Vec::new();
    for module in &modules {
        match groups().find(|group| group.module == module) {
            None => failures.push(format!(
                "src/detect/{module}.rs declares no examples reachable from DETECTORS"
            )),
            Some(group) if group.positive.is_empty() || group.negative.is_empty() => {
                failures.push(format!(
                    "src/detect/{module}.rs needs at least one positive and one negative example"
                ));
            }
            Some(_) => {}
        }
    }
    for detector in DETECTORS {
        if detector.examples.is_empty() {
            failures.push(format!("detector {} lists no examples", detector.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(modules.len() >= 8, "{modules:?}");
}

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
    for (fixture, expected) in groups().flat_map(|group| group.positive) {
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
    for (fixture, expected) in groups().flat_map(|group| group.negative) {
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
/// and a hash of that output. Changing what a detector reports means changing a module's `EXAMPLES`, which
/// changes the hash: the test below then fails until `RULESET_VERSION` is bumped and the new
/// pair stored here, so a cache can never serve layer results of an older ruleset.
const RULESET_PIN: (&str, &str) = (
    "rules.12",
    "5a689482dbe5657d59d53e19046d11a4133d7f4bf73e3a98357137bf89c065b6",
);

#[test]
fn the_ruleset_version_moves_with_what_the_detectors_report() {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    let mut rows: Vec<_> = groups().flat_map(|group| group.positive).collect();
    rows.sort();
    for (fixture, expected) in rows {
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
