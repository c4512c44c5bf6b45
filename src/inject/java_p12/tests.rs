//! The PKCS#12 store shapes keytool and OpenSSL write, each injected and loaded by a real JVM
//! (`tests/support/TrustAnchors.java`) and checked with `openssl pkcs12 -info`.

use super::*;
use crate::inject::java::{add_trusted, check_read_back};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn leaf_der() -> Vec<u8> {
    let pem = fs_err::read(root().join("fixtures/certs/leaf.pem")).unwrap();
    crate::detect::pem::blocks(&pem).remove(0).body.unwrap()
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the command is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?}: {text}");
    text
}

/// The trust anchors a JVM loads from `store` as its default trust store: with no password,
/// as it opens `cacerts` at run time (keytool, which always has one, cannot show this).
fn jvm_anchors(store: &Path, password: Option<&str>) -> Vec<String> {
    let mut command = Command::new("java");
    command.arg(format!("-Djavax.net.ssl.trustStore={}", store.display()));
    if let Some(password) = password {
        command.arg(format!("-Djavax.net.ssl.trustStorePassword={password}"));
    }
    command.arg(root().join("tests/support/TrustAnchors.java"));
    let text = run(&mut command);
    let mut lines = text.lines();
    let count: usize = lines
        .next()
        .and_then(|l| l.strip_prefix("anchors "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    let subjects: Vec<String> = lines.map(str::to_string).collect();
    assert_eq!(subjects.len(), count, "{text}");
    subjects
}

/// The fixture JKS (a root and an intermediate) converted by keytool with extra options.
fn keytool_p12(dir: &Path, options: &[&str]) -> PathBuf {
    let out = dir.join(format!("store-{}.p12", options.len()));
    let mut command = Command::new("keytool");
    command.args(options).args([
        "-importkeystore",
        "-noprompt",
        "-srckeystore",
        root()
            .join("fixtures/certs/truststore.jks")
            .to_str()
            .unwrap(),
        "-srcstorepass",
        "changeit",
        "-deststoretype",
        "PKCS12",
        "-deststorepass",
        "changeit",
        "-destkeystore",
        out.to_str().unwrap(),
    ]);
    run(&mut command);
    out
}

fn inject(store: &Path, dir: &Path) -> PathBuf {
    let der = leaf_der();
    let cert = Trusted {
        alias: "ocicert-test".into(),
        der: &der,
        created_millis: 0,
    };
    let original = fs_err::read(store).unwrap();
    // Through the public entry, so the read-back check runs on every shape.
    let updated = add_trusted(&original, "changeit", std::slice::from_ref(&cert))
        .unwrap()
        .expect("a new certificate changes the store");
    assert!(
        add_trusted(&updated, "changeit", &[cert])
            .unwrap()
            .is_none(),
        "a second run changes nothing"
    );
    let out = dir.join("injected.p12");
    fs_err::write(&out, &updated).unwrap();
    out
}

const LEAF: &str = "CN=app.example.test";

/// JDK 18+'s `cacerts` layout (GenerateCacerts stores with a null password: plain
/// certificate bags, no MAC). The regression: the rewritten store had every bag encrypted,
/// and the JVM's default trust manager then loaded 0 anchors instead of all of them.
#[test]
fn a_password_less_store_stays_readable_by_the_jvm_without_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let store = keytool_p12(
        dir.path(),
        &[
            "-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE",
            "-J-Dkeystore.pkcs12.macAlgorithm=NONE",
        ],
    );
    let before = jvm_anchors(&store, None);
    assert_eq!(before.len(), 2, "{before:?}");
    let injected = inject(&store, dir.path());
    let after = jvm_anchors(&injected, None);
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(before.iter().all(|s| after.contains(s)), "{after:?}");
    // The read-back check's model of the JVM agrees with the JVM.
    let injected_bytes = fs_err::read(&injected).unwrap();
    assert_eq!(plain_certificates(&injected_bytes).unwrap().len(), 3);
    assert!(after.iter().any(|s| s.contains(LEAF)), "{after:?}");
    let pfx = Pfx::from_der(&fs_err::read(&injected).unwrap()).unwrap();
    assert!(pfx.mac_data.is_none(), "no MAC where there was none");
    // The original certificate bags are still there byte for byte.
    let original = fs_err::read(&store).unwrap();
    let old = Pfx::from_der(&original).unwrap();
    let old_safe = old.auth_safe.content.value();
    let new = fs_err::read(&injected).unwrap();
    let inner = &old_safe[4..];
    assert!(new.windows(inner.len()).any(|w| w == inner));
}

/// Plain certificate bags under a MAC (keytool with only certProtectionAlgorithm=NONE): the
/// JVM reads every anchor with no password, and the MAC is recomputed with the same digest,
/// iterations and salt length, which OpenSSL verifies.
#[test]
fn plain_bags_under_a_mac_stay_plain_and_the_mac_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = keytool_p12(
        dir.path(),
        &["-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE"],
    );
    let injected = inject(&store, dir.path());
    let after = jvm_anchors(&injected, None);
    assert_eq!(after.len(), 3, "{after:?}");
    let info = |path: &Path| {
        run(Command::new("openssl").args([
            "pkcs12",
            "-info",
            "-nokeys",
            "-noout",
            "-passin",
            "pass:changeit",
            "-in",
            path.to_str().unwrap(),
        ]))
    };
    let (before, after) = (info(&store), info(&injected));
    let shape = |text: &str| -> Vec<String> {
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("MAC") || l.starts_with("PKCS7"))
            .map(str::to_string)
            .collect();
        lines.dedup();
        lines
    };
    assert_eq!(shape(&before), shape(&after), "{before}\n---\n{after}");
    assert!(shape(&after).contains(&"PKCS7 Data".to_string()), "{after}");
    assert!(after.contains("MAC: sha256, Iteration 10000"), "{after}");
    assert!(!after.contains("Encrypted"), "{after}");
}

