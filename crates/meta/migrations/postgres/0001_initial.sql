-- The PostgreSQL twin of migrations/sqlite/0001_initial.sql: same tables, same columns, same
-- meaning. Times are unix seconds (BIGINT) so both stores compare them the same way; every
-- integer is BIGINT so rows decode identically. Ids and blob keys use the "C" collation: they
-- are compared and ordered byte by byte, as SQLite does, whatever the database's locale.

CREATE TABLE api_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   BYTEA NOT NULL,
    sealed_secret BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);

-- HMAC-signed requests already accepted; the primary key makes a replay fail atomically, on
-- every instance.
CREATE TABLE used_signatures (
    key_id     TEXT COLLATE "C" NOT NULL,
    signature  TEXT COLLATE "C" NOT NULL,
    keep_until BIGINT NOT NULL,
    PRIMARY KEY (key_id, signature)
);
CREATE INDEX used_signatures_by_keep_until ON used_signatures (keep_until);

CREATE TABLE shares (
    id                TEXT COLLATE "C" PRIMARY KEY,
    owner_key         TEXT COLLATE "C",
    filename          TEXT NOT NULL,
    content_type      TEXT NOT NULL,
    size              BIGINT,
    sha256            BYTEA,
    max_downloads     BIGINT NOT NULL,
    downloads_left    BIGINT NOT NULL CHECK (downloads_left >= 0),
    state             TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    upload_expires_at BIGINT NOT NULL,
    published_at      BIGINT,
    lease_until       BIGINT,
    blob_key          TEXT COLLATE "C",
    request_id        TEXT COLLATE "C",
    upload_attempts   BIGINT NOT NULL DEFAULT 0,
    preview_hits      BIGINT NOT NULL DEFAULT 0,
    -- a reaper that took this row holds it until then
    reaper_until      BIGINT,
    -- the storage's id of an unfinished multipart direct upload
    upload_session    TEXT
);
CREATE INDEX shares_by_state_expiry ON shares (state, expires_at);
CREATE INDEX shares_by_blob_key ON shares (blob_key);

CREATE TABLE upload_requests (
    id               TEXT COLLATE "C" PRIMARY KEY,
    owner_key        TEXT COLLATE "C" NOT NULL,
    filename         TEXT,
    max_size         BIGINT NOT NULL,
    max_downloads    BIGINT NOT NULL,
    share_expires_in BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    share_id         TEXT COLLATE "C",
    fulfilled_at     BIGINT
);
CREATE INDEX upload_requests_by_owner ON upload_requests (owner_key, created_at);
