//! The layer walker: compression sniffing, digest verification, tar entries, whiteouts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocicert::detect::Options;
use ocicert::image::digest::sha256;
use ocicert::layer;

fuzz_target!(|data: &[u8]| {
    // The layer's own digest, so the walk runs to the end and verification passes; the first
    // byte flips it to a wrong digest now and then, to exercise the mismatch path too.
    let mut digest = sha256(data);
    if data.first() == Some(&0xff) {
        digest.replace_range(7..8, if &digest[7..8] == "0" { "1" } else { "0" });
    }
    let size = (data.len() % 3 == 0).then_some(data.len() as u64);
    let _ = layer::scan(std::io::Cursor::new(data), &digest, size, &Options::default());
    let _ = layer::normalize(&String::from_utf8_lossy(data));
});
