//! The gateway's own endpoints and cross-cutting behaviour, on every backend.

use conductor_tests::{Backend, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::json;

#[tokio::test]
async fn health_and_readiness_on_every_backend() {
    for backend in Backend::ALL {
        let app = spawn_app(backend).await;
        let (status, body) = app.get_json("/healthz").await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"status": "ok"})),
            "{backend:?}"
        );
        assert!(
            app.wait_for_readiness(StatusCode::OK, std::time::Duration::from_secs(30))
                .await,
            "{backend:?} never became ready"
        );
        let (status, body) = app.get_json("/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"status": "ready", "checks": {"database": "ok", "datastore": "ok", "search": "ok"}}),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn sqlite_database_is_created_under_data_dir() {
    let app = spawn_app_with(Backend::Sqlite, |settings| settings.database.url = None).await;
    assert!(
        app.wait_for_readiness(StatusCode::OK, std::time::Duration::from_secs(30))
            .await
    );
    assert!(app.data_dir().join("conductor.db").is_file());
}

#[tokio::test]
async fn without_auto_migrate_readiness_waits_for_migrations() {
    for backend in Backend::ALL {
        let app = spawn_app_with(backend, |settings| settings.database.auto_migrate = false).await;
        let (status, body) = app.get_json("/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{backend:?}");
        assert_eq!(
            body["checks"]["database"], "4 migration(s) pending",
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app(Backend::Sqlite).await;
    let series = r#"http_requests_total{method="GET",route="/healthz",status="200"}"#;
    let before = app.metric(series).await;
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    assert_eq!(app.metric(series).await, before + 3.0);
    app.get("/no/such/route").await;
    assert_eq!(
        app.metric(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#)
            .await,
        1.0
    );
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\""));
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, body) = app.get_json("/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not-found");

    let (status, body) = app.post_form("/healthz", &[("a", "b")]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method-not-allowed");
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.server.body_limit = bytesize_kib(4)).await;
    let response = app
        .client
        .post(app.url("/healthz"))
        .body(vec![b'x'; 5 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload-too-large");
}

fn bytesize_kib(n: u64) -> bytesize::ByteSize {
    bytesize::ByteSize::kib(n)
}

#[tokio::test]
async fn jsonp_wraps_json_for_valid_callbacks_only() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/healthz?callback=angular.callbacks._0").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(CONTENT_TYPE),
        Some(&HeaderValue::from_static("application/javascript; charset=utf-8"))
    );
    assert_eq!(
        response.text().await.unwrap(),
        r#"/**/angular.callbacks._0({"status":"ok"});"#
    );

    let (status, body) = app.get_json("/healthz?callback=alert(document.cookie)").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid-callback");

    // Errors are wrapped too, keeping their status.
    let response = app.get("/nowhere?callback=cb").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().starts_with("/**/cb({\"error\""));
}

#[tokio::test]
async fn cors_allows_configured_origins_with_credentials_only() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.cors.allowed_origins = Some(vec!["https://openspending.example".into()]);
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/healthz"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "PUT")
            .header("Access-Control-Request-Headers", "content-md5, auth-token")
            .send()
    };
    let allowed = preflight("https://openspending.example").await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://openspending.example"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");

    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    let simple = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", "https://openspending.example")
        .send()
        .await;
    let simple = simple.unwrap();
    assert_eq!(
        simple.headers()["access-control-allow-origin"],
        "https://openspending.example"
    );
    assert!(simple.headers().contains_key("x-request-id"));
}

/// The migration lock of `conductor-store` (`MIGRATION_LOCK_ID`): "conducto" in ASCII.
const MIGRATION_LOCK_ID: i64 = 0x636f_6e64_7563_746f;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrate_under_the_advisory_lock_one_at_a_time() {
    use std::sync::mpsc;
    use std::time::Duration;
    let database = conductor_store::testing::TestDatabase::postgres().expect("PostgreSQL for tests");
    // Another replica migrating: the test holds the lock on a connection of its own.
    let url = database.url().to_owned();
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_ID])
            .unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_ID])
            .unwrap();
    });
    locked_rx.recv().unwrap();
    let (first, second) = tokio::join!(
        conductor_tests::spawn_on_url(database.url(), |_| {}),
        conductor_tests::spawn_on_url(database.url(), |_| {}),
    );
    // While the lock is held, neither migrates: both say so and serve no traffic.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for app in [&first, &second] {
        let (status, body) = app.get_json("/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["checks"]["database"], "4 migration(s) pending", "{body}");
    }
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    for app in [&first, &second] {
        assert!(
            app.wait_for_readiness(StatusCode::OK, Duration::from_secs(30))
                .await
        );
    }
    assert_eq!(
        conductor_tests::packages::query_number(
            database.url(),
            "SELECT count(*) FROM __diesel_schema_migrations"
        ),
        Ok(4),
        "each migration applied once"
    );
}
