//! `ocicert inject` on real Debian Java images: the JVM inside each injected image (chroot) loads
//! its default trust store and connects to a server signed by the test CA, for Debian's JKS
//! `cacerts` and the three PKCS#12 shapes keytool writes (password-less as JDK 18+ ships it, plain
//! bags under a MAC, encrypted bags under a MAC). keytool cannot show what this shows: it always
//! opens a store with a password, the JVM opens `cacerts` without one.

use crate::common::*;
use crate::rootfs::{debian_rootfs_tar, in_root, succeeded, unpack};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CACERTS: &str = "etc/ssl/certs/java/cacerts";

/// One shape of Java trust store: how keytool makes it from Debian's JKS, and how the JVM is
/// told to open it (a store with encrypted bags is only usable with its password).
struct Variant {
    name: &'static str,
    keytool_options: Option<&'static [&'static str]>,
    password: Option<&'static str>,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        name: "jks",
        keytool_options: None,
        password: None,
    },
    Variant {
        name: "p12-passwordless",
        keytool_options: Some(&[
            "-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE",
            "-J-Dkeystore.pkcs12.macAlgorithm=NONE",
        ]),
        password: None,
    },
    Variant {
        name: "p12-plain-mac",
        keytool_options: Some(&["-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE"]),
        password: None,
    },
    Variant {
        name: "p12-encrypted",
        keytool_options: Some(&[]),
        password: Some("changeit"),
    },
];

