//! The registry and its projection: every change is written to the database (the source of truth) and then to
//! the index; an index write that fails is kept in a durable outbox and retried, so the index catches up by
//! itself after an outage.

use std::sync::Arc;

use conductor_core::repo::{PackageRepository, RepoError, SearchOutboxRepository};
use conductor_core::{Clock, PackageId, PackageRecord};

use crate::{SearchError, SearchIndex};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] RepoError),
}

/// Registry writes that keep the search index in step.
#[derive(Clone)]
pub struct Registry {
    packages: Arc<dyn PackageRepository>,
    index: Arc<dyn SearchIndex>,
    outbox: Arc<dyn SearchOutboxRepository>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("index", &self.index.backend())
            .finish_non_exhaustive()
    }
}

/// How many outbox entries one drain pass takes.
const DRAIN_BATCH: i64 = 100;

impl Registry {
    pub fn new(
        packages: Arc<dyn PackageRepository>,
        index: Arc<dyn SearchIndex>,
        outbox: Arc<dyn SearchOutboxRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            packages,
            index,
            outbox,
            clock,
        }
    }

    /// Saves a record, then indexes it (or queues the indexing when the index fails).
    pub async fn put(&self, record: &PackageRecord) -> Result<(), RegistryError> {
        self.packages.put(record).await?;
        if let Err(error) = self.index.upsert(record).await {
            self.defer(&record.id, &error).await?;
        }
        Ok(())
    }

    /// Removes a record, then its index entry (or queues that). Returns whether the record existed.
    pub async fn delete(&self, id: &PackageId) -> Result<bool, RegistryError> {
        let existed = self.packages.delete(id).await?;
        if let Err(error) = self.index.delete(id, self.clock.now()).await {
            self.defer(id, &error).await?;
        }
        Ok(existed)
    }

    async fn defer(&self, id: &PackageId, error: &SearchError) -> Result<(), RegistryError> {
        tracing::warn!(package = %id, %error, "index write failed; queued for retry");
        self.outbox.push(id, self.clock.now()).await?;
        Ok(())
    }

    /// Applies queued index writes, oldest first, each as "make the index match the registry now". Stops at
    /// the first failure (the index is likely still down) and returns how many were applied.
    pub async fn drain_outbox(&self) -> Result<usize, RegistryError> {
        let mut applied = 0;
        let pending = self.outbox.pending(DRAIN_BATCH).await?;
        for entry in &pending {
            let outcome = match self.packages.get(&entry.package_id).await? {
                Some(record) => self.index.upsert(&record).await,
                None => self.index.delete(&entry.package_id, self.clock.now()).await,
            };
            match outcome {
                Ok(()) => {
                    self.outbox.done(entry.id).await?;
                    applied += 1;
                }
                // The index itself is gone: rebuild it whole from the registry, which covers every entry.
                Err(SearchError::Missing(_)) => {
                    if let Ok(count) = crate::catch_up::rebuild(
                        self.packages.as_ref(),
                        self.index.as_ref(),
                        self.clock.as_ref(),
                    )
                    .await
                    {
                        for entry in &pending[applied..] {
                            self.outbox.done(entry.id).await?;
                        }
                        tracing::info!(
                            packages = count,
                            "search index was missing; rebuilt from the registry"
                        );
                        return Ok(pending.len());
                    }
                    break;
                }
                Err(error) => {
                    self.outbox.failed(entry.id, &error.to_string()).await?;
                    break;
                }
            }
        }
        Ok(applied)
    }
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use conductor_core::SystemClock;
    use conductor_core::repo::SearchOutboxRepository;

    use super::*;
    use crate::embedded::EmbeddedIndex;
    use crate::memory::{MemoryOutbox, MemoryPackages};
    use crate::{Result, SearchQuery};

    /// The real embedded index behind a switch that makes it unreachable, as a network outage would.
    struct Switchable {
        index: EmbeddedIndex,
        down: AtomicBool,
    }

    impl Switchable {
        fn check(&self) -> Result<()> {
            if self.down.load(Ordering::SeqCst) {
                Err(SearchError::Unavailable("cut".into()))
            } else {
                Ok(())
            }
        }
    }

    #[async_trait]
    impl SearchIndex for Switchable {
        fn backend(&self) -> &'static str {
            "embedded"
        }
        async fn upsert(&self, record: &PackageRecord) -> Result<()> {
            self.check()?;
            self.index.upsert(record).await
        }
        async fn delete(&self, id: &PackageId, at: conductor_core::Timestamp) -> Result<()> {
            self.check()?;
            self.index.delete(id, at).await
        }
        async fn search(&self, query: &SearchQuery) -> Result<Box<dyn crate::Hits>> {
            self.check()?;
            self.index.search(query).await
        }
        async fn rebuild(&self, pages: &mut dyn crate::RecordPages) -> Result<()> {
            self.check()?;
            self.index.rebuild(pages).await
        }
        async fn ids(&self) -> Result<Vec<PackageId>> {
            self.check()?;
            self.index.ids().await
        }

        async fn count(&self) -> Result<u64> {
            self.check()?;
            self.index.count().await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_index_catches_up_after_an_outage() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(Switchable {
            index: EmbeddedIndex::open(dir.path()).unwrap(),
            down: AtomicBool::new(false),
        });
        let outbox = Arc::new(MemoryOutbox::default());
        let registry = Registry::new(
            Arc::new(MemoryPackages::default()),
            index.clone(),
            outbox.clone(),
            Arc::new(SystemClock),
        );
        let records = crate::contract::fixtures();
        registry.put(&records[0]).await.unwrap();
        registry.put(&records[4]).await.unwrap();
        assert_eq!(index.count().await.unwrap(), 2);

        index.down.store(true, Ordering::SeqCst);
        // Writes go on: the database takes them, the index writes wait in the outbox.
        registry.put(&records[5]).await.unwrap();
        assert!(registry.delete(&records[0].id).await.unwrap());
        let mut changed = records[4].clone();
        changed.package["title"] = serde_json::json!("Renamed finances");
        registry.put(&changed).await.unwrap();
        assert_eq!(outbox.pending(10).await.unwrap().len(), 3);
        assert_eq!(
            registry.drain_outbox().await.unwrap(),
            0,
            "nothing applies while the index is down"
        );

        index.down.store(false, Ordering::SeqCst);
        assert_eq!(registry.drain_outbox().await.unwrap(), 3);
        assert!(outbox.pending(10).await.unwrap().is_empty());
        let query = SearchQuery::parse("package", [("q", "\"renamed\"")], None, 100).unwrap();
        let found = index.search(&query).await.unwrap().read_all().unwrap();
        assert_eq!(found.iter().map(|hit| &hit.id).collect::<Vec<_>>(), [&changed.id]);
        assert_eq!(
            found[0].answer,
            crate::search_answer(&changed),
            "the new answer is stored"
        );
        assert_eq!(
            index.count().await.unwrap(),
            2,
            "the deleted one is gone, the new one is there"
        );
    }
}

