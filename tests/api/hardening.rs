//! The security review's defects (docs/security.md), one regression test each: what an anonymous client, an
//! ordinary user or a hostile package could do before, and cannot now.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use conductor_tests::packages::{permission_token, start_load, upload_files, upload_files_as};
use conductor_tests::{Backend, spawn_app, spawn_app_with};
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// This process's resident memory in MiB: the gateway under test runs inside it.
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

/// A gzip body that inflates to `inflated` zero bytes.
fn gzip_bomb(inflated: usize) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..inflated / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.finish().unwrap()
}

#[tokio::test]
async fn compressed_request_bodies_are_refused_before_they_inflate() {
    // Made first: compressing 256 MiB takes seconds in a debug build, long enough for the server to close the
    // client's idle pooled connection under a request being sent.
    let bomb = gzip_bomb(256 << 20);
    let app = spawn_app(Backend::Sqlite).await;
    assert!(bomb.len() < 1 << 20, "the bomb is under the body limit");
    let before = rss_mib();
    for (method, path) in [
        (reqwest::Method::POST, "/datastore/"),
        (reqwest::Method::POST, "/package/upload"),
        (reqwest::Method::POST, "/user/update"),
        (reqwest::Method::POST, "/package/publish"),
        (reqwest::Method::PUT, "/datastore/files/x/y/z.csv"),
        (reqwest::Method::POST, "/datastore/"),
        (reqwest::Method::POST, "/package/upload"),
        (reqwest::Method::POST, "/user/update"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .header("Content-Encoding", "gzip")
            .header("Content-Type", "application/json")
            .body(bomb.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported-content-encoding");
    }
    let grown = rss_mib().saturating_sub(before);
    assert!(grown < 64, "eight compressed bodies grew memory by {grown} MiB");
    // `identity` is no compression: still accepted.
    let response = app
        .client
        .post(app.url("/user/update"))
        .header("Content-Encoding", "identity")
        .form(&[("username", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn jsonp_never_buffers_or_wraps_a_stored_file() {
    let app = spawn_app(Backend::Sqlite).await;
    // A large stored `.json` file, as a public read of the datastore would find it.
    let key = "0123456789abcdef0123456789abcdef/big/data.json";
    let path = app.data_dir().join("datastore").join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let size: usize = 96 << 20;
    {
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..size / chunk.len() {
            file.write_all(&chunk).unwrap();
        }
    }
    let before = rss_mib();
    let mut response = app.get(&format!("/datastore/files/{key}?callback=cb")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(
        response.headers()["content-type"],
        "application/javascript; charset=utf-8"
    );
    let mut first = None;
    let mut received = 0usize;
    while let Some(chunk) = response.chunk().await.unwrap() {
        first.get_or_insert_with(|| chunk.clone());
        received += chunk.len();
    }
    assert_eq!(received, size, "the file itself, unwrapped");
    assert!(!first.unwrap().starts_with(b"/**/cb("));
    let grown = rss_mib().saturating_sub(before);
    assert!(
        grown < 64,
        "one JSONP read of a 96 MiB file grew memory by {grown} MiB"
    );
}

#[tokio::test]
async fn stored_files_are_served_as_signed_and_as_downloads() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = permission_token(&app, "mallory@example.test").await;
    let files = vec![
        (
            "page.html".to_owned(),
            b"<script>alert(document.domain)</script>".to_vec(),
        ),
        ("image.svg".to_owned(), b"<svg onload=alert(1)></svg>".to_vec()),
        ("data.json".to_owned(), b"{\"a\": 1}".to_vec()),
    ];
    let urls = upload_files_as(&app, &token, "hosted", &files, "text/plain").await;
    for (path, url) in &urls {
        for query in ["", "?callback=cb"] {
            let response = app.client.get(format!("{url}{query}")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}{query}");
            let headers = response.headers();
            assert_eq!(headers["content-type"], "text/plain", "{path}{query}");
            assert_eq!(headers["x-content-type-options"], "nosniff");
            let disposition = headers["content-disposition"].to_str().unwrap();
            assert!(disposition.starts_with("attachment"), "{path}: {disposition}");
            let body = response.text().await.unwrap();
            assert!(!body.starts_with("/**/"), "{path}{query} was wrapped: {body}");
        }
    }
}

#[tokio::test]
async fn a_descriptor_with_thousands_of_same_named_fields_is_refused_with_a_reason() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = permission_token(&app, "ada@example.test").await;
    let mut fields = vec![json!({"name": "amount", "columnType": "value"})];
    fields.extend((0..4000).map(
        |_| json!({"name": "x", "columnType": "administrative-classification:generic:level1:code:part"}),
    ));
    let descriptor = json!({
        "name": "wide",
        "resources": [{"name": "wide", "path": "wide.csv", "schema": {"fields": fields}}],
    });
    let files = vec![
        (
            "datapackage.json".to_owned(),
            serde_json::to_vec(&descriptor).unwrap(),
        ),
        ("wide.csv".to_owned(), b"amount\n1\n".to_vec()),
    ];
    let url = upload_files(&app, &token, "wide", &files).await;
    let (status, body) = start_load(&app, &token, &url).await;
    let (_, last) = if status == StatusCode::OK {
        conductor_tests::packages::wait_for_load(&app, &url, Duration::from_secs(60)).await
    } else {
        (Vec::new(), body.clone())
    };
    let error = format!("{}{}", last["error"], body["error"]);
    assert!(
        error.contains("at most 1000"),
        "status {status}, upload {body}, last status {last}"
    );
}

#[tokio::test]
async fn the_dev_login_stays_off_on_a_non_loopback_listener() {
    let port = conductor_tests::free_port().unwrap();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.bind = format!("0.0.0.0:{port}").parse().unwrap();
    })
    .await;
    let (_, check) = app.get_json("/user/check").await;
    assert!(check["providers"].get("dev").is_none(), "{check}");
    let response = app
        .client
        .post(app.url("/oauth/dev/login"))
        .form(&[("email", "eve@example.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test]
async fn a_get_of_the_dev_login_only_shows_its_form() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app
        .get(&format!(
            "/oauth/dev/login?email=ada@example.test&next={}",
            app.base_url
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("location").is_none());
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<form") && page.contains("method=\"post\""),
        "{page}"
    );
}

/// Sends `head` on a raw connection, then trickles `body` a byte every `every`; returns what came back.
#[expect(
    clippy::disallowed_methods,
    reason = "a raw client on a blocking thread, paced as an attacker would"
)]
fn trickle(port: u16, head: &str, body: &[u8], every: Duration) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    for byte in body {
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(every);
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_trickling_body_is_cut_at_its_deadline() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.body_timeout = Duration::from_secs(2);
    })
    .await;
    let port = app.port;
    // /user/update reads its form body before it looks at the token (routes that need a permission token now
    // refuse before reading any body).
    let body = b"username=someone-who-types-very-slowly&more=padding-padding-padding";
    let head = format!(
        "POST /user/update HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // At a byte every 500 ms this body would take over 30 s; the deadline ends it after 2.
    let answer = tokio::task::spawn_blocking(move || trickle(port, &head, body, Duration::from_millis(500)))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");
}

/// Opens a connection and makes one keep-alive request on it; returns the connection and the status line.
fn keep_alive_request(port: u16) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut buffer = [0u8; 4096];
    let n = stream.read(&mut buffer).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buffer[..n]).into_owned();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    (stream, status)
}

