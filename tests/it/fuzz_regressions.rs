//! The fuzz targets' bodies (`ocicert::fuzzing`, the same code `scripts/fuzz.sh` runs under
//! libFuzzer) on every CI run: each input that once crashed a target, kept in
//! `fixtures/fuzz-regressions/<target>/`, and every fixture with cut and flipped variants of it,
//! through every target. A panic anywhere names the target and the input.

use ocicert::fuzzing::TARGETS;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Runs `target` on `data`, returning the panic message if it panicked.
fn run(target: ocicert::fuzzing::Target, data: &[u8]) -> Option<String> {
    std::panic::catch_unwind(|| target(data))
        .err()
        .map(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "a panic".into())
        })
}

/// The input and a few variants of it: cut at several points, and one byte flipped.
fn variants(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut list = vec![("whole".to_string(), data.to_vec())];
    for cut in [
        1,
        data.len() / 3,
        data.len() / 2,
        data.len().saturating_sub(1),
    ] {
        if cut < data.len() {
            list.push((format!("first {cut} bytes"), data[..cut].to_vec()));
        }
    }
    if !data.is_empty() {
        let mut flipped = data.to_vec();
        flipped[data.len() / 2] ^= 0x20;
        list.push((format!("byte {} flipped", data.len() / 2), flipped));
    }
    list
}

/// `(target, path)` of every input in `fixtures/fuzz-regressions/<target>/`.
fn regressions() -> Vec<(String, ocicert::fuzzing::Target, PathBuf)> {
    let mut list = Vec::new();
    for entry in fs_err::read_dir(fixtures().join("fuzz-regressions"))
        .into_iter()
        .flatten()
    {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let target = TARGETS
            .iter()
            .find(|(known, _)| *known == name)
            .unwrap_or_else(|| panic!("fixtures/fuzz-regressions/{name}: no fuzz target `{name}`"))
            .1;
        for input in fs_err::read_dir(entry.path()).unwrap() {
            list.push((name.clone(), target, input.unwrap().path()));
        }
    }
    list
}

#[test]
fn regressions_and_every_fixture_cut_or_flipped_go_through_every_target_without_a_panic() {
    let mut failures = Vec::new();
    let mut inputs = 0;
    for entry in walkdir::WalkDir::new(fixtures()) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() || entry.metadata().unwrap().len() > 4 << 20 {
            continue;
        }
        let data = fs_err::read(entry.path()).unwrap();
        for (variant, bytes) in variants(&data) {
            inputs += 1;
            for (name, target) in TARGETS {
                if let Some(panic) = run(*target, &bytes) {
                    failures.push(format!(
                        "{name} on {} ({variant}): {panic}",
                        entry.path().display()
                    ));
                }
            }
        }
    }
    for (name, target, path) in regressions() {
        if let Some(panic) = run(target, &fs_err::read(&path).unwrap()) {
            failures.push(format!("{name} on regression {}: {panic}", path.display()));
        }
    }
    // The walk really saw the seed corpus (keys, certificates, stores, archives, webhooks).
    assert!(inputs > 300, "only {inputs} inputs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each bomb class of issue 32 has an input in `fixtures/fuzz-regressions/` (written by
/// `fuzz/bombs.py`), and its target gets through it within 10 s: the budgets hold on the very
/// code libFuzzer runs, not only through the CLI.
#[test]
fn every_bomb_class_has_a_regression_and_each_ends_within_ten_seconds() {
    let classes = [
        "pkcs12/scrypt-secret-bags.p12",
        "pkcs12/pbkdf2-key-bags.p12",
        "pkcs12/wrong-mac-million.p12",
        "der/dsa-16384.der",
        "pem/dsa-16384-forty.pem",
        "pem/broken-block-flood.pem",
        "layer/hard-link-crowd.tar",
        "layer/sparse-terabyte.tar",
        "layer/path-over-path-max.tar",
        "layer/long-name-64mib.tar.gz",
        "archive/crc-failures.zip",
        "manifest/index-repeats.json",
    ];
    let all = regressions();
    for class in classes {
        let (target, path) = all
            .iter()
            .find(|(_, _, path)| path.ends_with(class))
            .map(|(_, target, path)| (*target, path))
            .unwrap_or_else(|| panic!("no regression input {class}: run fuzz/bombs.py"));
        let data = fs_err::read(path).unwrap();
        let start = std::time::Instant::now();
        assert!(run(target, &data).is_none(), "{class} panicked");
        let took = start.elapsed();
        assert!(took.as_secs() < 10, "{class} took {took:?}");
    }
}
