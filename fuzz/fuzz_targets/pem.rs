//! The PEM scanner, whole-buffer and streaming, agreeing on what they find.
#![no_main]

// The body lives in the library (src/fuzzing.rs), where the test suite replays it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocicert::fuzzing::pem(data));
