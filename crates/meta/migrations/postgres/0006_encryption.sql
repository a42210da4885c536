-- The PostgreSQL twin of migrations/sqlite/0006_encryption.sql: a share's public end-to-end
-- encryption parameters as one JSON text column (never queried by field, handed back whole,
-- checked by the domain both ways; NULL for a plain share), and an upload request's
-- `encrypted` flag, 1 when uploads must be encrypted. BIGINT rather than BOOLEAN so that both
-- engines decode it as the same integer.
ALTER TABLE shares ADD COLUMN encryption TEXT;
ALTER TABLE upload_requests ADD COLUMN encrypted BIGINT NOT NULL DEFAULT 0;
