//! End-to-end scans of images built by the tests: history, whiteouts, config, pairing, exit codes.

use crate::common::*;
use serde_json::json;

fn app_image(dir: &std::path::Path) -> String {
    let mut layout = Layout::new(dir);
    let base = gz_layer(&[
        Entry::Dir("etc/"),
        Entry::Dir("etc/ssl/"),
        Entry::Dir("etc/ssl/certs/"),
        Entry::File(
            "etc/ssl/certs/ca-certificates.crt",
            fixture("certs/root-ca.pem"),
        ),
        Entry::Dir("root/"),
        Entry::File("root/id_ed25519", fixture("keys/openssh-ed25519")),
        Entry::File("old/expired.pem", fixture("certs/expired.pem")),
    ]);
    let app = gz_layer(&[
        Entry::File("app/server.pem", fixture("certs/leaf-chain.pem")),
        Entry::File("app/server.key", fixture("keys/leaf.key")),
        Entry::Hardlink("app/copy.key", "app/server.key"),
        Entry::Symlink("app/link.key", "/app/server.key"),
        Entry::File("app/expired.pem", fixture("certs/expired.pem")),
    ]);
    let cleanup = gz_layer(&[
        Entry::File("root/.wh.id_ed25519", Vec::new()),
        Entry::File("old/.wh..wh..opq", Vec::new()),
    ]);
    let pem = String::from_utf8(fixture("keys/ec-sec1.pem"))
        .unwrap_or_default()
        .replace('\n', "\\n");
    let config = json!({
        "config": {"Env": ["PATH=/usr/bin", format!("TLS_KEY={pem}")]},
        "history": [{"created_by": "ADD base"}, {"created_by": "COPY app/ /app/"}, {"created_by": "RUN rm /root/id_ed25519"}],
    });
    let manifest = layout.image(&[base, app, cleanup], config, ("linux", "amd64"));
    layout.tag(manifest, "v1").write();
    format!("oci:{}:v1", dir.display())
}

#[test]
fn finds_keys_in_history_pairs_identities_and_scans_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let reference = app_image(dir.path());
    let run = scan_json(&reference, &[]);
    assert_eq!(
        run.code, 1,
        "high findings fail the default --fail-on high: {}",
        run.stderr
    );
    let report = run.json();
    let found = findings(&report);
    let has = |rule: &str, place: &str, visible: bool| {
        found
            .iter()
            .any(|(r, p, v)| r == rule && p == place && *v == visible)
    };
    // The SSH key was deleted by a whiteout in layer 2, but anyone can still read it from layer 0.
    assert!(has("private-key", "/root/id_ed25519", false), "{found:#?}");
    // The server key ships with its certificate, once as a file and once as a hardlink.
    assert!(
        has("identity-key-pair", "/app/server.key", true),
        "{found:#?}"
    );
    assert!(
        has("identity-key-pair", "/app/copy.key", true),
        "{found:#?}"
    );
    assert!(
        !found.iter().any(|(_, p, _)| p == "/app/link.key"),
        "symlinks are not followed"
    );
    // The key passed through an env var with \n escapes.
    assert!(has("private-key", "config.Env[1]", true), "{found:#?}");
    // Expired certificate in the final image is flagged; the one hidden by an opaque dir is not.
    assert!(has("cert-expired", "/app/expired.pem", true), "{found:#?}");
    assert!(
        !found
            .iter()
            .any(|(r, p, _)| r == "cert-expired" && p == "/old/expired.pem")
    );
    // The corporate root in the distro bundle is a trust anchor outside Mozilla's program.
    assert!(
        has(
            "unknown-trust-anchor",
            "/etc/ssl/certs/ca-certificates.crt",
            true
        ),
        "{found:#?}"
    );

    let image = &report["images"][0];
    assert_eq!(image["platform"], "linux/amd64");
    assert_eq!(image["layers"][2]["created_by"], "RUN rm /root/id_ed25519");
    let certs = image["inventory"]["certificates"].as_array().unwrap();
    let leaf = certs
        .iter()
        .find(|c| c["subject"] == "CN=app.example.test")
        .unwrap();
    assert_eq!(leaf["private_key_in_image"], true);
    assert_eq!(leaf["status"], "valid");
    let root = certs
        .iter()
        .find(|c| {
            c["subject"]
                .as_str()
                .unwrap_or_default()
                .contains("Root CA")
        })
        .unwrap();
    assert_eq!(root["trust_anchor"], true);
    // Key fingerprints come from the key: the SPKI hash openssl computes for it.
    let spki = String::from_utf8(fixture("keys/leaf.key.spki.sha256")).unwrap();
    let key = image["inventory"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["spki_sha256"] == spki.trim())
        .unwrap();
    assert_eq!(key["locations"].as_array().unwrap().len(), 2);
    assert!(
        !run.stdout.contains("PRIVATE KEY-----") && !run.stdout.contains("MIG"),
        "key material must never be printed"
    );
}

