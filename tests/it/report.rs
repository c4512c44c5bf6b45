//! Report formats on one fixture image (a key, an expired certificate, a weak CA and a deleted
//! key): insta snapshots of every format, validation against the official SARIF 2.1.0 and
//! CycloneDX 1.6 schemas, GitHub's SARIF requirements, and `--output`.

use crate::common::*;
use serde_json::{Value, json};
use std::path::Path;

/// The Dockerfile that "built" the fixture image; its history below is what BuildKit records.
const DOCKERFILE: &str = "# syntax=docker/dockerfile:1
FROM scratch
COPY rootfs/ /
COPY app/ /app/
RUN rm /root/.ssh/id_ed25519
";

fn layer(entries: &[Entry]) -> Blob {
    // Uncompressed, so that digests depend only on the tar bytes (stable snapshots).
    Blob {
        bytes: tar(entries),
        media_type: "application/vnd.oci.image.layer.v1.tar",
    }
}

/// Builds the fixture image in `dir/image` and writes `dir/Dockerfile`; returns the reference.
pub(crate) fn fixture_image(dir: &Path) -> String {
    let mut layout = Layout::new(&dir.join("image"));
    let rootfs = layer(&[
        Entry::Dir("etc/"),
        Entry::Dir("etc/ssl/"),
        Entry::Dir("etc/ssl/certs/"),
        Entry::File(
            "etc/ssl/certs/weak-ca.pem",
            fixture("certs/rsa1024-weak.pem"),
        ),
        Entry::Dir("root/"),
        Entry::Dir("root/.ssh/"),
        Entry::File("root/.ssh/id_ed25519", fixture("keys/openssh-ed25519")),
    ]);
    let app = layer(&[
        Entry::Dir("app/"),
        Entry::File("app/tls.key", fixture("keys/rsa-pkcs8.pem")),
        Entry::File("app/expired.pem", fixture("certs/expired.pem")),
    ]);
    let cleanup = layer(&[Entry::File("root/.ssh/.wh.id_ed25519", Vec::new())]);
    let config = json!({
        "created": "2026-05-01T00:00:00Z",
        "history": [
            {"created_by": "COPY rootfs/ / # buildkit"},
            {"created_by": "COPY app/ /app/ # buildkit"},
            {"created_by": "RUN /bin/sh -c rm /root/.ssh/id_ed25519 # buildkit"},
        ],
    });
    let manifest = layout.image(&[rootfs, app, cleanup], config, ("linux", "amd64"));
    layout.tag(manifest, "v1").write();
    fs_err::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    "oci:image:v1".to_string()
}

/// Runs `scan` in `dir` with `--now NOW` and the given arguments.
pub(crate) fn scan_in(dir: &Path, reference: &str, extra: &[&str]) -> Run {
    let mut args = vec!["scan", reference, "--now", NOW, "--no-policy"];
    args.extend_from_slice(extra);
    ocicert_in(dir, &args)
}

