//! The reaper deletes what must not outlive its purpose: bytes of consumed (after the lease),
//! expired, revoked and abandoned shares, blobs no share references, stale upload files, and old
//! tombstones and audit events past their retention. Every step is idempotent and takes its work through conditional writes, so any
//! number of reapers (built-in loops, `once reap` from cron) can run at once.

use std::time::Duration;

use once_domain::Instant;
use once_domain::share::add;

use crate::service::{Service, ServiceResult};

/// Shares taken per batch; a reaper holds its batch this long before another may retry it.
const BATCH: u32 = 100;
const HOLD: Duration = Duration::from_secs(300);
/// Tombstones answer 410 for this long after expiry, then the rows go.
const TOMBSTONE_RETENTION: Duration = Duration::from_secs(30 * 86400);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReapReport {
    /// Shares whose bytes were deleted (or that never had any) and are now tombstones.
    pub shares_reaped: u64,
    /// Blobs deleted because no share referenced them.
    pub orphans_deleted: u64,
    /// Temporary files or pending uploads of interrupted uploads removed.
    pub stale_uploads_removed: u64,
    /// Old tombstones, requests, signature records and audit events deleted.
    pub rows_purged: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct ReapSettings {
    pub orphan_grace: Duration,
    pub upload_grace: Duration,
    /// Delivered and given-up notifications are kept this long.
    pub notify_retention: Duration,
    /// Records of refused uploads are kept this long (their bytes go with them).
    pub evidence_retention: Duration,
    /// How long audit events are kept.
    pub audit_retention: Duration,
}

fn before(now: Instant, duration: Duration) -> Instant {
    now - time::Duration::seconds(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 4))
}

#[tracing::instrument(name = "reap", skip_all)]
pub async fn reap_once(
    service: &Service,
    settings: ReapSettings,
    now: Instant,
) -> ServiceResult<ReapReport> {
    let (meta, blob) = service.stores();
    let mut report = ReapReport::default();
    let abandoned_before = before(now, settings.upload_grace);
    loop {
        let batch = meta
            .take_reap_batch(now, abandoned_before, add(now, HOLD), BATCH)
            .await?;
        if batch.is_empty() {
            break;
        }
        for candidate in batch {
            if let (Some(blob_key), Some(upload_id)) =
                (&candidate.blob_key, &candidate.upload_session)
            {
                // An abandoned multipart upload; some stores refuse a second abort, so a failure
                // here is reported but does not stop the pass (the lifecycle rule is the backstop).
                if let Err(error) = blob.abort_upload(blob_key, upload_id).await {
                    tracing::warn!(%blob_key, %error, "could not abort an abandoned multipart upload");
                }
            }
            // Read before the row becomes a tombstone, and only when someone listens.
            let unread = match service.notifier() {
                Some(_) => meta
                    .get_share(&candidate.share_id)
                    .await?
                    .filter(|share| share.expired_unread(now)),
                None => None,
            };
            if let Some(blob_key) = &candidate.blob_key {
                blob.delete(blob_key).await?;
            }
            if meta
                .mark_gone(&candidate.share_id, candidate.blob_key.as_ref())
                .await?
            {
                report.shares_reaped += 1;
                let event = once_domain::AuditEvent::new(
                    once_domain::AuditKind::ShareReaped,
                    now,
                    &once_domain::AuditSource::server("once reaper"),
                )
                .of_share_id(&candidate.share_id);
                service.record(event).await;
                if let Some(share) = unread {
                    service.expired_unread(&share).await;
                }
            }
        }
    }

    // Old evidence first, so this pass's orphan sweep already deletes its kept bytes.
    let evidence_purged = meta
        .purge_refused_uploads(before(now, settings.evidence_retention))
        .await?;
    let orphan_cutoff = before(now, settings.orphan_grace);
    for blob_key in blob.list_older_than(orphan_cutoff).await? {
        if !meta.blob_referenced(&blob_key).await? {
            blob.delete(&blob_key).await?;
            report.orphans_deleted += 1;
        }
    }
    report.stale_uploads_removed = blob.remove_stale_uploads(orphan_cutoff).await?;
    // Multipart uploads no share records (an upload through a server that crashed), once they
    // are older than any upload may legitimately take.
    // Best effort: without the listing permission the bucket's lifecycle rule still aborts
    // them, so a refusal here must not stop the pass.
    let pending_cutoff = before(now, settings.upload_grace.max(settings.orphan_grace));
    match blob.pending_uploads(pending_cutoff).await {
        Ok(pending) => {
            for (blob_key, upload_id) in pending {
                if !meta.blob_referenced(&blob_key).await? {
                    blob.abort_upload(&blob_key, &upload_id).await?;
                    report.stale_uploads_removed += 1;
                }
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot list pending multipart uploads; leaving them to the bucket's lifecycle rule");
        }
    }
    report.rows_purged = meta.purge(now, before(now, TOMBSTONE_RETENTION)).await?
        + meta
            .purge_events(before(now, settings.notify_retention))
            .await?
        + evidence_purged;
    report.rows_purged += meta
        .purge_audit(before(now, settings.audit_retention))
        .await?;
    Ok(report)
}

/// The built-in reaper: one pass every `interval` until `shutdown` fires.
pub async fn run_loop(
    service: std::sync::Arc<Service>,
    settings: ReapSettings,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let outcome = reap_once(&service, settings, once_domain::now()).await;
        metrics::counter!("once_reaper_runs_total").increment(1);
        if outcome.is_ok() {
            // An alert can tell a reaper that stopped passing from one with nothing to do.
            metrics::gauge!("once_reaper_last_success_timestamp_seconds")
                .set(once_domain::now().unix_timestamp() as f64);
        }
        match outcome {
            Ok(report) if report != ReapReport::default() => {
                metrics::counter!("once_reaped_shares_total").increment(report.shares_reaped);
                metrics::counter!("once_reaped_orphans_total").increment(report.orphans_deleted);
                metrics::counter!("once_reaped_stale_uploads_total")
                    .increment(report.stale_uploads_removed);
                tracing::info!(?report, "reaper pass");
            }
            Ok(_) => tracing::debug!("reaper pass: nothing to do"),
            Err(error) => {
                metrics::counter!("once_reaper_errors_total").increment(1);
                tracing::error!(%error, "reaper pass failed; retrying next interval");
            }
        }
    }
}
