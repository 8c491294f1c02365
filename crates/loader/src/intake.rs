//! Around a job: an upload becoming one (or a failed one the clients can read), and a first load's listing in
//! the registry while it runs.
//!
//! os-packager ignores `/package/upload`'s answer and polls `/package/status`, and os-admin lists a user's packages
//! from search and shows the status of those not yet loaded: a refusal with no job, or a first load with no
//! record until its swap, is invisible to both.

use conductor_core::repo::{JobProgress, RepoError};
use conductor_core::{Clock, DatasetName, LoadJob, LoadStatus, NewLoadJob, PackageId, PackageRecord, UserId};
use serde_json::{Value, json};
use url::Url;

use crate::job::{LoadError, Loaded, Loader, Observer, hide_email, record_finished_job};

/// Why an upload did not become a queued job.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The URL is not one this user may load (not recorded: it may be anybody's URL).
    #[error("{0}")]
    NotAllowed(String),
    /// The descriptor could not be read or named; recorded as a failed job for the URL.
    #[error("{0}")]
    Unreadable(String),
    #[error("the job could not be recorded: {0}")]
    Store(#[from] RepoError),
    /// A load of the package is queued or running already (an in-process load would race it for its tables).
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Load(#[from] LoadError),
}

impl Loader {
    /// Checks that `owner` may load `url`, reads its descriptor and queues the load. Once the URL is known to be
    /// the owner's to load, a refusal is recorded as a failed job, so `/package/status` for it answers `fail`
    /// with the reason; a URL the owner may not load records nothing (its status may be someone else's).
    pub async fn submit(&self, url: &Url, owner: &UserId) -> Result<LoadJob, SubmitError> {
        self.policy(owner)
            .check(url)
            .map_err(|e| SubmitError::NotAllowed(e.to_string()))?;
        match self.read_descriptor(url, owner).await {
            Ok((_, package_id)) => {
                let job = NewLoadJob {
                    package_id,
                    datapackage_url: url.to_string(),
                    owner: owner.clone(),
                };
                Ok(self.jobs.enqueue(&job, self.clock.now()).await?)
            }
            Err(error) => {
                let reason = error.to_string();
                self.record_refusal(url, owner, &reason).await?;
                Err(SubmitError::Unreadable(reason))
            }
        }
    }

    /// Loads `url` for `owner` in this process (the operator's `conductor package load`): the descriptor read
    /// under the same rules, the job recorded as already claimed (no serving replica's worker takes a job only
    /// this process may read), then run here, reporting to `observer`.
    pub async fn load_here(
        &self,
        url: &Url,
        owner: &UserId,
        observer: &dyn Observer,
    ) -> Result<Loaded, SubmitError> {
        let (_, package_id) = self.read_descriptor(url, owner).await?;
        // One package's loads run one at a time: this one would race a queued or running job for its tables.
        if let Some(running) = self.jobs.unfinished_for_package(&package_id).await? {
            return Err(SubmitError::Busy(format!(
                "a load of {package_id} is {} (job {}); try again when it has finished",
                running.status, running.id
            )));
        }
        let job = NewLoadJob {
            package_id,
            datapackage_url: url.to_string(),
            owner: owner.clone(),
        };
        let job = self.jobs.enqueue_claimed(&job, self.clock.now()).await?;
        Ok(self.run(&job, observer).await?)
    }

    /// A job that failed before it was queued, so `/package/status` for the URL says why.
    async fn record_refusal(&self, url: &Url, owner: &UserId, reason: &str) -> Result<(), RepoError> {
        let job = NewLoadJob {
            package_id: PackageId::new(owner.clone(), dataset_of_url(url)),
            datapackage_url: url.to_string(),
            owner: owner.clone(),
        };
        let failed = JobProgress {
            status: LoadStatus::Fail,
            rows_loaded: 0,
            rows_total: None,
            error: Some(reason.to_owned()),
        };
        record_finished_job(self.jobs.as_ref(), &job, &failed, self.clock.now()).await
    }

    /// Lists a package that is not loaded yet (`loaded: false`, private) as its load starts, so its owner sees
    /// it in os-admin; a reload of a loaded package keeps serving the old record until the swap.
    pub(crate) async fn list_first_load(&self, id: &PackageId, url: &Url, descriptor: &Value) {
        let listed = match self.packages.get(id).await {
            Ok(Some(record)) if record.loaded => return,
            Ok(_) => self
                .registry
                .put(&pending_record(id, url, descriptor.clone(), &*self.clock))
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = listed {
            tracing::warn!(package = %id, %error, "could not list the first load in the registry");
        }
    }

    /// Keeps a failed first load listed, as failed (the reason is the job's, in `/package/status`).
    pub(crate) async fn mark_first_load_failed(&self, id: &PackageId) {
        let marked = match self.packages.get(id).await {
            Ok(Some(mut record)) if !record.loaded => {
                record.loading_status = Some(LoadStatus::Fail);
                record.last_update = self.clock.now();
                self.registry.put(&record).await.map_err(|e| e.to_string())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = marked {
            tracing::warn!(package = %id, %error, "could not mark the failed first load in the registry");
        }
    }
}

/// The dataset a refused upload's job is filed under: its folder's name, as the datastore lays packages out
/// (`<owner>/<dataset>/datapackage.json`), or `datapackage`.
fn dataset_of_url(url: &Url) -> DatasetName {
    let folder = url
        .path_segments()
        .and_then(|segments| segments.rev().nth(1).map(str::to_owned))
        .unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(&folder)
        .decode_utf8_lossy()
        .into_owned();
    DatasetName::slug(&decoded)
        .or_else(|_| DatasetName::slug("datapackage"))
        .unwrap_or_else(|_| unreachable!("`datapackage` is a valid dataset name"))
}

/// The record a first load lists while it runs (and keeps when it fails): the descriptor as the done record
/// will show it, private, without a model, `loaded: false`, as the original pipeline's first registry write.
fn pending_record(
    id: &PackageId,
    origin_url: &Url,
    mut descriptor: Value,
    clock: &dyn Clock,
) -> PackageRecord {
    if let Some(package) = descriptor.as_object_mut() {
        package.insert("owner".into(), json!(id.owner().as_str()));
        package.insert("private".into(), json!(true));
        if let Some(author) = package.get("author").and_then(Value::as_str) {
            let hidden = hide_email(author);
            package.insert("author".into(), json!(hidden));
        }
    }
    PackageRecord {
        id: id.clone(),
        model: json!({}),
        package: descriptor,
        origin_url: origin_url.to_string(),
        dataset: None,
        author: None,
        loading_status: Some(LoadStatus::ValidatingDatapackage),
        loaded: false,
        last_update: clock.now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_upload_is_filed_under_its_folder() {
        let url = |s: &str| Url::parse(s).unwrap();
        let of = |s: &str| dataset_of_url(&url(s)).to_string();
        assert_eq!(
            of("http://h/datastore/files/abc/My%20Budget/datapackage.json"),
            "my_budget"
        );
        assert_eq!(of("http://h/datapackage.json"), "datapackage");
    }
}
