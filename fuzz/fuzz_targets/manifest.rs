//! Manifests, indexes and image configs (platform, history, secrets in Env/Labels/history).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocicert::detect::config;
use ocicert::image::{self, manifest};

fuzz_target!(|data: &[u8]| {
    let _ = manifest::parse(data);
    let _ = manifest::media_type_of(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = image::platform_of(&value);
        let _ = image::layer_history(&value);
        let _ = config::scan(&value);
    }
});
