//! PKCS#12 stores whose key derivations cost minutes (issue 32): a secret bag under scrypt
//! N=2^23, key bags at p12-keystore's own 10^6-iteration cap, a MAC at 10^6 iterations that no
//! password matches. `scan` and `inject` each get through them within 10 s and 256 MiB, and say
//! what they left out.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

fn bomb(name: &str) -> Vec<u8> {
    fixture(&format!("fuzz-regressions/pkcs12/{name}"))
}

#[test]
fn keystore_bombs_are_scanned_within_the_budget_and_reported_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(dir.path());
    let layer = gz_layer(&[
        Entry::File("a/scrypt-secret-bags.p12", bomb("scrypt-secret-bags.p12")),
        Entry::File("b/pbkdf2-key-bags.p12", bomb("pbkdf2-key-bags.p12")),
        Entry::File("c/wrong-mac-million.p12", bomb("wrong-mac-million.p12")),
        Entry::File("d/bundle.p12", fixture("certs/bundle.p12")),
    ]);
    let manifest = layout.image(&[layer], json!({}), ("linux", "amd64"));
    layout.tag(manifest, "t").write();
    let reference = format!("oci:{}:t", dir.path().display());
    let run = bounded_scan(&reference, &["--fail-on", "never", "--no-cache"], 10, 256);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let findings = report["images"][0]["findings"].as_array().unwrap();
    let incomplete = |path: &str| -> Vec<String> {
        findings
            .iter()
            .filter(|f| f["rule"] == "scan-incomplete" && f["location"]["path"] == path)
            .map(|f| f["message"].as_str().unwrap().to_string())
            .collect()
    };
    let secret = incomplete("/a/scrypt-secret-bags.p12");
    assert!(
        secret
            .iter()
            .any(|m| m.contains("32 PKCS#12 secret bags were not opened")),
        "{secret:?}"
    );
    let bags = incomplete("/b/pbkdf2-key-bags.p12");
    assert!(bags.iter().any(|m| m.contains("work budget")), "{bags:?}");
    let mac = incomplete("/c/wrong-mac-million.p12");
    assert!(
        mac.iter()
            .any(|m| m.contains("checking its MAC (1000000 iterations)")),
        "{mac:?}"
    );
    // A real store beside them is still read whole.
    assert!(
        findings
            .iter()
            .any(|f| f["location"]["path"] == "/d/bundle.p12" && f["rule"] != "scan-incomplete"),
        "{findings:?}"
    );
}

#[test]
fn inject_refuses_a_java_store_over_the_budget_quickly_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("src"));
    let base = gz_layer(&[
        Entry::File(
            "etc/os-release",
            b"NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\n".to_vec(),
        ),
        Entry::File(
            "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
            fixture("certs/intermediate.pem"),
        ),
        Entry::File(
            "etc/pki/ca-trust/extracted/java/cacerts",
            bomb("pbkdf2-key-bags.p12"),
        ),
    ]);
    let descriptor = layout.image(&[base], json!({}), ("linux", "amd64"));
    layout.tag(descriptor, "base").write();
    let ca = dir.path().join("ca.pem");
    fs_err::write(&ca, fixture("certs/root-ca.pem")).unwrap();
    let source = format!("oci:{}:base", dir.path().join("src").display());
    let to = format!("oci:{}:v1", dir.path().join("out").display());
    let args = ["inject", &source, "--ca", ca.to_str().unwrap(), "--to", &to];
    let measured = ocicert_measured(&args, &[], Duration::from_secs(30));
    measured.assert_bounded(10, 256);
    let run = &measured.run;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("cacerts") && run.stderr.contains("work budget"),
        "{}",
        run.stderr
    );
}
