//! The request bodies the OpenSearch adapter sends: the index mapping, the document of a package, the search.

use conductor_core::PackageRecord;
use serde_json::{Value, json};

use crate::query::TEXT_FIELDS;
use crate::{Filter, SearchQuery, is_public, owner_of, registry_document};

/// The mark our indexes carry in their mapping's `_meta`.
pub(super) const CREATED_BY: &str = "conductor";

/// The mapping of a packages index: visibility fields as keywords/booleans, strings as text with a keyword
/// sub-field (exact and word matches), dates never guessed from strings.
pub fn mapping() -> Value {
    json!({
        "settings": {"number_of_shards": 1},
        "mappings": {
            // How check_ownership tells our indexes from an existing deployment's.
            "_meta": {"created_by": CREATED_BY},
            "date_detection": false,
            "dynamic_templates": [{
                "strings": {
                    "match_mapping_type": "string",
                    "mapping": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}}}
                }
            }],
            "properties": {
                "id": {"type": "keyword"},
                "origin_url": {"type": "keyword"},
                "dataset": {"type": "keyword"},
                "loading_status": {"type": "keyword"},
                // Kept in _source for os-api, never indexed, as the original's mapping had them.
                "model": {"type": "object", "enabled": false},
                "package": {"properties": {
                    "model": {"type": "object", "enabled": false},
                    "resources": {"properties": {"schema": {"type": "object", "enabled": false}}}
                }},
                "loaded": {"type": "boolean"},
                "last_update": {"type": "double"},
                "_owner": {"type": "keyword"},
                "_public": {"type": "boolean"}
            }
        }
    })
}

/// The index-creation body: the mapping as it is, or under `document_type` for a cluster with types.
pub fn mapping_for(document_type: Option<&str>) -> Value {
    let mut body = mapping();
    if let Some(document_type) = document_type {
        body["mappings"] = json!({document_type: body["mappings"].take()});
    }
    body
}

/// The query parameter a typed mapping needs on a cluster answering `GET /` with `root`: none on
/// Elasticsearch 5 and 6, `include_type_name=true` on Elasticsearch 7 and OpenSearch 1; later versions have no
/// types at all.
pub fn typed_mapping_param(
    root: &Value,
) -> std::result::Result<Option<(&'static str, &'static str)>, String> {
    let version = root["version"]["number"].as_str().unwrap_or_default();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let opensearch = root["version"]["distribution"] == "opensearch";
    match (opensearch, major) {
        (false, 5 | 6) => Ok(None),
        (false, 7) | (true, 1) => Ok(Some(("include_type_name", "true"))),
        _ => Err(format!(
            "search.opensearch.document_type needs a cluster with document types (Elasticsearch 5 to 7, OpenSearch \
             1); this one is {} {version}",
            if opensearch { "OpenSearch" } else { "Elasticsearch" }
        )),
    }
}

/// The document indexed for a package: the whole registry record (os-api reads it through os-package-registry)
/// plus the owner and visibility the searches filter on.
pub fn document(record: &PackageRecord) -> Value {
    let mut document = registry_document(record);
    document["_owner"] = json!(owner_of(record));
    document["_public"] = json!(is_public(record));
    document
}

/// The `_search` body for a query. The hits' `_source` is taken as it was stored: it holds the search answer.
pub fn search_body(query: &SearchQuery) -> Value {
    let public = json!({"term": {"_public": true}});
    let visible = match &query.viewer {
        Some(viewer) => {
            json!({"bool": {"should": [public, {"term": {"_owner": viewer.as_str()}}], "minimum_should_match": 1}})
        }
        None => public,
    };
    let mut must = vec![visible];
    for filter in &query.filters {
        let alternatives: Vec<Value> = filter
            .values
            .iter()
            .map(|value| filter_clause(filter, value))
            .collect();
        must.push(json!({"bool": {"should": alternatives, "minimum_should_match": 1}}));
    }
    if let Some(text) = &query.text {
        let fields: Vec<String> = TEXT_FIELDS
            .iter()
            .map(|(field, boost)| {
                if *boost == 1.0 {
                    (*field).to_owned()
                } else {
                    format!("{field}^{boost}")
                }
            })
            .collect();
        must.push(json!({"multi_match": {"query": text, "fields": fields}}));
    }
    let sort = if query.text.is_some() {
        json!(["_score"])
    } else {
        json!([{"last_update": {"order": "desc"}}])
    };
    json!({"query": {"bool": {"must": must}}, "size": query.size, "sort": sort})
}

/// Fields the mapping declares as keywords themselves (other strings have a `.keyword` sub-field).
const KEYWORD_FIELDS: &[&str] = &["id", "origin_url"];

fn filter_clause(filter: &Filter, value: &Value) -> Value {
    let field = filter.field.as_str();
    match value {
        Value::String(text) if KEYWORD_FIELDS.contains(&field) => json!({"term": {field: text}}),
        Value::String(text) if filter.is_exact() => json!({"term": {format!("{field}.keyword"): text}}),
        Value::String(text) => json!({"match": {field: text}}),
        Value::Bool(_) | Value::Number(_) => json!({"term": {field: value}}),
        _ => json!({"match_none": {}}),
    }
}
