-- End-to-end encryption (docs/encryption.md). A share's public encryption parameters (scheme,
-- claim key, Argon2id salt and parameters, ephemeral and recipient keys, sealed metadata) are
-- one JSON text column rather than seven: the server never selects or filters by any of them,
-- it keeps them as the sender gave them (checked by the domain on the way in and again on the
-- way out) and hands them back whole on GET /s/{id}/seal, and a later scheme with other fields
-- needs no migration. NULL means a plain share, so rows written before this migration are.
-- An upload request's `encrypted` flag is a plain column: 1 when uploads must be encrypted.
ALTER TABLE shares ADD COLUMN encryption TEXT;
ALTER TABLE upload_requests ADD COLUMN encrypted INTEGER NOT NULL DEFAULT 0;
