//! The repository adapters, written once and instantiated for each diesel connection type.
//!
//! diesel checks a query against the backend it runs on, so a body written generically over the connection would
//! need bounds longer than the query. Instead [`impl_for_connection!`] expands the same source for `PgConnection`
//! and `SqliteConnection`; the compiler checks each expansion against its backend. Only the migration lock
//! differs.

use std::time::Duration;

use async_trait::async_trait;
use conductor_core::repo::{
    ApiKeyRepository, JobProgress, LoadJobRepository, LoginStateRepository, OutboxEntry, PackageRepository,
    PermissionRepository, RegistryCounts, RepoError, RepoResult, SearchOutboxRepository, UserRepository,
    UsernameChange,
};
use conductor_core::{
    ApiKey, Grantee, LoadJob, LoadStatus, LoginState, NewLoadJob, NewUser, PackageId, PackageRecord,
    PermissionGrant, Profile, Timestamp, UserId,
};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel::upsert::excluded;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::{Result, StoreError};
use crate::rows::{
    ApiKeyRow, LoadJobRow, LoginStateRow, NewLoadJobRow, PackageRow, PermissionRow, UserRow, corrupt,
};
use crate::schema::{api_keys, load_jobs, login_states, packages, permissions, search_outbox, users};
use crate::write_turn::WriteTurns;

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// A lock id of our own for `pg_advisory_lock`, so replicas starting together migrate one at a time.
const MIGRATION_LOCK_ID: i64 = 0x636f_6e64_7563_746f; // "conducto"

/// Health and schema upkeep, implemented per backend beside the repositories.
#[async_trait]
pub(crate) trait Maintenance: Send + Sync {
    async fn ping(&self, timeout: Duration) -> Result<()>;
    async fn pending_migrations(&self) -> Result<usize>;
    async fn migrate(&self) -> Result<Vec<String>>;
}

/// A pool of one backend's connections; the repositories are implemented on it.
pub(crate) struct Db<C: R2D2Connection + 'static> {
    pool: Pool<ConnectionManager<C>>,
    turns: WriteTurns,
}

impl<C: R2D2Connection + 'static> Db<C> {
    pub(crate) fn new(pool: Pool<ConnectionManager<C>>, turns: WriteTurns) -> Self {
        Self { pool, turns }
    }

    /// Like [`Db::run`] for work that writes: it waits for its turn first (see [`WriteTurns`]).
    async fn write<T, F>(&self, work: F) -> RepoResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut C) -> RepoResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let turns = self.turns.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| RepoError::Unavailable(e.to_string()))?;
            // The connection before the turn, as the loader does: whoever holds the turn already has its
            // connection, so no one waits for a connection while holding it.
            let _turn = turns.take();
            work(&mut conn)
        })
        .await
        .map_err(|e| RepoError::Query(format!("database task failed: {e}")))?
    }

    /// Runs blocking diesel work on tokio's blocking pool with a pooled connection.
    async fn run<T, F>(&self, work: F) -> RepoResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut C) -> RepoResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| RepoError::Unavailable(e.to_string()))?;
            work(&mut conn)
        })
        .await
        .map_err(|e| RepoError::Query(format!("database task failed: {e}")))?
    }

    /// Like [`Db::run`] for maintenance, with its own connection timeout and error type.
    async fn run_maintenance<T, F>(&self, timeout: Duration, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut C) -> Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .get_timeout(timeout)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            work(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("database task failed: {e}")))?
    }
}

fn query_error(error: DieselError) -> RepoError {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            RepoError::Conflict(info.message().to_owned())
        }
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            info,
        ) => RepoError::Unavailable(info.message().to_owned()),
        other => RepoError::Query(other.to_string()),
    }
}

fn migration_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Migration(error.to_string())
}

/// The id a job claim picks: the oldest queued job whose package has no earlier unfinished job.
const CLAIM_CANDIDATE: &str = "SELECT j.id FROM load_jobs j WHERE j.status = 'queued' AND NOT EXISTS (\
     SELECT 1 FROM load_jobs e WHERE e.package_id = j.package_id AND e.id < j.id \
     AND e.status NOT IN ('done', 'fail')) ORDER BY j.id LIMIT 1";

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

#[macro_use]
mod maintenance;
#[macro_use]
mod user_repository;
#[macro_use]
mod permission_repository;
#[macro_use]
mod package_repository;
#[macro_use]
mod load_job_repository;
#[macro_use]
mod search_outbox_repository;
#[macro_use]
mod login_state_repository;
#[macro_use]
mod api_key_repository;

/// Every repository and the maintenance for one connection type.
macro_rules! impl_for_connection {
    ($conn:ty, migrations: $migrations:expr, lock: $lock:expr, unlock: $unlock:expr,
     claim_lock: $claim_lock:expr, transaction: $transaction:ident) => {
        impl_maintenance!($conn, migrations: $migrations, lock: $lock, unlock: $unlock);
        impl_users!($conn);
        impl_permissions!($conn);
        impl_packages!($conn);
        impl_load_jobs!($conn, claim_lock: $claim_lock, transaction: $transaction);
        impl_search_outbox!($conn);
        impl_login_states!($conn);
        impl_api_keys!($conn);
    };
}

/// Maintenance work waits longer for a connection than a health check does.
const CONNECTION_WAIT: Duration = Duration::from_secs(10);

impl_for_connection!(
    diesel::PgConnection,
    migrations: POSTGRES_MIGRATIONS,
    lock: &format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"),
    unlock: &format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"),
    claim_lock: "FOR UPDATE SKIP LOCKED",
    transaction: transaction
);

// One SQLite file has one writer at a time already; its migrations run in a transaction of their own, and a claim
// takes the write lock up front (`BEGIN IMMEDIATE`) so two claimers never both read the same queued job.
impl_for_connection!(
    SqliteConnection,
    migrations: SQLITE_MIGRATIONS,
    lock: "SELECT 1",
    unlock: "SELECT 1",
    claim_lock: "",
    transaction: immediate_transaction
);
