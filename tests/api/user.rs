//! `/user/*`, the published keys and the dev login, on every backend, including each row of DESIGN §2's token
//! table for these endpoints.

use std::time::Duration;

use conductor_auth::Verifier;
use conductor_core::{Clock, SystemClock, UserId};
use conductor_tests::{Backend, TestApp, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn check(app: &TestApp, token: Option<&str>) -> Value {
    let path = match token {
        Some(token) => format!("/user/check?jwt={token}&next={}", app.base_url),
        None => format!("/user/check?next={}", app.base_url),
    };
    let (status, body) = app.get_json(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Posts the `dev` provider's form for ada@example.test, returning to `next`.
async fn dev_login(app: &TestApp, next: &str) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/dev/login"))
        .form(&[("email", "ada@example.test"), ("next", next)])
        .send()
        .await
        .unwrap()
}

async fn authorize(app: &TestApp, token: &str, service: &str) -> (StatusCode, Value) {
    app.get_json(&format!("/user/authorize?jwt={token}&service={service}"))
        .await
}

#[tokio::test]
async fn check_lists_providers_or_the_profile() {
    for backend in Backend::ALL {
        let app = spawn_app(backend).await;
        let body = check(&app, None).await;
        assert_eq!(body["authenticated"], false, "{backend:?}");
        let url = body["providers"]["dev"]["url"].as_str().unwrap();
        assert_eq!(
            url,
            format!(
                "{}oauth/dev/login?next={}",
                app.base_url,
                urlencode(app.base_url.as_str())
            )
        );

        let token = app.log_in("Ada.Lovelace@Example.test").await;
        let body = check(&app, Some(&token)).await;
        assert_eq!(body["authenticated"], true, "{backend:?}");
        let profile = &body["profile"];
        let idhash = UserId::from_email("ada.lovelace@example.test");
        assert_eq!(profile["idhash"], idhash.as_str());
        assert_eq!(profile["email"], "Ada.Lovelace@Example.test");
        assert_eq!(profile["name"], "Ada.Lovelace");
        assert_eq!(profile["id"], "dev:ada.lovelace@example.test");
        assert_eq!(profile["username"], Value::Null);
        assert!(profile.as_object().unwrap().contains_key("avatar_url"));

        // The same token in a header works too.
        let (_, body) = (StatusCode::OK, {
            let response = app
                .client
                .get(app.url("/user/check"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            response.json::<Value>().await.unwrap()
        });
        assert_eq!(body["authenticated"], true);
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn bad_tokens_get_the_original_answers() {
    for backend in Backend::ALL {
        let app = spawn_app(backend).await;
        let token = app.log_in("ada@example.test").await;
        let day = Duration::from_secs(86_400);
        let forger = app.forger(day, day);
        let ada = UserId::from_email("ada@example.test");
        let expired = forger
            .issue_user(&ada, SystemClock.now().minus(Duration::from_secs(3 * 86_400)))
            .unwrap();
        let permission = forger
            .issue_permission(&ada, "os.datastore", Default::default(), SystemClock.now())
            .unwrap();
        let (signed, _) = token.rsplit_once('.').unwrap();
        let tampered = format!("{signed}.AAAA");
        for bad in ["", "garbage", &expired, &permission, &tampered] {
            let body = check(&app, Some(bad)).await;
            assert_eq!(
                body["authenticated"], false,
                "{backend:?} /user/check with {bad:.20}"
            );
            assert!(body["providers"].is_object());
            let (status, body) = authorize(&app, bad, "os.datastore").await;
            assert_eq!(
                (status, body),
                (StatusCode::OK, json!({"permissions": {}})),
                "{backend:?} {bad:.20}"
            );
        }
        // A token for a user that no longer exists (never created here) is not authenticated either.
        let ghost = forger
            .issue_user(&UserId::from_email("ghost@example.test"), SystemClock.now())
            .unwrap();
        assert_eq!(check(&app, Some(&ghost)).await["authenticated"], false);
    }
}

#[tokio::test]
async fn authorize_issues_a_permission_token_others_can_verify() {
    for backend in Backend::ALL {
        let app = spawn_app(backend).await;
        let token = app.log_in("ada@example.test").await;
        let (status, body) = authorize(&app, &token, "os.datastore").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["permissions"],
            json!({"datapackage-upload": true}),
            "the '*' default"
        );
        assert_eq!(body["service"], "os.datastore");
        assert_eq!(body["userid"], UserId::from_email("ada@example.test").as_str());
        let permission_token = body["token"].as_str().unwrap();

        // From the PEM, as a service of the original's era would.
        let pem = app.get("/user/public-key").await.text().await.unwrap();
        let verifier = Verifier::from_public_pem(&pem)
            .unwrap()
            .with_issuer(app.base_url.as_str());
        let claims = verifier
            .verify_permission(permission_token, "os.datastore", "datapackage-upload")
            .await
            .unwrap();
        assert_eq!(claims.userid, UserId::from_email("ada@example.test"));
        assert!(
            verifier
                .verify_permission(permission_token, "os.other", "datapackage-upload")
                .await
                .is_err()
        );
        assert!(
            verifier
                .verify_permission(permission_token, "os.datastore", "package-admin")
                .await
                .is_err()
        );
        assert!(
            verifier
                .verify_permission(&token, "os.datastore", "datapackage-upload")
                .await
                .is_err(),
            "user token"
        );

        // From the JWKS URL.
        let jwks = url::Url::parse(&app.url("/.well-known/jwks.json")).unwrap();
        let verifier = Verifier::from_jwks_url(jwks).await.unwrap();
        verifier
            .verify_permission(permission_token, "os.datastore", "datapackage-upload")
            .await
            .unwrap();
        assert_eq!(
            verifier.verify_user(&token).await.unwrap().userid,
            UserId::from_email("ada@example.test")
        );

        // Another service has no default grants.
        let (_, other) = authorize(&app, &token, "os.other").await;
        assert_eq!(other["permissions"], json!({}));
        let (status, body) = app.get_json(&format!("/user/authorize?jwt={token}")).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::BAD_REQUEST, &json!("missing-service"))
        );
        let (status, _) = authorize(&app, &token, "Not%20A%20Service").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn username_is_set_once_and_unique() {
    for backend in Backend::ALL {
        let app = spawn_app(backend).await;
        let ada = app.log_in("ada@example.test").await;
        let bob = app.log_in("bob@example.test").await;
        let update = |token: String, username: &'static str| {
            let url = app.url(&format!("/user/update?jwt={token}&username={username}"));
            let client = app.client.clone();
            async move {
                let response = client.post(url).send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            }
        };
        assert_eq!(
            update(ada.clone(), "Ada_L").await,
            (StatusCode::OK, json!({"success": true})),
            "{backend:?}"
        );
        assert_eq!(check(&app, Some(&ada)).await["profile"]["username"], "ada_l");
        let (status, body) = update(ada.clone(), "again").await;
        assert_eq!(
            (status, body["success"].clone()),
            (StatusCode::CONFLICT, json!(false))
        );
        assert!(body["error"].as_str().unwrap().contains("only once"));
        let (status, body) = update(bob.clone(), "ada_l").await;
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (StatusCode::CONFLICT, "that username is taken")
        );
        let (status, body) = update(bob.clone(), "x").await;
        assert_eq!(
            (status, body["success"].clone()),
            (StatusCode::BAD_REQUEST, json!(false))
        );
        let (status, body) = update("garbage".into(), "valid_name").await;
        assert_eq!(
            (status, body["success"].clone()),
            (StatusCode::UNAUTHORIZED, json!(false))
        );
        // The form body works like the query, as the original read request.values.
        let response = app
            .client
            .post(app.url("/user/update"))
            .form(&[
                ("jwt", bob.as_str()),
                ("username", "bob"),
                ("email", "ignored@example.test"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            check(&app, Some(&bob)).await["profile"]["email"],
            "bob@example.test"
        );
    }
}

#[tokio::test]
async fn keys_are_published_as_pem_and_jwks() {
    for backend in Backend::ALL {
        keys_are_published_on(spawn_app(backend).await).await;
    }
}

async fn keys_are_published_on(app: TestApp) {
    let response = app.get("/user/public-key").await;
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let pem = response.text().await.unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));

    let response = app.get("/.well-known/jwks.json").await;
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let jwks: Value = response.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    let token = app.log_in("ada@example.test").await;
    let header = jsonwebtoken_header(&token);
    assert_eq!(header["kid"], key["kid"], "tokens name the published key");
    assert_eq!(header["alg"], "RS256");
}

fn jsonwebtoken_header(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_auth_library_is_served_with_the_base_url() {
    for backend in Backend::ALL {
        library_is_served_on(spawn_app(backend).await).await;
    }
}

async fn library_is_served_on(app: TestApp) {
    for (path, marker) in [("/user/lib", "angular.module"), ("/user/lib.mjs", "export")] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "application/javascript; charset=utf-8"
        );
        assert!(
            response.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        let source = response.text().await.unwrap();
        assert!(source.contains(marker), "{path}");
        assert!(
            source.contains(app.base_url.as_str().trim_end_matches('/')),
            "{path} has the base URL"
        );
        assert!(
            !source.contains("'__CONDUCTOR_BASE_URL__'"),
            "{path} placeholder replaced"
        );
    }
    let module = app
        .client
        .get(app.url("/user/lib.mjs"))
        .header("Origin", "https://elsewhere.example")
        .send()
        .await;
    assert_eq!(module.unwrap().headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn next_outside_the_allow_list_is_refused_before_any_redirect() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.auth.redirect_allowlist.push("https://allowed.example/".into());
    })
    .await;
    for next in [
        "https://allowed.example.evil.test/",
        "https://allowed.example@evil.test/",
        "//evil.test/",
        "javascript:alert(1)",
        "https://evil.test/",
    ] {
        let response = dev_login(&app, next).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{next}");
        assert!(response.headers().get("location").is_none(), "{next}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    let response = dev_login(&app, "https://allowed.example/x").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("https://allowed.example/x#jwt=")
    );
}

#[tokio::test]
async fn the_dev_provider_is_off_unless_configured() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.auth.dev_login = false).await;
    assert!(check(&app, None).await["providers"].get("dev").is_none());
    let response = app.get("/oauth/dev/login?email=ada@example.test").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = dev_login(&app, app.base_url.as_str()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_in_query_mode_puts_the_token_in_the_query() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.auth.token_in_query = true).await;
    let next = format!("{}logged-in?x=1", app.base_url);
    let response = dev_login(&app, &next).await;
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{next}&jwt=")), "{location}");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn the_web_client_provider_is_also_listed_as_google() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.auth.web_client_provider = Some("dev".into());
    })
    .await;
    let providers = &check(&app, None).await["providers"];
    assert_eq!(providers["google"], providers["dev"], "{providers}");
    assert!(
        providers["google"]["url"]
            .as_str()
            .unwrap()
            .contains("/oauth/dev/login")
    );
}

#[tokio::test]
async fn the_base_url_is_always_an_allowed_next() {
    // A deployment whose base URL is not the default, with the default allow-list.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.auth.redirect_allowlist = vec!["http://127.0.0.1:8000/".into()];
    })
    .await;
    let next = format!("{}viewer/", app.base_url);
    let response = dev_login(&app, &next).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{next}#jwt=")), "{location}");
}
