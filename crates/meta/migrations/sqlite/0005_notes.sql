-- Words people write to each other, for the landing and upload pages: the sender's note to a
-- share's recipient, and an upload request's note and the name of who asks (`from` on the
-- wire). Plain text checked by the domain; NULL when none was given, so rows written before
-- this migration simply have none.
ALTER TABLE shares ADD COLUMN note TEXT;
ALTER TABLE upload_requests ADD COLUMN note TEXT;
ALTER TABLE upload_requests ADD COLUMN requester TEXT;
