//! A reload swaps every table of a package at once, deterministically observed: a reader holding a transaction
//! across the reload sees the old fact rows joined to the old dimension rows throughout (on PostgreSQL the swap
//! waits for it; on SQLite it reads its snapshot while the swap commits), and the first read after sees the new
//! fact rows joined to the new dimension rows: never an empty, half-filled or mismatched table.

use std::time::{Duration, Instant};

use conductor_tests::packages::{
    HeldRead, dimension_joins, permission_token, query_number, start_load, upload_files, userid_of,
    wait_for_load,
};
use conductor_tests::{Backend, TestApp, spawn_app};
use serde_json::Value;

use crate::package::{generated_package, record};

const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// The counts a reader checks: fact rows, fact rows that join each dimension table, and ministries coded `N…`
/// (the reload's codes; the first load's are `M…`).
fn counts(model: &Value, read: &dyn Fn(&str) -> Result<i64, String>) -> Vec<i64> {
    let fact = model["fact_table"].as_str().unwrap();
    let mut counts = vec![read(&format!("SELECT count(*) FROM \"{fact}\"")).unwrap()];
    let joins = dimension_joins(model);
    counts.extend(joins.iter().map(|(_, _, joined)| read(joined).unwrap()));
    let (table, column, _) = joins
        .iter()
        .find(|(_, column, _)| column == "ministry")
        .expect("the ministry dimension");
    counts.push(
        read(&format!(
            "SELECT count(*) FROM \"{table}\" WHERE \"{column}\" LIKE 'N%'"
        ))
        .unwrap(),
    );
    counts
}

/// The reload's package: twice the rows, the ministries coded `N…` instead of `M…`.
fn reloaded_package() -> Vec<(String, Vec<u8>)> {
    generated_package(6000, None)
        .into_iter()
        .map(|(path, bytes)| {
            if path == "data.csv" {
                let csv = String::from_utf8(bytes).unwrap();
                let (header, rows) = csv.split_once('\n').unwrap();
                (
                    path,
                    format!("{header}\n{}", rows.replace(",M", ",N")).into_bytes(),
                )
            } else {
                (path, bytes)
            }
        })
        .collect()
}

async fn status(app: &TestApp, url: &str) -> String {
    let path = format!(
        "/package/status?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("datapackage", url)
            .finish()
    );
    let body = app.get_json(&path).await.1;
    let status = body["status"].as_str().unwrap_or_default().to_owned();
    assert_ne!(status, "fail", "{body}");
    status
}

async fn a_reload_swaps_fact_and_dimension_tables_together(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = permission_token(&app, "owner@example.org").await;
    let user = app.log_in("owner@example.org").await;
    let id = format!("{}:generated", userid_of(&token));
    let url = upload_files(&app, &token, "generated", &generated_package(3000, None)).await;
    start_load(&app, &token, &url).await;
    assert_eq!(wait_for_load(&app, &url, LOAD_TIMEOUT).await.1["status"], "done");
    let model = record(&app, &user, &id).await.unwrap()["model"].clone();
    let db = app.database_url.clone();
    let old = counts(&model, &|sql| query_number(&db, sql));
    assert_eq!(
        old,
        vec![3000, 3000, 3000, 0],
        "the first load: (fact, joined per dimension, N-ministries)"
    );

    // A reader in the middle of its work when the reload comes.
    let reader = tokio::task::block_in_place(|| HeldRead::begin(&db));
    let held = |reader: &HeldRead| tokio::task::block_in_place(|| counts(&model, &|sql| reader.number(sql)));
    assert_eq!(held(&reader), old);
    let url = upload_files(&app, &token, "generated", &reloaded_package()).await;
    start_load(&app, &token, &url).await;
    // The reload reaches its swap: on PostgreSQL it waits there for the reader, on SQLite it commits.
    let deadline = Instant::now() + LOAD_TIMEOUT;
    loop {
        let now = status(&app, &url).await;
        if now == "deleting-table" || now == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "never reached the swap: {now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if backend == Backend::Postgres {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            status(&app, &url).await,
            "deleting-table",
            "the swap waits for the reader"
        );
    }
    assert_eq!(
        held(&reader),
        old,
        "the reader still sees the old tables, whole and consistent"
    );
    tokio::task::block_in_place(|| reader.commit());

    assert_eq!(wait_for_load(&app, &url, LOAD_TIMEOUT).await.1["status"], "done");
    let new = counts(&model, &|sql| query_number(&db, sql));
    assert_eq!(new[0], 6000, "{new:?}");
    assert!(
        new[1..new.len() - 1].iter().all(|&joined| joined == 6000),
        "every fact joins the new dimensions: {new:?}"
    );
    assert_eq!(new.last(), Some(&13), "only the reload's ministries: {new:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_fact_and_dimension_tables_together_on_sqlite() {
    a_reload_swaps_fact_and_dimension_tables_together(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_fact_and_dimension_tables_together_on_postgres() {
    a_reload_swaps_fact_and_dimension_tables_together(Backend::Postgres).await;
}
