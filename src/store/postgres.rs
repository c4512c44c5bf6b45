//! The PostgreSQL store: one queue shared by any number of `ocicert serve` processes.
//!
//! A claim is a single `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)`, so two
//! processes never take the same job and never wait on each other's locks. The schema is created
//! at start-up under an advisory lock, so processes starting together do not race. No TLS to
//! the database (`NoTls`): run it on a private network or a Unix socket.

use super::{
    CertificateQuery, CertificateRow, Enqueued, Error, FindingQuery, FindingRow, ImageFinding,
    ImageQuery, ImageRef, ImageRow, Job, Kind, NewJob, Retry, ScanResult, State, like_pattern,
    sqlite::rank,
};
use deadpool_postgres::{Manager, Pool};
use tokio_postgres::{NoTls, Row};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tag TEXT,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    callback_url TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (kind, registry, repository, digest)
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, not_before);
CREATE INDEX IF NOT EXISTS jobs_digest ON jobs (digest);
CREATE TABLE IF NOT EXISTS reports (
    job_id BIGINT PRIMARY KEY REFERENCES jobs (id),
    scanned_at BIGINT NOT NULL,
    highest_severity TEXT,
    findings BIGINT NOT NULL,
    certificates BIGINT NOT NULL,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    rank BIGINT NOT NULL,
    message TEXT NOT NULL,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    in_final_image BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_job ON findings (job_id);
CREATE TABLE IF NOT EXISTS certificates (
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    fingerprint TEXT NOT NULL,
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    not_after TEXT NOT NULL,
    not_after_unix BIGINT NOT NULL,
    is_ca BOOLEAN NOT NULL,
    self_signed BOOLEAN NOT NULL,
    trust_anchor BOOLEAN NOT NULL,
    key_algorithm TEXT NOT NULL,
    paths TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_job ON certificates (job_id);
CREATE INDEX IF NOT EXISTS certificates_fingerprint ON certificates (fingerprint);
";

/// An arbitrary constant naming ocicert's schema lock.
const SCHEMA_LOCK: i64 = 0x006f_6369_6365_7274;

const JOB_COLUMNS: &str = "id, kind, registry, repository, digest, tag, source, state, attempts, \
                           last_error, created_at, updated_at, callback_url";

/// A pool of connections to one database.
pub struct Postgres {
    pool: Pool,
}

fn job(row: &Row) -> Job {
    Job {
        id: row.get(0),
        kind: Kind::parse(row.get(1)),
        registry: row.get(2),
        repository: row.get(3),
        digest: row.get(4),
        tag: row.get(5),
        source: row.get(6),
        state: State::parse(row.get(7)),
        attempts: u32::try_from(row.get::<_, i32>(8)).unwrap_or(0),
        last_error: row.get(9),
        created_at: row.get(10),
        updated_at: row.get(11),
        callback_url: row.get(12),
    }
}

fn finding(row: &Row, at: usize) -> FindingRow {
    FindingRow {
        rule: row.get(at),
        severity: row.get(at + 1),
        message: row.get(at + 2),
        path: row.get(at + 3),
        fingerprint: row.get(at + 4),
        in_final_image: row.get(at + 5),
    }
}

impl Postgres {
    /// Connects to `url` (`postgres://user@host:port/db`) and creates the schema if needed.
    pub async fn connect(url: &str, connections: usize) -> Result<Self, Error> {
        let config: tokio_postgres::Config = url.parse().map_err(Error::PostgresConfig)?;
        let manager = Manager::new(config, NoTls);
        let pool = Pool::builder(manager)
            .max_size(connections.max(2))
            .build()
            .map_err(|e| Error::PoolSetup(e.to_string()))?;
        let client = pool.get().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        let created = client.batch_execute(SCHEMA).await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&SCHEMA_LOCK])
            .await?;
        created?;
        Ok(Self { pool })
    }

    pub(super) async fn enqueue(&self, new: &NewJob, now: i64) -> Result<Enqueued, Error> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "INSERT INTO jobs (kind, registry, repository, digest, tag, source, callback_url, \
                 state, not_before, created_at, updated_at) VALUES ('scan', $1, $2, $3, $4, $5, \
                 $6, 'queued', $7, $7, $7) ON CONFLICT (kind, registry, repository, digest) \
                 DO NOTHING RETURNING id",
                &[
                    &new.registry,
                    &new.repository,
                    &new.digest,
                    &new.tag,
                    &new.source,
                    &new.callback_url,
                    &now,
                ],
            )
            .await?;
        if let Some(row) = row {
            return Ok(Enqueued::New(row.get(0)));
        }
        let row = client
            .query_one(
                "UPDATE jobs SET tag = coalesce($4, tag) WHERE kind = 'scan' AND registry = $1 \
                 AND repository = $2 AND digest = $3 RETURNING id",
                &[&new.registry, &new.repository, &new.digest, &new.tag],
            )
            .await?;
        Ok(Enqueued::Duplicate(row.get(0)))
    }

    pub(super) async fn requeue_expired(&self, retry: Retry, now: i64) -> Result<u64, Error> {
        let client = self.pool.get().await?;
        let max = i32::try_from(retry.max_attempts).unwrap_or(i32::MAX);
        let failed = client
            .execute(
                "UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_until = NULL, \
                 last_error = 'the worker stopped (lease expired) on every attempt', \
                 updated_at = $1 WHERE state = 'running' AND lease_until < $1 AND attempts >= $2",
                &[&now, &max],
            )
            .await?;
        let requeued = client
            .execute(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
                 not_before = $1, updated_at = $1 WHERE state = 'running' AND lease_until < $1",
                &[&now],
            )
            .await?;
        Ok(failed + requeued)
    }

    pub(super) async fn claim(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<Job>, Error> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, \
                     attempts = attempts + 1, updated_at = $3 WHERE id = (SELECT id FROM jobs \
                     WHERE state = 'queued' AND not_before <= $3 ORDER BY not_before, id \
                     LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {JOB_COLUMNS}"
                ),
                &[&owner, &lease_until, &now],
            )
            .await?;
        Ok(row.as_ref().map(job))
    }

    pub(super) async fn extend(
        &self,
        id: i64,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool, Error> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "UPDATE jobs SET lease_until = $3 WHERE id = $1 AND lease_owner = $2 \
                 AND state = 'running'",
                &[&id, &owner, &lease_until],
            )
            .await?
            == 1)
    }

    pub(super) async fn complete(
        &self,
        id: i64,
        owner: &str,
        result: Option<&ScanResult>,
        now: i64,
    ) -> Result<bool, Error> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let updated = transaction
            .execute(
                "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, \
                 last_error = NULL, updated_at = $3 WHERE id = $1 AND lease_owner = $2 \
                 AND state = 'running'",
                &[&id, &owner, &now],
            )
            .await?;
        if updated == 0 {
            return Ok(false);
        }
        if let Some(result) = result {
            transaction
                .execute(
                    "INSERT INTO reports (job_id, scanned_at, highest_severity, findings, \
                     certificates, report) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &id,
                        &now,
                        &result.highest_severity,
                        &(result.findings.len() as i64),
                        &(result.certificates.len() as i64),
                        &result.report,
                    ],
                )
                .await?;
            let insert = transaction
                .prepare(
                    "INSERT INTO findings (job_id, rule, severity, rank, message, path, \
                     fingerprint, in_final_image) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .await?;
            for f in &result.findings {
                transaction
                    .execute(
                        &insert,
                        &[
                            &id,
                            &f.rule,
                            &f.severity,
                            &rank(&f.severity),
                            &f.message,
                            &f.path,
                            &f.fingerprint,
                            &f.in_final_image,
                        ],
                    )
                    .await?;
            }
            let insert = transaction
                .prepare(
                    "INSERT INTO certificates (job_id, fingerprint, subject, issuer, not_after, \
                     not_after_unix, is_ca, self_signed, trust_anchor, key_algorithm, paths) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .await?;
            for c in &result.certificates {
                transaction
                    .execute(
                        &insert,
                        &[
                            &id,
                            &c.fingerprint,
                            &c.subject,
                            &c.issuer,
                            &c.not_after,
                            &c.not_after_unix,
                            &c.is_ca,
                            &c.self_signed,
                            &c.trust_anchor,
                            &c.key_algorithm,
                            &c.paths,
                        ],
                    )
                    .await?;
            }
            if result.notify {
                transaction
                    .execute(
                        "INSERT INTO jobs (kind, registry, repository, digest, tag, source, \
                         state, not_before, created_at, updated_at) SELECT 'notify', registry, \
                         repository, digest, tag, source, 'queued', $2, $2, $2 FROM jobs \
                         WHERE id = $1 ON CONFLICT (kind, registry, repository, digest) DO NOTHING",
                        &[&id, &now],
                    )
                    .await?;
            }
        }
        transaction.commit().await?;
        Ok(true)
    }

    pub(super) async fn fail(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<bool, Error> {
        let client = self.pool.get().await?;
        let state = if retry_at.is_some() {
            "queued"
        } else {
            "failed"
        };
        Ok(client
            .execute(
                "UPDATE jobs SET state = $3, lease_owner = NULL, lease_until = NULL, \
                 last_error = $4, not_before = $5, updated_at = $6 WHERE id = $1 \
                 AND lease_owner = $2 AND state = 'running'",
                &[&id, &owner, &state, &error, &retry_at.unwrap_or(now), &now],
            )
            .await?
            == 1)
    }

    pub(super) async fn release(
        &self,
        id: i64,
        owner: &str,
        not_before: i64,
        error: Option<&str>,
    ) -> Result<(), Error> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
                 attempts = GREATEST(attempts - 1, 0), not_before = $3, updated_at = $3, \
                 last_error = coalesce($4, last_error) \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
                &[&id, &owner, &not_before, &error],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn report(
        &self,
        digest: &str,
    ) -> Result<Option<(Job, Option<String>)>, Error> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {JOB_COLUMNS}, (SELECT report FROM reports WHERE job_id = jobs.id) \
                     FROM jobs WHERE kind = 'scan' AND digest = $1 \
                     ORDER BY state = 'done' DESC, updated_at DESC, id DESC LIMIT 1"
                ),
                &[&digest],
            )
            .await?;
        Ok(row.map(|row| (job(&row), row.get(13))))
    }

    pub(super) async fn job_findings(&self, job_id: i64) -> Result<Vec<FindingRow>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT rule, severity, message, path, fingerprint, in_final_image FROM findings \
                 WHERE job_id = $1 ORDER BY rank DESC, rule, path",
                &[&job_id],
            )
            .await?;
        Ok(rows.iter().map(|row| finding(row, 0)).collect())
    }

    pub(super) async fn images(&self, query: &ImageQuery) -> Result<Vec<ImageRow>, Error> {
        let client = self.pool.get().await?;
        let pattern = like_pattern(&query.text);
        let all = query.text.is_empty();
        let rows = client
            .query(
                "SELECT j.registry, j.repository, j.digest, j.tag, j.state, j.attempts, \
                 j.last_error, j.updated_at, r.highest_severity, r.findings, r.certificates, \
                 r.scanned_at FROM jobs j LEFT JOIN reports r ON r.job_id = j.id \
                 WHERE j.kind = 'scan' AND ($1 \
                 OR lower(j.repository) LIKE $2 OR lower(coalesce(j.tag, '')) LIKE $2 \
                 OR j.digest LIKE $2 \
                 OR EXISTS (SELECT 1 FROM findings f WHERE f.job_id = j.id \
                    AND (f.rule LIKE $2 OR lower(f.path) LIKE $2)) \
                 OR EXISTS (SELECT 1 FROM certificates c WHERE c.job_id = j.id \
                    AND (lower(c.subject) LIKE $2 OR c.fingerprint LIKE $2))) \
                 ORDER BY j.updated_at DESC, j.id DESC LIMIT $3 OFFSET $4",
                &[
                    &all,
                    &pattern,
                    &i64::from(query.limit),
                    &i64::from(query.offset),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| ImageRow {
                registry: row.get(0),
                repository: row.get(1),
                digest: row.get(2),
                tag: row.get(3),
                state: State::parse(row.get(4)),
                attempts: u32::try_from(row.get::<_, i32>(5)).unwrap_or(0),
                last_error: row.get(6),
                updated_at: row.get(7),
                highest_severity: row.get(8),
                findings: row.get(9),
                certificates: row.get(10),
                scanned_at: row.get(11),
            })
            .collect())
    }

    pub(super) async fn findings(&self, query: &FindingQuery) -> Result<Vec<ImageFinding>, Error> {
        let client = self.pool.get().await?;
        let pattern = like_pattern(&query.text);
        let all = query.text.is_empty();
        let min_rank = query.min_severity.map_or(0, |s| rank(s.as_str()));
        let rows = client
            .query(
                "SELECT j.registry, j.repository, j.digest, j.tag, f.rule, f.severity, \
                 f.message, f.path, f.fingerprint, f.in_final_image FROM findings f \
                 JOIN jobs j ON j.id = f.job_id \
                 WHERE ($3::TEXT IS NULL OR f.rule = $3) AND ($4::TEXT IS NULL OR j.repository = $4) \
                 AND f.rank >= $5 \
                 AND ($1 OR f.rule LIKE $2 OR lower(f.message) LIKE $2 OR lower(f.path) LIKE $2 \
                    OR lower(j.repository) LIKE $2 OR j.digest LIKE $2) \
                 ORDER BY f.rank DESC, j.repository, j.digest, f.path LIMIT $6 OFFSET $7",
                &[
                    &all,
                    &pattern,
                    &query.rule,
                    &query.repository,
                    &min_rank,
                    &i64::from(query.limit),
                    &i64::from(query.offset),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| ImageFinding {
                registry: row.get(0),
                repository: row.get(1),
                digest: row.get(2),
                tag: row.get(3),
                finding: finding(row, 4),
            })
            .collect())
    }

    pub(super) async fn certificates(
        &self,
        query: &CertificateQuery,
    ) -> Result<Vec<(CertificateRow, ImageRef)>, Error> {
        let client = self.pool.get().await?;
        let pattern = like_pattern(&query.text);
        let rows = client
            .query(
                "SELECT c.fingerprint, c.subject, c.issuer, c.not_after, c.not_after_unix, \
                 c.is_ca, c.self_signed, c.trust_anchor, c.key_algorithm, c.paths, \
                 j.registry, j.repository, j.digest, j.tag FROM certificates c \
                 JOIN jobs j ON j.id = c.job_id WHERE c.fingerprint IN ( \
                    SELECT c2.fingerprint FROM certificates c2 JOIN jobs j2 ON j2.id = c2.job_id \
                    WHERE ($2::BIGINT IS NULL OR c2.not_after_unix < $2) \
                    AND (lower(c2.subject) LIKE $1 OR lower(c2.issuer) LIKE $1 \
                       OR c2.fingerprint LIKE $1 OR lower(j2.repository) LIKE $1) \
                    GROUP BY c2.fingerprint ORDER BY min(c2.not_after_unix), c2.fingerprint \
                    LIMIT $3 OFFSET $4) \
                 ORDER BY c.not_after_unix, c.fingerprint, j.repository, j.digest",
                &[
                    &pattern,
                    &query.expiring_before,
                    &i64::from(query.limit),
                    &i64::from(query.offset),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    CertificateRow {
                        fingerprint: row.get(0),
                        subject: row.get(1),
                        issuer: row.get(2),
                        not_after: row.get(3),
                        not_after_unix: row.get(4),
                        is_ca: row.get(5),
                        self_signed: row.get(6),
                        trust_anchor: row.get(7),
                        key_algorithm: row.get(8),
                        paths: row.get(9),
                    },
                    ImageRef {
                        registry: row.get(10),
                        repository: row.get(11),
                        digest: row.get(12),
                        tag: row.get(13),
                        paths: Vec::new(),
                    },
                )
            })
            .collect())
    }

    pub(super) async fn severity_counts(&self) -> Result<Vec<(String, i64)>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT severity, count(*) FROM findings GROUP BY severity",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    pub(super) async fn jobs(&self, digest: Option<&str>, limit: u32) -> Result<Vec<Job>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE $1::TEXT IS NULL OR digest = $1 \
                     ORDER BY id DESC LIMIT $2"
                ),
                &[&digest, &i64::from(limit)],
            )
            .await?;
        Ok(rows.iter().map(job).collect())
    }

    pub(super) async fn counts(&self) -> Result<Vec<(Kind, State, i64)>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    Kind::parse(row.get(0)),
                    State::parse(row.get(1)),
                    row.get(2),
                )
            })
            .collect())
    }

    pub(super) async fn ping(&self) -> Result<(), Error> {
        let client = self.pool.get().await?;
        client.execute("SELECT 1", &[]).await?;
        Ok(())
    }
}