/// What the JVM in `root` reports: its trust anchor count and the TLS outcome against `target`.
fn jvm(root: &Path, password: Option<&str>, target: &str) -> (usize, String) {
    let mut args = vec!["java".to_string()];
    if let Some(password) = password {
        args.push(format!("-Djavax.net.ssl.trustStorePassword={password}"));
    }
    args.extend(["-cp", "/tmp/ocicert-ta", "TrustAnchors", target].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = succeeded("java in the image", &in_root(root, &args));
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix("anchors "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no anchor count: {text}"));
    let tls = text
        .lines()
        .find(|l| l.starts_with("tls "))
        .unwrap_or_else(|| panic!("no TLS outcome: {text}"))
        .to_string();
    (count, tls)
}

/// Compiles tests/support/TrustAnchors.java on the host (the image's JRE has no compiler).
fn compile_trust_anchors(out: &Path) -> PathBuf {
    require("javac", "openjdk-17-jdk-headless");
    let classes = out.join("ocicert-ta");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/TrustAnchors.java");
    let output = Command::new("javac")
        .args(["--release", "17", "-d"])
        .arg(&classes)
        .arg(source)
        .output()
        .unwrap();
    succeeded("javac", &output);
    classes
}

fn copy_classes(classes: &Path, root: &Path) {
    let dest = root.join("tmp/ocicert-ta");
    fs_err::create_dir_all(&dest).unwrap();
    for entry in fs_err::read_dir(classes).unwrap() {
        let entry = entry.unwrap();
        fs_err::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
}

/// The MAC and bag-protection lines of `openssl pkcs12 -info` (the shape, not the contents).
fn p12_shape(store: &Path) -> Vec<String> {
    let output = Command::new("openssl")
        .args(["pkcs12", "-info", "-nokeys", "-noout", "-passin"])
        .arg("pass:changeit")
        .arg("-in")
        .arg(store)
        .output()
        .unwrap();
    let text = succeeded("openssl pkcs12 -info", &output);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("MAC") || l.starts_with("PKCS7") || l.contains("MAC is absent"))
        .map(str::to_string)
        .collect();
    lines.dedup();
    lines
}

/// The test-CA-signed server the JVM connects to, killed on drop.
struct TlsServer(std::process::Child);

impl TlsServer {
    fn start(cert: &str, key: &str, port: u16) -> Self {
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-cert", cert, "-key", key])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "openssl s_server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self(child)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Before inject the JVM has Debian's N roots and cannot verify the test server; after inject it
/// has N + 1 and can, for every store shape. The PKCS#12 stores keep their MAC and bag
/// protection. (Before the fix the two plain-bag shapes came out with every bag encrypted, and
/// the JVM, which opens `cacerts` without a password, loaded 0 anchors.)
#[test]
fn the_jvm_in_a_debian_image_keeps_every_root_and_trusts_the_ca_for_every_store_shape() {
    require("umoci", "umoci");
    require("openssl", "openssl");
    let base_tar = debian_rootfs_tar(&[
        "ca-certificates",
        "ca-certificates-java",
        "openjdk-17-jre-headless",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let classes = compile_trust_anchors(dir.path());
    let pki_dir = dir.path().join("pki");
    let pki = crate::support::Pki::create(&pki_dir, "/CN=Java Inject Test Root/O=ocicert tests");
    let port = crate::support::free_port();
    let _server = TlsServer::start(&pki.path("server.pem"), &pki.path("server.key"), port);
    let target = format!("127.0.0.1:{port}");

    // The base root: each store variant is made there by the image's own keytool, and the
    // JVM's view before inject is taken there.
    let base = dir.path().join("base");
    unpack(&base_tar, &base);
    copy_classes(&classes, &base);
    let jks = fs_err::read(base.join(CACERTS)).unwrap();
    assert_eq!(
        &jks[..4],
        &[0xfe, 0xed, 0xfe, 0xed],
        "Debian's cacerts is JKS"
    );
    let mut stores = Vec::new();
    for variant in &VARIANTS {
        let store = match variant.keytool_options {
            None => jks.clone(),
            Some(options) => {
                let mut args = vec!["keytool"];
                args.extend_from_slice(options);
                args.extend_from_slice(&[
                    "-importkeystore",
                    "-noprompt",
                    "-srckeystore",
                    "/etc/ssl/certs/java/cacerts",
                    "-srcstorepass",
                    "changeit",
                    "-deststoretype",
                    "PKCS12",
                    "-deststorepass",
                    "changeit",
                    "-destkeystore",
                    "/tmp/variant.p12",
                ]);
                succeeded(variant.name, &in_root(&base, &args));
                let bytes = fs_err::read(base.join("tmp/variant.p12")).unwrap();
                fs_err::remove_file(base.join("tmp/variant.p12")).unwrap();
                bytes
            }
        };
        fs_err::write(base.join(CACERTS), &store).unwrap();
        let (anchors, tls) = jvm(&base, variant.password, &target);
        stores.push((variant, store, anchors));
        assert!(anchors > 100, "{}: {anchors} anchors before", variant.name);
        assert!(
            tls.starts_with("tls failed") && tls.contains("PKIX"),
            "{}: before inject the test CA is not trusted: {tls}",
            variant.name
        );
    }
    let debian_roots = stores[0].2;
    assert!(
        stores.iter().all(|(_, _, n)| *n == debian_roots),
        "every shape holds Debian's roots"
    );
    fs_err::remove_dir_all(&base).unwrap();

    // One image per variant: the shared Debian layer and a layer with the variant's store.
    let mut layout = Layout::new(&dir.path().join("src"));
    let base_layer = fs_err::read(&base_tar).unwrap();
    for (variant, store, _) in &stores {
        let layers = [
            Blob {
                bytes: base_layer.clone(),
                media_type: "application/vnd.oci.image.layer.v1.tar",
            },
            gz_layer(&[Entry::File(CACERTS, store.clone())]),
        ];
        let descriptor = layout.image(
            &layers,
            json!({"config": {"Cmd": ["/bin/bash"]}}),
            ("linux", "amd64"),
        );
        layout.tag(descriptor, variant.name);
    }
    layout.write();
    drop(base_layer);

    let out = dir.path().join("out");
    for (variant, original, _) in &stores {
        let run = ocicert(&[
            "inject",
            &format!("oci:{}:{}", dir.path().join("src").display(), variant.name),
            "--ca",
            &pki.path("ca.pem"),
            "--to",
            &format!("oci:{}:{}", out.display(), variant.name),
        ]);
        assert_eq!(run.code, 0, "{}: {}", variant.name, run.stderr);
        assert!(run.stderr.contains("Java store"), "{}", run.stderr);

        let bundle = dir.path().join(format!("bundle-{}", variant.name));
        let unpacked = Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{}", out.display(), variant.name))
            .arg(&bundle)
            .output()
            .unwrap();
        succeeded("umoci unpack", &unpacked);
        let root = bundle.join("rootfs");
        copy_classes(&classes, &root);
        let (anchors, tls) = jvm(&root, variant.password, &target);
        assert_eq!(
            anchors,
            debian_roots + 1,
            "{}: the JVM keeps every root and adds the CA",
            variant.name
        );
        assert_eq!(tls, "tls verified", "{}", variant.name);

        if variant.keytool_options.is_some() {
            let before = dir.path().join(format!("{}-before.p12", variant.name));
            fs_err::write(&before, original).unwrap();
            let after = root.join(CACERTS);
            assert_eq!(
                p12_shape(&before),
                p12_shape(&after),
                "{}: the same MAC and bag protection",
                variant.name
            );
        }
        fs_err::remove_dir_all(&bundle).unwrap();
    }
}
