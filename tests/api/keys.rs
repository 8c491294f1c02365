//! Personal API keys over HTTP (`/user/keys`), on both databases: made, listed, used where a user token is,
//! narrowed to their scope and their owner's permissions, refused alike when wrong, revoked or expired, revoked
//! at once on every replica, and rate-limited with 429 and Retry-After.

use std::time::Duration;

use conductor_tests::packages::userid_of;
use conductor_tests::{Backend, TestApp, spawn_app, spawn_app_with, spawn_on_url};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `POST /user/keys` with a user token.
async fn create_key(app: &TestApp, user: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/user/keys"))
        .bearer_auth(user)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn upload_scope() -> Value {
    json!({"name": "nightly", "scope": {"os.datastore": ["datapackage-upload"]}})
}

/// A request with `credential` as a Bearer token; the status and JSON body.
async fn with(app: &TestApp, method: reqwest::Method, path: &str, credential: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(credential)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn keys_are_made_listed_used_and_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.log_in("ada@example.org").await;
    let (status, created) = create_key(&app, &user, upload_scope()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("cnd_{id}_")), "{secret}");

    let (status, listed) = with(&app, reqwest::Method::GET, "/user/keys", &user).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["keys"][0]["id"], id.as_str());
    assert_eq!(listed["keys"][0]["live"], true);
    assert!(
        !listed.to_string().contains(&secret[16..]),
        "no secret in a list: {listed}"
    );

    // Where a user token is accepted, the key is: /user/check knows the user, /user/authorize signs for them.
    let (status, checked) = with(&app, reqwest::Method::GET, "/user/check", &secret).await;
    assert_eq!(
        (status, &checked["authenticated"]),
        (StatusCode::OK, &json!(true))
    );
    assert_eq!(checked["profile"]["email"], "ada@example.org");
    let path = "/user/authorize?service=os.datastore";
    let (status, granted) = with(&app, reqwest::Method::GET, path, &secret).await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(granted["permissions"], json!({"datapackage-upload": true}));
    let token = granted["token"].as_str().unwrap().to_owned();
    let (status, _) = with(&app, reqwest::Method::GET, "/datastore/info", &token).await;
    assert_eq!(status, StatusCode::OK, "the key's permission token works");
    // A key does not manage keys or the account.
    let (status, refused) = create_key(&app, &secret, upload_scope()).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("user-token-required"))
    );

    let (status, _) = with(&app, reqwest::Method::DELETE, &format!("/user/keys/{id}"), &user).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = with(&app, reqwest::Method::DELETE, &format!("/user/keys/{id}"), &user).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "revoked once");
    for path in [
        "/user/check",
        "/user/authorize?service=os.datastore",
        "/search/package",
    ] {
        let (status, body) = with(&app, reqwest::Method::GET, path, &secret).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    let (status, body) = with(&app, reqwest::Method::GET, "/datastore/info", &token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked key's permission token: {body}"
    );
    let (_, listed) = with(&app, reqwest::Method::GET, "/user/keys", &user).await;
    assert_eq!(listed["keys"][0]["live"], false);
    assert!(listed["keys"][0]["revoked_at"].is_string());
}

#[tokio::test]
async fn keys_are_made_listed_used_and_revoked_on_sqlite() {
    keys_are_made_listed_used_and_revoked(Backend::Sqlite).await;
}

#[tokio::test]
async fn keys_are_made_listed_used_and_revoked_on_postgres() {
    keys_are_made_listed_used_and_revoked(Backend::Postgres).await;
}

