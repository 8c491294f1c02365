//! The OpenSearch adapter against its contract and the request shapes OpenSearch documents.

use conductor_core::UserId;

use super::*;
use crate::testing::Osmem;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opensearch_adapter_keeps_the_contract() {
    let server = Osmem::start();
    let index = OpenSearchIndex::new(server.url(), "packages").unwrap();
    crate::contract::suite(&index).await;
    // The rebuild moved the alias to a fresh index and dropped the old one.
    assert_eq!(index.aliased().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_write_stamped_before_what_the_index_holds_is_refused() {
    let server = Osmem::start();
    let index = OpenSearchIndex::new(server.url(), "packages").unwrap();
    let mut record = crate::contract::fixtures().remove(0);
    index
        .rebuild(&mut crate::RecordList::new(vec![record.clone()]))
        .await
        .unwrap();
    let renamed = SearchQuery::parse("package", [("q", "\"renamed\"")], None, 10).unwrap();

    // A replica that read the registry before a rename writes the old state back: refused, the new one stays.
    let stale = record.clone();
    record.package["title"] = serde_json::json!("Renamed accounts");
    record.last_update = Timestamp::from_millis(record.last_update.as_millis() + 10);
    index.upsert(&record).await.unwrap();
    index.upsert(&stale).await.unwrap();
    let found = index.search(&renamed).await.unwrap().read_all().unwrap();
    assert_eq!(found.len(), 1, "the newer state stays");

    // Deleted, then written again from a read made before the deletion: it stays deleted.
    let deleted_at = Timestamp::from_millis(record.last_update.as_millis() + 10);
    index.delete(&record.id, deleted_at).await.unwrap();
    index.upsert(&record).await.unwrap();
    assert_eq!(index.count().await.unwrap(), 0, "the deletion stays");

    // A later state (a reload) is written.
    record.last_update = Timestamp::from_millis(deleted_at.as_millis() + 10);
    index.upsert(&record).await.unwrap();
    assert_eq!(index.count().await.unwrap(), 1);
}

#[tokio::test]
async fn a_delete_on_a_fresh_cluster_creates_no_index() {
    let server = Osmem::start();
    let index = OpenSearchIndex::new(server.url(), "packages").unwrap();
    let id = crate::contract::fixtures().remove(0).id;
    let deleted = index.delete(&id, Timestamp::from_millis(1_000)).await;
    assert!(matches!(deleted, Err(SearchError::Missing(_))), "{deleted:?}");
    // Nothing named like the alias appeared, so a rebuild can still put the alias there.
    assert!(index.foreign_indexes().await.unwrap().is_empty());
    index
        .rebuild(&mut crate::RecordList::new(crate::contract::fixtures()))
        .await
        .unwrap();
    assert_eq!(index.count().await.unwrap(), 6);
}

#[test]
fn requests_have_the_shape_opensearch_documents() {
    let mapping = mapping();
    assert_eq!(mapping["mappings"]["date_detection"], false);
    assert_eq!(mapping["mappings"]["properties"]["_owner"]["type"], "keyword");
    let strings = &mapping["mappings"]["dynamic_templates"][0]["strings"];
    assert_eq!(strings["mapping"]["fields"]["keyword"]["type"], "keyword");
    assert_eq!(INDEX_PARAMS, [("refresh", "wait_for"), ("require_alias", "true")]);
    assert_eq!(DELETE_PARAMS, [("refresh", "wait_for")]);

    let viewer = UserId::from_email("ada@example.test");
    let query = SearchQuery::parse(
        "package",
        [
            ("q", "\"budget\""),
            ("package.countryCode", "\"MD\""),
            ("package.title", "\"city\""),
            ("loaded", "true"),
        ],
        Some(viewer.clone()),
        10_000,
    )
    .unwrap();
    let body = search_body(&query);
    let must = body["query"]["bool"]["must"].as_array().unwrap();
    assert_eq!(
        must[0]["bool"]["should"][1],
        json!({"term": {"_owner": viewer.as_str()}})
    );
    assert_eq!(
        must[1]["bool"]["should"][0],
        json!({"term": {"package.countryCode.keyword": "MD"}})
    );
    assert_eq!(
        must[2]["bool"]["should"][0],
        json!({"match": {"package.title": "city"}})
    );
    assert_eq!(must[3]["bool"]["should"][0], json!({"term": {"loaded": true}}));
    assert_eq!(must[4]["multi_match"]["fields"][0], "package.title^3");
    assert_eq!(body["sort"], json!(["_score"]));
    assert_eq!(body["size"], 100);
}

#[test]
fn typed_documents_are_written_the_way_each_cluster_version_takes_them() {
    let typed = mapping_for(Some("package"));
    assert_eq!(typed["mappings"]["package"]["_meta"]["created_by"], "conductor");
    assert_eq!(
        typed["mappings"]["package"]["properties"]["model"]["enabled"],
        false
    );
    assert_eq!(mapping_for(None), mapping());
    let root = |number: &str, distribution: Option<&str>| json!({"version": {"number": number, "distribution": distribution}});
    assert_eq!(typed_mapping_param(&root("5.6.16", None)), Ok(None));
    assert_eq!(typed_mapping_param(&root("6.8.23", None)), Ok(None));
    let include = Some(("include_type_name", "true"));
    assert_eq!(typed_mapping_param(&root("7.17.9", None)), Ok(include));
    assert_eq!(
        typed_mapping_param(&root("1.3.19", Some("opensearch"))),
        Ok(include)
    );
    assert!(typed_mapping_param(&root("2.19.0", Some("opensearch"))).is_err());
    assert!(typed_mapping_param(&root("8.15.0", None)).is_err());
    let index = OpenSearchIndex::new(&Url::parse("http://127.0.0.1:9200").unwrap(), "packages")
        .unwrap()
        .with_document_type(Some("package".into()));
    assert_eq!(index.document_path("packages", "a:b"), "/packages/package/a%3Ab");
    assert_eq!(
        index.index_params(),
        DELETE_PARAMS,
        "no require_alias where types exist"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_rebuilt_at_once_settle_on_one_index_behind_the_alias() {
    // The soak's search outage: the cluster came back empty, every replica rebuilt at the same moment, each found
    // no index behind the alias and added it to its own; the alias refused every write from then on.
    let server = Osmem::start();
    let replicas: Vec<OpenSearchIndex> = (0..2)
        .map(|_| OpenSearchIndex::new(server.url(), "packages").unwrap())
        .collect();
    replicas[0]
        .rebuild(&mut crate::RecordList::new(crate::contract::fixtures()))
        .await
        .unwrap();
    let second = replicas[1].create_index().await.unwrap();
    replicas[1].point_alias(&second, &[]).await.unwrap();
    let mut record = crate::contract::fixtures().remove(0);
    record.last_update = Timestamp::from_millis(record.last_update.as_millis() + 10);
    assert!(
        replicas[1].upsert(&record).await.is_err(),
        "an alias over two indexes takes no write"
    );

    let (a, b) = tokio::join!(replicas[0].settle_alias(), replicas[1].settle_alias());
    a.unwrap();
    b.unwrap();
    assert_eq!(replicas[0].aliased().await.unwrap(), [second], "the newest stays");
    replicas[0].upsert(&record).await.unwrap();
    assert_eq!(replicas[1].count().await.unwrap(), 1);
}
