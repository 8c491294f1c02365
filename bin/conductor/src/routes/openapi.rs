//! The API's description: OpenAPI 3.1 generated from the handlers' annotations and the wire types, served at
//! `/openapi.json`, and the page that renders it at `/docs` (Swagger UI, its assets inside the binary).

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Server};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ErrorAnswer, SuccessFailure, UploadFailure};
use crate::routes::{datastore, health, home, keys, oauth, package, search, user};

const DESCRIPTION: &str = "\
Identity and access, signed uploads to the datastore, loading fiscal data packages and package search for \
OpenSpending, wire-compatible with the original OS Conductor.

**Tokens.** A *user token* comes from a login (`/oauth/{provider}/login`, returning to `next` with `#jwt=`); \
`/user/authorize?service=os.datastore` turns it into a *permission token*, which the datastore and `/package/*` \
routes require. Either is sent as the `jwt` parameter, the `Auth-Token` header or `Authorization: Bearer`. \
A personal *API key* (`cnd_...`, made at `/user/keys`) is accepted wherever a user token is, for scripts; \
`/user/authorize` turns it into a permission token narrowed to the key's scope.

**Errors.** Most routes answer `{\"error\": {\"code\", \"message\"}}`. Where the original's clients read another \
shape it is kept: `{\"success\": false, \"error\"}` (`/user/update`, `/package/publish|delete|update_params|run-hooks`) \
and `{\"status\": \"fail\", \"error\"}` (`/package/upload`).

**JSONP.** Any JSON answer is wrapped as `callback(...)` with `application/javascript` when the request has a \
`callback` parameter (a JavaScript identifier path); downloads (`/datastore/files/...`) never are.";

/// The document's parts that no handler carries.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Conductor", description = DESCRIPTION, license(name = "MIT", identifier = "MIT")),
    components(schemas(ErrorAnswer, SuccessFailure, UploadFailure)),
    modifiers(&TokenSchemes),
    tags(
        (name = "user", description = "Who is logged in, permission tokens, the published keys and the auth library"),
        (name = "login", description = "OpenID Connect logins (browser redirects and pages)"),
        (name = "datastore", description = "Signed uploads, and the local datastore's files"),
        (name = "package", description = "Loading packages into the database and managing them"),
        (name = "search", description = "The package registry's search"),
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "docs", description = "This description"),
    ),
    paths(openapi_json),
)]
struct Common;

/// The three ways a token travels (DESIGN §2).
#[derive(Debug)]
struct TokenSchemes;

impl Modify for TokenSchemes {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jwt",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("jwt"))),
        );
        components.add_security_scheme(
            "auth_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("Auth-Token"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The whole description, for a service reached at `base_url`.
pub fn document(base_url: &url::Url, metrics_here: bool) -> Document {
    let mut document = Common::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    for part in [
        home::Described::openapi(),
        health::Described::openapi(),
        user::Described::openapi(),
        keys::Described::openapi(),
        oauth::Described::openapi(),
        datastore::Described::openapi(),
        search::Described::openapi(),
        package::Described::openapi(),
    ] {
        document.merge(part);
    }
    if !metrics_here {
        document.paths.paths.remove("/metrics");
    }
    document.servers = Some(vec![Server::new(base_url.as_str().trim_end_matches('/'))]);
    document
}

/// The description as JSON.
#[utoipa::path(get, path = "/openapi.json", tag = "docs",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
async fn openapi_json(document: web::Data<Described>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.json.clone())
}

/// The description, rendered once at start.
#[derive(Debug)]
pub struct Described {
    json: String,
}

/// `/openapi.json` and `/docs`.
pub fn configure(cfg: &mut web::ServiceConfig, document: &Document) {
    let json = serde_json::to_string(document).unwrap_or_else(|_| "{}".to_owned());
    cfg.app_data(web::Data::new(Described { json }))
        .service(web::resource("/openapi.json").get(openapi_json))
        .service(web::resource("/docs").get(docs_redirect))
        // The page fetches /openapi.json itself: no second copy of the document is served.
        .service(SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::from("/openapi.json")));
}

async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}
