//! A PostgreSQL that is down at start, or goes down later, is retried without restarting the gateway.

use std::time::Duration;

use conductor_tests::{ThrowawayPostgres, spawn_on_url};
use reqwest::StatusCode;

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_postgres_down_and_up_without_a_restart() {
    let cluster = ThrowawayPostgres::init().expect("a throwaway PostgreSQL cluster");
    // Down at start: the gateway serves, /healthz answers, /readyz says not ready.
    let app = spawn_on_url(&cluster.url(), |_| {}).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.readyz().await, StatusCode::SERVICE_UNAVAILABLE);

    // Up: the background migration retry applies the schema, and readiness turns 200.
    cluster.start().expect("cluster starts");
    assert!(
        app.wait_for_readiness(StatusCode::OK, PATIENCE).await,
        "never ready after PostgreSQL started"
    );

    cluster.stop().expect("cluster stops");
    assert!(
        app.wait_for_readiness(StatusCode::SERVICE_UNAVAILABLE, PATIENCE)
            .await,
        "still ready while down"
    );
    assert_eq!(
        app.get("/healthz").await.status(),
        StatusCode::OK,
        "alive while the database is down"
    );

    cluster.start().expect("cluster starts again");
    assert!(
        app.wait_for_readiness(StatusCode::OK, PATIENCE).await,
        "not ready again after the restart"
    );
}
