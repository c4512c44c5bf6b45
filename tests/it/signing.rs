//! Cosign-compatible signatures against a real registry, checked by readers other than
//! ocicert's signing code (openssl, and the sigstore crate's verification API), and signatures
//! made outside ocicert (a Python script following cosign's documented format).

use crate::common::*;
use crate::support::{Registry, Setup};
use base64::Engine as _;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn image(dir: &Path, name: &str) -> String {
    let mut layout = Layout::new(&dir.join(name));
    let descriptor = layout.image(
        &[gz_layer(&[
            Entry::File("etc/os-release", b"ID=debian\n".to_vec()),
            Entry::File(name.to_string().leak(), name.as_bytes().to_vec()),
        ])],
        json!({}),
        ("linux", "amd64"),
    );
    layout.tag(descriptor, "v1").write();
    format!("oci:{}:v1", dir.join(name).display())
}

fn with_password(args: &[&str], password: &str) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_ocicert"))
        .args(args)
        .env("COSIGN_PASSWORD", password)
        .env("OCICERT_NO_CACHE", "1")
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into(),
        stderr: String::from_utf8_lossy(&output.stderr).into(),
    }
}

fn python(script: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(script);
    let output = Command::new("/usr/bin/python3")
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn fetch(registry: &Registry, repository: &str, reference: &str, blob: bool) -> Vec<u8> {
    let kind = if blob { "blobs" } else { "manifests" };
    let output = Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!(
                "http://{}/v2/{repository}/{kind}/{reference}",
                registry.host()
            ),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "curl {kind}/{reference}");
    output.stdout
}

