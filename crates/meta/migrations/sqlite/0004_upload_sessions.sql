-- One upload protocol on every store (create, parts, complete), and upload requests that
-- several uploaders may start at once.
--
-- upload_token names a multipart upload in its part and completion URLs; it is looked up by
-- value, so it is unique among the shares that have one. The index holds only those: most
-- shares have none (a published share's token is cleared), and a share written without one
-- touches no page of it.
ALTER TABLE shares ADD COLUMN upload_token TEXT;
CREATE UNIQUE INDEX shares_by_upload_token ON shares (upload_token)
    WHERE upload_token IS NOT NULL;
-- The part size fixed when the multipart upload began.
ALTER TABLE shares ADD COLUMN part_size INTEGER;
-- An archive's listing as the client described it (JSON text, opaque to the store).
ALTER TABLE shares ADD COLUMN contents TEXT;
-- The open sessions of one upload request are counted by request; likewise only the shares
-- of a request are indexed.
CREATE INDEX shares_by_request ON shares (request_id) WHERE request_id IS NOT NULL;
-- Uploads to a request refused because another session had already fulfilled it.
ALTER TABLE upload_requests ADD COLUMN refused_uploads INTEGER NOT NULL DEFAULT 0;
