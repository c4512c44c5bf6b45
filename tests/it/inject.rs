//! `ocicert inject`: trust stores of real layouts (Debian rootfs proven in a chroot with openssl
//! and curl; Alpine, RHEL, Java and certifi layouts), idempotency, multi-platform, pushes that
//! upload only new blobs, and bad input.

use crate::common::*;
use crate::support::{FlakyProxy, Registry, Setup};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A test PKI in its own temporary directory (see `support::Pki`).
struct Pki {
    pki: crate::support::Pki,
    _dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::support::Pki::create(dir.path(), "/CN=Inject Test Root/O=ocicert tests");
        Self { pki, _dir: dir }
    }
    fn path(&self, name: &str) -> String {
        self.pki.path(name)
    }
}

/// The entries of the last layer of an OCI layout image: path → (type, bytes or link target).
fn top_layer(layout: &Path, tag: &str) -> BTreeMap<String, (char, Vec<u8>)> {
    let manifest = image_manifest(layout, tag);
    let digest = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = fs_err::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = format!(
            "/{}",
            entry
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
        );
        let header = entry.header();
        assert_eq!(
            (
                header.mtime().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap()
            ),
            (0, 0, 0),
            "reproducible metadata"
        );
        let kind = match header.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            _ => 'f',
        };
        let content = if kind == 'l' {
            entry
                .link_name()
                .unwrap()
                .unwrap()
                .to_string_lossy()
                .into_owned()
                .into_bytes()
        } else {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            bytes
        };
        out.insert(path, (kind, content));
    }
    out
}

fn image_manifest(layout: &Path, tag: &str) -> Value {
    let index: Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap()
        .clone();
    let bytes = fs_err::read(
        layout
            .join("blobs/sha256")
            .join(&entry["digest"].as_str().unwrap()[7..]),
    )
    .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn config_of(layout: &Path, tag: &str) -> Value {
    let manifest = image_manifest(layout, tag);
    serde_json::from_slice(
        &fs_err::read(
            layout
                .join("blobs/sha256")
                .join(&manifest["config"]["digest"].as_str().unwrap()[7..]),
        )
        .unwrap(),
    )
    .unwrap()
}

fn inject(source: &str, ca: &str, to: &str, extra: &[&str]) -> Run {
    let mut args = vec!["inject", source, "--ca", ca, "--to", to];
    args.extend_from_slice(extra);
    ocicert(&args)
}

/// Injects `pki`'s CA into the layout `<dir>/src:base`, writing `<dir>/out:<tag>`; returns the
/// run and the output layout.
fn inject_base(dir: &Path, pki: &Pki, tag: &str) -> (Run, PathBuf) {
    let out = dir.join("out");
    let run = inject(
        &format!("oci:{}:base", dir.join("src").display()),
        &pki.path("ca.pem"),
        &format!("oci:{}:{tag}", out.display()),
        &[],
    );
    (run, out)
}

/// Unpacks an OCI layout image into a runtime bundle with umoci (an independent reader).
fn umoci_unpack(image: &str, bundle: &Path) {
    let unpack = Command::new("umoci")
        .args(["unpack", "--image", image])
        .arg(bundle)
        .output()
        .unwrap();
    assert!(
        unpack.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&unpack.stderr)
    );
}

fn count_certs(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes)
        .matches("-----BEGIN CERTIFICATE-----")
        .count()
}

