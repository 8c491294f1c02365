//! No log line at any level shows a token, a signature or a secret.

use std::io::Write;
use std::sync::{Arc, Mutex};

use conductor_tests::{Backend, spawn_app};
use reqwest::StatusCode;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("log buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn trace_logs_never_show_tokens_or_signatures() {
    let captured = Captured::default();
    // The gateway's own subscriber, at TRACE for every crate (the server's, actix's, diesel's, r2d2's).
    conductor::telemetry::init(EnvFilter::new("trace"), captured.clone()).expect("the only subscriber here");

    let app = spawn_app(Backend::Sqlite).await;
    let requests = [
        app.client.get(app.url("/healthz?jwt=SECRET")),
        app.client
            .get(app.url("/readyz"))
            .header("Authorization", "Bearer SECRET"),
        app.client.get(app.url("/healthz")).header("Auth-Token", "SECRET"),
        app.client
            .get(app.url("/healthz?X-Amz-Signature=SECRET&X-Amz-Credential=SECRET")),
        app.client
            .get(app.url("/datastore/files/a/b.csv?expires=1&signature=SECRET")),
        app.client.get(app.url("/healthz?JWT=SECRET&callback=cb")),
        app.client
            .post(app.url("/healthz?jw%74=SECRET"))
            .form(&[("jwt", "SECRET")]),
    ];
    for request in requests {
        request.send().await.expect("answered");
    }
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    drop(app);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let leaks: Vec<&str> = logs.lines().filter(|line| line.contains("SECRET")).collect();
    assert!(leaks.is_empty(), "secrets in the logs:\n{}", leaks.join("\n"));
    // The test can fail: the requests were logged, with their redacted targets.
    assert!(
        logs.contains("http.target=/healthz?jwt=[REDACTED]"),
        "request lines missing:\n{logs}"
    );
    assert!(logs.contains("X-Amz-Signature=[REDACTED]&X-Amz-Credential=[REDACTED]"));
    assert!(logs.contains("signature=[REDACTED]"));
}
