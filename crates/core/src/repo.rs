//! Repository ports: what the domain needs from persistence. Adapters (`conductor-store`) implement them for
//! PostgreSQL and SQLite, and one contract suite checks every adapter the same way.

use async_trait::async_trait;

use crate::api_key::ApiKey;
use crate::clock::Timestamp;
use crate::ids::{PackageId, UserId};
use crate::records::{
    Grantee, LoadJob, LoadStatus, LoginState, NewLoadJob, NewUser, PackageRecord, PermissionGrant, Profile,
};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The database cannot be reached or has not been migrated yet; retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (for example a username already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored value does not parse back into its domain type.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Query(String),
}

pub type RepoResult<T> = Result<T, RepoError>;

/// The outcome of setting a username, which the original allows only once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernameChange {
    Set,
    AlreadySet,
    Taken,
    NoSuchUser,
}

#[async_trait]
pub trait UserRepository: Send + Sync {
    async fn get(&self, id: &UserId) -> RepoResult<Option<Profile>>;
    /// Creates the user on first login; later logins refresh name, e-mail and avatar and keep the rest.
    async fn upsert_login(&self, user: &NewUser, now: Timestamp) -> RepoResult<Profile>;
    async fn set_username(&self, id: &UserId, username: &str) -> RepoResult<UsernameChange>;
}

#[async_trait]
pub trait PermissionRepository: Send + Sync {
    async fn get(&self, grantee: &Grantee, service: &str) -> RepoResult<Option<PermissionGrant>>;
    /// Everyone's grant and `user`'s own for `service`, in one read (`/user/authorize` asks on every call),
    /// `*` first; either may be missing.
    async fn for_user(&self, user: &UserId, service: &str) -> RepoResult<Vec<PermissionGrant>>;
    /// Replaces the grantee's permissions for that service.
    async fn put(&self, grant: &PermissionGrant) -> RepoResult<()>;
    /// Returns whether a row was removed.
    async fn delete(&self, grantee: &Grantee, service: &str) -> RepoResult<bool>;
    /// Every row, or one grantee's, ordered by grantee then service.
    async fn list(&self, grantee: Option<&Grantee>) -> RepoResult<Vec<PermissionGrant>>;
}

#[async_trait]
pub trait ApiKeyRepository: Send + Sync {
    /// Stores a new key; `Conflict` when its id is taken.
    async fn create(&self, key: &ApiKey) -> RepoResult<()>;
    async fn get(&self, id: &str) -> RepoResult<Option<ApiKey>>;
    /// One owner's keys, or everyone's, revoked ones included, newest first.
    async fn list(&self, owner: Option<&UserId>) -> RepoResult<Vec<ApiKey>>;
    /// Marks a key revoked (only `owner`'s, when given); returns whether a key not yet revoked was found.
    async fn revoke(&self, id: &str, owner: Option<&UserId>, now: Timestamp) -> RepoResult<bool>;
    /// How many of `owner`'s keys are neither revoked nor expired at `now`.
    async fn count_live(&self, owner: &UserId, now: Timestamp) -> RepoResult<u64>;
    /// Records that the key was used, writing only when the last record is older than `coarser_than` ms, so a
    /// busy key does not cost a write per request.
    async fn touch(&self, id: &str, now: Timestamp, coarser_than: i64) -> RepoResult<()>;
}

#[async_trait]
pub trait PackageRepository: Send + Sync {
    async fn get(&self, id: &PackageId) -> RepoResult<Option<PackageRecord>>;
    /// The records with these ids that exist, in any order (one round trip per few hundred ids).
    async fn get_many(&self, ids: &[PackageId]) -> RepoResult<Vec<PackageRecord>>;
    /// Inserts or replaces the whole record.
    async fn put(&self, record: &PackageRecord) -> RepoResult<()>;
    async fn delete(&self, id: &PackageId) -> RepoResult<bool>;
    /// Up to `limit` packages ordered by id, the first after `after` (from the first when `None`): the search
    /// index is rebuilt from these pages, so no rebuild holds the whole catalogue.
    async fn page(&self, after: Option<&PackageId>, limit: usize) -> RepoResult<Vec<PackageRecord>>;
    /// Counts over every package, private ones too, without reading any record whole.
    async fn counts(&self) -> RepoResult<RegistryCounts>;
}

