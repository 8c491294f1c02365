//! `/package/*` over HTTP on each backend: fixture packages load into the star schema, the whole os-packager and
//! os-admin flow, refusals, and reloads that fail or race readers.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use conductor::settings::SearchBackend;
use conductor_search::testing::Osmem;
use conductor_tests::packages::{
    dimension_joins, fixture, in_status_order, package_files, permission_token, query_number, start_load,
    streaming_into, tables, upload_files, userid_of, wait_for_load,
};
use conductor_tests::slow_source::slow_source;
use conductor_tests::{Backend, TestApp, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// The row count of each fixture's CSV and the distinct rows of each dimension in table order (the concept types
/// sorted), counted from the CSV with Python's csv module when the fixtures were made.
fn expected(name: &str) -> (i64, Vec<i64>) {
    match name {
        "os-packager-example" => (9, vec![9]),
        "boost-moldova" => (2000, vec![118, 1, 1, 69, 4, 3, 13]),
        "ukgov-finances-cra" => (2000, vec![12, 91, 7, 2, 7, 1, 1]),
        other => panic!("no expectation for {other}"),
    }
}

/// The registry record of `id` as its owner's search returns it.
pub(crate) async fn record(app: &TestApp, user_token: &str, id: &str) -> Option<Value> {
    let (status, body) = app
        .get_json(&format!(
            "/search/package?jwt={user_token}&id={}",
            url::form_urlencoded::byte_serialize(json!(id).to_string().as_bytes()).collect::<String>()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    body.as_array().expect("an array").first().cloned()
}

/// The dimension tables named by a Babbage model, each with its columns.
fn dimension_columns(model: &Value) -> BTreeMap<String, Vec<String>> {
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for dimension in model["dimensions"].as_object().expect("dimensions").values() {
        for attribute in dimension["attributes"].as_object().expect("attributes").values() {
            let (table, column) = attribute["column"]
                .as_str()
                .expect("a column")
                .split_once('.')
                .expect("T.c");
            let columns = tables.entry(table.to_owned()).or_default();
            if !columns.iter().any(|c| c == column) {
                columns.push(column.to_owned());
            }
        }
    }
    tables
}

pub(crate) async fn load(app: &TestApp, token: &str, name: &str) -> (String, Vec<String>, Value) {
    let url = upload_files(app, token, name, &package_files(&fixture(name))).await;
    let (status, body) = start_load(app, token, &url).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "queued", "progress": 0}))
    );
    let (seen, last) = wait_for_load(app, &url, LOAD_TIMEOUT).await;
    (url, seen, last)
}

