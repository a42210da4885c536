-- One row that the readiness probe rewrites: /readyz answers ready only when this commit
-- succeeds, so a full disk or a held write lock shows as not ready.
CREATE TABLE readiness (
    id     INTEGER PRIMARY KEY,
    checks INTEGER NOT NULL
);
