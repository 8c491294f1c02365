//! Personal API keys (DESIGN §5): credentials a user makes for scripts, narrowed to some services and
//! permissions, optionally expiring, revocable at once.
//!
//! A key reads `cnd_<id>_<secret>`: the prefix lets secret scanners and log filters spot one, the id is public
//! (lists and logs name keys by it), the secret is 256 random bits. Only the SHA-256 of the whole key is stored,
//! so a leaked database holds no usable key; a fast hash is enough because the secret is random, not a password.
//! Every use reads the key's row, so a revocation is seen by every replica on the next request; permission
//! tokens issued for a key name it, live shortly, and are refused by our own endpoints once the key is gone.
//! Whatever went wrong (no such key, a wrong secret, revoked, expired), the answer is the same.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use conductor_core::repo::{ApiKeyRepository, RepoError};
use conductor_core::{ApiKey, Clock, KeyScope, UserId};
use conductor_permissions::{PermissionError, PermissionService, Permissions, grants, validate_name};
use secrecy::SecretString;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::account::Authorization;
use crate::rate::{RateCounter, window_of};
use crate::tokens::{TokenError, TokenIssuer};

/// What every key starts with.
pub const KEY_PREFIX: &str = "cnd_";
/// Random bytes in a key's id (hex) and in its secret (base64url).
const ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;
/// Services one key may name, and permissions per service: a scope is small.
const MAX_SERVICES: usize = 20;
const MAX_PERMISSIONS: usize = 50;
/// How rarely a key's `last_used_at` is written, in milliseconds.
const TOUCH_EVERY_MS: i64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// Malformed, unknown, wrong secret, revoked or expired: one answer for all, so a caller learns nothing.
    #[error("the API key is not valid")]
    Refused,
    #[error("too many requests: try again in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("a key's name is 1 to 100 characters, without control characters")]
    InvalidName,
    #[error("the scope grants nothing: name at least one service and one of its permissions")]
    EmptyScope,
    #[error("the scope is too large: at most {MAX_SERVICES} services of {MAX_PERMISSIONS} permissions each")]
    ScopeTooLarge,
    #[error("in the scope: {0}")]
    InvalidScope(PermissionError),
    #[error("you do not have {permission:?} on {service:?}, so no key of yours can")]
    BeyondPermissions { service: String, permission: String },
    #[error("a key lives at most {} days", max.as_secs() / 86_400)]
    TooLong { max: Duration },
    #[error("a key's lifetime must be at least a second")]
    TooShort,
    #[error("you have {limit} live keys already: revoke one first")]
    TooMany { limit: u64 },
    #[error("no such key")]
    NotFound,
    #[error(transparent)]
    Permission(#[from] PermissionError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("signing failed: {0}")]
    Signing(TokenError),
    #[error("the system's random generator failed")]
    NoEntropy,
}

/// Bounds on keys, from `auth.api_keys.*`.
#[derive(Clone, Debug)]
pub struct KeyPolicy {
    pub max_per_user: u64,
    /// The longest lifetime a key may be given; `None`: keys may also never expire.
    pub max_lifetime: Option<Duration>,
    /// Uses of one key per window, and failed attempts per client address per window.
    pub uses_per_window: u64,
    pub failures_per_window: u64,
    pub window: Duration,
    /// The lifetime of a permission token issued for a key.
    pub token_ttl: Duration,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            max_per_user: 100,
            max_lifetime: None,
            uses_per_window: 600,
            failures_per_window: 20,
            window: Duration::from_secs(60),
            token_ttl: Duration::from_secs(15 * 60),
        }
    }
}

/// What a user asks for when making a key.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub name: String,
    pub scope: KeyScope,
    pub expires_in: Option<Duration>,
}

/// A key just made: the stored record and its secret, which is shown this once.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: SecretString,
}

/// Whether a presented credential is an API key (rather than a JWT).
pub fn is_api_key(credential: &str) -> bool {
    credential.starts_with(KEY_PREFIX)
}

