//! The static stub inside a real container: a busybox-static image built with umoci whose
//! entrypoint is what `ocicert inject --enroll` produces (`[stub, --, original entrypoint]`, Cmd
//! unchanged), run with `runc` (read-only root, tmpfs output dir, non-root user, host network so
//! pebble on 127.0.0.1 is reachable) and with podman (runtime runc, host network). Also the arm64
//! stub under `qemu-aarch64-static`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use ocicert_enroll_config::{AcmeOptions, Ca, EnrollConfig};
use serde_json::{Value, json};

use crate::support::*;

/// The app: shows the env vars, its argv, its uid and the certificate files.
const ENTRYPOINT: &str = r#"#!/bin/sh
echo "app: uid=$(id -u) args=$*"
echo "app: cert=$OCICERT_CERT_FILE key=$OCICERT_KEY_FILE ca=$OCICERT_CA_FILE"
ls -l /run/ocicert | grep -c pem | sed 's/^/app: files=/'
[ -n "$OCICERT_CERT_FILE" ] && cat "$OCICERT_CERT_FILE"
echo "app: done"
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn newest_source() -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let root = workspace();
    let mut stack = vec![root.join("enroll/src"), root.join("enroll-config/src")];
    let mut files = vec![
        root.join("Cargo.lock"),
        root.join("enroll/Cargo.toml"),
        root.join("enroll-config/Cargo.toml"),
    ];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path())
            } else {
                files.push(entry.path())
            }
        }
    }
    for file in files {
        if let Ok(modified) = std::fs::metadata(file).and_then(|m| m.modified()) {
            newest = newest.max(modified);
        }
    }
    newest
}

/// The static stub for `arch` (`amd64`, `arm64`): from `OCICERT_STUB_DIR` if set, else
/// `target/stubs`, rebuilt by `scripts/build-stubs.sh` when older than the sources.
fn static_stub(arch: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("OCICERT_STUB_DIR") {
        let path = Path::new(&dir).join(arch).join("ocicert-enroll");
        assert!(
            path.exists(),
            "{} is missing (OCICERT_STUB_DIR)",
            path.display()
        );
        return path;
    }
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    let path = workspace()
        .join("target/stubs")
        .join(arch)
        .join("ocicert-enroll");
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|built| built >= newest_source());
    if !fresh {
        // A separate target dir: the outer `cargo test` may hold the lock of the usual one.
        let output = Command::new(workspace().join("scripts/build-stubs.sh"))
            .arg(arch)
            .env("CARGO_TARGET_DIR", workspace().join("target/stub-build"))
            .env_remove("OCICERT_STUB_DIR")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "scripts/build-stubs.sh {arch}: {}",
            text(&output.stderr)
        );
    }
    path
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

/// Builds `oci:<dir>/oci:app`: busybox-static, the stub and its config under `/.ocicert`, the
/// app under `/app`; Entrypoint `[stub, --, /app/entrypoint.sh]`, Cmd `[hello, two words]`.
fn build_image(dir: &Path, config: &EnrollConfig, tls_ca: &Path) -> PathBuf {
    require("umoci", "umoci");
    let rootfs = dir.join("rootfs");
    for sub in [
        "bin",
        ".ocicert",
        "app",
        "run/ocicert",
        "tmp",
        "proc",
        "sys",
        "dev",
        "etc",
    ] {
        std::fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "echo", "id", "ls", "grep", "sed", "sleep", "head",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    std::fs::copy(static_stub("amd64"), rootfs.join(".ocicert/ocicert-enroll")).unwrap();
    std::fs::write(rootfs.join(".ocicert/enroll.json"), config.to_json()).unwrap();
    std::fs::copy(tls_ca, rootfs.join(".ocicert/tls-ca.pem")).unwrap();
    std::fs::write(rootfs.join("app/entrypoint.sh"), ENTRYPOINT).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        rootfs.join("app/entrypoint.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
    )
    .unwrap();
    let layer = dir.join("layer.tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg("."));
    let image = format!("{}:app", dir.join("oci").display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(dir.join("oci")));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &image])
        .arg(&layer));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.entrypoint",
        "/.ocicert/ocicert-enroll",
        "--config.entrypoint",
        "--",
        "--config.entrypoint",
        "/app/entrypoint.sh",
        "--config.cmd",
        "hello",
        "--config.cmd",
        "two words",
        "--config.user",
        "65534:65534",
        "--config.env",
        "POD_NAME=web-0",
        "--config.env",
        "PATH=/bin",
        "--architecture",
        "amd64",
        "--os",
        "linux",
    ]));
    dir.join("oci")
}

