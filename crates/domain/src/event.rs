//! What the server tells the outside about: the events a webhook receives, and the rule for when
//! a failed delivery is tried again. Pure: the outbox that keeps the events and the loop that
//! delivers them live in the stores and the server.

use std::time::Duration;

use rand::RngCore;

/// An event a webhook can subscribe to; its wire name is [`EventKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A download was claimed (one of the share's downloads is now taken).
    ShareClaimed,
    /// The last download was claimed: the link is dead for everyone after.
    ShareConsumed,
    /// The share expired without a single download.
    ShareExpiredUnread,
    /// A file was uploaded to an upload request.
    RequestFulfilled,
    /// An upload to a ticket or an upload request that another upload had already used, refused.
    UploadDuplicate,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::ShareClaimed,
        EventKind::ShareConsumed,
        EventKind::ShareExpiredUnread,
        EventKind::RequestFulfilled,
        EventKind::UploadDuplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ShareClaimed => "share.claimed",
            EventKind::ShareConsumed => "share.consumed",
            EventKind::ShareExpiredUnread => "share.expired_unread",
            EventKind::RequestFulfilled => "request.fulfilled",
            EventKind::UploadDuplicate => "upload.duplicate",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fresh message id (`webhook-id` in Standard Webhooks): the same for every attempt to
/// deliver one event, so a receiver that sees it twice knows it is a retry. It begins with the
/// time in microseconds, so ids sort in the order the events happened (the outbox delivers in
/// that order), and ends with 64 random bits, so no two instances make the same one.
pub fn message_id(at: crate::Instant) -> String {
    let micros = u64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(0);
    format!("msg_{micros:016x}{:016x}", rand::rng().next_u64())
}

/// When delivery is tried again after `attempts` failed ones: `base` doubled per failure, at
/// most `cap`; `None` once `max_attempts` have failed (the event is given up and kept as failed).
pub fn retry_delay(
    attempts: u32,
    base: Duration,
    cap: Duration,
    max_attempts: u32,
) -> Option<Duration> {
    if attempts >= max_attempts {
        return None;
    }
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX);
    Some(base.saturating_mul(factor).min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("share.deleted"), None);
    }

    #[test]
    fn retries_double_up_to_the_cap_and_stop_at_the_last_attempt() {
        let base = Duration::from_secs(5);
        let cap = Duration::from_secs(60);
        let delays: Vec<_> = (1..=6).map(|n| retry_delay(n, base, cap, 6)).collect();
        assert_eq!(
            delays,
            [
                Some(Duration::from_secs(5)),
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(20)),
                Some(Duration::from_secs(40)),
                Some(Duration::from_secs(60)),
                None,
            ]
        );
        // A huge attempt count saturates instead of overflowing.
        assert_eq!(retry_delay(200, base, cap, u32::MAX), Some(cap));
    }

    #[test]
    fn message_ids_are_distinct_prefixed_and_in_time_order() {
        let earlier = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        let later = earlier + time::Duration::microseconds(1);
        let (a, b) = (message_id(earlier), message_id(earlier));
        assert_ne!(a, b);
        assert!(a.starts_with("msg_") && a.len() == 36, "{a}");
        assert!(message_id(later) > a && message_id(later) > b);
    }
}
