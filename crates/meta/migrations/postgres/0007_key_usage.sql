-- A key's quotas (shares created in the last day, bytes held) are counted over its own shares
-- on every creation under a quota; with many instances on one database, an index keeps that a
-- lookup. The embedded SQLite store scans instead (as it does to list a key's shares): it holds
-- one instance's shares, and an index there would cost every insert a second write.
CREATE INDEX shares_by_owner ON shares (owner_key, created_at);
