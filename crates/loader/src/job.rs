//! Running load jobs (DESIGN §7): one job from its datapackage URL to swapped-in tables, a saved registry record
//! and a cleared os-api cache, reporting each step's status; the worker loop that claims jobs from the database;
//! and the sweep that fails jobs whose worker stopped beating.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use conductor_core::repo::{JobProgress, LoadJobRepository, PackageRepository, RepoError};
use conductor_core::{Clock, DatasetName, LoadJob, LoadStatus, PackageId, PackageRecord, UserId};
use conductor_search::Registry;
use serde_json::{Value, json};
use url::Url;

use crate::babbage::{babbage_model, fact_table_name};
use crate::descriptor::plan;
use crate::fdp::{FdpModel, fields_to_model};
use crate::fetch::{FetchError, FetchPolicy, Limited, Source};
use crate::star::{StarBuilder, StarPlan, star_plan};
use crate::table::{CsvFormat, TableError, TableReader};
use crate::values::Cell;
use crate::vocabulary::Vocabulary;
use crate::warehouse::{RowSink, StagingFeed, Warehouse, WarehouseError};

/// The longest reading a datapackage.json may take (security-checklist §4.7's total limit).
const DESCRIPTOR_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest datapackage.json read, and so the largest kept in the registry (the descriptor is read whole and
/// stored with the record; resources are streamed). Real ones are a few KiB; MAX_FIELDS of them fit many times.
pub const MAX_DESCRIPTOR_BYTES: u64 = 4 * 1024 * 1024;

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
            Self::Database(detail) => detail.clone(),
            other => other.to_string(),
        }
    }
}

impl From<RepoError> for LoadError {
    fn from(error: RepoError) -> Self {
        Self::Database(error.to_string())
    }
}

/// Clears os-api's cache of a package (reference §5); a no-op when no Redis is configured.
#[async_trait]
pub trait ApiCache: Send + Sync {
    async fn clear(&self, package: &PackageId) -> Result<u64, String>;
}

/// No os-api cache to clear.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoApiCache;

#[async_trait]
impl ApiCache for NoApiCache {
    async fn clear(&self, _package: &PackageId) -> Result<u64, String> {
        Ok(0)
    }
}

/// Hears a job's progress as it happens (the CLI draws its progress bar from it).
pub trait Observer: Send + Sync {
    fn progress(&self, status: LoadStatus, rows: u64, bytes: u64, size: Option<u64>);
}

/// Hears nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {
    fn progress(&self, _: LoadStatus, _: u64, _: u64, _: Option<u64>) {}
}

/// The datastore URL prefixes of an owner (`UploadSigner::prefixes`).
pub type Prefixes = Arc<dyn Fn(&UserId) -> Vec<String> + Send + Sync>;

#[derive(Clone, Debug)]
pub struct LoaderSettings {
    pub fetch_allowlist: Vec<String>,
    pub max_download: u64,
    /// A job whose heartbeat is older than this is failed by any replica.
    pub heartbeat_timeout: Duration,
    /// A folder whose files an operator's command-line load may read (`file:` URLs); never set in the gateway.
    pub operator_folder: Option<std::path::PathBuf>,
}

