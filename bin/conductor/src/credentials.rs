//! The credentials a request carries, read one way for every route: the token (`Authorization: Bearer`, the
//! `Auth-Token` header or the `jwt` parameter), verified as a permission token ([`PermissionToken`]) or as an
//! optional user ([`OptionalUser`]). A handler asks for one in its signature, so what it requires is visible there.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use conductor_auth::{AccountError, PermissionClaims, TokenError, UserClaims};

use crate::error::ApiError;
use crate::params::Params;
use crate::services::auth::Identity;

/// The request's token: `Authorization: Bearer`, `Auth-Token`, or the `jwt` parameter.
fn token<'a>(request: &'a HttpRequest, params: &'a Params) -> Option<&'a str> {
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

/// Reads the request's parameters (form body included, once), then reads its credentials with `read`.
fn with_credentials<T: 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    read: impl FnOnce(&HttpRequest, Params, &Identity) -> Result<T, ApiError> + 'static,
) -> Pin<Box<dyn Future<Output = Result<T, ApiError>>>> {
    let params = Params::from_request(req, payload);
    let request = req.clone();
    Box::pin(async move {
        let params = params.await?;
        let identity = request
            .app_data::<web::Data<Identity>>()
            .ok_or_else(|| ApiError::internal("the identity service is not configured"))?;
        read(&request, params, identity)
    })
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
        with_credentials(req, payload, |request, params, identity| {
            let claims = permission(request, &params, identity)?;
            Ok(Self { claims, params })
        })
    }
}

/// The request's user token, verified, or why there is no user (no token, or one refused), and the request's
/// parameters. Routes that answer anonymous callers too (`/user/check`, `/search`) read [`Self::user`]; routes
/// that need a user ask [`Self::required`].
#[derive(Debug)]
pub struct OptionalUser {
    verified: Result<UserClaims, TokenError>,
    pub params: Params,
}

impl OptionalUser {
    /// The logged-in user, if the token verified.
    pub fn user(&self) -> Option<&UserClaims> {
        self.verified.as_ref().ok()
    }

    /// The logged-in user, or 401 saying why the token was refused.
    pub fn required(&self) -> Result<&UserClaims, AccountError> {
        self.verified
            .as_ref()
            .map_err(|refusal| AccountError::Unauthorized(refusal.clone()))
    }
}

impl FromRequest for OptionalUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        with_credentials(req, payload, |request, params, identity| {
            let verified = identity.accounts.verify_user(token(request, &params));
            if let Err(refusal) = &verified {
                tracing::debug!(error = %refusal, "user token refused");
            }
            Ok(Self { verified, params })
        })
    }
}
