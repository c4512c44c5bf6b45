//! The init-time enrollment stub in the injected layer: its config file, the stub binary for the
//! image's platform, and the entrypoint that runs it before the original one.
//!
//! The config holds only non-secret settings; secrets reach the stub at run time through env vars
//! or mounted files named in the config. Building the stub is `scripts/build-stubs.sh`'s job.

use ocicert_enroll_config as config;
use serde_json::Value;
use std::path::PathBuf;

/// Where the stub binary goes in the image.
pub const STUB_PATH: &str = config::DEFAULT_STUB_PATH;
/// Where its config goes.
pub const CONFIG_PATH: &str = config::DEFAULT_CONFIG_PATH;

/// Why the stub cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no enrollment stub for `{platform}`: build it with scripts/build-stubs.sh or set OCICERT_STUB_DIR (looked in {looked})"
    )]
    MissingStub { platform: String, looked: String },
    #[error("the enrollment stub exists for linux/amd64 and linux/arm64 only, not `{platform}`")]
    Platform { platform: String },
}

/// Directories searched for `<arch>/ocicert-enroll`: `OCICERT_STUB_DIR`, then `stubs/` next to
/// the ocicert binary and one level up (a cargo `target/` dir, or a release archive).
fn stub_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("OCICERT_STUB_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
    {
        dirs.push(exe_dir.join("stubs"));
        if let Some(parent) = exe_dir.parent() {
            dirs.push(parent.join("stubs"));
        }
    }
    dirs
}

/// The stub binary for an image platform (`amd64` / `arm64`).
pub fn stub_for(architecture: &str) -> Result<Vec<u8>, Error> {
    let arch = match architecture {
        "amd64" | "x86_64" => "amd64",
        "arm64" | "aarch64" => "arm64",
        other => {
            return Err(Error::Platform {
                platform: format!("linux/{other}"),
            });
        }
    };
    let dirs = stub_dirs();
    for dir in &dirs {
        if let Ok(bytes) = fs_err::read(dir.join(arch).join("ocicert-enroll")) {
            return Ok(bytes);
        }
    }
    Err(Error::MissingStub {
        platform: format!("linux/{arch}"),
        looked: dirs
            .iter()
            .map(|d| format!("`{}`", d.display()))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Removes a stub prefix (`[stub, …, "--", original…]`) from an entrypoint, so injecting again
/// never wraps twice.
pub fn unwrap_entrypoint(entrypoint: &[Value]) -> Vec<Value> {
    if entrypoint.first().and_then(Value::as_str) != Some(STUB_PATH) {
        return entrypoint.to_vec();
    }
    match entrypoint.iter().position(|v| v.as_str() == Some("--")) {
        Some(index) => entrypoint[index + 1..].to_vec(),
        None => Vec::new(),
    }
}

/// The entrypoint that runs the stub, then the original entrypoint (Cmd is unchanged, so
/// shell-form and exec-form images keep their meaning).
pub fn wrap_entrypoint(original: &[Value], renew: bool) -> Vec<Value> {
    let mut wrapped = vec![Value::from(STUB_PATH)];
    if renew {
        wrapped.push(Value::from("--renew"));
    }
    wrapped.extend([
        Value::from("--config"),
        Value::from(CONFIG_PATH),
        Value::from("--"),
    ]);
    wrapped.extend(original.iter().cloned());
    wrapped
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrapping_twice_is_the_same_as_once() {
        let original = vec![json!("/bin/sh"), json!("-c"), json!("exec nginx")];
        let once = wrap_entrypoint(&original, false);
        assert_eq!(once[0], json!(STUB_PATH));
        assert_eq!(unwrap_entrypoint(&once), original);
        assert_eq!(wrap_entrypoint(&unwrap_entrypoint(&once), false), once);
        assert_eq!(unwrap_entrypoint(&original), original);
    }
}
