-- The PostgreSQL twin of migrations/sqlite/0008_audit.sql: the audit log, one row per thing
-- that happened to a share, an upload request or a key, kept for audit_retention. `seq` is the
-- order events were written in and the page cursor. With many instances the log grows with
-- all of them, so the ways it is read are indexed: by share (`once audit --share`), by owner
-- (a key's own log) and by time (the purge).
CREATE TABLE audit_events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    owner_key  TEXT COLLATE "C",
    share_id   TEXT COLLATE "C",
    request_id TEXT COLLATE "C",
    key_id     TEXT COLLATE "C",
    client     TEXT,
    user_agent TEXT,
    detail     TEXT
);
CREATE INDEX audit_events_by_share ON audit_events (share_id, at) WHERE share_id IS NOT NULL;
CREATE INDEX audit_events_by_owner ON audit_events (owner_key, seq);
CREATE INDEX audit_events_by_time ON audit_events (at);
