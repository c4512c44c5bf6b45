//! `ocicert serve`: webhooks in, scans through a durable queue, results out as JSON, HTML and
//! Prometheus metrics.
//!
//! `app(state)` builds the whole router, so tests can drive it without a socket; `run` adds
//! the socket, the workers and graceful shutdown (SIGTERM or Ctrl-C: stop accepting, let
//! running scans finish within the grace period, hand the rest back to the queue). A webhook
//! handler only authenticates, parses, checks the allowlist and enqueues, then answers 202;
//! it never scans. Bodies over `MAX_BODY` (1 MiB) get 413: at once when `Content-Length`
//! says so, else as soon as the bytes pass the limit; a webhook body must arrive within
//! `BODY_TIMEOUT` (408), and a bearer or path secret is checked before the body is read.
//! How an image is scanned is given by the
//! caller (`Scanner`), so this module holds no scan policy and no `anyhow`.

pub mod access;
pub mod config;
pub mod hooks;
pub mod metrics;
pub mod web;
pub mod worker;

use crate::registry;
use crate::report::Report;
use crate::store::{self, Enqueued, NewJob, Store};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use config::{AllowedRegistry, Config};
use metrics::{Delivery, Metrics};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest webhook body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// How long a webhook client may take to send its (at most `MAX_BODY`) body. A client that
/// declares a small body and never sends it gets 408 instead of holding the request open.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a scan did not produce a report.
#[derive(Debug)]
pub enum ScanError {
    /// The registry keeps answering 429: try again later without counting an attempt.
    RateLimited(String),
    /// Anything else; retried with backoff up to the attempt limit.
    Failed(String),
}

/// Scans one image (blocking; run on the blocking pool). Given by the command.
pub type Scanner =
    Arc<dyn Fn(&store::Job, &AllowedRegistry) -> Result<Report, ScanError> + Send + Sync>;

/// Everything the handlers and workers share.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub metrics: Metrics,
    pub scanner: Scanner,
    /// This process's name in leases: host, pid and start time.
    pub owner: String,
    /// Wakes a worker when a job is enqueued.
    pub wake: tokio::sync::Notify,
    /// For notifications and Docker Hub callbacks.
    pub http: reqwest::Client,
    /// Registry clients for tag resolution, one per allowed host.
    clients: Mutex<HashMap<String, Arc<registry::Client>>>,
}

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot set up the HTTP client for notifications")]
    Http(#[source] reqwest::Error),
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

impl App {
    /// Shared state for a service.
    pub fn new(config: Config, store: Store, scanner: Scanner) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ocicert/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Http)?;
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let host = fs_err::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        Ok(Self {
            config,
            store,
            metrics: Metrics::default(),
            scanner,
            owner: format!("{host}:{}:{start:x}", std::process::id()),
            wake: tokio::sync::Notify::new(),
            http,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// Retry settings from the configuration.
    pub fn retry(&self) -> store::Retry {
        store::Retry {
            max_attempts: self.config.max_attempts,
            backoff_ms: millis(self.config.retry_backoff),
            max_backoff_ms: 3_600_000,
        }
    }

    fn client(&self, allowed: &AllowedRegistry) -> Result<Arc<registry::Client>, registry::Error> {
        let key = allowed.host.clone();
        if let Some(client) = self.clients.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(client);
        }
        let api_host = if allowed.host == "docker.io" {
            "index.docker.io"
        } else {
            allowed.host.as_str()
        };
        let client = Arc::new(registry::Client::new(api_host, allowed.options())?);
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(key, client.clone());
        }
        Ok(client)
    }
}

/// Milliseconds of a duration, for the store's clock.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, millis)
}

/// The router: webhooks, the JSON API, metrics, health and the web pages.
pub fn app(state: Arc<App>) -> Router {
    // What the service found: behind the read token when `[read]` configures one.
    let read = Router::new()
        .route("/api/images", get(api_images))
        .route("/api/images/{digest}", get(api_image))
        .route("/api/findings", get(api_findings))
        .route("/api/certificates", get(api_certificates))
        .route("/api/jobs", get(api_jobs))
        .route("/metrics", get(metrics))
        .route("/", get(web::index))
        .route("/images/{digest}", get(web::image))
        .route("/certificates", get(web::certificates))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::require_read_token,
        ));
    Router::new()
        .route("/hooks/distribution", post(distribution_hook))
        .route("/hooks/dockerhub/{secret}", post(dockerhub_hook))
        .route("/hooks/github", post(github_hook))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(read)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .with_state(state)
}

/// Whether a request declares a body over `MAX_BODY` in its `Content-Length`.
fn declared_too_large(headers: &HeaderMap) -> bool {
    header_text(headers, "content-length")
        .and_then(|length| length.trim().parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY as u64)
}

