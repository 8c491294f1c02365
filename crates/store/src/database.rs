//! Opening a database from its URL, migrations, health checks, and handing out the repositories.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use conductor_core::repo::{
    ApiKeyRepository, LoadJobRepository, LoginStateRepository, PackageRepository, PermissionRepository,
    SearchOutboxRepository, UserRepository,
};
use diesel::r2d2::{ConnectionManager, CustomizeConnection, HandleError, Pool};
use diesel::sqlite::SqliteConnection;
use diesel::{PgConnection, connection::SimpleConnection};

use crate::error::{Result, StoreError};
use crate::repositories::{Db, Maintenance};
use crate::warehouse::{PostgresWarehouse, SqliteWarehouse};
use crate::write_turn::WriteTurns;
use conductor_loader::Warehouse;

/// How long a request waits for a pooled connection before the database counts as unavailable.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long SQLite waits on a lock held by another connection (the loader, say) before failing.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        })
    }
}

/// A parsed `database.url`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A libpq connection URL (`postgres://` or `postgresql://`).
    Postgres(String),
    /// `sqlite://<path>`: relative paths are relative to the working directory, `sqlite:///abs` is absolute.
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        match raw.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            _ => Err(StoreError::UnsupportedUrl(raw.to_owned())),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A PostgreSQL URL may carry a password: show only what identifies the backend.
        match self {
            Self::Postgres(_) => f.write_str("DatabaseUrl::Postgres(..)"),
            Self::Sqlite(path) => f.debug_tuple("DatabaseUrl::Sqlite").field(path).finish(),
        }
    }
}

/// The repositories of one database, as the ports the domain knows.
#[derive(Clone)]
pub struct Repositories {
    pub users: Arc<dyn UserRepository>,
    pub permissions: Arc<dyn PermissionRepository>,
    pub packages: Arc<dyn PackageRepository>,
    pub load_jobs: Arc<dyn LoadJobRepository>,
    pub login_states: Arc<dyn LoginStateRepository>,
    pub search_outbox: Arc<dyn SearchOutboxRepository>,
    pub api_keys: Arc<dyn ApiKeyRepository>,
}

impl fmt::Debug for Repositories {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repositories").finish_non_exhaustive()
    }
}

/// An open (lazily connected) database. Opening never contacts the server, so a PostgreSQL that is down at start
/// does not stop the process: callers retry [`Database::migrate`] and report [`Database::ping`] until it is up.
pub struct Database {
    backend: Backend,
    warehouse: Arc<dyn Warehouse>,
    maintenance: Arc<dyn Maintenance>,
    repositories: Repositories,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Database {
    pub fn open(url: &DatabaseUrl, pool_size: u32) -> Result<Self> {
        match url {
            DatabaseUrl::Postgres(url) => {
                let manager = ConnectionManager::<PgConnection>::new(url);
                Ok(Self::from_db(
                    Backend::Postgres,
                    // A connection the server dropped (a restart, a failover) is found on checkout, not by a request.
                    Db::new(
                        pool_builder(pool_size)
                            .test_on_check_out(true)
                            .build_unchecked(manager),
                        WriteTurns::default(),
                    ),
                    Arc::new(PostgresWarehouse::new(url)),
                ))
            }
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                        path: dir.to_owned(),
                        source,
                    })?;
                }
                let manager = ConnectionManager::<SqliteConnection>::new(path.to_string_lossy());
                // A file has no server to drop its connections: no ping before each query (it doubled the cost
                // of /user/authorize's one read).
                let pool = pool_builder(pool_size)
                    .test_on_check_out(false)
                    .connection_customizer(Box::new(SqlitePragmas))
                    .build_unchecked(manager);
                // One file, one writer: this process's writers take turns (the loader's included).
                let turns = WriteTurns::shared();
                let warehouse = Arc::new(SqliteWarehouse::new(pool.clone(), turns.clone()));
                Ok(Self::from_db(Backend::Sqlite, Db::new(pool, turns), warehouse))
            }
        }
    }

    fn from_db<D>(backend: Backend, db: D, warehouse: Arc<dyn Warehouse>) -> Self
    where
        D: Maintenance
            + UserRepository
            + PermissionRepository
            + PackageRepository
            + LoadJobRepository
            + LoginStateRepository
            + SearchOutboxRepository
            + ApiKeyRepository
            + 'static,
    {
        let db = Arc::new(db);
        Self {
            backend,
            warehouse,
            maintenance: db.clone(),
            repositories: Repositories {
                users: db.clone(),
                permissions: db.clone(),
                packages: db.clone(),
                load_jobs: db.clone(),
                login_states: db.clone(),
                search_outbox: db.clone(),
                api_keys: db,
            },
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn repositories(&self) -> &Repositories {
        &self.repositories
    }

    /// Where loads write their tables: the same database as the registry.
    pub fn warehouse(&self) -> Arc<dyn Warehouse> {
        self.warehouse.clone()
    }

    /// Checks that a connection can be had within `timeout` and answers a trivial query.
    pub async fn ping(&self, timeout: Duration) -> Result<()> {
        self.maintenance.ping(timeout).await
    }

    /// How many of this build's migrations the database has not applied yet.
    pub async fn pending_migrations(&self) -> Result<usize> {
        self.maintenance.pending_migrations().await
    }

    /// Applies pending migrations and returns their versions. On PostgreSQL an advisory lock keeps replicas that
    /// start together from migrating at once.
    pub async fn migrate(&self) -> Result<Vec<String>> {
        self.maintenance.migrate().await
    }
}

/// The r2d2 builder shared by both backends. Pools are built unchecked so opening never blocks on the server.
fn pool_builder<C: diesel::r2d2::R2D2Connection + 'static>(
    size: u32,
) -> diesel::r2d2::Builder<ConnectionManager<C>> {
    Pool::builder()
        .max_size(size.max(1))
        .min_idle(Some(1))
        .connection_timeout(CONNECTION_TIMEOUT)
        .error_handler(Box::new(TracingErrorHandler))
}

/// r2d2 reports background connection failures through this; the default handler writes to `log`.
#[derive(Debug)]
struct TracingErrorHandler;

impl<E: fmt::Display> HandleError<E> for TracingErrorHandler {
    fn handle_error(&self, error: E) {
        tracing::warn!(%error, "database connection failed");
    }
}

/// WAL so readers and the loader do not block each other; a busy timeout so writers wait rather than fail.
#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> std::result::Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}
