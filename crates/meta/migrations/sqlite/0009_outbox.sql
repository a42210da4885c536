-- The notification outbox (docs/notifications.md): an event is written here on the request
-- path, one row per channel (`webhook`, `email`) and only when that channel is configured, and
-- delivered later by a loop that leases it, so a receiver that is down never slows a request
-- and an event outlives a restart. Times are unix seconds like everywhere else. The partial
-- index keeps finding due events a lookup however many delivered ones wait for the purge.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    delivered_at    BIGINT,
    failed_at       BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