fn acme_image_config(pebble: &Pebble) -> EnrollConfig {
    // The app runs as uid 65534, which cannot bind port 80 without CAP_NET_BIND_SERVICE (podman
    // drops it for non-root users): the http-01 responder uses a high port, as behind a port map.
    let mut acme = AcmeOptions::new(&pebble.directory_url());
    acme.http01_port = pebble.http_port;
    let mut config = EnrollConfig::new(Ca::Acme(acme));
    config.tls_ca_file = Some("/.ocicert/tls-ca.pem".into());
    config.sans = vec![
        "${POD_NAME}.app.example.test".into(),
        "${HOSTNAME}.pods.example.test".into(),
    ];
    config
}

/// Unpacks the image into a runc bundle: read-only root, host network, hostname `web-1`, and
/// `/run/ocicert` as a tmpfs owned by the app's user (or a bind mount of `bind`).
fn bundle(dir: &Path, layout: &Path, name: &str, bind: Option<&Path>) -> PathBuf {
    let bundle = dir.join(name);
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:app", layout.display()))
        .arg(&bundle));
    let path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = json!(false);
    config["root"]["readonly"] = json!(true);
    config["hostname"] = json!("web-1");
    let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|namespace| namespace["type"] != "network");
    let mount = match bind {
        None => json!({"destination": "/run/ocicert", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "noexec", "mode=0700", "uid=65534", "gid=65534", "size=1m"]}),
        Some(host) => {
            json!({"destination": "/run/ocicert", "type": "bind", "source": host, "options": ["rbind", "rw"]})
        }
    };
    config["mounts"].as_array_mut().unwrap().push(mount);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    bundle
}

fn runc(bundle: &Path, id: &str) -> Output {
    Command::new("runc")
        .arg("run")
        .arg("--bundle")
        .arg(bundle)
        .arg(id)
        .output()
        .unwrap()
}

/// The certificate the app printed, written to a file for openssl.
fn printed_cert(dir: &Path, stdout: &str) -> PathBuf {
    let start = stdout
        .find("-----BEGIN CERTIFICATE-----")
        .expect("the app printed no certificate");
    let path = dir.join("printed.pem");
    std::fs::write(&path, &stdout[start..]).unwrap();
    path
}

#[test]
fn runc_read_only_root_non_root_tmpfs_then_reuse_and_ca_down() {
    require("runc", "runc");
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let pebble = Pebble::start(
        &dir.join("pebble"),
        &PebbleOptions {
            always_valid: true,
            ..Default::default()
        },
    );
    let layout = build_image(dir, &acme_image_config(&pebble), &pebble.pki.ca_cert);
    let id = format!("ocicert-enroll-{}", std::process::id());

    // 1. Read-only root, tmpfs output dir, uid 65534.
    let tmpfs = bundle(dir, &layout, "bundle-tmpfs", None);
    let output = runc(&tmpfs, &format!("{id}-tmpfs"));
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("app: uid=65534 args=hello two words"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "app: cert=/run/ocicert/cert.pem key=/run/ocicert/key.pem ca=/run/ocicert/ca.pem"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("app: files=4"), "{stdout}");
    assert!(stderr.contains("enrolled with acme"), "{stderr}");
    let cert = printed_cert(dir, &stdout);
    let sans = openssl_x509(&cert, &["-ext", "subjectAltName"]);
    assert!(
        sans.contains("DNS:web-0.app.example.test") && sans.contains("DNS:web-1.pods.example.test"),
        "{sans}"
    );
    assert!(openssl_x509(&cert, &["-issuer"]).contains("Pebble Intermediate CA"));

    // 2. A persistent output dir (a Kubernetes emptyDir across container restarts): the second
    // start reuses the certificate.
    let host_dir = dir.join("emptydir");
    std::fs::create_dir(&host_dir).unwrap();
    std::os::unix::fs::chown(&host_dir, Some(65534), Some(65534)).unwrap();
    let persistent = bundle(dir, &layout, "bundle-bind", Some(&host_dir));
    let first = runc(&persistent, &format!("{id}-bind1"));
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = runc(&persistent, &format!("{id}-bind2"));
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr).contains("reusing the certificate in /run/ocicert"),
        "{}",
        text(&second.stderr)
    );
    assert!(text(&second.stdout).contains("app: done"));

    // 3. The CA down: `required` stops the container with one line; `optional` starts the app.
    drop(pebble);
    let down = runc(&tmpfs, &format!("{id}-down"));
    assert_eq!(down.status.code(), Some(70), "{}", text(&down.stdout));
    assert!(!text(&down.stdout).contains("app:"));
    let line = text(&down.stderr);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("enrollment failed (connection: GET https://127.0.0.1:"),
        "{line}"
    );
    let config_path = tmpfs.join("rootfs/.ocicert/enroll.json");
    let mut optional = EnrollConfig::from_json(&std::fs::read(&config_path).unwrap()).unwrap();
    optional.required = false;
    std::fs::write(&config_path, optional.to_json()).unwrap();
    let started = runc(&tmpfs, &format!("{id}-optional"));
    assert!(started.status.success(), "{}", text(&started.stderr));
    assert!(
        text(&started.stdout).contains("app: cert= key= ca="),
        "{}",
        text(&started.stdout)
    );
    assert!(text(&started.stdout).contains("app: done"));
}

