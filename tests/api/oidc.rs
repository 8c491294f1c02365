//! Login end to end against a real OpenID Connect provider (the npm `oidc-provider`).

use conductor::settings::{ProviderSettings, Secret};
use conductor_tests::oidc::{Browser, CLIENT_ID, CLIENT_SECRET, TestProvider};
use conductor_tests::{Backend, TestApp, free_port, spawn_app_with, spawn_on_url};
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

struct Setup {
    app: TestApp,
    _provider: TestProvider,
    next: String,
}

fn provider_settings(issuer: &Url) -> ProviderSettings {
    ProviderSettings {
        issuer_url: issuer.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(Secret::new(CLIENT_SECRET)),
        client_secret_file: None,
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
        display_name: Some("Test IdP".into()),
    }
}

/// A gateway with the test provider configured as `test`, on a port chosen first so the provider can be told
/// the callback URL.
async fn setup(backend: Backend, token_in_query: bool) -> Setup {
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}/");
    let provider =
        TestProvider::start(&[format!("{base}oauth/test/callback")]).expect("the test OIDC provider");
    let issuer = provider.issuer.clone();
    let app = spawn_app_with(backend, |s| {
        s.server.bind = format!("127.0.0.1:{port}").parse().unwrap();
        s.server.base_url = Url::parse(&base).unwrap();
        s.auth.redirect_allowlist = vec![base.clone()];
        s.auth.token_in_query = token_in_query;
        s.auth.providers.insert("test".into(), provider_settings(&issuer));
    })
    .await;
    Setup {
        app,
        _provider: provider,
        next: format!("{base}after-login?from=test"),
    }
}

