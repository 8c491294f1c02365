//! Search over the registry: the index finds the ids, the database (the source of truth) supplies the records.

use std::collections::HashMap;
use std::sync::Arc;

use conductor_core::repo::PackageRepository;
use conductor_core::{PackageId, PackageRecord, UserId};

use crate::{Result, SearchError, SearchIndex, SearchQuery, is_visible};

/// Search over the registry: the index finds, the database (the source of truth) supplies the records.
#[derive(Clone)]
pub struct Search {
    index: Arc<dyn SearchIndex>,
    packages: Arc<dyn PackageRepository>,
    max_size: usize,
}

impl std::fmt::Debug for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search")
            .field("backend", &self.index.backend())
            .field("max_size", &self.max_size)
            .finish()
    }
}

impl Search {
    pub fn new(index: Arc<dyn SearchIndex>, packages: Arc<dyn PackageRepository>, max_size: usize) -> Self {
        Self {
            index,
            packages,
            max_size,
        }
    }

    pub fn index(&self) -> &dyn SearchIndex {
        self.index.as_ref()
    }

    /// Runs `/search/<kind>` with its parameters for `viewer` (None: anonymous).
    pub async fn search<'a>(
        &self,
        kind: &str,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
        viewer: Option<UserId>,
    ) -> Result<Vec<PackageRecord>> {
        let query = SearchQuery::parse(kind, params, viewer, self.max_size)?;
        let ids = match self.index.search(&query).await {
            // A missing index (a fresh cluster, a deleted alias) is rebuilt from the registry, then asked again.
            Err(SearchError::Missing(_)) => {
                self.rebuild_from_registry().await?;
                self.index.search(&query).await?
            }
            other => other?,
        };
        // One batched read (a few hundred ids a round trip), then back into the index's order.
        let mut found: HashMap<PackageId, PackageRecord> = self
            .packages
            .get_many(&ids)
            .await
            .map_err(|e| SearchError::Unavailable(e.to_string()))?
            .into_iter()
            .map(|record| (record.id.clone(), record))
            .collect();
        // The database has the last word: a record gone or hidden since it was indexed is not shown.
        Ok(ids
            .iter()
            .filter_map(|id| found.remove(id))
            .filter(|record| is_visible(record, query.viewer.as_ref()))
            .collect())
    }

    /// Rebuilds the index from every record in the database.
    pub async fn rebuild_from_registry(&self) -> Result<usize> {
        let records = self
            .packages
            .list()
            .await
            .map_err(|e| SearchError::Unavailable(e.to_string()))?;
        self.index.rebuild(&records).await?;
        Ok(records.len())
    }
}
