//! Secrets in the image configuration: `Env`, `Labels`, `Entrypoint`, `Cmd` and every
//! `history[].created_by` (a `RUN echo "-----BEGIN …"` stays in the history forever).
//!
//! Values are scanned as written, with shell-style `\n` escapes expanded, and base64-decoded
//! when they look like base64 of a PEM block (`LS0tLS1CRUdJTi…`, a common way to pass keys in
//! env vars). Parsing the config JSON itself is `image`'s job.

use super::{Artifact, interpret_pem_all, pem};
use base64::Engine as _;
use serde_json::Value;

/// Base64 of `-----BEGIN`.
const BASE64_PEM_PREFIX: &str = "LS0tLS1CRUdJT";

/// Every detection in the config, with the field it came from.
pub fn scan(config: &Value) -> Vec<(String, Artifact)> {
    // The whole configuration shares one DSA work budget, like one file.
    crate::keys::reset_work_budget();
    let mut fields: Vec<(String, &str)> = Vec::new();
    let inner = config.get("config");
    if let Some(env) = inner.and_then(|c| c.get("Env")).and_then(Value::as_array) {
        for (index, value) in env.iter().enumerate() {
            if let Some(text) = value.as_str() {
                fields.push((format!("config.Env[{index}]"), text));
            }
        }
    }
    if let Some(labels) = inner
        .and_then(|c| c.get("Labels"))
        .and_then(Value::as_object)
    {
        for (key, value) in labels {
            if let Some(text) = value.as_str() {
                fields.push((format!("config.Labels[{key:?}]"), text));
            }
        }
    }
    for name in ["Entrypoint", "Cmd"] {
        if let Some(items) = inner.and_then(|c| c.get(name)).and_then(Value::as_array) {
            for (index, value) in items.iter().enumerate() {
                if let Some(text) = value.as_str() {
                    fields.push((format!("config.{name}[{index}]"), text));
                }
            }
        }
    }
    if let Some(history) = config.get("history").and_then(Value::as_array) {
        for (index, entry) in history.iter().enumerate() {
            if let Some(text) = entry.get("created_by").and_then(Value::as_str) {
                fields.push((format!("history[{index}].created_by"), text));
            }
        }
    }
    let mut out = Vec::new();
    for (field, text) in fields {
        for artifact in scan_text(text) {
            out.push((field.clone(), artifact));
        }
    }
    let limit = super::MAX_DETECTIONS_PER_FILE;
    if out.len() > limit {
        let dropped = out.len() - limit;
        out.truncate(limit);
        out.push((
            "config".into(),
            Artifact::LimitReached {
                reason: format!(
                    "{dropped} more detections in the image configuration were not reported (at most {limit})"
                ),
            },
        ));
    }
    out
}

/// Detections in one string value, without duplicates from its decoded variants.
pub fn scan_text(text: &str) -> Vec<Artifact> {
    let mut variants: Vec<Vec<u8>> = vec![text.as_bytes().to_vec()];
    if text.contains("\\n") {
        variants.push(text.replace("\\n", "\n").into_bytes());
    }
    for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        // `NAME=LS0t…` as in an Env entry: the value starts at the marker.
        let Some(start) = word.find(BASE64_PEM_PREFIX) else {
            continue;
        };
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&word[start..]) {
            variants.push(decoded);
        }
    }
    let mut out: Vec<Artifact> = Vec::new();
    // Seen artifacts by their serialised form: a linear check, where `Vec::contains` made a
    // value with 60,000 keys quadratic.
    let mut seen = std::collections::HashSet::new();
    for variant in variants {
        for block in pem::blocks(&variant) {
            // The raw form of an escaped value is one line and fails to decode; its expanded
            // variant carries the real result, so skip failures when a success exists.
            for artifact in interpret_pem_all(&block) {
                if seen.insert(serde_json::to_string(&artifact).unwrap_or_default()) {
                    out.push(artifact);
                }
            }
        }
    }
    let has_success = out
        .iter()
        .any(|a| !matches!(a, Artifact::Unparseable { .. }));
    if has_success {
        out.retain(|a| !matches!(a, Artifact::Unparseable { .. }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_escaped_or_base64_encoded_in_values() {
        let pem = fs_err::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/keys/ec-sec1.pem"
        ))
        .unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&pem);
        let escaped = pem.replace('\n', "\\n");
        let config = serde_json::json!({
            "config": {"Env": [format!("TLS_KEY={encoded}"), "PATH=/bin"], "Labels": {"k": escaped}},
            "history": [{"created_by": format!("RUN echo \"{escaped}\" > /key.pem")}],
        });
        let fields: Vec<String> = scan(&config).into_iter().map(|(field, _)| field).collect();
        assert_eq!(
            fields,
            [
                "config.Env[0]",
                "config.Labels[\"k\"]",
                "history[0].created_by"
            ]
        );
        assert!(scan_text("PATH=/usr/bin LS0tLS1CRUdJTiBub25zZW5zZQ").is_empty());
    }
}