/// API keys over their repository, the user's permissions and the rate counter.
#[derive(Clone)]
pub struct ApiKeys {
    keys: Arc<dyn ApiKeyRepository>,
    permissions: PermissionService,
    tokens: TokenIssuer,
    rates: Arc<dyn RateCounter>,
    clock: Arc<dyn Clock>,
    policy: KeyPolicy,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The parts a service of keys is made from.
#[derive(Clone)]
pub struct ApiKeyParts {
    pub keys: Arc<dyn ApiKeyRepository>,
    pub permissions: PermissionService,
    pub tokens: TokenIssuer,
    pub rates: Arc<dyn RateCounter>,
    pub clock: Arc<dyn Clock>,
    pub policy: KeyPolicy,
}

impl std::fmt::Debug for ApiKeyParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyParts")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    pub fn new(parts: ApiKeyParts) -> Self {
        Self {
            keys: parts.keys,
            permissions: parts.permissions,
            tokens: parts.tokens,
            rates: parts.rates,
            clock: parts.clock,
            policy: parts.policy,
        }
    }

    /// Makes a key for `owner`, within what the owner holds now and the policy's bounds.
    pub async fn create(&self, owner: &UserId, request: NewKey) -> Result<CreatedKey, ApiKeyError> {
        let name = request.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ApiKeyError::InvalidName);
        }
        let scope = self.checked_scope(owner, request.scope).await?;
        if let Some(lifetime) = request.expires_in {
            if lifetime < Duration::from_secs(1) {
                return Err(ApiKeyError::TooShort);
            }
            if let Some(max) = self.policy.max_lifetime.filter(|max| lifetime > *max) {
                return Err(ApiKeyError::TooLong { max });
            }
        } else if let Some(max) = self.policy.max_lifetime {
            return Err(ApiKeyError::TooLong { max });
        }
        let now = self.clock.now();
        if self.keys.count_live(owner, now).await? >= self.policy.max_per_user {
            return Err(ApiKeyError::TooMany {
                limit: self.policy.max_per_user,
            });
        }
        let id = hex(&random::<ID_BYTES>()?);
        let secret = format!(
            "{KEY_PREFIX}{id}_{}",
            URL_SAFE_NO_PAD.encode(random::<SECRET_BYTES>()?)
        );
        let key = ApiKey {
            id,
            owner: owner.clone(),
            name: name.to_owned(),
            scope,
            secret_hash: digest(&secret),
            created_at: now,
            expires_at: request.expires_in.map(|lifetime| now.plus(lifetime)),
            revoked_at: None,
            last_used_at: None,
        };
        self.keys.create(&key).await?;
        tracing::info!(key = %key.id, owner = %owner, "API key created");
        Ok(CreatedKey {
            key,
            secret: SecretString::from(secret),
        })
    }

    /// Every permission of the scope must be valid and held by the owner now.
    async fn checked_scope(&self, owner: &UserId, scope: KeyScope) -> Result<KeyScope, ApiKeyError> {
        if scope.len() > MAX_SERVICES || scope.values().any(|names| names.len() > MAX_PERMISSIONS) {
            return Err(ApiKeyError::ScopeTooLarge);
        }
        let mut checked = KeyScope::new();
        for (service, names) in scope {
            validate_name(&service).map_err(ApiKeyError::InvalidScope)?;
            let held = self.permissions.effective(owner, &service).await?;
            let mut names: Vec<String> = names;
            names.sort();
            names.dedup();
            for permission in &names {
                validate_name(permission).map_err(ApiKeyError::InvalidScope)?;
                if !grants(&held, permission) {
                    return Err(ApiKeyError::BeyondPermissions {
                        service: service.clone(),
                        permission: permission.clone(),
                    });
                }
            }
            if !names.is_empty() {
                checked.insert(service, names);
            }
        }
        if checked.is_empty() {
            return Err(ApiKeyError::EmptyScope);
        }
        Ok(checked)
    }

    /// One owner's keys, or everyone's; never a secret.
    pub async fn list(&self, owner: Option<&UserId>) -> Result<Vec<ApiKey>, ApiKeyError> {
        Ok(self.keys.list(owner).await?)
    }

    /// Revokes a key (only `owner`'s, when given): `NotFound` when there is no such live key of theirs.
    pub async fn revoke(&self, id: &str, owner: Option<&UserId>) -> Result<(), ApiKeyError> {
        if self.keys.revoke(id, owner, self.clock.now()).await? {
            tracing::info!(key = %id, "API key revoked");
            Ok(())
        } else {
            Err(ApiKeyError::NotFound)
        }
    }

    /// The live key `presented` is, used from `client` (an address): refused alike whatever is wrong with it,
    /// and rate-limited per key and, for failed attempts, per client.
    pub async fn authenticate(&self, presented: &str, client: &str) -> Result<ApiKey, ApiKeyError> {
        let now = self.clock.now();
        let failures = format!("key-failures:{client}");
        if self.counted(&failures, false).await >= self.policy.failures_per_window {
            return Err(self.limited());
        }
        let Some(key) = self.live_key(presented).await? else {
            self.counted(&failures, true).await;
            return Err(ApiKeyError::Refused);
        };
        if self.counted(&format!("key-uses:{}", key.id), true).await > self.policy.uses_per_window {
            return Err(self.limited());
        }
        if let Err(error) = self.keys.touch(&key.id, now, TOUCH_EVERY_MS).await {
            tracing::warn!(key = %key.id, %error, "could not record the key's use");
        }
        Ok(key)
    }

    /// The stored key `presented` names, if it is the key's secret and the key is live.
    async fn live_key(&self, presented: &str) -> Result<Option<ApiKey>, ApiKeyError> {
        let Some(id) = presented
            .strip_prefix(KEY_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .filter(|id| id.len() == 2 * ID_BYTES && id.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return Ok(None);
        };
        let Some(key) = self.keys.get(id).await? else {
            return Ok(None);
        };
        let matches = constant_time_eq(digest(presented).as_bytes(), key.secret_hash.as_bytes());
        Ok((matches && key.is_live(self.clock.now())).then_some(key))
    }

    /// Whether the key a permission token names is still live (our endpoints ask on every use of such a token).
    pub async fn still_live(&self, id: &str) -> Result<(), ApiKeyError> {
        match self.keys.get(id).await? {
            Some(key) if key.is_live(self.clock.now()) => Ok(()),
            _ => Err(ApiKeyError::Refused),
        }
    }

    /// A permission token for `service` carrying what both the key's scope and its owner's permissions now grant.
    pub async fn authorize(&self, key: &ApiKey, service: &str) -> Result<Authorization, ApiKeyError> {
        let held = self.permissions.effective(&key.owner, service).await?;
        let permissions: Permissions = key
            .scope
            .get(service)
            .into_iter()
            .flatten()
            .filter(|name| grants(&held, name))
            .map(|name| (name.clone(), Value::Bool(true)))
            .collect();
        let token = self
            .tokens
            .issue_key_permission(
                &key.owner,
                service,
                permissions.clone(),
                (&key.id, key.expires_at),
                self.policy.token_ttl,
                self.clock.now(),
            )
            .map_err(ApiKeyError::Signing)?;
        Ok(Authorization {
            token,
            userid: key.owner.clone(),
            permissions,
            service: service.to_owned(),
        })
    }

    /// Counts one event in `bucket` (or reads its count); a counter that cannot be reached limits nothing.
    async fn counted(&self, bucket: &str, add: bool) -> u64 {
        let now = self.clock.now();
        let window = self.policy.window;
        let counted = if add {
            self.rates.count(bucket, window, now).await
        } else {
            self.rates.current(bucket, window, now).await
        };
        counted.unwrap_or_else(|error| {
            tracing::warn!(%error, "the rate counter is unavailable: not limiting");
            0
        })
    }

    fn limited(&self) -> ApiKeyError {
        ApiKeyError::RateLimited {
            retry_after: window_of(self.policy.window, self.clock.now()).1,
        }
    }
}

fn random<const N: usize>() -> Result<[u8; N], ApiKeyError> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ApiKeyError::NoEntropy)?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
