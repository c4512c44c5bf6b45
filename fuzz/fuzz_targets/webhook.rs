//! Webhook payloads: distribution notifications, Docker Hub and GitHub package events.
#![no_main]

// The body lives in the library (src/fuzzing.rs), where the test suite replays it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocicert::fuzzing::webhook(data));
