//! Refused uploads are evidence. An upload to a ticket or a request that another upload already
//! used is refused, and then read anyway (up to `evidence_max_bytes`, paced like any body):
//! hashed, counted, recorded with who sent it, and kept aside in the blob store (up to
//! `evidence_max_count` per share or request) under a key no share names, so it is never
//! served. The owner sees the record; the reaper drops records after `evidence_retention` and
//! the orphan sweep then deletes their bytes.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use once_blob::{ByteStream, PutLimits};
use once_domain::{BlobKey, Instant};
use once_meta::{RefusedTarget, RefusedUpload};
use sha2::{Digest, Sha256};

use super::*;

/// Who sent an upload, as the HTTP layer saw it.
#[derive(Debug, Clone)]
pub struct Uploader {
    pub address: String,
    pub user_agent: String,
}

impl Uploader {
    /// The longest user agent kept; control characters become spaces.
    const AGENT_LIMIT: usize = 200;

    pub fn new(address: std::net::IpAddr, user_agent: &str) -> Self {
        Self {
            address: address.to_string(),
            user_agent: user_agent
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(Self::AGENT_LIMIT)
                .collect(),
        }
    }
}

/// How much of the refused uploads is kept.
#[derive(Debug, Clone, Copy)]
pub struct EvidencePolicy {
    /// Bytes read from one refused upload; what is sent beyond is not read.
    pub max_bytes: u64,
    /// Refused uploads per share or request whose bytes are kept; later ones are recorded
    /// and hashed only.
    pub max_count: u32,
}

/// What reading a refused body found.
#[derive(Default)]
struct Read {
    received: u64,
    hasher: Sha256,
    truncated: bool,
}

/// `body`, ending after `cap` bytes (marking the read truncated if more came), hashing what
/// it lets through.
fn capped(body: ByteStream, cap: u64, read: Arc<Mutex<Read>>) -> ByteStream {
    Box::pin(futures::stream::unfold(
        (body, read, false),
        move |(mut body, read, done)| async move {
            if done {
                return None;
            }
            let chunk = match body.next().await? {
                Ok(chunk) => chunk,
                Err(error) => return Some((Err(error), (body, read, true))),
            };
            let mut state = read.lock().expect("not poisoned");
            let room = cap - state.received;
            let (chunk, done) = if chunk.len() as u64 > room {
                state.truncated = true;
                (
                    chunk.slice(..usize::try_from(room).unwrap_or(usize::MAX)),
                    true,
                )
            } else {
                (chunk, false)
            };
            state.received += chunk.len() as u64;
            state.hasher.update(&chunk);
            drop(state);
            Some((Ok(chunk), (body, read, done)))
        },
    ))
}

/// A fresh record id, in time order (to the microsecond, where record times are whole
/// seconds) like the outbox's.
pub(crate) fn record_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "ru_{}",
        once_domain::event::message_id(now).trim_start_matches("msg_")
    )
}

/// The record of an upload that arrived whole but lost the race for the slot (its hash is
/// known; its bytes are deleted like any loser's).
pub(crate) fn lost_race(
    target: RefusedTarget,
    who: &Uploader,
    at: Instant,
    declared_size: Option<u64>,
    info: &once_blob::BlobInfo,
) -> RefusedUpload {
    RefusedUpload {
        id: record_id(),
        target,
        at,
        client_address: who.address.clone(),
        user_agent: who.user_agent.clone(),
        declared_size,
        received_size: info.size,
        sha256: Some(info.sha256.to_hex()),
        truncated: false,
        blob_key: None,
    }
}

impl Service {
    /// Reads, records and (within the caps) keeps a refused upload's body. Never fails the
    /// caller, whose answer is the refusal whatever happens here.
    pub(crate) async fn keep_refused_upload(
        &self,
        target: RefusedTarget,
        incoming: IncomingBody,
        who: &Uploader,
        at: Instant,
    ) {
        let Some(policy) = self.evidence else {
            return;
        };
        let declared = incoming.content_length;
        let room = match self.meta.kept_refused_uploads(&target).await {
            Ok(kept) => kept < policy.max_count,
            Err(error) => {
                tracing::warn!(%error, "cannot count kept refused uploads; keeping none");
                false
            }
        };
        let read = Arc::new(Mutex::new(Read::default()));
        let body = capped(incoming.body, policy.max_bytes, read.clone());
        let blob_key = if room {
            let key = BlobKey::generate();
            let limits = PutLimits {
                expected_size: None,
                max_size: policy.max_bytes,
                sha256: None,
            };
            match self.blob.put(&key, body, limits).await {
                Ok(_) => Some(key),
                Err(error) => {
                    tracing::warn!(%error, "could not keep the bytes of a refused upload");
                    None
                }
            }
        } else {
            let mut body = body;
            while let Some(chunk) = body.next().await {
                if chunk.is_err() {
                    break;
                }
            }
            None
        };
        let read = std::mem::take(&mut *read.lock().expect("not poisoned"));
        let upload = RefusedUpload {
            id: record_id(),
            target,
            at,
            client_address: who.address.clone(),
            user_agent: who.user_agent.clone(),
            declared_size: declared,
            received_size: read.received,
            sha256: Some(hex::encode(read.hasher.finalize())),
            truncated: read.truncated,
            blob_key,
        };
        self.record_refused_upload(upload).await;
    }

    /// Records a refused upload whose bytes were read elsewhere (or not at all).
    pub(crate) async fn record_refused_upload(&self, upload: RefusedUpload) {
        metrics::counter!("once_refused_uploads_recorded_total", "kept" => if upload.blob_key.is_some() { "yes" } else { "no" })
            .increment(1);
        if let Err(error) = self.meta.record_refused_upload(&upload).await {
            tracing::warn!(%error, "could not record a refused upload");
            if let Some(key) = &upload.blob_key
                && let Err(error) = self.blob.delete(key).await
            {
                tracing::warn!(%key, %error, "could not delete unrecorded evidence; the reaper will");
            }
        }
    }

    /// The refused uploads to a share or request, for its owner.
    pub async fn refused_uploads_to(
        &self,
        target: &RefusedTarget,
    ) -> ServiceResult<Vec<RefusedUpload>> {
        Ok(self.meta.refused_uploads_to(target).await?)
    }
}