/// Answers 413 at once to a request that declares a body over the limit. `DefaultBodyLimit`
/// alone only counts bytes as they arrive, so a client declaring 10 GiB and sending nothing
/// would hold the request open for ever.
async fn refuse_declared_oversize(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if declared_too_large(request.headers()) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            axum::Json(serde_json::json!({
                "error": format!("the body is larger than the {MAX_BODY} byte limit")
            })),
        )
            .into_response();
    }
    next.run(request).await
}

/// Serves `listener` until SIGTERM or Ctrl-C, with `config.workers` scan workers.
pub async fn run(state: Arc<App>, listener: tokio::net::TcpListener) -> Result<(), Error> {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..state.config.workers)
        .map(|_| tokio::spawn(worker::run(state.clone(), stopping.clone())))
        .collect();
    let mut server_stopping = stopping.clone();
    let server = axum::serve(listener, app(state.clone())).with_graceful_shutdown(async move {
        let _ = server_stopping.wait_for(|stop| *stop).await;
    });
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: no new requests; running scans get the grace period");
        let _ = stop.send(true);
    });
    let served = server.await;
    for worker in workers {
        let _ = worker.await;
    }
    served.map_err(Error::Serve)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
}

/// An error answer: 4xx with its message, 500 with a generic one (the detail is logged).
#[derive(Debug)]
pub enum AppError {
    BadRequest(String),
    Unauthorized,
    Forbidden(String),
    NotFound,
    BadGateway(String),
    TooLarge,
    Timeout,
    Store(store::Error),
}

impl From<store::Error> for AppError {
    fn from(error: store::Error) -> Self {
        Self::Store(error)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "missing or wrong webhook secret".into(),
            ),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            Self::NotFound => (StatusCode::NOT_FOUND, "not found".into()),
            Self::BadGateway(message) => (StatusCode::BAD_GATEWAY, message),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than the {MAX_BODY} byte limit"),
            ),
            Self::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} seconds",
                    BODY_TIMEOUT.as_secs()
                ),
            ),
            Self::Store(error) => {
                tracing::error!(error = %error_chain(&error), "store error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error (see the service log)".into(),
                )
            }
        };
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// Reads a webhook body: at most `MAX_BODY` bytes, all within `BODY_TIMEOUT`.
async fn read_body(body: axum::body::Body) -> Result<Bytes, AppError> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        // `to_bytes` fails on the length limit or on a broken connection; either way the
        // delivery is unusable, and a too-long body is the only one a client can fix.
        Ok(Err(_)) => Err(AppError::TooLarge),
        Err(_) => Err(AppError::Timeout),
    }
}

/// An error and its causes on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Checks pushed images against the allowlist (all or nothing), then enqueues them.
async fn enqueue(
    state: &App,
    source: &'static str,
    pushed: Vec<(hooks::Pushed, String)>,
    callback_url: Option<String>,
) -> Result<Response, AppError> {
    for (image, _) in &pushed {
        if state
            .config
            .allowed(&image.registry, &image.repository)
            .is_none()
        {
            state.metrics.delivery(source, Delivery::Forbidden);
            return Err(AppError::Forbidden(format!(
                "`{}/{}` is not in the registry allowlist",
                image.registry, image.repository
            )));
        }
    }
    let now = now_ms();
    let (mut accepted, mut duplicates) = (Vec::new(), 0);
    for (image, digest) in pushed {
        let job = NewJob {
            registry: image.registry,
            repository: image.repository,
            digest,
            tag: image.tag,
            source: source.into(),
            callback_url: callback_url.clone(),
        };
        match state.store.enqueue(&job, now).await {
            Ok(Enqueued::New(_)) => {
                state.wake.notify_one();
                accepted.push(job.digest);
            }
            Ok(Enqueued::Duplicate(_)) => duplicates += 1,
            Err(error) => {
                state.metrics.delivery(source, Delivery::Error);
                return Err(error.into());
            }
        }
    }
    let outcome = if accepted.is_empty() {
        Delivery::Duplicate
    } else {
        Delivery::Accepted
    };
    state.metrics.delivery(source, outcome);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "queued": accepted, "duplicates": duplicates })),
    )
        .into_response())
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn ignored(state: &App, source: &'static str, why: &str) -> Response {
    state.metrics.delivery(source, Delivery::Ignored);
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "ignored": why })),
    )
        .into_response()
}

