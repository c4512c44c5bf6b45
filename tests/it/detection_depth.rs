//! Detection depth (issue 34): encrypted PKCS#8 of every scheme openssl 3 writes
//! (`fixtures/gen-encrypted-pkcs8.sh`), each a `private-key-encrypted` finding that names its
//! scheme, says when the scheme is weak, and says when a well-known passphrase opens it; the
//! same schemes inside PKCS#12 key bags.

use crate::common::*;
use serde_json::Value;

/// (file, scheme, weak, opened by a well-known passphrase)
const SCHEMES: &[(&str, &str, bool, bool)] = &[
    (
        "pbes2-aes256-sha256.pem",
        "PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC",
        false,
        true,
    ),
    (
        "pbes2-aes128-sha1.pem",
        "PBES2 PBKDF2-HMAC-SHA1 AES-128-CBC",
        false,
        true,
    ),
    (
        "pbes2-des3.pem",
        "PBES2 PBKDF2-HMAC-SHA256 DES-EDE3-CBC",
        false,
        true,
    ),
    (
        "pbes2-des.pem",
        "PBES2 PBKDF2-HMAC-SHA256 DES-CBC",
        true,
        true,
    ),
    ("pbes2-scrypt.pem", "PBES2 scrypt AES-256-CBC", false, true),
    (
        "pbes2-des3-secret.pem",
        "PBES2 PBKDF2-HMAC-SHA256 DES-EDE3-CBC",
        false,
        false,
    ),
    ("v1-pbe-md5-des.pem", "PBES1 MD5-DES", true, true),
    ("v1-pbe-sha1-des.pem", "PBES1 SHA1-DES", true, true),
    ("v1-pbe-md5-rc2-64.pem", "PBES1 MD5-RC2", true, true),
    ("v1-pbe-sha1-rc2-64.pem", "PBES1 SHA1-RC2", true, true),
    ("v1-pbe-sha1-3des.pem", "PKCS#12 PBE SHA1-3DES", false, true),
    ("v1-pbe-sha1-3des.der", "PKCS#12 PBE SHA1-3DES", false, true),
    ("v1-pbe-sha1-2des.pem", "PKCS#12 PBE SHA1-2DES", true, true),
    (
        "v1-pbe-sha1-rc2-128.pem",
        "PKCS#12 PBE SHA1-RC2-128",
        true,
        true,
    ),
    (
        "v1-pbe-sha1-rc2-40.pem",
        "PKCS#12 PBE SHA1-RC2-40",
        true,
        true,
    ),
    (
        "v1-pbe-sha1-rc4-128.pem",
        "PKCS#12 PBE SHA1-RC4-128",
        true,
        false,
    ),
    (
        "v1-pbe-sha1-rc4-40.pem",
        "PKCS#12 PBE SHA1-RC4-40",
        true,
        false,
    ),
    (
        "unknown-scheme.pem",
        "an unknown scheme (1.3.6.1.4.1.831.1695)",
        false,
        false,
    ),
];

