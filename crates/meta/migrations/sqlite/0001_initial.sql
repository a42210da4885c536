-- Times are unix seconds (INTEGER) so SQLite and PostgreSQL compare them the same way.

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   BLOB NOT NULL,
    sealed_secret BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);

-- HMAC-signed requests already accepted; the primary key makes a replay fail atomically.
CREATE TABLE used_signatures (
    key_id     TEXT NOT NULL,
    signature  TEXT NOT NULL,
    keep_until INTEGER NOT NULL,
    PRIMARY KEY (key_id, signature)
);

CREATE TABLE shares (
    id                TEXT PRIMARY KEY,
    owner_key         TEXT,
    filename          TEXT NOT NULL,
    content_type      TEXT NOT NULL,
    size              INTEGER,
    sha256            BLOB,
    max_downloads     INTEGER NOT NULL,
    downloads_left    INTEGER NOT NULL CHECK (downloads_left >= 0),
    state             TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    upload_expires_at INTEGER NOT NULL,
    published_at      INTEGER,
    lease_until       INTEGER,
    blob_key          TEXT,
    request_id        TEXT,
    upload_attempts   INTEGER NOT NULL DEFAULT 0,
    preview_hits      INTEGER NOT NULL DEFAULT 0,
    -- a reaper that took this row holds it until then
    reaper_until      INTEGER,
    -- the storage's id of an unfinished multipart direct upload
    upload_session    TEXT
);
CREATE INDEX shares_by_state_expiry ON shares (state, expires_at);
CREATE INDEX shares_by_blob_key ON shares (blob_key);

CREATE TABLE upload_requests (
    id               TEXT PRIMARY KEY,
    owner_key        TEXT NOT NULL,
    filename         TEXT,
    max_size         INTEGER NOT NULL,
    max_downloads    INTEGER NOT NULL,
    share_expires_in INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    share_id         TEXT,
    fulfilled_at     INTEGER
);
CREATE INDEX upload_requests_by_owner ON upload_requests (owner_key, created_at);
