//! What the store does, written once over both databases: each operation is the shared SQL of
//! `sql` run through three primitives (`rows`, `execute`, `transaction`) that each backend
//! implements. Only enqueue (SQLite's group commit) and claim (PostgreSQL's `SKIP LOCKED`)
//! differ per backend, and live there.

use super::sql::{self, Map, Step, Value, params};
use super::{
    CertificateQuery, Enqueued, Error, FindingQuery, FindingRow, ImageFinding, ImageQuery,
    ImageRow, InventoryEntry, Job, Kind, NewJob, Retry, ScanResult, State, Store, group_inventory,
    like_pattern,
};

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            Store::Postgres($store) => $call,
        }
    };
}

/// The rank of a severity name, for ordering (critical highest).
pub fn rank(severity: &str) -> i64 {
    match severity {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

impl Store {
    async fn rows<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Value>,
        map: Map<T>,
    ) -> Result<Vec<T>, Error> {
        dispatch!(self, db => db.rows(sql, params, map).await)
    }

    async fn row<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Value>,
        map: Map<T>,
    ) -> Result<Option<T>, Error> {
        Ok(self.rows(sql, params, map).await?.into_iter().next())
    }

    async fn execute(&self, sql: &'static str, params: Vec<Value>) -> Result<u64, Error> {
        dispatch!(self, db => db.execute(sql, params).await)
    }

    /// The schema version the database is at (the last migration applied).
    pub async fn schema_version(&self) -> Result<Option<i64>, Error> {
        Ok(self
            .row(sql::SCHEMA_VERSION, Vec::new(), |row| row.int(0))
            .await?
            .flatten())
    }

    /// Adds a scan job unless the same (registry, repository, digest) is already known; a new
    /// tag for a known digest is remembered.
    pub async fn enqueue(&self, job: &NewJob, now: i64) -> Result<Enqueued, Error> {
        dispatch!(self, db => db.enqueue(job, now).await)
    }

    /// Requeues running jobs whose lease ran out (their process died or hung), or fails them
    /// when they used up their attempts. Returns how many were requeued or failed.
    pub async fn requeue_expired(&self, retry: Retry, now: i64) -> Result<u64, Error> {
        self.requeue_leases_before(retry, now, now).await
    }

    /// At the start of the only process that can use this store (SQLite: one process holds
    /// it): the jobs still marked running belonged to a process that died, so they are
    /// requeued (or failed, when out of attempts) now instead of when their lease runs out.
    /// On PostgreSQL, whose other replicas may be running those jobs, it does nothing.
    pub async fn requeue_orphans(&self, retry: Retry, now: i64) -> Result<u64, Error> {
        match self {
            Self::Sqlite(_) => self.requeue_leases_before(retry, now, i64::MAX).await,
            Self::Postgres(_) => Ok(0),
        }
    }

    async fn requeue_leases_before(
        &self,
        retry: Retry,
        now: i64,
        cutoff: i64,
    ) -> Result<u64, Error> {
        let failed = self
            .execute(sql::FAIL_EXPIRED, params![now, retry.max_attempts, cutoff])
            .await?;
        let requeued = self
            .execute(sql::REQUEUE_EXPIRED, params![now, cutoff])
            .await?;
        Ok(failed + requeued)
    }

    /// Claims the oldest ready job for `owner` until `lease_until`.
    pub async fn claim(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<Job>, Error> {
        let claim = dispatch!(self, db => db.claim_sql());
        self.row(claim, params![owner, lease_until, now], sql::job)
            .await
    }

    /// Extends a lease; `false` when `owner` no longer holds it.
    pub async fn extend(&self, id: i64, owner: &str, lease_until: i64) -> Result<bool, Error> {
        Ok(self
            .execute(sql::EXTEND, params![id, owner, lease_until])
            .await?
            == 1)
    }

    /// Marks a job done (storing the scan result, if any) when `owner` still holds its lease.
    /// `false` means the lease was lost and nothing was stored.
    pub async fn complete(
        &self,
        id: i64,
        owner: &str,
        result: Option<&ScanResult>,
        now: i64,
    ) -> Result<bool, Error> {
        let step = |sql, params| Step {
            sql,
            params,
            must_change: false,
        };
        let mut steps = vec![Step {
            sql: sql::COMPLETE,
            params: params![id, owner, now],
            must_change: true,
        }];
        if let Some(result) = result {
            let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            steps.push(step(
                sql::INSERT_REPORT,
                params![
                    id,
                    now,
                    result.highest_severity.as_ref(),
                    count(result.findings.len()),
                    count(result.certificates.len()),
                    &result.report
                ],
            ));
            for f in &result.findings {
                steps.push(step(
                    sql::INSERT_FINDING,
                    params![
                        id,
                        &f.rule,
                        &f.severity,
                        rank(&f.severity),
                        &f.message,
                        &f.path,
                        &f.fingerprint,
                        f.in_final_image,
                        f.owner.as_ref()
                    ],
                ));
            }
            for c in &result.certificates {
                steps.push(step(
                    sql::INSERT_CERTIFICATE,
                    params![
                        id,
                        &c.fingerprint,
                        &c.subject,
                        &c.issuer,
                        &c.not_after,
                        c.not_after_unix,
                        c.is_ca,
                        c.self_signed,
                        c.trust_anchor,
                        &c.key_algorithm,
                        &c.paths
                    ],
                ));
            }
            if result.notify {
                steps.push(step(sql::INSERT_NOTIFY, params![id, now]));
            }
        }
        dispatch!(self, db => db.transaction(steps).await)
    }

    /// Records a failed attempt: back to the queue until `retry_at`, or failed for good when
    /// `retry_at` is `None`. `false` when `owner` no longer holds the lease.
    pub async fn fail(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<bool, Error> {
        let state = if retry_at.is_some() {
            State::Queued
        } else {
            State::Failed
        };
        let params = params![
            id,
            owner,
            state.as_str(),
            error,
            retry_at.unwrap_or(now),
            now
        ];
        Ok(self.execute(sql::FAIL, params).await? == 1)
    }

    /// Gives a claimed job back without counting the attempt (shutdown, rate limits): queued
    /// again from `not_before`, with `error` noted when given.
    pub async fn release(
        &self,
        id: i64,
        owner: &str,
        not_before: i64,
        error: Option<&str>,
    ) -> Result<(), Error> {
        self.execute(sql::RELEASE, params![id, owner, not_before, error])
            .await?;
        Ok(())
    }

    /// The latest scan job for `digest` and its report JSON when done.
    pub async fn report(&self, digest: &str) -> Result<Option<(Job, Option<String>)>, Error> {
        self.row(sql::REPORT, params![digest], sql::job_and_report)
            .await
    }

    /// Findings stored for one scan job.
    pub async fn job_findings(&self, job_id: i64) -> Result<Vec<FindingRow>, Error> {
        self.rows(sql::JOB_FINDINGS, params![job_id], sql::finding)
            .await
    }

    /// Images (scan jobs) matching `query`, newest first.
    pub async fn images(&self, query: &ImageQuery) -> Result<Vec<ImageRow>, Error> {
        let params = params![
            query.text.is_empty(),
            like_pattern(&query.text).as_str(),
            query.limit,
            query.offset
        ];
        self.rows(sql::IMAGES, params, sql::image).await
    }

    /// Findings across all scanned images, most severe first.
    pub async fn findings(&self, query: &FindingQuery) -> Result<Vec<ImageFinding>, Error> {
        let params = params![
            query.text.is_empty(),
            like_pattern(&query.text).as_str(),
            query.rule.as_ref(),
            query.repository.as_ref(),
            query.min_severity.map_or(0, |s| rank(s.as_str())),
            query.limit,
            query.offset
        ];
        self.rows(sql::FINDINGS, params, sql::image_finding).await
    }

    /// Distinct certificates across all scanned images, soonest expiry first, each with every
    /// image and path it is in.
    pub async fn certificates(
        &self,
        query: &CertificateQuery,
    ) -> Result<Vec<InventoryEntry>, Error> {
        let params = params![
            like_pattern(&query.text).as_str(),
            query.expiring_before,
            query.limit,
            query.offset
        ];
        let rows = self
            .rows(sql::CERTIFICATES, params, sql::certificate)
            .await?;
        Ok(group_inventory(rows))
    }

    /// Stored findings per severity, across all images.
    pub async fn severity_counts(&self) -> Result<Vec<(String, i64)>, Error> {
        self.rows(sql::SEVERITY_COUNTS, Vec::new(), sql::severity_count)
            .await
    }

    /// Jobs of every kind, newest first; only those for `digest` when given.
    pub async fn jobs(&self, digest: Option<&str>, limit: u32) -> Result<Vec<Job>, Error> {
        self.rows(sql::JOBS, params![digest, limit], sql::job).await
    }

    /// How many jobs are in each (kind, state).
    pub async fn counts(&self) -> Result<Vec<(Kind, State, i64)>, Error> {
        self.rows(sql::STATE_COUNTS, Vec::new(), sql::state_count)
            .await
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        self.rows(sql::PING, Vec::new(), |_| Ok(())).await?;
        Ok(())
    }
}