#[test]
fn podman_with_runc_and_host_network() {
    require("podman", "podman");
    require("runc", "runc");
    // podman names an `oci:` image after its path, and image names must be lower-case.
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let scratch = tempfile::Builder::new()
        .prefix(&format!(
            "ocicert-enroll-podman-{}-{nanos}",
            std::process::id()
        ))
        .rand_bytes(0)
        .tempdir()
        .unwrap();
    let dir = scratch.path();
    let pebble = Pebble::start(
        &dir.join("pebble"),
        &PebbleOptions {
            always_valid: true,
            ..Default::default()
        },
    );
    let layout = build_image(dir, &acme_image_config(&pebble), &pebble.pki.ca_cert);
    let conf = dir.join("containers.conf");
    std::fs::write(&conf, "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n[engine]\nruntime = \"runc\"\n").unwrap();
    let output = Command::new("podman")
        .env("CONTAINERS_CONF", &conf)
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "run",
            "--rm",
            "--network",
            "host",
            "--read-only",
            "--hostname",
            "web-1",
        ])
        // podman 4.3 with runc ignores `mode=` on a tmpfs; `U` chowns it to the image's user.
        .args(["--tmpfs", "/run/ocicert:rw,size=1m,U"])
        .arg(format!("oci:{}:app", layout.display()))
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("app: uid=65534 args=hello two words"),
        "{stdout}"
    );
    assert!(stdout.contains("app: files=4"), "{stdout}");
    let sans = openssl_x509(&printed_cert(dir, &stdout), &["-ext", "subjectAltName"]);
    assert!(
        sans.contains("DNS:web-0.app.example.test") && sans.contains("DNS:web-1.pods.example.test"),
        "{sans}"
    );
}

#[test]
fn arm64_stub_enrolls_under_qemu() {
    require("qemu-aarch64-static", "qemu-user-static");
    let scratch = tempfile::tempdir().unwrap();
    let pebble = Pebble::start(
        &scratch.path().join("pebble"),
        &PebbleOptions {
            always_valid: true,
            ..Default::default()
        },
    );
    let out = scratch.path().join("out");
    let mut config = EnrollConfig::new(Ca::Acme(AcmeOptions::new(&pebble.directory_url())));
    config.tls_ca_file = Some(pebble.pki.ca_cert.clone());
    config.sans = vec!["arm64.example.test".into()];
    config.output_dir = out.clone();
    let path = write_config(scratch.path(), &config);
    let stub = static_stub("arm64");
    let file = run(Command::new("file").arg(&stub));
    assert!(
        text(&file.stdout).contains("ARM aarch64"),
        "{}",
        text(&file.stdout)
    );
    // qemu-user hands the final execve to the kernel, so the (x86_64) /bin/sh runs natively.
    let output = Command::new("qemu-aarch64-static")
        .arg(&stub)
        .arg("--config")
        .arg(&path)
        .args([
            "--",
            "/bin/sh",
            "-c",
            SHOW_ENV,
            "app",
            "first arg",
            "second",
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_app_ran(&output, &out);
    let verify = openssl_verify(
        &pebble.root_pem(),
        Some(&out.join("chain.pem")),
        &out.join("cert.pem"),
    );
    assert!(verify.status.success(), "{}", text(&verify.stderr));
}
