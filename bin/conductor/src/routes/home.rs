//! `/`: what this service is, for a person (HTML) or a client that asks for JSON.

use actix_web::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::routes::pages::escape;
use crate::services::auth::Identity;

/// The description of these routes, for `/openapi.json`.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(home, logged_in, logged_in_script))]
pub struct Described;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(home))
        .service(web::resource("/logged-in").get(logged_in))
        .service(web::resource("/logged-in.mjs").get(logged_in_script));
}

/// `/` for clients that ask for JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct Home {
    #[schema(example = "conductor")]
    pub service: String,
    pub version: String,
    /// The API's description (OpenAPI 3.1).
    pub openapi: String,
    /// The page that renders it.
    pub docs: String,
    pub health: String,
    /// Each login provider's URL and name, as `/user/check` lists them.
    #[schema(value_type = Object)]
    pub login: serde_json::Map<String, serde_json::Value>,
}

/// What this service is and where to go: an HTML page, or JSON when the request prefers `application/json`.
#[utoipa::path(get, path = "/", tag = "docs",
    responses((status = 200,
        description = "A page for people, or JSON for clients that ask for it (`Accept: application/json`)",
        content((String = "text/html"), (Home = "application/json")))))]
async fn home(request: HttpRequest, identity: web::Data<Identity>) -> HttpResponse {
    let base = identity.base_url.as_str().trim_end_matches('/').to_owned();
    let link = |path: &str| format!("{base}{path}");
    let answer = Home {
        service: "conductor".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        openapi: link("/openapi.json"),
        docs: link("/docs/"),
        health: link("/healthz"),
        login: identity.login_providers(&link("/")),
    };
    if wants_json(&request) {
        return HttpResponse::Ok().json(answer);
    }
    page(&answer, identity.google_alias.is_some())
}

/// The page for people: what this is, the docs, the description, health and each login.
fn page(answer: &Home, google_is_an_alias: bool) -> HttpResponse {
    let logins: String = answer
        .login
        .iter()
        // `google` repeats the web clients' provider under the name they read: list it once.
        .filter(|(name, _)| name.as_str() != "google" || !google_is_an_alias)
        .filter_map(|(_, provider)| Some((provider["url"].as_str()?, provider["name"].as_str()?)))
        .map(|(url, name)| {
            format!(
                "<li><a href=\"{}\">Log in with {}</a></li>",
                escape(url),
                escape(name)
            )
        })
        .collect();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Conductor</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         li{{margin:.3rem 0}}</style></head><body><h1>Conductor</h1>\
         <p>OpenSpending's identity and access, datastore, package loading and search service (version {version}).</p>\
         <ul><li><a id=\"docs\" href=\"{docs}\">API documentation</a>: every endpoint, to read and to try</li>\
         <li><a href=\"{openapi}\">The OpenAPI description</a></li>\
         <li><a href=\"{health}\">Health</a></li>{logins}</ul></body></html>",
        version = escape(&answer.version),
        docs = escape(&answer.docs),
        openapi = escape(&answer.openapi),
        health = escape(&answer.health),
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((
            CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .body(html)
}

const LOGGED_IN_SCRIPT: &str = include_str!("../../assets/logged-in.mjs");

/// Where a login returns to by default: the page reads the token from the fragment (`#jwt=`, which never reaches
/// the server) with `/user/lib.mjs`, and shows who is logged in and the token to copy.
#[utoipa::path(get, path = "/logged-in", tag = "docs",
    responses((status = 200, description = "A page for people", content_type = "text/html", body = String)))]
async fn logged_in(identity: web::Data<Identity>) -> HttpResponse {
    let html = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Logged in · Conductor</title>\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
        <style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}\
        textarea{width:100%;height:7rem;font-family:monospace;font-size:.8rem}button{margin:.5rem .5rem 0 0}\
        dt{font-weight:600}</style>\
        <script type=\"module\" src=\"/logged-in.mjs\"></script></head><body><h1>Conductor</h1>\
        <p id=\"checking\">Checking your login…</p>\
        <section id=\"in\" hidden><p>You are logged in.</p><dl><dt>Name</dt><dd id=\"name\"></dd>\
        <dt>E-mail</dt><dd id=\"email\"></dd><dt>User id</dt><dd id=\"idhash\"></dd></dl>\
        <label for=\"token\">Your user token (send it as <code>Authorization: Bearer</code>):</label>\
        <textarea id=\"token\" readonly></textarea><button id=\"copy\" type=\"button\">Copy</button>\
        <button id=\"logout\" type=\"button\">Log out</button></section>\
        <section id=\"out\" hidden><p>You are not logged in.</p><ul id=\"providers\"></ul></section>\
        <section id=\"failed\" hidden><p>The login could not be checked: <span id=\"why\"></span></p></section>\
        <p><a href=\"/docs/\">API documentation</a></p></body></html>";
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        // The token is on this page: nothing but our own script, and no referrer.
        .insert_header((
            CONTENT_SECURITY_POLICY,
            // The library calls the configured base URL, which may be another spelling of this origin.
            format!(
                "default-src 'none'; script-src 'self'; connect-src 'self' {}; style-src 'unsafe-inline'",
                identity.base_url.origin().ascii_serialization()
            ),
        ))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .body(html)
}

/// `/logged-in`'s script.
#[utoipa::path(get, path = "/logged-in.mjs", tag = "docs",
    responses((status = 200, content_type = "application/javascript", body = String)))]
async fn logged_in_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(LOGGED_IN_SCRIPT)
}

/// Whether `Accept` ranks JSON above HTML (a browser's `text/html,...` does not; `curl -H 'Accept:
/// application/json'` does).
fn wants_json(request: &HttpRequest) -> bool {
    let accept = request
        .headers()
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let json = accept.find("application/json");
    let html = accept.find("text/html");
    match (json, html) {
        (Some(json), Some(html)) => json < html,
        (Some(_), None) => true,
        _ => false,
    }
}
