//! DER certificate, key and CSR sniffing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocicert::detect::{Options, der};

fuzz_target!(|data: &[u8]| {
    let _ = der::outer_len(data);
    let _ = der::detect(data, "fuzz.der", &Options::default());
    let _ = der::csr_subject(data);
});
