//! Every detector plus the nested-archive walker (zip/jar, tar, gzip), through `scan_file`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocicert::detect::{Options, scan_file};

fuzz_target!(|data: &[u8]| {
    // Small limits keep each run fast; the limits themselves are what is being exercised.
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
    let _ = scan_file(name, data, &options);
});