/// keytool's default before JDK 18 (PBES2 AES-256 certificate bags, SHA-256 MAC): the new
/// bag is encrypted the same way, so the JVM reads all three with the password and, as
/// before, none without it; OpenSSL verifies the recomputed MAC and reports one scheme.
#[test]
fn an_encrypted_store_keeps_its_scheme_and_its_mac() {
    let dir = tempfile::tempdir().unwrap();
    let store = keytool_p12(dir.path(), &[]);
    let injected = inject(&store, dir.path());
    assert_eq!(jvm_anchors(&injected, Some("changeit")).len(), 3);
    assert_eq!(jvm_anchors(&injected, None).len(), 0);
    let info = run(Command::new("openssl").args([
        "pkcs12",
        "-info",
        "-nokeys",
        "-passin",
        "pass:changeit",
        "-in",
        injected.to_str().unwrap(),
    ]));
    assert!(info.contains("MAC: sha256, Iteration 10000"), "{info}");
    assert_eq!(
        info.matches("PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256")
            .count(),
        2,
        "{info}"
    );
    assert!(info.contains("app.example.test"), "{info}");
    let original = fs_err::read(&store).unwrap();
    let der = leaf_der();
    let cert = Trusted {
        alias: "x".into(),
        der: &der,
        created_millis: 0,
    };
    assert!(matches!(
        add(&original, "wrong", &[cert]),
        Err(Error::WrongPassword)
    ));
}

/// OpenSSL's PKCS#12 PBE schemes: 40-bit RC2 (`-legacy`, keytool before JDK 12) and
/// SHA1-3DES, each read back by OpenSSL with the recomputed SHA-1 MAC.
#[test]
fn legacy_pbe_stores_get_bags_in_their_own_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let pem = root().join("fixtures/certs/root-ca.pem");
    for (name, options, scheme) in [
        (
            "rc2",
            &["-legacy"][..],
            "pbeWithSHA1And40BitRC2-CBC, Iteration 2048",
        ),
        (
            "3des",
            &["-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"][..],
            "pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        ),
    ] {
        let store = dir.path().join(format!("{name}.p12"));
        run(Command::new("openssl")
            .args(["pkcs12", "-export", "-nokeys", "-passout", "pass:changeit"])
            .args(options)
            .args([
                "-in",
                pem.to_str().unwrap(),
                "-out",
                store.to_str().unwrap(),
            ]));
        let injected = inject(&store, dir.path());
        let info = run(Command::new("openssl")
            .args(["pkcs12", "-info", "-nokeys", "-passin", "pass:changeit"])
            .args(options.iter().filter(|o| **o == "-legacy"))
            .args(["-in", injected.to_str().unwrap()]));
        assert!(info.contains("MAC: sha1"), "{name}: {info}");
        assert_eq!(info.matches(scheme).count(), 2, "{name}: {info}");
        assert!(info.contains("app.example.test"), "{name}: {info}");
        // The JVM (which knows both schemes) reads the new entry as a trust anchor.
        let anchors = jvm_anchors(&injected, Some("changeit"));
        assert!(
            anchors.iter().any(|s| s.contains(LEAF)),
            "{name}: {anchors:?}"
        );
    }
}

/// The read-back check catches the regression itself: the old rewrite of a password-less
/// store (p12-keystore's writer, which encrypts every bag) leaves the JVM none of its roots,
/// and is refused with the counts, before anything is written.
#[test]
fn the_read_back_check_refuses_a_rewrite_that_hides_the_roots_from_the_jvm() {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
    let dir = tempfile::tempdir().unwrap();
    let store = keytool_p12(
        dir.path(),
        &[
            "-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE",
            "-J-Dkeystore.pkcs12.macAlgorithm=NONE",
        ],
    );
    let original = fs_err::read(&store).unwrap();
    let der = leaf_der();
    let mut keystore =
        KeyStore::from_pkcs12(&original, "changeit", Pkcs12ImportPolicy::Relaxed).unwrap();
    keystore.add_entry(
        "ocicert-test",
        KeyStoreEntry::Certificate(Certificate::from_der(&der).unwrap()),
    );
    let rewritten = keystore.writer("changeit").write().unwrap();
    let cert = Trusted {
        alias: "ocicert-test".into(),
        der: &der,
        created_millis: 0,
    };
    let error = check_read_back(&original, &rewritten, "changeit", &[cert]).unwrap_err();
    assert!(
        matches!(
            error,
            Error::ReadBack {
                how: "without a password",
                before: 2,
                kept: 0,
                wanted: 1,
                added: 0
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("0 of its 2 original certificates"),
        "{error}"
    );
    // The same rewrite read with the password has everything: keytool would not notice.
    let path = dir.path().join("rewritten.p12");
    fs_err::write(&path, &rewritten).unwrap();
    assert_eq!(jvm_anchors(&path, Some("changeit")).len(), 3);
    assert_eq!(jvm_anchors(&path, None).len(), 0);
}