async fn wrong_revoked_and_expired_keys_get_one_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.log_in("ada@example.org").await;
    let (_, revoked) = create_key(&app, &user, upload_scope()).await;
    let mut expiring = upload_scope();
    expiring["expires_in"] = json!("1s");
    let (status, expired) = create_key(&app, &user, expiring).await;
    assert_eq!(status, StatusCode::CREATED, "{expired}");
    let (_, live) = create_key(&app, &user, upload_scope()).await;
    let revoked_id = revoked["id"].as_str().unwrap();
    with(
        &app,
        reqwest::Method::DELETE,
        &format!("/user/keys/{revoked_id}"),
        &user,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let live_secret = live["secret"].as_str().unwrap();
    let wrong_secret = format!("{}x", &live_secret[..live_secret.len() - 1]);
    let mut answers = Vec::new();
    for secret in [
        revoked["secret"].as_str().unwrap(),
        expired["secret"].as_str().unwrap(),
        wrong_secret.as_str(),
        "cnd_0123456789ab_nothing",
        "cnd_",
    ] {
        let answer = with(
            &app,
            reqwest::Method::GET,
            "/user/authorize?service=os.datastore",
            secret,
        )
        .await;
        answers.push(answer);
    }
    let first = answers[0].clone();
    assert_eq!(first.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        first.1,
        json!({"error": {"code": "invalid-api-key", "message": "the API key is not valid"}})
    );
    assert!(answers.iter().all(|answer| *answer == first), "{answers:?}");
    let (status, _) = with(&app, reqwest::Method::GET, "/user/check", live_secret).await;
    assert_eq!(status, StatusCode::OK, "the live key still works");
}

#[tokio::test]
async fn wrong_revoked_and_expired_keys_get_one_answer_on_sqlite() {
    wrong_revoked_and_expired_keys_get_one_answer(Backend::Sqlite).await;
}

#[tokio::test]
async fn wrong_revoked_and_expired_keys_get_one_answer_on_postgres() {
    wrong_revoked_and_expired_keys_get_one_answer(Backend::Postgres).await;
}

async fn a_key_holds_no_more_than_its_scope_and_its_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.log_in("ada@example.org").await;
    // Ada has no package-admin: no key of hers can.
    let beyond = json!({"name": "admin", "scope": {"os.datastore": ["datapackage-upload", "package-admin"]}});
    let (status, refused) = create_key(&app, &user, beyond).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "beyond-permissions");
    for (body, code) in [
        (
            json!({"name": "", "scope": {"os.datastore": ["datapackage-upload"]}}),
            "invalid-name",
        ),
        (json!({"name": "x", "scope": {}}), "invalid-scope"),
        (
            json!({"name": "x", "scope": {"os.datastore": ["datapackage-upload"]}, "expires_in": "soon"}),
            "invalid-expiry",
        ),
    ] {
        let (status, refused) = create_key(&app, &user, body.clone()).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}"
        );
    }

    // Ada is made an admin and makes an upload-only key: the key's tokens carry upload only.
    let ada = userid_of(&conductor_tests::packages::permission_token(&app, "ada@example.org").await);
    let grant = json!({"package-admin": true}).as_object().cloned().unwrap();
    let repositories = conductor_store::Database::open(
        &conductor_store::DatabaseUrl::parse(&app.database_url).unwrap(),
        1,
    )
    .unwrap();
    let permissions =
        conductor_permissions::PermissionService::new(repositories.repositories().permissions.clone());
    let grantee = conductor_core::Grantee::User(conductor_core::UserId::parse(&ada).unwrap());
    permissions.grant(&grantee, "os.datastore", grant).await.unwrap();
    let (_, created) = create_key(&app, &user, upload_scope()).await;
    let secret = created["secret"].as_str().unwrap();
    let (_, granted) = with(
        &app,
        reqwest::Method::GET,
        "/user/authorize?service=os.datastore",
        secret,
    )
    .await;
    assert_eq!(
        granted["permissions"],
        json!({"datapackage-upload": true}),
        "the scope narrows"
    );
    let (_, other) = with(
        &app,
        reqwest::Method::GET,
        "/user/authorize?service=os.admin",
        secret,
    )
    .await;
    assert_eq!(
        other["permissions"],
        json!({}),
        "a service outside the scope grants nothing"
    );

    // Ada loses upload: her key loses it too (within the permissions' one-second cache).
    let taken = json!({"datapackage-upload": false}).as_object().cloned().unwrap();
    permissions.grant(&grantee, "os.datastore", taken).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (_, granted) = with(
        &app,
        reqwest::Method::GET,
        "/user/authorize?service=os.datastore",
        secret,
    )
    .await;
    assert_eq!(granted["permissions"], json!({}), "{granted}");
}

