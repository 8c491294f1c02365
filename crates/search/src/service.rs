//! Search over the registry: the index finds the packages and holds their answers; the database (the source of
//! truth) has the last word on packages whose index write is still queued.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use conductor_core::repo::{PackageRepository, SearchOutboxRepository};
use conductor_core::{PackageId, PackageRecord, UserId};

use crate::{Hit, Hits, ReadyHits, Result, SearchError, SearchIndex, SearchQuery, is_visible, search_answer};

/// The most queued index writes a search looks at; past that, every result is checked against the database.
const STALE_LIMIT: i64 = 1_000;

/// Search over the registry: the index finds and answers, the database corrects what the index may not know yet.
#[derive(Clone)]
pub struct Search {
    index: Arc<dyn SearchIndex>,
    packages: Arc<dyn PackageRepository>,
    outbox: Arc<dyn SearchOutboxRepository>,
    max_size: usize,
    rebuilds: Arc<crate::catch_up::OneRebuild>,
}

impl std::fmt::Debug for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search")
            .field("backend", &self.index.backend())
            .field("max_size", &self.max_size)
            .finish()
    }
}

fn unavailable(error: impl std::fmt::Display) -> SearchError {
    SearchError::Unavailable(error.to_string())
}

impl Search {
    pub fn new(
        index: Arc<dyn SearchIndex>,
        packages: Arc<dyn PackageRepository>,
        outbox: Arc<dyn SearchOutboxRepository>,
        max_size: usize,
    ) -> Self {
        Self {
            index,
            packages,
            outbox,
            max_size,
            rebuilds: Arc::default(),
        }
    }

    pub fn index(&self) -> &dyn SearchIndex {
        self.index.as_ref()
    }

    /// Runs `/search/<kind>` with its parameters for `viewer` (None: anonymous): the matching packages, in
    /// order, each with its answer (a JSON object as the clients read it), read as the caller asks for them.
    pub async fn search<'a>(
        &self,
        kind: &str,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
        viewer: Option<UserId>,
    ) -> Result<Box<dyn Hits>> {
        let query = SearchQuery::parse(kind, params, viewer, self.max_size)?;
        let hits = match self.index.search(&query).await {
            // A missing index (a fresh cluster, a deleted alias) is rebuilt from the registry, then asked again.
            Err(SearchError::Missing(_)) => {
                self.rebuild_from_registry().await?;
                self.index.search(&query).await?
            }
            other => other?,
        };
        self.confirmed(hits, query.viewer.as_ref()).await
    }

    /// The hits' answers, except where the index may be behind the database: a package with an index write
    /// still queued (the index was down when it changed) is answered from its record, or left out if it is
    /// gone or hidden now. Nobody sees a package they may no longer see while the index catches up.
    async fn confirmed(&self, hits: Box<dyn Hits>, viewer: Option<&UserId>) -> Result<Box<dyn Hits>> {
        let pending = self.outbox.pending(STALE_LIMIT).await.map_err(unavailable)?;
        if pending.is_empty() {
            return Ok(hits);
        }
        // Rare (the index was down lately): the hits are read whole, bounded by `size`'s cap.
        let hits = tokio::task::spawn_blocking(move || hits.read_all())
            .await
            .map_err(unavailable)??;
        let queued: HashSet<&PackageId> = pending.iter().map(|entry| &entry.package_id).collect();
        // More queued than looked at: any hit may be stale.
        let everything = i64::try_from(pending.len()).unwrap_or(i64::MAX) >= STALE_LIMIT;
        let stale: Vec<PackageId> = hits
            .iter()
            .filter(|hit| everything || queued.contains(&hit.id))
            .map(|hit| hit.id.clone())
            .collect();
        // One batched read (a few hundred ids a round trip).
        let mut records: HashMap<PackageId, PackageRecord> = self
            .packages
            .get_many(&stale)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|record| (record.id.clone(), record))
            .collect();
        let stale: HashSet<PackageId> = stale.into_iter().collect();
        let corrected = hits
            .into_iter()
            .filter_map(|hit| {
                if !stale.contains(&hit.id) {
                    return Some(hit);
                }
                records
                    .remove(&hit.id)
                    .filter(|record| is_visible(record, viewer))
                    .map(|record| Hit {
                        answer: search_answer(&record),
                        id: hit.id,
                    })
            })
            .collect();
        Ok(Box::new(ReadyHits(corrected)))
    }

    /// Rebuilds the index from every record in the database; a caller that waited while another rebuild ran
    /// takes that one's result instead of starting its own.
    pub async fn rebuild_from_registry(&self) -> Result<usize> {
        // The catch-up stamps the deletions it makes with the time they are made.
        self.rebuilds
            .run(
                self.packages.as_ref(),
                self.index.as_ref(),
                &conductor_core::SystemClock,
            )
            .await
    }
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    use conductor_core::Timestamp;
    use conductor_core::repo::{PackageRepository, SearchOutboxRepository};
    use serde_json::{Value, json};

    use super::*;
    use crate::embedded::EmbeddedIndex;
    use crate::memory::{MemoryOutbox, MemoryPackages};

    #[expect(clippy::unwrap_used, reason = "a test helper: a failed search fails the test")]
    async fn ids(search: &Search, viewer: Option<UserId>) -> Vec<String> {
        search
            .search("package", [], viewer)
            .await
            .unwrap()
            .read_all()
            .unwrap()
            .iter()
            .map(|hit| {
                let answer: Value = serde_json::from_str(&hit.answer).unwrap();
                assert_eq!(answer["id"], hit.id.to_string(), "the answer is the hit's");
                hit.id.to_string()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_package_whose_index_write_is_queued_is_answered_from_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(EmbeddedIndex::open(dir.path()).unwrap());
        let packages = Arc::new(MemoryPackages::default());
        let outbox = Arc::new(MemoryOutbox::default());
        let search = Search::new(index.clone(), packages.clone(), outbox.clone(), 100);
        let records = crate::contract::fixtures();
        let public = records[0].clone();
        for record in &records {
            packages.put(record).await.unwrap();
        }
        search.rebuild_from_registry().await.unwrap();
        assert!(ids(&search, None).await.contains(&public.id.to_string()));

        // Made private in the database while the index was down: the index still says public.
        let mut hidden = public.clone();
        hidden.package["private"] = json!(true);
        hidden.last_update = Timestamp::from_millis(9_000);
        packages.put(&hidden).await.unwrap();
        outbox
            .push(&hidden.id, Timestamp::from_millis(9_000))
            .await
            .unwrap();
        assert!(
            !ids(&search, None).await.contains(&public.id.to_string()),
            "never shown to those who may no longer see it"
        );
        let owner = ids(&search, Some(crate::contract::ada())).await;
        assert!(owner.contains(&public.id.to_string()), "its owner still sees it");
        let answers = search
            .search("package", [], Some(crate::contract::ada()))
            .await
            .unwrap()
            .read_all()
            .unwrap();
        let answer = answers.iter().find(|hit| hit.id == public.id).unwrap();
        assert_eq!(
            answer.answer,
            search_answer(&hidden),
            "answered from the record, not the stale index"
        );

        // Deleted while the index was down: gone from every answer.
        packages.delete(&hidden.id).await.unwrap();
        assert!(
            !ids(&search, Some(crate::contract::ada()))
                .await
                .contains(&public.id.to_string())
        );
    }
}