#[test]
fn fail_on_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let reference = app_image(dir.path());
    assert_eq!(scan_json(&reference, &["--fail-on", "never"]).code, 0);
    assert_eq!(scan_json(&reference, &["--fail-on", "critical"]).code, 1);
    let clean_dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(clean_dir.path());
    let manifest = layout.image(
        &[gz_layer(&[Entry::File("hello.txt", b"hi".to_vec())])],
        json!({}),
        ("linux", "amd64"),
    );
    layout.tag(manifest, "latest").write();
    let run = scan_json(
        &format!("oci:{}", clean_dir.path().display()),
        &["--fail-on", "info"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["images"][0]["findings"], json!([]));
}

#[test]
fn table_output_groups_by_severity_and_marks_history() {
    let dir = tempfile::tempdir().unwrap();
    let reference = app_image(dir.path());
    let run = ocicert(&["scan", &reference, "--now", NOW]);
    assert_eq!(run.code, 1);
    let critical = run.stdout.find("CRITICAL (").expect("critical group");
    let high = run.stdout.find("HIGH (").expect("high group");
    assert!(critical < high);
    assert!(
        run.stdout.contains("/root/id_ed25519  (layer 0"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("[history only]"));
    assert!(
        run.stderr.is_empty(),
        "logs stay off stdout and quiet by default: {}",
        run.stderr
    );
}

#[test]
fn json_report_validates_against_the_shipped_schema() {
    let dir = tempfile::tempdir().unwrap();
    let reference = app_image(dir.path());
    let report = scan_json(&reference, &[]).json();
    let schema_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/report-v1.schema.json");
    let schema: serde_json::Value =
        serde_json::from_slice(&fs_err::read(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(report["schema_version"], 1);
    // The schema is strict enough to reject a report missing its findings.
    let mut broken = report.clone();
    broken["images"][0]
        .as_object_mut()
        .unwrap()
        .remove("findings");
    assert!(!validator.is_valid(&broken));
}

#[test]
fn dir_source_scans_a_plain_tree() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(dir.path().join("conf")).unwrap();
    fs_err::write(
        dir.path().join("conf/tls.key"),
        fixture("keys/rsa-pkcs8.pem"),
    )
    .unwrap();
    fs_err::write(
        dir.path().join("conf/bad.der"),
        b"\x30\x82\x02\x00garbage asn.1",
    )
    .unwrap();
    let run = scan_json(&format!("dir:{}", dir.path().display()), &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let found = findings(&run.json());
    assert!(
        found.contains(&("private-key".into(), "/conf/tls.key".into(), true)),
        "{found:?}"
    );
    assert!(
        found.contains(&("der-unparseable".into(), "/conf/bad.der".into(), true)),
        "{found:?}"
    );
}

#[test]
fn completions_and_man_page_cover_every_subcommand() {
    let bash = ocicert(&["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    let man = ocicert(&["man"]);
    assert_eq!(man.code, 0, "{}", man.stderr);
    for subcommand in [
        "scan",
        "copy",
        "inject",
        "sign",
        "generate-key-pair",
        "rules",
    ] {
        assert!(
            bash.stdout.contains(subcommand),
            "completion lacks {subcommand}"
        );
        // roff escapes hyphens.
        let roff = format!("ocicert\\-{}(1)", subcommand.replace('-', "\\-"));
        assert!(man.stdout.contains(&roff), "man page lacks {roff}");
    }
    assert!(man.stdout.starts_with(".ie") && man.stdout.contains(".TH ocicert 1"));
}
