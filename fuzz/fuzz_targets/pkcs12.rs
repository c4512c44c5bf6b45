//! PKCS#12 keystores, tried with every default password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocicert::detect::{Options, pkcs12};

fuzz_target!(|data: &[u8]| {
    if pkcs12::looks_like(data) {
        let _ = pkcs12::detect(data, &Options::default());
    }
});
