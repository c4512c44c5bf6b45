//! The SQLite store: one database file in the data directory, for a single `ocicert serve`
//! process (it holds an exclusive lock on the file to make sure of that).
//!
//! rusqlite is synchronous, so every call runs on tokio's blocking pool behind one mutex. The
//! database runs in WAL mode with `synchronous=FULL`: a webhook answered 202 is on disk, even
//! across a power cut. That costs one fsync per commit (about 500 a second on the disks measured
//! here), so deliveries arriving together share one: `enqueue` is a group commit. A claim is one
//! `UPDATE … RETURNING`, atomic in SQLite. Several processes sharing a queue is PostgreSQL's job,
//! not this module's. The SQL itself is shared with PostgreSQL, in `sql`.

use super::sql::{self, Map, Step, Value};
use super::{Enqueued, Error, NewJob};
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A claim: one statement, atomic because SQLite has one writer.
const CLAIM: &str = concat!(
    "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2, \
     attempts = attempts + 1, updated_at = ?3 WHERE id = (SELECT id FROM jobs \
     WHERE state = 'queued' AND not_before <= ?3 ORDER BY not_before, id LIMIT 1) RETURNING ",
    sql::job_columns!()
);

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
        let params = sql::enqueue_params(new, *now);
        let id = |sql, params: &[Value]| -> rusqlite::Result<Option<i64>> {
            let mut statement = transaction.prepare_cached(sql)?;
            let mut rows = statement.query(rusqlite::params_from_iter(params))?;
            rows.next()?.map(|row| row.get(0)).transpose()
        };
        results.push(match id(sql::ENQUEUE, &params)? {
            Some(id) => Enqueued::New(id),
            None => Enqueued::Duplicate(
                id(sql::ENQUEUE_DUPLICATE, &params[..sql::DUPLICATE_PARAMS])?
                    .ok_or(rusqlite::Error::QueryReturnedNoRows)?,
            ),
        });
    }
    transaction.commit()?;
    Ok(results)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Self::Int(value) => ToSqlOutput::from(*value),
            Self::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Self::Bool(value) => ToSqlOutput::from(*value),
        })
    }
}

impl sql::Row for rusqlite::Row<'_> {
    fn int(&self, at: usize) -> Result<Option<i64>, Error> {
        Ok(self.get(at)?)
    }

    fn text(&self, at: usize) -> Result<Option<String>, Error> {
        Ok(self.get(at)?)
    }

    fn flag(&self, at: usize) -> Result<bool, Error> {
        Ok(self.get(at)?)
    }
}

/// Applies the migrations the database lacks, each in its own transaction.
fn migrate(connection: &mut Connection) -> Result<(), Error> {
    connection.execute(sql::SCHEMA_VERSION_TABLE, [])?;
    let current: Option<i64> = connection.query_row(sql::SCHEMA_VERSION, [], |row| row.get(0))?;
    for migration in sql::pending(current)? {
        let apply = |connection: &mut Connection| -> rusqlite::Result<()> {
            let transaction = connection.transaction()?;
            transaction.execute_batch(migration.sqlite)?;
            transaction.execute(sql::RECORD_VERSION, [migration.version])?;
            transaction.commit()
        };
        apply(connection).map_err(|e| Error::Migration {
            version: migration.version,
            source: Box::new(e.into()),
        })?;
    }
    Ok(())
}

