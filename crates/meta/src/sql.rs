//! The statements of both metadata stores, one text each: SQLite (through sqlx) and PostgreSQL
//! both accept `$N` placeholders, `ON CONFLICT`, `IS NOT DISTINCT FROM`, `NOT EXISTS` and
//! `UPDATE … RETURNING`. The one piece that differs, the row locks of the reaper's batch, is
//! [`Dialect`]. [`impl_meta_store!`] binds and runs them the same way for either store, so a
//! rule is written once and both backends keep it.

/// The columns of `shares` that make up a [`once_domain::Share`], in the order
/// [`INSERT_SHARE`] binds them; also what every `SELECT` and `RETURNING` of a share lists, so
/// the row decoder finds every field. A macro so that `concat!` can build the statements at
/// compile time.
macro_rules! share_columns {
    () => {
        "id, owner_key, filename, content_type, size, sha256, max_downloads, downloads_left, \
         state, created_at, expires_at, upload_expires_at, published_at, lease_until, blob_key, \
         request_id, upload_attempts, preview_hits, upload_session, blob_version, upload_token, \
         part_size, contents, note, encryption"
    };
}

pub(crate) const INSERT_KEY: &str = "INSERT INTO api_keys \
     (id, name, secret_hash, sealed_secret, created_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
pub(crate) const FIND_KEY: &str = "SELECT * FROM api_keys WHERE id = $1";
pub(crate) const LIST_KEYS: &str = "SELECT * FROM api_keys ORDER BY created_at, id";
pub(crate) const REVOKE_KEY: &str =
    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
/// A racing insert of the same signature waits for the first one and then does nothing.
pub(crate) const RECORD_SIGNATURE: &str = "INSERT INTO used_signatures \
     (key_id, signature, keep_until) VALUES ($1, $2, $3) \
     ON CONFLICT (key_id, signature) DO NOTHING";

pub(crate) const INSERT_SHARE: &str = concat!(
    "INSERT INTO shares (",
    share_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
     $18, $19, $20, $21, $22, $23, $24, $25)"
);
pub(crate) const GET_SHARE: &str =
    concat!("SELECT ", share_columns!(), " FROM shares WHERE id = $1");
pub(crate) const GET_SHARE_BY_UPLOAD_TOKEN: &str = concat!(
    "SELECT ",
    share_columns!(),
    " FROM shares WHERE upload_token = $1"
);
pub(crate) const COUNT_UPLOAD_ATTEMPT: &str =
    "UPDATE shares SET upload_attempts = upload_attempts + 1 WHERE id = $1";
pub(crate) const COUNT_PREVIEW: &str =
    "UPDATE shares SET preview_hits = preview_hits + 1 WHERE id = $1";
/// What publishing a pending share writes and checks, in [`PUBLISH_SHARE`] and
/// [`PUBLISH_SESSION_SHARE`] alike: the blob of the complete upload (`$1`…`$5`), and the end
/// of the multipart upload. Its session and its token are cleared, so a published share's
/// token names nothing any more. Only a share still `pending` (`$6`) whose upload window was
/// open when the upload started (`$7`) is published. A macro for `concat!`.
macro_rules! publish_pending_share {
    ($set:literal, $condition:literal) => {
        concat!(
            "UPDATE shares SET state = 'ready', blob_key = $1, size = $2, \
             sha256 = COALESCE($3, sha256), published_at = $4, blob_version = $5, \
             upload_session = NULL, upload_token = NULL",
            $set,
            " WHERE id = $6 AND state = 'pending' AND upload_expires_at > $7",
            $condition,
            " RETURNING ",
            share_columns!()
        )
    };
}
pub(crate) const PUBLISH_SHARE: &str = publish_pending_share!("", "");
/// The second statement of a request session's completion (after [`FULFIL_REQUEST`] took the
/// request's slot): the share gets its final expiry (`$8`), and must be a session of that
/// request (`$9`).
pub(crate) const PUBLISH_SESSION_SHARE: &str =
    publish_pending_share!(", expires_at = $8", " AND request_id = $9");
