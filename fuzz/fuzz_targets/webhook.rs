//! Webhook payloads: distribution notifications, Docker Hub and GitHub package events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocicert::serve::hooks;

fuzz_target!(|data: &[u8]| {
    let _ = hooks::registry_events(data);
    let _ = hooks::dockerhub_event(data);
    let _ = hooks::github_event("package", data);
    let _ = hooks::github_event("registry_package", data);
    let _ = hooks::github_signature_valid(b"secret", data, std::str::from_utf8(data).ok());
});
