//! `/search/package` on both database backends, with the embedded index rebuilt from the registry at start.

use std::time::Duration;

use conductor::settings::SearchBackend;
use conductor_core::{Clock, PackageId, PackageRecord, SystemClock, Timestamp, UserId};
use conductor_search::testing::Osmem;
use conductor_store::testing::TestDatabase;
use conductor_store::{Database, DatabaseUrl};
use conductor_tests::{Backend, TestApp, spawn_on_url};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn record(owner: &str, dataset: &str, package: Value, loaded: bool, updated: i64) -> PackageRecord {
    let owner = UserId::from_email(owner);
    let mut package = package;
    package["owner"] = json!(owner);
    package["name"] = json!(dataset);
    PackageRecord {
        id: PackageId::parse(&format!("{owner}:{dataset}")).unwrap(),
        model: json!({"fact_table": "t", "measures": {}, "dimensions": {}}),
        package,
        origin_url: format!("http://127.0.0.1/datastore/files/{owner}/{dataset}/datapackage.json"),
        dataset: None,
        author: None,
        loading_status: None,
        loaded,
        last_update: Timestamp::from_millis(updated),
    }
}

fn registry() -> Vec<PackageRecord> {
    vec![
        record(
            "ada@example.test",
            "public-loaded",
            json!({"title": "Moldova budget", "private": false, "countryCode": "MD", "count_of_rows": 7}),
            true,
            1_556_712_345_123,
        ),
        record(
            "ada@example.test",
            "public-unloaded",
            json!({"title": "Unloaded", "private": false}),
            false,
            2_000,
        ),
        record(
            "ada@example.test",
            "private-loaded",
            json!({"title": "Private", "private": true}),
            true,
            3_000,
        ),
        record(
            "ada@example.test",
            "private-unloaded",
            json!({"title": "Draft", "private": true}),
            false,
            4_000,
        ),
        record(
            "bob@example.test",
            "bob-public",
            json!({"title": "City budget", "description": "budget of the city", "countryCode": ["GB", "UK"]}),
            true,
            5_000,
        ),
    ]
}

/// A gateway over a database holding the registry before it starts (the index is rebuilt from it).
async fn gateway(backend: Backend) -> (TestApp, TestDatabase) {
    gateway_with(backend, None).await
}

/// The same on an OpenSearch-compatible server instead of the embedded index.
async fn gateway_with(backend: Backend, opensearch: Option<&Osmem>) -> (TestApp, TestDatabase) {
    let database = match backend {
        Backend::Sqlite => TestDatabase::sqlite(),
        Backend::Postgres => TestDatabase::postgres(),
    }
    .expect("a test database");
    let store = Database::open(&DatabaseUrl::parse(database.url()).unwrap(), 2).unwrap();
    store.migrate().await.unwrap();
    for record in registry() {
        store.repositories().packages.put(&record).await.unwrap();
    }
    let url = opensearch.map(|server| server.url().clone());
    let app = spawn_on_url(database.url(), |s| {
        if let Some(url) = url {
            s.search.backend = SearchBackend::OpenSearch;
            s.search.opensearch.url = Some(url);
        }
    })
    .await;
    assert!(
        app.wait_for_readiness(StatusCode::OK, Duration::from_secs(30))
            .await,
        "{backend:?} never ready"
    );
    (app, database)
}

