//! Image sources: multi-platform indexes, compression kinds, and archives written by skopeo.

use crate::common::*;
use serde_json::json;

/// Writes a two-platform layout tagged `multi`; returns its reference and the index digest.
fn multi_platform(dir: &std::path::Path) -> (String, String) {
    let mut layout = Layout::new(dir);
    let shared = || gz_layer(&[Entry::File("etc/shared.key", fixture("keys/ec-sec1.pem"))]);
    let amd = layout.image(
        &[
            shared(),
            gz_layer(&[Entry::File("amd.pem", fixture("certs/expired.pem"))]),
        ],
        json!({}),
        ("linux", "amd64"),
    );
    let arm_only = Blob {
        bytes: zstd(&tar(&[Entry::File(
            "arm.key",
            fixture("keys/rsa-pkcs1.pem"),
        )])),
        media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    let arm = layout.image(&[shared(), arm_only], json!({}), ("linux", "arm64"));
    let index = layout.index_of(&[amd, arm]);
    let index_digest = index["digest"].as_str().unwrap().to_string();
    layout.tag(index, "multi").write();
    (format!("oci:{}:multi", dir.display()), index_digest)
}

#[test]
fn picks_one_platform_or_scans_all() {
    let dir = tempfile::tempdir().unwrap();
    let (reference, index_digest) = multi_platform(dir.path());
    let arm = scan_json(&reference, &["--platform", "linux/arm64"]).json();
    assert_eq!(arm["images"].as_array().unwrap().len(), 1);
    // The digest to pin is the index the tag names, whichever platform was scanned.
    assert_eq!(arm["digest"], index_digest.as_str());
    assert_eq!(arm["images"][0]["platform"], "linux/arm64");
    let places: Vec<_> = findings(&arm).into_iter().map(|(_, p, _)| p).collect();
    assert!(
        places.contains(&"/arm.key".to_string()),
        "zstd layer scanned: {places:?}"
    );

    let all = scan_json(&reference, &["--all-platforms"]).json();
    let platforms: Vec<_> = all["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["platform"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(all["digest"], index_digest.as_str());
    for image in all["images"].as_array().unwrap() {
        assert_eq!(
            image["layers"][0]["files"], 1,
            "shared layer reported in both platforms"
        );
    }

    let missing = scan_json(&reference, &["--platform", "linux/s390x"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("linux/amd64") && missing.stderr.contains("linux/arm64"),
        "{}",
        missing.stderr
    );
}

#[test]
fn unknown_tag_lists_the_available_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (reference, _) = multi_platform(dir.path());
    let run = scan_json(&reference.replace(":multi", ":nope"), &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no image tagged `nope`") && run.stderr.contains("multi"),
        "{}",
        run.stderr
    );
}

/// skopeo (an independent producer) converts our layout to docker-archive and oci-archive;
/// both must give the same findings as the layout itself.
#[test]
fn docker_and_oci_archives_written_by_skopeo_scan_the_same() {
    require("skopeo", "skopeo");
    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join("layout");
    let mut layout = Layout::new(&layout_dir);
    let manifest = layout.image(
        &[
            gz_layer(&[Entry::File("keys/id", fixture("keys/openssh-ed25519"))]),
            gz_layer(&[
                Entry::File("keys/.wh.id", Vec::new()),
                Entry::File("app/app.jar", fixture("archives/app.jar")),
            ]),
        ],
        json!({}),
        ("linux", "amd64"),
    );
    layout.tag(manifest.clone(), "v1").write();
    let source = format!("oci:{}:v1", layout_dir.display());
    let expected = findings(&scan_json(&source, &[]).json());
    assert!(
        expected
            .iter()
            .any(|(r, p, v)| r == "private-key" && p == "/keys/id" && !v),
        "{expected:?}"
    );

    let docker = dir.path().join("docker.tar");
    let oci = dir.path().join("oci.tar");
    for destination in [
        format!("docker-archive:{}:example/app:v1", docker.display()),
        format!("oci-archive:{}:v1", oci.display()),
    ] {
        let status = std::process::Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                &source,
                &destination,
            ])
            .status()
            .expect("skopeo runs");
        assert!(status.success(), "skopeo copy to {destination}");
    }
    let from_docker = findings(
        &scan_json(
            &format!("docker-archive:{}:example/app:v1", docker.display()),
            &[],
        )
        .json(),
    );
    let from_oci = scan_json(&format!("oci-archive:{}", oci.display()), &[]).json();
    assert_eq!(from_docker, expected);
    assert_eq!(findings(&from_oci), expected);
    // skopeo kept the manifest byte for byte: the archive's digest is the layout's.
    assert_eq!(from_oci["digest"], manifest["digest"]);
}

#[test]
fn foreign_layers_are_skipped_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(dir.path());
    let real = gz_layer(&[Entry::File("k.pem", fixture("keys/ec-sec1.pem"))]);
    let descriptor = layout.image(&[real], json!({}), ("windows", "amd64"));
    // Rewrite the manifest with a foreign (Windows base) layer that is not in the layout.
    let manifest_path = dir
        .path()
        .join("blobs/sha256")
        .join(&descriptor["digest"].as_str().unwrap()[7..]);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs_err::read(&manifest_path).unwrap()).unwrap();
    manifest["layers"].as_array_mut().unwrap().insert(
        0,
        json!({
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": format!("sha256:{}", "ab".repeat(32)), "size": 1234,
        "urls": ["https://mcr.microsoft.com/v2/windows/servercore/blobs/sha256:abab"]}),
    );
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = layout.blob(&bytes);
    layout.tag(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": bytes.len()}), "win").write();
    let run = scan_json(&format!("oci:{}:win", dir.path().display()), &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    let skipped = report["images"][0]["skipped_layers"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].as_str().unwrap().contains("foreign"),
        "{skipped:?}"
    );
    assert_eq!(findings(&report).len(), 1);
}