async fn fixtures_load_into_the_star_schema(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = "loader@example.org";
    let token = permission_token(&app, email).await;
    let user = app.log_in(email).await;
    let owner = userid_of(&token);
    for name in ["os-packager-example", "boost-moldova", "ukgov-finances-cra"] {
        let (rows, dimensions) = expected(name);
        let (_, seen, last) = load(&app, &token, name).await;
        assert_eq!(last["status"], "done", "{name}: {last}");
        assert!(in_status_order(&seen, "done"), "{name}: {seen:?}");
        assert_eq!(last["progress"], rows, "{name}: progress is the rows loaded");
        assert_eq!(last["rows_total"], rows);
        assert_eq!(last["fraction"], 1.0);

        let descriptor: Value =
            serde_json::from_slice(&std::fs::read(fixture(name).join("datapackage.json")).unwrap()).unwrap();
        let id = format!("{owner}:{}", descriptor["name"].as_str().unwrap());
        let record = record(&app, &user, &id)
            .await
            .unwrap_or_else(|| panic!("{id} is in the registry"));
        let fact = record["model"]["fact_table"].as_str().unwrap().to_owned();
        assert_eq!(fact.len(), 48, "owner + 16 hex digits");
        let db = &app.database_url;
        assert_eq!(
            query_number(db, &format!("SELECT count(*) FROM \"{fact}\"")),
            Ok(rows),
            "{name}"
        );

        let columns = dimension_columns(&record["model"]);
        let counts: Vec<i64> = (0..dimensions.len())
            .map(|i| {
                let table = format!("{fact}_{i}");
                let listed = columns[&table]
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                let all = query_number(db, &format!("SELECT count(*) FROM \"{table}\"")).unwrap();
                let distinct = query_number(
                    db,
                    &format!("SELECT count(*) FROM (SELECT DISTINCT {listed} FROM \"{table}\") d"),
                )
                .unwrap();
                assert_eq!(all, distinct, "{table}: one row per distinct combination");
                all
            })
            .collect();
        assert_eq!(counts, dimensions, "{name}: distinct rows per dimension table");
        // Every fact row points at an existing row of every dimension table.
        for (table, _, joined) in dimension_joins(&record["model"]) {
            assert_eq!(query_number(db, &joined), Ok(rows), "{name}: {table}");
        }
        assert_eq!(
            tables(db, &fact).iter().filter(|t| t.ends_with("__new")).count(),
            0,
            "no staging table remains"
        );
        assert_eq!(record["package"]["private"], true, "a first load is private");
        assert_eq!(record["package"]["owner"], owner);
        assert_eq!(record["package"]["count_of_rows"], rows);
        assert_eq!(record["loaded"], true);
        assert!(record["last_update"].is_f64(), "float epoch seconds");
    }
    let (_, stats) = app.get_json("/package/stats").await;
    assert_eq!(
        stats,
        json!({"num_packages": 3, "num_records": 4009, "num_countries": 2})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_load_into_the_star_schema_on_sqlite() {
    fixtures_load_into_the_star_schema(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_load_into_the_star_schema_on_postgres() {
    fixtures_load_into_the_star_schema(Backend::Postgres).await;
}

/// A local listener that records what reaches it: run-hooks' target, and the proof that refused URLs are
/// never fetched.
struct Listener {
    port: u16,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Listener {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                // Read until the body is in (multipart ends with the closing boundary) or the client pauses.
                while let Ok(n) = std::io::Read::read(&mut stream, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                    if request.ends_with(b"--\r\n") {
                        break;
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&request).into_owned());
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\naccepted");
            }
        });
        Self { port, received }
    }

    fn requests(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

/// Every step reads the registry back through `/search/package`, so on each backend and index the stored search
/// answers are what is checked: a first load private, publish and unpublish seen at once, update_params' new
/// record at once, a delete gone.
async fn the_whole_flow(backend: Backend, opensearch: Option<&Osmem>) {
    let hooks = Listener::start();
    let hook_url = format!("http://127.0.0.1:{}/execute/fdp2rdf", hooks.port);
    let allowed = format!("http://127.0.0.1:{}/execute/", hooks.port);
    let opensearch = opensearch.map(|server| server.url().clone());
    let app = spawn_app_with(backend, |s| {
        s.loader.hook_allowlist = vec![allowed];
        if let Some(url) = opensearch {
            s.search.backend = SearchBackend::OpenSearch;
            s.search.opensearch.url = Some(url);
        }
    })
    .await;
    let owner_token = permission_token(&app, "owner@example.org").await;
    let owner_user = app.log_in("owner@example.org").await;
    let other_token = permission_token(&app, "other@example.org").await;
    let owner = userid_of(&owner_token);
    let id = format!("{owner}:example");

    let (url, seen, last) = load(&app, &owner_token, "os-packager-example").await;
    assert_eq!(last["status"], "done", "{last}");
    assert!(in_status_order(&seen, "done"), "{seen:?}");
    let (_, anonymous) = app.get_json(&format!("/search/package?id=%22{id}%22")).await;
    assert_eq!(anonymous, json!([]), "a first load is private");
    assert!(
        record(&app, &owner_user, &id).await.is_some(),
        "its owner finds it"
    );

    // Another user may not manage it.
    let q = |token: &str, extra: &str| format!("?jwt={token}&id={id}{extra}");
    for (path, extra) in [
        ("/package/publish", "&publish=true"),
        ("/package/delete", ""),
        ("/package/update_params", ""),
        ("/package/run-hooks", &format!("&pipeline={hook_url}") as &str),
    ] {
        let response = app
            .client
            .post(app.url(&format!("{path}{}", q(&other_token, extra))))
            .json(&json!({"params": "{}"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["success"], false, "{path}: {body}");
        let response = app
            .client
            .post(app.url(&format!("{path}?id={id}{extra}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{path} without a token"
        );
    }
    assert!(hooks.requests().is_empty(), "a refused run-hooks posts nothing");

    // Publish, toggle, publish.
    let (status, body) = app
        .post_form(
            &format!("/package/publish{}", q(&owner_token, "&publish=true")),
            &[],
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"success": true, "published": true}))
    );
    let (_, anonymous) = app.get_json(&format!("/search/package?id=%22{id}%22")).await;
    assert_eq!(
        anonymous.as_array().unwrap().len(),
        1,
        "published packages are public"
    );
    let (_, body) = app
        .post_form(
            &format!("/package/publish{}", q(&owner_token, "&publish=toggle")),
            &[],
        )
        .await;
    assert_eq!(body, json!({"success": true, "published": false}));
    let (_, anonymous) = app.get_json(&format!("/search/package?id=%22{id}%22")).await;
    assert_eq!(
        anonymous,
        json!([]),
        "unpublished: gone from anonymous answers at once"
    );
    let other_user = app.log_in("other@example.org").await;
    assert!(
        record(&app, &other_user, &id).await.is_none(),
        "and from another user's"
    );
    let own = record(&app, &owner_user, &id)
        .await
        .expect("its owner still sees it");
    assert_eq!(
        own["package"]["private"], true,
        "the stored answer is the new record"
    );
    let (_, body) = app
        .post_form(
            &format!("/package/publish{}", q(&owner_token, "&publish=toggle")),
            &[],
        )
        .await;
    assert_eq!(body, json!({"success": true, "published": true}));

    // update_params, as os-viewer sends it (double slash, JSON body).
    let response = app
        .client
        .post(app.url(&format!("//package/update_params{}", q(&owner_token, ""))))
        .json(&json!({"params": "{\"visualizations\":[\"Treemap\"]}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"success": true}));
    let stored = record(&app, &owner_user, &id).await.unwrap();
    assert_eq!(
        stored["package"]["defaultParams"],
        json!({"params": "{\"visualizations\":[\"Treemap\"]}"})
    );
    // A reload replaces the data and keeps what the owner set: the visibility and the default parameters.
    let (status, body) = start_load(&app, &owner_token, &url).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(wait_for_load(&app, &url, LOAD_TIMEOUT).await.1["status"], "done");
    let reloaded = record(&app, &owner_user, &id).await.unwrap();
    assert_eq!(
        reloaded["package"]["defaultParams"], stored["package"]["defaultParams"],
        "kept on reload"
    );
    assert_eq!(reloaded["package"]["private"], stored["package"]["private"]);
    let response = app
        .client
        .post(app.url(&format!("/package/update_params{}", q(&owner_token, ""))))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["success"], false);

    // run-hooks: only allow-listed, and the payload of DESIGN §7.
    let (status, body) = app
        .post_form(
            &format!(
                "/package/run-hooks{}",
                q(&owner_token, "&pipeline=http://169.254.169.254/x")
            ),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app
        .post_form(
            &format!(
                "/package/run-hooks{}",
                q(&owner_token, &format!("&pipeline={hook_url}"))
            ),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let payload = json!({"@context": {"@vocab": "http://schema.org/", "url": {"@type": "@id"}}, "url": url});
    assert_eq!(
        body,
        json!({"success": true, "response": "accepted", "payload": payload})
    );
    let posted = hooks.requests();
    assert_eq!(posted.len(), 1);
    assert!(posted[0].starts_with("POST /execute/fdp2rdf"), "{}", posted[0]);
    assert!(
        posted[0].contains("name=\"input\"; filename=\"package-url.jsonld\""),
        "{}",
        posted[0]
    );
    assert!(posted[0].contains(&payload.to_string()), "{}", posted[0]);

    // Stats, then delete: tables, record and index entry go.
    let (_, stats) = app.get_json("/package/stats").await;
    assert_eq!(
        stats,
        json!({"num_packages": 1, "num_records": 9, "num_countries": 0})
    );
    let fact = record(&app, &owner_user, &id).await.unwrap()["model"]["fact_table"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(tables(&app.database_url, &fact).len(), 2);
    let (status, body) = app
        .post_form(&format!("/package/delete{}", q(&owner_token, "")), &[])
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    assert!(
        tables(&app.database_url, &fact).is_empty(),
        "its tables are dropped"
    );
    assert!(record(&app, &owner_user, &id).await.is_none());
    let (_, stats) = app.get_json("/package/stats").await;
    assert_eq!(
        stats,
        json!({"num_packages": 0, "num_records": 0, "num_countries": 0})
    );
    let (status, body) = app
        .post_form(&format!("/package/delete{}", q(&owner_token, "")), &[])
        .await;
    assert_eq!(
        (status, body["success"].clone()),
        (StatusCode::NOT_FOUND, json!(false))
    );
    // The status of the load stays readable; an unknown URL is a 404.
    let (status, _) = app
        .get_json("/package/status?datapackage=http%3A%2F%2Fnowhere.test%2Fdatapackage.json")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_on_sqlite() {
    the_whole_flow(Backend::Sqlite, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_on_opensearch() {
    let osmem = Osmem::start();
    the_whole_flow(Backend::Postgres, Some(&osmem)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_on_postgres() {
    the_whole_flow(Backend::Postgres, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_outside_the_callers_prefixes_are_refused_without_a_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = spawn_app(Backend::Sqlite).await;
    let token = permission_token(&app, "owner@example.org").await;
    let other = permission_token(&app, "other@example.org").await;
    let others_url = upload_files(
        &app,
        &other,
        "example",
        &package_files(&fixture("os-packager-example")),
    )
    .await;
    for url in [
        format!("http://127.0.0.1:{port}/datapackage.json"),
        format!("http://localhost:{port}/datapackage.json"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "file:///etc/passwd".to_owned(),
        others_url,
    ] {
        let (status, body) = start_load(&app, &token, &url).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["status"], "fail", "{body}");
        assert!(body["error"].as_str().unwrap().len() > 10, "{body}");
    }
    let (status, body) = start_load(&app, "garbage", "http://127.0.0.1/x").await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::UNAUTHORIZED, json!("fail"))
    );
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the refused URL was connected to: {other:?}"),
    }
}

/// A package of `rows` generated rows: two dimensions and one measure.
pub(crate) fn generated_package(rows: usize, bad_row: Option<usize>) -> Vec<(String, Vec<u8>)> {
    let descriptor = json!({
        "name": "generated",
        "title": "Generated",
        "author": "Jane Doe <jane@example.org>",
        "countryCode": "MD",
        "resources": [{"name": "data", "path": "data.csv", "schema": {"fields": [
            {"name": "Year", "columnType": "date:fiscal-year"},
            {"name": "Ministry", "columnType": "administrative-classification:generic:level1:code"},
            {"name": "Amount", "columnType": "value", "decimalChar": ",", "groupChar": "."},
        ]}}],
    });
    let mut csv = String::from("Year,Ministry,Amount\n");
    for i in 1..=rows {
        let amount = if Some(i) == bad_row {
            "12x".to_owned()
        } else {
            format!("\"{}.{:03},5\"", i / 1000, i % 1000)
        };
        csv.push_str(&format!("{},M{},{amount}\n", 2000 + i % 7, i % 13));
    }
    vec![
        ("data.csv".to_owned(), csv.into_bytes()),
        ("datapackage.json".to_owned(), descriptor.to_string().into_bytes()),
    ]
}

async fn a_failed_reload_keeps_the_old_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = permission_token(&app, "owner@example.org").await;
    let user = app.log_in("owner@example.org").await;
    let id = format!("{}:generated", userid_of(&token));
    let url = upload_files(&app, &token, "generated", &generated_package(50, None)).await;
    start_load(&app, &token, &url).await;
    let (_, last) = wait_for_load(&app, &url, LOAD_TIMEOUT).await;
    assert_eq!(last["status"], "done", "{last}");
    let before = record(&app, &user, &id).await.unwrap();
    assert_eq!(before["package"]["author"], "Jane Doe <jane@not.shown>");
    app.post_form(&format!("/package/publish?jwt={token}&id={id}&publish=true"), &[])
        .await;
    let before = record(&app, &user, &id).await.unwrap();
    let fact = before["model"]["fact_table"].as_str().unwrap().to_owned();
    let sum = |db: &str| {
        query_number(
            db,
            &format!("SELECT count(*) FROM \"{fact}\" WHERE \"amount\" > 0"),
        )
    };
    assert_eq!(sum(&app.database_url), Ok(50));

    // The same package again, with a bad number on data row 3.
    let url = upload_files(&app, &token, "generated", &generated_package(80, Some(3))).await;
    start_load(&app, &token, &url).await;
    let (seen, last) = wait_for_load(&app, &url, LOAD_TIMEOUT).await;
    assert!(in_status_order(&seen, "fail"), "{seen:?}");
    let error = last["error"].as_str().unwrap();
    assert!(
        error.contains("row 3") && error.contains("\"Amount\"") && error.contains("12x"),
        "{error}"
    );
    assert_eq!(sum(&app.database_url), Ok(50), "the previous rows are intact");
    let after = record(&app, &user, &id).await.unwrap();
    assert_eq!(after["model"], before["model"]);
    assert_eq!(after["package"]["private"], false, "still published");
    assert_eq!(
        after["last_update"], before["last_update"],
        "a failed load leaves the record alone"
    );
    assert!(
        tables(&app.database_url, &fact)
            .iter()
            .all(|t| !t.ends_with("__new")),
        "no staging tables"
    );

    // A good reload keeps the visibility and replaces the rows.
    let url = upload_files(&app, &token, "generated", &generated_package(70, None)).await;
    start_load(&app, &token, &url).await;
    let (_, last) = wait_for_load(&app, &url, LOAD_TIMEOUT).await;
    assert_eq!(last["status"], "done", "{last}");
    assert_eq!(sum(&app.database_url), Ok(70));
    let reloaded = record(&app, &user, &id).await.unwrap();
    assert_eq!(
        reloaded["package"]["private"], false,
        "a reload keeps the visibility"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reload_keeps_the_old_data_on_sqlite() {
    a_failed_reload_keeps_the_old_data(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reload_keeps_the_old_data_on_postgres() {
    a_failed_reload_keeps_the_old_data(Backend::Postgres).await;
}

/// os-api-cache's keys for a package: an item key and the context set holding it (reference §5).
fn cache_package(redis: &mut redis::Connection, id: &str) -> String {
    let item = format!("{id}:{{\"p\": \"/api/3/cubes/{id}/aggregate\", \"q\": \"drilldown=year\"}}");
    let context = format!("ctx:{}", json!(id));
    redis::cmd("SET")
        .arg(&item)
        .arg("pickled")
        .arg("EX")
        .arg(600)
        .exec(redis)
        .unwrap();
    redis::cmd("SADD").arg(&context).arg(&item).exec(redis).unwrap();
    item
}

fn exists(redis: &mut redis::Connection, key: &str) -> bool {
    redis::cmd("EXISTS").arg(key).query::<i64>(redis).unwrap() == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_and_updates_clear_the_os_api_cache_in_redis() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.cache.redis_url = Some(conductor::settings::ConnectionUrl::new("redis://127.0.0.1:6379"));
    })
    .await;
    // os-api's cache lives in database 1; a test that cannot reach Redis fails here.
    let mut redis = redis::Client::open("redis://127.0.0.1:6379/1")
        .unwrap()
        .get_connection()
        .expect("Redis on 127.0.0.1:6379 (./scripts/test starts it)");
    let token = permission_token(&app, "cached@example.org").await;
    let id = format!("{}:generated", userid_of(&token));
    let neighbour = format!("{}:neighbour", userid_of(&token));
    let neighbours_item = cache_package(&mut redis, &neighbour);

    let item = cache_package(&mut redis, &id);
    let url = upload_files(&app, &token, "generated", &generated_package(10, None)).await;
    start_load(&app, &token, &url).await;
    assert_eq!(wait_for_load(&app, &url, LOAD_TIMEOUT).await.1["status"], "done");
    assert!(
        !exists(&mut redis, &item),
        "a load clears the package's cached answers"
    );
    assert!(!exists(&mut redis, &format!("ctx:{}", json!(id))));

    let item = cache_package(&mut redis, &id);
    let response = app
        .client
        .post(app.url(&format!("/package/update_params?jwt={token}&id={id}")))
        .json(&json!({"params": "{}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!exists(&mut redis, &item), "update_params clears them too");
    for publish in ["true", "false"] {
        let item = cache_package(&mut redis, &id);
        let (status, body) = app
            .post_form(
                &format!("/package/publish?jwt={token}&id={id}&publish={publish}"),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(!exists(&mut redis, &item), "publish={publish} clears them too");
    }
    assert!(
        exists(&mut redis, &neighbours_item),
        "another package's answers stay"
    );
    let item = cache_package(&mut redis, &id);
    let (status, body) = app
        .post_form(&format!("/package/delete?jwt={token}&id={id}"), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!exists(&mut redis, &item), "a delete clears them too");
    assert!(
        exists(&mut redis, &neighbours_item),
        "and leaves another package's"
    );
    redis::cmd("DEL")
        .arg(&neighbours_item)
        .arg(format!("ctx:{}", json!(neighbour)))
        .exec(&mut redis)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_from_an_s3_datastore_through_signed_reads() {
    use conductor_tests::s3::S3Server;
    let s3 = S3Server::start().await.expect("s3s-fs");
    let app = spawn_app_with(Backend::Postgres, |s| s3.configure(s)).await;
    let token = permission_token(&app, "s3@example.org").await;
    let user = app.log_in("s3@example.org").await;
    // The bucket is private: an unsigned GET of the uploaded file is refused, so the loader must sign its reads.
    let (url, seen, last) = load(&app, &token, "os-packager-example").await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(last["status"], "done", "{seen:?} {last}");
    let id = format!("{}:example", userid_of(&token));
    let fact = record(&app, &user, &id).await.unwrap()["model"]["fact_table"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        query_number(&app.database_url, &format!("SELECT count(*) FROM \"{fact}\"")),
        Ok(9)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_gateway_gives_its_load_back_to_the_queue() {
    let (port, sent) = slow_source(Some(60));
    let allow = format!("http://127.0.0.1:{port}/");
    let datapackage = format!("http://127.0.0.1:{port}/datapackage.json");
    let first = spawn_app_with(Backend::Postgres, |s| {
        s.loader.fetch_allowlist = vec![allow.clone()]
    })
    .await;
    let token = permission_token(&first, "owner@example.org").await;
    let (status, body) = start_load(&first, &token, &datapackage).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sent.load(std::sync::atomic::Ordering::Relaxed) < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow CSV was never read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fact = format!("{}{}", userid_of(&token), &fact_suffix("slow"));
    assert!(streaming_into(&first.database_url, &fact), "it is streaming");
    let id = format!("{}:slow", userid_of(&token));
    let (status, body) = first
        .post_form(&format!("/package/delete?jwt={token}&id={id}"), &[])
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "no delete while a load runs: {body}"
    );
    assert_eq!(body["success"], false);

    // A graceful stop (what SIGTERM does): the job goes back to the queue and its staging tables go.
    first.stop().await;
    let database = conductor_store::Database::open(
        &conductor_store::DatabaseUrl::parse(&first.database_url).unwrap(),
        1,
    )
    .unwrap();
    let jobs = database.repositories().load_jobs.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = jobs.latest_for_url(&datapackage).await.unwrap().unwrap();
        if job.status == conductor_core::LoadStatus::Queued {
            assert_eq!((job.rows_loaded, job.error), (0, None));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {}", job.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tables(&first.database_url, &fact).is_empty(),
        "no staging tables are left"
    );

    // Another replica on the same database picks it up and finishes it.
    let second =
        conductor_tests::spawn_on_url(&first.database_url, |s| s.loader.fetch_allowlist = vec![allow]).await;
    let (seen, last) = wait_for_load(&second, &datapackage, LOAD_TIMEOUT).await;
    assert_eq!(last["status"], "done", "{seen:?} {last}");
    assert_eq!(last["progress"], 60);
    assert_eq!(
        query_number(&second.database_url, &format!("SELECT count(*) FROM \"{fact}\"")),
        Ok(60)
    );
}

/// The 16 hex digits a dataset adds to its owner's id in the fact table's name.
fn fact_suffix(dataset: &str) -> String {
    use md5::Digest;
    hex_of(&md5::Md5::digest(dataset.as_bytes()))[..16].to_owned()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_load_reports_its_stages_and_rising_progress() {
    // 60 rows at 50 ms each: three seconds of loading-data that polling every 20 ms must see, with `progress`
    // (rows loaded) rising. A loader that went straight to `done`, or never reported progress, fails here.
    let (port, _sent) = slow_source(Some(60));
    let allow = format!("http://127.0.0.1:{port}/");
    let datapackage = format!("http://127.0.0.1:{port}/datapackage.json");
    // Progress is recorded with each heartbeat (a quarter of the timeout): a one-second timeout reports every 250 ms.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.loader.fetch_allowlist = vec![allow.clone()];
        s.loader.heartbeat_timeout = Duration::from_secs(1);
    })
    .await;
    let token = permission_token(&app, "owner@example.org").await;
    let (status, body) = start_load(&app, &token, &datapackage).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!(
        "/package/status?datapackage={}",
        url::form_urlencoded::byte_serialize(datapackage.as_bytes()).collect::<String>()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<String> = Vec::new();
    let mut progress: Vec<u64> = Vec::new();
    loop {
        let (_, body) = app.get_json(&path).await;
        let status = body["status"].as_str().unwrap().to_owned();
        if status == "loading-data" {
            progress.push(body["progress"].as_u64().unwrap());
        }
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "done" || status == "fail" {
            assert_eq!(status, "done", "{body}");
            assert_eq!(body["progress"], 60, "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(in_status_order(&seen, "done"), "{seen:?}");
    for stage in ["loading-data", "done"] {
        assert!(
            seen.iter().any(|s| s == stage),
            "{stage} never reported: {seen:?}"
        );
    }
    assert!(
        seen.iter().position(|s| s == "loading-data")
            > seen.iter().position(|s| s == "queued" || s == "initializing"),
        "stages in order: {seen:?}"
    );
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress never falls: {progress:?}"
    );
    let distinct: std::collections::BTreeSet<u64> = progress.iter().copied().collect();
    assert!(
        distinct.len() >= 5 && distinct.iter().any(|&p| p > 0 && p < 60),
        "progress rises through the load: {progress:?}"
    );
}
