//! Refused uploads as evidence: each upload to a used ticket or a fulfilled upload request is
//! recorded for the owner to see (who, when, what it declared, what arrived and its hash), and on
//! the embedded store its bytes are kept aside under a blob key no share names.

use async_trait::async_trait;
use once_domain::{BlobKey, Instant, RequestId, ShareId};

use crate::MetaResult;

/// What a refused upload was aimed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusedTarget {
    Share(ShareId),
    Request(RequestId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedUpload {
    pub id: String,
    pub target: RefusedTarget,
    pub at: Instant,
    pub client_address: String,
    pub user_agent: String,
    /// The size the upload announced (`Content-Length`), if it did.
    pub declared_size: Option<u64>,
    /// The bytes that arrived before the server stopped reading.
    pub received_size: u64,
    /// SHA-256 (hex) of those bytes; None when none were read (an upload refused before its
    /// body, such as a multipart session whose parts went to the bucket).
    pub sha256: Option<String>,
    /// The server stopped reading at its cap, so more was sent than `received_size`.
    pub truncated: bool,
    /// Where the bytes are kept, when they are.
    pub blob_key: Option<BlobKey>,
}

#[async_trait]
pub trait RefusedUploads: Send + Sync {
    async fn record_refused_upload(&self, upload: &RefusedUpload) -> MetaResult<()>;
    /// The refused uploads to `target`, oldest first.
    async fn refused_uploads_to(&self, target: &RefusedTarget) -> MetaResult<Vec<RefusedUpload>>;
    /// How many of them have their bytes kept (the count cap is per target).
    async fn kept_refused_uploads(&self, target: &RefusedTarget) -> MetaResult<u32>;
    /// Deletes records older than `before`; their kept bytes are then orphans the reaper's
    /// sweep deletes.
    async fn purge_refused_uploads(&self, before: Instant) -> MetaResult<u64>;
}

pub(crate) const INSERT: &str = "INSERT INTO refused_uploads (id, share_id, request_id, at, \
     client_address, user_agent, declared_size, received_size, sha256, truncated, blob_key) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const OF_SHARE: &str = "SELECT id, share_id, request_id, at, client_address, \
     user_agent, declared_size, received_size, sha256, truncated, blob_key \
     FROM refused_uploads WHERE share_id = $1 ORDER BY at, id";
pub(crate) const OF_REQUEST: &str = "SELECT id, share_id, request_id, at, client_address, \
     user_agent, declared_size, received_size, sha256, truncated, blob_key \
     FROM refused_uploads WHERE request_id = $1 ORDER BY at, id";
pub(crate) const KEPT_OF_SHARE: &str =
    "SELECT COUNT(*) FROM refused_uploads WHERE share_id = $1 AND blob_key IS NOT NULL";
pub(crate) const KEPT_OF_REQUEST: &str =
    "SELECT COUNT(*) FROM refused_uploads WHERE request_id = $1 AND blob_key IS NOT NULL";
pub(crate) const PURGE: &str = "DELETE FROM refused_uploads WHERE at <= $1";

pub(crate) type Row = (
    String,
    Option<String>,
    Option<String>,
    i64,
    String,
    String,
    Option<i64>,
    i64,
    Option<String>,
    i64,
    Option<String>,
);

pub(crate) fn from_row(row: Row) -> MetaResult<RefusedUpload> {
    let (id, share, request, at, address, agent, declared, received, sha256, truncated, blob) = row;
    let corrupt = |what: &str| crate::MetaError::Corrupt(format!("refused_uploads.{what}"));
    let target = match (share, request) {
        (Some(share), None) => {
            RefusedTarget::Share(ShareId::parse(&share).map_err(|_| corrupt("share_id"))?)
        }
        (None, Some(request)) => {
            RefusedTarget::Request(RequestId::parse(&request).map_err(|_| corrupt("request_id"))?)
        }
        _ => return Err(corrupt("target")),
    };
    Ok(RefusedUpload {
        id,
        target,
        at: crate::rows::instant(at)?,
        client_address: address,
        user_agent: agent,
        declared_size: declared
            .map(|size| u64::try_from(size).map_err(|_| corrupt("declared_size")))
            .transpose()?,
        received_size: u64::try_from(received).map_err(|_| corrupt("received_size"))?,
        sha256,
        truncated: truncated != 0,
        blob_key: blob
            .map(|key| BlobKey::parse(&key).map_err(|_| corrupt("blob_key")))
            .transpose()?,
    })
}

/// Implements [`RefusedUploads`] for `$store` (with a `pool`).
macro_rules! impl_refused_uploads {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::evidence::RefusedUploads for $store {
            async fn record_refused_upload(
                &self,
                upload: &$crate::evidence::RefusedUpload,
            ) -> $crate::MetaResult<()> {
                use $crate::evidence::RefusedTarget;
                let (share, request) = match &upload.target {
                    RefusedTarget::Share(id) => (Some(id.as_str()), None),
                    RefusedTarget::Request(id) => (None, Some(id.as_str())),
                };
                let size = |size: u64| i64::try_from(size).unwrap_or(i64::MAX);
                sqlx::query($crate::evidence::INSERT)
                    .bind(&upload.id)
                    .bind(share)
                    .bind(request)
                    .bind($crate::rows::secs(upload.at))
                    .bind(&upload.client_address)
                    .bind(&upload.user_agent)
                    .bind(upload.declared_size.map(size))
                    .bind(size(upload.received_size))
                    .bind(upload.sha256.as_deref())
                    .bind(i64::from(upload.truncated))
                    .bind(upload.blob_key.as_ref().map(once_domain::BlobKey::as_str))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn refused_uploads_to(
                &self,
                target: &$crate::evidence::RefusedTarget,
            ) -> $crate::MetaResult<Vec<$crate::evidence::RefusedUpload>> {
                use $crate::evidence::RefusedTarget;
                let (statement, id) = match target {
                    RefusedTarget::Share(id) => ($crate::evidence::OF_SHARE, id.as_str()),
                    RefusedTarget::Request(id) => ($crate::evidence::OF_REQUEST, id.as_str()),
                };
                let rows: Vec<$crate::evidence::Row> = sqlx::query_as(statement)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map($crate::evidence::from_row).collect()
            }

            async fn kept_refused_uploads(
                &self,
                target: &$crate::evidence::RefusedTarget,
            ) -> $crate::MetaResult<u32> {
                use $crate::evidence::RefusedTarget;
                let (statement, id) = match target {
                    RefusedTarget::Share(id) => ($crate::evidence::KEPT_OF_SHARE, id.as_str()),
                    RefusedTarget::Request(id) => ($crate::evidence::KEPT_OF_REQUEST, id.as_str()),
                };
                let count: i64 = sqlx::query_scalar(statement)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(u32::try_from(count).unwrap_or(u32::MAX))
            }

            async fn purge_refused_uploads(
                &self,
                before: once_domain::Instant,
            ) -> $crate::MetaResult<u64> {
                Ok(sqlx::query($crate::evidence::PURGE)
                    .bind($crate::rows::secs(before))
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }
        }
    };
}
pub(crate) use impl_refused_uploads;

/// The [`RefusedUploads`] conformance suite: `once_meta::refused_uploads_conformance_tests!(open);`.
pub mod conformance {
    use std::sync::Arc;

    use once_domain::{BlobKey, Instant, RequestId, ShareId};

    use super::{RefusedTarget, RefusedUpload};

    pub const CHECKS: &[&str] = &[
        "refused_uploads_round_trip_per_target_oldest_first",
        "kept_bytes_are_counted_and_keep_their_blob_referenced",
    ];

    #[macro_export]
    macro_rules! refused_uploads_conformance_tests {
        ($open:ident) => {
            mod refused_uploads_conformance {
                $crate::refused_uploads_conformance_tests!(@tests $open;
                    refused_uploads_round_trip_per_target_oldest_first,
                    kept_bytes_are_counted_and_keep_their_blob_referenced,
                );
            }
        };
        (@tests $open:ident; $($check:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((_guard, store)) = super::$open(concat!("evidence_", stringify!($check))).await else {
                        return;
                    };
                    $crate::evidence::conformance::run(stringify!($check), store).await;
                }
            )*

            #[test]
            fn every_refused_uploads_check_has_a_test() {
                assert_eq!($crate::evidence::conformance::CHECKS, &[$(stringify!($check)),*]);
            }
        };
    }

    pub async fn run(check: &str, store: Arc<dyn crate::MetaStore>) {
        match check {
            "refused_uploads_round_trip_per_target_oldest_first" => {
                refused_uploads_round_trip_per_target_oldest_first(store.as_ref()).await
            }
            "kept_bytes_are_counted_and_keep_their_blob_referenced" => {
                kept_bytes_are_counted_and_keep_their_blob_referenced(store.as_ref()).await
            }
            other => panic!("no refused-uploads check named {other}"),
        }
    }

    fn at(seconds: i64) -> Instant {
        time::OffsetDateTime::from_unix_timestamp(1_893_456_000 + seconds).expect("an instant")
    }

    fn refused(n: u32, target: RefusedTarget, seconds: i64) -> RefusedUpload {
        RefusedUpload {
            id: format!("ru_{n:04}"),
            target,
            at: at(seconds),
            client_address: "192.0.2.7".into(),
            user_agent: "curl/8.5.0".into(),
            declared_size: Some(5),
            received_size: 5,
            sha256: Some("ab".repeat(32)),
            truncated: false,
            blob_key: None,
        }
    }

    async fn refused_uploads_round_trip_per_target_oldest_first(store: &dyn crate::MetaStore) {
        let share = RefusedTarget::Share(ShareId::generate());
        let request = RefusedTarget::Request(RequestId::generate());
        store
            .record_refused_upload(&refused(2, share.clone(), 20))
            .await
            .unwrap();
        store
            .record_refused_upload(&refused(1, share.clone(), 10))
            .await
            .unwrap();
        let mut odd = refused(3, request.clone(), 5);
        odd.declared_size = None;
        odd.sha256 = None;
        odd.received_size = 0;
        odd.truncated = true;
        store.record_refused_upload(&odd).await.unwrap();
        let of_share = store.refused_uploads_to(&share).await.unwrap();
        assert_eq!(
            of_share,
            [refused(1, share.clone(), 10), refused(2, share.clone(), 20)]
        );
        assert_eq!(store.refused_uploads_to(&request).await.unwrap(), [odd]);
        assert_eq!(store.purge_refused_uploads(at(10)).await.unwrap(), 2);
        assert_eq!(store.refused_uploads_to(&share).await.unwrap().len(), 1);
    }

    async fn kept_bytes_are_counted_and_keep_their_blob_referenced(store: &dyn crate::MetaStore) {
        let share = RefusedTarget::Share(ShareId::generate());
        let blob = BlobKey::generate();
        assert!(!store.blob_referenced(&blob).await.unwrap());
        let mut kept = refused(1, share.clone(), 0);
        kept.blob_key = Some(blob.clone());
        store.record_refused_upload(&kept).await.unwrap();
        store
            .record_refused_upload(&refused(2, share.clone(), 1))
            .await
            .unwrap();
        assert_eq!(store.kept_refused_uploads(&share).await.unwrap(), 1);
        assert!(
            store.blob_referenced(&blob).await.unwrap(),
            "the sweep must spare it"
        );
        store.purge_refused_uploads(at(100)).await.unwrap();
        assert!(!store.blob_referenced(&blob).await.unwrap());
        assert_eq!(store.kept_refused_uploads(&share).await.unwrap(), 0);
    }
}
