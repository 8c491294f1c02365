//! Test databases: each test gets its own, so tests run in parallel and never see each other's rows.
//!
//! PostgreSQL tests use the server named by `CONDUCTOR_TEST_POSTGRES_URL` (default: the machine's
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached the test fails with a message
//! saying so; it never skips.

use std::fmt;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use rand::Rng;

use crate::error::{Result, StoreError};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for one test and is removed when dropped.
pub struct TestDatabase {
    url: String,
    kind: Kind,
}

enum Kind {
    Sqlite(
        #[expect(dead_code, reason = "held so the directory lives as long as the database")]
        tempfile::TempDir,
    ),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabase").field("url", &self.url).finish()
    }
}

impl TestDatabase {
    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Unavailable(format!("temp dir: {e}")))?;
        let url = format!("sqlite://{}", dir.path().join("conductor.db").display());
        Ok(Self {
            url,
            kind: Kind::Sqlite(dir),
        })
    }

    /// A fresh, empty PostgreSQL database on the test server, dropped afterwards.
    pub fn postgres() -> Result<Self> {
        let admin_url = admin_url();
        let name = format!("conductor_test_{:016x}", rand::rng().random::<u64>());
        let mut admin = PgConnection::establish(&admin_url).map_err(|e| {
            StoreError::Unavailable(format!(
                "the PostgreSQL for tests at {admin_url} cannot be reached ({e}); start it (./scripts/test does) \
                 or point CONDUCTOR_TEST_POSTGRES_URL at one"
            ))
        })?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| StoreError::Unavailable(format!("CREATE DATABASE {name}: {e}")))?;
        let url = database_url(&admin_url, &name)?;
        Ok(Self {
            url,
            kind: Kind::Postgres { admin_url, name },
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Kind::Postgres { admin_url, name } = &self.kind {
            // WITH (FORCE) closes the pool's connections, which may outlive the test by a moment.
            let dropped = PgConnection::establish(admin_url)
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = dropped {
                tracing::warn!(%error, database = %name, "could not drop test database");
            }
        }
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "test-only setting, not service configuration"
)]
fn admin_url() -> String {
    let url = std::env::var("CONDUCTOR_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    without_tls(url)
}

/// Test connections ask for no TLS unless the URL says otherwise. Debian's PostgreSQL has `ssl = on`, so libpq
/// otherwise negotiates TLS on loopback through OpenSSL, whose clean-up runs at exit while a pool's threads may
/// still be closing those connections: a test process that passed then died at exit with "double free or
/// corruption" or a segfault (twice in CI runs of this suite).
fn without_tls(url: String) -> String {
    if url.contains("sslmode=") {
        url
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

/// The admin URL with its database path replaced.
fn database_url(admin_url: &str, name: &str) -> Result<String> {
    let mut url =
        url::Url::parse(admin_url).map_err(|e| StoreError::UnsupportedUrl(format!("{admin_url}: {e}")))?;
    url.set_path(&format!("/{name}"));
    Ok(url.into())
}
