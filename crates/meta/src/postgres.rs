//! The store for several instances: PostgreSQL through a sqlx connection pool. The statements
//! mirror the SQLite store one for one; every decision is a single conditional statement (or a
//! transaction that starts with its conditional write), so any number of `once serve` and
//! `once reap` processes on one database stay correct. Under READ COMMITTED a conditional
//! `UPDATE` that waits for a concurrent writer re-checks its `WHERE` on the committed row, which
//! is what makes the claim, the first upload and the request slot exact across instances.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use once_domain::{
    BlobKey, Filename, Instant, KeyId, KeyRecord, RequestId, Share, ShareId, ShareState,
    UploadRequest,
};
use sqlx::migrate::Migrate;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Row};

use crate::rows::{
    SHARE_COLUMNS, key_from_row, key_record_from_row, reap_candidate_from_row, request_from_row,
    secs, share_from_row, size_param, written_row,
};
use crate::{
    CompletedUpload, FulfilOutcome, MetaError, MetaResult, MetaStore, PublishOutcome,
    ReapCandidate, StoredKey,
};

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

async fn insert_share_with<'e, E>(executor: E, share: &Share) -> MetaResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    sqlx::query(&format!(
        "INSERT INTO shares ({SHARE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                 $19, $20)"
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
impl MetaStore for PostgresMetaStore {
    async fn ping(&self) -> MetaResult<()> {
        crate::within_ready_timeout(async {
            sqlx::query(crate::READINESS_PROBE)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn insert_key(&self, key: &StoredKey) -> MetaResult<()> {
        let result = sqlx::query(
            "INSERT INTO api_keys (id, name, secret_hash, sealed_secret, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
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
        sqlx::query("SELECT * FROM api_keys WHERE id = $1")
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
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
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
        // A racing insert of the same key waits for the first one and then does nothing.
        let result = sqlx::query(
            "INSERT INTO used_signatures (key_id, signature, keep_until) VALUES ($1, $2, $3) \
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
        sqlx::query(&format!("SELECT {SHARE_COLUMNS} FROM shares WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(share_from_row)
            .transpose()
    }

    async fn count_upload_attempt(&self, id: &ShareId) -> MetaResult<()> {
        sqlx::query("UPDATE shares SET upload_attempts = upload_attempts + 1 WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn count_preview(&self, id: &ShareId) -> MetaResult<()> {
        sqlx::query("UPDATE shares SET preview_hits = preview_hits + 1 WHERE id = $1")
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
            "UPDATE shares SET state = 'ready', blob_key = $1, size = $2, \
                 sha256 = COALESCE($3, sha256), published_at = $4, upload_session = NULL, \
                 blob_version = $7 \
             WHERE id = $5 AND state = 'pending' AND upload_expires_at > $6 \
             RETURNING {SHARE_COLUMNS}"
        ))
        .bind(upload.blob_key.as_str())
        .bind(size_param(upload.size))
        .bind(upload.sha256.map(|digest| digest.0.to_vec()))
        .bind(secs(now))
        .bind(id.as_str())
        .bind(secs(upload.started_at))
        .bind(upload.blob_version.as_deref())
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
                 lease_until = GREATEST(COALESCE(lease_until, 0), $1) \
             WHERE id = $2 AND state = 'ready' AND downloads_left > 0 AND expires_at > $3 \
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
             WHERE id = $1 AND owner_key = $2 AND state IN ('pending', 'ready')",
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        sqlx::query("SELECT * FROM upload_requests WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(request_from_row)
            .transpose()
    }

    async fn list_requests(&self, owner: &KeyId) -> MetaResult<Vec<UploadRequest>> {
        sqlx::query(
            "SELECT * FROM upload_requests WHERE owner_key = $1 ORDER BY created_at DESC, id",
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
        // The conditional write comes first: it locks the request row, so a racing upload
        // waits here and then finds `share_id` set.
        let claimed = sqlx::query(
            "UPDATE upload_requests SET share_id = $1, fulfilled_at = $2 \
             WHERE id = $3 AND share_id IS NULL AND expires_at > $4",
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
        // SKIP LOCKED: a racing reaper passes over the rows this one is taking instead of
        // waiting for them; a row another reaper took and committed meanwhile is re-checked
        // against `reaper_until` and dropped. Either way no share is handed out twice.
        let rows = sqlx::query(
            "UPDATE shares SET reaper_until = $1 \
             WHERE id IN ( \
                 SELECT id FROM shares \
                 WHERE state != 'gone' AND (reaper_until IS NULL OR reaper_until <= $2) AND ( \
                     state = 'revoked' \
                     OR (state = 'pending' AND upload_expires_at <= $4) \
                     OR (state = 'ready' AND downloads_left = 0 AND COALESCE(lease_until, 0) <= $2) \
                     OR (state = 'ready' AND expires_at <= $2 AND COALESCE(lease_until, 0) <= $2)) \
                 LIMIT $3 \
                 FOR UPDATE SKIP LOCKED) \
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
            "UPDATE shares SET state = 'gone', blob_key = NULL, blob_version = NULL, \
                 reaper_until = NULL, upload_session = NULL \
             WHERE id = $1 AND state != 'gone' AND blob_key IS NOT DISTINCT FROM $2",
        )
        .bind(id.as_str())
        .bind(blob_key.map(BlobKey::as_str))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn blob_referenced(&self, blob_key: &BlobKey) -> MetaResult<bool> {
        let row = sqlx::query("SELECT 1 FROM shares WHERE blob_key = $1 LIMIT 1")
            .bind(blob_key.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn purge(&self, now: Instant, before: Instant) -> MetaResult<u64> {
        let mut removed = 0;
        removed += sqlx::query("DELETE FROM used_signatures WHERE keep_until <= $1")
            .bind(secs(now))
            .execute(&self.pool)
            .await?
            .rows_affected();
        removed += sqlx::query("DELETE FROM shares WHERE state = 'gone' AND expires_at <= $1")
            .bind(secs(before))
            .execute(&self.pool)
            .await?
            .rows_affected();
        removed += sqlx::query(
            "DELETE FROM upload_requests WHERE expires_at <= $1 \
             AND (share_id IS NULL OR NOT EXISTS (SELECT 1 FROM shares WHERE shares.id = upload_requests.share_id))",
        )
        .bind(secs(before))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(removed)
    }
}