async fn names(app: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = app.get_json(&format!("/search/package{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    let mut names: Vec<String> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["package"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_follows_the_token_on_every_backend() {
    let osmem = Osmem::start();
    for (backend, opensearch) in [
        (Backend::Sqlite, None),
        (Backend::Postgres, None),
        (Backend::Sqlite, Some(&osmem)),
    ] {
        let (app, _database) = gateway_with(backend, opensearch).await;
        let backend = (backend, opensearch.is_some());
        let ada = app.log_in("ada@example.test").await;
        let bob = app.log_in("bob@example.test").await;
        let public = ["bob-public", "public-loaded"];
        assert_eq!(names(&app, "").await, public, "{backend:?} anonymous");
        assert_eq!(
            names(&app, &format!("?jwt={bob}")).await,
            public,
            "{backend:?} another user"
        );
        assert_eq!(
            names(&app, &format!("?jwt={ada}")).await,
            [
                "bob-public",
                "private-loaded",
                "private-unloaded",
                "public-loaded",
                "public-unloaded"
            ],
            "{backend:?} the owner"
        );
        let day = Duration::from_secs(86_400);
        let expired = app
            .forger(day, day)
            .issue_user(
                &UserId::from_email("ada@example.test"),
                SystemClock.now().minus(day * 30),
            )
            .unwrap();
        assert_eq!(
            names(&app, &format!("?jwt={expired}")).await,
            public,
            "an expired token is anonymous"
        );
        assert_eq!(names(&app, "?jwt=garbage").await, public);
        let response = app
            .client
            .get(app.url("/search/package"))
            .bearer_auth(&ada)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.json::<Value>().await.unwrap().as_array().unwrap().len(),
            5,
            "header tokens too"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_q_size_and_the_result_shape() {
    let (app, _database) = gateway(Backend::Sqlite).await;
    let ada = UserId::from_email("ada@example.test");
    let (_, body) = app.get_json("/search/package?q=%22moldova%22").await;
    let hit = &body[0];
    assert_eq!(hit["id"], format!("{ada}:public-loaded"));
    assert_eq!(hit["model"]["fact_table"], "t");
    assert_eq!(
        hit["origin_url"],
        format!("http://127.0.0.1/datastore/files/{ada}/public-loaded/datapackage.json")
    );
    assert_eq!(hit["loaded"], true);
    assert_eq!(hit["last_update"], json!(1_556_712_345.123));
    assert_eq!(hit.as_object().unwrap().len(), 6);

    assert_eq!(
        names(&app, &format!("?package.owner=%22{ada}%22")).await,
        ["public-loaded"]
    );
    assert_eq!(names(&app, "?package.countryCode=%22UK%22").await, ["bob-public"]);
    assert_eq!(
        names(&app, "?package.countryCode=%22UK%22&package.countryCode=%22MD%22").await,
        ["bob-public", "public-loaded"]
    );
    assert_eq!(names(&app, "?package.count_of_rows=7").await, ["public-loaded"]);
    assert_eq!(
        names(&app, "?loaded=true&package.title=%22budget%22").await,
        ["bob-public", "public-loaded"]
    );
    // Free text reaches descriptions as well as titles (ranking is covered by the index's contract suite).
    assert_eq!(names(&app, "?q=%22city%22").await, ["bob-public"]);
    // Parameters that are not filters do not break a query.
    assert_eq!(
        names(&app, "?jwt=x&_=1234567890&q=%22budget%22").await,
        ["bob-public", "public-loaded"]
    );
    let jsonp = app
        .get("/search/package?callback=cb&q=%22budget%22")
        .await
        .text()
        .await
        .unwrap();
    assert!(jsonp.starts_with("/**/cb(["), "{jsonp}");
    // size is honoured and capped.
    assert_eq!(
        app.get_json("/search/package?size=1")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get_json("/search/package?size=999999999")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );

    for (query, code) in [
        ("/search/nothing", "unknown-kind"),
        ("/search/package?q=budget", "invalid-parameter"),
        ("/search/package?package.title=%7B", "invalid-parameter"),
        ("/search/package?size=%22ten%22", "invalid-parameter"),
    ] {
        let (status, body) = app.get_json(query).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{query}"
        );
    }
}

/// The gateway on OpenSearch through a proxy the test controls: an outage turns searches into 503s while
/// writes queue; when the index is back it catches up by itself; a fresh, empty cluster is rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_catches_up_after_an_outage_without_manual_action() {
    use std::sync::Arc;

    use conductor_search::opensearch::OpenSearchIndex;
    use conductor_search::testing::Proxy;
    use conductor_search::{Registry, SearchIndex};

    let osmem = Osmem::start();
    let proxy = Proxy::start(osmem.url()).await;
    let database = TestDatabase::sqlite().unwrap();
    let store = Database::open(&DatabaseUrl::parse(database.url()).unwrap(), 2).unwrap();
    store.migrate().await.unwrap();
    let records = registry();
    for record in &records {
        store.repositories().packages.put(record).await.unwrap();
    }
    let proxied = proxy.url().clone();
    let app = spawn_on_url(database.url(), |s| {
        s.search.backend = SearchBackend::OpenSearch;
        s.search.opensearch.url = Some(proxied);
    })
    .await;
    assert!(
        app.wait_for_readiness(StatusCode::OK, Duration::from_secs(30))
            .await
    );
    assert_eq!(names(&app, "").await, ["bob-public", "public-loaded"]);

    // Another replica writes through the same (cut) route: the database takes the changes, the index writes
    // wait in the shared outbox.
    let repos = store.repositories();
    let index: Arc<dyn SearchIndex> = Arc::new(OpenSearchIndex::new(proxy.url(), "packages").unwrap());
    let writer = Registry::new(
        repos.packages.clone(),
        index,
        repos.search_outbox.clone(),
        Arc::new(SystemClock),
    );
    proxy.cut();
    let (status, body) = app.get_json("/search/package").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
    );
    let mut published = records[2].clone();
    published.package["private"] = json!(false);
    writer.put(&published).await.unwrap();
    assert!(writer.delete(&records[4].id).await.unwrap());

    // Back: the gateway's own outbox task applies the queue; nobody runs anything. Until it has, the index
    // still holds the deleted package; the search answers for queued packages from the database, so it is never
    // shown (the first searches here run before the outbox's first retry, every 5 s).
    proxy.restore();
    let deleted = records[4].package["name"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = app.get_json("/search/package").await;
        if status == StatusCode::OK {
            let shown: Vec<&str> = body
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|answer| answer["package"]["name"].as_str())
                .collect();
            assert!(
                !shown.contains(&deleted.as_str()),
                "a deleted package was shown: {shown:?}"
            );
        }
        if status == StatusCode::OK && names(&app, "").await == ["private-loaded", "public-loaded"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the index never caught up");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A freshly started, empty cluster behind the same address: the next search rebuilds it.
    let fresh = Osmem::start();
    proxy.retarget(fresh.url());
    drop(osmem);
    assert_eq!(names(&app, "").await, ["private-loaded", "public-loaded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_cap_holds_with_more_packages_than_it() {
    // Twelve public packages, a cap of five: the cap, not the catalogue, bounds every answer.
    let database = TestDatabase::sqlite().expect("a test database");
    let store = Database::open(&DatabaseUrl::parse(database.url()).unwrap(), 2).unwrap();
    store.migrate().await.unwrap();
    for n in 0..12 {
        let record = record(
            "many@example.test",
            &format!("budget-{n:02}"),
            json!({"title": format!("Budget {n}"), "private": false}),
            true,
            1_000 + n,
        );
        store.repositories().packages.put(&record).await.unwrap();
    }
    let app = spawn_on_url(database.url(), |s| s.search.max_size = 5).await;
    assert!(
        app.wait_for_readiness(StatusCode::OK, Duration::from_secs(30))
            .await
    );
    let count = |answer: Value| answer.as_array().unwrap().len();
    assert_eq!(
        count(app.get_json("/search/package?size=999999999").await.1),
        5,
        "capped"
    );
    assert_eq!(
        count(app.get_json("/search/package").await.1),
        5,
        "the default is capped too"
    );
    assert_eq!(
        count(app.get_json("/search/package?size=3").await.1),
        3,
        "honoured under the cap"
    );
    assert_eq!(count(app.get_json("/search/package?size=0").await.1), 0);
    let (_, two) = app.get_json("/search/package?size=2").await;
    let names: Vec<&str> = two
        .as_array()
        .unwrap()
        .iter()
        .map(|answer| answer["package"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["budget-11", "budget-10"], "the newest first");
}
