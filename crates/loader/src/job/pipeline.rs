//! One load job from its datapackage URL to swapped-in tables: each step's status recorded as it starts, the
//! heartbeat beating throughout, the rows streamed on a blocking thread, the registry record saved after the swap.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use conductor_core::repo::JobProgress;
use conductor_core::{DatasetName, LoadJob, LoadStatus, PackageId, UserId};
use conductor_search::RegistryError;
use serde_json::Value;
use url::Url;

use super::after_swap::retry_after_swap;
use super::feed::{Feed, Shared};
use super::record::registry_record;
use super::{
    DESCRIPTOR_TIMEOUT, LoadError, Loaded, Loader, MAX_DESCRIPTOR_BYTES, Observer, blocking, fact_table_of,
};
use crate::babbage::{babbage_model, fact_table_name};
use crate::descriptor::{Problem, plan};
use crate::fdp::{FdpModel, fields_to_model};
use crate::fetch::{FetchError, FetchPolicy, Limited};
use crate::older::translate;
use crate::star::{StarBuilder, StarPlan, star_plan};
use crate::stated::stated_model;
use crate::table::{CsvFormat, TableReader};
use crate::vocabulary::Vocabulary;
use crate::warehouse::WarehouseError;

/// How often the rows loaded so far are recorded while they stream, at the most: often enough that a bar
/// watching a load of a few seconds moves several times; one small UPDATE of the job's row each time.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

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
    pub(super) async fn drop_staging_of(&self, job: &LoadJob) {
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
        // Until the swap a stopping process gives the job back; from the swap on it finishes (quick, unless the
        // database is away: see `after_swap`).
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
        let fact_table = fact_table_name(&job.owner, package_id.dataset());
        // A first load is listed (a registry write and an index commit, a twentieth of a million-row load) while
        // its rows stream in, and always before the swap: a listing after the final record would hide the loaded
        // package again.
        let (_, staged) = tokio::join!(
            self.list_first_load(&package_id, &url, &descriptor),
            self.plan_and_stage(job, &url, &descriptor, &fact_table, observer, shared),
        );
        let (fdp, star, rows) = staged?;

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
                other => other.into(),
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
        let previous = retry_after_swap(|| self.packages.get(&package_id)).await?;
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
        retry_after_swap(|| async {
            self.registry
                .put(&record)
                .await
                .map_err(|RegistryError::Store(e)| e)
        })
        .await?;
        // The data is in: a stale os-api cache is worth a warning, not a failed load.
        self.clear_cache(&package_id).await;
        Ok(Loaded {
            package: package_id,
            rows,
            fact_table,
        })
    }

    /// Plans the tables, opens the resource and streams its rows into the staging tables.
    async fn plan_and_stage(
        &self,
        job: &LoadJob,
        url: &Url,
        descriptor: &Value,
        fact_table: &str,
        observer: &dyn Observer,
        shared: &Arc<Shared>,
    ) -> Result<(FdpModel, StarPlan, u64), LoadError> {
        // Planning grows with the descriptor: it runs on a blocking thread, never on the threads that beat.
        let (descriptor, resource_index, fdp, star) = {
            let vocabulary = self.vocabulary.clone();
            let descriptor = descriptor.clone();
            let fact_table = fact_table.to_owned();
            blocking(move || -> Result<_, LoadError> {
                let (resource, fdp, star) = plan_load(&vocabulary, &descriptor, &fact_table)?;
                Ok((descriptor, resource, fdp, star))
            })
            .await?
        };
        let resource = descriptor["resources"][resource_index].clone();
        let resource_url = resource_url(url, &resource)?;

        self.step(job, LoadStatus::LoadingResource, observer, shared)
            .await?;
        let policy = self.policy(&job.owner);
        let source = self.source.clone();
        let columns = star.columns.clone();
        let schema_order = schema_order(&resource);
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
        Ok((fdp, star, rows))
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
        // Progress is reported every quarter second while rows stream (a person watches it), which also beats.
        let every = self.settings.heartbeat_interval().min(PROGRESS_EVERY);
        let mut ticker = tokio::time::interval(every);
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
            (Err(e), None) => Err(e.into()),
        }
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

/// A resource's data URL: its `path` (the first, if a list) resolved against the descriptor's URL, or its `url`.
fn resource_url(descriptor_url: &Url, resource: &Value) -> Result<Url, LoadError> {
    let raw = resource_path(resource)
        .or_else(|| resource.get("url").and_then(Value::as_str))
        .ok_or_else(|| LoadError::Invalid("the resource has neither a path nor a url".into()))?;
    descriptor_url
        .join(raw)
        .map_err(|_| LoadError::Fetch(FetchError::InvalidUrl(raw.to_owned())))
}

/// Every field of the resource's schema in order, typed or not: the columns of a CSV without a header row.
pub(crate) fn schema_order(resource: &Value) -> Vec<String> {
    resource["schema"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| f["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A resource's `path` (the first, if a list).
pub(crate) fn resource_path(resource: &Value) -> Option<&str> {
    match resource.get("path") {
        Some(Value::String(p)) => Some(p.as_str()),
        Some(Value::Array(paths)) => paths.first().and_then(Value::as_str),
        _ => None,
    }
}

/// The resource to load, its FDP model and its star schema: the CPU-bound part of a load.
pub(crate) fn plan_load(
    vocabulary: &Vocabulary,
    descriptor: &Value,
    fact_table: &str,
) -> Result<(usize, FdpModel, StarPlan), LoadError> {
    let invalid = |problems: Vec<Problem>| {
        LoadError::Invalid(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    // Older forms become the current one first, so everything after this is the one path there is.
    let current = translate(vocabulary, descriptor).map_err(invalid)?.descriptor;
    let load_plan = plan(vocabulary, &current).map_err(invalid)?;
    let inputs: Vec<_> = load_plan.fields.iter().map(|f| f.input.clone()).collect();
    let mut fdp = fields_to_model(vocabulary, &inputs).map_err(|e| LoadError::Invalid(e.to_string()))?;
    if let Some(stated) = current.get("model").filter(|m| m.is_object()) {
        fdp.model = stated_model(stated, &load_plan, &fdp).map_err(invalid)?;
    }
    let headers: HashMap<String, String> = load_plan
        .fields
        .iter()
        .map(|f| (f.input.name.clone(), f.original.clone()))
        .collect();
    let star = star_plan(&fdp, fact_table, &headers);
    Ok((load_plan.resource, fdp, star))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
