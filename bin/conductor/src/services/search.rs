//! The search index chosen from `search.backend`, kept in step with the registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use conductor_core::Clock;
use conductor_search::SearchIndex;
use conductor_search::embedded::EmbeddedIndex;
use conductor_search::opensearch::OpenSearchIndex;
use conductor_search::{Registry, Search};
use conductor_store::Repositories;

use crate::services::{Site, StartupError};
use crate::settings::{SearchBackend, SearchSettings};

/// The search service, and whether the index has been brought in step with the database since start.
#[derive(Debug)]
pub struct SearchState {
    pub search: Search,
    /// Registry writes that keep the index in step (the loader's and the /package endpoints').
    pub registry: Registry,
    synced: AtomicBool,
}

/// How often queued index writes are retried.
const OUTBOX_INTERVAL: Duration = Duration::from_secs(5);

impl SearchState {
    pub fn build(
        settings: &SearchSettings,
        site: Site<'_>,
        repositories: &Repositories,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, StartupError> {
        let index: Arc<dyn SearchIndex> = match settings.backend {
            SearchBackend::Embedded => {
                Arc::new(EmbeddedIndex::open(&site.data_dir.join("search")).map_err(StartupError::Index)?)
            }
            SearchBackend::OpenSearch => {
                let config = &settings.opensearch;
                let url = config
                    .url
                    .as_ref()
                    .ok_or_else(|| StartupError::Invalid("search.opensearch.url is required".into()))?;
                Arc::new(
                    OpenSearchIndex::new(url, &config.index)
                        .map_err(StartupError::Index)?
                        .with_document_type(config.document_type.clone()),
                )
            }
        };
        let search = Search::new(
            index.clone(),
            repositories.packages.clone(),
            repositories.search_outbox.clone(),
            settings.max_size,
        );
        let registry = Registry::new(
            repositories.packages.clone(),
            index,
            repositories.search_outbox.clone(),
            clock,
        );
        Ok(Arc::new(Self {
            search,
            registry,
            synced: AtomicBool::new(false),
        }))
    }

    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Rebuilds the index from the registry once the database answers (retrying with backoff until it does),
    /// so a missing, stale or freshly created index catches up without anyone's action.
    pub async fn sync_when_reachable(self: Arc<Self>) {
        let mut delay = Duration::from_millis(250);
        loop {
            match self.search.rebuild_from_registry().await {
                Ok(count) => {
                    tracing::info!(
                        packages = count,
                        backend = self.search.index().backend(),
                        "search index rebuilt"
                    );
                    self.synced.store(true, Ordering::Release);
                    return;
                }
                Err(error) => {
                    tracing::debug!(%error, retry_in = ?delay, "search index not rebuilt yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

impl SearchState {
    /// Retries queued index writes now and then, for as long as the process runs.
    pub async fn drain_outbox_periodically(self: Arc<Self>) {
        let mut every = tokio::time::interval(OUTBOX_INTERVAL);
        loop {
            every.tick().await;
            match self.registry.drain_outbox().await {
                Ok(0) => {}
                Ok(applied) => tracing::info!(applied, "queued index writes applied"),
                Err(error) => tracing::debug!(%error, "could not read the index outbox; will retry"),
            }
        }
    }
}