#[test]
fn every_encrypted_pkcs8_scheme_is_a_named_private_key_encrypted_finding() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/keys/pkcs8-schemes");
    let run = scan_json(&format!("dir:{}", dir.display()), &["--fail-on", "never"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let findings = report["images"][0]["findings"].as_array().unwrap();
    let at = |file: &str| -> Vec<&Value> {
        findings
            .iter()
            .filter(|f| f["location"]["path"] == format!("/{file}"))
            .collect()
    };
    let spki = String::from_utf8(fixture("keys/rsa-pkcs8.spki.sha256")).unwrap();
    for (file, scheme, weak, opened) in SCHEMES {
        let found = at(file);
        assert_eq!(found.len(), 1, "{file}: {found:?}");
        let finding = found[0];
        assert_eq!(
            (finding["rule"].as_str(), finding["severity"].as_str()),
            (Some("private-key-encrypted"), Some("medium")),
            "{file}: {finding}"
        );
        let message = finding["message"].as_str().unwrap();
        assert!(message.contains(scheme), "{file}: {message}");
        assert_eq!(
            message.contains("weak encryption"),
            *weak,
            "{file}: {message}"
        );
        assert_eq!(
            message.contains("it opens with a well-known default passphrase"),
            *opened,
            "{file}: {message}"
        );
        // Opened, it is the very key of keys/rsa-pkcs8.pem.
        assert_eq!(
            finding["fingerprint"] == format!("sha256:{}", spki.trim()),
            *opened,
            "{file}: {finding}"
        );
    }
    // The inventory carries the scheme, never the passphrase.
    let keys = report["images"][0]["inventory"]["keys"].as_array().unwrap();
    let schemes: Vec<&str> = keys
        .iter()
        .filter_map(|k| k["encryption"]["scheme"].as_str())
        .collect();
    assert!(schemes.contains(&"PKCS#12 PBE SHA1-RC4-40"), "{schemes:?}");
    assert!(!report.to_string().contains("changeit"));

    // PKCS#12 key bags under PBES1 (no certificate in the store): opened, the key is the same.
    for file in [
        "p12-keypbe-pbe-md5-des.p12",
        "p12-keypbe-pbe-sha1-rc2-64.p12",
    ] {
        let found = at(file);
        assert_eq!(found.len(), 1, "{file}: {found:?}");
        assert_eq!(
            found[0]["rule"], "keystore-private-key",
            "{file}: {}",
            found[0]
        );
        assert_eq!(found[0]["fingerprint"], format!("sha256:{}", spki.trim()));
    }
}

/// PKCS#7 bundles (DER and PEM) put their certificates in the inventory with their location;
/// a JAR's signer chain is there too, marked as code signing, and raises no certificate finding.
#[test]
fn pkcs7_bundles_and_jar_signatures_fill_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    for (name, fixture_name) in [
        ("bundle.p7b", "certs/bundle.p7b"),
        ("bundle-p7.pem", "certs/bundle-p7.pem"),
        ("app/signed.jar", "archives/signed.jar"),
        ("empty.p7b", "negative/p7-no-certs.p7b"),
    ] {
        let path = dir.path().join(name);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, fixture(fixture_name)).unwrap();
    }
    let run = scan_json(
        &format!("dir:{}", dir.path().display()),
        &["--fail-on", "never"],
    );
    let report = run.json();
    let certificates = report["images"][0]["inventory"]["certificates"]
        .as_array()
        .unwrap();
    let leaf = certificates
        .iter()
        .find(|c| c["subject"] == "CN=app.example.test")
        .expect("the leaf is in the inventory");
    let places: Vec<String> = leaf["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{}{}",
                l["path"].as_str().unwrap(),
                l["archive_path"]
                    .as_str()
                    .map(|a| format!("!/{a}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    for place in [
        "/bundle.p7b",
        "/bundle-p7.pem",
        "/app/signed.jar!/META-INF/APP.EC",
    ] {
        assert!(places.contains(&place.to_string()), "{place}: {places:?}");
    }
    assert_eq!(leaf["code_signing"], true, "{leaf}");
    let findings = report["images"][0]["findings"].as_array().unwrap();
    assert!(
        !findings
            .iter()
            .any(|f| f["location"]["path"] == "/app/signed.jar"
                || f["rule"] == "der-unparseable"
                || f["location"]["path"] == "/empty.p7b"),
        "{findings:?}"
    );
}

/// OpenSSH certificates go into the inventory with their validity; CRLs are counted, not
/// reported as unparseable.
#[test]
fn ssh_certificates_and_crls_are_inventory_not_noise() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "ssh-user-cert.pub",
        "ssh-host-cert.pub",
        "revoked-crl.pem",
        "revoked.crl",
    ] {
        fs_err::write(dir.path().join(name), fixture(&format!("certs/{name}"))).unwrap();
    }
    let run = scan_json(
        &format!("dir:{}", dir.path().display()),
        &["--fail-on", "never"],
    );
    let report = run.json();
    let image = &report["images"][0];
    assert_eq!(
        image["findings"],
        serde_json::json!([]),
        "{}",
        image["findings"]
    );
    let ssh = image["inventory"]["ssh_certificates"].as_array().unwrap();
    let by_id = |id: &str| ssh.iter().find(|c| c["key_id"] == id).unwrap();
    let user = by_id("deploy@ci");
    assert_eq!(
        (user["kind"].as_str(), user["status"].as_str()),
        (Some("user"), Some("valid")),
        "{user}"
    );
    assert_eq!(user["principals"], serde_json::json!(["deploy"]));
    assert!(
        user["ca_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    // Valid until 2026-01-01; the scan's clock is 2026-06-01.
    let host = by_id("build-host");
    assert_eq!(
        (host["kind"].as_str(), host["status"].as_str()),
        (Some("host"), Some("expired")),
        "{host}"
    );
    let crls = image["inventory"]["revocation_lists"].as_array().unwrap();
    assert_eq!(crls.len(), 2, "{crls:?}");
}

/// The same key 13 times in one file (an RFC 6979 test-vector file) is one finding with 13
/// occurrences, in JSON and in the table; the same certificate twice, likewise.
#[test]
fn one_finding_per_key_per_file() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("vectors.pem"),
        fixture("keys/rsa-pkcs8.pem").repeat(13),
    )
    .unwrap();
    fs_err::write(
        dir.path().join("twice.pem"),
        fixture("certs/expired.pem").repeat(2),
    )
    .unwrap();
    let source = format!("dir:{}", dir.path().display());
    let report = scan_json(&source, &["--fail-on", "never"]).json();
    let findings = report["images"][0]["findings"].as_array().unwrap();
    let keys: Vec<&Value> = findings
        .iter()
        .filter(|f| f["location"]["path"] == "/vectors.pem")
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["occurrences"], 13, "{}", keys[0]);
    let expired: Vec<&Value> = findings
        .iter()
        .filter(|f| f["location"]["path"] == "/twice.pem" && f["rule"] == "cert-expired")
        .collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0]["occurrences"], 2);
    let locations = report["images"][0]["inventory"]["keys"][0]["locations"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(locations, 1, "one place, listed once");
    let table = ocicert(&["scan", &source, "--now", NOW, "--fail-on", "never"]);
    assert!(table.stdout.contains("×13"), "{}", table.stdout);
}

/// PEM markers in source code (an ssl.py-like module) and documentation (a README with
/// placeholder blocks) are string constants and examples: no finding, listed as inert.
#[test]
fn pem_markers_in_source_and_docs_are_not_findings() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pem-in-source.py", "readme-pem.md"] {
        fs_err::write(dir.path().join(name), fixture(&format!("negative/{name}"))).unwrap();
    }
    // A broken block in a plain .pem file is still reported.
    fs_err::write(
        dir.path().join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let report = scan_json(
        &format!("dir:{}", dir.path().display()),
        &["--fail-on", "never"],
    )
    .json();
    let image = &report["images"][0];
    let findings = image["findings"].as_array().unwrap();
    let places: Vec<&str> = findings
        .iter()
        .map(|f| f["location"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(places, ["/broken.pem"], "{findings:?}");
    assert_eq!(findings[0]["rule"], "pem-unparseable");
    let inert = image["inventory"]["inert_pem"].as_array().unwrap();
    assert_eq!(inert.len(), 4, "{inert:?}");
}
