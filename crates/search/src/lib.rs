//! Package search (DESIGN §8): the query model of the original's `/search/package`, one visibility rule, and a
//! [`SearchIndex`] port that adapters implement. The database is the source of truth; an index is a projection
//! of the registry that can be rebuilt from it at any time.

mod answer;
mod catch_up;
#[cfg(test)]
pub(crate) mod contract;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod hits;
#[cfg(test)]
pub(crate) mod memory;
#[cfg(feature = "opensearch")]
pub mod opensearch;
pub mod query;
pub mod registry;
mod service;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use async_trait::async_trait;
use conductor_core::{PackageId, PackageRecord, Timestamp, UserId};
use serde_json::Value;

pub use answer::{Hit, search_answer};
pub use hits::{Hits, ReadyHits};
pub use query::{Filter, SearchQuery};
pub use registry::{Registry, RegistryError};
pub use service::Search;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("there is no search kind {0:?}; only \"package\" exists")]
    UnknownKind(String),
    #[error("the value of {0:?} is not JSON (search parameters are JSON values, e.g. q=\"budget\")")]
    InvalidJson(String),
    #[error("size must be a non-negative integer, got {0:?}")]
    InvalidSize(String),
    #[error("the search index is unavailable: {0}")]
    Unavailable(String),
    /// The index (or its alias) does not exist: rebuild it from the registry.
    #[error("the search index is missing: {0}")]
    Missing(String),
    #[error("the search index failed: {0}")]
    Index(String),
    /// The configured index or alias holds an index Conductor did not create: it is never rebuilt or moved.
    #[error("{0}")]
    Foreign(String),
}

pub type Result<T> = std::result::Result<T, SearchError>;

/// A search index of the registry.
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// `embedded` or `opensearch`, for readiness and logs.
    fn backend(&self) -> &'static str;
    /// Adds or replaces a package.
    async fn upsert(&self, record: &PackageRecord) -> Result<()>;
    /// Removes a package, deleted `at` that moment: an index that keeps versions (OpenSearch) then refuses a write
    /// of it stamped earlier, the stale write a slower replica may still make.
    async fn delete(&self, id: &PackageId, at: Timestamp) -> Result<()>;
    /// The matching visible packages, best first (newest first without free text), each with the search
    /// answer stored when it was indexed, read when asked for.
    async fn search(&self, query: &SearchQuery) -> Result<Box<dyn Hits>>;
    /// Replaces the whole index with the records `pages` yields, read a page at a time so no rebuild holds the
    /// whole catalogue. When a page cannot be read, or the writing fails, the index stays as it was.
    async fn rebuild(&self, pages: &mut dyn RecordPages) -> Result<()>;
    /// How many packages the index holds.
    async fn count(&self) -> Result<u64>;
    /// The id of every package the index holds, for a rebuild to find what was deleted while it ran.
    async fn ids(&self) -> Result<Vec<PackageId>>;
    /// Fails with [`SearchError::Foreign`] when the configured index is not one this service made (an existing
    /// deployment's, say), so nothing rebuilds or re-points it.
    async fn check_ownership(&self) -> Result<()> {
        Ok(())
    }
}

/// Where a rebuild reads its records from, a page at a time.
#[async_trait]
pub trait RecordPages: Send {
    /// The next records, empty once every record was read.
    async fn next_page(&mut self) -> Result<Vec<PackageRecord>>;
}

/// Records already in memory, handed out in pages of `size`: a rebuild from a list (an import, a test).
#[derive(Debug)]
pub struct RecordList {
    records: std::vec::IntoIter<PackageRecord>,
    size: usize,
}

impl RecordList {
    /// Records in pages of the size a registry read uses.
    pub fn new(records: Vec<PackageRecord>) -> Self {
        Self::in_pages_of(records, REBUILD_PAGE)
    }

    pub fn in_pages_of(records: Vec<PackageRecord>, size: usize) -> Self {
        Self {
            records: records.into_iter(),
            size: size.max(1),
        }
    }
}

#[async_trait]
impl RecordPages for RecordList {
    async fn next_page(&mut self) -> Result<Vec<PackageRecord>> {
        Ok(self.records.by_ref().take(self.size).collect())
    }
}

/// Records a rebuild reads from the registry at a time (and an OpenSearch bulk request carries).
pub const REBUILD_PAGE: usize = 500;

