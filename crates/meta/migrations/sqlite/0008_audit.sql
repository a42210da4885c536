-- The audit log (docs/security.md#the-audit-log): one row per thing that happened to a share,
-- an upload request or a key, kept for audit_retention. Numbered 0008 like its PostgreSQL twin
-- (this store never had a 0007: the key-usage index is PostgreSQL's only); sqlx applies
-- migrations by version and needs no unbroken sequence.
--
-- `seq` is the rowid: the order events were written in, and the page cursor. No other index:
-- every claim is followed by a row here, and on this store each index would be more new pages
-- for every claim to write (a full disk must still take claims for as long as it can). Queries
-- and the purge scan the table, which holds one instance's events.
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    owner_key  TEXT,
    share_id   TEXT,
    request_id TEXT,
    key_id     TEXT,
    client     TEXT,
    user_agent TEXT,
    detail     TEXT
);
