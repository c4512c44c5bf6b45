//! The PostgreSQL store: one queue shared by any number of `ocicert serve` processes.
//!
//! A claim is a single `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)`, so two
//! processes never take the same job and never wait on each other's locks. Migrations run at
//! start-up under an advisory lock, so processes starting together do not race. No TLS to the
//! database (`NoTls`): run it on a private network or a Unix socket. The SQL itself is shared
//! with SQLite, in `sql`; here it only gets `$N` placeholders.

use super::sql::{self, Map, Step, Value};
use super::{Enqueued, Error, NewJob};
use bytes::BytesMut;
use deadpool_postgres::{Manager, Pool};
use tokio_postgres::NoTls;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// An arbitrary constant naming ocicert's schema lock.
const SCHEMA_LOCK: i64 = 0x006f_6369_6365_7274;

/// A claim that skips rows another process is claiming instead of waiting for them.
const CLAIM: &str = concat!(
    "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2, \
     attempts = attempts + 1, updated_at = ?3 WHERE id = (SELECT id FROM jobs \
     WHERE state = 'queued' AND not_before <= ?3 ORDER BY not_before, id \
     LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING ",
    sql::job_columns!()
);

/// A pool of connections to one database.
pub struct Postgres {
    pool: Pool,
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// Integers go to whatever width the column has (`attempts` is `INTEGER`, the rest `BIGINT`).
impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Int(value) => match *ty {
                Type::INT2 => i16::try_from(*value)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
                _ => value.to_sql(ty, out),
            },
            Self::Text(text) => text.to_sql(ty, out),
            Self::Bool(value) => value.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::TEXT,
            Type::VARCHAR,
            Type::BOOL,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

impl sql::Row for tokio_postgres::Row {
    fn int(&self, at: usize) -> Result<Option<i64>, Error> {
        let ty = self.columns().get(at).map(|c| c.type_().clone());
        Ok(match ty {
            Some(Type::INT2) => self.try_get::<_, Option<i16>>(at)?.map(i64::from),
            Some(Type::INT4) => self.try_get::<_, Option<i32>>(at)?.map(i64::from),
            _ => self.try_get(at)?,
        })
    }

    fn text(&self, at: usize) -> Result<Option<String>, Error> {
        Ok(self.try_get(at)?)
    }

    fn flag(&self, at: usize) -> Result<bool, Error> {
        Ok(self.try_get(at)?)
    }
}

fn bind(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Postgres {
    /// Connects to `url` (`postgres://user@host:port/db`) and migrates the schema forward.
    pub async fn connect(url: &str, connections: usize) -> Result<Self, Error> {
        let config: tokio_postgres::Config = url.parse().map_err(Error::PostgresConfig)?;
        let manager = Manager::new(config, NoTls);
        let pool = Pool::builder(manager)
            .max_size(connections.max(2))
            .build()
            .map_err(|e| Error::PoolSetup(e.to_string()))?;
        let mut client = pool.get().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        let migrated = migrate(&mut client).await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&SCHEMA_LOCK])
            .await?;
        migrated?;
        Ok(Self { pool })
    }

    pub(super) async fn enqueue(&self, new: &NewJob, now: i64) -> Result<Enqueued, Error> {
        let mut params = sql::enqueue_params(new, now);
        if let Some(id) = self
            .rows(sql::ENQUEUE, params.clone(), sql::id)
            .await?
            .pop()
        {
            return Ok(Enqueued::New(id));
        }
        params.truncate(sql::DUPLICATE_PARAMS);
        let id = self
            .rows(sql::ENQUEUE_DUPLICATE, params, sql::id)
            .await?
            .pop()
            .ok_or(Error::Null { column: 0 })?;
        Ok(Enqueued::Duplicate(id))
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
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&sql::to_postgres(sql)).await?;
        let rows = client.query(&statement, &bind(&params)).await?;
        rows.iter().map(|row| map(row)).collect()
    }

    pub(super) async fn execute(
        &self,
        sql: &'static str,
        params: Vec<Value>,
    ) -> Result<u64, Error> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&sql::to_postgres(sql)).await?;
        Ok(client.execute(&statement, &bind(&params)).await?)
    }

    pub(super) async fn transaction(&self, steps: Vec<Step>) -> Result<bool, Error> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        for step in steps {
            let statement = transaction
                .prepare_cached(&sql::to_postgres(step.sql))
                .await?;
            let changed = transaction.execute(&statement, &bind(&step.params)).await?;
            if step.must_change && changed == 0 {
                return Ok(false);
            }
        }
        transaction.commit().await?;
        Ok(true)
    }
}

/// Applies the migrations the database lacks, each in its own transaction.
async fn migrate(client: &mut deadpool_postgres::Client) -> Result<(), Error> {
    client.batch_execute(sql::SCHEMA_VERSION_TABLE).await?;
    let current: Option<i64> = client
        .query_one(sql::SCHEMA_VERSION, &[])
        .await?
        .try_get(0)?;
    for migration in sql::pending(current)? {
        let apply = async {
            let transaction = client.transaction().await?;
            transaction.batch_execute(migration.postgres).await?;
            transaction
                .execute(
                    &sql::to_postgres(sql::RECORD_VERSION),
                    &[&migration.version],
                )
                .await?;
            transaction.commit().await
        };
        apply.await.map_err(|e| Error::Migration {
            version: migration.version,
            source: Box::new(e.into()),
        })?;
    }
    Ok(())
}
