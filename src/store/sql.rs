//! The store's SQL, written once for SQLite and PostgreSQL, with the small layer that runs it on
//! either: parameter values, a row trait both drivers implement, the row mappers, and the
//! schema migrations. It does not open connections or run anything itself (`sqlite`,
//! `postgres`), nor decide what a job's life is (`ops`).
//!
//! Why a layer of our own rather than sqlx or sea-query: sqlx 0.9 and sea-query's rusqlite
//! binding both depend on a `libsqlite3-sys` other than rusqlite 0.43's, and two crates that
//! link the native `sqlite3` cannot be in one build; sqlx would also replace the tested
//! group-commit path. What we need is small: `?N` placeholders (rewritten to `$N` for
//! PostgreSQL), four value types, and typed column reads.
//!
//! The dialect both databases accept: `CAST(?N AS TEXT) IS NULL` for optional filters
//! (PostgreSQL must know a parameter's type), `CASE` rather than `MAX`/`GREATEST`, `LIKE … ESCAPE
//! '\'`, and `INSERT … ON CONFLICT DO NOTHING RETURNING`.

use super::{
    CertificateRow, Error, FindingRow, ImageFinding, ImageRef, ImageRow, Job, Kind, State,
};

/// A parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::Text(value.to_string())
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Self::Text(value.clone())
    }
}

impl<T: Into<Self>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

/// Builds a parameter list: `params![a, b]`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::sql::Value::from($value)),*]
    };
}
pub(crate) use params;

/// One column-typed row, as either driver returns it. Integers of any width read as `i64`;
/// SQLite's 0/1 reads as a flag.
pub trait Row {
    fn int(&self, at: usize) -> Result<Option<i64>, Error>;
    fn text(&self, at: usize) -> Result<Option<String>, Error>;
    fn flag(&self, at: usize) -> Result<bool, Error>;
}

/// Maps one row to a value; a plain function, so it can cross to SQLite's blocking thread.
pub type Map<T> = fn(&dyn Row) -> Result<T, Error>;

/// One statement of a transaction. When a `must_change` statement changes no row, the
/// transaction is rolled back and reports `false`.
pub struct Step {
    pub sql: &'static str,
    pub params: Vec<Value>,
    pub must_change: bool,
}

fn need<T>(value: Option<T>, at: usize) -> Result<T, Error> {
    value.ok_or(Error::Null { column: at })
}

fn int(row: &dyn Row, at: usize) -> Result<i64, Error> {
    need(row.int(at)?, at)
}

fn text(row: &dyn Row, at: usize) -> Result<String, Error> {
    need(row.text(at)?, at)
}

fn count(row: &dyn Row, at: usize) -> Result<u32, Error> {
    Ok(u32::try_from(int(row, at)?).unwrap_or(0))
}

/// Rewrites `?N` placeholders to PostgreSQL's `$N`, leaving string literals alone.
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_literal = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => in_literal = !in_literal,
            '?' if !in_literal && chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The columns `job` reads, in order.
macro_rules! job_columns {
    () => {
        "id, kind, registry, repository, digest, tag, source, state, attempts, last_error, \
         created_at, updated_at, callback_url"
    };
}
pub(super) use job_columns;

pub fn job(row: &dyn Row) -> Result<Job, Error> {
    Ok(Job {
        id: int(row, 0)?,
        kind: Kind::parse(&text(row, 1)?),
        registry: text(row, 2)?,
        repository: text(row, 3)?,
        digest: text(row, 4)?,
        tag: row.text(5)?,
        source: text(row, 6)?,
        state: State::parse(&text(row, 7)?),
        attempts: count(row, 8)?,
        last_error: row.text(9)?,
        created_at: int(row, 10)?,
        updated_at: int(row, 11)?,
        callback_url: row.text(12)?,
    })
}

pub fn id(row: &dyn Row) -> Result<i64, Error> {
    int(row, 0)
}

pub fn job_and_report(row: &dyn Row) -> Result<(Job, Option<String>), Error> {
    Ok((job(row)?, row.text(13)?))
}

fn finding_at(row: &dyn Row, at: usize) -> Result<FindingRow, Error> {
    Ok(FindingRow {
        rule: text(row, at)?,
        severity: text(row, at + 1)?,
        message: text(row, at + 2)?,
        path: text(row, at + 3)?,
        fingerprint: text(row, at + 4)?,
        in_final_image: row.flag(at + 5)?,
        owner: row.text(at + 6)?,
    })
}

