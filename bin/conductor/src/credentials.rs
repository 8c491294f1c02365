//! The credentials a request carries, read one way for every route: the token (`Authorization: Bearer`, the
//! `Auth-Token` header or the `jwt` parameter), verified as a permission token ([`PermissionToken`]) or as an
//! optional caller ([`OptionalUser`]): a user token, or an API key where a user token is accepted. A handler asks
//! for one in its signature, so what it requires is visible there.
//!
//! A key that does not verify is a 401 on every route (a script should learn its key is bad, not be served as
//! anonymous), and a permission token issued for a key is refused once the key is revoked.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use conductor_auth::{PermissionClaims, TokenError, UserClaims, is_api_key};
use conductor_core::{ApiKey, UserId};

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

/// The request's permission token, verified: 401 when it is missing or does not verify as one, or was issued
/// for an API key that is no longer live.
async fn permission(
    request: &HttpRequest,
    params: &Params,
    identity: &Identity,
) -> Result<PermissionClaims, ApiError> {
    let token =
        token(request, params).ok_or_else(|| ApiError::unauthorized("a permission token is required"))?;
    let claims = identity
        .accounts
        .tokens()
        .verify_permission(token, identity.clock.now())
        .map_err(|e| ApiError::unauthorized(format!("the permission token was refused: {e}")))?;
    if let Some(key) = &claims.api_key {
        identity.api_keys.still_live(key).await?;
    }
    Ok(claims)
}

/// The address a request comes from: the peer, or, when the peer is a trusted proxy, the nearest address
/// before the trusted ones in `X-Forwarded-For`.
pub fn client_address(request: &HttpRequest, trusted_proxies: &[IpAddr]) -> String {
    let peer = request.peer_addr().map(|a| a.ip());
    let Some(peer) = peer else {
        return "unknown".to_owned();
    };
    if !trusted_proxies.contains(&peer) {
        return peer.to_string();
    }
    let forwarded = request
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    forwarded
        .iter()
        .rev()
        .filter_map(|hop| hop.parse::<IpAddr>().ok())
        .find(|hop| !trusted_proxies.contains(hop))
        .unwrap_or(peer)
        .to_string()
}

/// Reads the request's parameters (form body included, once), then reads its credentials with `read`.
fn with_credentials<T, F>(
    req: &HttpRequest,
    payload: &mut Payload,
    read: F,
) -> Pin<Box<dyn Future<Output = Result<T, ApiError>>>>
where
    T: 'static,
    F: AsyncFnOnce(&HttpRequest, Params, &Identity) -> Result<T, ApiError> + 'static,
{
    let params = Params::from_request(req, payload);
    let request = req.clone();
    Box::pin(async move {
        let params = params.await?;
        let identity = request
            .app_data::<web::Data<Identity>>()
            .ok_or_else(|| ApiError::internal("the identity service is not configured"))?;
        read(&request, params, identity).await
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
        with_credentials(req, payload, async |request, params, identity| {
            let claims = permission(request, &params, identity).await?;
            Ok(Self { claims, params })
        })
    }
}

/// Who made a request: a user by their token, or by one of their API keys.
#[derive(Debug)]
pub enum Caller {
    User(UserClaims),
    Key(ApiKey),
}

impl Caller {
    pub fn userid(&self) -> &UserId {
        match self {
            Self::User(claims) => &claims.userid,
            Self::Key(key) => &key.owner,
        }
    }
}

/// The request's caller, verified, or why there is none (no token, or a user token refused), and the request's
/// parameters. Routes that answer anonymous callers too (`/user/check`, `/search`) read [`Self::caller`]; routes
/// that need a user's own token ask [`Self::user_token`]. A refused API key never gets this far: it is a 401.
#[derive(Debug)]
pub struct OptionalUser {
    verified: Result<Caller, TokenError>,
    pub params: Params,
}

impl OptionalUser {
    /// The caller, if the credential verified.
    pub fn caller(&self) -> Option<&Caller> {
        self.verified.as_ref().ok()
    }

    /// The logged-in user's own token: 401 saying why it was refused, 403 for an API key (keys do not manage
    /// accounts or make keys, so a leaked key cannot outlive its revocation through another).
    pub fn user_token(&self) -> Result<&UserClaims, ApiError> {
        match &self.verified {
            Ok(Caller::User(claims)) => Ok(claims),
            Ok(Caller::Key(_)) => Err(ApiError::forbidden(
                "user-token-required",
                "this needs a user token: an API key cannot do it",
            )),
            Err(refusal) => Err(conductor_auth::AccountError::Unauthorized(refusal.clone()).into()),
        }
    }
}

impl FromRequest for OptionalUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        with_credentials(req, payload, async |request, params, identity| {
            let verified = match token(request, &params) {
                Some(key) if is_api_key(key) => {
                    let client = client_address(request, &identity.trusted_proxies);
                    Ok(Caller::Key(identity.api_keys.authenticate(key, &client).await?))
                }
                token => identity.accounts.verify_user(token).map(Caller::User),
            };
            if let Err(refusal) = &verified {
                tracing::debug!(error = %refusal, "user token refused");
            }
            Ok(Self { verified, params })
        })
    }
}
