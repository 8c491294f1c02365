//! The search answer of a package: the JSON object the clients read from `/search/package`, made once when the
//! package is indexed and kept in the index (tantivy's document store, OpenSearch's `_source`), so a search
//! copies stored bytes instead of reading, parsing and serialising records again.

use conductor_core::{PackageId, PackageRecord};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One result of a search: the package and its answer, compact JSON as it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub id: PackageId,
    pub answer: String,
}

/// `{"id", "model", "package", "origin_url", "loaded", "last_update"}`: what the original's search answered for
/// a package, `last_update` in float seconds.
pub fn search_answer(record: &PackageRecord) -> String {
    compose(&Parts {
        id: &json(&record.id.to_string()),
        model: &json(&record.model),
        package: &json(&record.package),
        origin_url: &json(&record.origin_url),
        loaded: &json(&record.loaded),
        last_update: &json(&record.last_update.as_secs_f64()),
    })
}

/// The answer's fields, each already JSON.
struct Parts<'a> {
    id: &'a str,
    model: &'a str,
    package: &'a str,
    origin_url: &'a str,
    loaded: &'a str,
    last_update: &'a str,
}

/// The fields in one fixed order, whichever backend stored them.
fn compose(parts: &Parts<'_>) -> String {
    let Parts {
        id,
        model,
        package,
        origin_url,
        loaded,
        last_update,
    } = parts;
    let mut answer = String::with_capacity(
        id.len() + model.len() + package.len() + origin_url.len() + loaded.len() + last_update.len() + 80,
    );
    for (key, value) in [
        ("{\"id\":", id),
        (",\"model\":", model),
        (",\"package\":", package),
        (",\"origin_url\":", origin_url),
        (",\"loaded\":", loaded),
        (",\"last_update\":", last_update),
    ] {
        answer.push_str(key);
        answer.push_str(value);
    }
    answer.push('}');
    answer
}

/// The answer fields of a whole registry document as an index returns it (OpenSearch's `_source`), borrowed
/// from the response: the document's other fields are skipped, nothing is parsed into values.
#[derive(Deserialize)]
pub(crate) struct StoredDocument<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    /// The registry document leaves `model` out until the package is loaded (os-package-registry expects
    /// that); the answer then says `{}`, as it always did.
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    package: &'a RawValue,
    #[serde(borrow)]
    origin_url: &'a RawValue,
    #[serde(borrow)]
    loaded: &'a RawValue,
    #[serde(borrow)]
    last_update: &'a RawValue,
}

impl StoredDocument<'_> {
    pub(crate) fn answer(&self) -> String {
        compose(&Parts {
            id: self.id.get(),
            model: self.model.map_or("{}", RawValue::get),
            package: self.package.get(),
            origin_url: self.origin_url.get(),
            loaded: self.loaded.get(),
            last_update: self.last_update.get(),
        })
    }
}

/// A field of the answer as JSON. These values (strings, numbers, booleans, JSON values) always serialise.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// The hits of a `_search` answer, each with its answer made from the stored `_source` without parsing it into
/// values.
#[cfg(feature = "opensearch")]
pub(crate) fn opensearch_hits(body: &[u8]) -> crate::Result<Vec<crate::Hit>> {
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        hits: Hits<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Hits<'a> {
        #[serde(borrow)]
        hits: Vec<RawHit<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct RawHit<'a> {
        #[serde(rename = "_id")]
        id: std::borrow::Cow<'a, str>,
        #[serde(rename = "_source", borrow)]
        source: StoredDocument<'a>,
    }
    let answer: Answer<'_> = serde_json::from_slice(body)
        .map_err(|e| crate::SearchError::Index(format!("an unreadable search answer: {e}")))?;
    answer
        .hits
        .hits
        .into_iter()
        .map(|hit| {
            Ok(crate::Hit {
                id: conductor_core::PackageId::parse(&hit.id)
                    .map_err(|e| crate::SearchError::Index(format!("a search answer's id: {e}")))?,
                answer: hit.source.answer(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use conductor_core::{Timestamp, UserId};
    use serde_json::{Value, json};

    use super::*;

    fn record(model: Value) -> PackageRecord {
        let owner = UserId::from_email("ada@example.test");
        PackageRecord {
            id: PackageId::parse(&format!("{owner}:budget")).unwrap(),
            model,
            package: json!({"name": "budget", "title": "Ünïcode \"quoted\"", "private": false}),
            origin_url: "http://x/datapackage.json".into(),
            dataset: Some("budget".into()),
            author: None,
            loading_status: None,
            loaded: true,
            last_update: Timestamp::from_millis(1_500),
        }
    }

    #[test]
    fn the_answer_is_the_object_the_clients_read() {
        let record = record(json!({"fact_table": "t"}));
        let answer: Value = serde_json::from_str(&search_answer(&record)).unwrap();
        assert_eq!(
            answer,
            json!({"id": record.id.to_string(), "model": {"fact_table": "t"}, "package": record.package,
                   "origin_url": "http://x/datapackage.json", "loaded": true, "last_update": 1.5})
        );
    }

    #[test]
    fn a_stored_registry_document_answers_the_same_bytes() {
        for model in [json!({"fact_table": "t"}), json!({})] {
            let record = record(model);
            let stored = crate::registry_document(&record).to_string();
            let document: StoredDocument<'_> = serde_json::from_str(&stored).unwrap();
            assert_eq!(document.answer(), search_answer(&record));
        }
    }
}
