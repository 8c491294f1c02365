//! `/user/keys`: a logged-in user's personal API keys (DESIGN §5), made, listed and revoked with a user token.

use std::time::{Duration, UNIX_EPOCH};

use actix_web::{HttpResponse, web};
use conductor_auth::api_keys::NewKey;
use conductor_core::{ApiKey, KeyScope, Timestamp};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::credentials::OptionalUser;
use crate::error::{ApiError, ErrorAnswer};
use crate::services::auth::Identity;

/// The description of these routes, for `/openapi.json`.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(create, list, revoke))]
pub struct Described;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/user/keys").get(list).post(create))
        .service(web::resource("/user/keys/{id}").delete(revoke));
}

/// What a new key is asked for with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    /// For people: what the key is for ("nightly budget upload").
    #[schema(example = "nightly budget upload")]
    pub name: String,
    /// Service → the permissions the key may carry; each must be one the user holds now.
    #[schema(value_type = Object, example = json!({"os.datastore": ["datapackage-upload"]}))]
    pub scope: KeyScope,
    /// How long the key lives: a duration such as `90d` or `12h` (default: no expiry, where allowed).
    #[serde(default)]
    #[schema(example = "90d")]
    pub expires_in: Option<String>,
}

/// A key as lists show it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyAnswer {
    /// The key's public id (the part after `cnd_`).
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub scope: KeyScope,
    /// RFC 3339 times, UTC.
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Neither revoked nor expired.
    pub live: bool,
}

impl KeyAnswer {
    fn of(key: &ApiKey, now: Timestamp) -> Self {
        Self {
            id: key.id.clone(),
            name: key.name.clone(),
            scope: key.scope.clone(),
            created_at: rfc3339(key.created_at),
            expires_at: key.expires_at.map(rfc3339),
            revoked_at: key.revoked_at.map(rfc3339),
            last_used_at: key.last_used_at.map(rfc3339),
            live: key.is_live(now),
        }
    }
}

/// A key just made, with its secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyAnswer {
    #[serde(flatten)]
    pub key: KeyAnswer,
    /// The whole key, `cnd_<id>_<secret>`: send it as a user token is sent. It cannot be shown again.
    pub secret: String,
}

/// `GET /user/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyAnswer>,
}

/// `DELETE /user/keys/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub id: String,
    /// Always `true`.
    pub revoked: bool,
}

pub fn rfc3339(at: Timestamp) -> String {
    let since = Duration::from_millis(u64::try_from(at.as_millis()).unwrap_or(0));
    humantime::format_rfc3339_seconds(UNIX_EPOCH + since).to_string()
}

fn lifetime(raw: Option<&str>) -> Result<Option<Duration>, ApiError> {
    raw.map(|text| {
        humantime::parse_duration(text.trim()).map_err(|e| {
            ApiError::bad_request(
                "invalid-expiry",
                format!("expires_in {text:?} is not a duration: {e}"),
            )
        })
    })
    .transpose()
}

/// Makes a key for the logged-in user. The answer holds the secret, once.
#[utoipa::path(post, path = "/user/keys", tag = "user", operation_id = "create_key",
    request_body = NewKeyRequest,
    responses((status = 201, body = CreatedKeyAnswer),
        (status = 400, description = "A bad name, scope or expiry", body = ErrorAnswer),
        (status = 401, description = "No valid user token", body = ErrorAnswer),
        (status = 403, description = "A permission the user does not hold, or an API key used", body = ErrorAnswer),
        (status = 409, description = "Too many live keys", body = ErrorAnswer)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn create(
    caller: OptionalUser,
    body: web::Json<NewKeyRequest>,
    identity: web::Data<Identity>,
) -> Result<HttpResponse, ApiError> {
    let user = caller.user_token()?;
    let body = body.into_inner();
    let request = NewKey {
        name: body.name,
        scope: body.scope,
        expires_in: lifetime(body.expires_in.as_deref())?,
    };
    let created = identity.api_keys.create(&user.userid, request).await?;
    Ok(HttpResponse::Created().json(CreatedKeyAnswer {
        key: KeyAnswer::of(&created.key, identity.clock.now()),
        secret: created.secret.expose_secret().to_owned(),
    }))
}

/// The logged-in user's keys, revoked and expired ones too, newest first; never a secret.
#[utoipa::path(get, path = "/user/keys", tag = "user", operation_id = "list_keys",
    responses((status = 200, body = KeyList),
        (status = 401, description = "No valid user token", body = ErrorAnswer),
        (status = 403, description = "An API key used", body = ErrorAnswer)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn list(caller: OptionalUser, identity: web::Data<Identity>) -> Result<HttpResponse, ApiError> {
    let user = caller.user_token()?;
    let keys = identity.api_keys.list(Some(&user.userid)).await?;
    let now = identity.clock.now();
    Ok(HttpResponse::Ok().json(KeyList {
        keys: keys.iter().map(|key| KeyAnswer::of(key, now)).collect(),
    }))
}

/// Revokes one of the logged-in user's keys, at once on every replica.
#[utoipa::path(delete, path = "/user/keys/{id}", tag = "user", operation_id = "revoke_key",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, body = Revoked),
        (status = 401, description = "No valid user token", body = ErrorAnswer),
        (status = 403, description = "An API key used", body = ErrorAnswer),
        (status = 404, description = "No such live key of this user's", body = ErrorAnswer)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn revoke(
    caller: OptionalUser,
    id: web::Path<String>,
    identity: web::Data<Identity>,
) -> Result<HttpResponse, ApiError> {
    let user = caller.user_token()?;
    identity.api_keys.revoke(&id, Some(&user.userid)).await?;
    Ok(HttpResponse::Ok().json(Revoked {
        id: id.into_inner(),
        revoked: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(
            rfc3339(Timestamp::from_millis(1_800_000_000_500)),
            "2027-01-15T08:00:00Z"
        );
        assert!(lifetime(Some("90d")).unwrap() == Some(Duration::from_secs(90 * 86_400)));
        assert!(lifetime(Some("soon")).is_err());
    }
}
