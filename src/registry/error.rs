//! The registry client's error: what went wrong talking to a registry, naming the registry.

use super::*;

/// What went wrong talking to a registry. Every variant names the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach registry `{registry}`")]
    Transport {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    /// Reading the local content of an upload failed: not the registry's doing.
    #[error("cannot read {what} for the upload to registry `{registry}`")]
    LocalRead {
        registry: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("registry `{registry}` answered 401 unauthorized: {hint}")]
    Unauthorized { registry: String, hint: String },
    #[error("registry `{registry}` refused {what}: HTTP {status}: {message}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what} was not found on registry `{registry}` (HTTP 404: {message})")]
    NotFound {
        registry: String,
        what: String,
        message: String,
    },
    #[error(
        "registry `{registry}` did not finish {what} within the {seconds} s timeout (raise --timeout for a slow registry)"
    )]
    Timeout {
        registry: String,
        what: String,
        seconds: u64,
    },
    #[error(
        "registry `{registry}` sent only {bytes} bytes of {what} within the {seconds} s timeout; at least 1 KiB must arrive per timeout window (a stalled or trickling registry; raise --timeout for a slow link)"
    )]
    Stalled {
        registry: String,
        what: String,
        bytes: u64,
        seconds: u64,
    },
    #[error(
        "registry `{registry}` answered manifest `{reference}` with `{content_type}`, not a manifest: {excerpt}"
    )]
    NotAManifest {
        registry: String,
        reference: String,
        content_type: String,
        excerpt: String,
    },
    #[error(
        "manifest `{reference}` from `{registry}` is larger than the {MAX_MANIFEST} byte limit"
    )]
    ManifestTooLarge { registry: String, reference: String },
    #[error("manifest `{reference}` from `{registry}` hashes to `{actual}`, not to its digest")]
    DigestMismatch {
        registry: String,
        reference: String,
        actual: String,
    },
    #[error("token request to `{realm}` for registry `{registry}` failed: {reason}")]
    Token {
        registry: String,
        realm: String,
        reason: String,
    },
    #[error("cannot use CA file `{path}`: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("cannot set up the HTTP client")]
    Setup {
        #[source]
        source: reqwest::Error,
    },
}
