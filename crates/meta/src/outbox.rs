//! The webhook outbox: events wait here, durably, until a delivery loop on some instance has
//! handed them to the receiver. Taking a batch is one conditional write that leases the rows,
//! so with many instances on one database each event is in one instance's hands at a time, and
//! an instance that dies mid-delivery leaves its lease to run out and the event to another.

use async_trait::async_trait;
use once_domain::Instant;

use crate::MetaResult;

/// One event as kept: its body is the exact JSON the receiver gets (and the signature covers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The Standard Webhooks message id (`webhook-id`), the same on every attempt.
    pub id: String,
    /// Where it goes: `webhook` or `email`.
    pub channel: String,
    /// The event type (`share.consumed`, …).
    pub kind: String,
    pub payload: String,
    pub created_at: Instant,
    /// Deliveries tried so far, this one included once the event has been taken.
    pub attempts: u32,
}

/// Where an event stands, for the operator's and the tests' view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxCounts {
    pub waiting: u64,
    pub delivered: u64,
    pub failed: u64,
}

#[async_trait]
pub trait Outbox: Send + Sync {
    /// Keeps a new event, due at once.
    async fn enqueue_event(&self, event: &OutboxEvent) -> MetaResult<()>;
    /// Leases up to `limit` due events (oldest first) until `lease_until`, counting an attempt
    /// on each. An event under another live lease, delivered or given up is never returned.
    async fn take_due_events(
        &self,
        now: Instant,
        lease_until: Instant,
        limit: u32,
    ) -> MetaResult<Vec<OutboxEvent>>;
    /// The receiver took the event; false if it was not waiting (delivered already).
    async fn event_delivered(&self, id: &str, now: Instant) -> MetaResult<bool>;
    /// The attempt failed: tried again from `retry_at`, or given up (kept, marked failed) when
    /// `None`. `error` is a short reason for the operator.
    async fn event_failed(
        &self,
        id: &str,
        retry_at: Option<Instant>,
        error: &str,
        now: Instant,
    ) -> MetaResult<()>;
    async fn outbox_counts(&self) -> MetaResult<OutboxCounts>;
    /// Deletes delivered and given-up events older than `before`.
    async fn purge_events(&self, before: Instant) -> MetaResult<u64>;
}

pub(crate) const ENQUEUE_STATEMENT: &str = "INSERT INTO outbox (id, channel, kind, payload, created_at, attempts, next_attempt_at) \
     VALUES ($1, $2, $3, $4, $5, 0, $5)";

/// The due rows are chosen once, in a materialised CTE (PostgreSQL re-runs a plain `IN`
/// subquery per row and, skipping the rows this very statement just leased, would take past
/// the limit), and the condition is repeated in the update, so a row another instance leased
/// and committed in between is dropped, not taken twice; PostgreSQL adds SKIP LOCKED to pass
/// over rows being taken right now.
macro_rules! take_due {
    ($locks:literal) => {
        concat!(
            "WITH due AS MATERIALIZED ( \
                 SELECT id FROM outbox \
                 WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $2 \
                   AND (lease_until IS NULL OR lease_until <= $2) \
                 ORDER BY created_at, id LIMIT $3",
            $locks,
            ") UPDATE outbox SET lease_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM due) AND delivered_at IS NULL AND failed_at IS NULL \
               AND (lease_until IS NULL OR lease_until <= $2) \
             RETURNING id, channel, kind, payload, created_at, attempts"
        )
    };
}

pub(crate) const DELIVERED_STATEMENT: &str = "UPDATE outbox SET delivered_at = $2, lease_until = NULL, last_error = NULL \
     WHERE id = $1 AND delivered_at IS NULL";
pub(crate) const RETRY_STATEMENT: &str = "UPDATE outbox SET next_attempt_at = $2, lease_until = NULL, last_error = $3 \
     WHERE id = $1 AND delivered_at IS NULL";
pub(crate) const GIVE_UP_STATEMENT: &str = "UPDATE outbox SET failed_at = $2, lease_until = NULL, last_error = $3 \
     WHERE id = $1 AND delivered_at IS NULL";