/// The claim. The lease only grows: `CASE` rather than SQLite's `MAX` or PostgreSQL's
/// `GREATEST`, which the other engine lacks. Under READ COMMITTED a claim that waits for a
/// concurrent one re-checks `downloads_left > 0` on the committed row.
/// The claim's conditional write, before what it returns.
macro_rules! claim_share_update {
    () => {
        "UPDATE shares SET downloads_left = downloads_left - 1, \
         lease_until = CASE WHEN COALESCE(lease_until, 0) > $1 THEN lease_until ELSE $1 END \
         WHERE id = $2 AND state = 'ready' AND downloads_left > 0 AND expires_at > $3"
    };
}
pub(crate) const CLAIM_SHARE: &str =
    concat!(claim_share_update!(), " RETURNING ", share_columns!());
pub(crate) const CLAIM_PLAIN_SHARE: &str = concat!(
    claim_share_update!(),
    " AND encryption IS NULL RETURNING ",
    share_columns!()
);
pub(crate) const REVOKE_SHARE: &str = "UPDATE shares SET state = 'revoked' \
     WHERE id = $1 AND owner_key = $2 AND state IN ('pending', 'ready')";

pub(crate) const INSERT_REQUEST: &str = "INSERT INTO upload_requests \
     (id, owner_key, filename, max_size, max_downloads, share_expires_in, created_at, \
     expires_at, share_id, fulfilled_at, note, requester, encrypted) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
pub(crate) const GET_REQUEST: &str = "SELECT * FROM upload_requests WHERE id = $1";
pub(crate) const COUNT_OPEN_SESSIONS: &str = "SELECT COUNT(*) FROM shares \
     WHERE request_id = $1 AND state = 'pending' AND upload_expires_at > $2";
/// A key's usage for its quotas: shares created since `$2` (a request's upload counts once it
/// completed: attempts still pending, or refused, are the uploaders'), and the declared bytes of
/// shares waiting for their upload (window open at `$3`) or still downloadable at `$3`. SUMs
/// are cast, since PostgreSQL sums BIGINTs to NUMERIC.
pub(crate) const KEY_USAGE: &str = "SELECT \
     CAST(COALESCE(SUM(CASE WHEN created_at >= $2 \
         AND (request_id IS NULL OR state != 'pending') THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE \
         WHEN state = 'pending' AND upload_expires_at > $3 THEN COALESCE(size, 0) \
         WHEN state = 'ready' AND downloads_left > 0 AND expires_at > $3 \
             THEN COALESCE(size, 0) \
         ELSE 0 END), 0) AS BIGINT) \
     FROM shares WHERE owner_key = $1";
pub(crate) const COUNT_REFUSED_UPLOAD: &str = "UPDATE upload_requests \
     SET refused_uploads = refused_uploads + 1 WHERE id = $1 RETURNING refused_uploads";
pub(crate) const REFUSED_UPLOADS: &str =
    "SELECT refused_uploads FROM upload_requests WHERE id = $1";
/// An owner's shares, newest first, from a cursor (`created_at`, `id` of the last one seen; a
/// cursor past every row starts at the top). Uploads to a request that never completed
/// (sessions still pending, refused or abandoned) are the uploader's attempts, not shares.
pub(crate) const LIST_SHARES: &str = concat!(
    "SELECT ",
    share_columns!(),
    " FROM shares WHERE owner_key = $1 \
     AND NOT (request_id IS NOT NULL AND published_at IS NULL) \
     AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
     ORDER BY created_at DESC, id DESC LIMIT $4"
);
pub(crate) const LIST_REQUESTS: &str =
    "SELECT * FROM upload_requests WHERE owner_key = $1 ORDER BY created_at DESC, id";
/// The first statement of the fulfilment transaction (of [`crate::MetaStore::fulfil_request`]
/// and [`crate::MetaStore::fulfil_request_with`]): taking the request's row (PostgreSQL) or
/// the write lock (SQLite) before anything is read, so a racing upload waits here and then
/// finds `share_id` set.
pub(crate) const FULFIL_REQUEST: &str = "UPDATE upload_requests \
     SET share_id = $1, fulfilled_at = $2 \
     WHERE id = $3 AND share_id IS NULL AND expires_at > $4";