#[test]
fn signatures_verify_with_openssl_sigstore_and_ocicert_and_failures_are_clear() {
    require("/usr/bin/python3", "python3-nacl");
    let registry = Registry::start(Setup::Plain);
    let dir = tempfile::tempdir().unwrap();
    registry.push(&image(dir.path(), "app"), "team/app:v1");
    registry.push(&image(dir.path(), "other"), "team/app:other");
    registry.push(&image(dir.path(), "unsigned"), "team/app:unsigned");
    let reference = format!("{}/team/app:v1", registry.host());
    let prefix = dir.path().join("cosign");
    let generated = with_password(
        &[
            "generate-key-pair",
            "--output-key-prefix",
            prefix.to_str().unwrap(),
        ],
        "secret-pw",
    );
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let key = format!("{}.key", prefix.display());
    let public = format!("{}.pub", prefix.display());
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        fs_err::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let signed = with_password(
        &["sign", &reference, "--key", &key, "--insecure"],
        "secret-pw",
    );
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    let digest = signed.stdout.trim().to_string();

    // openssl, from the bytes the registry holds.
    let manifest: Value = serde_json::from_slice(&fetch(
        &registry,
        "team/app",
        &format!("{}.sig", digest.replace(':', "-")),
        false,
    ))
    .unwrap();
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = fetch(
        &registry,
        "team/app",
        layer["digest"].as_str().unwrap(),
        true,
    );
    let signature = base64::engine::general_purpose::STANDARD
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let (payload_file, signature_file) = (dir.path().join("payload"), dir.path().join("sig.der"));
    fs_err::write(&payload_file, &payload).unwrap();
    fs_err::write(&signature_file, &signature).unwrap();
    let openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", &public, "-signature"])
        .arg(&signature_file)
        .arg(&payload_file)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&openssl.stdout).contains("Verified OK"),
        "{}",
        String::from_utf8_lossy(&openssl.stderr)
    );
    let payload_json: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        payload_json["critical"]["image"]["docker-manifest-digest"],
        digest
    );

    // The sigstore crate's own verification API.
    let key_for_sigstore = sigstore::crypto::CosignVerificationKey::from_pem(
        &fs_err::read(&public).unwrap(),
        &sigstore::crypto::SigningScheme::ECDSA_P256_SHA256_ASN1,
    )
    .unwrap();
    key_for_sigstore
        .verify_signature(sigstore::crypto::Signature::Raw(&signature), &payload)
        .expect("sigstore verifies ocicert's signature");

    // ocicert's --verify-key accepts it; a second key may be listed too.
    let other_prefix = dir.path().join("other");
    with_password(
        &[
            "generate-key-pair",
            "--output-key-prefix",
            other_prefix.to_str().unwrap(),
        ],
        "x",
    );
    let other_public = format!("{}.pub", other_prefix.display());
    let ok = scan_json(
        &reference,
        &[
            "--insecure",
            "--verify-key",
            &other_public,
            "--verify-key",
            &public,
            "--fail-on",
            "never",
        ],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let wrong_key = scan_json(&reference, &["--insecure", "--verify-key", &other_public]);
    assert!(
        wrong_key.code == 2 && wrong_key.stderr.contains("verifies with the given key"),
        "{}",
        wrong_key.stderr
    );
    let unsigned = scan_json(
        &format!("{}/team/app:unsigned", registry.host()),
        &["--insecure", "--verify-key", &public],
    );
    assert!(
        unsigned.code == 2 && unsigned.stderr.contains("is not signed"),
        "{}",
        unsigned.stderr
    );
    let wrong_password = with_password(&["sign", &reference, "--key", &key, "--insecure"], "nope");
    assert!(
        wrong_password.code == 2 && wrong_password.stderr.contains("wrong password"),
        "{}",
        wrong_password.stderr
    );

    // Signatures made outside ocicert, in cosign's documented format.
    let external = dir.path().join("external");
    python("gen_cosign_key.py", &[external.to_str().unwrap(), "ext-pw"]);
    let external_key = format!("{}.key", external.display());
    let external_public = format!("{}.pub", external.display());
    python(
        "cosign_sign.py",
        &[
            &registry.host(),
            "team/app",
            "other",
            &external_key,
            "ext-pw",
        ],
    );
    let external_ok = scan_json(
        &format!("{}/team/app:other", registry.host()),
        &[
            "--insecure",
            "--verify-key",
            &external_public,
            "--fail-on",
            "never",
        ],
    );
    assert_eq!(external_ok.code, 0, "{}", external_ok.stderr);
    // A signature copied from another image, and a tampered payload.
    python(
        "cosign_sign.py",
        &[
            &registry.host(),
            "team/app",
            "unsigned",
            &external_key,
            "ext-pw",
            "other",
            "other",
        ],
    );
    let copied = scan_json(
        &format!("{}/team/app:unsigned", registry.host()),
        &["--insecure", "--verify-key", &external_public],
    );
    assert!(
        copied.code == 2 && copied.stderr.contains("for another image"),
        "{}",
        copied.stderr
    );
    registry.push(&image(dir.path(), "tampered"), "team/app:tampered");
    python(
        "cosign_sign.py",
        &[
            &registry.host(),
            "team/app",
            "tampered",
            &external_key,
            "ext-pw",
            "tamper",
        ],
    );
    let tampered = scan_json(
        &format!("{}/team/app:tampered", registry.host()),
        &["--insecure", "--verify-key", &external_public],
    );
    assert!(
        tampered.code == 2 && tampered.stderr.contains("verifies with the given key"),
        "{}",
        tampered.stderr
    );

    // A key in the older `ENCRYPTED COSIGN PRIVATE KEY` form signs too.
    let legacy = dir.path().join("legacy");
    python(
        "gen_cosign_key.py",
        &[
            legacy.to_str().unwrap(),
            "old-pw",
            "ENCRYPTED COSIGN PRIVATE KEY",
        ],
    );
    let legacy_signed = with_password(
        &[
            "sign",
            &format!("{}/team/app:other", registry.host()),
            "--key",
            &format!("{}.key", legacy.display()),
            "--insecure",
        ],
        "old-pw",
    );
    assert_eq!(legacy_signed.code, 0, "{}", legacy_signed.stderr);
}