#[test]
fn alpine_layout_gets_bundle_anchor_and_hash_link_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("src"));
    let base = gz_layer(&[
        Entry::File(
            "etc/os-release",
            b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.0\n".to_vec(),
        ),
        Entry::Dir("etc/ssl/certs/"),
        Entry::File(
            "etc/ssl/certs/ca-certificates.crt",
            fixture("certs/intermediate.pem"),
        ),
        Entry::Symlink("etc/ssl/cert.pem", "certs/ca-certificates.crt"),
        Entry::File("bin/busybox", b"\x7fELF".to_vec()),
        Entry::Symlink("bin/sh", "/bin/busybox"),
    ]);
    let descriptor = layout.image(
        &[base],
        json!({"config": {"Cmd": ["/bin/sh"]}}),
        ("linux", "amd64"),
    );
    layout.tag(descriptor, "base").write();
    let pki = Pki::new();
    let (run, out) = inject_base(dir.path(), &pki, "v1");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("Alpine"), "{}", run.stderr);
    let files = top_layer(&out, "v1");
    let bundle = &files["/etc/ssl/certs/ca-certificates.crt"];
    assert_eq!(
        count_certs(&bundle.1),
        2,
        "existing CA kept, new CA appended once"
    );
    assert!(
        !files.contains_key("/etc/ssl/cert.pem"),
        "the symlink is resolved inside the image, not replaced"
    );
    let anchors: Vec<_> = files
        .keys()
        .filter(|p| {
            p.starts_with("/usr/local/share/ca-certificates/ocicert-") && p.ends_with(".crt")
        })
        .collect();
    assert_eq!(anchors.len(), 1, "{files:?}");
    let hash = String::from_utf8(
        Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-subject_hash",
                "-in",
                &pki.path("ca.pem"),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let link = &files[&format!("/etc/ssl/certs/{}.0", hash.trim())];
    assert_eq!(link.0, 'l');
    assert!(
        files.contains_key(&format!(
            "/etc/ssl/certs/{}",
            String::from_utf8_lossy(&link.1)
        )),
        "the hash link points at a file in the layer"
    );
    let config = config_of(&out, "v1");
    assert_eq!(config["config"]["Cmd"], json!(["/bin/sh"]), "Cmd is kept");
    assert!(config["config"]["Env"].as_array().unwrap().contains(&json!(
        "NODE_EXTRA_CA_CERTS=/usr/local/share/ocicert/injected-cas.pem"
    )));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert_eq!(
        config["history"].as_array().unwrap().last().unwrap()["comment"],
        "ocicert: trust injection"
    );
}

#[test]
fn rhel_layout_with_java_and_certifi_stores() {
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
        Entry::Symlink(
            "etc/pki/tls/certs/ca-bundle.crt",
            "../../ca-trust/extracted/pem/tls-ca-bundle.pem",
        ),
        Entry::File(
            "etc/pki/ca-trust/extracted/java/cacerts",
            fixture("certs/truststore.jks"),
        ),
        Entry::Symlink(
            "usr/lib/jvm/jre-17/lib/security/cacerts",
            "/etc/pki/ca-trust/extracted/java/cacerts",
        ),
        Entry::File(
            "usr/lib/python3.11/site-packages/certifi/cacert.pem",
            fixture("certs/intermediate.pem"),
        ),
        Entry::File(
            "usr/lib/python3.11/site-packages/pip/_vendor/certifi/cacert.pem",
            fixture("certs/root-ca.pem"),
        ),
    ]);
    let descriptor = layout.image(&[base], json!({}), ("linux", "amd64"));
    layout.tag(descriptor, "base").write();
    let pki = Pki::new();
    let (run, out) = inject_base(dir.path(), &pki, "v1");
    let source = format!("oci:{}:base", dir.path().join("src").display());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let files = top_layer(&out, "v1");
    assert_eq!(
        count_certs(&files["/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"].1),
        2
    );
    assert!(
        files
            .keys()
            .any(|p| p.starts_with("/etc/pki/ca-trust/source/anchors/ocicert-")),
        "{:?}",
        files.keys()
    );
    assert_eq!(
        count_certs(&files["/usr/lib/python3.11/site-packages/certifi/cacert.pem"].1),
        2
    );
    assert_eq!(
        count_certs(&files["/usr/lib/python3.11/site-packages/pip/_vendor/certifi/cacert.pem"].1),
        2
    );

    // The Java store (reached through a symlink) opens in keytool with the new entry.
    let cacerts = dir.path().join("cacerts");
    fs_err::write(
        &cacerts,
        &files["/etc/pki/ca-trust/extracted/java/cacerts"].1,
    )
    .unwrap();
    let listing = Command::new("keytool")
        .args([
            "-list",
            "-keystore",
            cacerts.to_str().unwrap(),
            "-storepass",
            "changeit",
        ])
        .output()
        .expect("keytool (openjdk-17-jre-headless)");
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.status.success() && text.contains("ocicert-") && text.contains("3 entries"),
        "{text}"
    );

    // A wrong Java store password is a clear error, not a broken store.
    let wrong = inject(
        &source,
        &pki.path("ca.pem"),
        &format!("oci:{}:v2", out.display()),
        &["--java-store-password", "nope"],
    );
    assert_eq!(wrong.code, 2);
    assert!(
        wrong.stderr.contains("cacerts") && wrong.stderr.contains("password"),
        "{}",
        wrong.stderr
    );
}

