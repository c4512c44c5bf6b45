//! Bad input: tampered blobs, truncated and corrupt layers, hostile paths and links, a gzip
//! bomb layer, a nested-zip bomb, a 100 MB PEM body, huge files. Each one gives a clear error
//! naming the layer (exit 2) or a bounded scan, within the wall time and peak RSS the test
//! asserts, never a panic or a hang.

use crate::common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::time::Duration;

fn one_layer(dir: &std::path::Path, blob: Blob) -> (Layout, String, String) {
    let mut layout = Layout::new(dir);
    let layer_digest = digest(&blob.bytes);
    let manifest = layout.image(&[blob], json!({}), ("linux", "amd64"));
    layout.tag(manifest, "t").write();
    (layout, format!("oci:{}:t", dir.display()), layer_digest)
}

#[test]
fn a_tampered_layer_fails_with_a_digest_error_and_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, reference, layer) = one_layer(
        dir.path(),
        gz_layer(&[Entry::File("k.pem", fixture("keys/ec-sec1.pem"))]),
    );
    let mut tampered = gzip(&tar(&[Entry::File("k.pem", fixture("keys/rsa-pkcs1.pem"))]));
    tampered.truncate(tampered.len().min(fixture("keys/ec-sec1.pem").len()));
    let original_len = fs_err::read(dir.path().join("blobs/sha256").join(&layer[7..]))
        .unwrap()
        .len();
    tampered.resize(original_len, 0);
    layout.overwrite(&layer, &tampered);
    assert_clean_error(&scan_json(&reference, &[]), &[&layer]);
}

#[test]
fn a_same_size_corrupted_blob_is_a_digest_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let content = tar(&[Entry::File("k.pem", fixture("keys/ec-sec1.pem"))]);
    let (layout, reference, layer) = one_layer(
        dir.path(),
        Blob {
            bytes: content.clone(),
            media_type: "application/vnd.oci.image.layer.v1.tar",
        },
    );
    let mut flipped = content;
    let last = flipped.len() - 1;
    flipped[last] ^= 1; // inside the tar's zero padding: still a valid tar
    layout.overwrite(&layer, &flipped);
    assert_clean_error(
        &scan_json(&reference, &[]),
        &[&layer, "does not match its digest"],
    );
}

#[test]
fn a_truncated_gzip_layer_names_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gzip(&tar(&[
        Entry::File("big.bin", vec![7u8; 200_000]),
        Entry::File("k.pem", fixture("keys/ec-sec1.pem")),
    ]));
    bytes.truncate(bytes.len() / 2);
    let (_layout, reference, layer) = one_layer(
        dir.path(),
        Blob {
            bytes,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        },
    );
    assert_clean_error(
        &scan_json(&reference, &[]),
        &[&layer, "does not decompress", "gzip"],
    );
}

#[test]
fn a_corrupt_tar_and_a_layer_ending_mid_header_name_the_layer() {
    for bytes in [
        b"this is not a tar archive at all, just text".repeat(40),
        tar(&[Entry::File("a.txt", b"x".to_vec())])[..300].to_vec(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_layout, reference, layer) = one_layer(
            dir.path(),
            Blob {
                bytes,
                media_type: "application/vnd.oci.image.layer.v1.tar",
            },
        );
        let run = bounded_scan(&reference, &[], 30, 100);
        assert_clean_error(&run, &[&layer]);
    }
}

#[test]
fn a_zero_length_layer_is_an_empty_layer() {
    let dir = tempfile::tempdir().unwrap();
    let (_layout, reference, _) = one_layer(
        dir.path(),
        Blob {
            bytes: Vec::new(),
            media_type: "application/vnd.oci.image.layer.v1.tar",
        },
    );
    let run = bounded_scan(&reference, &["--fail-on", "info"], 30, 100);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["images"][0]["findings"], json!([]));
}

/// A tar entry written byte by byte, as an attacker would: tar::Builder refuses `..`.
fn raw_entry(
    builder: &mut tar::Builder<&mut Vec<u8>>,
    kind: tar::EntryType,
    path: &str,
    link: &str,
    body: &[u8],
) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(kind);
    header.set_cksum();
    builder.append(&header, body).unwrap();
}

