//! The job loop: claim a job, keep its lease alive while it runs, store the outcome.
//!
//! Scan jobs run the caller's `Scanner` on tokio's blocking pool (the engine is synchronous).
//! Notify jobs post a Slack-compatible summary to the configured URL. A failed attempt goes
//! back to the queue with exponential backoff; a registry that keeps answering 429 delays the
//! job without using up an attempt. On shutdown a job gets the grace period, then its lease is
//! handed back so another process (or the next start) picks it up. This module does not parse
//! webhooks or render anything.

use super::metrics::Attempt;
use super::{App, ScanError, hooks, millis, now_ms};
use crate::finding::Severity;
use crate::report::Report;
use crate::store::{Job, Kind, ScanResult};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often an idle worker looks for jobs enqueued by other processes.
const POLL: Duration = Duration::from_millis(500);
/// How long past its budget a scan that does not stop is given before the worker moves on.
const BACKSTOP: Duration = Duration::from_secs(30);
/// How long a rate-limited job waits before its next try.
const RATE_LIMIT_DELAY: Duration = Duration::from_secs(60);

enum Outcome {
    Scanned(Box<Report>),
    Notified,
    Failed(ScanError),
}

/// One worker: claims and runs jobs until `stopping` turns true.
pub async fn run(app: Arc<App>, mut stopping: watch::Receiver<bool>) {
    let lease = millis(app.config.lease);
    while !*stopping.borrow() {
        let now = now_ms();
        if let Err(error) = app.store.requeue_expired(app.retry(), now).await {
            tracing::warn!(error = %super::error_chain(&error), "cannot requeue expired leases");
        }
        match app.store.claim(&app.owner, now, now + lease).await {
            Ok(Some(job)) => process(&app, job, &mut stopping).await,
            Ok(None) => {
                tokio::select! {
                    () = app.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                    _ = stopping.changed() => {}
                }
            }
            Err(error) => {
                tracing::warn!(error = %super::error_chain(&error), "cannot claim a job");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopping.changed() => {}
                }
            }
        }
    }
}

async fn process(app: &Arc<App>, job: Job, stopping: &mut watch::Receiver<bool>) {
    let started = Instant::now();
    tracing::info!(job = job.id, kind = job.kind.as_str(), image = %image(&job), attempt = job.attempts, "job started");
    let heartbeat = async {
        loop {
            tokio::time::sleep(app.config.lease / 3).await;
            let until = now_ms() + millis(app.config.lease);
            match app.store.extend(job.id, &app.owner, until).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job = job.id, "lost the lease; the result will be dropped")
                }
                Err(error) => {
                    tracing::warn!(job = job.id, error = %super::error_chain(&error), "cannot extend the lease")
                }
            }
        }
    };
    let grace = async {
        let _ = stopping.wait_for(|stop| *stop).await;
        tokio::time::sleep(app.config.shutdown_grace).await;
    };
    let outcome = tokio::select! {
        outcome = execute(app, &job) => outcome,
        () = heartbeat => return,
        () = grace => {
            tracing::warn!(job = job.id, "shutting down: handing the job back to the queue");
            if let Err(error) = app.store.release(job.id, &app.owner, now_ms(), None).await {
                tracing::warn!(job = job.id, error = %super::error_chain(&error), "cannot hand the job back; it is requeued when its lease expires");
            }
            return;
        }
    };
    finish(app, &job, outcome, started).await;
}

async fn execute(app: &Arc<App>, job: &Job) -> Outcome {
    match job.kind {
        Kind::Scan => {
            let Some(allowed) = app.config.allowed(&job.registry, &job.repository).cloned() else {
                return Outcome::Failed(ScanError::Failed(
                    "the registry or repository is no longer in the allowlist".into(),
                ));
            };
            let scanner = app.scanner.clone();
            let claimed = job.clone();
            let scan = tokio::task::spawn_blocking(move || scanner(&claimed, &allowed));
            // The scanner stops itself at its deadline; this is the backstop for work that
            // does not check it. The worker moves on (the thread ends when its work does).
            let backstop = app.config.job_timeout + BACKSTOP;
            match tokio::time::timeout(backstop, scan).await {
                Ok(Ok(Ok(report))) => Outcome::Scanned(Box::new(report)),
                Ok(Ok(Err(error))) => Outcome::Failed(error),
                Ok(Err(error)) => {
                    Outcome::Failed(ScanError::Failed(format!("the scan crashed: {error}")))
                }
                Err(_) => Outcome::Failed(ScanError::OutOfBudget(format!(
                    "the scan did not stop within {} s of its {} s job budget (`job_timeout_seconds`)",
                    BACKSTOP.as_secs(),
                    app.config.job_timeout.as_secs()
                ))),
            }
        }
        Kind::Notify => match notify(app, job).await {
            Ok(()) => Outcome::Notified,
            Err(error) => Outcome::Failed(ScanError::Failed(error)),
        },
    }
}