pub(crate) const COUNTS_STATEMENT: &str = "SELECT \
     CAST(COALESCE(SUM(CASE WHEN delivered_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
     FROM outbox";
pub(crate) const PURGE_STATEMENT: &str = "DELETE FROM outbox \
     WHERE (delivered_at IS NOT NULL OR failed_at IS NOT NULL) AND created_at <= $1";

pub(crate) const SQLITE_TAKE_DUE: &str = take_due!("");
pub(crate) const POSTGRES_TAKE_DUE: &str = take_due!(" FOR UPDATE SKIP LOCKED");

/// Implements [`Outbox`] for `$store` (with a `pool: sqlx::Pool<$db>`) with `$take_due`.
macro_rules! impl_outbox {
    ($store:ty, $db:ty, $take_due:expr) => {
        #[async_trait::async_trait]
        impl $crate::outbox::Outbox for $store {
            async fn enqueue_event(
                &self,
                event: &$crate::outbox::OutboxEvent,
            ) -> $crate::MetaResult<()> {
                sqlx::query($crate::outbox::ENQUEUE_STATEMENT)
                    .bind(&event.id)
                    .bind(&event.channel)
                    .bind(&event.kind)
                    .bind(&event.payload)
                    .bind($crate::rows::secs(event.created_at))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn take_due_events(
                &self,
                now: once_domain::Instant,
                lease_until: once_domain::Instant,
                limit: u32,
            ) -> $crate::MetaResult<Vec<$crate::outbox::OutboxEvent>> {
                use $crate::rows::secs;
                let rows: Vec<(String, String, String, String, i64, i64)> =
                    sqlx::query_as($take_due)
                        .bind(secs(lease_until))
                        .bind(secs(now))
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                let mut events = rows
                    .into_iter()
                    .map(|(id, channel, kind, payload, created_at, attempts)| {
                        Ok($crate::outbox::OutboxEvent {
                            id,
                            channel,
                            kind,
                            payload,
                            created_at: $crate::rows::instant(created_at)?,
                            attempts: $crate::rows::to_u32(attempts, "webhook attempts")?,
                        })
                    })
                    .collect::<$crate::MetaResult<Vec<_>>>()?;
                // RETURNING gives no order; deliver oldest first.
                events.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
                Ok(events)
            }

            async fn event_delivered(
                &self,
                id: &str,
                now: once_domain::Instant,
            ) -> $crate::MetaResult<bool> {
                let result = sqlx::query($crate::outbox::DELIVERED_STATEMENT)
                    .bind(id)
                    .bind($crate::rows::secs(now))
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn event_failed(
                &self,
                id: &str,
                retry_at: Option<once_domain::Instant>,
                error: &str,
                now: once_domain::Instant,
            ) -> $crate::MetaResult<()> {
                let (statement, at) = match retry_at {
                    Some(at) => ($crate::outbox::RETRY_STATEMENT, at),
                    None => ($crate::outbox::GIVE_UP_STATEMENT, now),
                };
                sqlx::query(statement)
                    .bind(id)
                    .bind($crate::rows::secs(at))
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn outbox_counts(&self) -> $crate::MetaResult<$crate::outbox::OutboxCounts> {
                let (waiting, delivered, failed): (i64, i64, i64) =
                    sqlx::query_as($crate::outbox::COUNTS_STATEMENT)
                        .fetch_one(&self.pool)
                        .await?;
                // Counts are never negative.
                Ok($crate::outbox::OutboxCounts {
                    waiting: u64::try_from(waiting).unwrap_or(0),
                    delivered: u64::try_from(delivered).unwrap_or(0),
                    failed: u64::try_from(failed).unwrap_or(0),
                })
            }

            async fn purge_events(&self, before: once_domain::Instant) -> $crate::MetaResult<u64> {
                Ok(sqlx::query($crate::outbox::PURGE_STATEMENT)
                    .bind($crate::rows::secs(before))
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }
        }
    };
}
pub(crate) use impl_outbox;

/// The [`Outbox`] conformance suite: `once_meta::outbox_conformance_tests!(open);` beside
/// `conformance_tests!` in a backend's test file (same `open`).
pub mod conformance {
    use std::collections::HashSet;
    use std::sync::Arc;

    use once_domain::Instant;

    use super::{Outbox, OutboxCounts, OutboxEvent};

    pub const CHECKS: &[&str] = &[
        "events_are_taken_once_until_their_lease_runs_out",
        "delivered_events_are_never_taken_again",
        "failed_events_wait_for_their_retry_and_stop_when_given_up",
        "racing_takers_never_take_the_same_event",
        "purge_removes_only_finished_old_events",
    ];

    #[macro_export]
    macro_rules! outbox_conformance_tests {
        ($open:ident) => {
            mod outbox_conformance {
                $crate::outbox_conformance_tests!(@tests $open;
                    events_are_taken_once_until_their_lease_runs_out,
                    delivered_events_are_never_taken_again,
                    failed_events_wait_for_their_retry_and_stop_when_given_up,
                    racing_takers_never_take_the_same_event,
                    purge_removes_only_finished_old_events,
                );
            }
        };
        (@tests $open:ident; $($check:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((_guard, store)) = super::$open(concat!("outbox_", stringify!($check))).await else {
                        return;
                    };
                    $crate::outbox::conformance::run(stringify!($check), store).await;
                }
            )*

            #[test]
            fn every_outbox_check_has_a_test() {
                assert_eq!($crate::outbox::conformance::CHECKS, &[$(stringify!($check)),*]);
            }
        };
    }

    pub async fn run(check: &str, store: Arc<dyn crate::MetaStore>) {
        let store: Arc<dyn Outbox> = store;
        let store = store.as_ref();
        match check {
            "events_are_taken_once_until_their_lease_runs_out" => {
                events_are_taken_once_until_their_lease_runs_out(store).await
            }
            "delivered_events_are_never_taken_again" => {
                delivered_events_are_never_taken_again(store).await
            }
            "failed_events_wait_for_their_retry_and_stop_when_given_up" => {
                failed_events_wait_for_their_retry_and_stop_when_given_up(store).await
            }
            "racing_takers_never_take_the_same_event" => {
                racing_takers_never_take_the_same_event(store).await
            }
            "purge_removes_only_finished_old_events" => {
                purge_removes_only_finished_old_events(store).await
            }
            other => panic!("no outbox check named {other}"),
        }
    }

    fn t0() -> Instant {
        time::OffsetDateTime::from_unix_timestamp(1_893_456_000).expect("a valid instant")
    }

    fn at(seconds: i64) -> Instant {
        t0() + time::Duration::seconds(seconds)
    }

    fn event(n: u32, created_at: Instant) -> OutboxEvent {
        OutboxEvent {
            id: format!("msg_{n:04}"),
            channel: if n.is_multiple_of(2) {
                "webhook"
            } else {
                "email"
            }
            .into(),
            kind: "share.consumed".into(),
            payload: format!("{{\"n\":{n}}}"),
            created_at,
            attempts: 0,
        }
    }

    fn ids(events: &[OutboxEvent]) -> Vec<&str> {
        events.iter().map(|event| event.id.as_str()).collect()
    }

    async fn events_are_taken_once_until_their_lease_runs_out(store: &dyn Outbox) {
        for n in 0..3 {
            store
                .enqueue_event(&event(n, at(i64::from(n))))
                .await
                .unwrap();
        }
        let taken = store.take_due_events(at(10), at(70), 10).await.unwrap();
        assert_eq!(
            ids(&taken),
            ["msg_0000", "msg_0001", "msg_0002"],
            "oldest first"
        );
        assert!(taken.iter().all(|event| event.attempts == 1));
        assert_eq!(
            taken[1],
            OutboxEvent {
                attempts: 1,
                ..event(1, at(1))
            },
            "round trip"
        );
        assert!(
            store
                .take_due_events(at(69), at(130), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let again = store.take_due_events(at(70), at(130), 2).await.unwrap();
        assert_eq!(ids(&again), ["msg_0000", "msg_0001"], "the limit holds");
        assert!(again.iter().all(|event| event.attempts == 2));
        assert_eq!(
            store.outbox_counts().await.unwrap(),
            OutboxCounts {
                waiting: 3,
                delivered: 0,
                failed: 0
            }
        );
    }

    async fn delivered_events_are_never_taken_again(store: &dyn Outbox) {
        store.enqueue_event(&event(1, at(0))).await.unwrap();
        store.enqueue_event(&event(2, at(0))).await.unwrap();
        store.take_due_events(at(1), at(61), 10).await.unwrap();
        assert!(store.event_delivered("msg_0001", at(2)).await.unwrap());
        assert!(
            !store.event_delivered("msg_0001", at(3)).await.unwrap(),
            "once"
        );
        // A late failure report for a delivered event changes nothing.
        store
            .event_failed("msg_0001", Some(at(5)), "late", at(4))
            .await
            .unwrap();
        let later = store.take_due_events(at(1000), at(1060), 10).await.unwrap();
        assert_eq!(ids(&later), ["msg_0002"]);
        assert_eq!(
            store.outbox_counts().await.unwrap(),
            OutboxCounts {
                waiting: 1,
                delivered: 1,
                failed: 0
            }
        );
        // A duplicate id is refused: an event is kept once.
        assert!(store.enqueue_event(&event(1, at(9))).await.is_err());
    }

    async fn failed_events_wait_for_their_retry_and_stop_when_given_up(store: &dyn Outbox) {
        store.enqueue_event(&event(1, at(0))).await.unwrap();
        store.take_due_events(at(0), at(60), 10).await.unwrap();
        store
            .event_failed("msg_0001", Some(at(30)), "503", at(1))
            .await
            .unwrap();
        // The failure released the lease: due again at its retry time, not at the lease's end.
        assert!(
            store
                .take_due_events(at(29), at(89), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let retried = store.take_due_events(at(30), at(90), 10).await.unwrap();
        assert_eq!(retried[0].attempts, 2);
        store
            .event_failed("msg_0001", None, "gave up", at(31))
            .await
            .unwrap();
        assert!(
            store
                .take_due_events(at(100_000), at(100_060), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.outbox_counts().await.unwrap(),
            OutboxCounts {
                waiting: 0,
                delivered: 0,
                failed: 1
            }
        );
    }

    async fn racing_takers_never_take_the_same_event(store: &dyn Outbox) {
        for n in 0..60 {
            store.enqueue_event(&event(n, at(0))).await.unwrap();
        }
        let takers = (0..6).map(|_| async {
            let mut mine = Vec::new();
            loop {
                let batch = store.take_due_events(at(1), at(61), 4).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|event| event.id));
            }
        });
        let taken: Vec<String> = futures::future::join_all(takers).await.concat();
        let distinct: HashSet<&String> = taken.iter().collect();
        assert_eq!(taken.len(), 60, "every event taken");
        assert_eq!(distinct.len(), 60, "none taken twice");
    }

    async fn purge_removes_only_finished_old_events(store: &dyn Outbox) {
        for n in 0..4 {
            store.enqueue_event(&event(n, at(0))).await.unwrap();
        }
        store.enqueue_event(&event(9, at(500))).await.unwrap();
        store.take_due_events(at(600), at(660), 10).await.unwrap();
        store.event_delivered("msg_0000", at(601)).await.unwrap();
        store
            .event_failed("msg_0001", None, "gave up", at(601))
            .await
            .unwrap();
        store.event_delivered("msg_0009", at(601)).await.unwrap();
        // msg_0002 and msg_0003 still wait; msg_0009 is finished but newer than the cut.
        assert_eq!(store.purge_events(at(100)).await.unwrap(), 2);
        assert_eq!(
            store.outbox_counts().await.unwrap(),
            OutboxCounts {
                waiting: 2,
                delivered: 1,
                failed: 0
            }
        );
    }
}