/// The reaper's batch, with the row locks of the dialect after its `LIMIT`.
macro_rules! take_reap_batch {
    ($locks:literal) => {
        concat!(
            "UPDATE shares SET reaper_until = $1 \
             WHERE id IN ( \
                 SELECT id FROM shares \
                 WHERE state != 'gone' AND (reaper_until IS NULL OR reaper_until <= $2) AND ( \
                     state = 'revoked' \
                     OR (state = 'pending' AND upload_expires_at <= $4) \
                     OR (state = 'ready' AND downloads_left = 0 \
                         AND COALESCE(lease_until, 0) <= $2) \
                     OR (state = 'ready' AND expires_at <= $2 \
                         AND COALESCE(lease_until, 0) <= $2)) \
                 LIMIT $3",
            $locks,
            ") RETURNING id, blob_key, upload_session"
        )
    };
}
pub(crate) const MARK_GONE: &str = "UPDATE shares SET state = 'gone', blob_key = NULL, \
     blob_version = NULL, reaper_until = NULL, upload_session = NULL, upload_token = NULL \
     WHERE id = $1 AND state != 'gone' AND blob_key IS NOT DISTINCT FROM $2";
/// A blob is referenced by a share, or kept as the evidence of a refused upload.
pub(crate) const BLOB_REFERENCED: &str = "SELECT 1 FROM shares WHERE blob_key = $1 \
     UNION ALL SELECT 1 FROM refused_uploads WHERE blob_key = $1 LIMIT 1";
pub(crate) const PURGE_SIGNATURES: &str = "DELETE FROM used_signatures WHERE keep_until <= $1";
pub(crate) const PURGE_TOMBSTONES: &str =
    "DELETE FROM shares WHERE state = 'gone' AND expires_at <= $1";
pub(crate) const PURGE_REQUESTS: &str = "DELETE FROM upload_requests WHERE expires_at <= $1 \
     AND (share_id IS NULL \
          OR NOT EXISTS (SELECT 1 FROM shares WHERE shares.id = upload_requests.share_id))";

/// The head of a many-row [`INSERT_AUDIT`], for a query builder to add the rows to.
pub(crate) const INSERT_AUDIT_ROWS: &str = "INSERT INTO audit_events \
     (at, kind, owner_key, share_id, request_id, key_id, client, user_agent, detail) ";
/// Rows of one many-row audit insert: 9 parameters each stays far below both databases'
/// limits on parameters per statement.
pub(crate) const AUDIT_ROWS_PER_INSERT: usize = 256;
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_events \
     (at, kind, owner_key, share_id, request_id, key_id, client, user_agent, detail) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// The audit log through optional filters (a NULL filter matches every row), in the order the
/// events were written.
pub(crate) const AUDIT_EVENTS: &str = "SELECT seq, at, kind, owner_key, share_id, request_id, \
     key_id, client, user_agent, detail FROM audit_events \
     WHERE ($1 IS NULL OR owner_key = $1) AND ($2 IS NULL OR share_id = $2) \
     AND ($3 IS NULL OR request_id = $3) AND at >= $4 AND seq > $5 \
     ORDER BY seq LIMIT $6";
pub(crate) const PURGE_AUDIT: &str = "DELETE FROM audit_events WHERE at < $1";

/// The readiness probe's write.
pub(crate) const READINESS_PROBE: &str = "INSERT INTO readiness (id, checks) VALUES (1, 1) \
     ON CONFLICT (id) DO UPDATE SET checks = readiness.checks + 1";

/// What differs between the engines.
pub(crate) struct Dialect {
    pub(crate) take_reap_batch: &'static str,
}

/// SQLite has no row locks: the batch's single statement holds the database's write lock.
pub(crate) const SQLITE: Dialect = Dialect {
    take_reap_batch: take_reap_batch!(""),
};

/// SKIP LOCKED: a racing reaper passes over the rows this one is taking instead of waiting for
/// them; a row another reaper took and committed meanwhile is re-checked against
/// `reaper_until` and dropped. Either way no share is handed out twice.
pub(crate) const POSTGRES: Dialect = Dialect {
    take_reap_batch: take_reap_batch!(" FOR UPDATE SKIP LOCKED"),
};

