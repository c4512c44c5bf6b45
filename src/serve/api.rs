//! The read side of the service: the JSON API (images, findings, certificates, jobs), the
//! Prometheus metrics and the readiness probe.

use super::*;

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
        let seconds = amount
            .checked_mul(unit)
            .filter(|s| s.abs() <= MAX_EXPIRY_WINDOW_S)
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "`expiring_within={text}` is beyond {} days either way",
                    MAX_EXPIRY_WINDOW_S / 86_400
                ))
            })?;
        Ok(Some(now_ms() / 1000 + seconds))
    }
}

/// The widest `expiring_within` window: 100 years, which covers every certificate's lifetime.
const MAX_EXPIRY_WINDOW_S: i64 = 36_500 * 86_400;

pub(super) fn json<T: serde::Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}

pub(super) async fn api_images(
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

pub(super) async fn api_image(
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

pub(super) async fn api_findings(
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

pub(super) async fn api_certificates(
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

pub(super) async fn api_jobs(
    State(state): State<Arc<App>>,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let (limit, _) = query.window(100);
    Ok(json(
        &state.store.jobs(query.digest.as_deref(), limit).await?,
    ))
}

pub(super) async fn metrics(State(state): State<Arc<App>>) -> Result<Response, AppError> {
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

pub(super) async fn readyz(State(state): State<Arc<App>>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response()
        }
    }
}