/// What `/package/stats` answers: packages, the sum of their `count_of_rows`, and distinct country codes
/// (upper-cased) over their `countryCode`s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryCounts {
    pub packages: u64,
    pub rows: u64,
    pub countries: u64,
}

/// A change to a running job, applied with its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProgress {
    pub status: LoadStatus,
    pub rows_loaded: i64,
    pub rows_total: Option<i64>,
    pub error: Option<String>,
}

#[async_trait]
pub trait LoadJobRepository: Send + Sync {
    async fn enqueue(&self, job: &NewLoadJob, now: Timestamp) -> RepoResult<LoadJob>;
    async fn get(&self, id: i64) -> RepoResult<Option<LoadJob>>;
    /// The newest job for a datapackage URL: what `/package/status` reports.
    async fn latest_for_url(&self, datapackage_url: &str) -> RepoResult<Option<LoadJob>>;
    /// Records progress and a heartbeat; returns false when the job is already terminal (for example failed by
    /// another replica after a missed heartbeat), so the worker stops.
    async fn record_progress(&self, id: i64, progress: &JobProgress, now: Timestamp) -> RepoResult<bool>;
    /// Takes the oldest queued job whose package has no earlier unfinished job (jobs of one package run one at a
    /// time, in order), marking it `initializing` with a heartbeat. Concurrent claimers never take the same job.
    async fn claim(&self, now: Timestamp) -> RepoResult<Option<LoadJob>>;
    /// The newest job of `package` that is queued or running, if any.
    async fn unfinished_for_package(&self, package: &PackageId) -> RepoResult<Option<LoadJob>>;
    /// Records that a running job's worker is alive; returns false when the job has ended (failed elsewhere).
    async fn beat(&self, id: i64, now: Timestamp) -> RepoResult<bool>;
    /// Puts an unfinished job back in the queue (its worker is shutting down), clearing its progress; returns
    /// whether it was still unfinished.
    async fn requeue(&self, id: i64, now: Timestamp) -> RepoResult<bool>;
    /// Records a job already claimed by its caller (`initializing`), for a load run in-process by the CLI.
    async fn enqueue_claimed(&self, job: &NewLoadJob, now: Timestamp) -> RepoResult<LoadJob>;
    /// Fails the running jobs (claimed, not finished) whose heartbeat is older than `before`, and returns them.
    async fn fail_stale(&self, before: Timestamp, error: &str, now: Timestamp) -> RepoResult<Vec<LoadJob>>;
}

#[async_trait]
pub trait LoginStateRepository: Send + Sync {
    async fn put(&self, state: &LoginState) -> RepoResult<()>;
    /// Removes and returns the state if it exists and has not expired: a state is redeemable once.
    async fn take(&self, state: &str, now: Timestamp) -> RepoResult<Option<LoginState>>;
    /// Removes expired states; returns how many.
    async fn purge_expired(&self, now: Timestamp) -> RepoResult<u64>;
}

/// A pending index write: bring `package_id`'s index entry in step with the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub package_id: PackageId,
    pub attempts: i32,
}

#[async_trait]
pub trait SearchOutboxRepository: Send + Sync {
    async fn push(&self, package_id: &PackageId, now: Timestamp) -> RepoResult<()>;
    /// The oldest pending entries.
    async fn pending(&self, limit: i64) -> RepoResult<Vec<OutboxEntry>>;
    async fn done(&self, id: i64) -> RepoResult<()>;
    async fn failed(&self, id: i64, error: &str) -> RepoResult<()>;
}
