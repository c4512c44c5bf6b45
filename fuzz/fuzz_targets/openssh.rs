//! OpenSSH private keys (the body of a `BEGIN OPENSSH PRIVATE KEY` block) and PuTTY key files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocicert::detect::{openssh, putty};

fuzz_target!(|data: &[u8]| {
    let _ = openssh::analyze(data);
    let _ = putty::detect(data);
});
