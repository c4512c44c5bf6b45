//! OpenSSH private keys (the body of a `BEGIN OPENSSH PRIVATE KEY` block) and PuTTY key files.
#![no_main]

// The body lives in the library (src/fuzzing.rs), where the test suite replays it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocicert::fuzzing::openssh(data));
