//! The `MetaStore` conformance suite: the same checks, run unchanged against every backend
//! (see `tests/`). Each check takes a fresh, empty store and panics on a violation.

use std::sync::Arc;
use std::time::Duration;

use once_domain::encryption::PasswordParams;
use once_domain::share::add;
use once_domain::{
    ApiToken, BlobKey, Encryption, KeyRecord, Note, RequestPolicy, RequestSpec, SessionSpec,
    Sha256Digest, Share, SharePolicy, ShareSpec, ShareState, UploadRequest, UploadToken,
};

use futures::future::join_all;

use crate::{CompletedUpload, FulfilOutcome, MetaError, MetaStore, PublishOutcome, StoredKey};

/// Every check in the suite, by name (the tests of [`conformance_tests!`](crate::conformance_tests)).
pub const CHECKS: &[&str] = &[
    "keys_round_trip_and_revoke",
    "duplicate_key_id_is_refused",
    "signature_is_accepted_once",
    "share_round_trips",
    "first_publish_wins",
    "publish_after_upload_window_is_refused",
    "claims_stop_at_max_downloads",
    "expired_share_cannot_be_claimed",
    "claim_race_yields_exactly_max_downloads",
    "revoke_needs_the_owner",
    "request_is_fulfilled_once",
    "expired_request_is_not_fulfilled",
    "reaper_takes_only_what_is_due",
    "racing_reapers_never_take_the_same_share",
    "purge_removes_old_tombstones_and_signatures",
    "keys_are_listed_oldest_first",
    "counters_on_a_missing_share_change_nothing",
    "claims_keep_the_longest_lease_and_stop_at_expiry",
    "publish_without_a_digest_keeps_the_declared_one",
    "requests_are_listed_newest_first",
    "racing_signatures_accept_exactly_one",
    "racing_uploads_fulfil_a_request_once",
    "mark_gone_needs_the_current_blob_key",
    "concurrent_reaper_loops_take_every_due_share_once",
    "upload_session_fields_round_trip",
    "upload_token_names_only_a_live_upload",
    "session_completion_fulfils_the_request",
    "later_session_is_refused_once_the_request_is_fulfilled",
    "session_no_longer_pending_leaves_the_request_open",
    "session_of_an_expired_request_is_refused",
    "session_completion_needs_a_session_of_that_request",
    "racing_sessions_fulfil_a_request_once",
    "open_sessions_are_counted_per_request",
    "refused_uploads_are_counted_per_request",
    "blob_keys_of_pending_shares_are_referenced",
    "shares_are_listed_per_owner_newest_first_in_pages",
    "notes_and_requesters_round_trip_and_are_absent_when_not_given",
    "encrypted_shares_and_requests_round_trip",
    "key_usage_counts_recent_shares_and_the_bytes_still_held",
    "audit_events_are_filtered_by_owner_share_request_and_time",
    "old_audit_events_are_purged",
    "audit_events_written_in_batches_keep_their_order",
    "a_plain_claim_takes_only_plain_shares",
];

/// One test per check for a backend, so that the first failing check does not hide the rest:
/// `once_meta::conformance_tests!(open);` in a test file, where `open(check: &str)` is an async
/// fn returning `Option<(guard, Arc<dyn MetaStore>)>`: a fresh, empty store for that check and
/// whatever must live as long as the test (a temporary directory, a test database), or `None`
/// to skip it (the backend's own rule says when). Also checks that it covers [`CHECKS`].
#[macro_export]
macro_rules! conformance_tests {
    ($open:path) => {
        $crate::conformance_tests!(
            @tests $open;
            keys_round_trip_and_revoke,
            duplicate_key_id_is_refused,
            signature_is_accepted_once,
            share_round_trips,
            first_publish_wins,
            publish_after_upload_window_is_refused,
            claims_stop_at_max_downloads,
            expired_share_cannot_be_claimed,
            claim_race_yields_exactly_max_downloads,
            revoke_needs_the_owner,
            request_is_fulfilled_once,
            expired_request_is_not_fulfilled,
            reaper_takes_only_what_is_due,
            racing_reapers_never_take_the_same_share,
            purge_removes_old_tombstones_and_signatures,
            keys_are_listed_oldest_first,
            counters_on_a_missing_share_change_nothing,
            claims_keep_the_longest_lease_and_stop_at_expiry,
            publish_without_a_digest_keeps_the_declared_one,
            requests_are_listed_newest_first,
            racing_signatures_accept_exactly_one,
            racing_uploads_fulfil_a_request_once,
            mark_gone_needs_the_current_blob_key,
            concurrent_reaper_loops_take_every_due_share_once,
            upload_session_fields_round_trip,
            upload_token_names_only_a_live_upload,
            session_completion_fulfils_the_request,
            later_session_is_refused_once_the_request_is_fulfilled,
            session_no_longer_pending_leaves_the_request_open,
            session_of_an_expired_request_is_refused,
            session_completion_needs_a_session_of_that_request,
            racing_sessions_fulfil_a_request_once,
            open_sessions_are_counted_per_request,
            refused_uploads_are_counted_per_request,
            blob_keys_of_pending_shares_are_referenced,
            shares_are_listed_per_owner_newest_first_in_pages,
            notes_and_requesters_round_trip_and_are_absent_when_not_given,
            encrypted_shares_and_requests_round_trip,
            key_usage_counts_recent_shares_and_the_bytes_still_held,
            audit_events_are_filtered_by_owner_share_request_and_time,
            old_audit_events_are_purged,
            audit_events_written_in_batches_keep_their_order,
            a_plain_claim_takes_only_plain_shares,
        );
    };
    (@tests $open:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some((_guard, store)) = $open(stringify!($check)).await else {
                    return;
                };
                $crate::conformance::run(stringify!($check), store).await;
            }
        )*

        #[test]
        fn every_conformance_check_has_a_test() {
            assert_eq!($crate::conformance::CHECKS, &[$(stringify!($check)),*]);
        }
    };
}

pub async fn run(check: &str, shared: Arc<dyn MetaStore>) {
    let store = shared.as_ref();
    match check {
        "shares_are_listed_per_owner_newest_first_in_pages" => {
            shares_are_listed_per_owner_newest_first_in_pages(store).await
        }
        "keys_round_trip_and_revoke" => keys_round_trip_and_revoke(store).await,
        "duplicate_key_id_is_refused" => duplicate_key_id_is_refused(store).await,
        "signature_is_accepted_once" => signature_is_accepted_once(store).await,
        "share_round_trips" => share_round_trips(store).await,
        "first_publish_wins" => first_publish_wins(store).await,
        "publish_after_upload_window_is_refused" => {
            publish_after_upload_window_is_refused(store).await
        }
        "claims_stop_at_max_downloads" => claims_stop_at_max_downloads(store).await,
        "expired_share_cannot_be_claimed" => expired_share_cannot_be_claimed(store).await,
        "claim_race_yields_exactly_max_downloads" => {
            claim_race_yields_exactly_max_downloads(store).await
        }
        "revoke_needs_the_owner" => revoke_needs_the_owner(store).await,
        "request_is_fulfilled_once" => request_is_fulfilled_once(store).await,
        "expired_request_is_not_fulfilled" => expired_request_is_not_fulfilled(store).await,
        "reaper_takes_only_what_is_due" => reaper_takes_only_what_is_due(store).await,
        "racing_reapers_never_take_the_same_share" => {
            racing_reapers_never_take_the_same_share(store).await
        }
        "purge_removes_old_tombstones_and_signatures" => {
            purge_removes_old_tombstones_and_signatures(store).await
        }
        "keys_are_listed_oldest_first" => keys_are_listed_oldest_first(store).await,
        "counters_on_a_missing_share_change_nothing" => {
            counters_on_a_missing_share_change_nothing(store).await
        }
        "claims_keep_the_longest_lease_and_stop_at_expiry" => {
            claims_keep_the_longest_lease_and_stop_at_expiry(store).await
        }
        "publish_without_a_digest_keeps_the_declared_one" => {
            publish_without_a_digest_keeps_the_declared_one(store).await
        }
        "requests_are_listed_newest_first" => requests_are_listed_newest_first(store).await,
        "racing_signatures_accept_exactly_one" => racing_signatures_accept_exactly_one(store).await,
        "racing_uploads_fulfil_a_request_once" => racing_uploads_fulfil_a_request_once(store).await,
        "mark_gone_needs_the_current_blob_key" => mark_gone_needs_the_current_blob_key(store).await,
        "concurrent_reaper_loops_take_every_due_share_once" => {
            concurrent_reaper_loops_take_every_due_share_once(store).await
        }
        "upload_session_fields_round_trip" => upload_session_fields_round_trip(store).await,
        "upload_token_names_only_a_live_upload" => {
            upload_token_names_only_a_live_upload(store).await
        }
        "session_completion_fulfils_the_request" => {
            session_completion_fulfils_the_request(store).await
        }
        "later_session_is_refused_once_the_request_is_fulfilled" => {
            later_session_is_refused_once_the_request_is_fulfilled(store).await
        }
        "session_no_longer_pending_leaves_the_request_open" => {
            session_no_longer_pending_leaves_the_request_open(store).await
        }
        "session_of_an_expired_request_is_refused" => {
            session_of_an_expired_request_is_refused(store).await
        }
        "session_completion_needs_a_session_of_that_request" => {
            session_completion_needs_a_session_of_that_request(store).await
        }
        "racing_sessions_fulfil_a_request_once" => {
            racing_sessions_fulfil_a_request_once(&shared).await
        }
        "open_sessions_are_counted_per_request" => {
            open_sessions_are_counted_per_request(store).await
        }
        "refused_uploads_are_counted_per_request" => {
            refused_uploads_are_counted_per_request(store).await
        }
        "blob_keys_of_pending_shares_are_referenced" => {
            blob_keys_of_pending_shares_are_referenced(store).await
        }
        "notes_and_requesters_round_trip_and_are_absent_when_not_given" => {
            notes_and_requesters_round_trip_and_are_absent_when_not_given(store).await
        }
        "encrypted_shares_and_requests_round_trip" => {
            encrypted_shares_and_requests_round_trip(store).await
        }
        "key_usage_counts_recent_shares_and_the_bytes_still_held" => {
            key_usage_counts_recent_shares_and_the_bytes_still_held(store).await
        }
        "audit_events_are_filtered_by_owner_share_request_and_time" => {
            audit_events_are_filtered_by_owner_share_request_and_time(store).await
        }
        "old_audit_events_are_purged" => old_audit_events_are_purged(store).await,
        "audit_events_written_in_batches_keep_their_order" => {
            audit_events_written_in_batches_keep_their_order(store).await
        }
        "a_plain_claim_takes_only_plain_shares" => {
            a_plain_claim_takes_only_plain_shares(store).await
        }
        other => panic!("unknown conformance check {other}"),
    }
}