#[test]
fn scratch_gets_a_bundle_and_ssl_cert_file_and_user_env_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("src"));
    let app = gz_layer(&[Entry::File("app", b"\x7fELF static binary".to_vec())]);
    let descriptor = layout.image(
        &[app],
        json!({"config": {"Env": ["NODE_EXTRA_CA_CERTS=/mine.pem"], "Entrypoint": ["/app"]}}),
        ("linux", "amd64"),
    );
    layout.tag(descriptor, "base").write();
    let pki = Pki::new();
    let (run, out) = inject_base(dir.path(), &pki, "v1");
    let source = format!("oci:{}:base", dir.path().join("src").display());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("keep env NODE_EXTRA_CA_CERTS=/mine.pem"),
        "{}",
        run.stderr
    );
    let files = top_layer(&out, "v1");
    assert_eq!(
        count_certs(&files["/etc/ssl/certs/ca-certificates.crt"].1),
        1
    );
    let env = config_of(&out, "v1")["config"]["Env"].clone();
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")),
        "{env}"
    );
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!("NODE_EXTRA_CA_CERTS=/mine.pem")),
        "{env}"
    );
    assert_eq!(
        config_of(&out, "v1")["config"]["Entrypoint"],
        json!(["/app"])
    );

    let overridden = inject(
        &source,
        &pki.path("ca.pem"),
        &format!("oci:{}:v2", out.display()),
        &["--env-override"],
    );
    assert_eq!(overridden.code, 0, "{}", overridden.stderr);
    let env = config_of(&out, "v2")["config"]["Env"].clone();
    assert!(
        env.as_array().unwrap().contains(&json!(
            "NODE_EXTRA_CA_CERTS=/usr/local/share/ocicert/injected-cas.pem"
        )),
        "{env}"
    );
}

#[test]
fn injection_is_idempotent_replaces_its_own_layer_and_covers_every_platform() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("src"));
    let base = || {
        gz_layer(&[
            Entry::File("etc/os-release", b"ID=debian\n".to_vec()),
            Entry::File(
                "etc/ssl/certs/ca-certificates.crt",
                fixture("certs/intermediate.pem"),
            ),
            Entry::File("bin/sh", b"sh".to_vec()),
        ])
    };
    let amd = layout.image(&[base()], json!({}), ("linux", "amd64"));
    let arm = layout.image(&[base()], json!({}), ("linux", "arm64"));
    let index = layout.index_of(&[amd, arm]);
    layout.tag(index, "multi").write();
    let source = format!("oci:{}:multi", dir.path().join("src").display());
    let (first, second) = (Pki::new(), Pki::new());
    let out = dir.path().join("out");
    let once = inject(
        &source,
        &first.path("ca.pem"),
        &format!("oci:{}:a", out.display()),
        &[],
    );
    assert_eq!(once.code, 0, "{}", once.stderr);
    let index: Value = image_manifest(&out, "a");
    assert_eq!(
        index["manifests"].as_array().unwrap().len(),
        2,
        "every platform, index re-assembled"
    );
    let again = inject(
        &format!("oci:{}:a", out.display()),
        &first.path("ca.pem"),
        &format!("oci:{}:b", out.display()),
        &[],
    );
    assert_eq!(
        again.stdout, once.stdout,
        "injecting the same CA again changes nothing"
    );
    let replaced = inject(
        &format!("oci:{}:a", out.display()),
        &second.path("ca.pem"),
        &format!("oci:{}:c", out.display()),
        &["--platform", "linux/arm64"],
    );
    assert_eq!(replaced.code, 0, "{}", replaced.stderr);
    let manifest = image_manifest(&out, "c");
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        2,
        "the earlier ocicert layer is replaced, not stacked"
    );
    let files = top_layer(&out, "c");
    let bundle =
        String::from_utf8_lossy(&files["/etc/ssl/certs/ca-certificates.crt"].1).into_owned();
    assert_eq!(
        count_certs(bundle.as_bytes()),
        2,
        "base CA plus only the second CA"
    );
    let dry = ocicert(&[
        "inject",
        &source,
        "--ca",
        &first.path("ca.pem"),
        "--dry-run",
    ]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("/etc/ssl/certs/ca-certificates.crt")
            && dry.stdout.contains("NODE_EXTRA_CA_CERTS"),
        "{}",
        dry.stdout
    );
}

