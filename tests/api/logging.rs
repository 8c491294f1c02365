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
    // An API key, made and used every way a credential travels, never shows either.
    let user = app.log_in("ada@example.org").await;
    let created: serde_json::Value = app
        .client
        .post(app.url("/user/keys"))
        .bearer_auth(&user)
        .json(&serde_json::json!({"name": "ci", "scope": {"os.datastore": ["datapackage-upload"]}}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let key = created["secret"].as_str().expect("a key").to_owned();
    let wrong = format!("{key}x");
    for credential in [&key, &wrong] {
        for request in [
            app.client
                .get(app.url(&format!("/user/authorize?service=os.datastore&jwt={credential}"))),
            app.client.get(app.url("/user/check")).bearer_auth(credential),
            app.client
                .get(app.url("/search/package"))
                .header("Auth-Token", credential.as_str()),
            app.client
                .get(app.url(&format!("/healthz?anything={credential}"))),
        ] {
            request.send().await.expect("answered");
        }
    }
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    drop(app);

    // On PostgreSQL, with a password in the database URL (the machine's server trusts local connections, so any
    // password works): the URL, the dev login's token in its Location and the login cookies stay out too.
    let database = conductor_store::testing::TestDatabase::postgres().expect("PostgreSQL for tests");
    let with_password = database
        .url()
        .replacen("postgres://postgres@", "postgres://postgres:DBPASSWORD@", 1);
    assert_ne!(
        with_password,
        database.url(),
        "a password was put in {}",
        database.url()
    );
    // A real provider, so the login's binding cookie is set (the dev form sets none).
    let port = conductor_tests::free_port().expect("a port");
    let base = format!("http://127.0.0.1:{port}/");
    let provider = conductor_tests::oidc::TestProvider::start(&[format!("{base}oauth/test/callback")])
        .expect("the test OIDC provider");
    let issuer = provider.issuer.clone();
    let app = conductor_tests::spawn_on_url(&with_password, |s| {
        s.server.bind = format!("127.0.0.1:{port}").parse().expect("an address");
        s.server.base_url = url::Url::parse(&base).expect("a URL");
        s.auth.redirect_allowlist = vec![base.clone()];
        s.auth.providers.insert(
            "test".into(),
            conductor::settings::ProviderSettings {
                issuer_url: issuer,
                client_id: conductor_tests::oidc::CLIENT_ID.into(),
                client_secret: Some(conductor::settings::Secret::new(
                    conductor_tests::oidc::CLIENT_SECRET,
                )),
                client_secret_file: None,
                scopes: vec!["openid".into(), "email".into()],
                display_name: None,
            },
        );
    })
    .await;
    assert!(
        app.wait_for_readiness(StatusCode::OK, std::time::Duration::from_secs(30))
            .await
    );
    let begun = app
        .client
        .get(app.url(&format!("/oauth/test/login?next={base}")))
        .send()
        .await
        .expect("answered");
    assert!(
        begun.status().is_redirection(),
        "a redirect to the provider: {}",
        begun.status()
    );
    let mut cookies: Vec<String> = begun
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            v.split(';')
                .next()?
                .split_once('=')
                .map(|(_, value)| value.to_owned())
        })
        .filter(|value| value.len() > 8)
        .collect();
    let issued = app.log_in("trace@example.org").await;
    let login = app
        .client
        .post(app.url("/oauth/dev/login"))
        .form(&[("email", "trace@example.org"), ("next", app.base_url.as_str())])
        .send()
        .await
        .expect("answered");
    cookies.extend(
        login
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| {
                v.to_str()
                    .ok()?
                    .split(';')
                    .next()?
                    .split_once('=')
                    .map(|(_, v)| v.to_owned())
            })
            .filter(|value| value.len() > 8),
    );
    app.client
        .get(app.url("/user/check"))
        .bearer_auth(&issued)
        .send()
        .await
        .expect("answered");
    drop(app);
    drop(provider);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let secret_part = &key[key.len() - 20..];
    let leaks: Vec<&str> = logs
        .lines()
        .filter(|line| {
            line.contains("SECRET")
                || line.contains(secret_part)
                || line.contains(&user[user.len() - 20..])
                || line.contains("DBPASSWORD")
                || line.contains(&issued[issued.len() - 20..])
                || cookies.iter().any(|cookie| line.contains(cookie.as_str()))
        })
        .collect();
    assert!(leaks.is_empty(), "secrets in the logs:\n{}", leaks.join("\n"));
    // The test can fail: the requests were logged, with their redacted targets.
    assert!(
        logs.contains("http.target=/healthz?jwt=[REDACTED]"),
        "request lines missing:\n{logs}"
    );
    assert!(logs.contains("X-Amz-Signature=[REDACTED]&X-Amz-Credential=[REDACTED]"));
    assert!(logs.contains("signature=[REDACTED]"));
    assert!(
        logs.contains("anything=[REDACTED]"),
        "a key is redacted whatever its parameter"
    );
    assert!(
        logs.contains("API key created"),
        "key events are logged, by id only"
    );
    assert!(
        logs.contains("backend=postgres"),
        "the PostgreSQL gateway logged too"
    );
    assert!(!cookies.is_empty(), "the login set cookies to look for");
}
