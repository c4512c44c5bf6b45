//! PKCS#12 keystores, tried with every default password.
#![no_main]

// The body lives in the library (src/fuzzing.rs), where the test suite replays it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocicert::fuzzing::pkcs12(data));