/// Whether a package is visible to everyone: not private, and not marked unloaded (reference §4).
pub fn is_public(record: &PackageRecord) -> bool {
    let private = record
        .package
        .get("private")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    !private && record.loaded
}

/// The package's owner as the search sees it: `package.owner`, or the id's owner part.
pub fn owner_of(record: &PackageRecord) -> String {
    record
        .package
        .get("owner")
        .and_then(Value::as_str)
        .map_or_else(|| record.id.owner().to_string(), str::to_owned)
}

/// Whether `viewer` may see the package: everyone sees public ones, owners see their own in any state.
pub fn is_visible(record: &PackageRecord, viewer: Option<&UserId>) -> bool {
    is_public(record) || viewer.is_some_and(|viewer| owner_of(record) == viewer.as_str())
}

/// The whole registry record as the original wrote it to its cluster (reference §1.1): what os-api reads through
/// os-package-registry (`model`, `package`, `loading_status`, ...), with `last_update` in float seconds.
pub fn registry_document(record: &PackageRecord) -> Value {
    let mut document = serde_json::json!({
        "id": record.id.to_string(),
        "model": record.model,
        "package": record.package,
        "origin_url": record.origin_url,
        "dataset": record.dataset,
        "author": record.author,
        "loading_status": record.loading_status.map(|s| s.as_str()),
        "loaded": record.loaded,
        "last_update": record.last_update.as_secs_f64(),
    });
    // A package not loaded yet has no model, and the original's document then had no `model` key at all
    // (os-package-registry's get_model raises KeyError for it, as os-api expects).
    if record.model.as_object().is_some_and(serde_json::Map::is_empty)
        && let Some(fields) = document.as_object_mut()
    {
        fields.remove("model");
    }
    document
}

/// The document an index holds for a package: the registry fields a filter may name, without the Babbage model
/// and resource schemas (which are never searched).
pub fn indexed_document(record: &PackageRecord) -> Value {
    let mut package = record.package.clone();
    if let Some(object) = package.as_object_mut() {
        object.remove("model");
        if let Some(Value::Array(resources)) = object.get_mut("resources") {
            for resource in resources.iter_mut().filter_map(Value::as_object_mut) {
                resource.remove("schema");
            }
        }
    }
    serde_json::json!({
        "id": record.id.to_string(),
        "package": package,
        "origin_url": record.origin_url,
        "loaded": record.loaded,
        "last_update": record.last_update.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use conductor_core::Timestamp;
    use serde_json::json;

    use super::*;

    fn record(private: Option<bool>, loaded: bool) -> PackageRecord {
        let owner = UserId::from_email("ada@example.test");
        let mut package = json!({"name": "budget", "owner": owner, "model": {"measures": {}},
                                 "resources": [{"path": "a.csv", "schema": {"fields": []}}]});
        if let Some(private) = private {
            package["private"] = json!(private);
        }
        PackageRecord {
            id: PackageId::parse(&format!("{owner}:budget")).unwrap(),
            model: json!({"fact_table": "t"}),
            package,
            origin_url: "http://x/datapackage.json".into(),
            dataset: None,
            author: None,
            loading_status: None,
            loaded,
            last_update: Timestamp::from_millis(1_500),
        }
    }

    #[test]
    fn visibility_follows_the_original_rule() {
        let owner = UserId::from_email("ada@example.test");
        let other = UserId::from_email("bob@example.test");
        for (private, loaded, public) in [
            (None, true, true),
            (Some(false), true, true),
            (Some(true), true, false),
            (Some(false), false, false),
        ] {
            let record = record(private, loaded);
            assert_eq!(is_visible(&record, None), public, "{private:?} {loaded}");
            assert_eq!(is_visible(&record, Some(&other)), public);
            assert!(is_visible(&record, Some(&owner)), "owners always see their own");
        }
    }

    #[test]
    fn the_indexed_document_leaves_out_models_and_schemas() {
        let document = indexed_document(&record(None, true));
        assert!(document["package"].get("model").is_none());
        assert!(document["package"]["resources"][0].get("schema").is_none());
        assert_eq!(document["package"]["resources"][0]["path"], "a.csv");
        assert_eq!(document["last_update"], json!(1.5));
    }
}
