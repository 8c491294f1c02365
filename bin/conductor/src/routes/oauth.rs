//! The login flow's browser-facing end (DESIGN §5): `/oauth/<provider>/login`, the provider's callback, and the
//! `dev` provider. These answer a browser navigation, so errors are HTML pages, not JSON.

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse, web};
use conductor_auth::oidc::{BINDING_COOKIE, LOGIN_STATE_TTL, LoginError};
use conductor_auth::{AccountError, DEV_PROVIDER, deliver_token};
use url::Url;

use crate::params::Params;
use crate::routes::pages;
use crate::services::auth::Identity;

/// The description of these routes, for `/openapi.json`.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(login, dev_login_submit, google_callback, callback))]
pub struct Described;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/oauth/google_callback").get(google_callback))
        .service(
            web::resource("/oauth/{provider}/login")
                .get(login)
                .post(dev_login_submit),
        )
        .service(web::resource("/oauth/{provider}/callback").get(callback));
}

/// Starts a login: checks `next`, stores the state, sets a fresh binding cookie and sends the browser to the
/// provider. For the `dev` provider: shows its form (which posts to [`dev_login_submit`]).
#[utoipa::path(get, path = "/oauth/{provider}/login", tag = "login",
    params(("provider" = String, Path, description = "A configured provider, or `dev`"),
        ("next" = Option<String>, Query, description = "Where to return with the token, under auth.redirect_allowlist")),
    responses((status = 303, description = "To the provider; sets the login's binding cookie"),
        (status = 200, description = "The dev provider's form", content_type = "text/html", body = String),
        (status = 400, description = "A `next` not allowed", content_type = "text/html", body = String),
        (status = 404, description = "No such provider", content_type = "text/html", body = String)))]
async fn login(
    request: HttpRequest,
    provider: web::Path<String>,
    params: Params,
    identity: web::Data<Identity>,
) -> HttpResponse {
    let next = requested_next(&params, &identity);
    if provider.as_str() == DEV_PROVIDER && identity.dev_login {
        let checked = match identity.login.check_next(&next) {
            Ok(checked) => checked,
            Err(error) => return failure(&LoginError::BadNext(error)),
        };
        // A GET only shows the form: a link or an image tag must not log anybody in.
        return pages::dev_login_form(request.path(), checked.as_str());
    }
    // Every login gets a fresh binding: reusing a presented cookie would let a cookie planted from a sibling
    // subdomain bind the victim's login to the planter's browser.
    match identity.login.begin(&provider, &next, identity.clock.now()).await {
        Ok(begun) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, begun.authorization_url.as_str()))
            .insert_header(no_store())
            .cookie(binding_cookie(&identity, begun.binding))
            .finish(),
        Err(error) => failure(&error),
    }
}

/// The `dev` provider's form posts here.
/// The dev provider's form posts here: logs the e-mail in and returns to `next` with `#jwt=<token>`.
#[utoipa::path(post, path = "/oauth/{provider}/login", tag = "login",
    params(("provider" = String, Path, description = "`dev`")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`email`, optional `name` and `next`"),
    responses((status = 303, description = "To `next`, the token in the fragment"),
        (status = 400, description = "A bad e-mail or `next`", content_type = "text/html", body = String),
        (status = 404, description = "The dev provider is off here", content_type = "text/html", body = String)))]
async fn dev_login_submit(
    provider: web::Path<String>,
    params: Params,
    identity: web::Data<Identity>,
) -> HttpResponse {
    if provider.as_str() != DEV_PROVIDER || !identity.dev_login {
        return pages::login_error(StatusCode::NOT_FOUND, "There is no such login provider here.");
    }
    let next = match identity.login.check_next(&requested_next(&params, &identity)) {
        Ok(next) => next,
        Err(error) => return failure(&LoginError::BadNext(error)),
    };
    match params.get("email") {
        Some(email) => dev_log_in(&identity, email, params.get("name"), next).await,
        None => pages::login_error(StatusCode::BAD_REQUEST, "An e-mail address is required."),
    }
}

/// Where the login should return: `next`, or the base URL (checked by the caller against the allow-list).
fn requested_next(params: &Params, identity: &Identity) -> String {
    params
        .get("next")
        .unwrap_or(identity.base_url.as_str())
        .to_owned()
}

/// Logs in through the `dev` provider and returns to `next`, already checked against the allow-list.
async fn dev_log_in(identity: &Identity, email: &str, name: Option<&str>, next: Url) -> HttpResponse {
    let provider_id = format!("{DEV_PROVIDER}:{}", email.trim().to_lowercase());
    match identity
        .accounts
        .log_in_email(email, name, None, provider_id)
        .await
    {
        Ok((_, token)) => to_next(identity, next, &token),
        Err(error) => account_failure(error),
    }
}