async fn distribution_hook(
    State(state): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, AppError> {
    const SOURCE: &str = "distribution";
    let Some(hook) = &state.config.hooks.distribution else {
        return Err(AppError::NotFound);
    };
    let token = hooks::bearer(header_text(&headers, "authorization"));
    if !token.is_some_and(|t| hook.secret.matches(t.as_bytes())) {
        state.metrics.delivery(SOURCE, Delivery::Unauthorized);
        return Err(AppError::Unauthorized);
    }
    // The secret is checked first: a stranger's body is never read.
    let body = read_body(body).await?;
    let (pushed, _) = hooks::registry_events(&body).map_err(|e| {
        state.metrics.delivery(SOURCE, Delivery::Invalid);
        AppError::BadRequest(error_chain(&e))
    })?;
    if pushed.is_empty() {
        return Ok(ignored(&state, SOURCE, "no manifest push in the events"));
    }
    let pushed = pushed
        .into_iter()
        .filter_map(|mut image| {
            if let Some(registry) = &hook.registry {
                image.registry.clone_from(registry);
            }
            let digest = image.digest.clone()?;
            Some((image, digest))
        })
        .collect();
    enqueue(&state, SOURCE, pushed, None).await
}

/// Resolves a tag to a digest with `HEAD`, on an allowlisted registry only.
async fn resolve(
    state: &App,
    source: &'static str,
    image: &hooks::Pushed,
) -> Result<String, AppError> {
    if let Some(digest) = &image.digest {
        return Ok(digest.clone());
    }
    let Some(allowed) = state.config.allowed(&image.registry, &image.repository) else {
        state.metrics.delivery(source, Delivery::Forbidden);
        return Err(AppError::Forbidden(format!(
            "`{}/{}` is not in the registry allowlist",
            image.registry, image.repository
        )));
    };
    let tag = image.tag.as_deref().unwrap_or("latest");
    let digest = async {
        let client = state.client(allowed)?;
        tokio::time::timeout(
            Duration::from_secs(20),
            client.manifest_digest(&image.repository, tag),
        )
        .await
        .unwrap_or_else(|_| {
            Err(registry::Error::Timeout {
                registry: image.registry.clone(),
                what: format!("resolving `{}:{tag}`", image.repository),
                seconds: 20,
            })
        })
    }
    .await;
    digest.map_err(|error| {
        state.metrics.delivery(source, Delivery::Unresolved);
        AppError::BadGateway(format!("cannot resolve the tag: {}", error_chain(&error)))
    })
}

async fn dockerhub_hook(
    State(state): State<Arc<App>>,
    Path(secret): Path<String>,
    body: axum::body::Body,
) -> Result<Response, AppError> {
    const SOURCE: &str = "dockerhub";
    let Some(hook) = &state.config.hooks.dockerhub else {
        return Err(AppError::NotFound);
    };
    if !hook.secret.matches(secret.as_bytes()) {
        state.metrics.delivery(SOURCE, Delivery::Unauthorized);
        return Err(AppError::Unauthorized);
    }
    let body = read_body(body).await?;
    let mut image = hooks::dockerhub_event(&body).map_err(|e| {
        state.metrics.delivery(SOURCE, Delivery::Invalid);
        AppError::BadRequest(error_chain(&e))
    })?;
    if let Some(registry) = &hook.registry {
        image.registry.clone_from(registry);
    }
    let callback = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("callback_url")?.as_str().map(str::to_string))
        .filter(|url| worker::callback_allowed(url, &hook.callback_hosts));
    let digest = resolve(&state, SOURCE, &image).await?;
    enqueue(&state, SOURCE, vec![(image, digest)], callback).await
}

async fn github_hook(
    State(state): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, AppError> {
    const SOURCE: &str = "github";
    let Some(hook) = &state.config.hooks.github else {
        return Err(AppError::NotFound);
    };
    // The HMAC covers the body, so this one is read before the check (bounded all the same).
    let body = read_body(body).await?;
    let signature = header_text(&headers, "x-hub-signature-256");
    if !hooks::github_signature_valid(hook.secret.expose(), &body, signature) {
        state.metrics.delivery(SOURCE, Delivery::Unauthorized);
        return Err(AppError::Unauthorized);
    }
    let event = header_text(&headers, "x-github-event").unwrap_or_default();
    let image = hooks::github_event(event, &body).map_err(|e| {
        state.metrics.delivery(SOURCE, Delivery::Invalid);
        AppError::BadRequest(error_chain(&e))
    })?;
    let Some(mut image) = image else {
        return Ok(ignored(&state, SOURCE, "not a container package push"));
    };
    if let Some(registry) = &hook.registry {
        image.registry.clone_from(registry);
    }
    let digest = resolve(&state, SOURCE, &image).await?;
    enqueue(&state, SOURCE, vec![(image, digest)], None).await
}

/// Query string of the list endpoints and pages.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Search text.
    #[serde(default)]
    pub q: String,
    /// 1-based page.
    pub page: Option<u32>,
    pub per_page: Option<u32>,
    /// `/api/findings`: at or above this severity.
    pub severity: Option<String>,
    pub repository: Option<String>,
    pub rule: Option<String>,
    /// `/api/certificates`: `30d`, `12h` or seconds.
    pub expiring_within: Option<String>,
    /// `/api/jobs`: only this digest.
    pub digest: Option<String>,
}

