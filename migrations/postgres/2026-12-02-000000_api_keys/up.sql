-- Personal API keys (DESIGN §5): the secret is never stored, only its SHA-256 (hex). `scope` is a JSON object of
-- service -> [permission names]. Revoked keys stay, so lists and audits show them.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,         -- the key's public part
    owner        TEXT NOT NULL,            -- a users.idhash
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_keys_owner_idx ON api_keys (owner, created_at);
