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

pub mod auth;
pub mod body;
pub mod name;
pub mod push;
pub mod referrers;
pub mod signatures;
pub mod store;

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
        }
    }
}

/// What went wrong talking to a registry. Every variant names the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach registry `{registry}`")]
    Transport {
        registry: String,
        #[source]
        source: reqwest::Error,
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

impl Client {
    /// Builds a client for one registry host.
    pub fn new(host: &str, options: Options) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .user_agent(concat!("ocicert/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5));
        let mut roots = Vec::new();
        for path in &options.ca_files {
            let pem = fs_err::read(path).map_err(|e| Error::CaFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::CaFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if certs.is_empty() {
                return Err(Error::CaFile {
                    path: path.clone(),
                    reason: "no PEM certificate in it".into(),
                });
            }
            roots.extend(certs);
        }
        if !roots.is_empty() {
            builder = builder.tls_certs_merge(roots);
        }
        if options.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|source| Error::Setup { source })?;
        let credentials = options.credentials.clone().or_else(|| auth::stored(host));
        Ok(Self {
            http,
            options,
            host: host.to_string(),
            base: tokio::sync::OnceCell::new(),
            credentials,
            tokens: Mutex::new(HashMap::new()),
            basic: AtomicBool::new(false),
            rate_warned: AtomicBool::new(false),
        })
    }

    /// The registry host this client talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    async fn base(&self) -> Result<&str, Error> {
        self.base
            .get_or_try_init(|| async {
                let https = format!("https://{}", self.host);
                if !self.options.insecure {
                    return Ok(https);
                }
                // --insecure: try TLS (unverified) first, fall back to plain HTTP.
                match self.http.get(format!("{https}/v2/")).send().await {
                    Ok(_) => {
                        tracing::warn!(
                            "--insecure: not verifying the TLS certificate of `{}`",
                            self.host
                        );
                        Ok(https)
                    }
                    Err(_) => {
                        tracing::warn!("--insecure: talking to `{}` over plain HTTP", self.host);
                        Ok(format!("http://{}", self.host))
                    }
                }
            })
            .await
            .map(String::as_str)
    }

    fn transport(&self, source: reqwest::Error) -> Error {
        Error::Transport {
            registry: self.host.clone(),
            source,
        }
    }

    /// The timeout error for `what` (a request, a manifest, a blob).
    pub fn timeout(&self, what: &str) -> Error {
        Error::Timeout {
            registry: self.host.clone(),
            what: what.to_string(),
            seconds: self.options.read_timeout.as_secs(),
        }
    }

    /// Reads a small answer (manifest, token, error) of at most `cap` bytes, all of it within
    /// the timeout.
    async fn read_small(
        &self,
        response: reqwest::Response,
        cap: usize,
        what: &str,
    ) -> Result<Vec<u8>, CapError> {
        tokio::time::timeout(self.options.read_timeout, read_capped(response, cap))
            .await
            .unwrap_or_else(|_| Err(CapError::Timeout(self.timeout(what))))
    }

    /// Sends a request to `path` (below `/v2/`) or to an absolute URL, authenticating and
    /// retrying as needed. The caller checks the final status.
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        scope: &Scope,
        headers: &[(header::HeaderName, String)],
        body: Option<BodyFactory<'_>>,
    ) -> Result<reqwest::Response, Error> {
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}/v2/{path_or_url}", self.base().await?)
        };
        let mut attempt = 0u32;
        let mut authenticated = false;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request = self.authorize(request, scope);
            if let Some(factory) = body {
                let body = factory().map_err(|e| Error::Status {
                    registry: self.host.clone(),
                    what: "the upload".into(),
                    status: 0,
                    message: e.to_string(),
                })?;
                request = request.body(body);
            }
            // Without a body to upload, the response headers must arrive within the timeout
            // (reqwest's read timeout alone lets a registry trickle headers for ever).
            let sent = if body.is_some() {
                Ok(request.send().await)
            } else {
                tokio::time::timeout(self.options.read_timeout, request.send()).await
            };
            let response = match sent {
                Ok(Ok(response)) => response,
                Ok(Err(e))
                    if attempt < self.options.retries
                        && (e.is_connect() || e.is_timeout() || e.is_request()) =>
                {
                    attempt += 1;
                    self.backoff(attempt, None).await;
                    continue;
                }
                Err(_) if attempt < self.options.retries => {
                    attempt += 1;
                    self.backoff(attempt, None).await;
                    continue;
                }
                Ok(Err(e)) if e.is_timeout() => {
                    return Err(self.timeout(&format!("{method} {}", without_query(&url))));
                }
                Ok(Err(e)) => return Err(self.transport(e)),
                Err(_) => return Err(self.timeout(&format!("{method} {}", without_query(&url)))),
            };
            self.note_rate_limit(&response);
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !authenticated {
                authenticated = true;
                let challenge = response
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge);
                self.answer(challenge, scope).await?;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(Error::Unauthorized {
                    registry: self.host.clone(),
                    hint: if self.credentials.is_some() {
                        "the credentials were refused (check --creds or the stored login)".into()
                    } else {
                        "authentication required: pass --creds user:pass or log in with docker/podman".into()
                    },
                });
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                || matches!(status.as_u16(), 500 | 502 | 503 | 504);
            if retryable && attempt < self.options.retries {
                attempt += 1;
                if status == StatusCode::TOO_MANY_REQUESTS {
                    RATE_LIMIT_WAITS.fetch_add(1, Ordering::Relaxed);
                }
                let retry_after = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                tracing::info!(registry = %self.host, status = status.as_u16(), attempt, "retrying");
                self.backoff(attempt, retry_after).await;
                continue;
            }
            return Ok(response);
        }
    }

    async fn backoff(&self, attempt: u32, retry_after: Option<u64>) {
        let delay = match retry_after {
            Some(seconds) => Duration::from_secs(seconds.min(60)),
            None => Duration::from_millis(250u64.saturating_mul(1 << attempt.min(6))),
        };
        tokio::time::sleep(delay).await;
    }

    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        scope: &Scope,
    ) -> reqwest::RequestBuilder {
        if let Some(token) = self
            .tokens
            .lock()
            .ok()
            .and_then(|t| t.get(&scope.key()).cloned())
        {
            return request.bearer_auth(token);
        }
        match (&self.credentials, self.basic.load(Ordering::Relaxed)) {
            (Some(credentials), true) => {
                request.basic_auth(&credentials.username, Some(&credentials.password))
            }
            _ => request,
        }
    }

    async fn answer(&self, challenge: Option<Challenge>, scope: &Scope) -> Result<(), Error> {
        match challenge {
            Some(Challenge::Basic) => {
                if self.credentials.is_none() {
                    return Err(Error::Unauthorized {
                        registry: self.host.clone(),
                        hint: "the registry wants a username and password: pass --creds user:pass or log in with docker/podman".into(),
                    });
                }
                self.basic.store(true, Ordering::Relaxed);
                Ok(())
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = self.fetch_token(&realm, service.as_deref(), scope).await?;
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.insert(scope.key(), token);
                }
                Ok(())
            }
            None => Err(Error::Unauthorized {
                registry: self.host.clone(),
                hint: "the registry sent no usable WWW-Authenticate challenge".into(),
            }),
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<String, Error> {
        let error = |reason: String| Error::Token {
            registry: self.host.clone(),
            realm: realm.to_string(),
            reason,
        };
        let url =
            reqwest::Url::parse(realm).map_err(|e| error(format!("invalid realm URL: {e}")))?;
        if url.scheme() != "https" && !(url.scheme() == "http" && self.options.insecure) {
            return Err(error(
                "the token realm is not HTTPS (use --insecure only for test registries)".into(),
            ));
        }
        if self.credentials.is_some() && !auth::realm_may_get_credentials(&url, &self.host) {
            return Err(error(format!(
                "the realm is plain HTTP on `{}`, another host than the registry; credentials go \
                 only to a token service on HTTPS or on the registry's own host, so they were not sent",
                url.host_str().unwrap_or_default()
            )));
        }
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = service {
            query.push(("service", service));
        }
        for item in &scope.0 {
            query.push(("scope", item));
        }
        if let Some(credentials) = &self.credentials {
            query.push(("account", &credentials.username));
        }
        let mut attempt = 0;
        let response = loop {
            let mut request = self.http.get(url.clone()).query(&query);
            if let Some(credentials) = &self.credentials {
                request = request.basic_auth(&credentials.username, Some(&credentials.password));
            }
            match request.send().await {
                Ok(response)
                    if matches!(response.status().as_u16(), 429 | 500 | 502 | 503 | 504)
                        && attempt < self.options.retries =>
                {
                    attempt += 1;
                    self.backoff(attempt, None).await;
                }
                Ok(response) => break response,
                Err(e) if attempt < self.options.retries && (e.is_connect() || e.is_timeout()) => {
                    attempt += 1;
                    self.backoff(attempt, None).await;
                }
                Err(e) => return Err(error(e.to_string())),
            }
        };
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                registry: self.host.clone(),
                hint:
                    "the token service refused the credentials (check --creds or the stored login)"
                        .into(),
            });
        }
        let body = match self
            .read_small(response, 64 * 1024, "the token answer")
            .await
        {
            Ok(body) => body,
            Err(CapError::Timeout(timeout)) => return Err(timeout),
            Err(e) => return Err(error(e.to_string())),
        };
        if !status.is_success() {
            return Err(error(format!(
                "HTTP {}: {}",
                status.as_u16(),
                error_message(&body)
            )));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: Token = serde_json::from_slice(&body)
            .map_err(|_| error("the answer is not a token JSON document".into()))?;
        parsed
            .token
            .or(parsed.access_token)
            .ok_or_else(|| error("the answer holds no token".into()))
    }

    fn note_rate_limit(&self, response: &reqwest::Response) {
        let remaining = response
            .headers()
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(remaining) = remaining.filter(|r| *r < 10)
            && !self.rate_warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "registry `{}` has {remaining} pulls left in its rate-limit window",
                self.host
            );
        }
    }

    /// Turns a non-success response into an error naming `what`.
    pub async fn fail(&self, response: reqwest::Response, what: &str) -> Error {
        let status = response.status();
        // The start of the body is enough for a message; a huge or endless error page is cut.
        let body =
            tokio::time::timeout(self.options.read_timeout, read_prefix(response, 16 * 1024))
                .await
                .unwrap_or_default();
        if status == StatusCode::NOT_FOUND {
            return Error::NotFound {
                registry: self.host.clone(),
                what: what.to_string(),
                message: error_message(&body),
            };
        }
        Error::Status {
            registry: self.host.clone(),
            what: what.to_string(),
            status: status.as_u16(),
            message: error_message(&body),
        }
    }

    /// Fetches a manifest or index by tag or digest: `(bytes, media type, digest)`.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String, String), Error> {
        let accept = [(header::ACCEPT, MANIFEST_ACCEPT.to_string())];
        let response = self
            .send(
                Method::GET,
                &format!("{repository}/manifests/{reference}"),
                &Scope::pull(repository),
                &accept,
                None,
            )
            .await?;
        if !response.status().is_success() {
            return Err(self
                .fail(response, &format!("manifest `{repository}:{reference}`"))
                .await);
        }
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let too_large = || Error::ManifestTooLarge {
            registry: self.host.clone(),
            reference: format!("{repository}:{reference}"),
        };
        if response
            .content_length()
            .is_some_and(|len| len > MAX_MANIFEST as u64)
        {
            return Err(too_large());
        }
        let what = format!("manifest `{repository}:{reference}`");
        let bytes = self
            .read_small(response, MAX_MANIFEST, &what)
            .await
            .map_err(|e| match e {
                CapError::TooLarge => too_large(),
                CapError::Read(source) if source.is_timeout() => self.timeout(&what),
                CapError::Read(source) => self.transport(source),
                CapError::Timeout(timeout) => timeout,
            })?;
        // An HTML page (a proxy's or captive portal's) is not a manifest: say so, with a short
        // excerpt, rather than reporting a JSON syntax error.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::NotAManifest {
                registry: self.host.clone(),
                reference: format!("{repository}:{reference}"),
                content_type: if media_type.is_empty() {
                    "no content type".into()
                } else {
                    media_type
                },
                excerpt: error_message(&bytes),
            });
        }
        let mismatch = |actual: String| Error::DigestMismatch {
            registry: self.host.clone(),
            reference: reference.to_string(),
            actual,
        };
        let digest = match crate::image::digest::Digest::parse(reference) {
            Some(expected) => {
                let actual = match expected.algorithm {
                    crate::image::digest::Algorithm::Sha256 => crate::image::digest::sha256(&bytes),
                    crate::image::digest::Algorithm::Sha512 => sha512(&bytes),
                };
                if actual != reference {
                    return Err(mismatch(actual));
                }
                actual
            }
            None => {
                let actual = crate::image::digest::sha256(&bytes);
                if header_digest
                    .as_deref()
                    .is_some_and(|d| d.starts_with("sha256:") && d != actual)
                {
                    return Err(mismatch(actual));
                }
                actual
            }
        };
        Ok((bytes, media_type, digest))
    }

    /// The digest a tag points at, from a `HEAD` request (Docker Hub does not count `HEAD`
    /// against its pull rate limit). Falls back to fetching the manifest when the registry
    /// sends no `Docker-Content-Digest`.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<String, Error> {
        let accept = [(header::ACCEPT, MANIFEST_ACCEPT.to_string())];
        let response = self
            .send(
                Method::HEAD,
                &format!("{repository}/manifests/{reference}"),
                &Scope::pull(repository),
                &accept,
                None,
            )
            .await?;
        if !response.status().is_success() {
            return Err(self
                .fail(response, &format!("manifest `{repository}:{reference}`"))
                .await);
        }
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| crate::image::digest::Digest::parse(d).is_some())
            .map(str::to_string);
        match digest {
            Some(digest) => Ok(digest),
            None => Ok(self.manifest(repository, reference).await?.2),
        }
    }

    /// Opens a blob for streaming. Redirects to blob storage are followed without credentials.
    pub async fn blob(&self, repository: &str, digest: &str) -> Result<reqwest::Response, Error> {
        let response = self
            .send(
                Method::GET,
                &format!("{repository}/blobs/{digest}"),
                &Scope::pull(repository),
                &[],
                None,
            )
            .await?;
        if !response.status().is_success() {
            return Err(self
                .fail(response, &format!("blob `{digest}` in `{repository}`"))
                .await);
        }
        Ok(response)
    }

    /// Streams blob `digest` of `repository`; a registry that stalls or trickles below
    /// `body::MIN_BYTES_PER_WINDOW` per `--timeout` window ends it with `Error::Stalled`.
    pub async fn blob_stream(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<
        impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
        Error,
    > {
        let response = self.blob(repository, digest).await?;
        Ok(body::guarded(
            response,
            self.options.read_timeout,
            &self.host,
            format!("blob `{digest}`"),
        ))
    }
}

