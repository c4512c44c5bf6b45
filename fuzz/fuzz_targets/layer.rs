//! The layer walker: compression sniffing, tar entries, whiteouts and the overlay.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocicert::detect::Options;
use ocicert::layer;

fuzz_target!(|data: &[u8]| {
    let _ = layer::scan(
        std::io::Cursor::new(data),
        "fuzz-layer",
        None,
        &Options::default(),
    );
    let _ = layer::normalize(&String::from_utf8_lossy(data));
});
