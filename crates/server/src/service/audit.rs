//! The audit log: events recorded where things happen (the HTTP handlers, the claim, the
//! reaper, key administration), and a key's view of its own. Every event is written after
//! the change it records has committed, best effort: a failed audit write is logged and
//! counted, never turned into an error for a change that already happened
//! (docs/security.md#the-audit-log says why a claim and its events are not one transaction).
//!
//! A serving instance hands its events to an [`AuditWriter`], which writes whatever has
//! queued up in one statement, off the request path: under load one commit carries many
//! events instead of each answer waiting for its own. Reading the log first waits for the
//! events queued so far, so a key always sees what it just did. Commands that run once
//! (`once reap`, key administration) have no writer and write each event before going on.

use std::sync::Arc;

use once_domain::{AuditEvent, KeyId, RequestId, ShareId};
use once_meta::{AuditFilter, AuditRecord};
use tokio::sync::{mpsc, oneshot};

use super::*;

/// How long recording one event may hold up the answer it belongs to (a full queue, or an
/// inline write).
const AUDIT_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Events waiting for the writer; past this, recording waits (up to the timeout above).
const AUDIT_QUEUE: usize = 4096;

/// Most events in one write.
const AUDIT_BATCH: usize = 256;

enum Queued {
    Event(AuditEvent),
    /// Answered once every event queued before it is written (or given up on).
    Flush(oneshot::Sender<()>),
}

/// Writes queued audit events in batches, from a task of its own.
pub struct AuditWriter {
    queue: mpsc::Sender<Queued>,
}

impl AuditWriter {
    /// Starts the writing task on the current runtime; it ends when the writer is dropped,
    /// after writing what was queued.
    pub fn start(meta: Arc<dyn MetaStore>) -> Self {
        let (queue, queued) = mpsc::channel(AUDIT_QUEUE);
        tokio::spawn(write_queued(meta, queued));
        Self { queue }
    }
}

async fn write_queued(meta: Arc<dyn MetaStore>, mut queued: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(AUDIT_BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = queued.recv().await {
        take_queued(first, &mut batch, &mut flushes);
        while batch.len() < AUDIT_BATCH {
            match queued.try_recv() {
                Ok(item) => take_queued(item, &mut batch, &mut flushes),
                Err(_) => break,
            }
        }
        let mut owned = Vec::with_capacity(batch.len());
        for mut event in batch.drain(..) {
            if event.owner.is_none() {
                event.owner = owner_of(&*meta, &event).await;
            }
            // One that names nothing known (a made-up id) is dropped, so strangers cannot
            // fill anyone's log.
            if event.owner.is_some() {
                owned.push(event);
            }
        }
        let count = owned.len();
        let written = tokio::time::timeout(AUDIT_WRITE_TIMEOUT, meta.record_audits(&owned)).await;
        let failure = match written {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer within {AUDIT_WRITE_TIMEOUT:?}")),
        };
        if let Some(failure) = failure {
            metrics::counter!("once_audit_write_failures_total").increment(count as u64);
            tracing::warn!(error = %failure, events = count, "could not write audit events");
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

fn take_queued(item: Queued, batch: &mut Vec<AuditEvent>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match item {
        Queued::Event(event) => batch.push(event),
        Queued::Flush(done) => flushes.push(done),
    }
}

/// The owner of the share or request an event names, if there is one.
async fn owner_of(meta: &dyn MetaStore, event: &AuditEvent) -> Option<KeyId> {
    if let Some(id) = &event.share
        && let Ok(Some(share)) = meta.get_share(id).await
    {
        return share.owner;
    }
    if let Some(id) = &event.request
        && let Ok(Some(request)) = meta.get_request(id).await
    {
        return Some(request.owner);
    }
    None
}

/// What a key asks of its audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub share: Option<ShareId>,
    pub request: Option<RequestId>,
    pub since: Option<Instant>,
    pub after: Option<u64>,
    pub limit: u32,
}

impl Service {
    /// Writes `event` to the audit log, best effort: through the audit writer when there is
    /// one (the answer does not wait for the write), else right away. An event without an
    /// owner gets the owner of its share or request; one that names nothing known (a made-up
    /// id) is dropped, so strangers cannot fill anyone's log. `None` records nothing.
    pub async fn record(&self, event: impl Into<Option<AuditEvent>>) {
        let Some(event) = event.into() else {
            return;
        };
        let kind = event.kind;
        let failure = match &self.audit {
            Some(writer) => {
                match tokio::time::timeout(
                    AUDIT_WRITE_TIMEOUT,
                    writer.queue.send(Queued::Event(event)),
                )
                .await
                {
                    Ok(Ok(())) => return,
                    Ok(Err(_)) => "the audit writer has stopped".to_owned(),
                    Err(_) => format!("the audit queue stayed full for {AUDIT_WRITE_TIMEOUT:?}"),
                }
            }
            None => match tokio::time::timeout(AUDIT_WRITE_TIMEOUT, self.write(event)).await {
                Ok(Ok(())) => return,
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("no answer within {AUDIT_WRITE_TIMEOUT:?}"),
            },
        };
        metrics::counter!("once_audit_write_failures_total").increment(1);
        tracing::warn!(error = %failure, %kind, "could not write an audit event");
    }

    async fn write(&self, mut event: AuditEvent) -> ServiceResult<()> {
        if event.owner.is_none() {
            event.owner = owner_of(&*self.meta, &event).await;
        }
        if event.owner.is_some() {
            self.meta.record_audit(&event).await?;
        }
        Ok(())
    }

    /// Returns once every event recorded so far is written (or given up on); at once
    /// without an audit writer, whose events are written as they come.
    pub async fn flush_audit(&self) {
        if let Some(writer) = &self.audit {
            let (done, written) = oneshot::channel();
            if writer.queue.send(Queued::Flush(done)).await.is_ok() {
                let _ = written.await;
            }
        }
    }

    /// The caller's own audit log: events of its shares, its requests and itself, nobody
    /// else's (another key's share id finds nothing, as it does everywhere).
    pub async fn audit_events(
        &self,
        caller: &Caller,
        query: AuditQuery,
    ) -> ServiceResult<Vec<AuditRecord>> {
        self.flush_audit().await;
        Ok(self
            .meta
            .audit_events(&AuditFilter {
                owner: Some(caller.key_id.clone()),
                share: query.share,
                request: query.request,
                since: query.since,
                after: query.after,
                limit: query.limit,
            })
            .await?)
    }
}
