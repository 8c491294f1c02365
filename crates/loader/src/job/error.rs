//! Why a load fails, in words for the package's owner.

use conductor_core::repo::RepoError;

use crate::fetch::FetchError;
use crate::table::TableError;
use crate::warehouse::WarehouseError;

/// Why a load failed. Messages are for the package's owner: they name field, row and column, never internals.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("the datapackage is not valid JSON: {0}")]
    Json(String),
    #[error("the datapackage is not valid: {0}")]
    Invalid(String),
    #[error("{0}")]
    Table(#[from] TableError),
    #[error("the datapackage's name is now {now:?}, not the {was:?} it had when it was uploaded")]
    Renamed { was: String, now: String },
    #[error("the database failed while loading; the previous data is unchanged")]
    Database(String),
    /// The database could not be reached (a restart, a failover): worth trying again shortly.
    #[error("the database was unavailable; the previous data is unchanged")]
    Unavailable(String),
    #[error("the load was stopped: its worker lost the job (its heartbeat stopped for too long)")]
    JobEnded,
    /// This process is shutting down; the job goes back to the queue.
    #[error("the loading process stopped; the load will start again")]
    Interrupted,
}

impl LoadError {
    /// What goes into the logs (the database detail the user is not shown).
    pub fn detail(&self) -> String {
        match self {
            Self::Database(detail) | Self::Unavailable(detail) => detail.clone(),
            other => other.to_string(),
        }
    }
}

impl From<RepoError> for LoadError {
    fn from(error: RepoError) -> Self {
        match error {
            RepoError::Unavailable(detail) => Self::Unavailable(detail),
            other => Self::Database(other.to_string()),
        }
    }
}

impl From<WarehouseError> for LoadError {
    fn from(error: WarehouseError) -> Self {
        match error {
            WarehouseError::Unavailable(detail) => Self::Unavailable(detail),
            WarehouseError::Database(detail) => Self::Database(detail),
            other => Self::Database(other.to_string()),
        }
    }
}

impl From<conductor_search::registry::RegistryError> for LoadError {
    fn from(error: conductor_search::registry::RegistryError) -> Self {
        match error {
            conductor_search::registry::RegistryError::Store(e) => e.into(),
        }
    }
}

/// A blocking task that panicked or was cancelled.
#[derive(Debug)]
pub struct LoadErrorTask(pub(crate) String);

impl From<LoadErrorTask> for LoadError {
    fn from(e: LoadErrorTask) -> Self {
        Self::Database(format!("load task failed: {}", e.0))
    }
}

impl From<LoadErrorTask> for WarehouseError {
    fn from(e: LoadErrorTask) -> Self {
        Self::Database(format!("load task failed: {}", e.0))
    }
}
