//! `/user/*` and the published keys: compatible with the original's answers (DESIGN §2).

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::credentials::OptionalUser;
use crate::error::{ApiError, success_shape};
use crate::services::auth::Identity;

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
async fn check(caller: OptionalUser, identity: web::Data<Identity>) -> Result<HttpResponse, ApiError> {
    let profile = match caller.user() {
        Some(user) => identity.accounts.profile(user).await?,
        None => None,
    };
    if let Some(profile) = profile {
        return Ok(HttpResponse::Ok().json(json!({
            "authenticated": true,
            "profile": {
                "id": profile.provider_id,
                "name": profile.name,
                "email": profile.email,
                "avatar_url": profile.avatar_url,
                "idhash": profile.idhash,
                "username": profile.username,
            },
        })));
    }
    let next = caller.params.get("next").unwrap_or(identity.base_url.as_str());
    let providers = identity.login_providers(next);
    Ok(HttpResponse::Ok().json(json!({"authenticated": false, "providers": providers})))
}

/// A permission token for `service`. A bad user token answers 200 `{"permissions": {}}`, as the original did.
async fn authorize(caller: OptionalUser, identity: web::Data<Identity>) -> Result<HttpResponse, ApiError> {
    let service = caller
        .params
        .get("service")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing-service", "the service parameter is required"))?;
    let Some(user) = caller.user() else {
        return Ok(HttpResponse::Ok().json(json!({"permissions": {}})));
    };
    let granted = identity.accounts.authorize(user, service).await?;
    Ok(HttpResponse::Ok().json(json!({
        "token": granted.token,
        "userid": granted.userid,
        "permissions": granted.permissions,
        "service": granted.service,
    })))
}

/// Sets the username, once. Other profile fields are ignored, as the original ignored them.
async fn update(caller: OptionalUser, identity: web::Data<Identity>) -> Result<HttpResponse, ApiError> {
    let username = caller
        .params
        .get("username")
        .ok_or_else(|| ApiError::bad_request("missing-username", "the username parameter is required"))?;
    let user = caller.required()?;
    identity.accounts.set_username(user, username).await?;
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}

fn cached(seconds: u32) -> CacheControl {
    CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(seconds)])
}

/// The current public key as PEM, for services that verify permission tokens (as the original served it).
async fn public_key(identity: web::Data<Identity>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(cached(300))
        .body(identity.accounts.tokens().keys().current().pem().to_owned())
}

/// The current and retired public keys. Cached briefly, so a key published ahead of use reaches verifiers.
async fn jwks(identity: web::Data<Identity>) -> HttpResponse {
    let keys: Value = serde_json::to_value(identity.accounts.tokens().keys().jwks()).unwrap_or_default();
    HttpResponse::Ok().insert_header(cached(300)).json(keys)
}

async fn lib_js(identity: web::Data<Identity>) -> HttpResponse {
    javascript(&identity.lib_js)
}

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