#[test]
fn bad_inputs_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("src"));
    let descriptor = layout.image(
        &[gz_layer(&[Entry::File("a", b"a".to_vec())])],
        json!({}),
        ("windows", "amd64"),
    );
    layout.tag(descriptor, "win").write();
    let pki = Pki::new();
    let not_pem = dir.path().join("not.pem");
    fs_err::write(&not_pem, "hello").unwrap();
    let source = format!("oci:{}:win", dir.path().join("src").display());
    let to = format!("oci:{}:x", dir.path().join("out").display());
    let run = inject(&source, not_pem.to_str().unwrap(), &to, &[]);
    assert!(
        run.code == 2 && run.stderr.contains("holds no PEM certificate"),
        "{}",
        run.stderr
    );
    let leaf = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/certs/leaf.pem");
    let run = inject(&source, leaf.to_str().unwrap(), &to, &[]);
    assert!(
        run.code == 2
            && run.stderr.contains("not a CA certificate")
            && run.stderr.contains("--allow-non-ca"),
        "{}",
        run.stderr
    );
    let run = inject(&source, &pki.path("ca.pem"), &to, &[]);
    assert!(
        run.code == 2 && run.stderr.contains("only Linux images"),
        "{}",
        run.stderr
    );
}

/// A real Debian root filesystem (debootstrap, cached: `rootfs::debian_rootfs_tar`), injected,
/// unpacked with umoci and used in a chroot: openssl and curl trust the CA with their default stores, also after
/// update-ca-certificates. The push to a real registry uploads only the new blobs.
#[test]
fn debian_rootfs_trusts_the_ca_in_a_chroot_and_pushes_only_new_blobs() {
    require("umoci", "umoci");
    require("chroot", "coreutils");
    let rootfs = crate::rootfs::debian_rootfs_tar(&["ca-certificates", "curl", "openssl"]);
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("src"));
    let blob = Blob {
        bytes: fs_err::read(&rootfs).unwrap(),
        media_type: "application/vnd.oci.image.layer.v1.tar",
    };
    let descriptor = layout.image(
        &[blob],
        json!({"config": {"Cmd": ["/bin/bash"]}}),
        ("linux", "amd64"),
    );
    layout.tag(descriptor, "base").write();
    let source = format!("oci:{}:base", dir.path().join("src").display());
    let pki = Pki::new();
    let out = dir.path().join("out");
    let run = inject(
        &source,
        &pki.path("ca.pem"),
        &format!("oci:{}:injected", out.display()),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("Debian"), "{}", run.stderr);

    let bundle = dir.path().join("bundle");
    umoci_unpack(&format!("{}:injected", out.display()), &bundle);
    let root = bundle.join("rootfs");
    fs_err::copy(pki.path("server.pem"), root.join("tmp/server.pem")).unwrap();
    let in_chroot = |args: &[&str]| {
        Command::new("chroot")
            .arg(&root)
            .args(args)
            .output()
            .unwrap()
    };
    let verify = in_chroot(&["openssl", "verify", "/tmp/server.pem"]);
    assert!(
        verify.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    let port = crate::support::free_port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            &pki.path("server.pem"),
            "-key",
            &pki.path("server.key"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        && started.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("https://127.0.0.1:{port}/");
    let curl = in_chroot(&["curl", "-sS", "-o", "/dev/null", &url]);
    let update = in_chroot(&["update-ca-certificates"]);
    let curl_after = in_chroot(&["curl", "-sS", "-o", "/dev/null", &url]);
    let verify_after = in_chroot(&["openssl", "verify", "/tmp/server.pem"]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        curl.status.success(),
        "curl with the default store: {}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert!(
        update.status.success(),
        "update-ca-certificates: {}",
        String::from_utf8_lossy(&update.stderr)
    );
    assert!(
        curl_after.status.success(),
        "curl after update-ca-certificates: {}",
        String::from_utf8_lossy(&curl_after.stderr)
    );
    assert!(
        verify_after.status.success(),
        "openssl verify after update-ca-certificates"
    );

    // Push: the base layer is already in the registry, so only the new layer and config move.
    let registry = Registry::start(Setup::Plain);
    registry.push(&source, "deb/app:base");
    let proxy = FlakyProxy::start(&registry.host(), 0);
    let via_proxy = format!("127.0.0.1:{}", proxy.port);
    let pushed = inject(
        &format!("{via_proxy}/deb/app:base"),
        &pki.path("ca.pem"),
        &format!("{via_proxy}/deb/app:injected"),
        &["--insecure"],
    );
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    let log = fs_err::read_to_string(&proxy.log).unwrap();
    // Upload sessions start with a POST through the proxy (the registry's Location then points
    // at itself); existing blobs answer 200 to HEAD and are skipped.
    let uploads = log
        .lines()
        .filter(|l| l.starts_with("202 POST") && l.contains("/blobs/uploads/"))
        .count();
    assert_eq!(
        uploads, 2,
        "only the new layer and the new config are uploaded:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("200 HEAD") && l.contains("/blobs/")),
        "the base layer is found by HEAD:\n{log}"
    );
    let inspected = registry.skopeo_inspect("deb/app:injected");
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(inspected["Digest"].as_str().unwrap(), pushed.stdout.trim());
}

/// `inject --ca --enroll est` on a busybox image, pushed to the real registry, pulled back with
/// skopeo, unpacked with umoci and run under runc (read-only root, tmpfs output dir): the stub
/// trusts the EST server through the injected CA, enrolls for the templated SAN, and execs the
/// original entrypoint, which sees the certificate files and env vars.
#[test]
fn enrollment_stub_runs_before_the_original_entrypoint_under_runc() {
    require("runc", "runc");
    require("/bin/busybox", "busybox-static");
    let stub_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/stubs/amd64/ocicert-enroll");
    if !stub_dir.exists() {
        let built =
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-stubs.sh"))
                .arg("amd64")
                .status()
                .unwrap();
        assert!(built.success(), "scripts/build-stubs.sh amd64");
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    // The EST test server (RFC 7030) with a certificate from the CA that inject adds.
    let port = crate::support::free_port();
    let log = dir.path().join("est.jsonl");
    let mock_config = dir.path().join("est.json");
    fs_err::write(&mock_config, json!({"mode": "est", "port": port, "tls_cert": pki.path("server.pem"), "tls_key": pki.path("server.key"),
        "ca_cert": pki.path("ca.pem"), "ca_key": pki.path("ca.key"), "log": log, "users": ["app:est-secret"]}).to_string()).unwrap();
    let mut est = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("enroll/tests/support/pkimock.py"))
        .arg(&mock_config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        && started.elapsed() < std::time::Duration::from_secs(15)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let app = "#!/bin/sh\necho \"app: args=$* cert=$OCICERT_CERT_FILE key=$OCICERT_KEY_FILE\"\ncat \"$OCICERT_CERT_FILE\"\n";
    let mut layout = Layout::new(&dir.path().join("src"));
    let base = gz_layer(&[
        Entry::Executable("bin/busybox", fs_err::read("/bin/busybox").unwrap()),
        Entry::Symlink("bin/sh", "busybox"),
        Entry::Symlink("bin/cat", "busybox"),
        Entry::Symlink("bin/echo", "busybox"),
        Entry::File("app.sh", app.as_bytes().to_vec()),
        Entry::Dir("run/"),
        Entry::Dir("tmp/"),
    ]);
    let descriptor = layout.image(
        &[base],
        json!({"config": {"Entrypoint": ["/bin/sh", "/app.sh"], "Cmd": ["hello"]}}),
        ("linux", "amd64"),
    );
    layout.tag(descriptor, "base").write();
    let registry = Registry::start(Setup::Plain);
    registry.push(
        &format!("oci:{}:base", dir.path().join("src").display()),
        "team/app:base",
    );
    let source = format!("{}/team/app:base", registry.host());
    let destination = format!("{}/team/app:enrolled", registry.host());
    let url = format!("https://127.0.0.1:{port}");
    let injected = inject(
        &source,
        &pki.path("ca.pem"),
        &destination,
        &[
            "--insecure",
            "--enroll",
            "est",
            "--enroll-url",
            &url,
            "--enroll-san",
            "${HOSTNAME}.example.test",
        ],
    );
    assert_eq!(injected.code, 0, "{}", injected.stderr);
    assert!(
        injected.stderr.contains("enroll with est"),
        "{}",
        injected.stderr
    );
    let again = inject(
        &destination,
        &pki.path("ca.pem"),
        &format!("{}/team/app:twice", registry.host()),
        &[
            "--insecure",
            "--enroll",
            "est",
            "--enroll-url",
            &url,
            "--enroll-san",
            "${HOSTNAME}.example.test",
        ],
    );
    assert_eq!(
        again.stdout, injected.stdout,
        "injecting again does not wrap the entrypoint twice"
    );

    let pulled = dir.path().join("pulled");
    let copy = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{destination}"),
            &format!("oci:{}:app", pulled.display()),
        ])
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let bundle = dir.path().join("bundle");
    umoci_unpack(&format!("{}:app", pulled.display()), &bundle);
    let config_path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&fs_err::read(&config_path).unwrap()).unwrap();
    let args: Vec<String> = config["process"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        args,
        [
            "/.ocicert/ocicert-enroll",
            "--config",
            "/.ocicert/enroll.json",
            "--",
            "/bin/sh",
            "/app.sh",
            "hello"
        ]
    );
    config["process"]["terminal"] = json!(false);
    // The EST password is a runtime secret: it is in the container's environment, not the image.
    config["process"]["env"].as_array_mut().unwrap().extend([
        json!("OCICERT_EST_USERNAME=app"),
        json!("OCICERT_EST_PASSWORD=est-secret"),
    ]);
    config["root"]["readonly"] = json!(true);
    config["hostname"] = json!("web-1");
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/run/ocicert", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=0755", "size=1m"]}));
    fs_err::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let run = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(format!("ocicert-{}", std::process::id()))
        .output()
        .unwrap();
    let _ = est.kill();
    let _ = est.wait();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "runc: {stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("app: args=hello cert=/run/ocicert/cert.pem key=/run/ocicert/key.pem"),
        "{stdout}"
    );
    let start = stdout
        .find("-----BEGIN CERTIFICATE-----")
        .expect("the app printed its certificate");
    let printed = dir.path().join("issued.pem");
    fs_err::write(&printed, &stdout[start..]).unwrap();
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&printed)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("web-1.example.test"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile", &pki.path("ca.pem")])
        .arg(&printed)
        .output()
        .unwrap();
    assert!(verify.status.success(), "the EST server's CA issued it");
}