impl ListQuery {
    /// (limit, offset) for the page.
    pub fn window(&self, default: u32) -> (u32, u32) {
        let limit = self.per_page.unwrap_or(default).clamp(1, 500);
        let page = self.page.unwrap_or(1).max(1);
        (limit, (page - 1).saturating_mul(limit))
    }

    fn severity(&self) -> Result<Option<crate::finding::Severity>, AppError> {
        use crate::finding::Severity;
        self.severity
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|text| {
                Severity::ALL_DESCENDING
                    .into_iter()
                    .find(|s| s.as_str() == text)
                    .ok_or_else(|| {
                        AppError::BadRequest(format!(
                            "`severity={text}` is not one of critical, high, medium, low, info"
                        ))
                    })
            })
            .transpose()
    }

    /// The `expiring_within` window as an instant (Unix seconds).
    pub fn expiring_before(&self) -> Result<Option<i64>, AppError> {
        let Some(text) = self.expiring_within.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let (number, unit) = match text.char_indices().last() {
            Some((at, 'd')) => (&text[..at], 86_400),
            Some((at, 'h')) => (&text[..at], 3_600),
            Some((at, 's')) => (&text[..at], 1),
            _ => (text, 1),
        };
        let amount: i64 = number.parse().map_err(|_| {
            AppError::BadRequest(format!(
                "`expiring_within={text}` is not a duration such as 30d, 12h or 3600"
            ))
        })?;
        Ok(Some(now_ms() / 1000 + amount.saturating_mul(unit)))
    }
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}

async fn api_images(
    State(state): State<Arc<App>>,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let (limit, offset) = query.window(50);
    let images = state
        .store
        .images(&store::ImageQuery {
            text: query.q.clone(),
            limit,
            offset,
        })
        .await?;
    Ok(json(&images))
}

async fn api_image(
    State(state): State<Arc<App>>,
    Path(digest): Path<String>,
) -> Result<Response, AppError> {
    let Some((job, report)) = state.store.report(&digest).await? else {
        return Err(AppError::NotFound);
    };
    Ok(match report {
        Some(report) => ([(header::CONTENT_TYPE, "application/json")], report).into_response(),
        None => {
            let status = if job.state == store::State::Failed {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::ACCEPTED
            };
            (status, axum::Json(job)).into_response()
        }
    })
}

async fn api_findings(
    State(state): State<Arc<App>>,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let (limit, offset) = query.window(100);
    let findings = state
        .store
        .findings(&store::FindingQuery {
            text: query.q.clone(),
            rule: query.rule.clone().filter(|r| !r.is_empty()),
            repository: query.repository.clone().filter(|r| !r.is_empty()),
            min_severity: query.severity()?,
            limit,
            offset,
        })
        .await?;
    Ok(json(&findings))
}

async fn api_certificates(
    State(state): State<Arc<App>>,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let (limit, offset) = query.window(100);
    let certificates = state
        .store
        .certificates(&store::CertificateQuery {
            text: query.q.clone(),
            expiring_before: query.expiring_before()?,
            limit,
            offset,
        })
        .await?;
    Ok(json(&certificates))
}

async fn api_jobs(
    State(state): State<Arc<App>>,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let (limit, _) = query.window(100);
    Ok(json(
        &state.store.jobs(query.digest.as_deref(), limit).await?,
    ))
}

async fn metrics(State(state): State<Arc<App>>) -> Result<Response, AppError> {
    let counts = state.store.counts().await?;
    let mut jobs = Vec::new();
    for kind in [store::Kind::Scan, store::Kind::Notify] {
        for job_state in store::State::ALL {
            let count = counts
                .iter()
                .find(|(k, s, _)| *k == kind && *s == job_state)
                .map_or(0, |(_, _, n)| *n);
            jobs.push((
                kind.as_str().to_string(),
                job_state.as_str().to_string(),
                count,
            ));
        }
    }
    let findings = state.store.severity_counts().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&jobs, &findings),
    )
        .into_response())
}

async fn readyz(State(state): State<Arc<App>>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_lengths_over_the_limit_are_refused_up_front() {
        let with = |length: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_LENGTH, length.parse().unwrap());
            declared_too_large(&headers)
        };
        assert!(with("10737418240"));
        assert!(with(&(MAX_BODY + 1).to_string()));
        assert!(!with(&MAX_BODY.to_string()));
        assert!(!with("0"));
        assert!(!with("not a number"));
        assert!(!declared_too_large(&HeaderMap::new()));
    }
}
