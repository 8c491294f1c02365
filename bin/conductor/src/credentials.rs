//! The credentials a request carries, read one way for every route: the token (`Authorization: Bearer`, the
//! `Auth-Token` header or the `jwt` parameter) and a verified permission token, which a handler asks for in its
//! signature ([`PermissionToken`]).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
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
fn permission(
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

/// A verified permission token and the request's parameters, as one extractor (the parameters are read once,
/// form body included): 401 when the request carries no token or one that does not verify.
#[derive(Debug)]
pub struct PermissionToken {
    pub claims: PermissionClaims,
    pub params: Params,
}

impl FromRequest for PermissionToken {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let params = Params::from_request(req, payload);
        let request = req.clone();
        Box::pin(async move {
            let params = params.await?;
            let identity = request
                .app_data::<web::Data<Identity>>()
                .ok_or_else(|| ApiError::internal("the identity service is not configured"))?;
            let claims = permission(&request, &params, identity)?;
            Ok(Self { claims, params })
        })
    }
}