async fn finish(app: &Arc<App>, job: &Job, outcome: Outcome, started: Instant) {
    let kind = job.kind.as_str();
    let now = now_ms();
    let stored = match outcome {
        Outcome::Scanned(report) => {
            app.metrics.scan_duration(started.elapsed().as_secs_f64());
            let notify = app.config.notify.as_ref().is_some_and(|notify| {
                report
                    .summary
                    .highest_severity
                    .is_some_and(|s| s >= notify.threshold)
            });
            let result = match ScanResult::new(&report, notify) {
                Ok(result) => result,
                Err(error) => {
                    tracing::error!(job = job.id, error = %super::error_chain(&error), "cannot store the report");
                    return;
                }
            };
            let stored = app
                .store
                .complete(job.id, &app.owner, Some(&result), now)
                .await;
            if matches!(stored, Ok(true)) {
                tracing::info!(job = job.id, image = %image(job), seconds = started.elapsed().as_secs_f64(), "scan stored");
                if notify {
                    app.wake.notify_one();
                }
                callback(app, job, "success", "scanned");
            }
            stored
        }
        Outcome::Notified => app.store.complete(job.id, &app.owner, None, now).await,
        Outcome::Failed(ScanError::RateLimited(error)) => {
            app.metrics.attempt(kind, Attempt::RateLimited);
            tracing::warn!(job = job.id, image = %image(job), "rate-limited; trying again later");
            let until = now + millis(RATE_LIMIT_DELAY);
            if let Err(error) = app
                .store
                .release(job.id, &app.owner, until, Some(&error))
                .await
            {
                tracing::warn!(job = job.id, error = %super::error_chain(&error), "cannot requeue the job");
            }
            return;
        }
        Outcome::Failed(failure @ (ScanError::Failed(_) | ScanError::OutOfBudget(_))) => {
            let (error, retry_at) = match failure {
                ScanError::OutOfBudget(error) => (error, None),
                ScanError::Failed(error) | ScanError::RateLimited(error) => {
                    let retry_at = app.retry().next_attempt(job.attempts, now);
                    (error, retry_at)
                }
            };
            let outcome = if retry_at.is_some() {
                Attempt::Retry
            } else {
                Attempt::Failed
            };
            tracing::warn!(job = job.id, kind, image = %image(job), attempt = job.attempts, final = retry_at.is_none(), error, "job failed");
            let stored = app
                .store
                .fail(job.id, &app.owner, &error, retry_at, now)
                .await;
            if matches!(stored, Ok(true)) {
                app.metrics.attempt(kind, outcome);
                if retry_at.is_none() {
                    callback(app, job, "failure", &error);
                }
            }
            return;
        }
    };
    match stored {
        Ok(true) => app.metrics.attempt(kind, Attempt::Done),
        Ok(false) => {
            app.metrics.attempt(kind, Attempt::LeaseLost);
            tracing::warn!(
                job = job.id,
                "the lease was lost before completion; the result was dropped"
            );
        }
        Err(error) => {
            tracing::error!(job = job.id, error = %super::error_chain(&error), "cannot complete the job; it is requeued when its lease expires");
        }
    }
}

fn image(job: &Job) -> String {
    format!("{}/{}@{}", job.registry, job.repository, job.digest)
}

/// Whether a Docker Hub `callback_url` may be called: HTTPS (or HTTP for a listed loopback
/// test host) to one of the configured hosts, nothing else.
pub fn callback_allowed(url: &str, hosts: &[String]) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let authority = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let listed = hosts.iter().any(|h| h.eq_ignore_ascii_case(&authority));
    let secure = parsed.scheme() == "https"
        || (parsed.scheme() == "http" && (host == "127.0.0.1" || host == "localhost"));
    listed && secure && parsed.username().is_empty()
}

