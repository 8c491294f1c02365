//! The repository adapters, written once and instantiated for each diesel connection type.
//!
//! diesel checks a query against the backend it runs on, so a body written generically over the connection would
//! need bounds longer than the query. Instead [`impl_for_connection!`] expands the same source for `PgConnection`
//! and `SqliteConnection`; the compiler checks each expansion against its backend. Only the migration lock
//! differs.

use std::time::Duration;

use async_trait::async_trait;
use conductor_core::repo::{
    JobProgress, LoadJobRepository, LoginStateRepository, OutboxEntry, PackageRepository,
    PermissionRepository, RegistryCounts, RepoError, RepoResult, SearchOutboxRepository, UserRepository,
    UsernameChange,
};
use conductor_core::{
    Grantee, LoadJob, LoadStatus, LoginState, NewLoadJob, NewUser, PackageId, PackageRecord, PermissionGrant,
    Profile, Timestamp, UserId,
};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel::upsert::excluded;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::{Result, StoreError};
use crate::rows::{LoadJobRow, LoginStateRow, NewLoadJobRow, PackageRow, PermissionRow, UserRow, corrupt};
use crate::schema::{load_jobs, login_states, packages, permissions, search_outbox, users};

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
}

impl<C: R2D2Connection + 'static> Db<C> {
    pub(crate) fn new(pool: Pool<ConnectionManager<C>>) -> Self {
        Self { pool }
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

macro_rules! impl_for_connection {
    ($conn:ty, migrations: $migrations:expr, lock: $lock:expr, unlock: $unlock:expr,
     claim_lock: $claim_lock:expr, transaction: $transaction:ident) => {
        #[async_trait]
        impl Maintenance for Db<$conn> {
            async fn ping(&self, timeout: Duration) -> Result<()> {
                self.run_maintenance(timeout, |conn: &mut $conn| {
                    conn.batch_execute("SELECT 1")
                        .map_err(|e| StoreError::Unavailable(e.to_string()))
                })
                .await
            }

            async fn pending_migrations(&self) -> Result<usize> {
                self.run_maintenance(CONNECTION_WAIT, |conn: &mut $conn| {
                    conn.pending_migrations($migrations)
                        .map(|m| m.len())
                        .map_err(migration_error)
                })
                .await
            }

            async fn migrate(&self) -> Result<Vec<String>> {
                self.run_maintenance(CONNECTION_WAIT, |conn: &mut $conn| {
                    conn.batch_execute($lock).map_err(migration_error)?;
                    let applied = conn
                        .run_pending_migrations($migrations)
                        .map(|versions| versions.iter().map(ToString::to_string).collect())
                        .map_err(migration_error);
                    let unlocked = conn.batch_execute($unlock).map_err(migration_error);
                    let applied = applied?;
                    unlocked?;
                    Ok(applied)
                })
                .await
            }
        }

        #[async_trait]
        impl UserRepository for Db<$conn> {
            async fn get(&self, id: &UserId) -> RepoResult<Option<Profile>> {
                let id = id.as_str().to_owned();
                self.run(move |conn: &mut $conn| {
                    users::table
                        .find(id)
                        .select(UserRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(UserRow::into_profile)
                        .transpose()
                })
                .await
            }

            async fn upsert_login(&self, user: &NewUser, now: Timestamp) -> RepoResult<Profile> {
                let row = UserRow {
                    idhash: user.idhash.as_str().to_owned(),
                    provider_id: user.provider_id.clone(),
                    name: user.name.clone(),
                    email: user.email.clone(),
                    avatar_url: user.avatar_url.clone(),
                    username: None,
                    join_date: now.as_millis(),
                };
                self.run(move |conn: &mut $conn| {
                    diesel::insert_into(users::table)
                        .values(&row)
                        .on_conflict(users::idhash)
                        .do_update()
                        .set((
                            users::provider_id.eq(excluded(users::provider_id)),
                            users::name.eq(excluded(users::name)),
                            users::email.eq(excluded(users::email)),
                            users::avatar_url.eq(excluded(users::avatar_url)),
                        ))
                        .returning(UserRow::as_returning())
                        .get_result(conn)
                        .map_err(query_error)?
                        .into_profile()
                })
                .await
            }

            async fn set_username(&self, id: &UserId, username: &str) -> RepoResult<UsernameChange> {
                let (id, username) = (id.as_str().to_owned(), username.to_owned());
                self.run(move |conn: &mut $conn| {
                    let current: Option<Option<String>> = users::table
                        .find(&id)
                        .select(users::username)
                        .first(conn)
                        .optional()
                        .map_err(query_error)?;
                    match current {
                        None => return Ok(UsernameChange::NoSuchUser),
                        Some(Some(_)) => return Ok(UsernameChange::AlreadySet),
                        Some(None) => {}
                    }
                    // Guarded by `username IS NULL`, so two concurrent first changes cannot both win.
                    let updated = diesel::update(users::table.find(&id).filter(users::username.is_null()))
                        .set(users::username.eq(&username))
                        .execute(conn);
                    match updated {
                        Ok(1) => Ok(UsernameChange::Set),
                        Ok(_) => Ok(UsernameChange::AlreadySet),
                        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                            Ok(UsernameChange::Taken)
                        }
                        Err(e) => Err(query_error(e)),
                    }
                })
                .await
            }
        }

        #[async_trait]
        impl PermissionRepository for Db<$conn> {
            async fn get(&self, grantee: &Grantee, service: &str) -> RepoResult<Option<PermissionGrant>> {
                let key = (grantee.as_str().to_owned(), service.to_owned());
                self.run(move |conn: &mut $conn| {
                    permissions::table
                        .find(key)
                        .select(PermissionRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(PermissionRow::into_grant)
                        .transpose()
                })
                .await
            }

            async fn put(&self, grant: &PermissionGrant) -> RepoResult<()> {
                let row = PermissionRow::from_grant(grant)?;
                self.run(move |conn: &mut $conn| {
                    diesel::insert_into(permissions::table)
                        .values(&row)
                        .on_conflict((permissions::userid, permissions::service))
                        .do_update()
                        .set(permissions::granted.eq(excluded(permissions::granted)))
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }

            async fn delete(&self, grantee: &Grantee, service: &str) -> RepoResult<bool> {
                let key = (grantee.as_str().to_owned(), service.to_owned());
                self.run(move |conn: &mut $conn| {
                    diesel::delete(permissions::table.find(key))
                        .execute(conn)
                        .map(|n| n > 0)
                        .map_err(query_error)
                })
                .await
            }

            async fn list(&self, grantee: Option<&Grantee>) -> RepoResult<Vec<PermissionGrant>> {
                let grantee = grantee.map(|g| g.as_str().to_owned());
                self.run(move |conn: &mut $conn| {
                    let mut query = permissions::table
                        .select(PermissionRow::as_select())
                        .into_boxed();
                    if let Some(grantee) = grantee {
                        query = query.filter(permissions::userid.eq(grantee));
                    }
                    query
                        .order((permissions::userid, permissions::service))
                        .load(conn)
                        .map_err(query_error)?
                        .into_iter()
                        .map(PermissionRow::into_grant)
                        .collect()
                })
                .await
            }
        }

        #[async_trait]
        impl PackageRepository for Db<$conn> {
            async fn get(&self, id: &PackageId) -> RepoResult<Option<PackageRecord>> {
                let id = id.to_string();
                self.run(move |conn: &mut $conn| {
                    packages::table
                        .find(id)
                        .select(PackageRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(PackageRow::into_record)
                        .transpose()
                })
                .await
            }

            async fn get_many(&self, ids: &[PackageId]) -> RepoResult<Vec<PackageRecord>> {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                self.run(move |conn: &mut $conn| {
                    let mut records = Vec::with_capacity(ids.len());
                    // Chunks keep each statement under SQLite's bound-parameter limit.
                    for chunk in ids.chunks(500) {
                        let rows = packages::table
                            .filter(packages::id.eq_any(chunk))
                            .select(PackageRow::as_select())
                            .load(conn)
                            .map_err(query_error)?;
                        for row in rows {
                            records.push(row.into_record()?);
                        }
                    }
                    Ok(records)
                })
                .await
            }

            async fn put(&self, record: &PackageRecord) -> RepoResult<()> {
                let row = PackageRow::from_record(record)?;
                self.run(move |conn: &mut $conn| {
                    diesel::insert_into(packages::table)
                        .values(&row)
                        .on_conflict(packages::id)
                        .do_update()
                        .set(&row)
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }

            async fn delete(&self, id: &PackageId) -> RepoResult<bool> {
                let id = id.to_string();
                self.run(move |conn: &mut $conn| {
                    diesel::delete(packages::table.find(id))
                        .execute(conn)
                        .map(|n| n > 0)
                        .map_err(query_error)
                })
                .await
            }

            async fn list(&self) -> RepoResult<Vec<PackageRecord>> {
                self.run(move |conn: &mut $conn| {
                    packages::table
                        .select(PackageRow::as_select())
                        .order(packages::id)
                        .load(conn)
                        .map_err(query_error)?
                        .into_iter()
                        .map(PackageRow::into_record)
                        .collect()
                })
                .await
            }

            async fn list_by_owner(&self, owner: &UserId) -> RepoResult<Vec<PackageRecord>> {
                let owner = owner.as_str().to_owned();
                self.run(move |conn: &mut $conn| {
                    packages::table
                        .filter(packages::owner.eq(owner))
                        .select(PackageRow::as_select())
                        .order(packages::id)
                        .load(conn)
                        .map_err(query_error)?
                        .into_iter()
                        .map(PackageRow::into_record)
                        .collect()
                })
                .await
            }

            async fn counts(&self) -> RepoResult<RegistryCounts> {
                use diesel::sql_types::{BigInt, Nullable};
                self.run(move |conn: &mut $conn| {
                    // SUM of a BIGINT is NUMERIC on PostgreSQL; cast it back on both backends.
                    let (count, rows): (i64, Option<i64>) = packages::table
                        .select((
                            diesel::dsl::count_star(),
                            diesel::dsl::sql::<Nullable<BigInt>>("CAST(SUM(count_of_rows) AS BIGINT)"),
                        ))
                        .first(conn)
                        .map_err(query_error)?;
                    let code_lists: Vec<Option<String>> = packages::table
                        .select(packages::country_codes)
                        .filter(packages::country_codes.is_not_null())
                        .distinct()
                        .load(conn)
                        .map_err(query_error)?;
                    let mut countries = std::collections::BTreeSet::new();
                    for list in code_lists.iter().flatten() {
                        let codes: Vec<String> =
                            serde_json::from_str(list).map_err(|e| corrupt("packages", e))?;
                        countries.extend(codes);
                    }
                    Ok(RegistryCounts {
                        packages: u64::try_from(count).unwrap_or(0),
                        rows: rows.and_then(|r| u64::try_from(r).ok()).unwrap_or(0),
                        countries: countries.len() as u64,
                    })
                })
                .await
            }
        }

        impl Db<$conn> {
            async fn insert_job(
                &self,
                job: &NewLoadJob,
                status: LoadStatus,
                now: Timestamp,
            ) -> RepoResult<LoadJob> {
                let row = NewLoadJobRow {
                    package_id: job.package_id.to_string(),
                    datapackage_url: job.datapackage_url.clone(),
                    owner: job.owner.as_str().to_owned(),
                    status: status.as_str().to_owned(),
                    rows_loaded: 0,
                    created_at: now.as_millis(),
                    updated_at: now.as_millis(),
                };
                self.run(move |conn: &mut $conn| {
                    diesel::insert_into(load_jobs::table)
                        .values(&row)
                        .returning(LoadJobRow::as_returning())
                        .get_result(conn)
                        .map_err(query_error)?
                        .into_job()
                })
                .await
            }
        }

        #[async_trait]
        impl LoadJobRepository for Db<$conn> {
            async fn enqueue(&self, job: &NewLoadJob, now: Timestamp) -> RepoResult<LoadJob> {
                self.insert_job(job, LoadStatus::Queued, now).await
            }

            async fn enqueue_claimed(&self, job: &NewLoadJob, now: Timestamp) -> RepoResult<LoadJob> {
                self.insert_job(job, LoadStatus::Initializing, now).await
            }

            async fn get(&self, id: i64) -> RepoResult<Option<LoadJob>> {
                self.run(move |conn: &mut $conn| {
                    load_jobs::table
                        .find(id)
                        .select(LoadJobRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(LoadJobRow::into_job)
                        .transpose()
                })
                .await
            }

            async fn latest_for_url(&self, datapackage_url: &str) -> RepoResult<Option<LoadJob>> {
                let url = datapackage_url.to_owned();
                self.run(move |conn: &mut $conn| {
                    load_jobs::table
                        .filter(load_jobs::datapackage_url.eq(url))
                        .order(load_jobs::id.desc())
                        .select(LoadJobRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(LoadJobRow::into_job)
                        .transpose()
                })
                .await
            }

            async fn record_progress(
                &self,
                id: i64,
                progress: &JobProgress,
                now: Timestamp,
            ) -> RepoResult<bool> {
                let progress = progress.clone();
                self.run(move |conn: &mut $conn| {
                    let terminal = [LoadStatus::Done.as_str(), LoadStatus::Fail.as_str()];
                    diesel::update(
                        load_jobs::table
                            .find(id)
                            .filter(load_jobs::status.ne_all(terminal)),
                    )
                    .set((
                        load_jobs::status.eq(progress.status.as_str()),
                        load_jobs::rows_loaded.eq(progress.rows_loaded),
                        load_jobs::rows_total.eq(progress.rows_total),
                        load_jobs::error.eq(progress.error),
                        load_jobs::heartbeat_at.eq(Some(now.as_millis())),
                        load_jobs::updated_at.eq(now.as_millis()),
                    ))
                    .execute(conn)
                    .map(|n| n == 1)
                    .map_err(query_error)
                })
                .await
            }

            async fn claim(&self, now: Timestamp) -> RepoResult<Option<LoadJob>> {
                self.run(move |conn: &mut $conn| {
                    conn.$transaction(|conn| {
                        let candidate: Option<IdRow> =
                            diesel::sql_query(format!("{CLAIM_CANDIDATE} {}", $claim_lock))
                                .get_result(conn)
                                .optional()?;
                        let Some(candidate) = candidate else {
                            return Ok(None);
                        };
                        diesel::update(
                            load_jobs::table
                                .find(candidate.id)
                                .filter(load_jobs::status.eq(LoadStatus::Queued.as_str())),
                        )
                        .set((
                            load_jobs::status.eq(LoadStatus::Initializing.as_str()),
                            load_jobs::heartbeat_at.eq(Some(now.as_millis())),
                            load_jobs::updated_at.eq(now.as_millis()),
                        ))
                        .returning(LoadJobRow::as_returning())
                        .get_result(conn)
                        .optional()
                    })
                    .map_err(query_error)?
                    .map(LoadJobRow::into_job)
                    .transpose()
                })
                .await
            }

            async fn unfinished_for_package(&self, package: &PackageId) -> RepoResult<Option<LoadJob>> {
                let package = package.to_string();
                self.run(move |conn: &mut $conn| {
                    let terminal = [LoadStatus::Done.as_str(), LoadStatus::Fail.as_str()];
                    load_jobs::table
                        .filter(load_jobs::package_id.eq(package))
                        .filter(load_jobs::status.ne_all(terminal))
                        .order(load_jobs::id.desc())
                        .select(LoadJobRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(LoadJobRow::into_job)
                        .transpose()
                })
                .await
            }

            async fn beat(&self, id: i64, now: Timestamp) -> RepoResult<bool> {
                self.run(move |conn: &mut $conn| {
                    let terminal = [LoadStatus::Done.as_str(), LoadStatus::Fail.as_str()];
                    diesel::update(
                        load_jobs::table
                            .find(id)
                            .filter(load_jobs::status.ne_all(terminal)),
                    )
                    .set(load_jobs::heartbeat_at.eq(Some(now.as_millis())))
                    .execute(conn)
                    .map(|n| n == 1)
                    .map_err(query_error)
                })
                .await
            }

            async fn requeue(&self, id: i64, now: Timestamp) -> RepoResult<bool> {
                self.run(move |conn: &mut $conn| {
                    let terminal = [LoadStatus::Done.as_str(), LoadStatus::Fail.as_str()];
                    diesel::update(
                        load_jobs::table
                            .find(id)
                            .filter(load_jobs::status.ne_all(terminal)),
                    )
                    .set((
                        load_jobs::status.eq(LoadStatus::Queued.as_str()),
                        load_jobs::rows_loaded.eq(0),
                        load_jobs::rows_total.eq(None::<i64>),
                        load_jobs::error.eq(None::<String>),
                        load_jobs::heartbeat_at.eq(None::<i64>),
                        load_jobs::updated_at.eq(now.as_millis()),
                    ))
                    .execute(conn)
                    .map(|n| n == 1)
                    .map_err(query_error)
                })
                .await
            }

            async fn fail_stale(
                &self,
                before: Timestamp,
                error: &str,
                now: Timestamp,
            ) -> RepoResult<Vec<LoadJob>> {
                let error = error.to_owned();
                self.run(move |conn: &mut $conn| {
                    let settled = [
                        LoadStatus::Queued.as_str(),
                        LoadStatus::Done.as_str(),
                        LoadStatus::Fail.as_str(),
                    ];
                    diesel::update(
                        load_jobs::table
                            .filter(load_jobs::status.ne_all(settled))
                            // A claimed job that never beat counts from its last update.
                            .filter(
                                load_jobs::heartbeat_at
                                    .lt(before.as_millis())
                                    .or(load_jobs::heartbeat_at
                                        .is_null()
                                        .and(load_jobs::updated_at.lt(before.as_millis()))),
                            ),
                    )
                    .set((
                        load_jobs::status.eq(LoadStatus::Fail.as_str()),
                        load_jobs::error.eq(Some(error)),
                        load_jobs::updated_at.eq(now.as_millis()),
                    ))
                    .returning(LoadJobRow::as_returning())
                    .get_results(conn)
                    .map_err(query_error)?
                    .into_iter()
                    .map(LoadJobRow::into_job)
                    .collect()
                })
                .await
            }
        }

        #[async_trait]
        impl SearchOutboxRepository for Db<$conn> {
            async fn push(&self, package_id: &PackageId, now: Timestamp) -> RepoResult<()> {
                let package_id = package_id.to_string();
                self.run(move |conn: &mut $conn| {
                    diesel::insert_into(search_outbox::table)
                        .values((
                            search_outbox::package_id.eq(package_id),
                            search_outbox::created_at.eq(now.as_millis()),
                        ))
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }

            async fn pending(&self, limit: i64) -> RepoResult<Vec<OutboxEntry>> {
                self.run(move |conn: &mut $conn| {
                    let rows: Vec<(i64, String, i32)> = search_outbox::table
                        .order(search_outbox::id)
                        .limit(limit)
                        .select((
                            search_outbox::id,
                            search_outbox::package_id,
                            search_outbox::attempts,
                        ))
                        .load(conn)
                        .map_err(query_error)?;
                    rows.into_iter()
                        .map(|(id, package_id, attempts)| {
                            let package_id = PackageId::parse(&package_id)
                                .map_err(|e| RepoError::Corrupt(format!("search_outbox: {e}")))?;
                            Ok(OutboxEntry {
                                id,
                                package_id,
                                attempts,
                            })
                        })
                        .collect()
                })
                .await
            }

            async fn done(&self, id: i64) -> RepoResult<()> {
                self.run(move |conn: &mut $conn| {
                    diesel::delete(search_outbox::table.find(id))
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }

            async fn failed(&self, id: i64, error: &str) -> RepoResult<()> {
                let error = error.chars().take(1000).collect::<String>();
                self.run(move |conn: &mut $conn| {
                    diesel::update(search_outbox::table.find(id))
                        .set((
                            search_outbox::attempts.eq(search_outbox::attempts + 1),
                            search_outbox::last_error.eq(error),
                        ))
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }
        }

        #[async_trait]
        impl LoginStateRepository for Db<$conn> {
            async fn put(&self, state: &LoginState) -> RepoResult<()> {
                let row = LoginStateRow::from(state);
                self.run(move |conn: &mut $conn| {
                    diesel::insert_into(login_states::table)
                        .values(&row)
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }

            async fn take(&self, state: &str, now: Timestamp) -> RepoResult<Option<LoginState>> {
                let state = state.to_owned();
                self.run(move |conn: &mut $conn| {
                    // DELETE ... RETURNING makes redemption atomic: two callbacks racing get one row between them.
                    let row = diesel::delete(login_states::table.find(state))
                        .returning(LoginStateRow::as_returning())
                        .get_result(conn)
                        .optional()
                        .map_err(query_error)?;
                    Ok(row
                        .filter(|r| r.expires_at > now.as_millis())
                        .map(LoginState::from))
                })
                .await
            }

            async fn purge_expired(&self, now: Timestamp) -> RepoResult<u64> {
                self.run(move |conn: &mut $conn| {
                    diesel::delete(login_states::table.filter(login_states::expires_at.le(now.as_millis())))
                        .execute(conn)
                        .map(|n| n as u64)
                        .map_err(query_error)
                })
                .await
            }
        }
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

// One SQLite file has one writer at a time already; its migrations run in a transaction of their own.
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