/// Implements [`crate::MetaStore`] for `$store` (a struct with a `pool: sqlx::Pool<$db>` and an
/// inherent `async fn ready(&self) -> MetaResult<()>`, the readiness probe) with the statements
/// above and `$dialect`.
///
/// Every conditional write with `RETURNING` is run with `fetch_all` and read through
/// [`crate::rows::written_row`], never with `fetch_optional` (see there why).
macro_rules! impl_meta_store {
    ($store:ty, $db:ty, $dialect:expr) => {
        impl $store {
            async fn insert_share_with<'e, E>(
                executor: E,
                share: &once_domain::Share,
            ) -> $crate::MetaResult<()>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                use $crate::rows::{secs, size_param};
                sqlx::query($crate::sql::INSERT_SHARE)
                    .bind(share.id.as_str())
                    .bind(share.owner.as_ref().map(once_domain::KeyId::as_str))
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
                    .bind(share.blob_key.as_ref().map(once_domain::BlobKey::as_str))
                    .bind(
                        share
                            .request_id
                            .as_ref()
                            .map(once_domain::RequestId::as_str),
                    )
                    .bind(i64::from(share.upload_attempts))
                    .bind(i64::from(share.preview_hits))
                    .bind(share.upload_session.as_deref())
                    .bind(share.blob_version.as_deref())
                    .bind(
                        share
                            .upload_token
                            .as_ref()
                            .map(once_domain::UploadToken::as_str),
                    )
                    .bind(share.part_size.map(size_param))
                    .bind(share.contents.as_deref())
                    .bind(share.note.as_ref().map(once_domain::Note::as_str))
                    .bind($crate::rows::encryption_text(share.encryption.as_ref())?)
                    .execute(executor)
                    .await?;
                Ok(())
            }

            /// `statement` ([`CLAIM_SHARE`](crate::sql::CLAIM_SHARE) or
            /// [`CLAIM_PLAIN_SHARE`](crate::sql::CLAIM_PLAIN_SHARE)): the share after the
            /// claim, or None if it claimed nothing.
            async fn claim_with(
                statement: &'static str,
                pool: &sqlx::Pool<$db>,
                id: &once_domain::ShareId,
                now: once_domain::Instant,
                lease_until: once_domain::Instant,
            ) -> $crate::MetaResult<Option<once_domain::Share>> {
                use $crate::rows::{secs, share_from_row, written_row};
                let claimed = sqlx::query(statement)
                    .bind(secs(lease_until))
                    .bind(id.as_str())
                    .bind(secs(now))
                    .fetch_all(pool)
                    .await?;
                written_row(claimed)?
                    .as_ref()
                    .map(share_from_row)
                    .transpose()
            }

            async fn insert_audit_with<'e, E>(
                executor: E,
                event: &once_domain::AuditEvent,
            ) -> $crate::MetaResult<()>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                sqlx::query($crate::sql::INSERT_AUDIT)
                    .bind($crate::rows::secs(event.at))
                    .bind(event.kind.as_str())
                    .bind(event.owner.as_ref().map(once_domain::KeyId::as_str))
                    .bind(event.share.as_ref().map(once_domain::ShareId::as_str))
                    .bind(event.request.as_ref().map(once_domain::RequestId::as_str))
                    .bind(event.key.as_ref().map(once_domain::KeyId::as_str))
                    .bind(event.client.as_deref())
                    .bind(event.user_agent.as_deref())
                    .bind(event.detail.as_deref())
                    .execute(executor)
                    .await?;
                Ok(())
            }

            /// `statement` ([`PUBLISH_SHARE`](crate::sql::PUBLISH_SHARE) or
            /// [`PUBLISH_SESSION_SHARE`](crate::sql::PUBLISH_SESSION_SHARE)) with the
            /// parameters of `publish_pending_share!` bound; a session's own ones follow.
            fn publish_query<'q>(
                statement: &'q str,
                id: &'q once_domain::ShareId,
                upload: &'q $crate::CompletedUpload,
                now: once_domain::Instant,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
                use $crate::rows::{secs, size_param};
                sqlx::query(statement)
                    .bind(upload.blob_key.as_str())
                    .bind(size_param(upload.size))
                    .bind(upload.sha256.map(|digest| digest.0.to_vec()))
                    .bind(secs(now))
                    .bind(upload.blob_version.as_deref())
                    .bind(id.as_str())
                    .bind(secs(upload.started_at))
            }
        }

        #[async_trait::async_trait]
        impl $crate::MetaStore for $store {
            async fn ping(&self) -> $crate::MetaResult<()> {
                $crate::within_ready_timeout(self.ready()).await
            }

            async fn insert_key(&self, key: &$crate::StoredKey) -> $crate::MetaResult<()> {
                use $crate::rows::secs;
                let result = sqlx::query($crate::sql::INSERT_KEY)
                    .bind(key.record.id.as_str())
                    .bind(&key.record.name)
                    .bind(&key.secret_hash)
                    .bind(&key.sealed_secret)
                    .bind(secs(key.record.created_at))
                    .bind(key.record.revoked_at.map(secs))
                    .execute(&self.pool)
                    .await?;
                if result.rows_affected() == 0 {
                    return Err($crate::MetaError::KeyExists);
                }
                Ok(())
            }

            async fn find_key(
                &self,
                id: &once_domain::KeyId,
            ) -> $crate::MetaResult<Option<$crate::StoredKey>> {
                sqlx::query($crate::sql::FIND_KEY)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map($crate::rows::key_from_row)
                    .transpose()
            }

            async fn list_keys(&self) -> $crate::MetaResult<Vec<once_domain::KeyRecord>> {
                sqlx::query($crate::sql::LIST_KEYS)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map($crate::rows::key_record_from_row)
                    .collect()
            }

            async fn revoke_key(
                &self,
                id: &once_domain::KeyId,
                now: once_domain::Instant,
            ) -> $crate::MetaResult<bool> {
                let result = sqlx::query($crate::sql::REVOKE_KEY)
                    .bind($crate::rows::secs(now))
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn record_signature(
                &self,
                key: &once_domain::KeyId,
                signature: &str,
                keep_until: once_domain::Instant,
            ) -> $crate::MetaResult<bool> {
                let result = sqlx::query($crate::sql::RECORD_SIGNATURE)
                    .bind(key.as_str())
                    .bind(signature)
                    .bind($crate::rows::secs(keep_until))
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn insert_share(&self, share: &once_domain::Share) -> $crate::MetaResult<()> {
                Self::insert_share_with(&self.pool, share).await
            }

            async fn get_share(
                &self,
                id: &once_domain::ShareId,
            ) -> $crate::MetaResult<Option<once_domain::Share>> {
                sqlx::query($crate::sql::GET_SHARE)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map($crate::rows::share_from_row)
                    .transpose()
            }

            async fn get_share_by_upload_token(
                &self,
                token: &once_domain::UploadToken,
            ) -> $crate::MetaResult<Option<once_domain::Share>> {
                sqlx::query($crate::sql::GET_SHARE_BY_UPLOAD_TOKEN)
                    .bind(token.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map($crate::rows::share_from_row)
                    .transpose()
            }

            async fn count_upload_attempt(
                &self,
                id: &once_domain::ShareId,
            ) -> $crate::MetaResult<()> {
                sqlx::query($crate::sql::COUNT_UPLOAD_ATTEMPT)
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn count_preview(&self, id: &once_domain::ShareId) -> $crate::MetaResult<()> {
                sqlx::query($crate::sql::COUNT_PREVIEW)
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn publish_share(
                &self,
                id: &once_domain::ShareId,
                upload: &$crate::CompletedUpload,
                now: once_domain::Instant,
            ) -> $crate::MetaResult<$crate::PublishOutcome> {
                use $crate::rows::{share_from_row, written_row};
                let published = Self::publish_query($crate::sql::PUBLISH_SHARE, id, upload, now)
                    .fetch_all(&self.pool)
                    .await?;
                if let Some(row) = written_row(published)? {
                    return Ok($crate::PublishOutcome::Published(Box::new(share_from_row(
                        &row,
                    )?)));
                }
                // Nothing was written; explain why from the current row.
                Ok(match self.get_share(id).await? {
                    None => $crate::PublishOutcome::NotFound,
                    Some(share) if share.state == once_domain::ShareState::Pending => {
                        $crate::PublishOutcome::UploadExpired
                    }
                    Some(_) => $crate::PublishOutcome::SlotUsed,
                })
            }

            async fn claim_share(
                &self,
                id: &once_domain::ShareId,
                now: once_domain::Instant,
                lease_until: once_domain::Instant,
            ) -> $crate::MetaResult<Option<once_domain::Share>> {
                Self::claim_with($crate::sql::CLAIM_SHARE, &self.pool, id, now, lease_until).await
            }

            async fn claim_plain_share(
                &self,
                id: &once_domain::ShareId,
                now: once_domain::Instant,
                lease_until: once_domain::Instant,
            ) -> $crate::MetaResult<Option<once_domain::Share>> {
                Self::claim_with(
                    $crate::sql::CLAIM_PLAIN_SHARE,
                    &self.pool,
                    id,
                    now,
                    lease_until,
                )
                .await
            }

            async fn revoke_share(
                &self,
                id: &once_domain::ShareId,
                owner: &once_domain::KeyId,
            ) -> $crate::MetaResult<bool> {
                let result = sqlx::query($crate::sql::REVOKE_SHARE)
                    .bind(id.as_str())
                    .bind(owner.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn insert_request(
                &self,
                request: &once_domain::UploadRequest,
            ) -> $crate::MetaResult<()> {
                use $crate::rows::{secs, size_param};
                sqlx::query($crate::sql::INSERT_REQUEST)
                    .bind(request.id.as_str())
                    .bind(request.owner.as_str())
                    .bind(request.filename.as_ref().map(once_domain::Filename::as_str))
                    .bind(size_param(request.max_size))
                    .bind(i64::from(request.max_downloads))
                    .bind(size_param(request.share_expires_in.as_secs()))
                    .bind(secs(request.created_at))
                    .bind(secs(request.expires_at))
                    .bind(request.share_id.as_ref().map(once_domain::ShareId::as_str))
                    .bind(request.fulfilled_at.map(secs))
                    .bind(request.note.as_ref().map(once_domain::Note::as_str))
                    .bind(
                        request
                            .requester
                            .as_ref()
                            .map(once_domain::RequesterName::as_str),
                    )
                    .bind(i64::from(request.encrypted))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_request(
                &self,
                id: &once_domain::RequestId,
            ) -> $crate::MetaResult<Option<once_domain::UploadRequest>> {
                sqlx::query($crate::sql::GET_REQUEST)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map($crate::rows::request_from_row)
                    .transpose()
            }

            async fn list_shares(
                &self,
                owner: &once_domain::KeyId,
                after: Option<(once_domain::Instant, &once_domain::ShareId)>,
                limit: u32,
            ) -> $crate::MetaResult<Vec<once_domain::Share>> {
                use $crate::rows::secs;
                // No cursor: everything is "after" the largest time and id.
                let (created_at, id) = match after {
                    Some((created_at, id)) => (secs(created_at), id.as_str().to_owned()),
                    None => (i64::MAX, "~".to_owned()),
                };
                sqlx::query($crate::sql::LIST_SHARES)
                    .bind(owner.as_str())
                    .bind(created_at)
                    .bind(id)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map($crate::rows::share_from_row)
                    .collect()
            }

            async fn list_requests(
                &self,
                owner: &once_domain::KeyId,
            ) -> $crate::MetaResult<Vec<once_domain::UploadRequest>> {
                sqlx::query($crate::sql::LIST_REQUESTS)
                    .bind(owner.as_str())
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map($crate::rows::request_from_row)
                    .collect()
            }

            async fn fulfil_request(
                &self,
                id: &once_domain::RequestId,
                share: &once_domain::Share,
                started_at: once_domain::Instant,
            ) -> $crate::MetaResult<$crate::FulfilOutcome> {
                use $crate::rows::secs;
                let mut transaction = self.pool.begin().await?;
                let claimed = sqlx::query($crate::sql::FULFIL_REQUEST)
                    .bind(share.id.as_str())
                    .bind(share.published_at.map(secs))
                    .bind(id.as_str())
                    .bind(secs(started_at))
                    .execute(&mut *transaction)
                    .await?;
                if claimed.rows_affected() == 1 {
                    Self::insert_share_with(&mut *transaction, share).await?;
                    transaction.commit().await?;
                    return Ok($crate::FulfilOutcome::Fulfilled(Box::new(share.clone())));
                }
                transaction.rollback().await?;
                Ok(match self.get_request(id).await? {
                    None => $crate::FulfilOutcome::NotFound,
                    Some(request) if request.share_id.is_some() => $crate::FulfilOutcome::SlotUsed,
                    Some(_) => $crate::FulfilOutcome::Expired,
                })
            }

            async fn fulfil_request_with(
                &self,
                request: &once_domain::RequestId,
                share: &once_domain::ShareId,
                upload: &$crate::CompletedUpload,
                expires_at: once_domain::Instant,
                now: once_domain::Instant,
            ) -> $crate::MetaResult<$crate::FulfilOutcome> {
                use $crate::rows::{secs, share_from_row, written_row};
                let mut transaction = self.pool.begin().await?;
                let claimed = sqlx::query($crate::sql::FULFIL_REQUEST)
                    .bind(share.as_str())
                    .bind(secs(now))
                    .bind(request.as_str())
                    .bind(secs(upload.started_at))
                    .execute(&mut *transaction)
                    .await?;
                if claimed.rows_affected() == 1 {
                    let published =
                        Self::publish_query($crate::sql::PUBLISH_SESSION_SHARE, share, upload, now)
                            .bind(secs(expires_at))
                            .bind(request.as_str())
                            .fetch_all(&mut *transaction)
                            .await?;
                    if let Some(row) = written_row(published)? {
                        let published = share_from_row(&row)?;
                        transaction.commit().await?;
                        return Ok($crate::FulfilOutcome::Fulfilled(Box::new(published)));
                    }
                }
                // The request's slot goes back to the other sessions with the rollback.
                transaction.rollback().await?;
                // Nothing was written; explain why from the current rows.
                let current_request = self.get_request(request).await?;
                let current_share = self.get_share(share).await?;
                Ok(match (current_request, current_share) {
                    (Some(current_request), Some(current_share))
                        if current_share.request_id.as_ref() == Some(request) =>
                    {
                        if current_request.share_id.is_some()
                            || current_share.state != once_domain::ShareState::Pending
                        {
                            $crate::FulfilOutcome::SlotUsed
                        } else {
                            $crate::FulfilOutcome::Expired
                        }
                    }
                    _ => $crate::FulfilOutcome::NotFound,
                })
            }

            async fn count_open_sessions(
                &self,
                request: &once_domain::RequestId,
                now: once_domain::Instant,
            ) -> $crate::MetaResult<u32> {
                let open: i64 = sqlx::query_scalar($crate::sql::COUNT_OPEN_SESSIONS)
                    .bind(request.as_str())
                    .bind($crate::rows::secs(now))
                    .fetch_one(&self.pool)
                    .await?;
                // A count is never negative, and no request has u32::MAX sessions.
                Ok(u32::try_from(open).unwrap_or(u32::MAX))
            }

            async fn key_usage(
                &self,
                owner: &once_domain::KeyId,
                since: once_domain::Instant,
                now: once_domain::Instant,
            ) -> $crate::MetaResult<once_domain::KeyUsage> {
                let (shares, bytes): (i64, i64) = sqlx::query_as($crate::sql::KEY_USAGE)
                    .bind(owner.as_str())
                    .bind($crate::rows::secs(since))
                    .bind($crate::rows::secs(now))
                    .fetch_one(&self.pool)
                    .await?;
                // Counts and sizes are never negative.
                Ok(once_domain::KeyUsage {
                    shares_created: u64::try_from(shares).unwrap_or(0),
                    bytes_held: u64::try_from(bytes).unwrap_or(0),
                })
            }

            async fn count_refused_upload(
                &self,
                request: &once_domain::RequestId,
            ) -> $crate::MetaResult<u32> {
                let counted: Vec<i64> = sqlx::query_scalar($crate::sql::COUNT_REFUSED_UPLOAD)
                    .bind(request.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                $crate::rows::written_row(counted)?.map_or(Ok(0), |count| {
                    $crate::rows::to_u32(count, "refused_uploads")
                })
            }

            async fn refused_uploads(
                &self,
                request: &once_domain::RequestId,
            ) -> $crate::MetaResult<u32> {
                let count: Option<i64> = sqlx::query_scalar($crate::sql::REFUSED_UPLOADS)
                    .bind(request.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                count.map_or(Ok(0), |count| {
                    $crate::rows::to_u32(count, "refused_uploads")
                })
            }

            async fn record_audit(
                &self,
                event: &once_domain::AuditEvent,
            ) -> $crate::MetaResult<()> {
                Self::insert_audit_with(&self.pool, event).await
            }

            async fn record_audits(
                &self,
                events: &[once_domain::AuditEvent],
            ) -> $crate::MetaResult<()> {
                // One statement per batch, not a transaction of many: it commits or fails
                // whole on its own, and leaves no transaction open on a connection when the
                // disk is full.
                for batch in events.chunks($crate::sql::AUDIT_ROWS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new($crate::sql::INSERT_AUDIT_ROWS);
                    insert.push_values(batch, |mut row, event| {
                        row.push_bind($crate::rows::secs(event.at))
                            .push_bind(event.kind.as_str())
                            .push_bind(event.owner.as_ref().map(|key| key.as_str().to_owned()))
                            .push_bind(event.share.as_ref().map(|id| id.as_str().to_owned()))
                            .push_bind(event.request.as_ref().map(|id| id.as_str().to_owned()))
                            .push_bind(event.key.as_ref().map(|key| key.as_str().to_owned()))
                            .push_bind(event.client.clone())
                            .push_bind(event.user_agent.clone())
                            .push_bind(event.detail.clone());
                    });
                    insert.build().execute(&self.pool).await?;
                }
                Ok(())
            }

            async fn audit_events(
                &self,
                filter: &$crate::AuditFilter,
            ) -> $crate::MetaResult<Vec<$crate::AuditRecord>> {
                sqlx::query($crate::sql::AUDIT_EVENTS)
                    .bind(filter.owner.as_ref().map(once_domain::KeyId::as_str))
                    .bind(filter.share.as_ref().map(once_domain::ShareId::as_str))
                    .bind(filter.request.as_ref().map(once_domain::RequestId::as_str))
                    .bind(filter.since.map($crate::rows::secs).unwrap_or(i64::MIN))
                    .bind(filter.after.map($crate::rows::size_param).unwrap_or(0))
                    .bind(i64::from(filter.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map($crate::rows::audit_from_row)
                    .collect()
            }

            async fn purge_audit(&self, before: once_domain::Instant) -> $crate::MetaResult<u64> {
                Ok(sqlx::query($crate::sql::PURGE_AUDIT)
                    .bind($crate::rows::secs(before))
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn take_reap_batch(
                &self,
                now: once_domain::Instant,
                abandoned_before: once_domain::Instant,
                hold_until: once_domain::Instant,
                limit: u32,
            ) -> $crate::MetaResult<Vec<$crate::ReapCandidate>> {
                use $crate::rows::secs;
                let rows = sqlx::query($dialect.take_reap_batch)
                    .bind(secs(hold_until))
                    .bind(secs(now))
                    .bind(i64::from(limit))
                    .bind(secs(abandoned_before))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map($crate::rows::reap_candidate_from_row)
                    .collect()
            }

            async fn mark_gone(
                &self,
                id: &once_domain::ShareId,
                blob_key: Option<&once_domain::BlobKey>,
            ) -> $crate::MetaResult<bool> {
                let result = sqlx::query($crate::sql::MARK_GONE)
                    .bind(id.as_str())
                    .bind(blob_key.map(once_domain::BlobKey::as_str))
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn blob_referenced(
                &self,
                blob_key: &once_domain::BlobKey,
            ) -> $crate::MetaResult<bool> {
                let row = sqlx::query($crate::sql::BLOB_REFERENCED)
                    .bind(blob_key.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            async fn purge(
                &self,
                now: once_domain::Instant,
                before: once_domain::Instant,
            ) -> $crate::MetaResult<u64> {
                use $crate::rows::secs;
                let mut removed = 0;
                for (statement, until) in [
                    ($crate::sql::PURGE_SIGNATURES, now),
                    ($crate::sql::PURGE_TOMBSTONES, before),
                    ($crate::sql::PURGE_REQUESTS, before),
                ] {
                    removed += sqlx::query(statement)
                        .bind(secs(until))
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                }
                Ok(removed)
            }
        }
    };
}

pub(crate) use impl_meta_store;
