//! The bodies of the cargo-fuzz targets in `fuzz/`, one function per target, so the test suite
//! runs the very same code: it replays `fixtures/fuzz-regressions/<target>/` and a mutated seed
//! corpus (`tests/it/fuzz_regressions.rs`) on every CI run, and the fuzz crate cannot drift from
//! the library. Each function may panic only where the code under test is wrong (the PEM target
//! also asserts that its streaming and buffered scans agree). Not an API: it may change freely.

use crate::detect::{self, Options};
use crate::image::{self, digest::sha256, manifest};
use std::io::Read;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target by name, as `cargo fuzz run <name>` knows it.
pub const TARGETS: &[(&str, Target)] = &[
    ("pem", pem),
    ("der", der),
    ("pkcs12", pkcs12),
    ("jks", jks),
    ("openssh", openssh),
    ("archive", archive),
    ("layer", layer),
    ("manifest", manifest),
    ("webhook", webhook),
];

/// Hands out at most `step` bytes per read, so PEM block boundaries fall inside reads.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.len().min(buf.len()).min(self.step);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The PEM scanner, whole-buffer and streaming, agreeing on what they find.
pub fn pem(data: &[u8]) {
    let whole = detect::pem::blocks(data);
    for block in &whole {
        let _ = detect::interpret_pem_all(block);
    }
    let step = 1 + usize::from(data.first().copied().unwrap_or(0)) * 7;
    let mut streamed = 0usize;
    // Both stop parsing at the per-file cap.
    let read = detect::pem::blocks_in_stream(
        Trickle { data, step },
        detect::MAX_DETECTIONS_PER_FILE,
        |_| streamed += 1,
    );
    assert!(read.is_ok(), "reading from memory cannot fail: {read:?}");
    assert_eq!(whole.len(), streamed, "stream and buffer scans disagree");
}

/// DER certificate, key, CSR and PKCS#7 sniffing.
pub fn der(data: &[u8]) {
    let _ = detect::pkcs7::artifacts(data, "meta-inf/fuzz.rsa");
    let _ = detect::der::outer_len(data);
    let _ = detect::der::detect(data, "fuzz.der");
    let _ = detect::der::csr_subject(data);
}

/// PKCS#12 (with the default password list).
pub fn pkcs12(data: &[u8]) {
    if detect::pkcs12::looks_like(data) {
        let _ = detect::pkcs12::detect(data, &Options::default());
    }
}

/// JKS and JCEKS key stores.
pub fn jks(data: &[u8]) {
    let _ = detect::jks::detect(data);
}

/// OpenSSH private key bodies and PuTTY key files.
pub fn openssh(data: &[u8]) {
    let _ = detect::openssh::analyze(data);
    let _ = detect::putty::detect(data);
}

/// The nested-archive walker (zip/jar, tar, gzip) under small limits: the limits themselves
/// are what is exercised, and each run stays fast.
pub fn archive(data: &[u8]) {
    let options = Options {
        max_entry_bytes: 1 << 20,
        max_total_inflated: 4 << 20,
        ..Options::default()
    };
    let name = match data.first().map(|b| b % 4) {
        Some(0) => "app.jar",
        Some(1) => "bundle.tar.gz",
        Some(2) => "keys.tar",
        _ => "file",
    };
    let _ = detect::scan_file(name, data, &options);
}

/// The layer walker: compression sniffing, digest verification, tar entries, whiteouts.
pub fn layer(data: &[u8]) {
    // The layer's own digest, so the walk runs to the end and verification passes; a first
    // byte of 0xff makes it a wrong digest, to exercise the mismatch path too.
    let mut digest = sha256(data);
    if data.first() == Some(&0xff) {
        let flipped = if &digest[7..8] == "0" { "1" } else { "0" };
        digest.replace_range(7..8, flipped);
    }
    let size = data.len().is_multiple_of(3).then_some(data.len() as u64);
    let _ = crate::layer::scan(
        std::io::Cursor::new(data),
        &digest,
        size,
        &Options::default(),
    );
    let _ = crate::layer::normalize(&String::from_utf8_lossy(data));
}

/// Manifests, indexes and image configs (platform, history, secrets in Env/Labels/history).
pub fn manifest(data: &[u8]) {
    let _ = manifest::parse(data);
    let _ = manifest::media_type_of(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = image::platform_of(&value);
        let _ = image::layer_history(&value);
        let _ = detect::config::scan(&value);
    }
}

/// Webhook payloads: distribution notifications, Docker Hub and GitHub package events.
pub fn webhook(data: &[u8]) {
    use crate::serve::hooks;
    let _ = hooks::registry_events(data);
    let _ = hooks::dockerhub_event(data);
    let _ = hooks::github_event("package", data);
    let _ = hooks::github_event("registry_package", data);
    let _ = hooks::github_signature_valid(b"secret", data, std::str::from_utf8(data).ok());
}