/// Tells Docker Hub's `callback_url` how the job ended, as Docker Hub documents (best effort;
/// a crash between the job's end and this call loses the callback).
fn callback(app: &Arc<App>, job: &Job, state: &'static str, description: &str) {
    let Some(url) = job.callback_url.clone() else {
        return;
    };
    let mut body = serde_json::json!({
        "state": state,
        "description": description.chars().take(200).collect::<String>(),
        "context": "ocicert",
    });
    if let Some(base) = &app.config.public_url {
        body["target_url"] = format!("{base}/images/{}", job.digest).into();
    }
    let http = app.http.clone();
    tokio::spawn(async move {
        match http.post(&url).json(&body).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => tracing::warn!(
                status = response.status().as_u16(),
                "the Docker Hub callback was refused"
            ),
            Err(error) => tracing::warn!(error = %error, "cannot reach the Docker Hub callback"),
        }
    });
}

/// The notification for a stored report: Slack-compatible (`text`), with the details in
/// `ocicert` for other receivers.
pub fn notification(
    job: &Job,
    report: &Report,
    threshold: Severity,
    public_url: Option<&str>,
) -> serde_json::Value {
    let counts: Vec<String> = Severity::ALL_DESCENDING
        .iter()
        .filter(|s| **s >= threshold)
        .filter_map(|s| {
            let count = report.summary.findings.get(s).copied().unwrap_or(0);
            (count > 0).then(|| format!("{count} {s}"))
        })
        .collect();
    let mut top: Vec<&crate::finding::Finding> = report
        .findings()
        .filter(|f| f.suppressed.is_none() && f.severity >= threshold)
        .collect();
    top.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let link = public_url.map(|base| format!("{base}/images/{}", job.digest));
    let mut text = format!("ocicert: `{}`", image(job));
    if let Some(tag) = &job.tag {
        text.push_str(&format!(" (tag `{tag}`)"));
    }
    text.push_str(&format!(" has {}", counts.join(", ")));
    for finding in top.iter().take(5) {
        text.push_str(&format!(
            "\n• {} `{}` {}",
            finding.severity,
            finding.rule.id(),
            finding.location.display_path()
        ));
    }
    if let Some(link) = &link {
        text.push_str(&format!("\n{link}"));
    }
    serde_json::json!({
        "text": text,
        "ocicert": {
            "registry": job.registry,
            "repository": job.repository,
            "digest": job.digest,
            "tag": job.tag,
            "highest_severity": report.summary.highest_severity,
            "findings": report.summary.findings,
            "url": link,
        },
    })
}

async fn notify(app: &Arc<App>, job: &Job) -> Result<(), String> {
    let Some(config) = &app.config.notify else {
        return Ok(());
    };
    let report = match app.store.report(&job.digest).await {
        Ok(Some((_, Some(report)))) => report,
        Ok(_) => return Err("the report is gone".into()),
        Err(error) => return Err(super::error_chain(&error)),
    };
    let report: Report =
        serde_json::from_str(&report).map_err(|e| format!("stored report: {e}"))?;
    let body = notification(
        job,
        &report,
        config.threshold,
        app.config.public_url.as_deref(),
    );
    let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let mut request = app
        .http
        .post(&config.url)
        .header("content-type", "application/json")
        .header("x-ocicert-delivery", format!("notify-{}", job.id));
    if let Some(secret) = &config.secret {
        request = request.header(
            "x-ocicert-signature-256",
            hooks::sign(secret.expose(), &bytes),
        );
    }
    let response = request
        .body(bytes)
        .send()
        .await
        .map_err(|e| format!("cannot reach the notify URL: {}", super::error_chain(&e)))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "the notify URL answered HTTP {}",
            response.status().as_u16()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_only_go_to_listed_hosts() {
        let hosts = vec![
            "registry.hub.docker.com".to_string(),
            "127.0.0.1:9000".to_string(),
        ];
        assert!(callback_allowed(
            "https://registry.hub.docker.com/u/a/b/hook/x/",
            &hosts
        ));
        assert!(callback_allowed("http://127.0.0.1:9000/cb", &hosts));
        assert!(!callback_allowed(
            "http://registry.hub.docker.com/u/a/b/hook/x/",
            &hosts
        ));
        assert!(!callback_allowed(
            "https://169.254.169.254/latest/meta-data",
            &hosts
        ));
        assert!(!callback_allowed(
            "https://registry.hub.docker.com.evil.example/x",
            &hosts
        ));
        assert!(!callback_allowed(
            "https://user@registry.hub.docker.com/x",
            &hosts
        ));
        assert!(!callback_allowed("not a url", &hosts));
    }
}
