//! The embedded default: SQLite in WAL mode through sqlx. Every decision is a single
//! conditional statement (or an immediate transaction), so several processes on one database
//! file (`once serve` and a cron `once reap`) stay correct. The statements and their binding
//! are shared with PostgreSQL (`sql.rs`); this file opens the database and probes readiness.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{MetaError, MetaResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long the readiness probe waits for a write lock held elsewhere (the store's own
/// statements wait up to 30 s).
const PROBE_BUSY_TIMEOUT: Duration = Duration::from_secs(1);

pub struct SqliteMetaStore {
    pool: SqlitePool,
    /// One connection of its own for the readiness probe, with a short busy timeout, so the
    /// probe neither waits behind the store's long one nor takes a connection from its work.
    probe: SqlitePool,
    /// The database file as opened; the probe fails once the path names another file (or
    /// none): the running process would keep writing into a file nobody will open again.
    opened: Option<FileIdentity>,
}

/// A file's device and inode, which change when the file is deleted or replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    path: std::path::PathBuf,
    device: u64,
    inode: u64,
}

impl FileIdentity {
    /// `None` where there is no file to watch (an in-memory database).
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).ok()?;
        Some(Self {
            path: path.to_owned(),
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }

    async fn check(&self) -> MetaResult<()> {
        let path = self.path.clone();
        let now = tokio::task::spawn_blocking(move || Self::of(&path))
            .await
            .map_err(|error| MetaError::NotReady(error.to_string()))?;
        match now {
            Some(now) if now == *self => Ok(()),
            Some(_) => Err(MetaError::NotReady(format!(
                "the database file {} was replaced since it was opened",
                self.path.display()
            ))),
            None => Err(MetaError::NotReady(format!(
                "the database file {} was deleted since it was opened",
                self.path.display()
            ))),
        }
    }
}

fn file_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL in WAL mode survives a process crash; only power loss can drop the last
        // commits, which is the documented trade-off of the embedded store.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
}

fn url_options(url: &str) -> MetaResult<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30)))
}

impl SqliteMetaStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> MetaResult<Self> {
        Self::connect(file_options(path).create_if_missing(true)).await
    }

    /// Opens a database file that must already exist (key administration must not make an
    /// empty store nobody serves from).
    pub async fn open_existing(path: &Path) -> MetaResult<Self> {
        Self::connect_existing(file_options(path)).await
    }

    /// Opens a `sqlite:` URL (`sqlite://path/to/once.db`).
    pub async fn open_url(url: &str) -> MetaResult<Self> {
        Self::connect(url_options(url)?.create_if_missing(true)).await
    }

    /// Opens a `sqlite:` URL whose database must already exist.
    pub async fn open_url_existing(url: &str) -> MetaResult<Self> {
        Self::connect_existing(url_options(url)?).await
    }

    /// SQLite's own refusal is "unable to open database file"; saying which file is missing
    /// is what the person needs. `create_if_missing(false)` still guards the moment between.
    async fn connect_existing(options: SqliteConnectOptions) -> MetaResult<Self> {
        let path = options.get_filename();
        if !path.exists() {
            return Err(MetaError::Missing(path.to_owned()));
        }
        Self::connect(options.create_if_missing(false)).await
    }

    async fn connect(options: SqliteConnectOptions) -> MetaResult<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let opened = FileIdentity::of(options.get_filename());
        let probe = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(crate::READY_TIMEOUT)
            // A deleted database must not come back empty through the probe's connection.
            .connect_lazy_with(
                options
                    .create_if_missing(false)
                    .busy_timeout(PROBE_BUSY_TIMEOUT),
            );
        Ok(Self {
            pool,
            probe,
            opened,
        })
    }
}

impl SqliteMetaStore {
    /// The readiness probe (see [`MetaStore::ping`]): the file is still the one opened, and
    /// the probe's write commits on the probe's own connection.
    async fn ready(&self) -> MetaResult<()> {
        if let Some(opened) = &self.opened {
            opened.check().await?;
        }
        sqlx::query(crate::sql::READINESS_PROBE)
            .execute(&self.probe)
            .await?;
        Ok(())
    }
}

crate::sql::impl_meta_store!(SqliteMetaStore, sqlx::Sqlite, crate::sql::SQLITE);
crate::outbox::impl_outbox!(
    SqliteMetaStore,
    sqlx::Sqlite,
    crate::outbox::SQLITE_TAKE_DUE
);
crate::evidence::impl_refused_uploads!(SqliteMetaStore);
