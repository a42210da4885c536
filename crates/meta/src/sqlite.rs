//! The embedded default: SQLite in WAL mode through sqlx. Every decision is a single
//! conditional statement (or an immediate transaction), so several processes on one database
//! file (`once serve` and a cron `once reap`) stay correct.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use once_domain::{
    BlobKey, Filename, Instant, KeyId, KeyRecord, RequestId, Share, ShareId, ShareState,
    UploadRequest,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::rows::{
    SHARE_COLUMNS, key_from_row, key_record_from_row, reap_candidate_from_row, request_from_row,
    secs, share_from_row, size_param, written_row,
};
use crate::{
    CompletedUpload, FulfilOutcome, MetaError, MetaResult, MetaStore, PublishOutcome,
    ReapCandidate, StoredKey,
};

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

impl SqliteMetaStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> MetaResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode survives a process crash; only power loss can drop the last
            // commits, which is the documented trade-off of the embedded store.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        Self::connect(options).await
    }

    /// Opens a `sqlite:` URL (`sqlite://path/to/once.db`).
    pub async fn open_url(url: &str) -> MetaResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30));
        Self::connect(options).await
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

async fn insert_share_with<'e, E>(executor: E, share: &Share) -> MetaResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query(&format!(
        "INSERT INTO shares ({SHARE_COLUMNS}) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(share.id.as_str())
    .bind(share.owner.as_ref().map(KeyId::as_str))
    .bind(share.filename.as_str())
    .bind(&share.content_type)
    .bind(share.size.map(size_param))
    .bind(share.sha256.map(|digest| digest.0.to_vec()))
    .bind(i64::from(share.max_downloads))
    .bind(i64::from(share.downloads_left))
    .bind(share.state.as_str())
    .bind(secs(share.created_at))
    .bind(secs(share.expires_at))
    .bind(secs(share.upload_expires_at))
    .bind(share.published_at.map(secs))
    .bind(share.lease_until.map(secs))
    .bind(share.blob_key.as_ref().map(BlobKey::as_str))
    .bind(share.request_id.as_ref().map(RequestId::as_str))
    .bind(i64::from(share.upload_attempts))
    .bind(i64::from(share.preview_hits))
    .bind(share.upload_session.as_deref())
    .bind(share.blob_version.as_deref())
    .execute(executor)
    .await?;
    Ok(())
}

#[async_trait]
impl MetaStore for SqliteMetaStore {
    async fn ping(&self) -> MetaResult<()> {
        crate::within_ready_timeout(async {
            if let Some(opened) = &self.opened {
                opened.check().await?;
            }
            sqlx::query(crate::READINESS_PROBE)
                .execute(&self.probe)
                .await?;
            Ok(())
        })
        .await
    }

    async fn insert_key(&self, key: &StoredKey) -> MetaResult<()> {
        let result = sqlx::query(
            "INSERT INTO api_keys (id, name, secret_hash, sealed_secret, created_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(key.record.id.as_str())
        .bind(&key.record.name)
        .bind(&key.secret_hash)
        .bind(&key.sealed_secret)
        .bind(secs(key.record.created_at))
        .bind(key.record.revoked_at.map(secs))
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(MetaError::KeyExists);
        }
        Ok(())
    }

