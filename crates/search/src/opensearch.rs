//! The OpenSearch adapter (the scale tier): the index lives behind an alias, so a rebuild fills a fresh index
//! and moves the alias in one step; writes wait for the refresh (`refresh=wait_for`) so a publish or delete is
//! visible to the next search; strings are mapped as text with a keyword sub-field, so exact filters use
//! `<field>.keyword` and word filters the analysed field, as the original's mapping and `match` queries did.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use conductor_core::{PackageId, PackageRecord, Timestamp};
use opensearch::OpenSearch;
use opensearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use opensearch::http::request::JsonBody;
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use opensearch::http::{Method, StatusCode};
use serde_json::{Value, json};
use url::Url;

use self::body::CREATED_BY;
pub use self::body::{document, mapping, mapping_for, search_body, typed_mapping_param};
use crate::{Hits, REBUILD_PAGE, ReadyHits, RecordPages, Result, SearchError, SearchIndex, SearchQuery};

#[path = "opensearch_body.rs"]
mod body;

/// Every write waits until it is searchable, so visibility changes take effect at once.
pub const DELETE_PARAMS: &[(&str, &str)] = &[("refresh", "wait_for")];
/// Ids read per request when listing the index, and how far a listing reaches (a cluster's default
/// `index.max_result_window`).
const ID_PAGE: usize = 1_000;
const LISTABLE: usize = 10_000;

/// Indexing also goes only through the alias: a missing alias is an error, never a stray index named like it.
pub const INDEX_PARAMS: &[(&str, &str)] = &[("refresh", "wait_for"), ("require_alias", "true")];

/// Each document's version is its record's `last_update` (a deletion's, the moment it was deleted), kept by the
/// cluster: a write stamped earlier than what the index holds is refused, so a replica that read the registry
/// before a change (a rebuild's catch-up, a slow drain) cannot put the older state back. Equal is accepted: the
/// same state written again.
const VERSION_TYPE: (&str, &str) = ("version_type", "external_gte");

fn version_of(at: Timestamp) -> String {
    at.as_millis().max(0).to_string()
}

/// The index behind `alias` on the OpenSearch at `url`.
#[derive(Clone)]
pub struct OpenSearchIndex {
    client: OpenSearch,
    alias: String,
    /// Documents under this type (`package`, as the original wrote them) instead of `_doc`: for clusters that
    /// still have types, where an unchanged os-api reads through os-package-registry's typed endpoints.
    document_type: Option<String>,
    rebuilding: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for OpenSearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSearchIndex")
            .field("alias", &self.alias)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: impl std::fmt::Display) -> SearchError {
    SearchError::Unavailable(error.to_string())
}