#[test]
fn hostile_paths_devices_and_hardlinks_stay_inside_the_image() {
    use tar::EntryType::{Block, Char, Fifo, Link, Regular};
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut raw);
        let key = fixture("keys/ec-sec1.pem");
        raw_entry(&mut builder, Regular, "../../../etc/evil.key", "", &key);
        raw_entry(&mut builder, Regular, "/abs/evil.key", "", &key);
        raw_entry(&mut builder, Char, "dev/null", "", &[]);
        raw_entry(&mut builder, Block, "dev/sda", "", &[]);
        raw_entry(&mut builder, Fifo, "run/pipe", "", &[]);
        // A device entry that carries data (a key) is still not a file.
        raw_entry(&mut builder, Char, "dev/tty-with-data", "", &key);
        // Hard links: to an entry that comes later, out of the tree, to themselves, in a cycle.
        raw_entry(&mut builder, Link, "early/link.key", "late/real.key", &[]);
        raw_entry(
            &mut builder,
            Link,
            "up/escape.key",
            "../../../late/real.key",
            &[],
        );
        raw_entry(&mut builder, Link, "loop/self", "loop/self", &[]);
        raw_entry(&mut builder, Link, "loop/a", "loop/b", &[]);
        raw_entry(&mut builder, Link, "loop/b", "loop/a", &[]);
        raw_entry(&mut builder, Link, "dangling/link", "nowhere/at/all", &[]);
        raw_entry(
            &mut builder,
            Regular,
            "late/real.key",
            "",
            &fixture("keys/rsa-pkcs8.pem"),
        );
        builder.finish().unwrap();
    }
    let (_layout, reference, _) = one_layer(
        dir.path(),
        Blob {
            bytes: raw,
            media_type: "application/vnd.oci.image.layer.v1.tar",
        },
    );
    let run = bounded_scan(&reference, &[], 30, 100);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    let places: Vec<_> = findings(&report).into_iter().map(|(_, p, _)| p).collect();
    // A hard link reports what its target holds in the same layer, whichever comes first in
    // the tar: reporting a forward link an extractor would refuse beats missing a key. Links to
    // themselves, cycles, devices and dangling links report nothing and end.
    assert_eq!(
        places,
        [
            "/abs/evil.key",
            "/early/link.key",
            "/etc/evil.key",
            "/late/real.key",
            "/up/escape.key"
        ],
        "{}",
        run.stderr
    );
    let real = format!(
        "sha256:{}",
        String::from_utf8(fixture("keys/rsa-pkcs8.spki.sha256"))
            .unwrap()
            .trim()
    );
    for finding in report["images"][0]["findings"].as_array().unwrap() {
        let path = finding["location"]["path"].as_str().unwrap();
        let expected_real = ["/early/link.key", "/late/real.key", "/up/escape.key"].contains(&path);
        assert_eq!(
            finding["fingerprint"] == real.as_str(),
            expected_real,
            "{path}: {finding}"
        );
    }
}

#[test]
fn schema1_and_garbage_manifests_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(dir.path());
    let body = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
    let digest = layout.blob(body);
    layout.tag(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": body.len()}), "old").write();
    let run = scan_json(&format!("oci:{}:old", dir.path().display()), &[]);
    assert_clean_error(&run, &["schema 1"]);
}

