//! The worker loop that claims jobs from the database, and the sweep that fails jobs whose worker stopped beating.

use std::sync::Arc;
use std::time::Duration;

use conductor_core::LoadJob;
use conductor_core::repo::RepoError;

use super::{Loader, Quiet};

impl Loader {
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
}