#[test]
fn inject_signs_and_attests_and_keeps_earlier_signatures() {
    let registry = Registry::start(Setup::Plain);
    let dir = tempfile::tempdir().unwrap();
    registry.push(&image(dir.path(), "base"), "team/base:v1");
    let prefix = dir.path().join("cosign");
    with_password(
        &[
            "generate-key-pair",
            "--output-key-prefix",
            prefix.to_str().unwrap(),
        ],
        "pw",
    );
    let (key, public) = (
        format!("{}.key", prefix.display()),
        format!("{}.pub", prefix.display()),
    );
    let base = format!("{}/team/base:v1", registry.host());
    assert_eq!(
        with_password(&["sign", &base, "--key", &key, "--insecure"], "pw").code,
        0
    );
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/certs/root-ca.pem");
    let destination = format!("{}/team/app:injected", registry.host());
    let injected = with_password(
        &[
            "inject",
            &base,
            "--ca",
            ca.to_str().unwrap(),
            "--to",
            &destination,
            "--insecure",
            "--verify-key",
            &public,
            "--sign-key",
            &key,
            "--attest",
        ],
        "pw",
    );
    assert_eq!(injected.code, 0, "{}", injected.stderr);
    let digest = injected.stdout.trim().to_string();
    let verified = scan_json(
        &destination,
        &["--insecure", "--verify-key", &public, "--fail-on", "never"],
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);

    // Signing again appends a second signature layer and keeps the first; both verify.
    assert_eq!(
        with_password(&["sign", &destination, "--key", &key, "--insecure"], "pw").code,
        0
    );
    let tag = digest.replace(':', "-");
    let signatures: Value =
        serde_json::from_slice(&fetch(&registry, "team/app", &format!("{tag}.sig"), false))
            .unwrap();
    let layers = signatures["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let verifier = ocicert::sign::Verifier::load(&fs_err::read(&public).unwrap(), "pub").unwrap();
    for layer in layers {
        let payload = fetch(
            &registry,
            "team/app",
            layer["digest"].as_str().unwrap(),
            true,
        );
        assert!(
            verifier.verifies(
                &payload,
                layer["annotations"]["dev.cosignproject.cosign/signature"]
                    .as_str()
                    .unwrap()
            )
        );
    }

    let attestations: Value =
        serde_json::from_slice(&fetch(&registry, "team/app", &format!("{tag}.att"), false))
            .unwrap();
    let layer = &attestations["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
    let envelope = fetch(
        &registry,
        "team/app",
        layer["digest"].as_str().unwrap(),
        true,
    );
    let statement =
        ocicert::sign::verify_dsse(&envelope, &verifier).expect("the DSSE signature verifies");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    assert_eq!(
        statement["predicate"]["cas"][0]["subject"],
        "CN=ocicert Test Root CA, O=ocicert tests"
    );
    assert!(
        statement["predicate"]["scan"]["findings"].is_object(),
        "{statement}"
    );

    // --sign-key needs a registry destination; an unsigned source fails --verify-key.
    let local = with_password(
        &[
            "copy",
            &base,
            &format!("oci:{}:x", dir.path().join("out").display()),
            "--insecure",
            "--sign-key",
            &key,
        ],
        "pw",
    );
    assert!(
        local.code == 2 && local.stderr.contains("registry destination"),
        "{}",
        local.stderr
    );
}

/// `tests/support/referrers_proxy.py` in front of a real registry: the OCI 1.1 referrers API
/// that distribution 2.8 lacks.
struct ReferrersProxy {
    child: std::process::Child,
    port: u16,
}

impl ReferrersProxy {
    fn start(upstream: &str) -> Self {
        let port = crate::support::free_port();
        let mut child = Command::new("/usr/bin/python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/referrers_proxy.py"))
            .args([&port.to_string(), upstream])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed().as_secs() < 10, "proxy did not start");
            assert!(child.try_wait().unwrap().is_none(), "proxy exited");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for ReferrersProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(url: &str) -> (u16, Vec<u8>) {
    let output = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let mut body = output.stdout;
    let newline = body.iter().rposition(|b| *b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&body[newline + 1..])
        .parse()
        .unwrap();
    body.truncate(newline);
    (status, body)
}

#[test]
fn the_attestation_is_an_oci_referrer_where_the_registry_has_the_api_and_a_tag_elsewhere() {
    let registry = Registry::start(Setup::Plain);
    let proxy = ReferrersProxy::start(&registry.host());
    let dir = tempfile::tempdir().unwrap();
    registry.push(&image(dir.path(), "base"), "team/base:v1");
    let prefix = dir.path().join("cosign");
    let keys = [
        "generate-key-pair",
        "--output-key-prefix",
        prefix.to_str().unwrap(),
    ];
    assert_eq!(with_password(&keys, "pw").code, 0);
    let (key, public) = (
        format!("{}.key", prefix.display()),
        format!("{}.pub", prefix.display()),
    );
    let verifier = ocicert::sign::Verifier::load(&fs_err::read(&public).unwrap(), "pub").unwrap();
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/certs/root-ca.pem");
    let inject = |host: &str, tag: &str| {
        let run = with_password(
            &[
                "inject",
                &format!("{host}/team/base:v1"),
                "--ca",
                ca.to_str().unwrap(),
                "--to",
                &format!("{host}/team/app:{tag}"),
                "--insecure",
                "--sign-key",
                &key,
                "--attest",
            ],
            "pw",
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout.trim().to_string()
    };
    const DSSE: &str = "application/vnd.dsse.envelope.v1+json";

    // Through the proxy: the registry answers the referrers API.
    let proxied = format!("127.0.0.1:{}", proxy.port);
    let digest = inject(&proxied, "via-proxy");
    let listing = || {
        let (status, body) = http_get(&format!(
            "http://{proxied}/v2/team/app/referrers/{digest}?artifactType={}",
            DSSE.replace('+', "%2B")
        ));
        assert_eq!(status, 200);
        let index: Value = serde_json::from_slice(&body).unwrap();
        index["manifests"].as_array().unwrap().clone()
    };
    let referrers = listing();
    assert_eq!(referrers.len(), 1, "{referrers:?}");
    assert_eq!(referrers[0]["artifactType"], DSSE);
    // Read back from the real registry, by skopeo, not through the proxy.
    let referrer_digest = referrers[0]["digest"].as_str().unwrap();
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!(
            "docker://{}/team/app@{referrer_digest}",
            registry.host()
        ))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let manifest: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(manifest["subject"]["digest"], digest.as_str());
    assert_eq!(manifest["artifactType"], DSSE);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let envelope = fetch(
        &registry,
        "team/app",
        manifest["layers"][0]["digest"].as_str().unwrap(),
        true,
    );
    let statement = ocicert::sign::verify_dsse(&envelope, &verifier).expect("DSSE verifies");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    // The cosign `.att` tag is written as well: that is what cosign and Kyverno read.
    let tag = format!("{}.att", digest.replace(':', "-"));
    assert!(!fetch(&registry, "team/app", &tag, false).is_empty());
    // Injecting the same again gives the same image and a second (freshly signed) attestation;
    // the first stays listed.
    assert_eq!(inject(&proxied, "via-proxy"), digest);
    let again = listing();
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.contains(&referrers[0]));

    // Straight to distribution 2.8 (no referrers API): the `.sig` and `.att` tags only, and no
    // artifact manifest left behind untagged.
    let (status, _) = http_get(&format!(
        "http://{}/v2/team/app/referrers/{digest}",
        registry.host()
    ));
    assert_eq!(status, 404, "distribution 2.8 has no referrers API");
    let revisions = registry
        .dir
        .path()
        .join("data/docker/registry/v2/repositories/team/app/_manifests/revisions/sha256");
    let count = || fs_err::read_dir(&revisions).unwrap().count();
    let before = count();
    let direct = inject(&registry.host(), "direct");
    assert_eq!(
        count() - before,
        3,
        "image, .sig and .att manifests, nothing else"
    );
    let tag = format!("{}.att", direct.replace(':', "-"));
    assert!(!fetch(&registry, "team/app", &tag, false).is_empty());
}
