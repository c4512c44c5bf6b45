//! Sending requests: the client's connection setup, retries with backoff that honour
//! `Retry-After`, time limits on small bodies, rate-limit notes, and turning an unexpected
//! answer into an `Error`. Authentication is `token`; what is requested is `pull` and `push`.

use super::excerpt::error_message;
use super::*;

/// At most 5 redirects, each to one of `allowed` when given.
fn redirects(allowed: Option<Vec<String>>) -> reqwest::redirect::Policy {
    let Some(allowed) = allowed else {
        return reqwest::redirect::Policy::limited(5);
    };
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("more than 5 redirects")
        } else if auth::on_hosts(attempt.url(), &allowed) {
            attempt.follow()
        } else {
            let refused = format!(
                "a redirect to `{}` was not followed: that host is outside the allowlist (the \
                 registry's own host and its `redirect_hosts`)",
                auth::authority(attempt.url())
            );
            attempt.error(refused)
        }
    })
}

impl Client {
    /// Builds a client for one registry host.
    pub fn new(host: &str, options: Options) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .user_agent(concat!("ocicert/", env!("CARGO_PKG_VERSION")))
            .redirect(redirects(options.allowed_hosts.clone()));
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

    pub(super) async fn base(&self) -> Result<&str, Error> {
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

    pub(super) fn transport(&self, source: reqwest::Error) -> Error {
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
    pub(super) async fn read_small(
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
                let body = factory().map_err(|source| Error::LocalRead {
                    registry: self.host.clone(),
                    what: format!("the body of a {method} request"),
                    source,
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

    pub(super) async fn backoff(&self, attempt: u32, retry_after: Option<u64>) {
        let delay = match retry_after {
            Some(seconds) => Duration::from_secs(seconds.min(60)),
            None => Duration::from_millis(250u64.saturating_mul(1 << attempt.min(6))),
        };
        tokio::time::sleep(delay).await;
    }

    pub(super) fn note_rate_limit(&self, response: &reqwest::Response) {
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
}

pub(super) enum CapError {
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
pub(super) fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The first `cap` bytes of a body (all of it when shorter); read errors end it early.
pub(super) async fn read_prefix(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
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
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, CapError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(CapError::Read)? {
        if body.len() + chunk.len() > cap {
            return Err(CapError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
