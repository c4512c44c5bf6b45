//! The registry client: the only code in ocicert that speaks HTTP to registries (the OCI
//! distribution API). Pulls manifests and streams blobs; pushes blobs and manifests.
//!
//! Written on reqwest rather than on oci-client's `Client` because scanning and copying need
//! what that client does not offer: retries with backoff that honour `Retry-After`, a hard cap
//! on manifest size while reading, Docker Hub rate-limit reporting, raw byte-exact manifest
//! pushes with 202-on-mount fallback, and one token per scope. The reference grammar and Docker
//! normalisation (`nginx` → `docker.io/library/nginx:latest`) are in `name`, tested against
//! oci-client's parser.
//! Credentials and tokens are never logged. Cross-host redirects (blob storage) drop the
//! `Authorization` header: reqwest's redirect policy strips it when the host changes. A Bearer
//! challenge's token realm gets the user's credentials only over HTTPS or on the registry's own
//! host name; a plain-HTTP realm elsewhere (possible with `--insecure`) is refused rather than
//! handed the password in clear text (`auth::realm_may_get_credentials`). Without credentials,
//! the anonymous token request goes wherever the realm says: there is nothing to leak.
//!
//! Hostile or broken registries stay bounded: connecting, waiting for response headers and each
//! read of a body are limited by `Options::read_timeout` (`--timeout`); a blob must move at least
//! 1 KiB per such window (`body`); and small documents
//! (manifests, tokens, error bodies) must arrive whole within it too, so a registry trickling one
//! byte at a time cannot hold a scan for ever. Error bodies are read only in part and reduced to
//! a short, sanitised excerpt (HTML tags and control characters removed).
//!
//! The parts: `error`, `transport` (sending, retries, backoff, limits), `token` (answering
//! challenges), `pull`, `push`, `excerpt` (error bodies), `auth` (credentials and challenges),
//! `name` (references), `body` (blob rate limits), `referrers`, `signatures` and `store`.

pub mod auth;
pub mod body;
pub mod name;
pub mod push;
pub mod referrers;
pub mod signatures;
pub mod store;

mod error;
mod excerpt;
mod pull;
mod token;
mod transport;

pub use error::Error;

use crate::image::manifest::MAX_MANIFEST;
use auth::{Challenge, Credentials};
use reqwest::{Method, StatusCode, header};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Media types accepted when pulling a manifest (schema 1 only so it can be refused clearly).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json;q=0.9, application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.1";

/// Requests that waited because a registry answered 429, in this process (for metrics).
pub static RATE_LIMIT_WAITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct Options {
    /// Allow plain HTTP and unverified TLS.
    pub insecure: bool,
    /// Extra PEM CA files to trust, next to the system roots.
    pub ca_files: Vec<PathBuf>,
    /// Explicit credentials; when `None`, stored credentials are looked up.
    pub credentials: Option<Credentials>,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed without progress: for the response headers, between two reads of a body,
    /// and for the whole of a manifest, token or error answer (`--timeout`).
    pub read_timeout: Duration,
    /// Retries after the first attempt for 429, 5xx and connection failures.
    pub retries: u32,
    /// When set, the only hosts (`host` or `host:port`) this client may send a request to:
    /// redirect targets and token realms elsewhere are refused before any connection (the
    /// service's allowlist). `None`: the CLI's rules (any redirect, any HTTPS realm).
    pub allowed_hosts: Option<Vec<String>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            insecure: false,
            ca_files: Vec::new(),
            credentials: None,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retries: 4,
            allowed_hosts: None,
        }
    }
}

/// A parsed registry reference, normalised the way Docker does it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The registry as written by the user (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The host the API lives on (`index.docker.io` for Docker Hub).
    pub api_host: String,
    /// Repository path (`library/nginx`).
    pub repository: String,
    /// Tag, when given (`latest` by default when no digest is given).
    pub tag: Option<String>,
    /// Digest, when given.
    pub digest: Option<String>,
}

impl Target {
    /// Parses `[docker://]REGISTRY/REPO[:TAG][@DIGEST]` with Docker's normalisation.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bare = text.strip_prefix("docker://").unwrap_or(text);
        let name = name::parse(bare)?;
        Ok(Self {
            api_host: name.api_host().to_string(),
            registry: name.registry,
            repository: name.repository,
            tag: name.tag,
            digest: name.digest,
        })
    }

    /// The manifest reference to fetch: the digest when given, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `registry/repository[:tag][@digest]` for messages.
    pub fn display(&self) -> String {
        let mut text = format!("{}/{}", self.registry, self.repository);
        if let Some(tag) = &self.tag {
            text.push_str(&format!(":{tag}"));
        }
        if let Some(digest) = &self.digest {
            text.push_str(&format!("@{digest}"));
        }
        text
    }
}

/// One client per registry host: connection pool, scheme, credentials and tokens.
pub struct Client {
    http: reqwest::Client,
    options: Options,
    host: String,
    base: tokio::sync::OnceCell<String>,
    credentials: Option<Credentials>,
    tokens: Mutex<HashMap<String, String>>,
    basic: AtomicBool,
    rate_warned: AtomicBool,
}

/// What a request needs access to.
#[derive(Clone, Debug)]
pub struct Scope(pub Vec<String>);

impl Scope {
    /// Pull access to a repository.
    pub fn pull(repository: &str) -> Self {
        Self(vec![format!("repository:{repository}:pull")])
    }
    /// Pull and push access, plus pull access to `mount_from` when mounting.
    pub fn push(repository: &str, mount_from: Option<&str>) -> Self {
        let mut scopes = vec![format!("repository:{repository}:pull,push")];
        scopes.extend(
            mount_from
                .filter(|from| *from != repository)
                .map(|from| format!("repository:{from}:pull")),
        );
        Self(scopes)
    }
    fn key(&self) -> String {
        self.0.join(" ")
    }
}

/// A request body that can be rebuilt for a retry.
pub type BodyFactory<'a> = &'a (dyn Fn() -> Result<reqwest::Body, std::io::Error> + Sync);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_docker_hub_and_keeps_other_registries() {
        let nginx = Target::parse("nginx").unwrap();
        assert_eq!(
            (
                nginx.registry.as_str(),
                nginx.repository.as_str(),
                nginx.tag.as_deref()
            ),
            ("docker.io", "library/nginx", Some("latest"))
        );
        assert_eq!(nginx.api_host, "index.docker.io");
        let local = Target::parse("docker://127.0.0.1:5000/team/app@sha256:0123456789012345678901234567890123456789012345678901234567890123").unwrap();
        assert_eq!(
            (local.api_host.as_str(), local.repository.as_str()),
            ("127.0.0.1:5000", "team/app")
        );
        assert!(local.digest.is_some());
        assert!(Target::parse("UPPER/case").is_err());
    }
}
