//! `/user/*` and the published keys: compatible with the original's answers (DESIGN §2).

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use serde_json::Value;

use crate::credentials::{Caller, OptionalUser};
use crate::error::{ApiError, ErrorAnswer, SuccessFailure, success_shape};
use crate::routes::wire::{
    Authenticated, AuthorizeAnswer, Authorized, CheckAnswer, NoPermissions, NotAuthenticated, ProfileAnswer,
    Success,
};
use crate::services::auth::Identity;

/// The description of these routes, for `/openapi.json`.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(check, authorize, update, public_key, jwks, lib_js, lib_mjs))]
pub struct Described;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/user/check").get(check))
        .service(web::resource("/user/authorize").get(authorize))
        .service(
            web::resource("/user/update")
                .wrap(from_fn(success_shape))
                .post(update),
        )
        .service(web::resource("/user/public-key").get(public_key))
        .service(web::resource("/user/lib").get(lib_js))
        .service(web::resource("/user/lib.mjs").get(lib_mjs))
        .service(web::resource("/.well-known/jwks.json").get(jwks));
}

/// Who the user token belongs to, or where to log in. A missing, bad or expired token is "not authenticated".
#[utoipa::path(get, path = "/user/check", tag = "user",
    params(("next" = Option<String>, Query, description = "Where the login URLs return to (default: the base URL)")),
    responses((status = 200, body = CheckAnswer)),
    security((), ("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn check(caller: OptionalUser, identity: web::Data<Identity>) -> Result<HttpResponse, ApiError> {
    let profile = match caller.caller() {
        Some(caller) => identity.accounts.profile(caller.userid()).await?,
        None => None,
    };
    let answer = match profile {
        Some(profile) => CheckAnswer::Authenticated(Authenticated {
            authenticated: true,
            profile: ProfileAnswer {
                id: profile.provider_id,
                name: profile.name,
                email: profile.email,
                avatar_url: profile.avatar_url,
                idhash: profile.idhash.to_string(),
                username: profile.username,
            },
        }),
        None => {
            let next = caller.params.get("next").unwrap_or(identity.base_url.as_str());
            CheckAnswer::NotAuthenticated(NotAuthenticated {
                authenticated: false,
                providers: identity.login_providers(next),
            })
        }
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// A permission token for `service`. A bad user token answers 200 `{"permissions": {}}`, as the original did.
#[utoipa::path(get, path = "/user/authorize", tag = "user", operation_id = "user_authorize",
    params(("service" = String, Query, description = "The service the token is for, e.g. `os.datastore`")),
    responses((status = 200, body = AuthorizeAnswer),
        (status = 400, description = "No `service`", body = ErrorAnswer)),
    security((), ("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn authorize(caller: OptionalUser, identity: web::Data<Identity>) -> Result<HttpResponse, ApiError> {
    let service = caller
        .params
        .get("service")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing-service", "the service parameter is required"))?;
    let granted = match caller.caller() {
        Some(Caller::User(user)) => identity.accounts.authorize(user, service).await?,
        Some(Caller::Key(key)) => identity.api_keys.authorize(key, service).await?,
        None => {
            return Ok(
                HttpResponse::Ok().json(AuthorizeAnswer::NoPermissions(NoPermissions {
                    permissions: serde_json::Map::new(),
                })),
            );
        }
    };
    Ok(HttpResponse::Ok().json(AuthorizeAnswer::Authorized(Authorized {
        token: granted.token,
        userid: granted.userid.to_string(),
        permissions: granted.permissions,
        service: granted.service,
    })))
}

/// Sets the username, once. Other profile fields are ignored, as the original ignored them.
#[utoipa::path(post, path = "/user/update", tag = "user",
    params(("username" = String, Query, description = "3 to 40 of a-z, 0-9, `_` and `-` (also as a form field)")),
    responses((status = 200, body = Success),
        (status = 400, description = "No or an invalid username", body = SuccessFailure),
        (status = 401, description = "No valid user token", body = SuccessFailure),
        (status = 409, description = "Taken, or already set", body = SuccessFailure)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn update(caller: OptionalUser, identity: web::Data<Identity>) -> Result<HttpResponse, ApiError> {
    let username = caller
        .params
        .get("username")
        .ok_or_else(|| ApiError::bad_request("missing-username", "the username parameter is required"))?;
    let user = caller.user_token()?;
    identity.accounts.set_username(user, username).await?;
    Ok(HttpResponse::Ok().json(Success::YES))
}

fn cached(seconds: u32) -> CacheControl {
    CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(seconds)])
}

/// The current public key as PEM, for services that verify permission tokens (as the original served it).
#[utoipa::path(get, path = "/user/public-key", tag = "user",
    responses((status = 200, description = "The PEM", content_type = "text/plain", body = String)))]
async fn public_key(identity: web::Data<Identity>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(cached(300))
        .body(identity.accounts.tokens().keys().current().pem().to_owned())
}

/// The current and retired public keys. Cached briefly, so a key published ahead of use reaches verifiers.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "user",
    responses((status = 200, description = "An RFC 7517 key set", body = Object)))]
async fn jwks(identity: web::Data<Identity>) -> HttpResponse {
    let keys: Value = serde_json::to_value(identity.accounts.tokens().keys().jwks()).unwrap_or_default();
    HttpResponse::Ok().insert_header(cached(300)).json(keys)
}

/// The auth library for pages (a script that defines `authenticate`, `permission`, ...).
#[utoipa::path(get, path = "/user/lib", tag = "user",
    responses((status = 200, content_type = "application/javascript", body = String)))]
async fn lib_js(identity: web::Data<Identity>) -> HttpResponse {
    javascript(&identity.lib_js)
}

/// The auth library as an ES module, importable from any origin.
#[utoipa::path(get, path = "/user/lib.mjs", tag = "user",
    responses((status = 200, content_type = "application/javascript", body = String)))]
async fn lib_mjs(identity: web::Data<Identity>) -> HttpResponse {
    let mut response = javascript(&identity.lib_mjs);
    // Module scripts are fetched with CORS: any page may import this public, credential-free library.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    response
}

fn javascript(source: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header(cached(3600))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(source.to_owned())
}