pub(crate) fn t0() -> once_domain::Instant {
    time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn stored_key(name: &str) -> (ApiToken, StoredKey) {
    let token = ApiToken::generate();
    let key = StoredKey {
        record: KeyRecord {
            id: token.id.clone(),
            name: name.into(),
            created_at: t0(),
            revoked_at: None,
        },
        secret_hash: token.secret.hash().to_vec(),
        sealed_secret: vec![1, 2, 3],
    };
    (token, key)
}

pub(crate) fn pending_share(max_downloads: u32) -> Share {
    let spec = ShareSpec {
        filename: "naïve \"file\".txt".into(),
        size: Some(5),
        max_downloads: Some(max_downloads),
        expires_in: Some(secs(3600)),
        ..ShareSpec::default()
    };
    SharePolicy::default().new_share(&spec, None, t0()).unwrap()
}

pub(crate) fn completed(blob_key: BlobKey, size: u64, fill: u8) -> CompletedUpload {
    CompletedUpload {
        blob_key,
        blob_version: None,
        size,
        sha256: Some(Sha256Digest([fill; 32])),
        started_at: t0(),
    }
}

pub(crate) async fn ready_share(store: &dyn MetaStore, max_downloads: u32) -> Share {
    let share = pending_share(max_downloads);
    store.insert_share(&share).await.unwrap();
    publish_stored(store, &share.id).await
}

/// Publishes the stored pending share `id` with a fresh blob at [`t0`]; panics if refused.
async fn publish_stored(store: &dyn MetaStore, id: &once_domain::ShareId) -> Share {
    let key = BlobKey::generate();
    match store
        .publish_share(id, &completed(key, 5, 7), t0())
        .await
        .unwrap()
    {
        PublishOutcome::Published(published) => *published,
        other => panic!("publish failed: {other:?}"),
    }
}

async fn keys_round_trip_and_revoke(store: &dyn MetaStore) {
    let (token, key) = stored_key("ci");
    store.insert_key(&key).await.unwrap();
    let found = store
        .find_key(&token.id)
        .await
        .unwrap()
        .expect("key is found");
    assert_eq!(found.record, key.record);
    assert!(token.secret.matches_hash(&found.secret_hash));
    assert_eq!(found.sealed_secret, vec![1, 2, 3]);
    assert_eq!(store.list_keys().await.unwrap(), vec![key.record.clone()]);
    assert!(store.revoke_key(&token.id, t0()).await.unwrap());
    assert!(
        !store.revoke_key(&token.id, t0()).await.unwrap(),
        "second revoke is a no-op"
    );
    let revoked = store.find_key(&token.id).await.unwrap().unwrap();
    assert_eq!(revoked.record.revoked_at, Some(t0()));
    assert!(
        store
            .find_key(&ApiToken::generate().id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn duplicate_key_id_is_refused(store: &dyn MetaStore) {
    let (_, key) = stored_key("one");
    store.insert_key(&key).await.unwrap();
    assert!(matches!(
        store.insert_key(&key).await,
        Err(MetaError::KeyExists)
    ));
}

async fn signature_is_accepted_once(store: &dyn MetaStore) {
    let (token, _) = stored_key("k");
    let until = add(t0(), secs(600));
    assert!(
        store
            .record_signature(&token.id, "sig-a", until)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_signature(&token.id, "sig-a", until)
            .await
            .unwrap()
    );
    assert!(
        store
            .record_signature(&token.id, "sig-b", until)
            .await
            .unwrap()
    );
}

async fn share_round_trips(store: &dyn MetaStore) {
    let share = pending_share(2);
    store.insert_share(&share).await.unwrap();
    assert_eq!(
        store.get_share(&share.id).await.unwrap(),
        Some(share.clone())
    );
    store.count_upload_attempt(&share.id).await.unwrap();
    store.count_preview(&share.id).await.unwrap();
    store.count_preview(&share.id).await.unwrap();
    let counted = store.get_share(&share.id).await.unwrap().unwrap();
    assert_eq!((counted.upload_attempts, counted.preview_hits), (1, 2));
    assert!(
        store
            .get_share(&pending_share(1).id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn first_publish_wins(store: &dyn MetaStore) {
    let share = pending_share(1);
    store.insert_share(&share).await.unwrap();
    let first = BlobKey::generate();
    let second = BlobKey::generate();
    let outcome = store
        .publish_share(&share.id, &completed(first.clone(), 5, 1), t0())
        .await
        .unwrap();
    let PublishOutcome::Published(published) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(published.state, ShareState::Ready);
    assert_eq!(published.blob_key.as_ref(), Some(&first));
    assert_eq!(published.published_at, Some(t0()));
    let again = store
        .publish_share(&share.id, &completed(second.clone(), 9, 2), t0())
        .await
        .unwrap();
    assert_eq!(again, PublishOutcome::SlotUsed);
    let stored = store.get_share(&share.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.blob_key, stored.size),
        (Some(first), Some(5)),
        "loser changed nothing"
    );
    let missing = pending_share(1);
    let outcome = store
        .publish_share(&missing.id, &completed(second, 1, 0), t0())
        .await
        .unwrap();
    assert_eq!(outcome, PublishOutcome::NotFound);
}

async fn publish_after_upload_window_is_refused(store: &dyn MetaStore) {
    let share = pending_share(1);
    store.insert_share(&share).await.unwrap();
    let key = BlobKey::generate();
    let mut late = completed(key.clone(), 5, 1);
    late.started_at = share.upload_expires_at;
    let outcome = store.publish_share(&share.id, &late, t0()).await.unwrap();
    assert_eq!(outcome, PublishOutcome::UploadExpired);
    let stored = store.get_share(&share.id).await.unwrap().unwrap();
    assert_eq!(stored.state, ShareState::Pending);
    // An upload that started inside the window may finish after the window closed.
    let mut slow = completed(key, 5, 1);
    slow.started_at = share.upload_expires_at - time::Duration::seconds(1);
    let finished = add(share.upload_expires_at, secs(3600));
    let outcome = store
        .publish_share(&share.id, &slow, finished)
        .await
        .unwrap();
    let PublishOutcome::Published(published) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(published.published_at, Some(finished));
}

async fn claims_stop_at_max_downloads(store: &dyn MetaStore) {
    let share = ready_share(store, 3).await;
    let pending = pending_share(1);
    store.insert_share(&pending).await.unwrap();
    assert!(
        store
            .claim_share(&pending.id, t0(), add(t0(), secs(60)))
            .await
            .unwrap()
            .is_none()
    );
    for left in [2, 1, 0] {
        let lease = add(t0(), secs(60));
        let claimed = store
            .claim_share(&share.id, t0(), lease)
            .await
            .unwrap()
            .expect("claim");
        assert_eq!(claimed.downloads_left, left);
        assert_eq!(claimed.lease_until, Some(lease));
    }
    assert!(
        store
            .claim_share(&share.id, t0(), add(t0(), secs(60)))
            .await
            .unwrap()
            .is_none()
    );
    let stored = store.get_share(&share.id).await.unwrap().unwrap();
    assert_eq!(stored.downloads_left, 0);
}

async fn expired_share_cannot_be_claimed(store: &dyn MetaStore) {
    let share = ready_share(store, 1).await;
    let at_expiry = share.expires_at;
    assert!(
        store
            .claim_share(&share.id, at_expiry, add(at_expiry, secs(60)))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .get_share(&share.id)
            .await
            .unwrap()
            .unwrap()
            .downloads_left,
        1
    );
}

async fn claim_race_yields_exactly_max_downloads(store: &dyn MetaStore) {
    let share = ready_share(store, 5).await;
    let lease = add(t0(), secs(60));
    let claims = (0..100).map(|_| store.claim_share(&share.id, t0(), lease));
    let results = join_all(claims).await;
    let won = results
        .into_iter()
        .map(Result::unwrap)
        .filter(Option::is_some)
        .count();
    assert_eq!(won, 5);
}

async fn revoke_needs_the_owner(store: &dyn MetaStore) {
    let (owner, _) = stored_key("owner");
    let (stranger, _) = stored_key("stranger");
    let mut share = pending_share(1);
    share.owner = Some(owner.id.clone());
    store.insert_share(&share).await.unwrap();
    assert!(!store.revoke_share(&share.id, &stranger.id).await.unwrap());
    assert!(store.revoke_share(&share.id, &owner.id).await.unwrap());
    assert!(!store.revoke_share(&share.id, &owner.id).await.unwrap());
    let stored = store.get_share(&share.id).await.unwrap().unwrap();
    assert_eq!(stored.state, ShareState::Revoked);
}

fn new_request(owner: &ApiToken) -> once_domain::UploadRequest {
    let spec = RequestSpec {
        max_size: Some(100),
        expires_in: Some(secs(3600)),
        ..RequestSpec::default()
    };
    RequestPolicy::default()
        .new_request(&spec, &SharePolicy::default(), owner.id.clone(), t0())
        .unwrap()
}

fn received_upload() -> once_domain::request::ReceivedUpload {
    once_domain::request::ReceivedUpload {
        filename_hint: Some("upload.txt".into()),
        content_type: None,
        size: 3,
        sha256: Sha256Digest([3; 32]),
        blob_key: BlobKey::generate(),
    }
}

async fn request_is_fulfilled_once(store: &dyn MetaStore) {
    let (owner, _) = stored_key("owner");
    let request = new_request(&owner);
    store.insert_request(&request).await.unwrap();
    assert_eq!(
        store.get_request(&request.id).await.unwrap(),
        Some(request.clone())
    );
    let first_id = once_domain::ShareId::generate();
    let first = request
        .share_for(first_id.clone(), received_upload(), t0())
        .unwrap();
    let outcome = store
        .fulfil_request(&request.id, &first, t0())
        .await
        .unwrap();
    assert_eq!(outcome, FulfilOutcome::Fulfilled(Box::new(first.clone())));
    let second_id = once_domain::ShareId::generate();
    let second = request
        .share_for(second_id.clone(), received_upload(), t0())
        .unwrap();
    assert_eq!(
        store
            .fulfil_request(&request.id, &second, t0())
            .await
            .unwrap(),
        FulfilOutcome::SlotUsed
    );
    assert!(
        store.get_share(&second_id).await.unwrap().is_none(),
        "loser inserted no share"
    );
    assert_eq!(store.get_share(&first_id).await.unwrap(), Some(first));
    let stored = store.get_request(&request.id).await.unwrap().unwrap();
    assert_eq!(stored.share_id, Some(first_id));
    assert_eq!(stored.fulfilled_at, Some(t0()));
    assert_eq!(store.list_requests(&owner.id).await.unwrap(), vec![stored]);
}

/// A note as long as the domain allows, in a script of several bytes per character, with the
/// newlines and tabs it keeps: the columns must hold it unchanged.
fn longest_note() -> String {
    let line = "Grüße, 日本語\tok\n";
    let mut note: String = line
        .chars()
        .cycle()
        .take(once_domain::note::MAX_NOTE_CHARS - 1)
        .collect();
    // Not a newline at the end, which trimming would take away.
    note.push('!');
    note
}

async fn notes_and_requesters_round_trip_and_are_absent_when_not_given(store: &dyn MetaStore) {
    let (owner, _) = stored_key("owner");
    let note = longest_note();
    let spec = ShareSpec {
        filename: "slides.pdf".into(),
        size: Some(5),
        note: Some(note.clone()),
        ..ShareSpec::default()
    };
    let with_note = SharePolicy::default()
        .new_share(&spec, Some(owner.id.clone()), t0())
        .unwrap();
    assert_eq!(
        with_note.note.as_ref().map(Note::as_str),
        Some(note.as_str())
    );
    let mut without_note = pending_share(1);
    without_note.owner = Some(owner.id.clone());
    store.insert_share(&with_note).await.unwrap();
    store.insert_share(&without_note).await.unwrap();
    assert_eq!(
        store.get_share(&with_note.id).await.unwrap(),
        Some(with_note.clone())
    );
    assert_eq!(
        store
            .get_share(&without_note.id)
            .await
            .unwrap()
            .unwrap()
            .note,
        None
    );
    // Publishing and listing keep the note; the recipient reads it after the upload.
    let published = publish_stored(store, &with_note.id).await;
    assert_eq!(published.note, with_note.note);
    let listed = store.list_shares(&owner.id, None, 10).await.unwrap();
    let listed_note = |id: &once_domain::ShareId| {
        listed
            .iter()
            .find(|share| &share.id == id)
            .map(|share| share.note.clone())
    };
    assert_eq!(listed_note(&with_note.id), Some(with_note.note.clone()));
    assert_eq!(listed_note(&without_note.id), Some(None));

    let spec = RequestSpec {
        max_size: Some(100),
        expires_in: Some(secs(3600)),
        note: Some("Bitte den Vertrag, unterschrieben.\n\tDanke!".into()),
        requester: Some("Ünal from accounting".into()),
        ..RequestSpec::default()
    };
    let asking = RequestPolicy::default()
        .new_request(&spec, &SharePolicy::default(), owner.id.clone(), t0())
        .unwrap();
    assert!(asking.note.is_some() && asking.requester.is_some());
    let silent = new_request(&owner);
    store.insert_request(&asking).await.unwrap();
    store.insert_request(&silent).await.unwrap();
    assert_eq!(
        store.get_request(&asking.id).await.unwrap(),
        Some(asking.clone())
    );
    let stored_silent = store.get_request(&silent.id).await.unwrap().unwrap();
    assert_eq!((stored_silent.note, stored_silent.requester), (None, None));
    let listed = store.list_requests(&owner.id).await.unwrap();
    assert!(listed.contains(&asking), "{listed:?}");

    // The share an upload turns into has no note, and fulfilling keeps the request's.
    let share = asking
        .share_for(once_domain::ShareId::generate(), received_upload(), t0())
        .unwrap();
    let outcome = store
        .fulfil_request(&asking.id, &share, t0())
        .await
        .unwrap();
    assert!(
        matches!(outcome, FulfilOutcome::Fulfilled(_)),
        "{outcome:?}"
    );
    assert_eq!(
        store.get_share(&share.id).await.unwrap().unwrap().note,
        None
    );
    let fulfilled = store.get_request(&asking.id).await.unwrap().unwrap();
    assert_eq!(
        (fulfilled.note, fulfilled.requester),
        (asking.note, asking.requester)
    );
}

async fn expired_request_is_not_fulfilled(store: &dyn MetaStore) {
    let (owner, _) = stored_key("owner");
    let request = new_request(&owner);
    store.insert_request(&request).await.unwrap();
    let share_id = once_domain::ShareId::generate();
    let share = request
        .share_for(share_id.clone(), received_upload(), t0())
        .unwrap();
    let outcome = store
        .fulfil_request(&request.id, &share, request.expires_at)
        .await
        .unwrap();
    assert_eq!(outcome, FulfilOutcome::Expired);
    assert!(store.get_share(&share_id).await.unwrap().is_none());
}

async fn reaper_takes_only_what_is_due(store: &dyn MetaStore) {
    let live = ready_share(store, 1).await;
    let used = ready_share(store, 1).await;
    let lease_end = add(t0(), secs(60));
    store
        .claim_share(&used.id, t0(), lease_end)
        .await
        .unwrap()
        .unwrap();
    let abandoned = pending_share(1);
    store.insert_share(&abandoned).await.unwrap();
    let hold = add(t0(), secs(30));

    // During the lease nothing is due.
    assert!(
        store
            .take_reap_batch(t0(), t0(), hold, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // After the lease (and the upload window) the used and abandoned shares are due.
    let later = add(t0(), secs(601));
    let mut taken: Vec<_> = store
        .take_reap_batch(later, later, add(later, secs(30)), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|candidate| candidate.share_id)
        .collect();
    taken.sort();
    let mut expected = vec![used.id.clone(), abandoned.id.clone()];
    expected.sort();
    assert_eq!(taken, expected);
    // Held: a second reaper does not get them again.
    assert!(
        store
            .take_reap_batch(later, later, add(later, secs(30)), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Tombstones stay answerable and are never taken again.
    assert!(
        store
            .mark_gone(&used.id, used.blob_key.as_ref())
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_gone(&used.id, used.blob_key.as_ref())
            .await
            .unwrap()
    );
    let gone = store.get_share(&used.id).await.unwrap().unwrap();
    assert_eq!((gone.state, gone.blob_key), (ShareState::Gone, None));
    assert!(
        !store
            .blob_referenced(used.blob_key.as_ref().unwrap())
            .await
            .unwrap()
    );
    assert!(
        store
            .blob_referenced(live.blob_key.as_ref().unwrap())
            .await
            .unwrap()
    );

    // After expiry the live share is due as well; after the hold the abandoned one comes back.
    let expired = add(live.expires_at, secs(60));
    let taken: Vec<_> = store
        .take_reap_batch(expired, expired, add(expired, secs(30)), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|candidate| candidate.share_id)
        .collect();
    assert!(taken.contains(&live.id) && taken.contains(&abandoned.id) && !taken.contains(&used.id));
}

async fn racing_reapers_never_take_the_same_share(store: &dyn MetaStore) {
    for _ in 0..20 {
        let share = ready_share(store, 1).await;
        store
            .revoke_share(&share.id, &once_domain::KeyId::generate())
            .await
            .unwrap();
        let (owner, _) = stored_key("x");
        let mut owned = pending_share(1);
        owned.owner = Some(owner.id.clone());
        store.insert_share(&owned).await.unwrap();
        assert!(store.revoke_share(&owned.id, &owner.id).await.unwrap());
    }
    let now = add(t0(), secs(1));
    let hold = add(now, secs(60));
    let batches = join_all((0..4).map(|_| store.take_reap_batch(now, now, hold, 7))).await;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for batch in batches {
        for candidate in batch.unwrap() {
            total += 1;
            assert!(seen.insert(candidate.share_id), "a share was taken twice");
        }
    }
    assert_eq!(total, 20, "every revoked share is taken once");
}

async fn purge_removes_old_tombstones_and_signatures(store: &dyn MetaStore) {
    let share = ready_share(store, 1).await;
    let (token, _) = stored_key("k");
    assert!(
        store
            .record_signature(&token.id, "s", add(t0(), secs(600)))
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_gone(&share.id, share.blob_key.as_ref())
            .await
            .unwrap()
    );
    // Not yet old enough: nothing goes.
    assert_eq!(store.purge(t0(), t0()).await.unwrap(), 0);
    assert!(
        !store
            .record_signature(&token.id, "s", add(t0(), secs(600)))
            .await
            .unwrap()
    );
    let much_later = add(share.expires_at, secs(3600));
    assert!(store.purge(much_later, much_later).await.unwrap() >= 2);
    assert!(store.get_share(&share.id).await.unwrap().is_none());
    assert!(
        store
            .record_signature(&token.id, "s", add(much_later, secs(600)))
            .await
            .unwrap()
    );
}

async fn keys_are_listed_oldest_first(store: &dyn MetaStore) {
    assert!(store.list_keys().await.unwrap().is_empty());
    let mut records = Vec::new();
    for (name, offset) in [("middle", 10), ("first", 0), ("last", 20)] {
        let (_, mut key) = stored_key(name);
        key.record.created_at = add(t0(), secs(offset));
        store.insert_key(&key).await.unwrap();
        records.push(key.record);
    }
    records.sort_by_key(|record| record.created_at);
    assert_eq!(store.list_keys().await.unwrap(), records);
    assert!(
        !store
            .revoke_key(&ApiToken::generate().id, t0())
            .await
            .unwrap(),
        "revoking an unknown key is a no-op"
    );
}

async fn counters_on_a_missing_share_change_nothing(store: &dyn MetaStore) {
    let missing = pending_share(1);
    store.count_upload_attempt(&missing.id).await.unwrap();
    store.count_preview(&missing.id).await.unwrap();
    assert!(store.get_share(&missing.id).await.unwrap().is_none());
    let share = pending_share(1);
    store.insert_share(&share).await.unwrap();
    store.count_preview(&missing.id).await.unwrap();
    assert_eq!(store.get_share(&share.id).await.unwrap(), Some(share));
}

async fn claims_keep_the_longest_lease_and_stop_at_expiry(store: &dyn MetaStore) {
    let share = ready_share(store, 3).await;
    let long = add(t0(), secs(120));
    let short = add(t0(), secs(60));
    let first = store.claim_share(&share.id, t0(), long).await.unwrap();
    assert_eq!(first.unwrap().lease_until, Some(long));
    // A later claim with a shorter lease does not cut the earlier claimant's lease short.
    let second = store.claim_share(&share.id, t0(), short).await.unwrap();
    assert_eq!(second.unwrap().lease_until, Some(long));
    // One second before expiry still counts; at expiry nothing does.
    let last_second = share.expires_at - time::Duration::seconds(1);
    let later = add(share.expires_at, secs(600));
    let third = store
        .claim_share(&share.id, last_second, later)
        .await
        .unwrap();
    let third = third.expect("claim one second before expiry");
    assert_eq!((third.downloads_left, third.lease_until), (0, Some(later)));
}

async fn publish_without_a_digest_keeps_the_declared_one(store: &dyn MetaStore) {
    let mut share = pending_share(1);
    share.sha256 = Some(Sha256Digest([9; 32]));
    share.upload_session = Some("multipart-upload-id".into());
    store.insert_share(&share).await.unwrap();
    assert_eq!(
        store.get_share(&share.id).await.unwrap(),
        Some(share.clone())
    );
    let mut upload = completed(BlobKey::generate(), 5, 0);
    upload.sha256 = None;
    upload.blob_version = Some("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".into());
    let outcome = store.publish_share(&share.id, &upload, t0()).await.unwrap();
    let PublishOutcome::Published(published) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(published.sha256, Some(Sha256Digest([9; 32])));
    assert_eq!(
        published.upload_session, None,
        "publishing ends the session"
    );
    assert_eq!(
        published.blob_version.as_deref(),
        Some("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"),
        "the version to serve is recorded"
    );
    assert_eq!(store.get_share(&share.id).await.unwrap(), Some(*published));
}

async fn requests_are_listed_newest_first(store: &dyn MetaStore) {
    let (owner, _) = stored_key("owner");
    let (other, _) = stored_key("other");
    assert!(store.list_requests(&owner.id).await.unwrap().is_empty());
    let mut mine = Vec::new();
    for offset in [10, 30, 20] {
        let mut request = new_request(&owner);
        request.created_at = add(t0(), secs(offset));
        request.expires_at = add(request.created_at, secs(3600));
        store.insert_request(&request).await.unwrap();
        mine.push(request);
    }
    store.insert_request(&new_request(&other)).await.unwrap();
    mine.sort_by_key(|request| std::cmp::Reverse(request.created_at));
    assert_eq!(store.list_requests(&owner.id).await.unwrap(), mine);
    assert_eq!(store.list_requests(&other.id).await.unwrap().len(), 1);
}

async fn racing_signatures_accept_exactly_one(store: &dyn MetaStore) {
    let (token, _) = stored_key("k");
    let until = add(t0(), secs(600));
    let results = join_all((0..20).map(|_| store.record_signature(&token.id, "same", until))).await;
    let accepted = results
        .into_iter()
        .map(Result::unwrap)
        .filter(|accepted| *accepted)
        .count();
    assert_eq!(accepted, 1, "exactly one of 20 racing uses of a signature");
}

async fn racing_uploads_fulfil_a_request_once(store: &dyn MetaStore) {
    let (owner, _) = stored_key("owner");
    let request = new_request(&owner);
    store.insert_request(&request).await.unwrap();
    let shares: Vec<Share> = (0..20)
        .map(|_| {
            let id = once_domain::ShareId::generate();
            request
                .share_for(id.clone(), received_upload(), t0())
                .unwrap()
        })
        .collect();
    let outcomes = join_all(
        shares
            .iter()
            .map(|share| store.fulfil_request(&request.id, share, t0())),
    )
    .await;
    let mut winners = Vec::new();
    for (share, outcome) in shares.iter().zip(outcomes) {
        match outcome.unwrap() {
            FulfilOutcome::Fulfilled(won) => {
                assert_eq!(*won, *share);
                winners.push(share.id.clone());
            }
            FulfilOutcome::SlotUsed => {
                assert!(
                    store.get_share(&share.id).await.unwrap().is_none(),
                    "a loser inserted its share"
                );
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of 20 racing uploads wins");
    let stored = store.get_request(&request.id).await.unwrap().unwrap();
    assert_eq!(stored.share_id.as_ref(), Some(&winners[0]));
    assert!(store.get_share(&winners[0]).await.unwrap().is_some());
}

async fn mark_gone_needs_the_current_blob_key(store: &dyn MetaStore) {
    // An abandoned upload never had bytes: the tombstone is made with no blob key.
    let abandoned = pending_share(1);
    store.insert_share(&abandoned).await.unwrap();
    assert!(store.mark_gone(&abandoned.id, None).await.unwrap());
    assert!(!store.mark_gone(&abandoned.id, None).await.unwrap());
    assert_eq!(
        store.get_share(&abandoned.id).await.unwrap().unwrap().state,
        ShareState::Gone
    );
    // A stale key (or none, for a share that has one) changes nothing.
    let ready = ready_share(store, 1).await;
    let stale = BlobKey::generate();
    assert!(!store.mark_gone(&ready.id, Some(&stale)).await.unwrap());
    assert!(!store.mark_gone(&ready.id, None).await.unwrap());
    assert_eq!(
        store.get_share(&ready.id).await.unwrap(),
        Some(ready.clone())
    );
    let missing = pending_share(1);
    assert!(!store.mark_gone(&missing.id, None).await.unwrap());
}

/// Three reapers, each looping over small batches as the real reaper does, at the same time:
/// every due share is taken by exactly one of them and reported gone exactly once.
async fn concurrent_reaper_loops_take_every_due_share_once(store: &dyn MetaStore) {
    let mut due = std::collections::HashSet::new();
    for _ in 0..15 {
        // Used up, lease over.
        let used = ready_share(store, 1).await;
        store
            .claim_share(&used.id, t0(), add(t0(), secs(1)))
            .await
            .unwrap()
            .unwrap();
        due.insert(used.id);
        // Expired unclaimed.
        let mut expired = pending_share(1);
        expired.expires_at = add(t0(), secs(30));
        store.insert_share(&expired).await.unwrap();
        let key = BlobKey::generate();
        let outcome = store
            .publish_share(&expired.id, &completed(key, 5, 7), t0())
            .await
            .unwrap();
        assert!(matches!(outcome, PublishOutcome::Published(_)));
        due.insert(expired.id);
    }
    let not_due = ready_share(store, 2).await;
    store
        .claim_share(&not_due.id, t0(), add(t0(), secs(1)))
        .await
        .unwrap()
        .unwrap();
    // Lease over, expired ones expired, the rest live and no upload window closed.
    let now = add(t0(), secs(60));
    let reaper = |_: usize| async move {
        let mut reported = Vec::new();
        loop {
            let batch = store
                .take_reap_batch(now, t0(), add(now, secs(300)), 4)
                .await
                .unwrap();
            if batch.is_empty() {
                return reported;
            }
            for candidate in batch {
                if store
                    .mark_gone(&candidate.share_id, candidate.blob_key.as_ref())
                    .await
                    .unwrap()
                {
                    reported.push(candidate.share_id);
                }
            }
        }
    };
    let reports = join_all((0..3).map(reaper)).await;
    let mut seen = std::collections::HashSet::new();
    for id in reports.into_iter().flatten() {
        assert!(seen.insert(id), "a share was reported by two reapers");
    }
    assert_eq!(seen, due, "every due share, and only those, is reaped once");
    let kept = store.get_share(&not_due.id).await.unwrap().unwrap();
    assert_eq!(kept.state, ShareState::Ready);
}

/// A request of a fresh owner, open for an hour from [`t0`], stored.
async fn stored_request(store: &dyn MetaStore) -> UploadRequest {
    let (owner, _) = stored_key("requester");
    let request = new_request(&owner);
    store.insert_request(&request).await.unwrap();
    request
}

/// One uploader's session of `request`, begun at [`t0`] with a ten-minute upload window and
/// the embedded store's staging id, stored.
async fn open_session(store: &dyn MetaStore, request: &UploadRequest) -> Share {
    let spec = SessionSpec {
        filename_hint: Some("from a stranger.tar".into()),
        content_type: Some("application/x-tar".into()),
        size: Some(5),
        sha256: None,
        encryption: None,
    };
    let mut share = request.session_share(&spec, secs(600), t0()).unwrap();
    share.upload_session = Some(format!("staging-{}", share.id));
    share.part_size = Some(8 << 20);
    store.insert_share(&share).await.unwrap();
    share
}

/// A session of `request` that its owner revoked before it completed.
async fn revoked_session(store: &dyn MetaStore, request: &UploadRequest) -> Share {
    let session = open_session(store, request).await;
    let revoked = store.revoke_share(&session.id, &request.owner).await;
    assert!(revoked.unwrap(), "the owner revokes the session");
    session
}

/// The expiry a completed session share gets: the request's share lifetime from completion.
fn session_expiry() -> once_domain::Instant {
    add(t0(), secs(7200))
}

/// Completes `session` of `request` at `now` with a fresh blob uploaded from [`t0`] and
/// [`session_expiry`].
async fn complete_session(
    store: &dyn MetaStore,
    request: &once_domain::RequestId,
    session: &once_domain::ShareId,
    now: once_domain::Instant,
) -> FulfilOutcome {
    complete_session_started(store, request, session, t0(), now).await
}

/// [`complete_session`] of an upload that started at `started_at`.
async fn complete_session_started(
    store: &dyn MetaStore,
    request: &once_domain::RequestId,
    session: &once_domain::ShareId,
    started_at: once_domain::Instant,
    now: once_domain::Instant,
) -> FulfilOutcome {
    let mut upload = completed(BlobKey::generate(), 5, 1);
    upload.started_at = started_at;
    store
        .fulfil_request_with(request, session, &upload, session_expiry(), now)
        .await
        .unwrap()
}

/// An archive listing of about 64 KiB, the largest the server accepts.
fn large_listing() -> String {
    let mut entries = Vec::new();
    let mut length = 2;
    while length < 64 * 1024 - 100 {
        let entry = format!(
            r#"{{"path":"photos/naïve \"quoted\" {}.jpg","size":{}}}"#,
            entries.len(),
            entries.len() * 1000
        );
        length += entry.len() + 1;
        entries.push(entry);
    }
    format!("[{}]", entries.join(","))
}

async fn upload_session_fields_round_trip(store: &dyn MetaStore) {
    let mut share = pending_share(1);
    share.upload_token = Some(UploadToken::generate());
    share.part_size = Some(64 << 20);
    share.contents = Some(large_listing());
    share.upload_session = Some("staging/0f3a".into());
    assert!(share.contents.as_ref().unwrap().len() > 60 * 1024);
    store.insert_share(&share).await.unwrap();
    assert_eq!(
        store.get_share(&share.id).await.unwrap(),
        Some(share.clone())
    );
    let token = share.upload_token.as_ref().unwrap();
    assert_eq!(
        store.get_share_by_upload_token(token).await.unwrap(),
        Some(share.clone())
    );
    // Publishing keeps the part size and the listing, which the landing page shows.
    let published = publish_stored(store, &share.id).await;
    assert_eq!(published.part_size, share.part_size);
    assert_eq!(published.contents, share.contents);
}

async fn upload_token_names_only_a_live_upload(store: &dyn MetaStore) {
    assert_eq!(
        store
            .get_share_by_upload_token(&UploadToken::generate())
            .await
            .unwrap(),
        None
    );
    let mut share = pending_share(1);
    share.upload_token = Some(UploadToken::generate());
    store.insert_share(&share).await.unwrap();
    let token = share.upload_token.clone().unwrap();
    // Shares without a token do not collide with each other; two with the same one do.
    store.insert_share(&pending_share(1)).await.unwrap();
    store.insert_share(&pending_share(1)).await.unwrap();
    let mut twin = pending_share(1);
    twin.upload_token = Some(token.clone());
    assert!(matches!(
        store.insert_share(&twin).await,
        Err(MetaError::Database(_))
    ));
    assert!(store.get_share(&twin.id).await.unwrap().is_none());

    let published = publish_stored(store, &share.id).await;
    assert_eq!(published.upload_token, None, "publishing ends the token");
    assert_eq!(store.get_share_by_upload_token(&token).await.unwrap(), None);
    let stored = store.get_share(&share.id).await.unwrap().unwrap();
    assert_eq!(stored.upload_token, None);

    // A tombstone names no upload either.
    let mut abandoned = pending_share(1);
    abandoned.upload_token = Some(UploadToken::generate());
    store.insert_share(&abandoned).await.unwrap();
    let abandoned_token = abandoned.upload_token.clone().unwrap();
    assert!(store.mark_gone(&abandoned.id, None).await.unwrap());
    assert_eq!(
        store
            .get_share_by_upload_token(&abandoned_token)
            .await
            .unwrap(),
        None
    );
}

async fn session_completion_fulfils_the_request(store: &dyn MetaStore) {
    let request = stored_request(store).await;
    let session = open_session(store, &request).await;
    let token = session.upload_token.clone().unwrap();
    let blob_key = BlobKey::generate();
    let mut upload = completed(blob_key.clone(), 5, 4);
    upload.blob_version = Some("v7".into());
    let now = add(t0(), secs(60));
    let outcome = store
        .fulfil_request_with(&request.id, &session.id, &upload, session_expiry(), now)
        .await
        .unwrap();
    let FulfilOutcome::Fulfilled(published) = outcome else {
        panic!("{outcome:?}")
    };
    let expected = Share {
        state: ShareState::Ready,
        blob_key: Some(blob_key),
        blob_version: Some("v7".into()),
        size: Some(5),
        sha256: Some(Sha256Digest([4; 32])),
        published_at: Some(now),
        expires_at: session_expiry(),
        upload_session: None,
        upload_token: None,
        ..session.clone()
    };
    assert_eq!(*published, expected);
    assert_eq!(published.owner.as_ref(), Some(&request.owner));
    assert_eq!(store.get_share(&session.id).await.unwrap(), Some(expected));
    assert_eq!(store.get_share_by_upload_token(&token).await.unwrap(), None);
    let fulfilled = store.get_request(&request.id).await.unwrap().unwrap();
    assert_eq!(fulfilled.share_id.as_ref(), Some(&session.id));
    assert_eq!(fulfilled.fulfilled_at, Some(now));
    assert_eq!(
        store.count_open_sessions(&request.id, now).await.unwrap(),
        0
    );
}

async fn later_session_is_refused_once_the_request_is_fulfilled(store: &dyn MetaStore) {
    let request = stored_request(store).await;
    let first = open_session(store, &request).await;
    let second = open_session(store, &request).await;
    let now = add(t0(), secs(60));
    let outcome = complete_session(store, &request.id, &first.id, now).await;
    assert!(
        matches!(outcome, FulfilOutcome::Fulfilled(_)),
        "{outcome:?}"
    );
    let later = add(now, secs(5));
    for session in [&second, &first] {
        let outcome = store
            .fulfil_request_with(
                &request.id,
                &session.id,
                &completed(BlobKey::generate(), 5, 2),
                add(session_expiry(), secs(5)),
                later,
            )
            .await
            .unwrap();
        assert_eq!(outcome, FulfilOutcome::SlotUsed);
    }
    let stored = store.get_request(&request.id).await.unwrap().unwrap();
    assert_eq!(stored.share_id.as_ref(), Some(&first.id));
    assert_eq!(stored.fulfilled_at, Some(now));
    assert_eq!(
        store.get_share(&second.id).await.unwrap(),
        Some(second.clone()),
        "the refused session is left as it was"
    );
    let winner = store.get_share(&first.id).await.unwrap().unwrap();
    assert_eq!(
        (winner.published_at, winner.expires_at),
        (Some(now), session_expiry()),
        "a repeated completion changed nothing"
    );
}

async fn session_no_longer_pending_leaves_the_request_open(store: &dyn MetaStore) {
    let request = stored_request(store).await;
    let revoked = revoked_session(store, &request).await;
    let outcome = complete_session(store, &request.id, &revoked.id, t0()).await;
    assert_eq!(outcome, FulfilOutcome::SlotUsed);
    // Neither write happened: the request is still open for another session.
    assert_eq!(
        store.get_request(&request.id).await.unwrap(),
        Some(request.clone())
    );
    assert_eq!(
        store.get_share(&revoked.id).await.unwrap().unwrap().state,
        ShareState::Revoked
    );
    let other = open_session(store, &request).await;
    let outcome = complete_session(store, &request.id, &other.id, t0()).await;
    assert!(
        matches!(outcome, FulfilOutcome::Fulfilled(_)),
        "{outcome:?}"
    );
}

async fn session_of_an_expired_request_is_refused(store: &dyn MetaStore) {
    let request = stored_request(store).await;
    let session = open_session(store, &request).await;
    let (id, expires_at) = (&request.id, request.expires_at);
    let outcome =
        complete_session_started(store, id, &session.id, expires_at, add(expires_at, secs(1)))
            .await;
    assert_eq!(outcome, FulfilOutcome::Expired);
    // The session's own window counts as well.
    let window_end = session.upload_expires_at;
    let outcome = complete_session_started(store, id, &session.id, window_end, window_end).await;
    assert_eq!(outcome, FulfilOutcome::Expired);
    assert_eq!(store.get_request(id).await.unwrap(), Some(request.clone()));
    assert_eq!(store.get_share(&session.id).await.unwrap(), Some(session));
    // An upload that started in time may complete after both windows closed.
    let other = open_session(store, &request).await;
    let last_second = other.upload_expires_at - time::Duration::seconds(1);
    let finished = add(expires_at, secs(3600));
    let outcome = complete_session_started(store, id, &other.id, last_second, finished).await;
    assert!(
        matches!(outcome, FulfilOutcome::Fulfilled(_)),
        "{outcome:?}"
    );
}

async fn session_completion_needs_a_session_of_that_request(store: &dyn MetaStore) {
    let request = stored_request(store).await;
    let elsewhere = stored_request(store).await;
    let foreign = open_session(store, &elsewhere).await;
    let plain = pending_share(1);
    store.insert_share(&plain).await.unwrap();
    let session = open_session(store, &request).await;
    let unknown_request = once_domain::RequestId::generate();
    let unknown_share = once_domain::ShareId::generate();
    for (request_id, share_id) in [
        (&request.id, &foreign.id),
        (&request.id, &plain.id),
        (&request.id, &unknown_share),
        (&unknown_request, &session.id),
    ] {
        let outcome = complete_session(store, request_id, share_id, t0()).await;
        assert_eq!(outcome, FulfilOutcome::NotFound);
    }
    assert_eq!(
        store.get_request(&request.id).await.unwrap(),
        Some(request.clone())
    );
    assert_eq!(store.get_share(&foreign.id).await.unwrap(), Some(foreign));
    assert_eq!(store.get_share(&plain.id).await.unwrap(), Some(plain));
    assert_eq!(store.get_share(&session.id).await.unwrap(), Some(session));
}

/// Sessions of one request completing at the same moment, each on a task of its own (so on
/// PostgreSQL each on a connection of its own): exactly one fulfils the request.
async fn racing_sessions_fulfil_a_request_once(shared: &Arc<dyn MetaStore>) {
    racing_sessions_fulfil_a_request_once_on(std::slice::from_ref(shared)).await;
}

/// [`racing_sessions_fulfil_a_request_once`] with the racing completions spread over
/// `instances`, stores open on one database (the first also prepares and inspects): for a
/// backend that several instances share.
pub async fn racing_sessions_fulfil_a_request_once_on(instances: &[Arc<dyn MetaStore>]) {
    const SESSIONS: usize = 12;
    let store = instances[0].as_ref();
    let request = stored_request(store).await;
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        sessions.push(open_session(store, &request).await);
    }
    let now = add(t0(), secs(60));
    let start = Arc::new(tokio::sync::Barrier::new(SESSIONS));
    let racers: Vec<_> = sessions
        .iter()
        .enumerate()
        .map(|(index, session)| {
            let store = Arc::clone(&instances[index % instances.len()]);
            let start = Arc::clone(&start);
            let (request_id, share_id) = (request.id.clone(), session.id.clone());
            let fill = u8::try_from(index).unwrap();
            tokio::spawn(async move {
                let upload = completed(BlobKey::generate(), 5, fill);
                start.wait().await;
                store
                    .fulfil_request_with(&request_id, &share_id, &upload, session_expiry(), now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (session, racer) in sessions.iter().zip(racers) {
        match racer.await.unwrap() {
            FulfilOutcome::Fulfilled(won) => {
                assert_eq!(won.id, session.id);
                winners.push(*won);
            }
            FulfilOutcome::SlotUsed => {
                assert_eq!(
                    store.get_share(&session.id).await.unwrap().as_ref(),
                    Some(session),
                    "a losing session was changed"
                );
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of {SESSIONS} racing sessions wins"
    );
    let winner = &winners[0];
    let stored = store.get_request(&request.id).await.unwrap().unwrap();
    assert_eq!(stored.share_id.as_ref(), Some(&winner.id));
    assert_eq!(
        store.get_share(&winner.id).await.unwrap().as_ref(),
        Some(winner)
    );
    assert_eq!(winner.state, ShareState::Ready);
    assert_eq!(
        store.count_open_sessions(&request.id, now).await.unwrap(),
        u32::try_from(SESSIONS - 1).unwrap()
    );
}

async fn open_sessions_are_counted_per_request(store: &dyn MetaStore) {
    let request = stored_request(store).await;
    let other_request = stored_request(store).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(open_session(store, &request).await);
    }
    let now = add(t0(), secs(10));
    // Not counted: a revoked session, one whose window closes at `now`, another request's
    // session, and a share of no request.
    revoked_session(store, &request).await;
    let closing = request
        .session_share(&SessionSpec::default(), secs(10), t0())
        .unwrap();
    store.insert_share(&closing).await.unwrap();
    assert_eq!(closing.upload_expires_at, now);
    open_session(store, &other_request).await;
    store.insert_share(&pending_share(1)).await.unwrap();

    assert_eq!(
        store.count_open_sessions(&request.id, t0()).await.unwrap(),
        4
    );
    assert_eq!(
        store.count_open_sessions(&request.id, now).await.unwrap(),
        3
    );
    assert_eq!(
        store
            .count_open_sessions(&other_request.id, now)
            .await
            .unwrap(),
        1
    );
    // A completed session is no longer open.
    let outcome = complete_session(store, &request.id, &open[0].id, now).await;
    assert!(
        matches!(outcome, FulfilOutcome::Fulfilled(_)),
        "{outcome:?}"
    );
    assert_eq!(
        store.count_open_sessions(&request.id, now).await.unwrap(),
        2
    );
    let window_closed = open[1].upload_expires_at;
    assert_eq!(
        store
            .count_open_sessions(&request.id, window_closed)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .count_open_sessions(&once_domain::RequestId::generate(), now)
            .await
            .unwrap(),
        0
    );
}

async fn refused_uploads_are_counted_per_request(store: &dyn MetaStore) {
    let request = stored_request(store).await;
    let other = stored_request(store).await;
    assert_eq!(store.refused_uploads(&request.id).await.unwrap(), 0);
    assert_eq!(store.count_refused_upload(&request.id).await.unwrap(), 1);
    assert_eq!(store.count_refused_upload(&request.id).await.unwrap(), 2);
    assert_eq!(store.refused_uploads(&request.id).await.unwrap(), 2);
    assert_eq!(store.refused_uploads(&other.id).await.unwrap(), 0);
    let unknown = once_domain::RequestId::generate();
    assert_eq!(store.count_refused_upload(&unknown).await.unwrap(), 0);
    assert_eq!(store.refused_uploads(&unknown).await.unwrap(), 0);
    assert_eq!(
        store.get_request(&request.id).await.unwrap(),
        Some(request),
        "the counter changes nothing else"
    );
}

async fn blob_keys_of_pending_shares_are_referenced(store: &dyn MetaStore) {
    let mut pending = pending_share(1);
    let blob_key = BlobKey::generate();
    pending.blob_key = Some(blob_key.clone());
    pending.upload_session = Some("multipart-upload-id".into());
    store.insert_share(&pending).await.unwrap();
    assert!(store.blob_referenced(&blob_key).await.unwrap());
    assert!(!store.blob_referenced(&BlobKey::generate()).await.unwrap());
}

async fn shares_are_listed_per_owner_newest_first_in_pages(store: &dyn MetaStore) {
    let owner = once_domain::KeyId::generate();
    let other = once_domain::KeyId::generate();
    let mut mine = Vec::new();
    for index in 0..5 {
        let mut share = pending_share(1);
        share.owner = Some(owner.clone());
        // Two shares in the same second: the id orders them.
        share.created_at = t0() + time::Duration::seconds(index.min(3));
        store.insert_share(&share).await.unwrap();
        mine.push(share);
    }
    let mut theirs = pending_share(1);
    theirs.owner = Some(other.clone());
    store.insert_share(&theirs).await.unwrap();
    // An uploader's unfinished upload to one of the owner's requests is not a share yet.
    let mut attempt = pending_share(1);
    attempt.owner = Some(owner.clone());
    attempt.request_id = Some(once_domain::RequestId::generate());
    store.insert_share(&attempt).await.unwrap();

    let mut listed = Vec::new();
    let mut cursor: Option<Share> = None;
    loop {
        let page = store
            .list_shares(
                &owner,
                cursor.as_ref().map(|last| (last.created_at, &last.id)),
                2,
            )
            .await
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last().cloned() else {
            break;
        };
        listed.extend(page);
        cursor = Some(last);
    }
    let ids: Vec<_> = listed.iter().map(|share| share.id.clone()).collect();
    assert_eq!(ids.len(), 5, "every share once: {ids:?}");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "a share listed twice: {ids:?}");
    assert!(!ids.contains(&attempt.id) && !ids.contains(&theirs.id));
    assert!(
        listed
            .windows(2)
            .all(|pair| pair[0].created_at >= pair[1].created_at),
        "not newest first"
    );
    assert!(
        store
            .list_shares(&other, None, 10)
            .await
            .unwrap()
            .iter()
            .all(|share| share.id == theirs.id)
    );
}

/// The test vectors' public values (`docs/encryption.md`): a password share's encryption, or
/// with `request_upload` one made by an upload to an encrypted request.
fn sample_encryption(request_upload: bool) -> Encryption {
    let password = (!request_upload).then(|| PasswordParams {
        salt: "oKGio6SlpqeoqaqrrK2urw".into(),
        memory_kib: 19456,
        iterations: 2,
        parallelism: 1,
    });
    let (ephemeral, recipient) = if request_upload {
        (
            Some("Z13VdO13iTELPS52gfN5C0ZsdzsVIf7PNld5WDcepS8"),
            Some("eaYx7t4b-cmPEgMs3q3Q56B5OY_HhriMyEbsia-FpRo"),
        )
    } else {
        (None, None)
    };
    Encryption::parse(
        once_domain::encryption::SCHEME_V1,
        "JJfw7-05amTvw0zRiD_kjDCVQoOgHA9ZqY1daairznU",
        "gIGCg4SFhoeIiYqLVkuxaEFmDbxuRsqfmMXdbLG3DfHD_dEH_4PJ_m3-eDEtbaJapHLBgJA-p7eJuPcvGeit7nL5IREnFM1EyjflmSB8",
        password,
        ephemeral,
        recipient,
    )
    .unwrap()
}

async fn encrypted_shares_and_requests_round_trip(store: &dyn MetaStore) {
    let (owner, _) = stored_key("owner");
    let encryption = sample_encryption(false);
    let spec = ShareSpec {
        size: Some(5),
        encryption: Some(encryption.clone()),
        ..ShareSpec::default()
    };
    let share = SharePolicy::default()
        .new_share(&spec, Some(owner.id.clone()), t0())
        .unwrap();
    store.insert_share(&share).await.unwrap();
    assert_eq!(
        store.get_share(&share.id).await.unwrap(),
        Some(share.clone())
    );
    // Publishing, listing and claiming hand the encryption back unchanged.
    let published = publish_stored(store, &share.id).await;
    assert_eq!(published.encryption.as_ref(), Some(&encryption));
    let listed = store.list_shares(&owner.id, None, 10).await.unwrap();
    assert_eq!(listed[0].encryption.as_ref(), Some(&encryption));
    let claimed = store
        .claim_share(&share.id, t0(), add(t0(), secs(60)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.encryption, Some(encryption));
    // A plain share has none.
    let plain = ready_share(store, 1).await;
    assert_eq!(
        store
            .get_share(&plain.id)
            .await
            .unwrap()
            .unwrap()
            .encryption,
        None
    );

    let spec = RequestSpec {
        max_size: Some(100),
        expires_in: Some(secs(3600)),
        encrypted: true,
        ..RequestSpec::default()
    };
    let request = RequestPolicy::default()
        .new_request(&spec, &SharePolicy::default(), owner.id.clone(), t0())
        .unwrap();
    store.insert_request(&request).await.unwrap();
    assert_eq!(
        store.get_request(&request.id).await.unwrap(),
        Some(request.clone())
    );
    let silent = new_request(&owner);
    store.insert_request(&silent).await.unwrap();
    assert!(
        !store
            .get_request(&silent.id)
            .await
            .unwrap()
            .unwrap()
            .encrypted
    );
    assert!(
        store
            .list_requests(&owner.id)
            .await
            .unwrap()
            .contains(&request)
    );

    // An encrypted session completes into an encrypted share of the requester.
    let upload_encryption = sample_encryption(true);
    let session_spec = SessionSpec {
        size: Some(5),
        encryption: Some(upload_encryption.clone()),
        ..SessionSpec::default()
    };
    let session = request
        .session_share(&session_spec, secs(600), t0())
        .unwrap();
    store.insert_share(&session).await.unwrap();
    assert_eq!(
        store.get_share(&session.id).await.unwrap(),
        Some(session.clone())
    );
    let outcome = complete_session(store, &request.id, &session.id, add(t0(), secs(60))).await;
    let FulfilOutcome::Fulfilled(fulfilled) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(fulfilled.encryption, Some(upload_encryption));
    assert!(
        store
            .get_request(&request.id)
            .await
            .unwrap()
            .unwrap()
            .encrypted
    );
}

async fn key_usage_counts_recent_shares_and_the_bytes_still_held(store: &dyn MetaStore) {
    let owner = once_domain::KeyId::generate();
    let day_ago = t0() - time::Duration::hours(24);
    let usage = |now| store.key_usage(&owner, day_ago, now);
    assert_eq!(usage(t0()).await.unwrap(), once_domain::KeyUsage::default());
    let owned = |size: Option<u64>| {
        let mut share = pending_share(1);
        share.owner = Some(owner.clone());
        share.size = size;
        share
    };
    // Waiting for its upload: counted, with its declared size (none yet: 0 bytes).
    let waiting = owned(Some(5));
    store.insert_share(&waiting).await.unwrap();
    store.insert_share(&owned(None)).await.unwrap();
    // Published and downloadable: 5 bytes held.
    let published = owned(Some(5));
    store.insert_share(&published).await.unwrap();
    publish_stored(store, &published.id).await;
    // Downloaded: created today, holds nothing any more.
    let downloaded = owned(Some(5));
    store.insert_share(&downloaded).await.unwrap();
    publish_stored(store, &downloaded.id).await;
    store
        .claim_share(&downloaded.id, t0(), add(t0(), secs(60)))
        .await
        .unwrap()
        .expect("claim");
    // Revoked: created today, holds nothing.
    let revoked = owned(Some(5));
    store.insert_share(&revoked).await.unwrap();
    assert!(store.revoke_share(&revoked.id, &owner).await.unwrap());
    // Created before the window: holds its bytes, is not counted among today's.
    let mut old = owned(Some(5));
    old.created_at = day_ago - time::Duration::seconds(1);
    store.insert_share(&old).await.unwrap();
    publish_stored(store, &old.id).await;
    // An uploader's attempt at one of the owner's requests holds bytes but is no share yet.
    let mut attempt = owned(Some(7));
    attempt.request_id = Some(once_domain::RequestId::generate());
    store.insert_share(&attempt).await.unwrap();
    // Someone else's share counts for them only.
    let mut theirs = pending_share(1);
    theirs.owner = Some(once_domain::KeyId::generate());
    store.insert_share(&theirs).await.unwrap();

    assert_eq!(
        usage(t0()).await.unwrap(),
        once_domain::KeyUsage {
            shares_created: 5,
            bytes_held: 5 + 5 + 5 + 7,
        }
    );
    // Once the upload windows closed and the shares expired, nothing is held.
    let later = add(t0(), secs(30 * 24 * 3600));
    assert_eq!(usage(later).await.unwrap().bytes_held, 0);
}

fn audit_source() -> once_domain::AuditSource {
    once_domain::AuditSource::new(Some("192.0.2.7".into()), Some("conformance/1"), None)
}

fn every_event() -> crate::AuditFilter {
    crate::AuditFilter {
        owner: None,
        share: None,
        request: None,
        since: None,
        after: None,
        limit: 100,
    }
}

async fn audit_events_are_filtered_by_owner_share_request_and_time(store: &dyn MetaStore) {
    use once_domain::{AuditEvent, AuditKind};
    assert!(store.audit_events(&every_event()).await.unwrap().is_empty());
    let (mine, theirs) = (
        once_domain::KeyId::generate(),
        once_domain::KeyId::generate(),
    );
    let mut share = pending_share(1);
    share.owner = Some(mine.clone());
    let request = once_domain::RequestId::generate();
    let by_key = once_domain::AuditSource::new(None, None, Some(mine.clone()));
    let events = [
        AuditEvent::new(AuditKind::ShareCreated, t0(), &by_key)
            .of_share(&share)
            .with_detail("size=5"),
        AuditEvent::new(
            AuditKind::UploadCompleted,
            add(t0(), secs(1)),
            &audit_source(),
        )
        .of_share(&share),
        AuditEvent::new(AuditKind::RequestCreated, add(t0(), secs(2)), &by_key)
            .of_request_id(&request)
            .of_key(&mine),
        AuditEvent::new(AuditKind::KeyCreated, add(t0(), secs(3)), &audit_source()).of_key(&theirs),
    ];
    for event in &events {
        store.record_audit(event).await.unwrap();
    }
    let all = store.audit_events(&every_event()).await.unwrap();
    let read: Vec<_> = all.iter().map(|record| record.event.clone()).collect();
    assert_eq!(
        read, events,
        "every field round-trips, in the order written"
    );
    assert!(all.windows(2).all(|pair| pair[0].seq < pair[1].seq));

    let kinds = |records: Vec<crate::AuditRecord>| -> Vec<AuditKind> {
        records.iter().map(|record| record.event.kind).collect()
    };
    let filter = |change: &dyn Fn(&mut crate::AuditFilter)| {
        let mut filter = every_event();
        change(&mut filter);
        filter
    };
    let mine_only = filter(&|f| f.owner = Some(mine.clone()));
    assert_eq!(
        kinds(store.audit_events(&mine_only).await.unwrap()),
        [
            AuditKind::ShareCreated,
            AuditKind::UploadCompleted,
            AuditKind::RequestCreated
        ]
    );
    let of_share = filter(&|f| f.share = Some(share.id.clone()));
    assert_eq!(
        kinds(store.audit_events(&of_share).await.unwrap()),
        [AuditKind::ShareCreated, AuditKind::UploadCompleted]
    );
    let of_share_theirs = filter(&|f| {
        f.share = Some(share.id.clone());
        f.owner = Some(theirs.clone());
    });
    assert!(
        store
            .audit_events(&of_share_theirs)
            .await
            .unwrap()
            .is_empty()
    );
    let of_request = filter(&|f| f.request = Some(request.clone()));
    assert_eq!(
        kinds(store.audit_events(&of_request).await.unwrap()),
        [AuditKind::RequestCreated]
    );
    let since = filter(&|f| f.since = Some(add(t0(), secs(2))));
    assert_eq!(
        kinds(store.audit_events(&since).await.unwrap()),
        [AuditKind::RequestCreated, AuditKind::KeyCreated]
    );
    // Pages: at most `limit`, then on from the last one's place.
    let first = store.audit_events(&filter(&|f| f.limit = 3)).await.unwrap();
    assert_eq!(first.len(), 3);
    let rest = store
        .audit_events(&filter(&|f| f.after = Some(first[2].seq)))
        .await
        .unwrap();
    assert_eq!(kinds(rest), [AuditKind::KeyCreated]);
}

async fn old_audit_events_are_purged(store: &dyn MetaStore) {
    use once_domain::{AuditEvent, AuditKind};
    let key = once_domain::KeyId::generate();
    for offset in [0, 10, 20] {
        let event = AuditEvent::new(
            AuditKind::KeyCreated,
            add(t0(), secs(offset)),
            &audit_source(),
        )
        .of_key(&key);
        store.record_audit(&event).await.unwrap();
    }
    assert_eq!(store.purge_audit(t0()).await.unwrap(), 0);
    assert_eq!(store.purge_audit(add(t0(), secs(11))).await.unwrap(), 2);
    let left = store.audit_events(&every_event()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event.at, add(t0(), secs(20)));
}

async fn audit_events_written_in_batches_keep_their_order(store: &dyn MetaStore) {
    use once_domain::{AuditEvent, AuditKind};
    store.record_audits(&[]).await.unwrap();
    assert!(store.audit_events(&every_event()).await.unwrap().is_empty());
    let key = once_domain::KeyId::generate();
    let batch: Vec<_> = (0..5)
        .map(|offset| {
            AuditEvent::new(
                AuditKind::KeyCreated,
                add(t0(), secs(offset)),
                &audit_source(),
            )
            .of_key(&key)
            .with_detail(format!("n={offset}"))
        })
        .collect();
    store.record_audits(&batch).await.unwrap();
    let read: Vec<_> = store
        .audit_events(&every_event())
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.event)
        .collect();
    assert_eq!(read, batch, "the whole batch, in the order given");

    // A second batch goes after the first, however its events' times compare.
    let more: Vec<_> = (0..2)
        .map(|offset| {
            AuditEvent::new(
                AuditKind::KeyRevoked,
                add(t0(), secs(offset)),
                &audit_source(),
            )
            .of_key(&key)
        })
        .collect();
    store.record_audits(&more).await.unwrap();
    let all = store.audit_events(&every_event()).await.unwrap();
    assert_eq!(all.len(), 7);
    assert!(all.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    assert_eq!(all[5].event, more[0]);
    assert_eq!(all[6].event, more[1]);
}

async fn a_plain_claim_takes_only_plain_shares(store: &dyn MetaStore) {
    let lease = add(t0(), secs(60));
    let (owner, _) = stored_key("owner");
    let spec = ShareSpec {
        size: Some(5),
        encryption: Some(sample_encryption(false)),
        ..ShareSpec::default()
    };
    let encrypted = SharePolicy::default()
        .new_share(&spec, Some(owner.id.clone()), t0())
        .unwrap();
    store.insert_share(&encrypted).await.unwrap();
    let encrypted = publish_stored(store, &encrypted.id).await;
    assert_eq!(
        store
            .claim_plain_share(&encrypted.id, t0(), lease)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.get_share(&encrypted.id).await.unwrap(),
        Some(encrypted.clone()),
        "a refused plain claim changes nothing"
    );

    let plain = ready_share(store, 2).await;
    let claimed = store
        .claim_plain_share(&plain.id, t0(), lease)
        .await
        .unwrap()
        .expect("a plain share is claimed");
    assert_eq!(claimed.downloads_left, 1);
    assert_eq!(claimed.lease_until, Some(lease));
    // The same rules as any claim: none past the last download or the expiry.
    store
        .claim_plain_share(&plain.id, t0(), lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .claim_plain_share(&plain.id, t0(), lease)
            .await
            .unwrap(),
        None
    );
    let other = ready_share(store, 1).await;
    assert_eq!(
        store
            .claim_plain_share(&other.id, other.expires_at, lease)
            .await
            .unwrap(),
        None
    );
}
