-- Refused uploads kept as evidence (docs/security.md#refused-uploads): every upload to a ticket
-- or an upload request that another upload had already used, with who sent it, what it
-- declared, how much arrived and its SHA-256; on the embedded store the bytes themselves, capped,
-- under `blob_key` (never served: no share names that key, and the orphan sweep spares it while
-- this row lives). Rows are written only on such a refusal, so the indexes cost nothing on the
-- paths that matter.
CREATE TABLE refused_uploads (
    id             TEXT PRIMARY KEY,
    share_id       TEXT,
    request_id     TEXT,
    at             BIGINT NOT NULL,
    client_address TEXT NOT NULL,
    user_agent     TEXT NOT NULL,
    declared_size  BIGINT,
    received_size  BIGINT NOT NULL,
    sha256         TEXT,
    truncated      BIGINT NOT NULL,
    blob_key       TEXT
);
CREATE INDEX refused_uploads_by_share ON refused_uploads (share_id);
CREATE INDEX refused_uploads_by_request ON refused_uploads (request_id);
CREATE INDEX refused_uploads_by_blob ON refused_uploads (blob_key);