/// A 2 GiB file of zeros streams through the PEM scanner with bounded memory.
#[test]
fn a_two_gigabyte_file_of_zeros_is_scanned_in_bounded_memory() {
    const CHILD: &str = "OCICERT_IT_ALONE";
    if std::env::var_os(CHILD).is_none() {
        // Peak RSS is per process, and the other tests share this one: run this test alone in
        // a child test process, where the peak is the scan's own.
        let name = "hostile::a_two_gigabyte_file_of_zeros_is_scanned_in_bounded_memory";
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads", "1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("test result: ok. 1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    const SIZE: u64 = 2 * 1024 * 1024 * 1024;
    fn layer_stream() -> impl Read {
        let mut header = tar::Header::new_gnu();
        header.set_path("zeros.bin").unwrap();
        header.set_size(SIZE);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        std::io::Cursor::new(header.as_bytes().to_vec())
            .chain(std::io::repeat(0).take(SIZE))
            .chain(std::io::repeat(0).take(1024))
    }
    let mut hasher = ocicert::image::digest::VerifyingReader::new(
        layer_stream(),
        ocicert::image::digest::Algorithm::Sha256,
    );
    std::io::copy(&mut hasher, &mut std::io::sink()).unwrap();
    let (digest, size) = hasher.finish().unwrap();
    let scan = ocicert::layer::scan(
        layer_stream(),
        &digest,
        Some(size),
        &ocicert::detect::Options::default(),
    )
    .unwrap();
    assert!(scan.detections.is_empty());
    assert_eq!(scan.bytes, SIZE);
    let status = fs_err::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    assert!(
        peak_kib < 400 * 1024,
        "peak RSS {peak_kib} KiB while streaming 2 GiB"
    );
}

#[test]
fn symlink_loops_inside_the_image_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (_layout, reference, _) = one_layer(
        dir.path(),
        gz_layer(&[
            Entry::Symlink("loop/a", "b"),
            Entry::Symlink("loop/b", "a"),
            Entry::Symlink("loop/self", "self"),
            Entry::Symlink("loop/dir", "."),
            Entry::Symlink("loop/up", "../loop/up"),
            // The paths a trust-store lookup (inject) resolves are loops too.
            Entry::Dir("etc/ssl/certs"),
            Entry::Symlink("etc/ssl/certs/ca-certificates.crt", "../../ssl/cert.pem"),
            Entry::Symlink("etc/ssl/cert.pem", "certs/ca-certificates.crt"),
            Entry::Symlink("etc/pki", "/etc/pki"),
            Entry::File("app/real.key", fixture("keys/ec-sec1.pem")),
        ]),
    );
    let run = bounded_scan(&reference, &[], 30, 100);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let places: Vec<_> = findings(&run.json())
        .into_iter()
        .map(|(_, p, _)| p)
        .collect();
    assert_eq!(places, ["/app/real.key"], "{}", run.stderr);

    // inject resolves symlinks inside the image to find the trust stores: it must stop.
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/certs/root-ca.pem");
    let measured = ocicert_measured(
        &[
            "inject",
            &reference,
            "--ca",
            ca.to_str().unwrap(),
            "--dry-run",
        ],
        &[],
        Duration::from_secs(90),
    );
    measured.assert_bounded(30, 100);
    let run = &measured.run;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A bundle path that never resolves is no bundle: the new layer writes a real file there.
    assert!(
        run.stdout.contains(
            "create system bundle /etc/ssl/certs/ca-certificates.crt (the image has none)"
        ),
        "{}",
        run.stdout
    );
}

/// A gzip stream that inflates to `size` zero bytes, made by repeating one member that
/// inflates to 1 MiB (a multi-member stream is still one gzip stream).
fn zeros_gzip(size: u64) -> Vec<u8> {
    const CHUNK: u64 = 1024 * 1024;
    assert_eq!(size % CHUNK, 0);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; CHUNK as usize]).unwrap();
    let member = encoder.finish().unwrap();
    member.repeat((size / CHUNK) as usize)
}

fn tar_header(path: &str, size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_path(path).unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    header.as_bytes().to_vec()
}

/// Writes a one-layer image around a gzip layer blob without inflating it (`Layout::image`
/// would, for the diff_id, which the scan does not check); returns the `oci:` reference.
fn gz_image_by_hand(dir: &std::path::Path, blob: &[u8]) -> String {
    let mut layout = Layout::new(dir);
    let layer = layout.blob(blob);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": layout.blob(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": blob.len()}],
    }))
    .unwrap();
    let descriptor = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": layout.blob(&manifest), "size": manifest.len()});
    layout.tag(descriptor, "t").write();
    format!("oci:{}:t", dir.display())
}

