//! `/datastore/*` on both adapters: the local datastore served by the gateway, and S3 (against s3s-fs).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use conductor_core::{Clock, SystemClock, UserId};
use conductor_tests::s3::S3Server;
use conductor_tests::{Backend, TestApp, spawn_app_with};
use md5::{Digest, Md5};
use reqwest::StatusCode;
use serde_json::{Value, json};

const DATAPACKAGE: &[u8] =
    br#"{"name": "budget", "resources": [{"name": "budget", "path": "data/budget.csv"}]}"#;
const CSV: &[u8] = b"year,admin1,amount\n2014,Health,12.5\n2014,Education,20\n";

/// A gateway on one adapter, and the S3 server behind it when there is one.
struct Store {
    app: TestApp,
    s3: Option<S3Server>,
}

#[derive(Clone, Copy, Debug)]
enum Adapter {
    Local,
    S3,
}

async fn store(adapter: Adapter, url_ttl: Duration) -> Store {
    let s3 = match adapter {
        Adapter::Local => None,
        Adapter::S3 => Some(S3Server::start().await.expect("s3s-fs")),
    };
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.datastore.url_ttl = url_ttl;
        if let Some(s3) = &s3 {
            s3.configure(s);
        }
    })
    .await;
    Store { app, s3 }
}

impl Store {
    /// What was stored under a key, read back from the store itself.
    async fn stored(&self, key: &str) -> Option<Vec<u8>> {
        match &self.s3 {
            Some(s3) => std::fs::read(s3.object(key)).ok(),
            None => std::fs::read(self.app.data_dir().join("datastore").join(key)).ok(),
        }
    }

    /// Files the store holds besides `keep`: none may be left by a rejected upload (temporary files included).
    fn leftovers(&self) -> Vec<String> {
        let files: Vec<std::path::PathBuf> = match &self.s3 {
            Some(s3) => s3.files(),
            None => walk(&self.app.data_dir().join("datastore")),
        };
        files.iter().map(|p| p.display().to_string()).collect()
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path))
        } else {
            out.push(path)
        }
    }
    out
}

fn md5(bytes: &[u8]) -> String {
    STANDARD.encode(Md5::digest(bytes))
}

async fn permission_token(app: &TestApp, email: &str) -> String {
    let user = app.log_in(email).await;
    let (_, body) = app
        .get_json(&format!("/user/authorize?jwt={user}&service=os.datastore"))
        .await;
    body["token"].as_str().unwrap().to_owned()
}

fn request(owner: &UserId, files: &[(&str, &[u8])]) -> Value {
    let filedata: serde_json::Map<String, Value> = files
        .iter()
        .map(|(path, bytes)| {
            let spec = json!({"md5": md5(bytes), "name": path, "length": bytes.len(), "type": "application/octet-stream"});
            ((*path).to_owned(), spec)
        })
        .collect();
    json!({"metadata": {"owner": owner, "name": "Budget", "author": "Budget"}, "filedata": filedata})
}