impl LoaderSettings {
    /// How often a running job beats: often enough that a few missed beats never look like a dead worker.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.heartbeat_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// Everything a load needs, as ports.
#[derive(Clone)]
pub struct Loader {
    pub vocabulary: Arc<Vocabulary>,
    pub jobs: Arc<dyn LoadJobRepository>,
    pub packages: Arc<dyn PackageRepository>,
    pub registry: Registry,
    pub warehouse: Arc<dyn Warehouse>,
    pub source: Arc<dyn Source>,
    pub prefixes: Prefixes,
    pub cache: Arc<dyn ApiCache>,
    pub clock: Arc<dyn Clock>,
    pub settings: LoaderSettings,
    /// Set when this process shuts down: running loads stop and their jobs go back to the queue.
    pub stopping: Shutdown,
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

/// Progress shared between the streaming thread and the task that reports it.
#[derive(Debug, Default)]
struct Shared {
    rows: AtomicU64,
    bytes: AtomicU64,
    streaming: AtomicBool,
    /// Every row is in: `rows` is the total.
    staged: AtomicBool,
    stop: AtomicBool,
}

/// Counts the bytes read, for the progress estimate.
struct Counting<R> {
    inner: R,
    shared: Arc<Shared>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Loader {
    /// The fetch policy for `owner`'s loads.
    pub fn policy(&self, owner: &UserId) -> FetchPolicy {
        let policy = FetchPolicy::new(
            &(self.prefixes)(owner),
            &self.settings.fetch_allowlist,
            self.settings.max_download,
        );
        match &self.settings.operator_folder {
            Some(folder) => policy.with_operator_folder(folder),
            None => policy,
        }
    }

    /// Reads the descriptor at `url` for `owner` (the checks of [`FetchPolicy`] first) and returns it with the
    /// package id its name gives. `/package/upload` calls this before recording a job.
    pub async fn read_descriptor(&self, url: &Url, owner: &UserId) -> Result<(Value, PackageId), LoadError> {
        let mut policy = self.policy(owner);
        // A descriptor is small: a host that takes longer than this is not worth holding a request for.
        policy.timeout = Some(DESCRIPTOR_TIMEOUT);
        let source = self.source.clone();
        let target = url.clone();
        let descriptor = blocking(move || -> Result<Value, LoadError> {
            let opened = source.open(&target, &policy)?;
            let mut bytes = Vec::new();
            Limited::new(opened.reader, MAX_DESCRIPTOR_BYTES)
                .read_to_end(&mut bytes)
                .map_err(|e| FetchError::Failed {
                    url: target.to_string(),
                    reason: e.to_string(),
                })?;
            serde_json::from_slice(&bytes).map_err(|e| LoadError::Json(e.to_string()))
        })
        .await?;
        let name = descriptor
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| LoadError::Invalid("the datapackage has no name".into()))?;
        let dataset = DatasetName::slug(name)
            .map_err(|e| LoadError::Invalid(format!("the name {name:?} gives no usable dataset id: {e}")))?;
        Ok((descriptor, PackageId::new(owner.clone(), dataset)))
    }

    /// Runs one claimed job to its end, recording every status; returns what it loaded or why it failed (the
    /// failure is recorded on the job too).
    pub async fn run(&self, job: &LoadJob, observer: &dyn Observer) -> Result<Loaded, LoadError> {
        let shared = Arc::new(Shared::default());
        // The heartbeat runs for the whole job (slow fetches and the swap included), not only while rows stream.
        let heartbeat = {
            let jobs = self.jobs.clone();
            let clock = self.clock.clone();
            let shared = shared.clone();
            let every = self.settings.heartbeat_interval();
            let id = job.id;
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                loop {
                    ticker.tick().await;
                    match jobs.beat(id, clock.now()).await {
                        Ok(true) => {}
                        Ok(false) => shared.stop.store(true, Ordering::Relaxed),
                        Err(e) => tracing::warn!(job = id, error = %e, "could not record a heartbeat"),
                    }
                }
            })
        };
        let result = self.load(job, observer, &shared).await;
        heartbeat.abort();
        match &result {
            Ok(loaded) => {
                let rows = loaded.rows as i64;
                self.report(job, LoadStatus::Done, rows, Some(rows), None).await;
                observer.progress(LoadStatus::Done, loaded.rows, 0, None);
                tracing::info!(job = job.id, package = %loaded.package, rows, "load done");
            }
            Err(LoadError::Interrupted) => {
                tracing::info!(job = job.id, package = %job.package_id, "load interrupted by shutdown; requeued");
                self.drop_staging_of(job).await;
                if let Err(e) = self.jobs.requeue(job.id, self.clock.now()).await {
                    // The sweep fails it once its heartbeat is old enough.
                    tracing::warn!(job = job.id, error = %e, "could not requeue an interrupted job");
                }
                observer.progress(LoadStatus::Queued, 0, 0, None);
            }
            Err(error) => {
                tracing::warn!(job = job.id, package = %job.package_id, error = %error.detail(), "load failed");
                self.mark_first_load_failed(&job.package_id).await;
                let rows = shared.rows.load(Ordering::Relaxed) as i64;
                // A job ended elsewhere had its staging tables dropped there, and the package's next job may
                // already be filling new ones: leave them alone.
                if !matches!(error, LoadError::JobEnded) {
                    self.drop_staging_of(job).await;
                }
                self.report(job, LoadStatus::Fail, rows, None, Some(error.to_string()))
                    .await;
                observer.progress(LoadStatus::Fail, rows as u64, 0, None);
            }
        }
        result
    }