#[test]
fn a_gzip_bomb_layer_streams_in_bounded_time_and_memory() {
    const OUT: u64 = 1024 * 1024 * 1024;
    const NESTED: u64 = 256 * 1024 * 1024;
    // One 1 GiB file of zeros, then a 256 MiB-inflating `.gz` inside the layer, then a key:
    // about 1.3 MB of layer for more than 1 GiB of tar.
    let nested = zeros_gzip(NESTED);
    let key = fixture("keys/ec-sec1.pem");
    let mut tail = tar_header("bomb/nested.gz", nested.len() as u64);
    tail.extend_from_slice(&nested);
    tail.resize(tail.len().next_multiple_of(512), 0);
    tail.extend_from_slice(&tar_header("app/after.key", key.len() as u64));
    tail.extend_from_slice(&key);
    tail.resize(tail.len().next_multiple_of(512) + 1024, 0);
    let mut bytes = gzip(&tar_header("bomb/zeros.bin", OUT));
    bytes.extend_from_slice(&zeros_gzip(OUT));
    bytes.extend_from_slice(&gzip(&tail));
    assert!(bytes.len() < 2 * 1024 * 1024, "{} bytes", bytes.len());

    let dir = tempfile::tempdir().unwrap();
    let reference = gz_image_by_hand(dir.path(), &bytes);
    let run = bounded_scan(&reference, &["--fail-on", "never"], 150, 256);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        report["images"][0]["layers"][0]["bytes"].as_u64(),
        Some(OUT + nested.len() as u64 + key.len() as u64),
        "every byte of the bomb went through the scanner: {}",
        report["images"][0]["layers"][0]
    );
    let found = findings(&report);
    assert!(
        found
            .iter()
            .any(|(rule, path, _)| rule == "private-key" && path == "/app/after.key"),
        "the file after the bomb is scanned: {found:?}"
    );
    let nested_limit = report["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["location"]["path"] == "/bomb/nested.gz")
        .unwrap_or_else(|| panic!("no finding for the nested bomb: {found:?}"));
    assert_eq!(nested_limit["rule"], "scan-incomplete");
    assert!(
        nested_limit["message"].as_str().unwrap().contains("limit"),
        "{nested_limit}"
    );
}

