//! The SQLite store: one database file in the data directory, for a single `ocicert serve`
//! process (it holds an exclusive lock on the file to make sure of that).
//!
//! rusqlite is synchronous, so every call runs on tokio's blocking pool behind one mutex. The
//! database runs in WAL mode with `synchronous=FULL`: a webhook answered 202 is on disk, even
//! across a power cut. That costs one fsync per commit (about 500 a second on the disks measured
//! here), so deliveries arriving together share one: `enqueue` is a group commit. A claim is one
//! `UPDATE … RETURNING`, atomic in SQLite. Several processes sharing a queue is PostgreSQL's job,
//! not this module's.

use super::{
    CertificateQuery, CertificateRow, Enqueued, Error, FindingQuery, FindingRow, ImageFinding,
    ImageQuery, ImageRef, ImageRow, Job, Kind, NewJob, Retry, ScanResult, State, like_pattern,
};
use rusqlite::{Connection, OptionalExtension as _, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tag TEXT,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    callback_url TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (kind, registry, repository, digest)
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, not_before);
CREATE INDEX IF NOT EXISTS jobs_digest ON jobs (digest);
CREATE TABLE IF NOT EXISTS reports (
    job_id INTEGER PRIMARY KEY REFERENCES jobs (id),
    scanned_at INTEGER NOT NULL,
    highest_severity TEXT,
    findings INTEGER NOT NULL,
    certificates INTEGER NOT NULL,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    rank INTEGER NOT NULL,
    message TEXT NOT NULL,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    in_final_image INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_job ON findings (job_id);
CREATE TABLE IF NOT EXISTS certificates (
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    fingerprint TEXT NOT NULL,
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    not_after TEXT NOT NULL,
    not_after_unix INTEGER NOT NULL,
    is_ca INTEGER NOT NULL,
    self_signed INTEGER NOT NULL,
    trust_anchor INTEGER NOT NULL,
    key_algorithm TEXT NOT NULL,
    paths TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_job ON certificates (job_id);
CREATE INDEX IF NOT EXISTS certificates_fingerprint ON certificates (fingerprint);
";

const JOB_COLUMNS: &str = "id, kind, registry, repository, digest, tag, source, state, attempts, \
                           last_error, created_at, updated_at, callback_url";

/// A SQLite database file.
pub struct Sqlite {
    connection: Arc<Mutex<Connection>>,
    /// Deliveries waiting for the next group commit.
    batch: Arc<Mutex<Batch>>,
    /// Held open for its exclusive lock: one process per database file.
    _lock: std::fs::File,
}

/// A job waiting to be enqueued, with where to send the outcome.
type Waiting = (
    NewJob,
    i64,
    tokio::sync::oneshot::Sender<Result<Enqueued, Error>>,
);

#[derive(Default)]
struct Batch {
    waiting: Vec<Waiting>,
    /// Whether a flush task is running; it takes every job that arrives until none are left.
    flushing: bool,
}

/// Locks `mutex`, also after a panic elsewhere held it (the data stays usable: see `run`).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Commits waiting jobs, a whole batch per transaction (one fsync), until none are left.
async fn flush(connection: Arc<Mutex<Connection>>, batch: Arc<Mutex<Batch>>) {
    loop {
        let jobs = {
            let mut batch = lock(&batch);
            if batch.waiting.is_empty() {
                batch.flushing = false;
                return;
            }
            std::mem::take(&mut batch.waiting)
        };
        let connection = connection.clone();
        // A panic drops the senders: those callers get `Error::Unconfirmed`, and the loop goes on.
        let _ =
            tokio::task::spawn_blocking(move || commit_group(&mut lock(&connection), jobs)).await;
    }
}

/// Inserts `jobs` in one transaction and answers each. When the transaction fails, each job is
/// retried in a transaction of its own, so one bad job cannot fail the others.
fn commit_group(connection: &mut Connection, jobs: Vec<Waiting>) {
    let all: Vec<(&NewJob, i64)> = jobs.iter().map(|(new, now, _)| (new, *now)).collect();
    match insert_jobs(connection, &all) {
        Ok(results) => {
            for ((_, _, sender), result) in jobs.into_iter().zip(results) {
                let _ = sender.send(Ok(result));
            }
        }
        Err(_) => {
            for (new, now, sender) in jobs {
                let result = insert_jobs(connection, &[(&new, now)])
                    .map(|mut results| results.remove(0))
                    .map_err(Error::from);
                let _ = sender.send(result);
            }
        }
    }
}

/// Inserts each job unless its image is already queued (then records the newer tag), in one
/// transaction; returns one outcome per job, in order.
fn insert_jobs(
    connection: &mut Connection,
    jobs: &[(&NewJob, i64)],
) -> rusqlite::Result<Vec<Enqueued>> {
    let transaction = connection.transaction()?;
    let mut results = Vec::with_capacity(jobs.len());
    for (new, now) in jobs {
        let inserted = transaction.execute(
            "INSERT INTO jobs (kind, registry, repository, digest, tag, source, callback_url, \
             state, not_before, created_at, updated_at) VALUES ('scan', ?1, ?2, ?3, ?4, ?5, \
             ?6, 'queued', ?7, ?7, ?7) ON CONFLICT (kind, registry, repository, digest) \
             DO NOTHING",
            params![
                new.registry,
                new.repository,
                new.digest,
                new.tag,
                new.source,
                new.callback_url,
                now
            ],
        )?;
        let id: i64 = transaction.query_row(
            "SELECT id FROM jobs WHERE kind = 'scan' AND registry = ?1 AND repository = ?2 \
             AND digest = ?3",
            params![new.registry, new.repository, new.digest],
            |row| row.get(0),
        )?;
        if inserted == 0 && new.tag.is_some() {
            transaction.execute(
                "UPDATE jobs SET tag = ?2 WHERE id = ?1 AND tag IS NOT ?2",
                params![id, new.tag],
            )?;
        }
        results.push(if inserted == 1 {
            Enqueued::New(id)
        } else {
            Enqueued::Duplicate(id)
        });
    }
    transaction.commit()?;
    Ok(results)
}

/// The rank of a severity name, for ordering (critical highest).
pub(super) fn rank(severity: &str) -> i64 {
    match severity {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

fn job(row: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: row.get(0)?,
        kind: Kind::parse(&row.get::<_, String>(1)?),
        registry: row.get(2)?,
        repository: row.get(3)?,
        digest: row.get(4)?,
        tag: row.get(5)?,
        source: row.get(6)?,
        state: State::parse(&row.get::<_, String>(7)?),
        attempts: row.get(8)?,
        last_error: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        callback_url: row.get(12)?,
    })
}

fn finding(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<FindingRow> {
    Ok(FindingRow {
        rule: row.get(at)?,
        severity: row.get(at + 1)?,
        message: row.get(at + 2)?,
        path: row.get(at + 3)?,
        fingerprint: row.get(at + 4)?,
        in_final_image: row.get(at + 5)?,
    })
}

impl Sqlite {
    /// Opens (creating) `ocicert.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let io = |source| Error::Open {
            dir: dir.to_path_buf(),
            source,
        };
        fs_err::create_dir_all(dir).map_err(io)?;
        let lock_path = dir.join("ocicert.db.lock");
        let lock = fs_err::File::create(&lock_path).map_err(io)?.into_file();
        if lock.try_lock().is_err() {
            return Err(Error::Locked { path: lock_path });
        }
        let connection = Connection::open(dir.join("ocicert.db"))?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            batch: Arc::default(),
            _lock: lock,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection usable: SQLite rolls back
            // an unfinished transaction when the `Transaction` is dropped.
            work(&mut lock(&connection))
        })
        .await?
        .map_err(Error::from)
    }

    /// Queues a scan of `new`'s image unless it is already queued; the answer comes once the
    /// job is committed to disk, together with whatever other deliveries arrived meanwhile.
    pub(super) async fn enqueue(&self, new: &NewJob, now: i64) -> Result<Enqueued, Error> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let lead = {
            let mut batch = lock(&self.batch);
            batch.waiting.push((new.clone(), now, sender));
            !std::mem::replace(&mut batch.flushing, true)
        };
        if lead {
            // A task of its own: a webhook request dropped half way must not strand the batch.
            tokio::spawn(flush(self.connection.clone(), self.batch.clone()));
        }
        receiver.await.map_err(|_| Error::Unconfirmed)?
    }

    pub(super) async fn requeue_expired(&self, retry: Retry, now: i64) -> Result<u64, Error> {
        self.run(move |connection| {
            let failed = connection.execute(
                "UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_until = NULL, \
                 last_error = 'the worker stopped (lease expired) on every attempt', \
                 updated_at = ?1 WHERE state = 'running' AND lease_until < ?1 AND attempts >= ?2",
                params![now, retry.max_attempts],
            )?;
            let requeued = connection.execute(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
                 not_before = ?1, updated_at = ?1 WHERE state = 'running' AND lease_until < ?1",
                params![now],
            )?;
            Ok((failed + requeued) as u64)
        })
        .await
    }

    pub(super) async fn claim(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<Job>, Error> {
        let owner = owner.to_string();
        self.run(move |connection| {
            connection
                .query_row(
                    &format!(
                        "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2, \
                         attempts = attempts + 1, updated_at = ?3 WHERE id = (SELECT id FROM jobs \
                         WHERE state = 'queued' AND not_before <= ?3 ORDER BY not_before, id \
                         LIMIT 1) RETURNING {JOB_COLUMNS}"
                    ),
                    params![owner, lease_until, now],
                    job,
                )
                .optional()
        })
        .await
    }

    pub(super) async fn extend(
        &self,
        id: i64,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool, Error> {
        let owner = owner.to_string();
        self.run(move |connection| {
            Ok(connection.execute(
                "UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2 \
                 AND state = 'running'",
                params![id, owner, lease_until],
            )? == 1)
        })
        .await
    }

    pub(super) async fn complete(
        &self,
        id: i64,
        owner: &str,
        result: Option<&ScanResult>,
        now: i64,
    ) -> Result<bool, Error> {
        let owner = owner.to_string();
        let result = result.cloned();
        self.run(move |connection| {
            let transaction = connection.transaction()?;
            let updated = transaction.execute(
                "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, \
                 last_error = NULL, updated_at = ?3 WHERE id = ?1 AND lease_owner = ?2 \
                 AND state = 'running'",
                params![id, owner, now],
            )?;
            if updated == 0 {
                return Ok(false);
            }
            if let Some(result) = result {
                transaction.execute(
                    "INSERT INTO reports (job_id, scanned_at, highest_severity, findings, \
                     certificates, report) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id,
                        now,
                        result.highest_severity,
                        result.findings.len() as i64,
                        result.certificates.len() as i64,
                        result.report
                    ],
                )?;
                let mut insert = transaction.prepare(
                    "INSERT INTO findings (job_id, rule, severity, rank, message, path, \
                     fingerprint, in_final_image) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for f in &result.findings {
                    insert.execute(params![
                        id,
                        f.rule,
                        f.severity,
                        rank(&f.severity),
                        f.message,
                        f.path,
                        f.fingerprint,
                        f.in_final_image
                    ])?;
                }
                drop(insert);
                let mut insert = transaction.prepare(
                    "INSERT INTO certificates (job_id, fingerprint, subject, issuer, not_after, \
                     not_after_unix, is_ca, self_signed, trust_anchor, key_algorithm, paths) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for c in &result.certificates {
                    insert.execute(params![
                        id,
                        c.fingerprint,
                        c.subject,
                        c.issuer,
                        c.not_after,
                        c.not_after_unix,
                        c.is_ca,
                        c.self_signed,
                        c.trust_anchor,
                        c.key_algorithm,
                        c.paths
                    ])?;
                }
                drop(insert);
                if result.notify {
                    transaction.execute(
                        "INSERT INTO jobs (kind, registry, repository, digest, tag, source, \
                         state, not_before, created_at, updated_at) SELECT 'notify', registry, \
                         repository, digest, tag, source, 'queued', ?2, ?2, ?2 FROM jobs \
                         WHERE id = ?1 ON CONFLICT (kind, registry, repository, digest) DO NOTHING",
                        params![id, now],
                    )?;
                }
            }
            transaction.commit()?;
            Ok(true)
        })
        .await
    }

    pub(super) async fn fail(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<bool, Error> {
        let owner = owner.to_string();
        let error = error.to_string();
        self.run(move |connection| {
            let state = if retry_at.is_some() {
                "queued"
            } else {
                "failed"
            };
            Ok(connection.execute(
                "UPDATE jobs SET state = ?3, lease_owner = NULL, lease_until = NULL, \
                 last_error = ?4, not_before = ?5, updated_at = ?6 WHERE id = ?1 \
                 AND lease_owner = ?2 AND state = 'running'",
                params![id, owner, state, error, retry_at.unwrap_or(now), now],
            )? == 1)
        })
        .await
    }

    pub(super) async fn release(
        &self,
        id: i64,
        owner: &str,
        not_before: i64,
        error: Option<&str>,
    ) -> Result<(), Error> {
        let owner = owner.to_string();
        let error = error.map(str::to_string);
        self.run(move |connection| {
            connection.execute(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
                 attempts = MAX(attempts - 1, 0), not_before = ?3, updated_at = ?3, \
                 last_error = coalesce(?4, last_error) \
                 WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'",
                params![id, owner, not_before, error],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn report(
        &self,
        digest: &str,
    ) -> Result<Option<(Job, Option<String>)>, Error> {
        let digest = digest.to_string();
        self.run(move |connection| {
            connection
                .query_row(
                    &format!(
                        "SELECT {JOB_COLUMNS}, (SELECT report FROM reports WHERE job_id = jobs.id) \
                         FROM jobs WHERE kind = 'scan' AND digest = ?1 \
                         ORDER BY state = 'done' DESC, updated_at DESC, id DESC LIMIT 1"
                    ),
                    params![digest],
                    |row| Ok((job(row)?, row.get(13)?)),
                )
                .optional()
        })
        .await
    }

    pub(super) async fn job_findings(&self, job_id: i64) -> Result<Vec<FindingRow>, Error> {
        self.run(move |connection| {
            let mut statement = connection.prepare(
                "SELECT rule, severity, message, path, fingerprint, in_final_image FROM findings \
                 WHERE job_id = ?1 ORDER BY rank DESC, rule, path",
            )?;
            statement
                .query_map(params![job_id], |row| finding(row, 0))?
                .collect()
        })
        .await
    }

    pub(super) async fn images(&self, query: &ImageQuery) -> Result<Vec<ImageRow>, Error> {
        let pattern = like_pattern(&query.text);
        let all = query.text.is_empty();
        let (limit, offset) = (query.limit, query.offset);
        self.run(move |connection| {
            let mut statement = connection.prepare(
                "SELECT j.registry, j.repository, j.digest, j.tag, j.state, j.attempts, \
                 j.last_error, j.updated_at, r.highest_severity, r.findings, r.certificates, \
                 r.scanned_at FROM jobs j LEFT JOIN reports r ON r.job_id = j.id \
                 WHERE j.kind = 'scan' AND (?1 \
                 OR lower(j.repository) LIKE ?2 ESCAPE '\\' \
                 OR lower(coalesce(j.tag, '')) LIKE ?2 ESCAPE '\\' \
                 OR j.digest LIKE ?2 ESCAPE '\\' \
                 OR EXISTS (SELECT 1 FROM findings f WHERE f.job_id = j.id \
                    AND (f.rule LIKE ?2 ESCAPE '\\' OR lower(f.path) LIKE ?2 ESCAPE '\\')) \
                 OR EXISTS (SELECT 1 FROM certificates c WHERE c.job_id = j.id \
                    AND (lower(c.subject) LIKE ?2 ESCAPE '\\' OR c.fingerprint LIKE ?2 ESCAPE '\\'))) \
                 ORDER BY j.updated_at DESC, j.id DESC LIMIT ?3 OFFSET ?4",
            )?;
            statement
                .query_map(params![all, pattern, limit, offset], |row| {
                    Ok(ImageRow {
                        registry: row.get(0)?,
                        repository: row.get(1)?,
                        digest: row.get(2)?,
                        tag: row.get(3)?,
                        state: State::parse(&row.get::<_, String>(4)?),
                        attempts: row.get(5)?,
                        last_error: row.get(6)?,
                        updated_at: row.get(7)?,
                        highest_severity: row.get(8)?,
                        findings: row.get(9)?,
                        certificates: row.get(10)?,
                        scanned_at: row.get(11)?,
                    })
                })?
                .collect()
        })
        .await
    }

    pub(super) async fn findings(&self, query: &FindingQuery) -> Result<Vec<ImageFinding>, Error> {
        let pattern = like_pattern(&query.text);
        let all = query.text.is_empty();
        let rule = query.rule.clone();
        let repository = query.repository.clone();
        let min_rank = query.min_severity.map_or(0, |s| rank(s.as_str()));
        let (limit, offset) = (query.limit, query.offset);
        self.run(move |connection| {
            let mut statement = connection.prepare(
                "SELECT j.registry, j.repository, j.digest, j.tag, f.rule, f.severity, \
                 f.message, f.path, f.fingerprint, f.in_final_image FROM findings f \
                 JOIN jobs j ON j.id = f.job_id \
                 WHERE (?3 IS NULL OR f.rule = ?3) AND (?4 IS NULL OR j.repository = ?4) \
                 AND f.rank >= ?5 \
                 AND (?1 OR f.rule LIKE ?2 ESCAPE '\\' OR lower(f.message) LIKE ?2 ESCAPE '\\' \
                    OR lower(f.path) LIKE ?2 ESCAPE '\\' OR lower(j.repository) LIKE ?2 ESCAPE '\\' \
                    OR j.digest LIKE ?2 ESCAPE '\\') \
                 ORDER BY f.rank DESC, j.repository, j.digest, f.path LIMIT ?6 OFFSET ?7",
            )?;
            statement
                .query_map(
                    params![all, pattern, rule, repository, min_rank, limit, offset],
                    |row| {
                        Ok(ImageFinding {
                            registry: row.get(0)?,
                            repository: row.get(1)?,
                            digest: row.get(2)?,
                            tag: row.get(3)?,
                            finding: finding(row, 4)?,
                        })
                    },
                )?
                .collect()
        })
        .await
    }

    pub(super) async fn certificates(
        &self,
        query: &CertificateQuery,
    ) -> Result<Vec<(CertificateRow, ImageRef)>, Error> {
        let pattern = like_pattern(&query.text);
        let before = query.expiring_before;
        let (limit, offset) = (query.limit, query.offset);
        self.run(move |connection| {
            let mut statement = connection.prepare(
                "SELECT c.fingerprint, c.subject, c.issuer, c.not_after, c.not_after_unix, \
                 c.is_ca, c.self_signed, c.trust_anchor, c.key_algorithm, c.paths, \
                 j.registry, j.repository, j.digest, j.tag FROM certificates c \
                 JOIN jobs j ON j.id = c.job_id WHERE c.fingerprint IN ( \
                    SELECT c2.fingerprint FROM certificates c2 JOIN jobs j2 ON j2.id = c2.job_id \
                    WHERE (?2 IS NULL OR c2.not_after_unix < ?2) \
                    AND (lower(c2.subject) LIKE ?1 ESCAPE '\\' OR lower(c2.issuer) LIKE ?1 ESCAPE '\\' \
                       OR c2.fingerprint LIKE ?1 ESCAPE '\\' OR lower(j2.repository) LIKE ?1 ESCAPE '\\') \
                    GROUP BY c2.fingerprint ORDER BY min(c2.not_after_unix), c2.fingerprint \
                    LIMIT ?3 OFFSET ?4) \
                 ORDER BY c.not_after_unix, c.fingerprint, j.repository, j.digest",
            )?;
            statement
                .query_map(params![pattern, before, limit, offset], |row| {
                    Ok((
                        CertificateRow {
                            fingerprint: row.get(0)?,
                            subject: row.get(1)?,
                            issuer: row.get(2)?,
                            not_after: row.get(3)?,
                            not_after_unix: row.get(4)?,
                            is_ca: row.get(5)?,
                            self_signed: row.get(6)?,
                            trust_anchor: row.get(7)?,
                            key_algorithm: row.get(8)?,
                            paths: row.get(9)?,
                        },
                        ImageRef {
                            registry: row.get(10)?,
                            repository: row.get(11)?,
                            digest: row.get(12)?,
                            tag: row.get(13)?,
                            paths: Vec::new(),
                        },
                    ))
                })?
                .collect()
        })
        .await
    }

    pub(super) async fn severity_counts(&self) -> Result<Vec<(String, i64)>, Error> {
        self.run(|connection| {
            let mut statement =
                connection.prepare("SELECT severity, count(*) FROM findings GROUP BY severity")?;
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .await
    }

    pub(super) async fn jobs(&self, digest: Option<&str>, limit: u32) -> Result<Vec<Job>, Error> {
        let digest = digest.map(str::to_string);
        self.run(move |connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE ?1 IS NULL OR digest = ?1 \
                 ORDER BY id DESC LIMIT ?2"
            ))?;
            statement.query_map(params![digest, limit], job)?.collect()
        })
        .await
    }

    pub(super) async fn counts(&self) -> Result<Vec<(Kind, State, i64)>, Error> {
        self.run(|connection| {
            let mut statement = connection
                .prepare("SELECT kind, state, count(*) FROM jobs GROUP BY kind, state")?;
            statement
                .query_map([], |row| {
                    Ok((
                        Kind::parse(&row.get::<_, String>(0)?),
                        State::parse(&row.get::<_, String>(1)?),
                        row.get(2)?,
                    ))
                })?
                .collect()
        })
        .await
    }

    pub(super) async fn ping(&self) -> Result<(), Error> {
        self.run(|connection| connection.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_job(digest: &str, tag: Option<&str>) -> NewJob {
        NewJob {
            registry: "r.example".into(),
            repository: "team/app".into(),
            digest: digest.into(),
            tag: tag.map(str::to_string),
            source: "distribution".into(),
            callback_url: None,
        }
    }

    const RETRY: Retry = Retry {
        max_attempts: 2,
        backoff_ms: 1000,
        max_backoff_ms: 60_000,
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deliveries_arriving_together_share_a_durable_commit_and_each_gets_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Sqlite::open(dir.path()).unwrap());
        let synchronous: i64 = lock(&store.connection)
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(
            synchronous, 2,
            "synchronous=FULL: a 202 survives a power cut"
        );

        // 200 deliveries at once, each image twice: every caller gets its own answer.
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let digest = format!("sha256:{:02}", i % 100);
                    let answer = store.enqueue(&new_job(&digest, None), 10).await.unwrap();
                    (digest, answer)
                })
            })
            .collect();
        let mut new = std::collections::HashMap::new();
        let mut duplicates = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (digest, Enqueued::New(id)) => assert!(new.insert(digest, id).is_none()),
                (digest, Enqueued::Duplicate(id)) => duplicates.push((digest, id)),
            }
        }
        assert_eq!((new.len(), duplicates.len()), (100, 100));
        for (digest, id) in duplicates {
            assert_eq!(
                new[&digest], id,
                "{digest}: the duplicate names the queued job"
            );
        }
        let rows: i64 = lock(&store.connection)
            .query_row("SELECT count(*) FROM jobs", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 100);
        // The batch is drained: a later delivery is answered too.
        let later = store
            .enqueue(&new_job("sha256:zz", None), 11)
            .await
            .unwrap();
        assert!(matches!(later, Enqueued::New(_)), "{later:?}");
    }

    #[tokio::test]
    async fn enqueue_is_idempotent_and_claims_are_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(dir.path()).unwrap();
        let first = store
            .enqueue(&new_job("sha256:a", Some("v1")), 10)
            .await
            .unwrap();
        let again = store
            .enqueue(&new_job("sha256:a", Some("v2")), 11)
            .await
            .unwrap();
        let Enqueued::New(id) = first else {
            panic!("{first:?}")
        };
        assert_eq!(again, Enqueued::Duplicate(id));
        assert!(
            Sqlite::open(dir.path()).is_err(),
            "a second process is refused"
        );

        let job = store.claim("w1", 20, 100).await.unwrap().unwrap();
        assert_eq!(
            (job.id, job.attempts, job.tag.as_deref()),
            (id, 1, Some("v2"))
        );
        assert!(store.claim("w2", 20, 100).await.unwrap().is_none());
        assert!(store.extend(id, "w1", 150).await.unwrap());
        assert!(!store.extend(id, "w2", 150).await.unwrap());

        // The lease runs out: requeued, and the old owner can no longer complete.
        assert_eq!(store.requeue_expired(RETRY, 151).await.unwrap(), 1);
        let again = store.claim("w2", 151, 300).await.unwrap().unwrap();
        assert_eq!(again.attempts, 2);
        assert!(!store.complete(id, "w1", None, 160).await.unwrap());
        assert!(store.complete(id, "w2", None, 160).await.unwrap());
        assert!(!store.complete(id, "w2", None, 161).await.unwrap(), "once");
        let counts = store.counts().await.unwrap();
        assert_eq!(counts, [(Kind::Scan, State::Done, 1)]);
    }

    #[tokio::test]
    async fn failures_back_off_then_fail_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(dir.path()).unwrap();
        store.enqueue(&new_job("sha256:b", None), 0).await.unwrap();
        let job = store.claim("w", 0, 100).await.unwrap().unwrap();
        let retry_at = RETRY.next_attempt(job.attempts, 10);
        assert!(store.fail(job.id, "w", "boom", retry_at, 10).await.unwrap());
        assert!(
            store.claim("w", 500, 600).await.unwrap().is_none(),
            "backing off"
        );
        let job = store.claim("w", 1010, 2000).await.unwrap().unwrap();
        assert_eq!(job.last_error.as_deref(), Some("boom"));
        let retry_at = RETRY.next_attempt(job.attempts, 1020);
        assert_eq!(retry_at, None);
        store
            .fail(job.id, "w", "boom again", retry_at, 1020)
            .await
            .unwrap();
        let (job, report) = store.report("sha256:b").await.unwrap().unwrap();
        assert_eq!((job.state, report), (State::Failed, None));
    }

    #[tokio::test]
    async fn results_are_stored_and_queried() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(dir.path()).unwrap();
        store
            .enqueue(&new_job("sha256:c", Some("v1")), 0)
            .await
            .unwrap();
        let job = store.claim("w", 0, 100).await.unwrap().unwrap();
        let result = ScanResult {
            report: "{}".into(),
            highest_severity: Some("critical".into()),
            findings: vec![FindingRow {
                rule: "private-key".into(),
                severity: "critical".into(),
                message: "a key".into(),
                path: "/etc/Secret.key".into(),
                fingerprint: "sha256:k".into(),
                in_final_image: true,
            }],
            certificates: vec![CertificateRow {
                fingerprint: "sha256:cert".into(),
                subject: "CN=Leaf".into(),
                issuer: "CN=CA".into(),
                not_after: "2030-01-01T00:00:00Z".into(),
                not_after_unix: 1_893_456_000,
                is_ca: false,
                self_signed: false,
                trust_anchor: false,
                key_algorithm: "ec".into(),
                paths: "/etc/leaf.pem".into(),
            }],
            notify: true,
        };
        assert!(store.complete(job.id, "w", Some(&result), 5).await.unwrap());
        let search = |text: &str| ImageQuery {
            text: text.into(),
            limit: 10,
            offset: 0,
        };
        assert_eq!(store.images(&search("secret")).await.unwrap().len(), 1);
        assert_eq!(store.images(&search("cn=leaf")).await.unwrap().len(), 1);
        assert_eq!(store.images(&search("nothing")).await.unwrap().len(), 0);
        let findings = store
            .findings(&FindingQuery {
                min_severity: Some(crate::finding::Severity::High),
                limit: 10,
                ..FindingQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(findings.len(), 1);
        let certificates = |text: &str, expiring_before| CertificateQuery {
            text: text.into(),
            expiring_before,
            limit: 10,
            offset: 0,
        };
        assert_eq!(
            store
                .certificates(&certificates("leaf", None))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .certificates(&certificates("", Some(1_000)))
                .await
                .unwrap()
                .len(),
            0,
            "not expiring before 1970"
        );
        let notify = store.claim("w", 6, 100).await.unwrap().unwrap();
        assert_eq!(
            (notify.kind, notify.digest.as_str()),
            (Kind::Notify, "sha256:c")
        );
    }
}