/// The gateway's redirect to the provider, as the browser receives it.
async fn begin(app: &TestApp, browser: &Browser, next: &str) -> Url {
    let login = Url::parse_with_params(&app.url("/oauth/test/login"), [("next", next)]).unwrap();
    browser
        .step(&login)
        .await
        .unwrap()
        .expect("a redirect to the provider")
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn fragment_token(url: &Url) -> Option<String> {
    url::form_urlencoded::parse(url.fragment()?.as_bytes())
        .find(|(k, _)| k == "jwt")
        .map(|(_, v)| v.into_owned())
}

async fn profile(app: &TestApp, token: &str) -> Value {
    let (status, body) = app.get_json(&format!("/user/check?jwt={token}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["authenticated"], true, "{body}");
    body["profile"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_ends_on_next_with_a_token_check_accepts() {
    for backend in Backend::ALL {
        let setup = setup(backend, false).await;
        let browser = Browser::new();
        let authorize = begin(&setup.app, &browser, &setup.next).await;
        assert!(
            authorize.as_str().starts_with(setup._provider.issuer.as_str()),
            "{authorize}"
        );
        assert_eq!(
            query(&authorize, "code_challenge_method").as_deref(),
            Some("S256")
        );
        assert!(query(&authorize, "code_challenge").is_some_and(|c| c.len() >= 43));
        assert!(query(&authorize, "nonce").is_some_and(|n| n.len() >= 32));
        assert!(query(&authorize, "state").is_some_and(|s| s.len() >= 32));
        assert_eq!(query(&authorize, "client_id").as_deref(), Some(CLIENT_ID));

        let landed = browser
            .walk(authorize, "alice", &setup.next)
            .await
            .unwrap()
            .expect("back at next");
        assert_eq!(
            landed.query(),
            Some("from=test"),
            "the token is not in the query by default"
        );
        let token = fragment_token(&landed).expect("a token in the fragment");
        let profile = profile(&setup.app, &token).await;
        assert_eq!(profile["email"], "alice@example.test", "{backend:?}");
        assert_eq!(profile["name"], "Alice Example");
        assert_eq!(profile["id"], "test:alice");
        assert_eq!(profile["avatar_url"], "https://example.test/alice.png");
        assert_eq!(
            profile["idhash"],
            conductor_core::UserId::from_email("alice@example.test").as_str()
        );

        // The providers list offers it.
        let (_, check) = setup.app.get_json("/user/check").await;
        assert_eq!(check["providers"]["test"]["name"], "Test IdP");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_query_mode_the_token_reaches_next_in_the_query() {
    let setup = setup(Backend::Sqlite, true).await;
    let browser = Browser::new();
    let authorize = begin(&setup.app, &browser, &setup.next).await;
    let landed = browser
        .walk(authorize, "carol", &setup.next)
        .await
        .unwrap()
        .expect("back at next");
    let token = query(&landed, "jwt").expect("a token in the query");
    assert_eq!(query(&landed, "from").as_deref(), Some("test"));
    // The provider's mixed-case e-mail gives the same id as its lower-case form.
    let profile = profile(&setup.app, &token).await;
    assert_eq!(
        profile["idhash"],
        conductor_core::UserId::from_email("carol@example.test").as_str()
    );
}

/// Walks to the gateway's callback without following it: the URL the provider sends the browser to.
async fn callback_url(setup: &Setup, browser: &Browser, login: &str) -> Url {
    let authorize = begin(&setup.app, browser, &setup.next).await;
    let callback = format!("{}oauth/test/callback", setup.app.base_url);
    browser
        .walk(authorize, login, &callback)
        .await
        .unwrap()
        .expect("at the callback")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_state_fails_cleanly() {
    let setup = setup(Backend::Sqlite, false).await;
    let browser = Browser::new();
    let callback = callback_url(&setup, &browser, "alice").await;
    let first = browser
        .step(&callback)
        .await
        .unwrap()
        .expect("the first use logs in");
    assert!(first.as_str().starts_with(&setup.next));
    let replay = browser
        .step(&callback)
        .await
        .unwrap()
        .expect_err("the replay is refused");
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(
        replay.body.contains("expired or was already used"),
        "{}",
        replay.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_presented_by_another_browser_fails() {
    let setup = setup(Backend::Sqlite, false).await;
    let victim = Browser::new();
    let callback = callback_url(&setup, &victim, "alice").await;
    let attacker = Browser::new();
    let page = attacker.step(&callback).await.unwrap().expect_err("refused");
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("another browser"), "{}", page.body);
    // The state was spent by that attempt: the victim's own callback cannot be reused later either.
    let page = victim.step(&callback).await.unwrap().expect_err("spent");
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_nonce_fails() {
    let setup = setup(Backend::Sqlite, false).await;
    let browser = Browser::new();
    let authorize = begin(&setup.app, &browser, &setup.next).await;
    // The provider will put this nonce in the ID token; the gateway expects the one it stored.
    let tampered = Url::parse_with_params(
        authorize.as_str().split('?').next().unwrap(),
        authorize.query_pairs().map(|(k, v)| {
            if k == "nonce" {
                (k.into_owned(), "tampered-nonce".to_owned())
            } else {
                (k.into_owned(), v.into_owned())
            }
        }),
    )
    .unwrap();
    let page = browser
        .walk(tampered, "alice", &setup.next)
        .await
        .unwrap()
        .expect_err("refused");
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("could not be verified"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_email_is_refused_with_a_clear_page() {
    let setup = setup(Backend::Sqlite, false).await;
    let browser = Browser::new();
    let authorize = begin(&setup.app, &browser, &setup.next).await;
    let page = browser
        .walk(authorize, "bob", &setup.next)
        .await
        .unwrap()
        .expect_err("refused");
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body
            .contains("did not confirm that this e-mail address belongs to you"),
        "{}",
        page.body
    );
    let (_, check) = setup.app.get_json("/user/check").await;
    assert_eq!(check["authenticated"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_outside_the_allow_list_is_refused_before_leaving_for_the_provider() {
    let setup = setup(Backend::Sqlite, false).await;
    let browser = Browser::new();
    for next in [
        "https://evil.test/",
        "//evil.test/x",
        "javascript:alert(1)",
        "http://127.0.0.1.evil.test/",
    ] {
        let login = Url::parse_with_params(&setup.app.url("/oauth/test/login"), [("next", next)]).unwrap();
        let page = browser.step(&login).await.unwrap().expect_err("no redirect");
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{next}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_begun_on_one_replica_finishes_on_another() {
    // Two gateways behind one base URL, sharing the database and the signing key.
    let database = conductor_store::testing::TestDatabase::postgres().expect("PostgreSQL for tests");
    let keys = conductor_auth::KeySet::generate().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}/");
    let provider = TestProvider::start(&[format!("{base}oauth/test/callback")]).unwrap();
    let configure = |bind_port: u16| {
        let (base, issuer) = (base.clone(), provider.issuer.clone());
        let private_pem = secrecy::ExposeSecret::expose_secret(&keys.private_pem).to_owned();
        move |s: &mut conductor::Settings| {
            s.server.bind = format!("127.0.0.1:{bind_port}").parse().unwrap();
            s.server.base_url = Url::parse(&base).unwrap();
            s.auth.redirect_allowlist = vec![base.clone()];
            s.auth.keys.private_key_pem = Some(Secret::new(private_pem));
            s.auth.providers.insert("test".into(), provider_settings(&issuer));
        }
    };
    let first = spawn_on_url(database.url(), configure(port)).await;
    let second = spawn_on_url(database.url(), configure(free_port().unwrap())).await;
    for app in [&first, &second] {
        assert!(
            app.wait_for_readiness(StatusCode::OK, std::time::Duration::from_secs(30))
                .await
        );
    }

    let browser = Browser::new();
    let next = format!("{base}after");
    let authorize = begin(&first, &browser, &next).await;
    let callback = browser
        .walk(authorize, "alice", &format!("{base}oauth/test/callback"))
        .await
        .unwrap()
        .unwrap();
    // The load balancer sends the callback to the other replica.
    let mut on_second = callback.clone();
    on_second.set_port(Some(second.port)).unwrap();
    let landed = browser
        .step(&on_second)
        .await
        .unwrap()
        .expect("logged in on the second replica");
    let token = fragment_token(&landed).expect("a token");
    assert_eq!(profile(&first, &token).await["email"], "alice@example.test");
}

/// A binding cookie the browser already holds (one planted from a sibling subdomain, say) is never reused: the
/// login gets a fresh one, so the planter's copy cannot finish the victim's login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presented_binding_cookie_is_never_reused() {
    let setup = setup(Backend::Sqlite, false).await;
    let planted = "A".repeat(43);
    let login = Url::parse_with_params(&setup.app.url("/oauth/test/login"), [("next", &setup.next)]).unwrap();
    let response = setup
        .app
        .client
        .get(login)
        .header(
            "cookie",
            format!("{}={planted}", conductor_auth::oidc::BINDING_COOKIE),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let issued: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix(&format!("{}=", conductor_auth::oidc::BINDING_COOKIE)))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(issued.len(), 1, "one binding cookie is set");
    assert_ne!(issued[0], planted, "the presented cookie was reused");
    assert_eq!(issued[0].len(), 43);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_named_google_returns_to_the_original_google_callback() {
    // The original registered `<base>/oauth/google_callback` with Google: a provider named `google` must send
    // the browser there and finish the login there.
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}/");
    let provider =
        TestProvider::start(&[format!("{base}oauth/google_callback")]).expect("the test OIDC provider");
    let issuer = provider.issuer.clone();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.bind = format!("127.0.0.1:{port}").parse().unwrap();
        s.server.base_url = Url::parse(&base).unwrap();
        s.auth.redirect_allowlist = vec![base.clone()];
        s.auth
            .providers
            .insert("google".into(), provider_settings(&issuer));
    })
    .await;
    let browser = Browser::new();
    let next = format!("{base}after-login");
    let login = Url::parse_with_params(&app.url("/oauth/google/login"), [("next", next.as_str())]).unwrap();
    let authorize = browser
        .step(&login)
        .await
        .unwrap()
        .expect("a redirect to the provider");
    assert_eq!(
        query(&authorize, "redirect_uri").as_deref(),
        Some(format!("{base}oauth/google_callback").as_str())
    );
    let landed = browser
        .walk(authorize, "alice", &next)
        .await
        .unwrap()
        .expect("back at next, through /oauth/google_callback");
    let token = fragment_token(&landed).expect("a token in the fragment");
    assert_eq!(profile(&app, &token).await["id"], "google:alice");
    let (_, check) = app.get_json("/user/check").await;
    assert!(
        check["providers"]["google"]["url"]
            .as_str()
            .is_some_and(|url| url.starts_with(&format!("{base}oauth/google/login"))),
        "{check}"
    );
}