/// A destination that refuses writes (a registry in read-only maintenance mode) is a clear
/// error naming it, and nothing is pushed half-done: no tag appears.
#[test]
fn a_read_only_destination_is_a_clear_error() {
    require("docker-registry", "docker-registry");
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let config = dir.path().join("config.yml");
    fs_err::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  maintenance: {{readonly: {{enabled: true}}}}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut registry = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        && started.elapsed() < std::time::Duration::from_secs(15)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut layout = Layout::new(&dir.path().join("src"));
    let descriptor = layout.image(
        &[gz_layer(&[Entry::File(
            "etc/os-release",
            b"ID=alpine\n".to_vec(),
        )])],
        json!({}),
        ("linux", "amd64"),
    );
    layout.tag(descriptor, "base").write();
    let pki = Pki::new();
    let run = inject(
        &format!("oci:{}:base", dir.path().join("src").display()),
        &pki.path("ca.pem"),
        &format!("127.0.0.1:{port}/team/app:v1"),
        &["--insecure"],
    );
    let tags = Command::new("curl")
        .args([
            "-s",
            &format!("http://127.0.0.1:{port}/v2/team/app/tags/list"),
        ])
        .output()
        .unwrap();
    let _ = registry.kill();
    let _ = registry.wait();
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{port}")) && run.stderr.contains("failed to push"),
        "{}",
        run.stderr
    );
    assert!(
        !String::from_utf8_lossy(&tags.stdout).contains("v1"),
        "no tag may point at a half-pushed image"
    );
}

