//! The guard is invisible on real archives (GNU long names, PAX paths and sizes, GNU sparse
//! files) and turns oversized long names and PAX headers into files the tar crate streams.

use super::*;

/// (path, entry type, size, data) of every entry, as the tar crate reads them.
fn entries(reader: impl Read) -> Vec<(String, u8, u64, Vec<u8>)> {
    let mut archive = tar::Archive::new(reader);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let kind = entry.header().entry_type().as_byte();
            let size = entry.size();
            // The first 4 KiB: a sparse entry expands to its whole size, holes included.
            let mut data = Vec::new();
            (&mut entry).take(4096).read_to_end(&mut data).unwrap();
            (path, kind, size, data)
        })
        .collect()
}

fn same_through_the_guard(bytes: &[u8]) -> Vec<(String, u8, u64, Vec<u8>)> {
    let direct = entries(bytes);
    // Tiny reads too, so that no block boundary is assumed to fall inside one read.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    assert_eq!(entries(Guard::new(bytes)), direct);
    assert_eq!(entries(Guard::new(Trickle(bytes))), direct);
    direct
}

fn fixture(name: &str) -> Vec<u8> {
    fs_err::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn gnu_long_names_pax_paths_and_sizes_pass_unchanged() {
    let mut builder = tar::Builder::new(Vec::new());
    let long = format!("{}/key.pem", "d".repeat(300));
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, &long, &b"hello"[..])
        .unwrap();
    builder
        .append_pax_extensions([("path", format!("p/{}", "x".repeat(200)).as_bytes())])
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_path("short").unwrap();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, &b"abc"[..]).unwrap();
    let mut bytes = builder.into_inner().unwrap();
    // A PAX `size` that the ustar header leaves at 0 (as for files over 8 GiB).
    let mut pax = tar::Builder::new(Vec::new());
    pax.append_pax_extensions([("size", &b"600"[..])]).unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_path("sized").unwrap();
    header.set_size(0);
    header.set_mode(0o644);
    header.set_cksum();
    let mut tail = pax.into_inner().unwrap();
    tail.truncate(tail.len() - 1024);
    tail.extend_from_slice(header.as_bytes());
    tail.extend_from_slice(&[7u8; 1024]);
    tail.extend_from_slice(&[0u8; 1024]);
    bytes.truncate(bytes.len() - 1024);
    bytes.extend_from_slice(&tail);

    let seen = same_through_the_guard(&bytes);
    let names: Vec<&str> = seen.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [long.as_str(), &format!("p/{}", "x".repeat(200)), "sized"]
    );
    assert_eq!(seen[2].2, 600);
}

#[test]
fn gnu_sparse_files_pass_unchanged() {
    same_through_the_guard(&fixture("fuzz-regressions/layer/sparse-terabyte.tar"));
}

#[test]
fn an_oversized_long_name_becomes_a_streamed_file_and_the_next_entry_keeps_its_data() {
    let gz = fixture("fuzz-regressions/layer/long-name-64mib.tar.gz");
    let seen = entries(Guard::new(flate2::read::GzDecoder::new(&gz[..])));
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, format!("{OVERSIZED_PREFIX}L-{}", (64 << 20) + 1));
    assert_eq!(seen[0].1, b'0');
    assert_eq!(
        oversized(&seen[0].0).unwrap().1,
        "a GNU long name of 67108865 bytes, over Linux's 4096-byte PATH_MAX, was not read, and \
         the entry it names was not scanned"
    );
    assert!(seen[1].3.starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert!(oversized("etc/ssl/cert.pem").is_none());
}

#[test]
fn an_oversized_pax_header_is_renamed_too() {
    let mut builder = tar::Builder::new(Vec::new());
    let big = "a".repeat(2 << 20);
    builder
        .append_pax_extensions([("comment", big.as_bytes())])
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_path("after").unwrap();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, &b"ok"[..]).unwrap();
    let bytes = builder.into_inner().unwrap();
    let seen = entries(Guard::new(&bytes[..]));
    assert!(
        seen[0].0.starts_with(&format!("{OVERSIZED_PREFIX}x-")),
        "{}",
        seen[0].0
    );
    assert_eq!(
        (seen[1].0.as_str(), seen[1].3.as_slice()),
        ("after", &b"ok"[..])
    );
}

#[test]
fn gnu_tar_sparse_files_with_extension_blocks_pass_unchanged() {
    // Ten data regions between holes: more than the four an old GNU header holds, so GNU tar
    // writes sparse extension blocks after the header. Each region looks like a huge GNU long
    // name header: were the guard to lose its place, it would rename one.
    let mut decoy = [0u8; 512];
    decoy[..4].copy_from_slice(b"fake");
    decoy[124..136].copy_from_slice(b"77777777777\0");
    decoy[156] = b'L';
    let dir = tempfile::tempdir().unwrap();
    let file = fs_err::File::create(dir.path().join("holes.img")).unwrap();
    for region in 0..10u64 {
        use std::os::unix::fs::FileExt as _;
        file.file()
            .write_all_at(&decoy, region * (1 << 20))
            .unwrap();
    }
    drop(file);
    fs_err::write(dir.path().join("after.txt"), decoy).unwrap();
    let out = dir.path().join("sparse.tar");
    let status = std::process::Command::new("tar")
        .args(["--sparse", "--format=gnu", "-C"])
        .arg(dir.path())
        .arg("-cf")
        .arg(&out)
        .args(["holes.img", "after.txt"])
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = fs_err::read(&out).unwrap();
    let seen = same_through_the_guard(&bytes);
    assert_eq!(seen[0].1, b'S');
    assert_eq!(seen[1].0, "after.txt");
}

/// (path, data offset, size) of each entry, read with seeks over the data.
fn indexed<R: Read + std::io::Seek>(reader: R) -> Vec<(String, u64, u64)> {
    tar::Archive::new(reader)
        .entries_with_seek()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.raw_file_position(),
                e.size(),
            )
        })
        .collect()
}

#[test]
fn skipping_with_seeks_keeps_the_guards_place() {
    let bytes = fixture("fuzz-regressions/layer/path-over-path-max.tar");
    let direct = indexed(std::io::Cursor::new(&bytes));
    let guarded = indexed(Guard::new(std::io::Cursor::new(&bytes)));
    // The 40,000-byte name is over the bound: renamed, and the rest keeps its offsets.
    assert_eq!(guarded.len(), 2);
    assert!(guarded[0].0.starts_with(OVERSIZED_PREFIX));
    assert_eq!(guarded[1].1, direct[0].1);
    assert_eq!(guarded[1].2, direct[0].2);
}