    async fn find_key(&self, id: &KeyId) -> MetaResult<Option<StoredKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(key_from_row)
            .transpose()
    }

    async fn list_keys(&self) -> MetaResult<Vec<KeyRecord>> {
        sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(key_record_from_row)
            .collect()
    }

    async fn revoke_key(&self, id: &KeyId, now: Instant) -> MetaResult<bool> {
        let result =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(secs(now))
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn record_signature(
        &self,
        key: &KeyId,
        signature: &str,
        keep_until: Instant,
    ) -> MetaResult<bool> {
        let result = sqlx::query(
            "INSERT INTO used_signatures (key_id, signature, keep_until) VALUES (?, ?, ?) \
             ON CONFLICT (key_id, signature) DO NOTHING",
        )
        .bind(key.as_str())
        .bind(signature)
        .bind(secs(keep_until))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn insert_share(&self, share: &Share) -> MetaResult<()> {
        insert_share_with(&self.pool, share).await
    }

    async fn get_share(&self, id: &ShareId) -> MetaResult<Option<Share>> {
        sqlx::query(&format!("SELECT {SHARE_COLUMNS} FROM shares WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(share_from_row)
            .transpose()
    }

    async fn count_upload_attempt(&self, id: &ShareId) -> MetaResult<()> {
        sqlx::query("UPDATE shares SET upload_attempts = upload_attempts + 1 WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn count_preview(&self, id: &ShareId) -> MetaResult<()> {
        sqlx::query("UPDATE shares SET preview_hits = preview_hits + 1 WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn publish_share(
        &self,
        id: &ShareId,
        upload: &CompletedUpload,
        now: Instant,
    ) -> MetaResult<PublishOutcome> {
        let published = sqlx::query(&format!(
            "UPDATE shares SET state = 'ready', blob_key = ?, size = ?, sha256 = COALESCE(?, sha256), \
                 published_at = ?, upload_session = NULL, blob_version = ? \
             WHERE id = ? AND state = 'pending' AND upload_expires_at > ? \
             RETURNING {SHARE_COLUMNS}"
        ))
        .bind(upload.blob_key.as_str())
        .bind(size_param(upload.size))
        .bind(upload.sha256.map(|digest| digest.0.to_vec()))
        .bind(secs(now))
        .bind(upload.blob_version.as_deref())
        .bind(id.as_str())
        .bind(secs(upload.started_at))
        .fetch_all(&self.pool)
        .await?;
        if let Some(row) = written_row(published)? {
            return Ok(PublishOutcome::Published(Box::new(share_from_row(&row)?)));
        }
        // Nothing was written; explain why from the current row.
        Ok(match self.get_share(id).await? {
            None => PublishOutcome::NotFound,
            Some(share) if share.state == ShareState::Pending => PublishOutcome::UploadExpired,
            Some(_) => PublishOutcome::SlotUsed,
        })
    }

    async fn claim_share(
        &self,
        id: &ShareId,
        now: Instant,
        lease_until: Instant,
    ) -> MetaResult<Option<Share>> {
        let claimed = sqlx::query(&format!(
            "UPDATE shares SET downloads_left = downloads_left - 1, \
                 lease_until = MAX(COALESCE(lease_until, 0), ?) \
             WHERE id = ? AND state = 'ready' AND downloads_left > 0 AND expires_at > ? \
             RETURNING {SHARE_COLUMNS}"
        ))
        .bind(secs(lease_until))
        .bind(id.as_str())
        .bind(secs(now))
        .fetch_all(&self.pool)
        .await?;
        written_row(claimed)?
            .as_ref()
            .map(share_from_row)
            .transpose()
    }

    async fn revoke_share(&self, id: &ShareId, owner: &KeyId) -> MetaResult<bool> {
        let result = sqlx::query(
            "UPDATE shares SET state = 'revoked' \
             WHERE id = ? AND owner_key = ? AND state IN ('pending', 'ready')",
        )
        .bind(id.as_str())
        .bind(owner.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn insert_request(&self, request: &UploadRequest) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO upload_requests (id, owner_key, filename, max_size, max_downloads, \
                 share_expires_in, created_at, expires_at, share_id, fulfilled_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(request.id.as_str())
        .bind(request.owner.as_str())
        .bind(request.filename.as_ref().map(Filename::as_str))
        .bind(size_param(request.max_size))
        .bind(i64::from(request.max_downloads))
        .bind(size_param(request.share_expires_in.as_secs()))
        .bind(secs(request.created_at))
        .bind(secs(request.expires_at))
        .bind(request.share_id.as_ref().map(ShareId::as_str))
        .bind(request.fulfilled_at.map(secs))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_request(&self, id: &RequestId) -> MetaResult<Option<UploadRequest>> {
        sqlx::query("SELECT * FROM upload_requests WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(request_from_row)
            .transpose()
    }

    async fn list_requests(&self, owner: &KeyId) -> MetaResult<Vec<UploadRequest>> {
        sqlx::query(
            "SELECT * FROM upload_requests WHERE owner_key = ? ORDER BY created_at DESC, id",
        )
        .bind(owner.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(request_from_row)
        .collect()
    }

    async fn fulfil_request(
        &self,
        id: &RequestId,
        share: &Share,
        started_at: Instant,
    ) -> MetaResult<FulfilOutcome> {
        let mut transaction = self.pool.begin().await?;
        // The write comes first so the transaction takes the write lock before reading.
        let claimed = sqlx::query(
            "UPDATE upload_requests SET share_id = ?, fulfilled_at = ? \
             WHERE id = ? AND share_id IS NULL AND expires_at > ?",
        )
        .bind(share.id.as_str())
        .bind(share.published_at.map(secs))
        .bind(id.as_str())
        .bind(secs(started_at))
        .execute(&mut *transaction)
        .await?;
        if claimed.rows_affected() == 1 {
            insert_share_with(&mut *transaction, share).await?;
            transaction.commit().await?;
            return Ok(FulfilOutcome::Fulfilled(Box::new(share.clone())));
        }
        transaction.rollback().await?;
        Ok(match self.get_request(id).await? {
            None => FulfilOutcome::NotFound,
            Some(request) if request.share_id.is_some() => FulfilOutcome::SlotUsed,
            Some(_) => FulfilOutcome::Expired,
        })
    }

    async fn take_reap_batch(
        &self,
        now: Instant,
        abandoned_before: Instant,
        hold_until: Instant,
        limit: u32,
    ) -> MetaResult<Vec<ReapCandidate>> {
        let rows = sqlx::query(
            "UPDATE shares SET reaper_until = ?1 \
             WHERE id IN ( \
                 SELECT id FROM shares \
                 WHERE state != 'gone' AND (reaper_until IS NULL OR reaper_until <= ?2) AND ( \
                     state = 'revoked' \
                     OR (state = 'pending' AND upload_expires_at <= ?4) \
                     OR (state = 'ready' AND downloads_left = 0 AND COALESCE(lease_until, 0) <= ?2) \
                     OR (state = 'ready' AND expires_at <= ?2 AND COALESCE(lease_until, 0) <= ?2)) \
                 LIMIT ?3) \
             RETURNING id, blob_key, upload_session",
        )
        .bind(secs(hold_until))
        .bind(secs(now))
        .bind(i64::from(limit))
        .bind(secs(abandoned_before))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(reap_candidate_from_row).collect()
    }

    async fn mark_gone(&self, id: &ShareId, blob_key: Option<&BlobKey>) -> MetaResult<bool> {
        let result = sqlx::query(
            "UPDATE shares SET state = 'gone', blob_key = NULL, blob_version = NULL, reaper_until = NULL, \
                 upload_session = NULL \
             WHERE id = ? AND state != 'gone' AND blob_key IS ?",
        )
        .bind(id.as_str())
        .bind(blob_key.map(BlobKey::as_str))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn blob_referenced(&self, blob_key: &BlobKey) -> MetaResult<bool> {
        let row = sqlx::query("SELECT 1 FROM shares WHERE blob_key = ? LIMIT 1")
            .bind(blob_key.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn purge(&self, now: Instant, before: Instant) -> MetaResult<u64> {
        let mut removed = 0;
        removed += sqlx::query("DELETE FROM used_signatures WHERE keep_until <= ?")
            .bind(secs(now))
            .execute(&self.pool)
            .await?
            .rows_affected();
        removed += sqlx::query("DELETE FROM shares WHERE state = 'gone' AND expires_at <= ?")
            .bind(secs(before))
            .execute(&self.pool)
            .await?
            .rows_affected();
        removed += sqlx::query(
            "DELETE FROM upload_requests WHERE expires_at <= ? \
             AND (share_id IS NULL OR share_id NOT IN (SELECT id FROM shares))",
        )
        .bind(secs(before))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(removed)
    }
}
