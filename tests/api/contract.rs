//! The API's description against the gateway that serves it: valid OpenAPI 3.1 by openapi-spec-validator's own
//! reading, every described operation answered by a route, every route the gateway registers described, and `/`
//! pointing people and clients at it.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use conductor_tests::{Backend, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Every route the gateway registers, as `METHOD path` with its parameters as the description writes them:
/// the index of `routes::configure` and the datastore's file scope. A route added without its description
/// fails `every_route_is_described_and_every_description_routes`.
const ROUTES: &[&str] = &[
    "GET /",
    "GET /openapi.json",
    "GET /logged-in",
    "GET /logged-in.mjs",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /user/check",
    "GET /user/authorize",
    "POST /user/update",
    "GET /user/keys",
    "POST /user/keys",
    "DELETE /user/keys/{id}",
    "GET /user/public-key",
    "GET /user/lib",
    "GET /user/lib.mjs",
    "GET /.well-known/jwks.json",
    "GET /oauth/{provider}/login",
    "POST /oauth/{provider}/login",
    "GET /oauth/{provider}/callback",
    "GET /oauth/google_callback",
    "POST /datastore/",
    "POST /datastore/authorize",
    "GET /datastore/info",
    "PUT /datastore/files/{key}",
    "GET /datastore/files/{key}",
    "HEAD /datastore/files/{key}",
    "GET /search/{kind}",
    "POST /package/upload",
    "GET /package/status",
    "POST /package/publish",
    "POST /package/delete",
    "POST /package/update_params",
    "POST /package/run-hooks",
    "GET /package/stats",
];

async fn description(app: &conductor_tests::TestApp) -> Value {
    let (status, document) = app.get_json("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    document
}

fn operations(document: &Value) -> BTreeSet<String> {
    document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_description_is_valid_openapi_3_1() {
    let app = spawn_app(Backend::Sqlite).await;
    let document = description(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    let python = std::env::var_os("CONDUCTOR_TEST_PYTHON").unwrap_or_else(|| "python3".into());
    let mut validator = Command::new(python)
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))\nprint('valid')",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test venv's Python (scripts/test installs openapi-spec-validator)");
    validator
        .stdin
        .take()
        .unwrap()
        .write_all(document.to_string().as_bytes())
        .unwrap();
    let output = validator.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the description:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for scheme in ["jwt", "auth_token", "bearer"] {
        assert!(
            document["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
    for shape in ["ErrorAnswer", "SuccessFailure", "UploadFailure"] {
        assert!(document["components"]["schemas"][shape].is_object(), "{shape}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_described_and_every_description_routes() {
    let app = spawn_app(Backend::Sqlite).await;
    let described = operations(&description(&app).await);
    let registered: BTreeSet<String> = ROUTES.iter().map(|route| (*route).to_owned()).collect();
    assert_eq!(
        described.difference(&registered).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "described but not in the route index"
    );
    assert_eq!(
        registered.difference(&described).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routed but not described"
    );
    // Each described operation reaches a handler: not the gateway's "no route" answer, not 405.
    for operation in &described {
        let (method, path) = operation.split_once(' ').unwrap();
        let concrete = path
            .replace("{kind}", "package")
            .replace("{provider}", "dev")
            .replace("{key}", "owner/package/datapackage.json")
            .replace("{id}", "0123456789ab");
        let response = app
            .client
            .request(Method::from_bytes(method.as_bytes()).unwrap(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{operation}");
        let body = response.text().await.unwrap_or_default();
        assert!(
            !body.contains("no route for"),
            "{operation} fell through to the default service: {status} {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_page_points_people_and_clients_to_the_description() {
    let app = spawn_app(Backend::Sqlite).await;
    let page = app
        .client
        .get(app.url("/"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/docs/\"") && html.contains("/openapi.json"),
        "{html}"
    );
    let json = app
        .client
        .get(app.url("/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::OK);
    let answer: Value = json.json().await.unwrap();
    assert_eq!(answer["service"], "conductor");
    assert!(answer["docs"].as_str().unwrap().ends_with("/docs/"));
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "the docs page is Swagger UI"
    );
    let assets = app
        .client
        .get(app.url("/docs/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(assets.status(), StatusCode::OK, "its assets come from the binary");
}