pub fn finding(row: &dyn Row) -> Result<FindingRow, Error> {
    finding_at(row, 0)
}

pub fn image_finding(row: &dyn Row) -> Result<ImageFinding, Error> {
    Ok(ImageFinding {
        registry: text(row, 0)?,
        repository: text(row, 1)?,
        digest: text(row, 2)?,
        tag: row.text(3)?,
        finding: finding_at(row, 4)?,
    })
}

pub fn image(row: &dyn Row) -> Result<ImageRow, Error> {
    Ok(ImageRow {
        registry: text(row, 0)?,
        repository: text(row, 1)?,
        digest: text(row, 2)?,
        tag: row.text(3)?,
        state: State::parse(&text(row, 4)?),
        attempts: count(row, 5)?,
        last_error: row.text(6)?,
        updated_at: int(row, 7)?,
        highest_severity: row.text(8)?,
        findings: row.int(9)?,
        certificates: row.int(10)?,
        scanned_at: row.int(11)?,
    })
}

pub fn certificate(row: &dyn Row) -> Result<(CertificateRow, ImageRef), Error> {
    Ok((
        CertificateRow {
            fingerprint: text(row, 0)?,
            subject: text(row, 1)?,
            issuer: text(row, 2)?,
            not_after: text(row, 3)?,
            not_after_unix: int(row, 4)?,
            is_ca: row.flag(5)?,
            self_signed: row.flag(6)?,
            trust_anchor: row.flag(7)?,
            key_algorithm: text(row, 8)?,
            paths: text(row, 9)?,
        },
        ImageRef {
            registry: text(row, 10)?,
            repository: text(row, 11)?,
            digest: text(row, 12)?,
            tag: row.text(13)?,
            paths: Vec::new(),
        },
    ))
}

pub fn severity_count(row: &dyn Row) -> Result<(String, i64), Error> {
    Ok((text(row, 0)?, int(row, 1)?))
}

pub fn state_count(row: &dyn Row) -> Result<(Kind, State, i64), Error> {
    Ok((
        Kind::parse(&text(row, 0)?),
        State::parse(&text(row, 1)?),
        int(row, 2)?,
    ))
}

/// One forward step of the schema, as a file per database under `src/store/schema/`.
pub struct Migration {
    pub version: i64,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// Every migration, oldest first. A database records the last one applied in
/// `schema_version`; opening it applies the rest, each in its own transaction.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("schema/001_initial.sqlite.sql"),
        postgres: include_str!("schema/001_initial.postgres.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("schema/002_indexes.sqlite.sql"),
        postgres: include_str!("schema/002_indexes.postgres.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("schema/003_finding_owner.sqlite.sql"),
        postgres: include_str!("schema/003_finding_owner.postgres.sql"),
    },
];

/// Creates the version table when missing (both databases accept it as written).
pub const SCHEMA_VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)";
pub const SCHEMA_VERSION: &str = "SELECT max(version) FROM schema_version";
pub const RECORD_VERSION: &str = "INSERT INTO schema_version (version) VALUES (?1)";

/// The migrations a database at `current` still needs; an error when the database was made by
/// a newer ocicert, which this one must not write to.
pub fn pending(current: Option<i64>) -> Result<&'static [Migration], Error> {
    let current = current.unwrap_or(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        return Err(Error::SchemaTooNew {
            found: current,
            known,
        });
    }
    Ok(&MIGRATIONS[MIGRATIONS.partition_point(|m| m.version <= current)..])
}

pub const ENQUEUE: &str = "INSERT INTO jobs (kind, registry, repository, digest, tag, source, \
     callback_url, state, not_before, created_at, updated_at) VALUES ('scan', ?1, ?2, ?3, ?4, ?5, \
     ?6, 'queued', ?7, ?7, ?7) ON CONFLICT (kind, registry, repository, digest) DO NOTHING \
     RETURNING id";

/// The parameters of `ENQUEUE`, in order; `ENQUEUE_DUPLICATE` takes the first
/// `DUPLICATE_PARAMS` of them.
pub fn enqueue_params(new: &super::NewJob, now: i64) -> Vec<Value> {
    params![
        &new.registry,
        &new.repository,
        &new.digest,
        new.tag.as_ref(),
        &new.source,
        new.callback_url.as_ref(),
        now
    ]
}