fn sha512(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes)))
}

enum CapError {
    TooLarge,
    Read(reqwest::Error),
    Timeout(Error),
}

impl std::fmt::Display for CapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => f.write_str("the answer is too large"),
            Self::Read(e) => write!(f, "{e}"),
            Self::Timeout(e) => write!(f, "{e}"),
        }
    }
}

/// A URL without its query and fragment (pre-signed storage URLs carry secrets there).
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The first `cap` bytes of a body (all of it when shorter); read errors end it early.
async fn read_prefix(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// Reads a response body, refusing more than `cap` bytes.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, CapError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(CapError::Read)? {
        if body.len() + chunk.len() > cap {
            return Err(CapError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The registry's error text: the `errors[].message` of a JSON error body, or the start of a
/// non-JSON body.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(body) {
        let text: Vec<String> = envelope
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
            .collect();
        if !text.is_empty() {
            return text.join("; ");
        }
    }
    excerpt(body)
}

/// At most this many characters of a body go into an error message.
const EXCERPT_CHARS: usize = 200;

/// A short excerpt of a body that is not a JSON error document, safe to print on a terminal:
/// the text of an HTML page without its tags, styles and scripts; no control characters, ANSI
/// escape sequences or bidirectional overrides; whitespace collapsed; cut at 200 characters.
fn excerpt(body: &[u8]) -> String {
    // Only the start can show; it also keeps the tag stripping cheap on a hostile page.
    let text = String::from_utf8_lossy(&body[..body.len().min(8 * 1024)]);
    let text = if text.trim_start().starts_with('<') {
        strip_markup(&text)
    } else {
        text.into_owned()
    };
    let mut clean = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences (`ESC [ 31 m`): drop up to and including the final letter.
            if chars.clone().next() == Some('[') {
                for next in chars.by_ref().skip(1) {
                    if next.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        let invisible = c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_whitespace() || invisible {
            if !clean.ends_with(' ') {
                clean.push(' ');
            }
        } else {
            clean.push(c);
        }
    }
    let clean = clean.trim();
    if clean.is_empty() {
        return "(empty body)".into();
    }
    let mut cut: String = clean.chars().take(EXCERPT_CHARS).collect();
    if clean.chars().nth(EXCERPT_CHARS).is_some() {
        cut.push('…');
    }
    cut
}

/// The text of an HTML or XML page: tags removed, `<style>` and `<script>` elements dropped.
fn strip_markup(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        out.push(' ');
        let tag = &rest[start + 1..];
        let skipped = ["style", "script"].into_iter().find_map(|element| {
            let opens = tag
                .get(..element.len())
                .is_some_and(|name| name.eq_ignore_ascii_case(element));
            opens.then(|| {
                let closing = format!("</{element}");
                let lower = tag.to_ascii_lowercase();
                lower
                    .find(&closing)
                    .map_or("", |end| &tag[end + closing.len()..])
            })
        });
        let after = skipped.unwrap_or(tag);
        match after.find('>') {
            Some(end) => rest = &after[end + 1..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

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

    #[test]
    fn error_bodies_are_summarised() {
        assert_eq!(
            error_message(br#"{"errors":[{"code":"DENIED","message":"no"}]}"#),
            "DENIED no"
        );
        assert_eq!(error_message(b"<html>\nBad gateway</html>"), "Bad gateway");
        assert_eq!(error_message(b""), "(empty body)");
        assert_eq!(error_message(b"  \n\t "), "(empty body)");
    }

    #[test]
    fn html_and_terminal_tricks_are_sanitised() {
        let page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title>\n<STYLE>h1 { color: red }</STYLE><script>alert(1)</script></head><body>\x1b[31m<h1>Oops</h1>\r\n<p>try\x07 later\xe2\x80\xae</p></body></html>";
        assert_eq!(error_message(page), "502 Bad Gateway Oops try later");
        let long = format!("<p>{}</p>", "word ".repeat(500));
        let text = error_message(long.as_bytes());
        assert_eq!(text.chars().count(), EXCERPT_CHARS + 1);
        assert!(text.ends_with('…'));
        assert_eq!(error_message(b"plain <text> stays"), "plain <text> stays");
        assert_eq!(error_message(b"<p>unclosed <b"), "unclosed");
    }
}