#[cfg(all(test, feature = "opensearch"))]
mod outage {
    use conductor_core::SystemClock;
    use conductor_core::repo::SearchOutboxRepository;

    use super::*;
    use crate::Search;
    use crate::memory::{MemoryOutbox, MemoryPackages};
    use crate::opensearch::OpenSearchIndex;
    use crate::testing::{Osmem, Proxy};

    #[expect(
        clippy::unwrap_used,
        reason = "a test helper: a malformed answer fails the test"
    )]
    async fn visible(search: &Search) -> std::result::Result<Vec<String>, SearchError> {
        let hits = search
            .search("package", [("size", "100")], Some(crate::contract::ada()))
            .await?
            .read_all()?;
        let mut names: Vec<String> = hits
            .iter()
            .map(|hit| serde_json::from_str::<serde_json::Value>(&hit.answer).unwrap())
            .map(|answer| PackageId::parse(answer["id"].as_str().unwrap()).unwrap())
            .map(|id| id.dataset().to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn opensearch_catches_up_after_an_outage_and_a_fresh_cluster() {
        let packages = Arc::new(MemoryPackages::default());
        let outbox = Arc::new(MemoryOutbox::default());
        let server = Osmem::start();
        let proxy = Proxy::start(server.url()).await;
        let index: Arc<dyn SearchIndex> = Arc::new(OpenSearchIndex::new(proxy.url(), "packages").unwrap());
        let registry = Registry::new(
            packages.clone(),
            index.clone(),
            outbox.clone(),
            Arc::new(SystemClock),
        );
        let search = Search::new(index.clone(), packages.clone(), outbox.clone(), 100);
        let records = crate::contract::fixtures();
        search.rebuild_from_registry().await.unwrap();
        registry.put(&records[0]).await.unwrap();
        registry.put(&records[2]).await.unwrap();
        assert_eq!(
            visible(&search).await.unwrap(),
            ["private-loaded", "public-loaded"]
        );

        // The index is cut off: writes go on (into the database and the outbox), searches fail (the gateway
        // answers 503), nothing is lost.
        proxy.cut();
        registry.put(&records[3]).await.unwrap();
        assert!(registry.delete(&records[0].id).await.unwrap());
        assert!(matches!(visible(&search).await, Err(SearchError::Unavailable(_))));
        assert_eq!(outbox.pending(10).await.unwrap().len(), 2);
        assert_eq!(registry.drain_outbox().await.unwrap(), 0);

        // Back: the queued writes apply and the index matches the registry.
        proxy.restore();
        assert_eq!(registry.drain_outbox().await.unwrap(), 2);
        assert_eq!(
            visible(&search).await.unwrap(),
            ["private-loaded", "private-unloaded"]
        );

        // A freshly started, empty cluster: the next search finds no index and rebuilds it from the registry.
        let fresh = Osmem::start();
        proxy.retarget(fresh.url());
        drop(server);
        assert_eq!(
            visible(&search).await.unwrap(),
            ["private-loaded", "private-unloaded"]
        );
        assert_eq!(index.count().await.unwrap(), 2);
    }
}