    /// Drops the staging tables of `job`'s package; a failure is logged (the next load of it drops them too).
    async fn drop_staging_of(&self, job: &LoadJob) {
        let fact_table = fact_table_of(&job.package_id);
        let warehouse = self.warehouse.clone();
        if let Err(e) = blocking(move || warehouse.drop_staging(&fact_table)).await {
            tracing::error!(job = job.id, error = %e, "could not drop the staging tables");
        }
    }

    async fn report(
        &self,
        job: &LoadJob,
        status: LoadStatus,
        rows: i64,
        rows_total: Option<i64>,
        error: Option<String>,
    ) -> bool {
        let progress = JobProgress {
            status,
            rows_loaded: rows,
            rows_total,
            error,
        };
        match self
            .jobs
            .record_progress(job.id, &progress, self.clock.now())
            .await
        {
            Ok(running) => running,
            Err(e) => {
                // A missed beat is not fatal: the next one may pass. Enough missed ones and the sweep fails the job.
                tracing::warn!(job = job.id, error = %e, "could not record the job's progress");
                true
            }
        }
    }

    /// Records `status`, failing the load if another worker ended the job meanwhile.
    async fn step(
        &self,
        job: &LoadJob,
        status: LoadStatus,
        observer: &dyn Observer,
        shared: &Shared,
    ) -> Result<(), LoadError> {
        if shared.stop.load(Ordering::Relaxed) {
            return Err(LoadError::JobEnded);
        }
        // Until the swap a stopping process gives the job back; from the swap on it finishes (it is quick).
        if self.stopping.is_set() && status < LoadStatus::DeletingTable {
            return Err(LoadError::Interrupted);
        }
        // Steps after the rows are in keep reporting them, so progress never goes back.
        let rows = shared.rows.load(Ordering::Relaxed);
        let total = shared.staged.load(Ordering::Relaxed).then_some(rows as i64);
        observer.progress(status, rows, shared.bytes.load(Ordering::Relaxed), None);
        if self.report(job, status, rows as i64, total, None).await {
            Ok(())
        } else {
            Err(LoadError::JobEnded)
        }
    }

