//! The store for several instances: PostgreSQL through a sqlx connection pool. The statements
//! and their binding are the SQLite store's (`sql.rs`); every decision is a single conditional
//! statement (or a transaction that starts with its conditional write), so any number of
//! `once serve` and `once reap` processes on one database stay correct. Under READ COMMITTED a conditional
//! `UPDATE` that waits for a concurrent writer re-checks its `WHERE` on the committed row, which
//! is what makes the claim, the first upload and the request slot exact across instances.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrate;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Row};

use crate::{MetaError, MetaResult};

/// Applied at start-up by every instance; sqlx holds a PostgreSQL advisory lock (keyed by the
/// database name) while it migrates, so instances starting together apply each migration once.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const MAX_CONNECTIONS: u32 = 16;
/// Bounds waiting for a pooled connection, and at start-up waiting for PostgreSQL to accept
/// connections at all (a refused connection is retried until then).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bounds the one direct connection attempt that explains why the pool could not connect.
const DIAGNOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PostgresMetaStore {
    pool: PgPool,
}

impl PostgresMetaStore {
    /// Connects to a `postgres://` or `postgresql://` URL and applies pending migrations.
    pub async fn open(url: &str) -> MetaResult<Self> {
        let pool = connect(url).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// [`open`](Self::open), reporting which migrations this call applied (`once migrate`).
    /// The report is exact even when other instances migrate at the same moment: it is read
    /// under the same advisory lock the migrator takes (session locks are re-entrant).
    pub async fn open_reporting(url: &str) -> MetaResult<(Self, MigrationReport)> {
        let pool = connect(url).await?;
        let before = {
            let mut connection = pool.acquire().await?;
            connection.lock().await?;
            let migrated = async {
                connection.ensure_migrations_table().await?;
                let before = connection.list_applied_migrations().await?;
                MIGRATOR.run_direct(&mut *connection).await?;
                Ok::<_, MetaError>(before)
            }
            .await;
            // Unlock even after a failure; a lost connection releases the lock anyway.
            let unlocked = connection.unlock().await;
            let before = migrated?;
            unlocked?;
            before
        };
        let current = applied_migrations(&pool).await?;
        let applied_now = current
            .iter()
            .filter(|migration| !before.iter().any(|done| done.version == migration.version))
            .cloned()
            .collect();
        Ok((
            Self { pool },
            MigrationReport {
                applied_now,
                current,
            },
        ))
    }

    /// The migrations this build knows, oldest first.
    pub fn known_migrations() -> Vec<MigrationInfo> {
        MIGRATOR
            .iter()
            .map(|migration| MigrationInfo {
                version: migration.version,
                description: migration.description.to_string(),
            })
            .collect()
    }
}

async fn connect(url: &str) -> MetaResult<PgPool> {
    let options = PgConnectOptions::from_str(url)?.application_name("once");
    match PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await
    {
        Ok(pool) => Ok(pool),
        Err(sqlx::Error::PoolTimedOut) => Err(diagnose(&options).await.into()),
        Err(error) => Err(error.into()),
    }
}

/// The migrations recorded in the database, oldest first.
async fn applied_migrations(pool: &PgPool) -> MetaResult<Vec<MigrationInfo>> {
    let rows = sqlx::query(
        "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(MigrationInfo {
                version: row.try_get("version")?,
                description: row.try_get("description")?,
            })
        })
        .collect()
}

/// What `once migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations this call applied (empty when the schema was already current).
    pub applied_now: Vec<MigrationInfo>,
    /// Every migration the database has now, oldest first.
    pub current: Vec<MigrationInfo>,
}

/// One schema migration, as `once migrate` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
}

/// The pool only says "timed out"; one direct attempt says why (refused, bad password, no such
/// database, …).
async fn diagnose(options: &PgConnectOptions) -> sqlx::Error {
    match tokio::time::timeout(DIAGNOSE_TIMEOUT, options.connect()).await {
        Ok(Err(error)) => error,
        Ok(Ok(connection)) => {
            let _ = sqlx::Connection::close(connection).await;
            sqlx::Error::PoolTimedOut
        }
        Err(_) => sqlx::Error::PoolTimedOut,
    }
}

impl PostgresMetaStore {
    /// The readiness probe (see [`MetaStore::ping`]): the probe's write commits.
    async fn ready(&self) -> MetaResult<()> {
        sqlx::query(crate::sql::READINESS_PROBE)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

crate::sql::impl_meta_store!(PostgresMetaStore, sqlx::Postgres, crate::sql::POSTGRES);
crate::outbox::impl_outbox!(
    PostgresMetaStore,
    sqlx::Postgres,
    crate::outbox::POSTGRES_TAKE_DUE
);
crate::evidence::impl_refused_uploads!(PostgresMetaStore);