pub const DUPLICATE_PARAMS: usize = 4;

/// The image is queued already: remember the newer tag, if any.
pub const ENQUEUE_DUPLICATE: &str = "UPDATE jobs SET tag = coalesce(?4, tag) WHERE kind = 'scan' \
     AND registry = ?1 AND repository = ?2 AND digest = ?3 RETURNING id";

/// Running jobs whose lease ends before ?3 and that used up their attempts fail.
pub const FAIL_EXPIRED: &str = "UPDATE jobs SET state = 'failed', lease_owner = NULL, \
     lease_until = NULL, last_error = 'the worker stopped (lease expired) on every attempt', \
     updated_at = ?1 WHERE state = 'running' AND lease_until < ?3 AND attempts >= ?2";

/// Running jobs whose lease ends before ?2 go back to the queue.
pub const REQUEUE_EXPIRED: &str = "UPDATE jobs SET state = 'queued', lease_owner = NULL, \
     lease_until = NULL, not_before = ?1, updated_at = ?1 WHERE state = 'running' \
     AND lease_until < ?2";

pub const EXTEND: &str = "UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2 \
     AND state = 'running'";

pub const COMPLETE: &str = "UPDATE jobs SET state = 'done', lease_owner = NULL, \
     lease_until = NULL, last_error = NULL, updated_at = ?3 WHERE id = ?1 AND lease_owner = ?2 \
     AND state = 'running'";

pub const INSERT_REPORT: &str = "INSERT INTO reports (job_id, scanned_at, highest_severity, \
     findings, certificates, report) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

pub const INSERT_FINDING: &str = "INSERT INTO findings (job_id, rule, severity, rank, message, \
     path, fingerprint, in_final_image, owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

pub const INSERT_CERTIFICATE: &str = "INSERT INTO certificates (job_id, fingerprint, subject, \
     issuer, not_after, not_after_unix, is_ca, self_signed, trust_anchor, key_algorithm, paths) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

pub const INSERT_NOTIFY: &str = "INSERT INTO jobs (kind, registry, repository, digest, tag, \
     source, state, not_before, created_at, updated_at) SELECT 'notify', registry, repository, \
     digest, tag, source, 'queued', ?2, ?2, ?2 FROM jobs WHERE id = ?1 \
     ON CONFLICT (kind, registry, repository, digest) DO NOTHING";

pub const FAIL: &str = "UPDATE jobs SET state = ?3, lease_owner = NULL, lease_until = NULL, \
     last_error = ?4, not_before = ?5, updated_at = ?6 WHERE id = ?1 AND lease_owner = ?2 \
     AND state = 'running'";

pub const RELEASE: &str = "UPDATE jobs SET state = 'queued', lease_owner = NULL, \
     lease_until = NULL, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
     not_before = ?3, updated_at = ?3, last_error = coalesce(?4, last_error) \
     WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'";

pub const REPORT: &str = concat!(
    "SELECT ",
    job_columns!(),
    ", (SELECT report FROM reports WHERE job_id = jobs.id) FROM jobs WHERE kind = 'scan' \
     AND digest = ?1 ORDER BY state = 'done' DESC, updated_at DESC, id DESC LIMIT 1"
);

pub const JOB_FINDINGS: &str = "SELECT rule, severity, message, path, fingerprint, \
     in_final_image, owner FROM findings WHERE job_id = ?1 ORDER BY rank DESC, rule, path";

pub const IMAGES: &str = "SELECT j.registry, j.repository, j.digest, j.tag, j.state, \
     j.attempts, j.last_error, j.updated_at, r.highest_severity, r.findings, r.certificates, \
     r.scanned_at FROM jobs j LEFT JOIN reports r ON r.job_id = j.id WHERE j.kind = 'scan' AND (?1 \
     OR lower(j.repository) LIKE ?2 ESCAPE '\\' \
     OR lower(coalesce(j.tag, '')) LIKE ?2 ESCAPE '\\' \
     OR j.digest LIKE ?2 ESCAPE '\\' \
     OR EXISTS (SELECT 1 FROM findings f WHERE f.job_id = j.id \
        AND (f.rule LIKE ?2 ESCAPE '\\' OR lower(f.path) LIKE ?2 ESCAPE '\\')) \
     OR EXISTS (SELECT 1 FROM certificates c WHERE c.job_id = j.id \
        AND (lower(c.subject) LIKE ?2 ESCAPE '\\' OR c.fingerprint LIKE ?2 ESCAPE '\\'))) \
     ORDER BY j.updated_at DESC, j.id DESC LIMIT ?3 OFFSET ?4";

