//! The credentials a request carries, read one way for every route: the token (`Authorization: Bearer`, the
//! `Auth-Token` header or the `jwt` parameter) and a verified permission token.

use actix_web::HttpRequest;
use actix_web::http::header;
use conductor_auth::PermissionClaims;

use crate::error::ApiError;
use crate::params::Params;
use crate::services::auth::Identity;

/// The request's token: `Authorization: Bearer`, `Auth-Token`, or the `jwt` parameter.
pub fn token<'a>(request: &'a HttpRequest, params: &'a Params) -> Option<&'a str> {
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    conductor_auth::request_token(
        header(header::AUTHORIZATION),
        header(header::HeaderName::from_static("auth-token")),
        params.get("jwt"),
    )
}

/// The request's permission token, verified: 401 when it is missing or does not verify as one.
pub fn permission(
    request: &HttpRequest,
    params: &Params,
    identity: &Identity,
) -> Result<PermissionClaims, ApiError> {
    let token =
        token(request, params).ok_or_else(|| ApiError::unauthorized("a permission token is required"))?;
    identity
        .accounts
        .tokens()
        .verify_permission(token, identity.clock.now())
        .map_err(|e| ApiError::unauthorized(format!("the permission token was refused: {e}")))
}