/// The `google` provider's callback, at the redirect URI the original registered with Google.
#[utoipa::path(get, path = "/oauth/google_callback", tag = "login",
    params(("state" = String, Query), ("code" = String, Query)),
    responses((status = 303, description = "To `next`, the token in the fragment (or the query: auth.token_in_query)"),
        (status = 400, description = "A bad or replayed state, or the provider refused", content_type = "text/html", body = String),
        (status = 404, description = "No `google` provider is configured", content_type = "text/html", body = String)))]
async fn google_callback(
    request: HttpRequest,
    params: Params,
    identity: web::Data<Identity>,
) -> HttpResponse {
    finish(&request, "google", &params, &identity).await
}

/// A provider's callback: checks state, nonce and PKCE, logs the verified e-mail in, returns to `next`.
#[utoipa::path(get, path = "/oauth/{provider}/callback", tag = "login",
    params(("provider" = String, Path), ("state" = String, Query), ("code" = String, Query)),
    responses((status = 303, description = "To `next`, the token in the fragment (or the query: auth.token_in_query)"),
        (status = 400, description = "A bad or replayed state, or the provider refused", content_type = "text/html", body = String),
        (status = 404, description = "No such provider", content_type = "text/html", body = String)))]
async fn callback(
    request: HttpRequest,
    provider: web::Path<String>,
    params: Params,
    identity: web::Data<Identity>,
) -> HttpResponse {
    finish(&request, &provider, &params, &identity).await
}

/// The provider's redirect back: redeem the state, verify the login, log the user in and go to `next`.
async fn finish(request: &HttpRequest, provider: &str, params: &Params, identity: &Identity) -> HttpResponse {
    if let Some(error) = params.get("error") {
        let detail = params.get("error_description").unwrap_or(error);
        return failure(&LoginError::ProviderRefused(detail.chars().take(200).collect()));
    }
    let (Some(state), Some(code)) = (params.get("state"), params.get("code")) else {
        return failure(&LoginError::UnknownState);
    };
    let binding = request.cookie(BINDING_COOKIE).map(|c| c.value().to_owned());
    let finished = match identity
        .login
        .finish(provider, state, code, binding.as_deref(), identity.clock.now())
        .await
    {
        Ok(finished) => finished,
        Err(error) => return failure(&error),
    };
    match identity.accounts.log_in(&finished.identity).await {
        Ok((profile, token)) => {
            tracing::info!(user = %profile.idhash, provider, "logged in");
            to_next(identity, finished.next, &token)
        }
        Err(error) => account_failure(error),
    }
}

/// 303 to `next` with the token in the fragment (or query), no referrer, and the binding cookie cleared.
fn to_next(identity: &Identity, next: Url, token: &str) -> HttpResponse {
    let mut clear = binding_cookie(identity, String::new());
    clear.make_removal();
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            deliver_token(next, token, identity.token_in_query).as_str(),
        ))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(no_store())
        .cookie(clear)
        .finish()
}

fn binding_cookie(identity: &Identity, value: String) -> Cookie<'static> {
    Cookie::build(BINDING_COOKIE, value)
        .path("/oauth/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(identity.secure_cookies)
        .max_age(CookieDuration::seconds(
            i64::try_from(LOGIN_STATE_TTL.as_secs()).unwrap_or(600),
        ))
        .finish()
}

fn no_store() -> CacheControl {
    CacheControl(vec![CacheDirective::NoStore])
}

fn failure(error: &LoginError) -> HttpResponse {
    let status = match error {
        LoginError::UnknownProvider(_) => StatusCode::NOT_FOUND,
        LoginError::BadNext(_)
        | LoginError::UnknownState
        | LoginError::WrongBrowser
        | LoginError::WrongProvider
        | LoginError::InvalidIdToken(_) => StatusCode::BAD_REQUEST,
        LoginError::ProviderRefused(_) | LoginError::EmailNotVerified => StatusCode::FORBIDDEN,
        LoginError::Provider(_) => StatusCode::BAD_GATEWAY,
        LoginError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    tracing::warn!(%error, status = status.as_u16(), "login refused");
    let message = match error {
        LoginError::Provider(_) => {
            "The login provider could not be reached or answered wrongly. Try again later.".to_owned()
        }
        LoginError::Store(_) => "The service is unavailable. Try again shortly.".to_owned(),
        other => other.to_string(),
    };
    pages::login_error(status, &message)
}

fn account_failure(error: AccountError) -> HttpResponse {
    tracing::warn!(%error, "login could not be completed");
    match error {
        AccountError::InvalidEmail => {
            pages::login_error(StatusCode::BAD_REQUEST, "That is not a usable e-mail address.")
        }
        _ => pages::login_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The login could not be completed. Try again shortly.",
        ),
    }
}
