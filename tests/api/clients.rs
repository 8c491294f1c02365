//! What os-packager and os-admin read to follow a load: `/package/status` for a refused upload, and a first
//! load listed for its owner (`loaded: false`) while it runs and after it fails.

use std::time::{Duration, Instant};

use conductor_tests::packages::{
    permission_token, query_number, start_load, upload_files, userid_of, wait_for_load,
};
use conductor_tests::{Backend, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::package::{generated_package, record};

async fn status_of(app: &TestApp, url: &str) -> (StatusCode, Value) {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("datapackage", url)
        .finish();
    app.get_json(&format!("/package/status?{query}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_is_a_failed_job_with_its_reason() {
    for backend in Backend::ALL {
        let app = spawn_app(backend).await;
        let token = permission_token(&app, "ada@example.test").await;
        let files = vec![("datapackage.json".to_owned(), b"{not json".to_vec())];
        let url = upload_files(&app, &token, "broken", &files).await;
        let (status, body) = start_load(&app, &token, &url).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{backend:?}: {body}");
        assert_eq!(body["status"], "fail");
        let reason = body["error"].as_str().unwrap().to_owned();
        assert!(reason.contains("not valid JSON"), "{reason}");
        let (status, polled) = status_of(&app, &url).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {polled}");
        assert_eq!(polled["status"], "fail");
        assert_eq!(polled["error"], reason.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_the_caller_may_not_load_records_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = permission_token(&app, "ada@example.test").await;
    let victim = "https://example.org/someone-else/datapackage.json";
    let (status, body) = start_load(&app, &token, victim).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(status_of(&app, victim).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_load_is_listed_while_it_runs_and_after_it_fails() {
    for backend in Backend::ALL {
        let app = spawn_app(backend).await;
        let token = permission_token(&app, "owner@example.org").await;
        let user = app.log_in("owner@example.org").await;
        let id = format!("{}:generated", userid_of(&token));
        // Large enough to be seen running; its last row fails the load.
        let rows = 200_000;
        let url = upload_files(&app, &token, "generated", &generated_package(rows, Some(rows))).await;
        let (status, body) = start_load(&app, &token, &url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let deadline = Instant::now() + Duration::from_secs(120);
        let listed = loop {
            let (_, polled) = status_of(&app, &url).await;
            let running = !matches!(polled["status"].as_str(), Some("done" | "fail"));
            if running && let Some(listed) = record(&app, &user, &id).await {
                break listed;
            }
            assert!(running, "{backend:?}: ended before it was listed: {polled}");
            assert!(Instant::now() < deadline, "{backend:?}: never listed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(listed["loaded"], false, "{backend:?}: {listed}");
        assert_eq!(listed["package"]["private"], true);
        let (_, anonymous) = app.get_json(&format!("/search/package?id=%22{id}%22")).await;
        assert_eq!(anonymous, json!([]), "listed for its owner only");

        let (_, last) = wait_for_load(&app, &url, Duration::from_secs(120)).await;
        assert_eq!(last["status"], "fail", "{backend:?}: {last}");
        let failed = record(&app, &user, &id)
            .await
            .expect("still listed after failing");
        assert_eq!(failed["loaded"], false);
        // The search answer keeps the original's fields; the record the registry readers get says it failed.
        let sql = format!("SELECT count(*) FROM packages WHERE id = '{id}' AND loading_status = 'fail'");
        assert_eq!(query_number(&app.database_url, &sql), Ok(1), "{backend:?}");
    }
}
