//! Bad input: tampered blobs, truncated and corrupt layers, hostile paths, huge files. Each one
//! gives a clear error naming the layer (exit 2) or a bounded scan, never a panic or a hang.

use crate::common::*;
use serde_json::json;
use std::io::Read;

fn one_layer(dir: &std::path::Path, blob: Blob) -> (Layout, String, String) {
    let mut layout = Layout::new(dir);
    let layer_digest = digest(&blob.bytes);
    let manifest = layout.image(&[blob], json!({}), ("linux", "amd64"));
    layout.tag(manifest, "t").write();
    (layout, format!("oci:{}:t", dir.display()), layer_digest)
}

fn assert_clean_error(run: &Run, needles: &[&str]) {
    assert_eq!(
        run.code, 2,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.is_empty(), "no partial report on stdout");
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr lacks `{needle}`: {}",
            run.stderr
        );
    }
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
        let run = scan_json(&reference, &[]);
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
    let run = scan_json(&reference, &["--fail-on", "info"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn hostile_paths_are_normalised_inside_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Vec::new();
    {
        // tar::Builder refuses `..`, so write the header bytes directly, as an attacker would.
        let mut builder = tar::Builder::new(&mut raw);
        for (path, body) in [
            ("../../../etc/evil.key", fixture("keys/ec-sec1.pem")),
            ("/abs/evil.key", fixture("keys/ec-sec1.pem")),
        ] {
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append(&header, &body[..]).unwrap();
        }
        let mut device = tar::Header::new_gnu();
        device.set_entry_type(tar::EntryType::Char);
        device.set_size(0);
        builder
            .append_data(&mut device, "dev/null", &[][..])
            .unwrap();
        builder.finish().unwrap();
    }
    let (_layout, reference, _) = one_layer(
        dir.path(),
        Blob {
            bytes: raw,
            media_type: "application/vnd.oci.image.layer.v1.tar",
        },
    );
    let run = scan_json(&reference, &[]);
    let places: Vec<_> = findings(&run.json())
        .into_iter()
        .map(|(_, p, _)| p)
        .collect();
    assert_eq!(places, ["/abs/evil.key", "/etc/evil.key"], "{}", run.stderr);
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
