//! Every detector plus the nested-archive walker (zip/jar, tar, gzip), through `scan_file`.
#![no_main]

// The body lives in the library (src/fuzzing.rs), where the test suite replays it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocicert::fuzzing::archive(data));
