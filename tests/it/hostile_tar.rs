//! Tar members the tar crate would read whole (issue 32): a GNU long name of 256 MiB (a few
//! hundred KB gzipped) is reported and streamed past, with the entry it names, within 10 s and
//! 256 MiB; the entries after them are scanned.

use crate::common::*;
use serde_json::json;
use std::io::Write;
use std::time::Duration;

/// A gzipped layer: a GNU long-name member of `name_len` bytes naming `etc/key.pem`, then
/// `etc/next.pem`.
fn long_name_layer(name_len: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    header.set_mode(0o644);
    header.set_size(name_len as u64);
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_cksum();
    gz.write_all(header.as_bytes()).unwrap();
    let chunk = vec![b'n'; 1 << 20];
    let mut left = name_len;
    while left > 0 {
        let n = left.min(chunk.len());
        gz.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    gz.write_all(&vec![0; (512 - name_len % 512) % 512])
        .unwrap();
    let key = fixture("keys/ec-sec1.pem");
    let mut file = tar::Header::new_gnu();
    file.set_path("etc/key.pem").unwrap();
    file.set_mode(0o644);
    file.set_size(key.len() as u64);
    file.set_cksum();
    gz.write_all(file.as_bytes()).unwrap();
    gz.write_all(&key).unwrap();
    let padding = vec![0; (512 - key.len() % 512) % 512];
    gz.write_all(&padding).unwrap();
    file.set_path("etc/next.pem").unwrap();
    file.set_cksum();
    gz.write_all(file.as_bytes()).unwrap();
    gz.write_all(&key).unwrap();
    gz.write_all(&padding).unwrap();
    gz.write_all(&[0; 1024]).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_gnu_long_name_of_256_mib_is_streamed_past_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(dir.path());
    let blob = Blob {
        bytes: long_name_layer(256 << 20),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
    };
    let manifest = layout.image(&[blob], json!({}), ("linux", "amd64"));
    layout.tag(manifest, "t").write();
    let reference = format!("oci:{}:t", dir.path().display());
    let run = bounded_scan(&reference, &["--fail-on", "never", "--no-cache"], 10, 256);
    let report = run.json();
    let findings = report["images"][0]["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["rule"] == "scan-incomplete"
            && f["location"]["path"] == "/@LongLink"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("a GNU long name of 268435456 bytes")),
        "{findings:?}"
    );
    // The entry it names is not scanned under a name that is not its own; the next one is.
    let keys: Vec<&str> = findings
        .iter()
        .filter(|f| f["rule"] == "private-key")
        .map(|f| f["location"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["/etc/next.pem"], "{findings:?}");
}

/// A local tarball whose member has a 512 MiB long name (a hole on disk, so the test is cheap)
/// is refused by name within the bounds, its long name never read into memory.
#[test]
fn a_tarball_member_with_a_512_mib_long_name_is_refused_without_reading_it() {
    use std::io::{Seek, SeekFrom};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    let mut file = fs_err::File::create(&path).unwrap();
    let size: u64 = 512 << 20;
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    header.set_mode(0o644);
    header.set_size(size);
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_cksum();
    file.write_all(header.as_bytes()).unwrap();
    file.seek(SeekFrom::Current(i64::try_from(size).unwrap()))
        .unwrap();
    let mut member = tar::Header::new_gnu();
    member.set_path("index.json").unwrap();
    member.set_mode(0o644);
    member.set_size(2);
    member.set_cksum();
    file.write_all(member.as_bytes()).unwrap();
    file.write_all(b"{}").unwrap();
    file.write_all(&[0; 510 + 1024]).unwrap();
    drop(file);
    let reference = format!("oci-archive:{}", path.display());
    let measured = ocicert_measured(&["scan", &reference], &[], Duration::from_secs(30));
    measured.assert_bounded(10, 256);
    assert_eq!(measured.run.code, 2, "{}", measured.run.stderr);
    assert!(
        measured.run.stderr.contains("image.tar")
            && measured
                .run
                .stderr
                .contains("a GNU long name of 536870912 bytes"),
        "{}",
        measured.run.stderr
    );
}