impl Sqlite {
    /// Opens (creating) `ocicert.db` in `dir`, migrating its schema forward.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let io = |source| Error::Open {
            dir: dir.to_path_buf(),
            source,
        };
        // Every report is in here: the directory is 0700 and the files 0600 (SQLite gives its
        // -wal and -shm files the database file's mode).
        crate::private::dir(dir).map_err(io)?;
        let lock_path = dir.join("ocicert.db.lock");
        let lock = crate::private::open(&lock_path).map_err(io)?;
        if lock.try_lock().is_err() {
            return Err(Error::Locked { path: lock_path });
        }
        let database = dir.join("ocicert.db");
        crate::private::open(&database).map_err(io)?;
        for existing in ["ocicert.db-wal", "ocicert.db-shm"] {
            if dir.join(existing).exists() {
                crate::private::file(&dir.join(existing)).map_err(io)?;
            }
        }
        let mut connection = Connection::open(&database)?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut connection)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            batch: Arc::default(),
            _lock: lock,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection usable: SQLite rolls back
            // an unfinished transaction when the `Transaction` is dropped.
            work(&mut lock(&connection))
        })
        .await?
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

    pub(super) fn claim_sql(&self) -> &'static str {
        CLAIM
    }

    pub(super) async fn rows<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Value>,
        map: Map<T>,
    ) -> Result<Vec<T>, Error> {
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(sql)?;
            let mut rows = statement.query(rusqlite::params_from_iter(&params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(map(row)?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn execute(
        &self,
        sql: &'static str,
        params: Vec<Value>,
    ) -> Result<u64, Error> {
        self.run(move |connection| {
            let changed = connection
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(&params))?;
            Ok(changed as u64)
        })
        .await
    }

    pub(super) async fn transaction(&self, steps: Vec<Step>) -> Result<bool, Error> {
        self.run(move |connection| {
            let transaction = connection.transaction()?;
            for step in steps {
                let changed = transaction
                    .prepare_cached(step.sql)?
                    .execute(rusqlite::params_from_iter(&step.params))?;
                if step.must_change && changed == 0 {
                    return Ok(false);
                }
            }
            transaction.commit()?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

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

    #[test]
    fn a_second_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Sqlite::open(dir.path()).unwrap();
        let second = Sqlite::open(dir.path()).map(|_| ()).unwrap_err();
        assert!(matches!(second, Error::Locked { .. }), "{second}");
    }

    #[tokio::test]
    async fn a_database_from_before_schema_versions_is_migrated_and_keeps_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The layout every earlier release created, without a schema_version table.
            let connection = Connection::open(dir.path().join("ocicert.db")).unwrap();
            connection.execute_batch(sql::MIGRATIONS[0].sqlite).unwrap();
            connection
                .execute(
                    "INSERT INTO jobs (kind, registry, repository, digest, source, state, \
                     not_before, created_at, updated_at) VALUES ('scan', 'r', 'old/app', \
                     'sha256:old', 'distribution', 'queued', 1, 1, 1)",
                    [],
                )
                .unwrap();
        }
        let store = Store::Sqlite(Sqlite::open(dir.path()).unwrap());
        let latest = sql::MIGRATIONS.last().map(|m| m.version);
        assert_eq!(store.schema_version().await.unwrap(), latest);
        let jobs = store.jobs(Some("sha256:old"), 10).await.unwrap();
        assert_eq!(jobs.len(), 1, "the old job survives the migration");
        let indexes: i64 = lock(&store_connection(&store))
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' \
                 AND name = 'certificates_expiry'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 1, "migration 2 ran");
    }

    #[test]
    fn a_database_from_a_newer_ocicert_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        {
            let connection = Connection::open(dir.path().join("ocicert.db")).unwrap();
            connection.execute(sql::SCHEMA_VERSION_TABLE, []).unwrap();
            connection.execute(sql::RECORD_VERSION, [99]).unwrap();
        }
        let error = Sqlite::open(dir.path()).map(|_| ()).unwrap_err();
        assert!(
            matches!(error, Error::SchemaTooNew { found: 99, .. }),
            "{error}"
        );
        let connection = Connection::open(dir.path().join("ocicert.db")).unwrap();
        let tables: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'jobs'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "nothing was created in the newer database");
    }

    fn store_connection(store: &Store) -> Arc<Mutex<Connection>> {
        match store {
            Store::Sqlite(db) => db.connection.clone(),
            Store::Postgres(_) => unreachable!("a SQLite store"),
        }
    }
}
