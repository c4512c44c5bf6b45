//! Counters of this process and their Prometheus text exposition. Job and finding counts come
//! from the store at scrape time (they are shared by every replica); everything here is
//! per-process. No metrics crate: a handful of atomics and one histogram are enough.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the scan duration histogram buckets.
const BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// What happened to a webhook delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Delivery {
    /// At least one new job.
    Accepted,
    /// Every image in it was known already.
    Duplicate,
    /// Nothing in it to scan (blob events, pulls, pings).
    Ignored,
    /// Wrong or missing secret or signature.
    Unauthorized,
    /// Named only registries or repositories outside the allowlist (answered 200).
    OutsideAllowlist,
    /// Not a payload we understand.
    Invalid,
    /// The tag could not be resolved to a digest.
    Unresolved,
    /// The store failed.
    Error,
}

impl Delivery {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::Unauthorized => "unauthorized",
            Self::OutsideAllowlist => "outside_allowlist",
            Self::Invalid => "invalid",
            Self::Unresolved => "unresolved",
            Self::Error => "error",
        }
    }
}

/// How a job attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attempt {
    Done,
    /// Failed, queued again with backoff.
    Retry,
    /// Failed for good.
    Failed,
    /// Rate-limited by the registry: queued again without counting the attempt.
    RateLimited,
    /// The lease was lost (another process took the job over); the result was dropped.
    LeaseLost,
}

impl Attempt {
    fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retry => "retry",
            Self::Failed => "failed",
            Self::RateLimited => "rate_limited",
            Self::LeaseLost => "lease_lost",
        }
    }
}

/// The process's counters.
#[derive(Default)]
pub struct Metrics {
    deliveries: Mutex<BTreeMap<(&'static str, Delivery), u64>>,
    /// Images named by deliveries that were outside the allowlist, by source.
    outside: Mutex<BTreeMap<&'static str, u64>>,
    attempts: Mutex<BTreeMap<(&'static str, Attempt), u64>>,
    scan_buckets: [AtomicU64; BUCKETS.len()],
    scan_count: AtomicU64,
    scan_micros: AtomicU64,
    /// Client connections closed at once because `max_connections` were open.
    refused_connections: AtomicU64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    if let Ok(mut map) = map.lock() {
        *map.entry(key).or_default() += 1;
    }
}

impl Metrics {
    /// Counts a delivery to the webhook of `source`.
    pub fn delivery(&self, source: &'static str, outcome: Delivery) {
        bump(&self.deliveries, (source, outcome));
    }

    /// Counts images of a delivery to `source` that were outside the allowlist and ignored.
    pub fn outside_allowlist(&self, source: &'static str, images: usize) {
        if images == 0 {
            return;
        }
        if let Ok(mut map) = self.outside.lock() {
            *map.entry(source).or_default() += images as u64;
        }
    }

    /// Counts a client connection closed at the connection limit.
    pub fn refused_connection(&self) {
        self.refused_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a job attempt of `kind`.
    pub fn attempt(&self, kind: &'static str, outcome: Attempt) {
        bump(&self.attempts, (kind, outcome));
    }

    /// Records how long one scan took.
    pub fn scan_duration(&self, seconds: f64) {
        for (bucket, bound) in self.scan_buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.scan_count.fetch_add(1, Ordering::Relaxed);
        self.scan_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of these counters plus the store's `jobs` and
    /// `findings` counts.
    pub fn render(&self, jobs: &[(String, String, i64)], findings: &[(String, i64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP ocicert_build_info The running version.\n# TYPE ocicert_build_info gauge\n\
             ocicert_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out.push_str(
            "# HELP ocicert_webhook_deliveries_total Webhook deliveries by source and outcome.\n\
             # TYPE ocicert_webhook_deliveries_total counter\n",
        );
        if let Ok(deliveries) = self.deliveries.lock() {
            for ((source, outcome), count) in deliveries.iter() {
                let _ = writeln!(
                    out,
                    "ocicert_webhook_deliveries_total{{source=\"{source}\",outcome=\"{}\"}} {count}",
                    outcome.as_str()
                );
            }
        }
        out.push_str(
            "# HELP ocicert_webhook_images_outside_allowlist_total Images named by webhooks that \
             are outside the registry allowlist, answered 200 and ignored.\n\
             # TYPE ocicert_webhook_images_outside_allowlist_total counter\n",
        );
        if let Ok(outside) = self.outside.lock() {
            for (source, count) in outside.iter() {
                let _ = writeln!(
                    out,
                    "ocicert_webhook_images_outside_allowlist_total{{source=\"{source}\"}} {count}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP ocicert_http_connections_refused_total Client connections closed at once \
             because `max_connections` were open.\n\
             # TYPE ocicert_http_connections_refused_total counter\n\
             ocicert_http_connections_refused_total {}",
            self.refused_connections.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP ocicert_job_attempts_total Job attempts of this process by kind and outcome.\n\
             # TYPE ocicert_job_attempts_total counter\n",
        );
        if let Ok(attempts) = self.attempts.lock() {
            for ((kind, outcome), count) in attempts.iter() {
                let _ = writeln!(
                    out,
                    "ocicert_job_attempts_total{{kind=\"{kind}\",outcome=\"{}\"}} {count}",
                    outcome.as_str()
                );
            }
        }
        out.push_str(
            "# HELP ocicert_jobs Jobs in the shared queue by kind and state.\n\
             # TYPE ocicert_jobs gauge\n",
        );
        for (kind, state, count) in jobs {
            let _ = writeln!(
                out,
                "ocicert_jobs{{kind=\"{kind}\",state=\"{state}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP ocicert_findings Stored findings by severity, across all images.\n\
             # TYPE ocicert_findings gauge\n",
        );
        for (severity, count) in findings {
            let _ = writeln!(out, "ocicert_findings{{severity=\"{severity}\"}} {count}");
        }
        out.push_str(
            "# HELP ocicert_scan_duration_seconds Time to scan one image, in this process.\n\
             # TYPE ocicert_scan_duration_seconds histogram\n",
        );
        for (bucket, bound) in self.scan_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "ocicert_scan_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.scan_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "ocicert_scan_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             ocicert_scan_duration_seconds_sum {}\nocicert_scan_duration_seconds_count {count}",
            self.scan_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP ocicert_registry_rate_limit_waits_total Requests that waited because a registry \
             answered 429.\n# TYPE ocicert_registry_rate_limit_waits_total counter\n\
             ocicert_registry_rate_limit_waits_total {}",
            crate::registry::RATE_LIMIT_WAITS.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics.delivery("distribution", Delivery::Accepted);
        metrics.delivery("distribution", Delivery::Accepted);
        metrics.attempt("scan", Attempt::Done);
        metrics.scan_duration(0.3);
        let text = metrics.render(&[("scan".into(), "done".into(), 3)], &[("high".into(), 2)]);
        for line in [
            "ocicert_webhook_deliveries_total{source=\"distribution\",outcome=\"accepted\"} 2",
            "ocicert_job_attempts_total{kind=\"scan\",outcome=\"done\"} 1",
            "ocicert_jobs{kind=\"scan\",state=\"done\"} 3",
            "ocicert_findings{severity=\"high\"} 2",
            "ocicert_scan_duration_seconds_bucket{le=\"0.25\"} 0",
            "ocicert_scan_duration_seconds_bucket{le=\"0.5\"} 1",
            "ocicert_scan_duration_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
