-- Index writes that failed: each row asks for one package's index entry to be brought in step with the registry
-- (indexed if it exists, removed if not), retried until it succeeds.
CREATE TABLE search_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    package_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX search_outbox_package_idx ON search_outbox (package_id);