/// The slots come back as the server sees the connections close: wait until a new one is let in.
#[expect(clippy::disallowed_methods, reason = "a raw client on a blocking thread")]
fn wait_for_a_slot(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_connection, status) = keep_alive_request(port);
        if status == "HTTP/1.1 200 OK" {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slots never came back: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn connections_over_the_per_client_cap_are_refused() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.max_connections_per_client = 3;
    })
    .await;
    let port = app.port;
    tokio::task::spawn_blocking(move || {
        // The harness's own client may hold a pooled connection too: the cap counts every one from this address.
        let mut held = Vec::new();
        let refused = loop {
            let (connection, status) = keep_alive_request(port);
            if status != "HTTP/1.1 200 OK" {
                break status;
            }
            held.push(connection);
            assert!(held.len() <= 3, "more than 3 connections were let in");
        };
        assert_eq!(refused, "HTTP/1.1 429 Too Many Requests");
        assert!(held.len() >= 2, "only {} connections were let in", held.len());
        drop(held);
        wait_for_a_slot(port);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_descriptor_over_the_stored_bound_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = permission_token(&app, "ada@example.test").await;
    let descriptor = json!({
        "name": "padded",
        "description": "x".repeat(5 << 20),
        "resources": [{"name": "r", "path": "r.csv", "schema": {"fields": [{"name": "amount", "columnType": "value"}]}}],
    });
    let files = vec![
        (
            "datapackage.json".to_owned(),
            serde_json::to_vec(&descriptor).unwrap(),
        ),
        ("r.csv".to_owned(), b"amount\n1\n".to_vec()),
    ];
    let url = upload_files(&app, &token, "padded", &files).await;
    let (status, body) = start_load(&app, &token, &url).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["status"], "fail");
    assert!(body["error"].as_str().unwrap().contains("larger than"), "{body}");
}

#[tokio::test]
async fn datastore_info_wants_a_datastore_token() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.log_in("ada@example.test").await;
    let (_, other) = app
        .get_json(&format!("/user/authorize?jwt={user}&service=os.viewer"))
        .await;
    let other = other["token"].as_str().unwrap();
    let (status, body) = app.get_json(&format!("/datastore/info?jwt={other}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let datastore = permission_token(&app, "ada@example.test").await;
    let (status, body) = app.get_json(&format!("/datastore/info?jwt={datastore}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn metrics_can_move_off_the_public_port() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);
    let port = app.metrics_port.expect("a metrics port");
    let response = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("http_requests"));
}

#[tokio::test]
async fn run_hooks_refuse_a_host_that_resolves_to_a_private_address() {
    // A listener that would take the post: the refusal must come before any connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.loader.hook_allowlist = vec![format!("http://localhost:{port}/execute/")];
    })
    .await;
    let token = permission_token(&app, "ada@example.test").await;
    let owner = conductor_tests::packages::userid_of(&token);
    let (status, body) = app
        .post_form(
            &format!(
                "/package/run-hooks?jwt={token}&id={owner}:budget&pipeline=http://localhost:{port}/execute/x"
            ),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["success"], false);
    assert!(
        body["error"].as_str().unwrap().contains("private address"),
        "{body}"
    );
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing connected to the hook");
}
