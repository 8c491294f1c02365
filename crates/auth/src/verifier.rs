//! Verifying Conductor's tokens in another service, offline: from Conductor's public key (PEM, as
//! `/user/public-key` serves it) or from its JWKS URL (`/.well-known/jwks.json`), cached, with one rate-limited
//! refetch when a token names a key the cache does not hold (a key rotation).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conductor_core::{Clock, SystemClock};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::RwLock;
use url::Url;

use crate::keys::PublicKey;
use crate::tokens::{
    self, Expectations, KeyLookup, PERMISSION_TOKEN, PermissionClaims, TokenError, USER_TOKEN, UserClaims,
};

/// A JWKS is fetched again at most this often, however many unknown `kid`s arrive.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("this token is for the service {found:?}, not {expected:?}")]
    WrongService { expected: String, found: String },
    #[error("this token does not grant {0:?}")]
    MissingPermission(String),
    #[error("the JWKS could not be fetched: {0}")]
    Fetch(String),
    #[error("the key is not usable: {0}")]
    Key(String),
}

/// Verifies Conductor's user and permission tokens.
pub struct Verifier {
    keys: Keys,
    issuer: Option<String>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

enum Keys {
    /// One public key: every token must be signed by it, whatever `kid` it names.
    Single(DecodingKey),
    Jwks(Jwks),
}

struct Jwks {
    url: Url,
    client: reqwest::Client,
    cache: RwLock<(HashMap<String, DecodingKey>, Instant)>,
    /// The least time between two fetches ([`MIN_REFRESH_INTERVAL`] unless set).
    interval: Duration,
}

/// A snapshot of JWKS keys by `kid`.
struct KeyMap<'a>(&'a HashMap<String, DecodingKey>);

impl KeyLookup for KeyMap<'_> {
    fn key(&self, kid: Option<&str>) -> Option<DecodingKey> {
        match kid {
            Some(kid) => self.0.get(kid).cloned(),
            // A token without a kid is only unambiguous when there is one key.
            None if self.0.len() == 1 => self.0.values().next().cloned(),
            None => None,
        }
    }
}

struct Single<'a>(&'a DecodingKey);

impl KeyLookup for Single<'_> {
    fn key(&self, _kid: Option<&str>) -> Option<DecodingKey> {
        Some(self.0.clone())
    }
}

impl Verifier {
    /// A verifier trusting one public key (PEM, `PUBLIC KEY` or `RSA PUBLIC KEY`).
    pub fn from_public_pem(pem: &str) -> Result<Self, VerifyError> {
        let key = PublicKey::from_pem(pem, "the public key").map_err(|e| VerifyError::Key(e.to_string()))?;
        Ok(Self {
            keys: Keys::Single(key.decoding_key().clone()),
            issuer: None,
            clock: Arc::new(SystemClock),
        })
    }

    /// A verifier trusting the keys published at `url` (Conductor's `/.well-known/jwks.json`), fetched now.
    pub async fn from_jwks_url(url: Url) -> Result<Self, VerifyError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| VerifyError::Fetch(e.to_string()))?;
        let keys = fetch_jwks(&client, &url).await?;
        let jwks = Jwks {
            url,
            client,
            cache: RwLock::new((keys, Instant::now())),
            interval: MIN_REFRESH_INTERVAL,
        };
        Ok(Self {
            keys: Keys::Jwks(jwks),
            issuer: None,
            clock: Arc::new(SystemClock),
        })
    }

    /// Also require `iss` to be this (Conductor's base URL).
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Fetch the JWKS again at most this often (default [`MIN_REFRESH_INTERVAL`]); no effect on a PEM verifier.
    #[must_use]
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        if let Keys::Jwks(jwks) = &mut self.keys {
            jwks.interval = interval;
        }
        self
    }

    /// Use this clock instead of the system's (for tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub async fn verify_user(&self, token: &str) -> Result<UserClaims, VerifyError> {
        self.verify(token, USER_TOKEN).await
    }

    /// Verifies a permission token and that it grants `permission` for `service`.
    pub async fn verify_permission(
        &self,
        token: &str,
        service: &str,
        permission: &str,
    ) -> Result<PermissionClaims, VerifyError> {
        let claims: PermissionClaims = self.verify(token, PERMISSION_TOKEN).await?;
        if claims.service != service {
            return Err(VerifyError::WrongService {
                expected: service.to_owned(),
                found: claims.service,
            });
        }
        if claims.aud.as_ref().is_some_and(|aud| aud != service) {
            return Err(TokenError::WrongAudience.into());
        }
        if !claims.grants(permission) {
            return Err(VerifyError::MissingPermission(permission.to_owned()));
        }
        Ok(claims)
    }

    /// Verifies any permission token (signature, kind, time), leaving service and permission to the caller.
    pub async fn verify_any_permission(&self, token: &str) -> Result<PermissionClaims, VerifyError> {
        self.verify(token, PERMISSION_TOKEN).await
    }

    async fn verify<C: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        kind: &'static str,
    ) -> Result<C, VerifyError> {
        let expect = Expectations {
            kind,
            issuer: self.issuer.as_deref(),
            now: self.clock.now(),
        };
        match &self.keys {
            Keys::Single(key) => Ok(tokens::verify(token, &Single(key), &expect)?),
            Keys::Jwks(jwks) => {
                let first = {
                    let cache = jwks.cache.read().await;
                    tokens::verify(token, &KeyMap(&cache.0), &expect)
                };
                match first {
                    Err(TokenError::UnknownKey) if jwks.refresh().await? => {
                        let cache = jwks.cache.read().await;
                        Ok(tokens::verify(token, &KeyMap(&cache.0), &expect)?)
                    }
                    other => Ok(other?),
                }
            }
        }
    }
}