fn format(format: &str, extra: &[&str]) -> (Run, String) {
    let dir = tempfile::tempdir().unwrap();
    let reference = fixture_image(dir.path());
    let mut args = vec!["--format", format];
    args.extend_from_slice(extra);
    let run = scan_in(dir.path(), &reference, &args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert!(
        !run.stdout.contains("PRIVATE KEY-----"),
        "key material must never be printed"
    );
    let stdout = run.stdout.clone();
    (run, stdout)
}

/// Validates `document` against a schema in `schemas/`, with the other schema files registered
/// under their `$id`s (CycloneDX refers to `spdx.schema.json` and `jsf-0.82.schema.json`).
pub(crate) fn validate(schema_file: &str, document: &Value) -> Vec<String> {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let load = |name: &str| -> Value {
        serde_json::from_slice(&fs_err::read(schemas.join(name)).unwrap()).unwrap()
    };
    let mut options = jsonschema::options().should_validate_formats(true);
    for name in ["spdx.schema.json", "jsf-0.82.schema.json"] {
        let contents = load(name);
        let id = contents["$id"].as_str().unwrap().to_string();
        options = options.with_resource(id, jsonschema::Resource::from_contents(contents).unwrap());
    }
    let validator = options.build(&load(schema_file)).expect("schema compiles");
    validator
        .iter_errors(document)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect()
}

#[test]
fn table_snapshot() {
    let (_, stdout) = format("table", &[]);
    insta::assert_snapshot!(stdout);
}

#[test]
fn json_snapshot() {
    let (run, stdout) = format("json", &[]);
    let report = run.json();
    let found = findings(&report);
    for expected in [
        ("private-key", "/app/tls.key", true),
        ("private-key", "/root/.ssh/id_ed25519", false),
        ("cert-expired", "/app/expired.pem", true),
        ("weak-key", "/etc/ssl/certs/weak-ca.pem", true),
    ] {
        assert!(
            found.contains(&(expected.0.into(), expected.1.into(), expected.2)),
            "{expected:?} not in {found:#?}"
        );
    }
    insta::assert_snapshot!(stdout);
}

#[test]
fn sarif_snapshot_with_dockerfile() {
    let (_, stdout) = format("sarif", &["--dockerfile", "Dockerfile"]);
    insta::assert_snapshot!(stdout);
}

#[test]
fn cyclonedx_snapshot() {
    let (run, stdout) = format("cyclonedx", &[]);
    // The serial number is a hash of the content; it is checked for shape, not value.
    let serial = run.json()["serialNumber"].as_str().unwrap().to_string();
    assert!(
        serial.starts_with("urn:uuid:") && serial.len() == 45,
        "{serial}"
    );
    insta::assert_snapshot!(stdout.replace(&serial, "[SERIAL]"));
}

#[test]
fn markdown_snapshot() {
    let (_, stdout) = format("markdown", &[]);
    insta::assert_snapshot!(stdout);
}

#[test]
fn sarif_validates_and_meets_github_requirements() {
    for extra in [&["--dockerfile", "Dockerfile"][..], &[][..]] {
        let (run, _) = format("sarif", extra);
        let sarif = run.json();
        let errors = validate("sarif-schema-2.1.0.json", &sarif);
        assert!(errors.is_empty(), "{errors:#?}");
        let run = &sarif["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "ocicert");
        assert_eq!(
            run["automationDetails"]["id"],
            "ocicert/oci:image/linux/amd64/"
        );
        for rule in run["tool"]["driver"]["rules"].as_array().unwrap() {
            assert!(rule["shortDescription"]["text"].is_string(), "{rule}");
            assert!(rule["fullDescription"]["text"].is_string(), "{rule}");
            assert!(rule["help"]["text"].is_string(), "{rule}");
            let score: f64 = rule["properties"]["security-severity"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((0.0..=10.0).contains(&score));
        }
        for result in run["results"].as_array().unwrap() {
            assert!(result["partialFingerprints"]["ocicert/v1"].is_string());
            let location = &result["locations"][0]["physicalLocation"];
            assert!(location["region"]["startLine"].as_u64().unwrap() >= 1);
            let uri = location["artifactLocation"]["uri"].as_str().unwrap();
            assert!(!uri.starts_with('/'), "relative URIs only: {uri}");
            if extra.is_empty() {
                assert_ne!(uri, "Dockerfile");
            }
        }
    }
}

#[test]
fn sarif_points_layers_at_their_dockerfile_lines() {
    let (run, _) = format("sarif", &["--dockerfile", "Dockerfile"]);
    let sarif = run.json();
    let lines: Vec<(String, u64)> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let location = &r["locations"][0];
            (
                location["logicalLocations"][0]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                location["physicalLocation"]["region"]["startLine"]
                    .as_u64()
                    .unwrap(),
            )
        })
        .collect();
    assert!(lines.contains(&("/app/tls.key".into(), 4)), "{lines:?}");
    assert!(
        lines.contains(&("/root/.ssh/id_ed25519".into(), 3)),
        "{lines:?}"
    );
}

#[test]
fn sarif_fingerprints_survive_a_rebuild() {
    let fingerprints = |extra_layer: bool| -> Vec<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let mut layout = Layout::new(dir.path());
        let mut layers = Vec::new();
        if extra_layer {
            layers.push(layer(&[Entry::File("README", b"rebuilt".to_vec())]));
        }
        layers.push(layer(&[Entry::File(
            "app/tls.key",
            fixture("keys/rsa-pkcs8.pem"),
        )]));
        let manifest = layout.image(&layers, json!({}), ("linux", "amd64"));
        layout.tag(manifest, "v1").write();
        let run = scan_in(dir.path(), "oci:.:v1", &["--format", "sarif"]);
        run.json()["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["ruleId"].as_str().unwrap().to_string(),
                    r["partialFingerprints"]["ocicert/v1"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    };
    let before = fingerprints(false);
    assert_eq!(before.len(), 1);
    assert_eq!(before, fingerprints(true));
}

#[test]
fn every_platform_is_its_own_sarif_run_and_category() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(dir.path());
    let key = || layer(&[Entry::File("k.pem", fixture("keys/ec-sec1.pem"))]);
    let amd = layout.image(&[key()], json!({}), ("linux", "amd64"));
    let arm = layout.image(&[key()], json!({}), ("linux", "arm64"));
    let index = layout.index_of(&[amd, arm]);
    layout.tag(index, "multi").write();
    let run = scan_in(
        dir.path(),
        "oci:.:multi",
        &["--all-platforms", "--format", "sarif"],
    );
    let sarif = run.json();
    let ids: Vec<&str> = sarif["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["automationDetails"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["ocicert/oci:./linux/amd64/", "ocicert/oci:./linux/arm64/"]
    );
    let errors = validate("sarif-schema-2.1.0.json", &sarif);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn cyclonedx_validates_against_the_official_1_6_schema() {
    let (run, _) = format("cyclonedx", &[]);
    let bom = run.json();
    let errors = validate("bom-1.6.schema.json", &bom);
    assert!(errors.is_empty(), "{errors:#?}");
    // The validator does check: a wrong asset type is refused.
    let mut broken = bom.clone();
    broken["components"][0]["cryptoProperties"]["assetType"] = json!("key");
    assert!(!validate("bom-1.6.schema.json", &broken).is_empty());

    let components = bom["components"].as_array().unwrap();
    let expired = components
        .iter()
        .find(|c| c["name"] == "CN=expired.example.test")
        .expect("expired certificate");
    let properties = &expired["cryptoProperties"]["certificateProperties"];
    for field in [
        "subjectName",
        "issuerName",
        "notValidBefore",
        "notValidAfter",
        "signatureAlgorithmRef",
        "subjectPublicKeyRef",
        "certificateFormat",
    ] {
        assert!(properties[field].is_string(), "{field} in {properties}");
    }
    let references: Vec<&str> = components
        .iter()
        .filter_map(|c| c["bom-ref"].as_str())
        .collect();
    assert!(references.contains(&properties["signatureAlgorithmRef"].as_str().unwrap()));
    assert!(references.contains(&properties["subjectPublicKeyRef"].as_str().unwrap()));
    assert_eq!(
        expired["evidence"]["occurrences"][0]["location"],
        "/app/expired.pem"
    );
    let deleted = components
        .iter()
        .find(|c| c["evidence"]["occurrences"][0]["location"] == "/root/.ssh/id_ed25519")
        .expect("deleted key");
    assert_eq!(
        deleted["cryptoProperties"]["relatedCryptoMaterialProperties"]["type"],
        "private-key"
    );
    assert!(
        deleted["evidence"]["occurrences"][0]["additionalContext"]
            .as_str()
            .unwrap()
            .contains("deleted")
    );
}

#[test]
fn several_outputs_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let reference = fixture_image(dir.path());
    let run = scan_in(
        dir.path(),
        &reference,
        &[
            "--output",
            "sarif=out/ocicert.sarif",
            "--output",
            "json=report.json",
            "--output",
            "markdown=summary.md",
            "--format",
            "table",
        ],
    );
    // `out/` does not exist: the error names the path and nothing is left behind.
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("failed to write the sarif report to `out/ocicert.sarif`"),
        "{}",
        run.stderr
    );
    fs_err::create_dir(dir.path().join("out")).unwrap();
    let run = scan_in(
        dir.path(),
        &reference,
        &[
            "--output",
            "sarif=out/ocicert.sarif",
            "--output",
            "json=report.json",
            "--format",
            "table",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.contains("Total: "), "table on stdout");
    let sarif: Value =
        serde_json::from_slice(&fs_err::read(dir.path().join("out/ocicert.sarif")).unwrap())
            .unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let report: Value =
        serde_json::from_slice(&fs_err::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema_version"], 1);
    let leftovers: Vec<_> = fs_err::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary files: {leftovers:?}");

    let bad = scan_in(dir.path(), &reference, &["--output", "yaml=x.yaml"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("unknown format `yaml`"),
        "{}",
        bad.stderr
    );
}

/// The demo image has keystores, keys in the config and in archives, a corporate root: every
/// kind of asset, all in schema-valid SARIF and CycloneDX.
#[test]
fn the_demo_image_validates_in_every_structured_format() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/images/demo.tar");
    let reference = format!("oci-archive:{}", demo.display());
    for (format, schema) in [
        ("sarif", "sarif-schema-2.1.0.json"),
        ("cyclonedx", "bom-1.6.schema.json"),
        ("json", "report-v1.schema.json"),
    ] {
        let run = ocicert(&[
            "scan",
            &reference,
            "--now",
            NOW,
            "--no-policy",
            "--format",
            format,
        ]);
        assert_eq!(run.code, 1, "{format}: {}", run.stderr);
        let errors = validate(schema, &run.json());
        assert!(errors.is_empty(), "{format}: {errors:#?}");
    }
    let markdown = ocicert(&["scan", &reference, "--now", NOW, "--format", "markdown"]);
    assert!(
        markdown.stdout.contains("### Top findings"),
        "{}",
        markdown.stdout
    );
}
