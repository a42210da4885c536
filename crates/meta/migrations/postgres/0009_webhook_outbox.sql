-- The webhook outbox (docs/notifications.md): an event is written here on the request path (one
-- insert, and only when a webhook is configured) and delivered later by a loop that leases it,
-- so a receiver that is down never slows a request and an event outlives a restart. Times are
-- unix seconds like everywhere else. The partial index keeps finding due events a lookup however
-- many delivered ones wait for the purge.
CREATE TABLE webhook_outbox (
    id              TEXT PRIMARY KEY,
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
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