impl Jwks {
    /// Fetches the keys again unless that was done recently; returns whether it did.
    async fn refresh(&self) -> Result<bool, VerifyError> {
        let mut cache = self.cache.write().await;
        if cache.1.elapsed() < self.interval {
            return Ok(false);
        }
        // Whatever the outcome, wait the interval before the next attempt.
        cache.1 = Instant::now();
        cache.0 = fetch_jwks(&self.client, &self.url).await?;
        Ok(true)
    }
}

async fn fetch_jwks(
    client: &reqwest::Client,
    url: &Url,
) -> Result<HashMap<String, DecodingKey>, VerifyError> {
    let fetch = |e: reqwest::Error| VerifyError::Fetch(e.to_string());
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(fetch)?
        .error_for_status()
        .map_err(fetch)?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(fetch)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(VerifyError::Fetch("the JWKS is too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    let set: JwkSet = serde_json::from_slice(&body).map_err(|e| VerifyError::Fetch(e.to_string()))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        // Only RS256 signing keys with a kid are usable; anything else in the set is ignored.
        let usable = jwk.common.key_algorithm == Some(jsonwebtoken::jwk::KeyAlgorithm::RS256)
            && matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_));
        if let (true, Some(kid)) = (usable, &jwk.common.key_id) {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| VerifyError::Key(e.to_string()))?;
            keys.insert(kid.clone(), key);
        }
    }
    if keys.is_empty() {
        return Err(VerifyError::Fetch("the JWKS holds no RS256 key".into()));
    }
    Ok(keys)
}

/// The token of a request, from `Authorization: Bearer`, the `Auth-Token` header or the `jwt` parameter.
pub fn request_token<'a>(
    authorization: Option<&'a str>,
    auth_token: Option<&'a str>,
    jwt_parameter: Option<&'a str>,
) -> Option<&'a str> {
    let bearer = authorization.and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    [bearer, auth_token.map(str::trim), jwt_parameter.map(str::trim)]
        .into_iter()
        .flatten()
        .find(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use secrecy::ExposeSecret;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::keys::KeySet;
    use conductor_core::UserId;

    use crate::tokens::{TokenIssuer, TokenPolicy};

    /// A JWKS server whose key set the test replaces, counting the fetches.
    async fn jwks_server(served: Arc<std::sync::Mutex<String>>, fetches: Arc<AtomicUsize>) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/jwks.json", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                fetches.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().unwrap().clone();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        url
    }

    fn issuer(keys: &Arc<KeySet>) -> TokenIssuer {
        TokenIssuer::new(
            keys.clone(),
            TokenPolicy {
                issuer: "http://127.0.0.1:8000/".into(),
                user_ttl: Duration::from_secs(3600),
                permission_ttl: Duration::from_secs(3600),
                permission_aud: false,
            },
        )
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_the_jwks_at_most_once_an_interval() {
        assert_eq!(
            MIN_REFRESH_INTERVAL,
            Duration::from_secs(30),
            "the default the README promises"
        );
        let generate = || {
            let pair = KeySet::generate().unwrap();
            Arc::new(KeySet::from_pems(pair.private_pem.expose_secret(), None, vec![]).unwrap())
        };
        let (old, new, other) = (generate(), generate(), generate());
        let served = Arc::new(std::sync::Mutex::new(serde_json::to_string(&old.jwks()).unwrap()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let url = jwks_server(served.clone(), fetches.clone()).await;
        let verifier = Verifier::from_jwks_url(url)
            .await
            .unwrap()
            .with_refresh_interval(Duration::from_millis(300));
        let now = SystemClock.now();
        let user = UserId::from_email("ada@example.test");
        let by_old = issuer(&old).issue_user(&user, now).unwrap();
        verifier.verify_user(&by_old).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        // The service rotates: the new key is published as current, the old one as retired.
        let mut rotated = new.jwks();
        rotated.keys.extend(old.jwks().keys);
        *served.lock().unwrap() = serde_json::to_string(&rotated).unwrap();
        let by_new = issuer(&new).issue_user(&user, now).unwrap();
        assert!(
            matches!(
                verifier.verify_user(&by_new).await,
                Err(VerifyError::Token(TokenError::UnknownKey))
            ),
            "within the interval of the last fetch, nothing is fetched"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(350)).await;
        verifier
            .verify_user(&by_new)
            .await
            .expect("an unknown kid fetches the keys again");
        verifier
            .verify_user(&by_old)
            .await
            .expect("the retired key still verifies");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        let by_other = issuer(&other).issue_user(&user, now).unwrap();
        assert!(verifier.verify_user(&by_other).await.is_err());
        assert!(verifier.verify_user(&by_other).await.is_err());
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "a flood of unknown kids costs no fetch within the interval"
        );
    }

    #[test]
    fn the_token_comes_from_bearer_then_auth_token_then_jwt() {
        assert_eq!(request_token(Some("Bearer a"), Some("b"), Some("c")), Some("a"));
        assert_eq!(request_token(Some("bearer  a "), None, None), Some("a"));
        assert_eq!(request_token(Some("Basic xyz"), Some("b"), Some("c")), Some("b"));
        assert_eq!(request_token(None, Some(" "), Some("c")), Some("c"));
        assert_eq!(request_token(None, None, None), None);
    }
}