async fn authorize(app: &TestApp, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut request = app.client.post(app.url("/datastore/")).json(body);
    if let Some(token) = token {
        request = request.header("Auth-Token", token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// PUTs `body` as os-packager does: to `upload_url?<first of each upload_query>`, with the signed headers.
async fn put(app: &TestApp, file: &Value, body: &[u8], md5_header: &str) -> StatusCode {
    put_url(app, &signed_url(file), body, md5_header).await
}

async fn put_url(app: &TestApp, url: &str, body: &[u8], md5_header: &str) -> StatusCode {
    put_as(app, url, body, md5_header, "application/octet-stream")
        .await
        .0
}

/// A PUT with this Content-Type; the status and the body (our JSON error, or S3's XML one).
async fn put_as(
    app: &TestApp,
    url: &str,
    body: &[u8],
    md5_header: &str,
    content_type: &str,
) -> (StatusCode, String) {
    let response = app
        .client
        .put(url)
        .header("Content-MD5", md5_header)
        .header("Content-Type", content_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap_or_default())
}

/// The URL of a signed file with its query.
fn signed_url(file: &Value) -> String {
    let mut url = url::Url::parse(file["upload_url"].as_str().unwrap()).unwrap();
    for (name, values) in file["upload_query"].as_object().unwrap() {
        url.query_pairs_mut()
            .append_pair(name, values[0].as_str().unwrap());
    }
    url.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_land_and_read_back_byte_for_byte() {
    for adapter in [Adapter::Local, Adapter::S3] {
        let store = store(adapter, Duration::from_secs(900)).await;
        let app = &store.app;
        let token = permission_token(app, "ada@example.test").await;
        let owner = UserId::from_email("ada@example.test");
        // Larger than the gateway's 1 MiB body limit, which does not apply to uploads: the signed length does.
        let big: Vec<u8> = CSV.iter().copied().cycle().take(2 * 1024 * 1024 + 7).collect();
        let files = [
            ("datapackage.json", DATAPACKAGE),
            ("data/budget.csv", CSV),
            ("data/big.csv", big.as_slice()),
        ];
        let (status, body) = authorize(app, Some(&token), &request(&owner, &files)).await;
        assert_eq!(status, StatusCode::OK, "{adapter:?}: {body}");

        let (_, info) = app.get_json(&format!("/datastore/info?jwt={token}")).await;
        let prefixes: Vec<&str> = info["prefixes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert!(!prefixes.is_empty());
        for (path, bytes) in files {
            let file = &body["filedata"][path];
            assert_eq!(file["md5"], md5(bytes));
            assert_eq!(file["length"], bytes.len());
            let url = file["upload_url"].as_str().unwrap();
            assert!(
                prefixes.iter().any(|p| url.starts_with(p)),
                "{adapter:?}: {url} is under none of {prefixes:?}"
            );
            assert_eq!(
                put(app, file, bytes, &md5(bytes)).await,
                StatusCode::OK,
                "{adapter:?} {path}"
            );
            let key = format!("{owner}/budget/{path}");
            assert_eq!(
                store.stored(&key).await.as_deref(),
                Some(bytes),
                "{adapter:?} {path}"
            );
        }
        if matches!(adapter, Adapter::Local) {
            // Public reads from the gateway, as from the original's public bucket.
            let url = body["filedata"]["data/budget.csv"]["upload_url"]
                .as_str()
                .unwrap();
            let response = app.client.get(url).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
            assert_eq!(response.bytes().await.unwrap().as_ref(), CSV);
        }
        let (_, ready) = app.get_json("/readyz").await;
        assert_eq!(ready["checks"]["datastore"], "ok", "{adapter:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_rejected_and_leave_nothing() {
    for adapter in [Adapter::Local, Adapter::S3] {
        let store = store(adapter, Duration::from_secs(900)).await;
        let app = &store.app;
        let token = permission_token(app, "ada@example.test").await;
        let owner = UserId::from_email("ada@example.test");
        let (_, body) = authorize(app, Some(&token), &request(&owner, &[("data/budget.csv", CSV)])).await;
        let file = &body["filedata"]["data/budget.csv"];
        let tampered: Vec<u8> = CSV.iter().map(|b| if *b == b'5' { b'6' } else { *b }).collect();
        let longer = [CSV, b"2015,Health,1\n"].concat();

        let mut url = url::Url::parse(file["upload_url"].as_str().unwrap()).unwrap();
        for (name, values) in file["upload_query"].as_object().unwrap() {
            let value = values[0].as_str().unwrap();
            let value =
                if name.eq_ignore_ascii_case("signature") || name.eq_ignore_ascii_case("X-Amz-Signature") {
                    let mut chars: Vec<char> = value.chars().collect();
                    chars[3] = if chars[3] == 'a' { 'b' } else { 'a' };
                    chars.into_iter().collect()
                } else {
                    value.to_owned()
                };
            url.query_pairs_mut().append_pair(name, &value);
        }
        // Each refusal says which check refused: the body was not the signed MD5 (400, a digest error), or the
        // request was not the one signed (403, a signature error: length, MD5 header, type and signature are all
        // bound into it). Our JSON codes on the local store, S3's own error codes on s3s-fs.
        let plain = signed_url(file);
        let octets = "application/octet-stream";
        let cases = [
            (
                "bytes that differ from the authorized MD5",
                put_as(app, &plain, &tampered, &md5(CSV), octets).await,
                400,
            ),
            (
                "a longer body",
                put_as(app, &plain, &longer, &md5(&longer), octets).await,
                403,
            ),
            (
                "a shorter body",
                put_as(app, &plain, &CSV[..10], &md5(&CSV[..10]), octets).await,
                403,
            ),
            (
                "a wrong Content-MD5 header",
                put_as(app, &plain, &tampered, &md5(&tampered), octets).await,
                403,
            ),
            (
                "another Content-Type than signed",
                put_as(app, &plain, CSV, &md5(CSV), "text/html").await,
                403,
            ),
            (
                "a tampered signature",
                put_as(app, url.as_str(), CSV, &md5(CSV), octets).await,
                403,
            ),
        ];
        for (case, (status, answer), expected) in cases {
            assert_eq!(status.as_u16(), expected, "{adapter:?} {case}: {answer}");
            let code = match (adapter, expected) {
                (Adapter::Local, 400) => "\"bad-digest\"",
                (Adapter::Local, _) => "\"signature-does-not-match\"",
                (Adapter::S3, 400) => "<Code>BadDigest</Code>",
                (Adapter::S3, _) => "<Code>SignatureDoesNotMatch</Code>",
            };
            assert!(answer.contains(code), "{adapter:?} {case}: {answer}");
            assert_eq!(
                store.stored(&format!("{owner}/budget/data/budget.csv")).await,
                None,
                "{adapter:?} {case}"
            );
            assert!(
                store.leftovers().is_empty(),
                "{adapter:?} {case} left {:?}",
                store.leftovers()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_url_is_refused() {
    for adapter in [Adapter::Local, Adapter::S3] {
        let store = store(adapter, Duration::from_secs(1)).await;
        let app = &store.app;
        let token = permission_token(app, "ada@example.test").await;
        let owner = UserId::from_email("ada@example.test");
        let (_, body) = authorize(app, Some(&token), &request(&owner, &[("data/budget.csv", CSV)])).await;
        // Past the one-second lifetime (the signature's expiry is in whole seconds).
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let status = put(app, &body["filedata"]["data/budget.csv"], CSV, &md5(CSV)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{adapter:?}");
        assert!(
            store.leftovers().is_empty(),
            "{adapter:?}: {:?}",
            store.leftovers()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_escape_is_a_400() {
    for adapter in [Adapter::Local, Adapter::S3] {
        let store = store(adapter, Duration::from_secs(900)).await;
        let app = &store.app;
        let token = permission_token(app, "ada@example.test").await;
        let owner = UserId::from_email("ada@example.test");
        let long = "x".repeat(1100);
        for path in [
            "../x.csv",
            "a/../../x.csv",
            "/etc/passwd",
            "a\\b.csv",
            "%2e%2e/x.csv",
            "%2E%2E/x.csv",
            "a\u{1}b.csv",
            "a//b.csv",
            long.as_str(),
        ] {
            let (status, body) = authorize(app, Some(&token), &request(&owner, &[(path, CSV)])).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{adapter:?} {path:.30}: {body}");
            assert_eq!(body["error"]["code"], "invalid-path");
        }
        // And the other checks of a file.
        let mut bad_md5 = request(&owner, &[("x.csv", CSV)]);
        bad_md5["filedata"]["x.csv"]["md5"] = json!("not-base64-of-16-bytes");
        let mut too_large = request(&owner, &[("x.csv", CSV)]);
        too_large["filedata"]["x.csv"]["length"] = json!(6u64 * 1024 * 1024 * 1024);
        let mut html = request(&owner, &[("x.html", CSV)]);
        html["filedata"]["x.html"]["type"] = json!("text/html");
        let no_owner = json!({"metadata": {"name": "x"}, "filedata": {}});
        let no_name = json!({"metadata": {"owner": owner}, "filedata": {}});
        // Each refusal says which check refused: its code, and the field its message names.
        for (case, body, code, names) in [
            ("md5", bad_md5, "invalid-md5", "md5"),
            ("length", too_large, "file-too-large", "length"),
            ("type", html, "type-not-allowed", "text/html"),
            ("owner", no_owner, "invalid-request", "metadata.owner"),
            ("name", no_name, "invalid-request", "metadata.name"),
        ] {
            let (status, answer) = authorize(app, Some(&token), &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{adapter:?} {case}: {answer}");
            assert_eq!(answer["error"]["code"], code, "{adapter:?} {case}: {answer}");
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(names), "{adapter:?} {case}: {message}");
        }
        let response = app
            .client
            .post(app.url("/datastore/"))
            .header("Auth-Token", &token)
            .body("{not json")
            .send()
            .await;
        assert_eq!(response.unwrap().status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_qualifying_permission_token_may_sign() {
    for adapter in [Adapter::Local, Adapter::S3] {
        tokens_are_checked_on(&store(adapter, Duration::from_secs(900)).await).await;
    }
}

async fn tokens_are_checked_on(store: &Store) {
    let app = &store.app;
    let owner = UserId::from_email("ada@example.test");
    let token = permission_token(app, "ada@example.test").await;
    let user_token = app.log_in("ada@example.test").await;
    let day = Duration::from_secs(86_400);
    let forger = app.forger(day, day);
    let other_service = forger
        .issue_permission(
            &owner,
            "os.other",
            json!({"datapackage-upload": true}).as_object().cloned().unwrap(),
            SystemClock.now(),
        )
        .unwrap();
    let expired = forger
        .issue_permission(
            &owner,
            "os.datastore",
            json!({"datapackage-upload": true}).as_object().cloned().unwrap(),
            SystemClock.now().minus(Duration::from_secs(2 * 86_400)),
        )
        .unwrap();
    let no_upload = forger
        .issue_permission(&owner, "os.datastore", Default::default(), SystemClock.now())
        .unwrap();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"typ": "permission", "userid": owner, "service": "os.datastore", "permissions": {"datapackage-upload": true},
               "iss": app.base_url.as_str(), "iat": 0, "exp": 4_102_444_800u64})
        .to_string(),
    );
    let alg_none = format!("{header}.{claims}.");
    let body = request(&owner, &[("x.csv", CSV)]);
    let bob = request(&UserId::from_email("bob@example.test"), &[("x.csv", CSV)]);
    let cases: [(&str, Option<&str>, &Value, StatusCode); 9] = [
        ("no token", None, &body, StatusCode::UNAUTHORIZED),
        ("garbage", Some("garbage"), &body, StatusCode::UNAUTHORIZED),
        (
            "testing-token",
            Some("testing-token"),
            &body,
            StatusCode::UNAUTHORIZED,
        ),
        ("alg none", Some(&alg_none), &body, StatusCode::UNAUTHORIZED),
        ("a user token", Some(&user_token), &body, StatusCode::UNAUTHORIZED),
        ("expired", Some(&expired), &body, StatusCode::UNAUTHORIZED),
        (
            "another service",
            Some(&other_service),
            &body,
            StatusCode::FORBIDDEN,
        ),
        (
            "no upload permission",
            Some(&no_upload),
            &body,
            StatusCode::FORBIDDEN,
        ),
        ("another owner", Some(&token), &bob, StatusCode::FORBIDDEN),
    ];
    for (case, token, body, expected) in cases {
        let (status, answer) = authorize(app, token, body).await;
        assert_eq!(status, expected, "{case}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{case}: {answer}");
    }
    // The same tokens at /datastore/authorize and /datastore/info.
    let response = app
        .client
        .post(app.url("/datastore/authorize?jwt=testing-token"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/datastore/info?jwt=testing-token").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/datastore/info").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = authorize(app, Some(&token), &body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the real token works at the same endpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_put_is_preflighted_for_allowed_origins() {
    let store = store(Adapter::Local, Duration::from_secs(900)).await;
    let app = &store.app;
    let origin = app.base_url.as_str().trim_end_matches('/').to_owned();
    let url = app.url(&format!(
        "/datastore/files/{}/budget/x.csv",
        UserId::from_email("ada@example.test")
    ));
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", &origin)
        .header("Access-Control-Request-Method", "PUT")
        .header("Access-Control-Request-Headers", "content-md5, content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        origin.as_str()
    );
    let refused = app
        .client
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await
        .unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}