/// Scanning an injected image names the CA inject added as `injected-trust-anchor` (info) in
/// every store it went into, never as an unknown root.
#[test]
fn a_scan_of_an_injected_image_calls_its_ca_injected() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("src"));
    let base = gz_layer(&[
        Entry::File(
            "etc/os-release",
            b"NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\n".to_vec(),
        ),
        Entry::File(
            "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
            fixture("public/removed-root-baltimore.pem"),
        ),
        Entry::File(
            "usr/lib/python3.11/site-packages/certifi/cacert.pem",
            fixture("public/removed-root-baltimore.pem"),
        ),
    ]);
    let descriptor = layout.image(&[base], json!({}), ("linux", "amd64"));
    layout.tag(descriptor, "base").write();
    let pki = Pki::new();
    let (run, out) = inject_base(dir.path(), &pki, "v1");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let scan = scan_json(&format!("oci:{}:v1", out.display()), &[]);
    let report = scan.json();
    let findings = report["images"][0]["findings"].as_array().unwrap();
    let injected: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"] == "injected-trust-anchor")
        .collect();
    assert!(injected.len() >= 2, "one per store: {findings:?}");
    for finding in &injected {
        assert_eq!(finding["severity"], "info");
        assert!(
            finding["message"]
                .as_str()
                .unwrap()
                .contains("dev.ocicert.injected-cas"),
            "{finding}"
        );
    }
    assert!(
        !findings.iter().any(|f| f["rule"] == "unknown-trust-anchor"),
        "{findings:?}"
    );
    assert_eq!(scan.code, 0, "{}", scan.stderr);
}