impl OpenSearchIndex {
    /// A client for the OpenSearch at `url`, with the packages index behind `alias`. Nothing is sent yet: the
    /// first [`SearchIndex::rebuild`] creates the index and the alias (the gateway rebuilds at start).
    pub fn new(url: &Url, alias: &str) -> Result<Self> {
        let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url.clone()))
            .disable_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(unavailable)?;
        Ok(Self {
            client: OpenSearch::new(transport),
            alias: alias.to_owned(),
            document_type: None,
            rebuilding: std::sync::Arc::default(),
        })
    }

    /// Writes documents under `document_type` (`search.opensearch.document_type`) instead of `_doc`.
    pub fn with_document_type(mut self, document_type: Option<String>) -> Self {
        self.document_type = document_type;
        self
    }

    fn document_path(&self, index: &str, id: &str) -> String {
        let kind = self.document_type.as_deref().unwrap_or("_doc");
        format!("/{index}/{kind}/{}", encode(id))
    }

    /// `require_alias` exists only on clusters without types (OpenSearch, Elasticsearch 7.10 and later).
    fn index_params(&self) -> &'static [(&'static str, &'static str)] {
        if self.document_type.is_some() {
            DELETE_PARAMS
        } else {
            INDEX_PARAMS
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<opensearch::http::response::Response> {
        let send = || {
            self.client.send(
                method,
                path,
                HeaderMap::new(),
                Some(query),
                body.clone().map(JsonBody::new),
                None,
            )
        };
        // A pooled connection the server (or a load balancer) closed fails the first request sent on it; these
        // requests are idempotent, so one more try on a fresh connection tells a dead socket from a dead server.
        match send().await {
            Ok(response) => Ok(response),
            Err(first) => {
                tracing::debug!(error = %first, "OpenSearch request failed; trying once more");
                send().await.map_err(unavailable)
            }
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let response = self.send(method, path, query, body).await?;
        let status = response.status_code();
        let answer = response.json::<Value>().await.unwrap_or(Value::Null);
        checked(status, answer)
    }

    /// Creates a new index with the mapping; returns its name.
    /// Writes `records` into `index` with one bulk request, each stamped with its `last_update` as its version.
    async fn bulk_index(&self, index: &str, records: &[PackageRecord]) -> Result<()> {
        let mut body = String::new();
        for record in records {
            let mut action = json!({"_index": index, "_id": record.id.to_string(),
                "version": record.last_update.as_millis().max(0), "version_type": VERSION_TYPE.1});
            if let Some(document_type) = &self.document_type {
                action["_type"] = json!(document_type);
            }
            body.push_str(&json!({"index": action}).to_string());
            body.push('\n');
            body.push_str(&document(record).to_string());
            body.push('\n');
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        let response = self
            .client
            .send(
                Method::Post,
                "/_bulk",
                headers,
                Some(&[("refresh", "wait_for")]),
                Some(body),
                None,
            )
            .await
            .map_err(unavailable)?;
        let answer = response.json::<Value>().await.map_err(unavailable)?;
        if answer["errors"] == json!(true) {
            return Err(SearchError::Index(format!("bulk indexing: {answer}")));
        }
        Ok(())
    }

    async fn create_index(&self) -> Result<String> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("{}-{stamp}", self.alias);
        let params: Vec<(&str, &str)> = match &self.document_type {
            None => Vec::new(),
            Some(_) => {
                let (_, root) = self.call(Method::Get, "/", &[], None).await?;
                typed_mapping_param(&root)
                    .map_err(SearchError::Index)?
                    .into_iter()
                    .collect()
            }
        };
        let body = mapping_for(self.document_type.as_deref());
        let (status, answer) = self
            .call(Method::Put, &format!("/{name}"), &params, Some(body))
            .await?;
        if !status.is_success() {
            return Err(SearchError::Index(format!("creating {name}: {answer}")));
        }
        Ok(name)
    }

    /// The indexes the alias points at.
    async fn aliased(&self) -> Result<Vec<String>> {
        let (status, answer) = self
            .call(Method::Get, &format!("/_alias/{}", self.alias), &[], None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        Ok(answer
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// The indexes behind the configured name that this service did not create: those without our mark and
    /// without our `<alias>-<nanoseconds>` name (earlier releases wrote no mark), or an index named like the
    /// alias itself (the original's layout before it used aliases).
    async fn foreign_indexes(&self) -> Result<Vec<String>> {
        let aliased = self.aliased().await?;
        if aliased.is_empty() {
            return match self
                .call(Method::Get, &format!("/{}", self.alias), &[], None)
                .await
            {
                Ok((status, _)) if status.is_success() => Ok(vec![self.alias.clone()]),
                Ok(_) | Err(SearchError::Missing(_)) => Ok(Vec::new()),
                Err(other) => Err(other),
            };
        }
        let mut foreign = Vec::new();
        for index in aliased {
            let ours_by_name = index
                .strip_prefix(&format!("{}-", self.alias))
                .is_some_and(|stamp| stamp.len() >= 16 && stamp.bytes().all(|b| b.is_ascii_digit()));
            let (_, answer) = self
                .call(Method::Get, &format!("/{index}/_mapping"), &[], None)
                .await?;
            // Typeless, or under the one type of a typed mapping.
            let mappings = &answer[&index]["mappings"];
            let ours_by_mark = mappings["_meta"]["created_by"] == CREATED_BY
                || mappings
                    .as_object()
                    .is_some_and(|types| types.values().any(|t| t["_meta"]["created_by"] == CREATED_BY));
            if !ours_by_name && !ours_by_mark {
                foreign.push(index);
            }
        }
        Ok(foreign)
    }

    /// Moves the alias to `index` in one step, away from `old`.
    async fn point_alias(&self, index: &str, old: &[String]) -> Result<()> {
        let mut actions: Vec<Value> = old
            .iter()
            .map(|o| json!({"remove": {"index": o, "alias": self.alias}}))
            .collect();
        actions.push(json!({"add": {"index": index, "alias": self.alias}}));
        let (status, answer) = self
            .call(Method::Post, "/_aliases", &[], Some(json!({"actions": actions})))
            .await?;
        if !status.is_success() {
            return Err(SearchError::Index(format!("moving the alias: {answer}")));
        }
        Ok(())
    }

    /// Replicas that rebuild at once (all of them, when a cluster comes back empty) each add the alias to their
    /// own index, and an alias over several indexes takes no writes. Each keeps the newest and drops the others,
    /// so they agree without talking; a replica whose index was dropped catches up through the alias.
    async fn settle_alias(&self) -> Result<()> {
        for _ in 0..3 {
            let mut behind = self.aliased().await?;
            if behind.len() <= 1 {
                return Ok(());
            }
            // `<alias>-<nanoseconds>`: the longer name, then the greater, is the newer.
            behind.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            let Some(newest) = behind.pop() else { return Ok(()) };
            // Another replica settling at the same moment may have removed some already: look again.
            if self.point_alias(&newest, &behind).await.is_ok() {
                self.drop_indexes(&behind).await?;
            }
        }
        Err(SearchError::Index(format!(
            "{} still points at several indexes",
            self.alias
        )))
    }

    /// Deletes indexes no alias points at; one already gone (another replica dropped it) is fine.
    async fn drop_indexes(&self, indexes: &[String]) -> Result<()> {
        for index in indexes {
            match self.call(Method::Delete, &format!("/{index}"), &[], None).await {
                Ok(_) | Err(SearchError::Missing(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    async fn put_document(&self, index: &str, record: &PackageRecord, params: &[(&str, &str)]) -> Result<()> {
        let path = self.document_path(index, &record.id.to_string());
        let version = version_of(record.last_update);
        let mut params = params.to_vec();
        params.extend([("version", version.as_str()), VERSION_TYPE]);
        let (status, answer) = self
            .call(Method::Put, &path, &params, Some(document(record)))
            .await?;
        // The index holds a later state of the package (or its deletion): this write is the stale one.
        if status == StatusCode::CONFLICT {
            return Ok(());
        }
        if !status.is_success() {
            return Err(SearchError::Index(format!("indexing {}: {answer}", record.id)));
        }
        Ok(())
    }
}

/// Server errors are an unavailable index, a missing index is [`SearchError::Missing`]; other answers go back to
/// the caller with their status.
fn checked(status: StatusCode, answer: Value) -> Result<(StatusCode, Value)> {
    if status.is_server_error() {
        return Err(unavailable(format!("{status}: {answer}")));
    }
    if status == StatusCode::NOT_FOUND && answer["error"]["type"] == "index_not_found_exception" {
        return Err(SearchError::Missing(
            answer["error"]["reason"]
                .as_str()
                .unwrap_or("no index")
                .to_owned(),
        ));
    }
    Ok((status, answer))
}

fn encode(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

#[async_trait]
impl SearchIndex for OpenSearchIndex {
    fn backend(&self) -> &'static str {
        "opensearch"
    }

    async fn upsert(&self, record: &PackageRecord) -> Result<()> {
        self.put_document(&self.alias, record, self.index_params()).await
    }

    async fn delete(&self, id: &PackageId, at: Timestamp) -> Result<()> {
        // In the indexes behind the alias, never through it: a versioned delete of a missing index creates the
        // index to keep the deletion's version in, and an index named like the alias blocks the alias for good
        // (the soak's fresh cluster got one). A missing alias is an index to rebuild, like a write to it.
        let behind = self.aliased().await?;
        if behind.is_empty() {
            return Err(SearchError::Missing(format!("no index behind {}", self.alias)));
        }
        let version = version_of(at);
        let mut params = DELETE_PARAMS.to_vec();
        params.extend([("version", version.as_str()), VERSION_TYPE]);
        for index in behind {
            let path = self.document_path(&index, &id.to_string());
            let (status, answer) = self.call(Method::Delete, &path, &params, None).await?;
            if !(status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::CONFLICT) {
                return Err(SearchError::Index(format!("deleting {id}: {answer}")));
            }
        }
        Ok(())
    }

    async fn search(&self, query: &SearchQuery) -> Result<Box<dyn Hits>> {
        if query.size == 0 {
            return Ok(Box::new(ReadyHits::default()));
        }
        let response = self
            .send(
                Method::Post,
                &format!("/{}/_search", self.alias),
                &[],
                Some(search_body(query)),
            )
            .await?;
        let status = response.status_code();
        if !status.is_success() {
            let answer = response.json::<Value>().await.unwrap_or(Value::Null);
            let (_, answer) = checked(status, answer)?;
            return Err(SearchError::Index(format!("searching: {answer}")));
        }
        let body = response.bytes().await.map_err(unavailable)?;
        Ok(Box::new(ReadyHits(crate::answer::opensearch_hits(&body)?)))
    }

    async fn check_ownership(&self) -> Result<()> {
        let foreign = self.foreign_indexes().await?;
        if foreign.is_empty() {
            return Ok(());
        }
        Err(SearchError::Foreign(format!(
            "search.opensearch.index {:?} holds {}, which Conductor did not create; it is left as it is. Import \
             that registry first (conductor registry import --from-cluster URL --index {}), then name another \
             alias in search.opensearch.index (or remove the old index once imported)",
            self.alias,
            foreign.join(", "),
            self.alias
        )))
    }

    /// Fills a fresh index a page at a time, moves the alias to it in one step, and drops the old ones; never
    /// over an index this service did not create. A rebuild that fails drops its fresh index; the alias never
    /// moved.
    async fn rebuild(&self, pages: &mut dyn RecordPages) -> Result<()> {
        // One rebuild at a time in this process: two at once (the start-up sync, and a write that found the
        // alias missing) would each point the alias at their own index, and every package would be found twice.
        let _one_at_a_time = self.rebuilding.lock().await;
        self.check_ownership().await?;
        let index = self.create_index().await?;
        let filled = async {
            loop {
                let page = pages.next_page().await?;
                if page.is_empty() {
                    break;
                }
                for chunk in page.chunks(REBUILD_PAGE) {
                    self.bulk_index(&index, chunk).await?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(error) = filled {
            if let Err(dropped) = self.drop_indexes(std::slice::from_ref(&index)).await {
                tracing::warn!(error = %dropped, %index, "could not drop the index of a failed rebuild");
            }
            return Err(error);
        }
        // Read just before the move, so an index another replica pointed the alias at meanwhile leaves it too.
        let old = self.aliased().await?;
        self.point_alias(&index, &old).await?;
        self.drop_indexes(&old).await?;
        self.settle_alias().await
    }

    async fn ids(&self) -> Result<Vec<PackageId>> {
        // Pages by `from`, as far as a cluster lets one search reach (`index.max_result_window`, 10,000 unless
        // raised); a catalogue past that is listed that far and the rest found by the next rebuild.
        let mut ids = Vec::new();
        while ids.len() < LISTABLE {
            let body = json!({"from": ids.len(), "size": ID_PAGE, "_source": false, "query": {"match_all": {}},
                "sort": [{"last_update": {"order": "asc"}}]});
            let (status, answer) = self
                .call(Method::Post, &format!("/{}/_search", self.alias), &[], Some(body))
                .await?;
            if !status.is_success() {
                return Err(SearchError::Index(format!("listing: {answer}")));
            }
            let page = answer["hits"]["hits"].as_array().cloned().unwrap_or_default();
            for hit in &page {
                let id = hit["_id"].as_str().unwrap_or_default();
                ids.push(PackageId::parse(id).map_err(|e| SearchError::Index(format!("listing: {e}")))?);
            }
            if page.len() < ID_PAGE {
                break;
            }
        }
        Ok(ids)
    }

    async fn count(&self) -> Result<u64> {
        let (status, answer) = self
            .call(Method::Get, &format!("/{}/_count", self.alias), &[], None)
            .await?;
        if !status.is_success() {
            return Err(SearchError::Index(format!("counting: {answer}")));
        }
        answer["count"]
            .as_u64()
            .ok_or_else(|| SearchError::Index(format!("counting: {answer}")))
    }
}

#[cfg(test)]
#[path = "opensearch_tests.rs"]
mod tests;
