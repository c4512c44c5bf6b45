//! JKS and JCEKS keystore listing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocicert::detect::jks;

fuzz_target!(|data: &[u8]| {
    let _ = jks::detect(data);
});