/// A zip holding `entries` (name, bytes), deflated.
fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        writer.start_file(name.as_str(), options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn a_nested_zip_bomb_ten_deep_stops_at_the_depth_limit() {
    // Ten zips deep, two of the next level in each: 512 innermost zips with a key each.
    let mut level = zip_of(&[("secret.key".into(), fixture("keys/ec-sec1.pem"))]);
    for depth in (1..10).rev() {
        level = zip_of(&[
            (format!("l{depth}a.zip"), level.clone()),
            (format!("l{depth}b.zip"), level),
        ]);
    }
    let dir = tempfile::tempdir().unwrap();
    let (_layout, reference, _) =
        one_layer(dir.path(), gz_layer(&[Entry::File("app/deep.zip", level)]));

    let run = bounded_scan(&reference, &["--fail-on", "never"], 60, 256);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let all = report["images"][0]["findings"].as_array().unwrap();
    assert!(
        all.iter().all(|f| f["rule"] == "scan-incomplete"),
        "nothing below the limit is opened: {all:?}"
    );
    assert_eq!(all.len(), 8, "2^3 archives at depth 3: {all:?}");
    for finding in all {
        assert_eq!(finding["location"]["path"], "/app/deep.zip");
        assert!(
            finding["message"]
                .as_str()
                .unwrap()
                .contains("archive nested deeper than 3 levels"),
            "{finding}"
        );
        assert_eq!(
            finding["location"]["archive_path"]
                .as_str()
                .unwrap()
                .matches(".zip")
                .count(),
            3,
            "{finding}"
        );
    }

    // Raising the limit to the full depth reaches every key: the limit is what stopped it.
    let deep = bounded_scan(
        &reference,
        &["--fail-on", "never", "--max-archive-depth", "10"],
        90,
        256,
    );
    let report = deep.json();
    let keys: Vec<_> = report["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "private-key")
        .collect();
    assert_eq!(keys.len(), 512, "{}", deep.stderr);
    assert!(keys.iter().all(|f| {
        f["location"]["archive_path"]
            .as_str()
            .unwrap()
            .ends_with("secret.key")
    }));
}

/// `count` bytes of `line` repeated, generated while read (nothing large in memory).
struct Cycle {
    line: Vec<u8>,
    at: usize,
    left: u64,
}

impl Read for Cycle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(self.line.len() - self.at)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.line[self.at..self.at + n]);
        self.at = (self.at + n) % self.line.len();
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn a_pem_block_with_a_100_mb_body_is_bounded() {
    // Real base64 lines, repeated: a 100 MB "private key" with an END line, the same without
    // one, and a 30 MB one (small enough to be buffered whole), then a real key. The layer is
    // streamed into gzip, so the test itself holds no 100 MB buffer.
    let line = {
        let pem = String::from_utf8(fixture("keys/rsa-pkcs8.pem")).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        format!("{}\n", &body[..64]).into_bytes()
    };
    let begin = b"-----BEGIN PRIVATE KEY-----\n";
    let end = b"-----END PRIVATE KEY-----\n";
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    for (path, body, with_end) in [
        ("big/huge.pem", 100_000_000u64, true),
        ("big/unterminated.pem", 100_000_000, false),
        ("big/medium.pem", 30_000_000, true),
    ] {
        let body = body - body % line.len() as u64;
        let size = begin.len() as u64 + body + if with_end { end.len() as u64 } else { 0 };
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        let content = (&begin[..])
            .chain(Cycle {
                line: line.clone(),
                at: 0,
                left: body,
            })
            .chain(if with_end { &end[..] } else { &[][..] });
        builder.append_data(&mut header, path, content).unwrap();
    }
    let key = fixture("keys/ec-sec1.pem");
    let mut header = tar::Header::new_gnu();
    header.set_size(key.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "app/real.key", &key[..])
        .unwrap();
    let blob = builder.into_inner().unwrap().finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let reference = gz_image_by_hand(dir.path(), &blob);

    let run = bounded_scan(&reference, &["--fail-on", "never"], 120, 256);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert!(
        report["images"][0]["layers"][0]["bytes"].as_u64() > Some(230_000_000),
        "{}",
        report["images"][0]["layers"][0]
    );
    let found = findings(&report);
    assert!(
        found.contains(&("private-key".into(), "/app/real.key".into(), true)),
        "{found:?}"
    );
    for big in ["/big/huge.pem", "/big/unterminated.pem", "/big/medium.pem"] {
        let about: Vec<_> = report["images"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["location"]["path"] == big)
            .collect();
        assert!(
            !about.is_empty(),
            "{big} is reported, not dropped: {found:?}"
        );
        for finding in about {
            assert_eq!(finding["rule"], "pem-unparseable", "{finding}");
            assert!(
                finding["message"]
                    .as_str()
                    .unwrap()
                    .contains("no END line within 1024 KiB"),
                "{finding}"
            );
        }
    }
}

/// Millions of tiny broken PEM blocks: one file read whole (20 MiB), one streamed (5 million
/// blocks), and many keys in one config value. Each ends within 10 s and 256 MiB, reporting at
/// most `MAX_DETECTIONS_PER_FILE` findings per file and one `scan-incomplete` with the count.
#[test]
fn a_flood_of_pem_blocks_is_capped_per_file_and_reported_with_its_count() {
    let block: &[u8] = b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
    let whole: Vec<u8> = block.repeat(20 * 1024 * 1024 / block.len());
    let streamed: Vec<u8> = block.repeat(5_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (_layout, reference, _) = one_layer(
        dir.path(),
        gz_layer(&[
            Entry::File("whole.pem", whole),
            Entry::File("streamed.pem", streamed),
        ]),
    );
    let run = bounded_scan(&reference, &["--fail-on", "never"], 10, 256);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let findings = report["images"][0]["findings"].as_array().unwrap();
    for path in ["/whole.pem", "/streamed.pem"] {
        let in_file: Vec<_> = findings
            .iter()
            .filter(|f| f["location"]["path"] == path)
            .collect();
        assert!(
            in_file.len() <= 10_001 && in_file.len() > 1,
            "{path}: {}",
            in_file.len()
        );
        let note = in_file
            .iter()
            .find(|f| f["rule"] == "scan-incomplete")
            .unwrap_or_else(|| panic!("{path}: no scan-incomplete"));
        let message = note["message"].as_str().unwrap();
        assert!(
            message.contains("PEM") && message.chars().any(|c| c.is_ascii_digit()),
            "{message}"
        );
    }
}

/// 16,384-bit DSA keys cost seconds each to fingerprint: refused above OpenSSL's own 10,000-bit
/// limit, and the DSA work of one file is bounded however many keys it holds.
#[test]
fn huge_and_numerous_dsa_keys_stay_cheap() {
    use ocicert::truststore::der_length;
    // SEQUENCE { 0, p, q, g, y, x } with a 16,384-bit p and x (OpenSSL's "DSA PRIVATE KEY").
    let big = |first: u8| {
        let mut bytes = vec![first | 0x40; 2048];
        bytes[2047] |= 1;
        bytes
    };
    let integer = |value: &[u8]| {
        let mut out = vec![0x02];
        out.extend(der_length(value.len() + 1));
        out.push(0);
        out.extend_from_slice(value);
        out
    };
    let mut body = vec![0x02, 0x01, 0x00];
    for part in [big(1), vec![0x55; 32], big(2), big(3), big(4)] {
        body.extend(integer(&part));
    }
    let mut der = vec![0x30];
    der.extend(der_length(body.len()));
    der.extend(body);
    let pem = format!(
        "-----BEGIN DSA PRIVATE KEY-----\n{}\n-----END DSA PRIVATE KEY-----\n",
        base64_lines(&der)
    );
    let dir = tempfile::tempdir().unwrap();
    let (_layout, reference, _) = one_layer(
        dir.path(),
        gz_layer(&[Entry::File("keys.pem", pem.repeat(40).into_bytes())]),
    );
    let run = bounded_scan(&reference, &["--fail-on", "never"], 10, 256);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

fn base64_lines(der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    text.as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A local layout whose files are not what they claim: `index.json` linked to `/dev/zero`, a
/// blob that is a FIFO (which would block a read for ever), a blob linked to a file outside
/// the layout. Each is a clear error naming the file, within seconds.
#[test]
fn layout_files_that_are_links_out_or_not_files_are_refused() {
    use std::os::unix::fs::symlink;
    let fixture_layer = || gz_layer(&[Entry::File("k.pem", fixture("keys/ec-sec1.pem"))]);

    let dir = tempfile::tempdir().unwrap();
    let (_layout, reference, _) = one_layer(&dir.path().join("zero"), fixture_layer());
    let index = dir.path().join("zero/index.json");
    fs_err::remove_file(&index).unwrap();
    symlink("/dev/zero", &index).unwrap();
    let measured = ocicert_measured(
        &["scan", &reference, "--format", "json"],
        &[],
        Duration::from_secs(30),
    );
    measured.assert_bounded(10, 256);
    assert_clean_error(&measured.run, &["index.json", "outside the layout"]);

    let (_layout, reference, layer) = one_layer(&dir.path().join("fifo"), fixture_layer());
    let blob = dir.path().join("fifo/blobs/sha256").join(&layer[7..]);
    fs_err::remove_file(&blob).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&blob)
        .status()
        .unwrap();
    assert!(made.success());
    let measured = ocicert_measured(
        &["scan", &reference, "--format", "json", "--no-cache"],
        &[],
        Duration::from_secs(30),
    );
    measured.assert_bounded(10, 256);
    assert_clean_error(&measured.run, &[&layer[7..], "not a regular file"]);

    let (_layout, reference, layer) = one_layer(&dir.path().join("out"), fixture_layer());
    let blob = dir.path().join("out/blobs/sha256").join(&layer[7..]);
    let outside = dir.path().join("secret.tar.gz");
    fs_err::rename(&blob, &outside).unwrap();
    symlink(&outside, &blob).unwrap();
    let run = scan_json(&reference, &["--no-cache"]);
    assert_clean_error(&run, &[&layer[7..], "outside the layout"]);
}

/// 200,000 hard links to one certificate: a linear lookup, at most 100 links re-reported, and
/// the rest one scan-incomplete with their count, within 10 s and 256 MiB.
#[test]
fn a_crowd_of_hard_links_is_linear_and_capped() {
    let mut entries = vec![Entry::File("certs/leaf.pem", fixture("certs/leaf.pem"))];
    for index in 0..200_000 {
        let name: &'static str = Box::leak(format!("links/{index}.pem").into_boxed_str());
        entries.push(Entry::Hardlink(name, "certs/leaf.pem"));
    }
    let dir = tempfile::tempdir().unwrap();
    let (_layout, reference, _) = one_layer(dir.path(), gz_layer(&entries));
    let run = bounded_scan(&reference, &["--fail-on", "never", "--no-cache"], 10, 256);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let certificate = &report["images"][0]["inventory"]["certificates"][0];
    assert_eq!(
        certificate["locations"].as_array().unwrap().len(),
        101,
        "the file and 100 links"
    );
    let findings = report["images"][0]["findings"].as_array().unwrap();
    let note = findings
        .iter()
        .find(|f| f["rule"] == "scan-incomplete")
        .expect("a note for the links left out");
    assert!(
        note["message"]
            .as_str()
            .unwrap()
            .contains("199900 more hard links"),
        "{note}"
    );
}

/// A path 100,000 directories deep and a name of 300 bytes: over Linux's PATH_MAX and
/// NAME_MAX, each reported and skipped (the overlay's ancestor walk was quadratic in depth).
#[test]
fn paths_longer_than_linux_allows_are_reported_not_walked() {
    let deep: &'static str = Box::leak(format!("{}key.pem", "d/".repeat(100_000)).into_boxed_str());
    let long: &'static str = Box::leak(format!("app/{}.pem", "n".repeat(300)).into_boxed_str());
    let key = fixture("keys/ec-sec1.pem");
    let dir = tempfile::tempdir().unwrap();
    let (_layout, reference, _) = one_layer(
        dir.path(),
        gz_layer(&[
            Entry::File(deep, key.clone()),
            Entry::File(long, key.clone()),
            Entry::File("ok.pem", key),
        ]),
    );
    let run = bounded_scan(&reference, &["--fail-on", "never", "--no-cache"], 10, 256);
    let report = run.json();
    let messages: Vec<&str> = report["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("PATH_MAX")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("NAME_MAX")),
        "{messages:?}"
    );
    let paths = findings(&report);
    assert!(
        paths
            .iter()
            .any(|(rule, path, _)| rule == "private-key" && path == "/ok.pem")
    );
}

/// A GNU sparse entry declaring a terabyte of holes (GNU tar writes it from a sparse file) is
/// reported, not expanded into a terabyte of zeros.
#[test]
fn a_sparse_terabyte_is_reported_not_expanded() {
    require("tar", "tar");
    let dir = tempfile::tempdir().unwrap();
    let holes = dir.path().join("holes");
    fs_err::create_dir_all(&holes).unwrap();
    fs_err::File::create(holes.join("big.img"))
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let layer = dir.path().join("sparse.tar");
    let packed = std::process::Command::new("tar")
        .arg("--sparse")
        .arg("-C")
        .arg(&holes)
        .arg("-cf")
        .arg(&layer)
        .arg("big.img")
        .status()
        .unwrap();
    assert!(packed.success());
    let (_layout, reference, _) = one_layer(
        &dir.path().join("layout"),
        Blob {
            bytes: fs_err::read(&layer).unwrap(),
            media_type: "application/vnd.oci.image.layer.v1.tar",
        },
    );
    let run = bounded_scan(&reference, &["--fail-on", "never", "--no-cache"], 10, 256);
    let report = run.json();
    let finding = &report["images"][0]["findings"][0];
    assert_eq!(finding["rule"], "scan-incomplete", "{finding}");
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("sparse file of 1099511627776 bytes"),
        "{finding}"
    );
}

/// An index fanning out to more manifests than any real image has is refused by count, and the
/// same manifest listed 20,000 times is read once.
#[test]
fn index_fan_out_is_bounded_and_repeats_are_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("wide"));
    let layer = gz_layer(&[Entry::File("k.pem", fixture("keys/ec-sec1.pem"))]);
    let layer = Blob {
        bytes: layer.bytes,
        media_type: layer.media_type,
    };
    let manifests: Vec<_> = (0..1_001)
        .map(|n| {
            let mut descriptor = layout.image(
                std::slice::from_ref(&layer),
                json!({"config": {"Labels": {"n": n.to_string()}}}),
                ("linux", "amd64"),
            );
            descriptor["platform"] = json!({"os": "linux", "architecture": format!("arch{n}")});
            descriptor
        })
        .collect();
    let index = layout.index_of(&manifests);
    layout.tag(index, "wide").write();
    let reference = format!("oci:{}:wide", dir.path().join("wide").display());
    let measured = ocicert_measured(
        &["scan", &reference, "--all-platforms", "--format", "json"],
        &[],
        Duration::from_secs(60),
    );
    measured.assert_bounded(10, 256);
    assert_clean_error(&measured.run, &["more than 1000 distinct manifests"]);

    let mut layout = Layout::new(&dir.path().join("repeats"));
    let one = layout.image(std::slice::from_ref(&layer), json!({}), ("linux", "amd64"));
    let index = layout.index_of(&vec![one; 20_000]);
    layout.tag(index, "r").write();
    let reference = format!("oci:{}:r", dir.path().join("repeats").display());
    let run = bounded_scan(
        &reference,
        &["--all-platforms", "--fail-on", "never"],
        10,
        256,
    );
    let report = run.json();
    assert_eq!(report["images"].as_array().unwrap().len(), 1, "read once");
}
