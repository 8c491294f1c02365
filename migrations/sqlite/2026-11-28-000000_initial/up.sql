-- Conductor's tables (DESIGN §4). JSON documents are TEXT holding JSON, as the original's permissions table was,
-- so one diesel schema serves SQLite and PostgreSQL. Times are BIGINT milliseconds since the Unix epoch.

CREATE TABLE users (
    idhash      TEXT PRIMARY KEY,          -- md5 hex of the lower-cased e-mail
    provider_id TEXT NOT NULL,             -- "<provider>:<subject>"
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    avatar_url  TEXT,
    username    TEXT UNIQUE,               -- set once by /user/update
    join_date   BIGINT NOT NULL
);

CREATE TABLE permissions (
    userid      TEXT NOT NULL,             -- an idhash, or '*' for everyone's default
    service     TEXT NOT NULL,
    permissions TEXT NOT NULL,             -- a JSON object of permission -> bool
    PRIMARY KEY (userid, service)
);

INSERT INTO permissions (userid, service, permissions)
VALUES ('*', 'os.datastore', '{"datapackage-upload":true}');

CREATE TABLE packages (
    id             TEXT PRIMARY KEY,       -- "<owner>:<dataset>"
    owner          TEXT NOT NULL,
    model          TEXT NOT NULL,          -- Babbage model (JSON)
    package        TEXT NOT NULL,          -- Fiscal Data Package descriptor (JSON)
    origin_url     TEXT NOT NULL,
    dataset        TEXT,
    author         TEXT,
    loading_status TEXT,
    loaded         BOOLEAN NOT NULL,
    last_update    BIGINT NOT NULL
);
CREATE INDEX packages_owner_idx ON packages (owner);

CREATE TABLE load_jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    package_id      TEXT NOT NULL,
    datapackage_url TEXT NOT NULL,
    owner           TEXT NOT NULL,
    status          TEXT NOT NULL,
    rows_loaded     BIGINT NOT NULL DEFAULT 0,
    rows_total      BIGINT,
    error           TEXT,
    heartbeat_at    BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX load_jobs_url_idx ON load_jobs (datapackage_url, id);
CREATE INDEX load_jobs_package_idx ON load_jobs (package_id, id);
CREATE INDEX load_jobs_open_idx ON load_jobs (status, id) WHERE status NOT IN ('done', 'fail');

CREATE TABLE login_states (
    state           TEXT PRIMARY KEY,
    provider        TEXT NOT NULL,
    pkce_verifier   TEXT NOT NULL,
    nonce           TEXT NOT NULL,
    next_url        TEXT NOT NULL,
    browser_binding TEXT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX login_states_expiry_idx ON login_states (expires_at);