#[tokio::test]
async fn a_key_holds_no_more_than_its_scope_and_its_owner_on_sqlite() {
    a_key_holds_no_more_than_its_scope_and_its_owner(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_key_holds_no_more_than_its_scope_and_its_owner_on_postgres() {
    a_key_holds_no_more_than_its_scope_and_its_owner(Backend::Postgres).await;
}

/// A second gateway on `first`'s database with its signing key, as replicas share one.
async fn replica_of(first: &TestApp, customize: impl FnOnce(&mut conductor::Settings)) -> TestApp {
    spawn_on_url(&first.database_url, |settings| {
        customize(settings);
        settings.auth.keys.private_key_file = Some(first.data_dir().join("keys/private.pem"));
        settings.database.auto_migrate = false;
    })
    .await
}

async fn a_revocation_is_seen_by_another_gateway_at_once(backend: Backend) {
    let first = spawn_app(backend).await;
    let second = replica_of(&first, |_| {}).await;
    let user = first.log_in("ada@example.org").await;
    let (_, created) = create_key(&first, &user, upload_scope()).await;
    let secret = created["secret"].as_str().unwrap();
    let (status, _) = with(&second, reqwest::Method::GET, "/user/check", secret).await;
    assert_eq!(status, StatusCode::OK, "the other gateway takes the key");
    let id = created["id"].as_str().unwrap();
    with(
        &first,
        reqwest::Method::DELETE,
        &format!("/user/keys/{id}"),
        &user,
    )
    .await;
    let (status, _) = with(&second, reqwest::Method::GET, "/user/check", secret).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "and refuses it as soon as it is revoked"
    );
}

#[tokio::test]
async fn a_revocation_is_seen_by_another_gateway_at_once_on_sqlite() {
    a_revocation_is_seen_by_another_gateway_at_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_revocation_is_seen_by_another_gateway_at_once_on_postgres() {
    a_revocation_is_seen_by_another_gateway_at_once(Backend::Postgres).await;
}

#[tokio::test]
async fn key_uses_and_failed_attempts_are_rate_limited() {
    let app = spawn_app_with(Backend::Sqlite, |settings| {
        settings.auth.api_keys.uses_per_minute = 3;
        settings.auth.api_keys.failed_attempts_per_minute = 2;
    })
    .await;
    let user = app.log_in("ada@example.org").await;
    let (_, created) = create_key(&app, &user, upload_scope()).await;
    let secret = created["secret"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(
            with(&app, reqwest::Method::GET, "/user/check", secret).await.0,
            StatusCode::OK
        );
    }
    let response = app
        .client
        .get(app.url("/user/check"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "too-many-requests"
    );

    // Another key of the same user has a count of its own; two failures from this address block it too.
    let (_, other) = create_key(&app, &user, upload_scope()).await;
    let other = other["secret"].as_str().unwrap();
    assert_eq!(
        with(&app, reqwest::Method::GET, "/user/check", other).await.0,
        StatusCode::OK
    );
    for _ in 0..2 {
        let (status, _) = with(
            &app,
            reqwest::Method::GET,
            "/user/check",
            "cnd_0123456789ab_guess",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = with(&app, reqwest::Method::GET, "/user/check", other).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "an address that guessed too often waits"
    );
    // User tokens are not held up by a key's limits.
    assert_eq!(
        with(&app, reqwest::Method::GET, "/user/check", &user).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn replicas_on_redis_count_a_keys_uses_together() {
    let redis = |settings: &mut conductor::Settings| {
        settings.cache.redis_url = Some(conductor::settings::ConnectionUrl::new(
            "redis://127.0.0.1:6379/0",
        ));
        settings.auth.api_keys.uses_per_minute = 3;
    };
    let first = spawn_app_with(Backend::Postgres, redis).await;
    let second = replica_of(&first, redis).await;
    let user = first.log_in("ada@example.org").await;
    let (_, created) = create_key(&first, &user, upload_scope()).await;
    let secret = created["secret"].as_str().unwrap();
    for app in [&first, &second, &first] {
        assert_eq!(
            with(app, reqwest::Method::GET, "/user/check", secret).await.0,
            StatusCode::OK
        );
    }
    let (status, _) = with(&second, reqwest::Method::GET, "/user/check", secret).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the fourth use, on either replica, is over the limit"
    );
}