    async fn load(
        &self,
        job: &LoadJob,
        observer: &dyn Observer,
        shared: &Arc<Shared>,
    ) -> Result<Loaded, LoadError> {
        self.step(job, LoadStatus::Initializing, observer, shared).await?;
        let url = Url::parse(&job.datapackage_url)
            .map_err(|_| FetchError::InvalidUrl(job.datapackage_url.clone()))?;

        self.step(job, LoadStatus::LoadingDatapackage, observer, shared)
            .await?;
        let (descriptor, package_id) = self.read_descriptor(&url, &job.owner).await?;
        if package_id != job.package_id {
            return Err(LoadError::Renamed {
                was: job.package_id.dataset().to_string(),
                now: package_id.dataset().to_string(),
            });
        }

        self.step(job, LoadStatus::ValidatingDatapackage, observer, shared)
            .await?;
        self.list_first_load(&package_id, &url, &descriptor).await;
        let fact_table = fact_table_name(&job.owner, package_id.dataset());
        // Planning grows with the descriptor: it runs on a blocking thread, never on the threads that beat.
        let (descriptor, resource_index, fdp, star) = {
            let vocabulary = self.vocabulary.clone();
            let fact_table = fact_table.clone();
            blocking(move || -> Result<_, LoadError> {
                let (resource, fdp, star) = plan_load(&vocabulary, &descriptor, &fact_table)?;
                Ok((descriptor, resource, fdp, star))
            })
            .await?
        };
        let resource = descriptor["resources"][resource_index].clone();
        let resource_url = resource_url(&url, &resource)?;

        self.step(job, LoadStatus::LoadingResource, observer, shared)
            .await?;
        let policy = self.policy(&job.owner);
        let source = self.source.clone();
        let columns = star.columns.clone();
        // Without a header row, the columns are every field of the schema in order (typed or not).
        let schema_order: Vec<String> = resource["schema"]["fields"]
            .as_array()
            .map(|fields| {
                fields
                    .iter()
                    .map(|f| f["name"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let counting = shared.clone();
        let (table, size) = blocking(move || -> Result<(TableReader, Option<u64>), LoadError> {
            let opened = source.open(&resource_url, &policy)?;
            let format = CsvFormat::of_resource(&resource)?;
            let reader = Box::new(Counting {
                inner: opened.reader,
                shared: counting,
            });
            Ok((
                TableReader::open(reader, &format, columns, &schema_order)?,
                opened.size,
            ))
        })
        .await?;

        self.step(job, LoadStatus::CreatingTable, observer, shared)
            .await?;
        let rows = self.stage(job, &star, table, size, observer, shared).await?;
        shared.staged.store(true, Ordering::Relaxed);

        self.step(job, LoadStatus::CreatingBabbageModel, observer, shared)
            .await?;
        let model = babbage_model(&fdp, &fact_table);

        self.step(job, LoadStatus::DeletingTable, observer, shared)
            .await?;
        let warehouse = self.warehouse.clone();
        let layout = star.layout.clone();
        let job_id = job.id;
        blocking(move || warehouse.swap(&layout, job_id))
            .await
            .map_err(|e| match e {
                WarehouseError::JobEnded => LoadError::JobEnded,
                other => LoadError::Database(other.to_string()),
            })?;

        // The new tables are in: from here on the load completes whatever happens to the job row, and the
        // registry write is retried, so the record always follows the tables.
        self.report(
            job,
            LoadStatus::SavingMetadata,
            rows as i64,
            Some(rows as i64),
            None,
        )
        .await;
        observer.progress(LoadStatus::SavingMetadata, rows, 0, None);
        let previous = self.with_retries(|| self.packages.get(&package_id)).await?;
        let record = registry_record(
            &package_id,
            &url,
            descriptor,
            &fdp.model,
            model,
            rows,
            previous.as_ref(),
            &*self.clock,
        );
        self.with_retries(|| self.registry.put(&record))
            .await
            .map_err(|e| LoadError::Database(e.to_string()))?;
        // The data is in: a stale os-api cache is worth a warning, not a failed load.
        self.clear_cache(&package_id).await;
        Ok(Loaded {
            package: package_id,
            rows,
            fact_table,
        })
    }

    /// Streams the rows into the staging tables on a blocking thread while this task reports progress (the
    /// heartbeat) and stops the stream if the job was ended elsewhere.
    async fn stage(
        &self,
        job: &LoadJob,
        star: &StarPlan,
        table: TableReader,
        size: Option<u64>,
        observer: &dyn Observer,
        shared: &Arc<Shared>,
    ) -> Result<u64, LoadError> {
        let warehouse = self.warehouse.clone();
        let mut feed = Feed {
            table,
            builder: StarBuilder::new(star),
            tables: star.layout.dimensions.iter().map(|d| d.name.clone()).collect(),
            shared: shared.clone(),
            stopping: self.stopping.clone(),
            error: None,
        };
        let layout = star.layout.clone();
        let mut staging = tokio::task::spawn_blocking(move || {
            let result = warehouse.stage(&layout, &mut feed);
            (result, feed.error, feed.table.rows_read())
        });
        let mut ticker = tokio::time::interval(self.settings.heartbeat_interval());
        let mut announced = false;
        let outcome = loop {
            tokio::select! {
                done = &mut staging => break done,
                _ = ticker.tick() => {
                    let rows = shared.rows.load(Ordering::Relaxed);
                    let bytes = shared.bytes.load(Ordering::Relaxed);
                    let streaming = shared.streaming.load(Ordering::Relaxed);
                    if streaming && !announced {
                        announced = true;
                        self.report(job, LoadStatus::LoadingDataReady, 0, None, None).await;
                        observer.progress(LoadStatus::LoadingDataReady, 0, bytes, size);
                    }
                    let status = if streaming { LoadStatus::LoadingData } else { LoadStatus::CreatingTable };
                    let estimate = estimate_total(rows, bytes, size);
                    observer.progress(status, rows, bytes, size);
                    if !self.report(job, status, rows as i64, estimate, None).await {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        };
        let (result, feed_error, rows) =
            outcome.map_err(|e| LoadError::Database(format!("load task failed: {e}")))?;
        match (result, feed_error) {
            (Ok(()), _) => Ok(rows),
            (Err(_), Some(error)) => Err(error),
            (Err(WarehouseError::Stopped), None) => Err(LoadError::JobEnded),
            (Err(e), None) => Err(LoadError::Database(e.to_string())),
        }
    }

    /// Runs `attempt` up to three times, a second apart, for writes that must follow a swap.
    async fn with_retries<T, E, F, Fut>(&self, attempt: F) -> Result<T, E>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) if tries < 2 => {
                    tries += 1;
                    tracing::warn!(error = %e, "retrying a write after the swap");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the next job this worker may run, if any.
    pub async fn claim(&self) -> Result<Option<LoadJob>, RepoError> {
        self.jobs.claim(self.clock.now()).await
    }

    /// Fails the jobs whose heartbeat stopped for `heartbeat_timeout` and drops their staging tables; the
    /// packages' current tables are untouched. Returns how many were failed.
    pub async fn fail_stale_jobs(&self) -> Result<usize, RepoError> {
        let now = self.clock.now();
        let stale = self
            .jobs
            .fail_stale(
                now.minus(self.settings.heartbeat_timeout),
                "the load stopped: its worker went away (no heartbeat); the previous data is unchanged",
                now,
            )
            .await?;
        for job in &stale {
            tracing::warn!(job = job.id, package = %job.package_id, "failed a load job whose heartbeat stopped");
            self.drop_staging_of(job).await;
            self.mark_first_load_failed(&job.package_id).await;
        }
        Ok(stale.len())
    }

    /// One worker: claims and runs jobs until the process stops, waking on `wake` or every second.
    pub async fn work(&self, wake: Arc<tokio::sync::Notify>) {
        while !self.stopping.is_set() {
            match self.claim().await {
                Ok(Some(job)) => {
                    let _ = self.run(&job, &Quiet).await;
                }
                Ok(None) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "could not claim a load job");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    /// Drops a package's tables and its registry record (and index entry), unless a load of it is queued or
    /// running; returns whether the record existed.
    pub async fn remove(&self, package: &PackageId) -> Result<bool, crate::manage::ManageError> {
        if self
            .jobs
            .unfinished_for_package(package)
            .await
            .map_err(LoadError::from)?
            .is_some()
        {
            return Err(crate::manage::ManageError::Busy(package.clone()));
        }
        Ok(self.remove_now(package).await?)
    }

    async fn remove_now(&self, package: &PackageId) -> Result<bool, LoadError> {
        let fact_table = fact_table_of(package);
        let warehouse = self.warehouse.clone();
        blocking(move || warehouse.drop_tables(&fact_table))
            .await
            .map_err(|e| LoadError::Database(e.to_string()))?;
        let existed = self
            .registry
            .delete(package)
            .await
            .map_err(|e| LoadError::Database(e.to_string()))?;
        self.clear_cache(package).await;
        Ok(existed)
    }
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

/// Rows expected in all, from the bytes read so far against the resource's size (exact once done).
fn estimate_total(rows: u64, bytes: u64, size: Option<u64>) -> Option<i64> {
    let size = size?;
    if rows == 0 || bytes == 0 {
        return None;
    }
    let estimate = (rows as f64 * size as f64 / bytes as f64).round() as i64;
    Some(estimate.max(rows as i64))
}

/// The fact table of a package.
pub fn fact_table_of(package: &PackageId) -> String {
    fact_table_name(package.owner(), package.dataset())
}

/// A resource's data URL: its `path` (the first, if a list) resolved against the descriptor's URL, or its `url`.
fn resource_url(descriptor_url: &Url, resource: &Value) -> Result<Url, LoadError> {
    let path = match resource.get("path") {
        Some(Value::String(p)) => Some(p.as_str()),
        Some(Value::Array(paths)) => paths.first().and_then(Value::as_str),
        _ => None,
    };
    let raw = path
        .or_else(|| resource.get("url").and_then(Value::as_str))
        .ok_or_else(|| LoadError::Invalid("the resource has neither a path nor a url".into()))?;
    descriptor_url
        .join(raw)
        .map_err(|_| LoadError::Fetch(FetchError::InvalidUrl(raw.to_owned())))
}

/// The registry record of a finished load (reference §1.1, DESIGN §7): the user's descriptor with `owner`,
/// `private` (a first load is private, a reload keeps the visibility), the FDP model and row counts; the
/// author's e-mail hidden; `defaultParams` kept across reloads.
#[allow(clippy::too_many_arguments)]
fn registry_record(
    id: &PackageId,
    origin_url: &Url,
    mut descriptor: Value,
    fdp_model: &Value,
    babbage: Value,
    rows: u64,
    previous: Option<&PackageRecord>,
    clock: &dyn Clock,
) -> PackageRecord {
    let private = previous
        .and_then(|p| p.package.get("private"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if let Some(package) = descriptor.as_object_mut() {
        package.insert("owner".into(), json!(id.owner().as_str()));
        package.insert("private".into(), json!(private));
        package.insert("model".into(), fdp_model.clone());
        package.insert("count_of_rows".into(), json!(rows));
        if let Some(author) = package.get("author").and_then(Value::as_str) {
            let hidden = hide_email(author);
            package.insert("author".into(), json!(hidden));
        }
        if let Some(params) = previous.and_then(|p| p.package.get("defaultParams")) {
            package.insert("defaultParams".into(), params.clone());
        }
    }
    PackageRecord {
        id: id.clone(),
        model: babbage,
        package: descriptor,
        origin_url: origin_url.to_string(),
        dataset: None,
        author: None,
        loading_status: Some(LoadStatus::Done),
        loaded: true,
        last_update: clock.now(),
    }
}

/// The original's rule (`parseaddr`): `Name <someone@example.org>` becomes `Name <someone@not.shown>`; an author
/// without an address stays as it is.
pub fn hide_email(author: &str) -> String {
    let trimmed = author.trim();
    let (name, address) = match (trimmed.rfind('<'), trimmed.ends_with('>')) {
        (Some(open), true) => (trimmed[..open].trim(), &trimmed[open + 1..trimmed.len() - 1]),
        _ if trimmed.contains('@') && !trimmed.contains(' ') => ("", trimmed),
        _ => return author.to_owned(),
    };
    let Some((local, _)) = address.trim().rsplit_once('@') else {
        return author.to_owned();
    };
    let name = name.trim_matches('"');
    if name.is_empty() {
        format!("<{local}@not.shown>")
    } else {
        format!("{name} <{local}@not.shown>")
    }
}

/// The resource to load, its FDP model and its star schema: the CPU-bound part of a load.
fn plan_load(
    vocabulary: &Vocabulary,
    descriptor: &Value,
    fact_table: &str,
) -> Result<(usize, FdpModel, StarPlan), LoadError> {
    let load_plan = plan(vocabulary, descriptor).map_err(|problems| {
        LoadError::Invalid(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let inputs: Vec<_> = load_plan.fields.iter().map(|f| f.input.clone()).collect();
    let fdp = fields_to_model(vocabulary, &inputs).map_err(|e| LoadError::Invalid(e.to_string()))?;
    let headers: HashMap<String, String> = load_plan
        .fields
        .iter()
        .map(|f| (f.input.name.clone(), f.original.clone()))
        .collect();
    let star = star_plan(&fdp, fact_table, &headers);
    Ok((load_plan.resource, fdp, star))
}

/// Runs blocking work (file and network reads, the database) off the async threads.
async fn blocking<T, E, F>(work: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<LoadErrorTask> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| E::from(LoadErrorTask(e.to_string())))?
}

/// A blocking task that panicked or was cancelled.
#[derive(Debug)]
pub struct LoadErrorTask(String);

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

/// Feeds the warehouse from the CSV, counting rows and stopping when asked.
struct Feed {
    table: TableReader,
    builder: StarBuilder,
    /// The dimension tables' names, for messages.
    tables: Vec<String>,
    shared: Arc<Shared>,
    stopping: Shutdown,
    error: Option<LoadError>,
}

impl StagingFeed for Feed {
    fn facts(&mut self, sink: &mut dyn RowSink) -> Result<(), WarehouseError> {
        self.shared.streaming.store(true, Ordering::Relaxed);
        let mut cells: Vec<Cell> = Vec::new();
        let mut fact: Vec<Cell> = Vec::new();
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                self.error = Some(LoadError::JobEnded);
                return Err(WarehouseError::Stopped);
            }
            if self.stopping.is_set() {
                self.error = Some(LoadError::Interrupted);
                return Err(WarehouseError::Stopped);
            }
            match self.table.next_row(&mut cells) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => {
                    self.error = Some(e.into());
                    return Err(WarehouseError::Stopped);
                }
            }
            if let Err(index) = self.builder.split(&cells, &mut fact) {
                self.error = Some(LoadError::Invalid(format!(
                    "row {}: the dimension in table {} has more than {} distinct rows; is a per-row value \
                     (an id) mapped to a dimension instead of left out?",
                    self.table.rows_read(),
                    self.tables[index],
                    crate::star::MAX_DISTINCT
                )));
                return Err(WarehouseError::Stopped);
            }
            sink.row(&fact)?;
            self.shared.rows.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dimension(&mut self, index: usize, sink: &mut dyn RowSink) -> Result<(), WarehouseError> {
        for row in self.builder.dimension_rows(index) {
            sink.row(&row)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_lose_their_address_domain() {
        assert_eq!(
            hide_email("Jane Doe <jane@example.org>"),
            "Jane Doe <jane@not.shown>"
        );
        assert_eq!(
            hide_email("\"Doe, Jane\" <jane@example.org>"),
            "Doe, Jane <jane@not.shown>"
        );
        assert_eq!(hide_email("jane@example.org"), "<jane@not.shown>");
        assert_eq!(hide_email("Ministry of Finance"), "Ministry of Finance");
    }

    #[test]
    fn resource_urls_resolve_against_the_descriptor() {
        let base = Url::parse("http://h/datastore/files/o/d/datapackage.json").unwrap();
        assert_eq!(
            resource_url(&base, &json!({"path": "data/x.csv"}))
                .unwrap()
                .as_str(),
            "http://h/datastore/files/o/d/data/x.csv"
        );
        assert_eq!(
            resource_url(&base, &json!({"path": ["a.csv", "b.csv"]}))
                .unwrap()
                .as_str(),
            "http://h/datastore/files/o/d/a.csv"
        );
        assert_eq!(
            resource_url(&base, &json!({"url": "https://e.org/x.csv"}))
                .unwrap()
                .as_str(),
            "https://e.org/x.csv"
        );
        assert!(resource_url(&base, &json!({})).is_err());
    }

    #[test]
    fn the_total_is_estimated_from_bytes() {
        assert_eq!(estimate_total(100, 1000, Some(10_000)), Some(1000));
        assert_eq!(estimate_total(0, 0, Some(10_000)), None);
        assert_eq!(estimate_total(10, 100, None), None);
    }
}