pub const FINDINGS: &str = "SELECT j.registry, j.repository, j.digest, j.tag, f.rule, \
     f.severity, f.message, f.path, f.fingerprint, f.in_final_image, f.owner FROM findings f \
     JOIN jobs j ON j.id = f.job_id \
     WHERE (CAST(?3 AS TEXT) IS NULL OR f.rule = ?3) \
     AND (CAST(?4 AS TEXT) IS NULL OR j.repository = ?4) AND f.rank >= ?5 \
     AND (?1 OR f.rule LIKE ?2 ESCAPE '\\' OR lower(f.message) LIKE ?2 ESCAPE '\\' \
        OR lower(f.path) LIKE ?2 ESCAPE '\\' OR lower(j.repository) LIKE ?2 ESCAPE '\\' \
        OR j.digest LIKE ?2 ESCAPE '\\') \
     ORDER BY f.rank DESC, j.repository, j.digest, f.path LIMIT ?6 OFFSET ?7";

/// Certificates (a page of distinct fingerprints, soonest expiry first) with every image that
/// carries each.
pub const CERTIFICATES: &str = "SELECT c.fingerprint, c.subject, c.issuer, c.not_after, \
     c.not_after_unix, c.is_ca, c.self_signed, c.trust_anchor, c.key_algorithm, c.paths, \
     j.registry, j.repository, j.digest, j.tag FROM certificates c \
     JOIN jobs j ON j.id = c.job_id WHERE c.fingerprint IN ( \
        SELECT c2.fingerprint FROM certificates c2 JOIN jobs j2 ON j2.id = c2.job_id \
        WHERE (CAST(?2 AS BIGINT) IS NULL OR c2.not_after_unix < ?2) \
        AND (lower(c2.subject) LIKE ?1 ESCAPE '\\' OR lower(c2.issuer) LIKE ?1 ESCAPE '\\' \
           OR c2.fingerprint LIKE ?1 ESCAPE '\\' OR lower(j2.repository) LIKE ?1 ESCAPE '\\') \
        GROUP BY c2.fingerprint ORDER BY min(c2.not_after_unix), c2.fingerprint \
        LIMIT ?3 OFFSET ?4) \
     ORDER BY c.not_after_unix, c.fingerprint, j.repository, j.digest";

pub const SEVERITY_COUNTS: &str = "SELECT severity, count(*) FROM findings GROUP BY severity";

pub const JOBS: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE CAST(?1 AS TEXT) IS NULL OR digest = ?1 ORDER BY id DESC LIMIT ?2"
);

pub const STATE_COUNTS: &str = "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state";

pub const PING: &str = "SELECT 1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_string_literals() {
        assert_eq!(
            to_postgres("SELECT '?1', ?1 WHERE a = ?12 AND b LIKE ?2 ESCAPE '\\'"),
            "SELECT '?1', $1 WHERE a = $12 AND b LIKE $2 ESCAPE '\\'"
        );
        assert_eq!(
            to_postgres("a ? b"),
            "a ? b",
            "a bare ? is not a placeholder"
        );
    }

    #[test]
    fn migrations_run_forward_from_where_a_database_stands() {
        assert_eq!(pending(None).map(<[_]>::len).ok(), Some(MIGRATIONS.len()));
        assert_eq!(pending(Some(1)).map(|m| m[0].version).ok(), Some(2));
        let latest = MIGRATIONS.len() as i64;
        assert!(pending(Some(latest)).is_ok_and(<[_]>::is_empty));
        let too_new = pending(Some(99)).map(|_| ()).unwrap_err().to_string();
        assert!(too_new.contains("99"), "{too_new}");
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        let expected: Vec<i64> = (1..=MIGRATIONS.len() as i64).collect();
        assert_eq!(versions, expected, "versions count up from 1 without gaps");
    }
}
