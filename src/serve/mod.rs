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
//! caller (`Scanner`), so this module holds no scan policy and no `anyhow`. Here: the state, the
//! router, limits and shutdown; `delivery` has the webhook handlers, `api` the read side.

pub mod access;
mod api;
mod delivery;

pub use api::ListQuery;
use api::{api_certificates, api_findings, api_image, api_images, api_jobs, readyz};
use delivery::{SOURCES, deliver, header_text};
pub mod config;
pub mod hooks;
pub mod listen;
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
    /// The scan ran past the job's time budget: it fails for good (another try would too).
    OutOfBudget(String),
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
        .route("/metrics", get(api::metrics))
        .route("/", get(web::index))
        .route("/images/{digest}", get(web::image))
        .route("/certificates", get(web::certificates))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::require_read_token,
        ));
    let mut hooks = Router::new();
    for source in &SOURCES {
        hooks = hooks.route(
            source.route,
            post(
                move |State(state): State<Arc<App>>,
                      params: axum::extract::RawPathParams,
                      headers: HeaderMap,
                      body: axum::body::Body| {
                    deliver(source, state, params, headers, body)
                },
            ),
        );
    }
    hooks
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
    // A job a killed process was running is scanned again now, not when its lease ends.
    match state.store.requeue_orphans(state.retry(), now_ms()).await {
        Ok(0) => {}
        Ok(count) => tracing::warn!(jobs = count, "requeued the jobs of a process that stopped"),
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "cannot requeue the jobs of a process that stopped")
        }
    }
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..state.config.workers)
        .map(|_| tokio::spawn(worker::run(state.clone(), stopping.clone())))
        .collect();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: no new requests; running scans get the grace period");
        let _ = stop.send(true);
    });
    let metrics = state.clone();
    listen::serve(
        listener,
        app(state.clone()),
        state.config.connections,
        stopping,
        state.config.shutdown_grace,
        move || metrics.metrics.refused_connection(),
    )
    .await;
    for worker in workers {
        let _ = worker.await;
    }
    Ok(())
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
