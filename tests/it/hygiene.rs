//! Secrets hygiene: a scan of the key-heavy fixtures, in every output format (and the debug
//! log, and the layer cache), shows fingerprints, never key material. The key bodies are read
//! from the fixture files here, so a new fixture key is checked without touching this test.

use crate::common::*;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// How long a run of base64 (or hex) characters must be to count as leaked key material.
const WINDOW: usize = 40;

const FORMATS: [&str; 5] = ["table", "json", "sarif", "cyclonedx", "markdown"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn is_base64(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='
}

/// The private material of every file in `fixtures/keys`, as the strings an output could leak:
/// the base64 body of each private PEM, OpenSSH, PGP or PuTTY block, and the base64 and hex of
/// each binary (DER) key file.
fn key_bodies() -> BTreeMap<String, String> {
    use base64::Engine as _;
    let mut bodies = BTreeMap::new();
    for entry in walkdir::WalkDir::new(fixtures().join("keys")) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path().to_path_buf();
        let name = path
            .strip_prefix(fixtures().join("keys"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".spki.sha256") {
            continue; // fingerprints: what the outputs should show
        }
        let bytes = fs_err::read(&path).unwrap();
        match String::from_utf8(bytes.clone()) {
            Ok(text) if text.contains("-----BEGIN") || text.contains("Private-Lines:") => {
                let mut body = String::new();
                let mut inside = false;
                let mut putty_lines = 0usize;
                for line in text.lines() {
                    let line = line.trim();
                    if line.starts_with("-----BEGIN") {
                        inside = line.contains("PRIVATE KEY");
                    } else if line.starts_with("-----END") {
                        inside = false;
                    } else if let Some(count) = line.strip_prefix("Private-Lines:") {
                        putty_lines = count.trim().parse().unwrap();
                    } else if putty_lines > 0 {
                        body.push_str(line);
                        putty_lines -= 1;
                    } else if inside && !line.contains(':') && line.chars().all(is_base64) {
                        body.push_str(line);
                    }
                }
                assert!(body.len() >= WINDOW, "no private body found in {name}");
                bodies.insert(name, body);
            }
            _ => {
                bodies.insert(
                    format!("{name} (base64)"),
                    base64::engine::general_purpose::STANDARD.encode(&bytes),
                );
                bodies.insert(format!("{name} (hex)"), hex::encode(&bytes));
            }
        }
    }
    assert!(bodies.len() >= 20, "{:?}", bodies.keys());
    bodies
}

/// Every `WINDOW`-character slice of every key body, with the file it came from.
fn windows(bodies: &BTreeMap<String, String>) -> BTreeMap<String, &str> {
    let mut all = BTreeMap::new();
    for (name, body) in bodies {
        for start in 0..=body.len() - WINDOW {
            all.insert(body[start..start + WINDOW].to_string(), name.as_str());
        }
    }
    all
}

/// Asserts that `text` (named `what`) has no PEM private-key armour and no run of base64 or hex
/// characters sharing `WINDOW` characters with a key body.
fn assert_clean(what: &str, text: &str, windows: &BTreeMap<String, &str>) {
    for marker in [
        "PRIVATE KEY-----",
        "PRIVATE KEY BLOCK-----",
        "Private-Lines:",
        "PuTTY-User-Key-File",
    ] {
        assert!(!text.contains(marker), "{what} contains `{marker}`");
    }
    for run in text
        .split(|c: char| !is_base64(c))
        .filter(|run| run.len() >= WINDOW)
    {
        for start in 0..=run.len() - WINDOW {
            if let Some(file) = windows.get(&run[start..start + WINDOW]) {
                panic!("{what} contains key material of fixtures/keys/{file}: `{run}`");
            }
        }
    }
}

/// The SPKI fingerprints the fixtures record for their keys.
fn fingerprint(key: &str) -> String {
    let path = fixtures().join("keys").join(format!("{key}.spki.sha256"));
    format!("sha256:{}", fs_err::read_to_string(path).unwrap().trim())
}

/// Keys every report names by fingerprint (unencrypted, so their public half is known).
const FOUND: [&str; 4] = ["ec-sec1", "rsa-pkcs8", "leaf.key", "ed25519"];

#[test]
fn no_output_format_of_a_fixture_scan_contains_key_material() {
    let bodies = key_bodies();
    let windows = windows(&bodies);
    // The detector of leaks itself works: a key file's own text is caught.
    let leaked = String::from_utf8(fixture("keys/rsa-pkcs8.pem")).unwrap();
    let body_only: String = leaked.lines().filter(|l| !l.starts_with("-----")).collect();
    for sample in [
        leaked.as_str(),
        &body_only,
        &hex::encode(fixture("keys/ec-sec1.der")),
    ] {
        let caught = std::panic::catch_unwind(|| assert_clean("sample", sample, &windows));
        assert!(caught.is_err(), "a leak went unnoticed: {sample}");
    }

    let dir = tempfile::tempdir().unwrap();
    let source = format!("dir:{}", fixtures().display());
    let common = [
        "--now",
        NOW,
        "--fail-on",
        "never",
        "--keystore-password",
        "changeit,test",
    ];
    // Every format on stdout, with the debug log on stderr.
    for format in FORMATS {
        let mut args = vec!["-vv", "scan", source.as_str(), "--format", format];
        args.extend_from_slice(&common);
        let run = ocicert(&args);
        assert_eq!(run.code, 0, "{format}: {}", run.stderr);
        assert!(run.stdout.len() > 500, "{format}: {}", run.stdout);
        assert_clean(
            &format!("stdout of --format {format}"),
            &run.stdout,
            &windows,
        );
        assert_clean(
            &format!("stderr of --format {format}"),
            &run.stderr,
            &windows,
        );
        if format != "markdown" {
            for key in FOUND {
                assert!(
                    run.stdout.contains(&fingerprint(key)),
                    "--format {format} names {key} by its fingerprint"
                );
            }
        }
    }
    // Every format at once through --output.
    let mut args = vec!["scan".to_string(), source.clone()];
    args.extend(common.iter().map(|a| a.to_string()));
    for format in FORMATS {
        args.push("--output".into());
        args.push(format!("{format}={}", dir.path().join(format).display()));
    }
    let run = ocicert(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(run.code, 0, "{}", run.stderr);
    for format in FORMATS {
        let text = fs_err::read_to_string(dir.path().join(format)).unwrap();
        assert!(text.len() > 500, "--output {format}: {text}");
        assert_clean(&format!("--output {format}"), &text, &windows);
    }
}

#[test]
fn an_image_of_the_fixture_keys_leaks_nothing_into_reports_or_the_cache() {
    let bodies = key_bodies();
    let windows = windows(&bodies);
    let dir = tempfile::tempdir().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    for entry in walkdir::WalkDir::new(fixtures().join("keys")) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let bytes = fs_err::read(path).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        let name = format!(
            "keys/{}",
            path.strip_prefix(fixtures().join("keys"))
                .unwrap()
                .display()
        );
        builder.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    let layer = Blob {
        bytes: gzip(&builder.into_inner().unwrap()),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
    };
    let layout_dir = dir.path().join("layout");
    let mut layout = Layout::new(&layout_dir);
    let manifest = layout.image(&[layer], json!({}), ("linux", "amd64"));
    layout.tag(manifest, "keys").write();
    let reference = format!("oci:{}:keys", layout_dir.display());
    let cache = dir.path().join("cache");

    let mut reports = Vec::new();
    // Cold, then from the cache: both reports are clean and the same.
    for _ in 0..2 {
        let mut args = vec![
            "scan",
            reference.as_str(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--fail-on",
            "never",
        ];
        args.extend_from_slice(&["--now", NOW, "--keystore-password", "changeit,test"]);
        for format in FORMATS {
            let mut with_format = args.clone();
            with_format.extend_from_slice(&["--format", format]);
            let run = ocicert(&with_format);
            assert_eq!(run.code, 0, "{}", run.stderr);
            assert_clean(&format!("image scan, {format}"), &run.stdout, &windows);
            if format == "json" {
                for key in FOUND {
                    assert!(run.stdout.contains(&fingerprint(key)), "{key}");
                }
                reports.push(run.stdout);
            }
        }
    }
    assert_eq!(reports[0], reports[1], "the cached report is the same");

    let mut cached = HashSet::new();
    for entry in walkdir::WalkDir::new(&cache) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let bytes = fs_err::read(entry.path()).unwrap();
            assert_clean(
                &format!("cache file {}", entry.path().display()),
                &String::from_utf8_lossy(&bytes),
                &windows,
            );
            cached.insert(entry.path().to_path_buf());
        }
    }
    assert!(!cached.is_empty(), "the scan wrote its layer cache");
}
