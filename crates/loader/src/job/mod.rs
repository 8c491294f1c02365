//! Running load jobs (DESIGN §7), one concern a file: `pipeline` takes one job from its datapackage URL to
//! swapped-in tables, a saved registry record and a cleared os-api cache, reporting each step's status; `worker`
//! claims jobs from the database and sweeps those whose worker stopped beating; `record` is the registry record a
//! load saves; `ports` are what a load reports to; `error` why it fails. This file holds the `Loader` they share.

mod after_swap;
mod error;
mod feed;
pub(crate) mod pipeline;
mod ports;
mod record;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use conductor_core::repo::{LoadJobRepository, PackageRepository};
use conductor_core::{Clock, PackageId};
use conductor_search::Registry;

pub use self::error::{LoadError, LoadErrorTask};
pub use self::ports::{ApiCache, NoApiCache, Observer, Prefixes, Quiet};
pub use self::record::hide_email;
use crate::babbage::fact_table_name;
use crate::fetch::Source;
use crate::hooks::HookPoster;
use crate::vocabulary::Vocabulary;
use crate::warehouse::Warehouse;

/// The longest reading a datapackage.json may take (security-checklist §4.7's total limit).
const DESCRIPTOR_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest datapackage.json read, and so the largest kept in the registry (the descriptor is read whole and
/// stored with the record; resources are streamed). Real ones are a few KiB; MAX_FIELDS of them fit many times.
pub const MAX_DESCRIPTOR_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct LoaderSettings {
    pub fetch_allowlist: Vec<String>,
    pub max_download: u64,
    /// A job whose heartbeat is older than this is failed by any replica.
    pub heartbeat_timeout: Duration,
    /// A folder whose files an operator's command-line load may read (`file:` URLs); never set in the gateway.
    pub operator_folder: Option<std::path::PathBuf>,
    /// URL prefixes run-hooks may post to (`loader.hook_allowlist`).
    pub hook_allowlist: Vec<String>,
}

impl LoaderSettings {
    /// How often a running job beats: often enough that a few missed beats never look like a dead worker.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.heartbeat_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// What a [`Loader`] is made of: the ports a load needs, and its settings.
pub struct LoaderParts {
    pub vocabulary: Arc<Vocabulary>,
    pub jobs: Arc<dyn LoadJobRepository>,
    pub packages: Arc<dyn PackageRepository>,
    pub registry: Registry,
    pub warehouse: Arc<dyn Warehouse>,
    pub source: Arc<dyn Source>,
    pub prefixes: Prefixes,
    pub cache: Arc<dyn ApiCache>,
    pub hooks: Arc<dyn HookPoster>,
    pub clock: Arc<dyn Clock>,
    pub settings: LoaderSettings,
}

impl std::fmt::Debug for LoaderParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoaderParts").finish_non_exhaustive()
    }
}

/// Everything a load needs, as ports. Built once with [`Loader::new`]; callers use its operations.
#[derive(Clone)]
pub struct Loader {
    pub(crate) vocabulary: Arc<Vocabulary>,
    pub(crate) jobs: Arc<dyn LoadJobRepository>,
    pub(crate) packages: Arc<dyn PackageRepository>,
    pub(crate) registry: Registry,
    pub(crate) warehouse: Arc<dyn Warehouse>,
    pub(crate) source: Arc<dyn Source>,
    pub(crate) prefixes: Prefixes,
    pub(crate) cache: Arc<dyn ApiCache>,
    pub(crate) hooks: Arc<dyn HookPoster>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: LoaderSettings,
    /// Set when this process shuts down: running loads stop and their jobs go back to the queue.
    pub(crate) stopping: Shutdown,
}

impl Loader {
    pub fn new(parts: LoaderParts) -> Self {
        let LoaderParts {
            vocabulary,
            jobs,
            packages,
            registry,
            warehouse,
            source,
            prefixes,
            cache,
            hooks,
            clock,
            settings,
        } = parts;
        Self {
            vocabulary,
            jobs,
            packages,
            registry,
            warehouse,
            source,
            prefixes,
            cache,
            hooks,
            clock,
            settings,
            stopping: Shutdown::default(),
        }
    }

    /// This loader reading `file:` URLs under `folder` too: an operator's `conductor package load PATH`.
    #[must_use]
    pub fn with_operator_folder(mut self, folder: std::path::PathBuf) -> Self {
        self.settings.operator_folder = Some(folder);
        self
    }

    pub fn settings(&self) -> &LoaderSettings {
        &self.settings
    }

    /// Stops this process's loads: running ones give their jobs back to the queue.
    pub fn stop(&self) {
        self.stopping.set();
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.is_set()
    }

    /// The newest job for a datapackage URL: what `/package/status` reports.
    pub async fn latest_job(
        &self,
        datapackage_url: &str,
    ) -> Result<Option<conductor_core::LoadJob>, LoadError> {
        Ok(self.jobs.latest_for_url(datapackage_url).await?)
    }
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What a finished load produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub package: PackageId,
    pub rows: u64,
    pub fact_table: String,
}

/// A flag set once, to stop the workers.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The fact table of a package.
pub fn fact_table_of(package: &PackageId) -> String {
    fact_table_name(package.owner(), package.dataset())
}

/// Records a job that ended before any worker could run it (a refused upload, an imported package): inserted as
/// claimed, so no worker takes it, then given its final `progress`.
pub(crate) async fn record_finished_job(
    jobs: &dyn LoadJobRepository,
    job: &conductor_core::NewLoadJob,
    progress: &conductor_core::repo::JobProgress,
    now: conductor_core::Timestamp,
) -> Result<(), conductor_core::repo::RepoError> {
    let job = jobs.enqueue_claimed(job, now).await?;
    jobs.record_progress(job.id, progress, now).await?;
    Ok(())
}

/// Runs blocking work (file and network reads, the database) off the async threads.
pub(crate) async fn blocking<T, E, F>(work: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<LoadErrorTask> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| E::from(LoadErrorTask(e.to_string())))?
}
