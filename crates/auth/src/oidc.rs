//! The OpenID Connect login flow (DESIGN §5), relying party side.
//!
//! `begin` checks `next` against the allow-list, stores the login state server-side (state, PKCE verifier,
//! nonce, `next`, expiry) so any replica can finish the login, and returns the provider's authorization URL and
//! the value of the browser-binding cookie. `finish` redeems the state once, checks that the callback comes from
//! the browser that began the login and from the provider it was begun with, exchanges the code with the PKCE
//! verifier, and validates the ID token (RS256 only, our nonce, the provider's issuer and our client id).
//! Only a verified e-mail logs in.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use conductor_core::repo::{LoginStateRepository, RepoError};
use conductor_core::{LoginState, Timestamp};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, ConfigurationError,
    CsrfToken, DiscoveryError, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpClientError, HttpRequest,
    HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, SignatureVerificationError, StandardErrorResponse, TokenResponse,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;
use url::Url;

use crate::redirect::{RedirectAllowlist, RedirectError};

/// How long a login may take between leaving for the provider and coming back.
pub const LOGIN_STATE_TTL: Duration = Duration::from_secs(600);
/// The cookie binding a login to the browser that began it.
pub const BINDING_COOKIE: &str = "conductor_login";
/// A provider's keys or metadata are fetched again at most this often (on an unknown signing key).
const REDISCOVERY_INTERVAL: Duration = Duration::from_secs(60);
/// Larger provider responses are refused.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;
type HttpError = HttpClientError<reqwest::Error>;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("there is no login provider {0:?}")]
    UnknownProvider(String),
    #[error("next: {0}")]
    BadNext(#[from] RedirectError),
    #[error("this login link has expired or was already used; start the login again")]
    UnknownState,
    #[error("this login was begun in another browser; start the login again here")]
    WrongBrowser,
    #[error("this login was begun with another provider")]
    WrongProvider,
    #[error("the provider refused the login: {0}")]
    ProviderRefused(String),
    #[error(
        "the provider did not confirm that this e-mail address belongs to you, so it cannot be used to log in"
    )]
    EmailNotVerified,
    #[error("the provider's answer could not be verified: {0}")]
    InvalidIdToken(String),
    #[error("the provider could not be reached or answered wrongly: {0}")]
    Provider(String),
    #[error(transparent)]
    Store(#[from] RepoError),
}

/// One configured OpenID Connect provider.
#[derive(Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub display_name: String,
    pub issuer_url: Url,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub scopes: Vec<String>,
    /// Where the provider sends the browser back: `<base_url>/oauth/<name>/callback`, or for `google` the
    /// original's registered `/oauth/google_callback`.
    pub redirect_url: Url,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("issuer_url", &self.issuer_url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A provider and its discovered client, fetched on first use (a provider that is down does not stop start-up)
/// and again when it signs with a key we have not seen.
struct Provider {
    config: ProviderConfig,
    client: RwLock<Option<(OidcClient, Instant)>>,
}

/// What a successful login proves about the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub provider: String,
    pub subject: String,
    /// Verified by the provider.
    pub email: String,
    pub name: Option<String>,
    pub picture: Option<String>,
}

/// Where to send the browser to log in, and the binding cookie to set first.
#[derive(Debug)]
pub struct BegunLogin {
    pub authorization_url: Url,
    pub binding: String,
}

/// A finished login: who it is and where they return to.
#[derive(Debug)]
pub struct FinishedLogin {
    pub identity: VerifiedIdentity,
    pub next: Url,
}

/// The login flow for every configured provider.
pub struct LoginFlow {
    providers: BTreeMap<String, Provider>,
    states: Arc<dyn LoginStateRepository>,
    allowlist: RedirectAllowlist,
    base_url: Url,
    http: OidcHttp,
}

impl fmt::Debug for LoginFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginFlow")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LoginFlow {
    pub fn new(
        providers: Vec<ProviderConfig>,
        states: Arc<dyn LoginStateRepository>,
        allowlist: RedirectAllowlist,
        base_url: Url,
    ) -> Result<Self, LoginError> {
        let http = OidcHttp::new().map_err(|e| LoginError::Provider(e.to_string()))?;
        let providers = providers
            .into_iter()
            .map(|config| {
                (
                    config.name.clone(),
                    Provider {
                        config,
                        client: RwLock::new(None),
                    },
                )
            })
            .collect();
        Ok(Self {
            providers,
            states,
            allowlist,
            base_url,
            http,
        })
    }

    /// The configured providers: name and display name.
    pub fn providers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.providers
            .values()
            .map(|p| (p.config.name.as_str(), p.config.display_name.as_str()))
    }

    pub fn has_provider(&self, name: &str) -> bool {
        self.providers.contains_key(name)
    }

    fn provider(&self, name: &str) -> Result<&Provider, LoginError> {
        self.providers
            .get(name)
            .ok_or_else(|| LoginError::UnknownProvider(name.to_owned()))
    }

    /// Checks `next` against the allow-list and resolves it.
    pub fn check_next(&self, next: &str) -> Result<Url, RedirectError> {
        self.allowlist.check(next, &self.base_url)
    }

    /// Starts a login with `provider` that returns to `next`, bound to a fresh browser binding (never one the
    /// browser presents: a cookie planted from a sibling subdomain would bind the victim's login to the planter).
    pub async fn begin(&self, provider: &str, next: &str, now: Timestamp) -> Result<BegunLogin, LoginError> {
        let entry = self.provider(provider)?;
        let next = self.check_next(next)?;
        let client = self.client(entry, false).await?;
        let state = random_token()?;
        let nonce = random_token()?;
        let binding = random_token()?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (state_for_url, nonce_for_url) = (state.clone(), nonce.clone());
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state_for_url),
            move || Nonce::new(nonce_for_url),
        );
        for scope in entry.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (authorization_url, _, _) = request.set_pkce_challenge(challenge).url();
        self.states
            .put(&LoginState {
                state,
                provider: provider.to_owned(),
                pkce_verifier: verifier.into_secret(),
                nonce,
                next_url: next.into(),
                browser_binding: binding_hash(&binding),
                expires_at: now.plus(LOGIN_STATE_TTL),
            })
            .await?;
        Ok(BegunLogin {
            authorization_url,
            binding,
        })
    }

    /// Finishes a login at `provider`'s callback. `binding` is the browser's binding cookie.
    pub async fn finish(
        &self,
        provider: &str,
        state: &str,
        code: &str,
        binding: Option<&str>,
        now: Timestamp,
    ) -> Result<FinishedLogin, LoginError> {
        let entry = self.provider(provider)?;
        // Taken (deleted) before anything else, so a state is redeemable once whatever happens next.
        let stored = self
            .states
            .take(state, now)
            .await?
            .ok_or(LoginError::UnknownState)?;
        if stored.provider != provider {
            return Err(LoginError::WrongProvider);
        }
        let presented = binding.map(binding_hash).unwrap_or_default();
        if !constant_time_eq(presented.as_bytes(), stored.browser_binding.as_bytes()) {
            return Err(LoginError::WrongBrowser);
        }
        let next = Url::parse(&stored.next_url).map_err(|e| LoginError::Provider(e.to_string()))?;
        let client = self.client(entry, false).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e: ConfigurationError| LoginError::Provider(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(stored.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let id_token = response
            .id_token()
            .ok_or_else(|| LoginError::InvalidIdToken("no ID token".into()))?;
        let nonce = Nonce::new(stored.nonce);
        let verified = {
            let verifier = client
                .id_token_verifier()
                .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verified {
            Ok(claims) => claims,
            // The provider may have rotated its keys since discovery: fetch them again (rate-limited), once.
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let client = self.client(entry, true).await?;
                let verifier = client
                    .id_token_verifier()
                    .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
                id_token
                    .claims(&verifier, &nonce)
                    .map_err(|e| LoginError::InvalidIdToken(e.to_string()))?
                    .clone()
            }
            Err(e) => return Err(LoginError::InvalidIdToken(e.to_string())),
        };
        if claims.email_verified() != Some(true) {
            return Err(LoginError::EmailNotVerified);
        }
        let email = claims
            .email()
            .map(|e| e.as_str().trim().to_owned())
            .filter(|e| e.contains('@'));
        let email = email.ok_or(LoginError::EmailNotVerified)?;
        Ok(FinishedLogin {
            identity: VerifiedIdentity {
                provider: provider.to_owned(),
                subject: claims.subject().to_string(),
                email,
                name: claims
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.as_str().to_owned()),
                picture: claims
                    .picture()
                    .and_then(|p| p.get(None))
                    .map(|p| p.as_str().to_owned()),
            },
            next,
        })
    }

    /// The provider's discovered client: cached, fetched on first use, and again when `refresh` is asked for and
    /// the last fetch is old enough.
    async fn client(&self, provider: &Provider, refresh: bool) -> Result<OidcClient, LoginError> {
        if let Some((client, fetched)) = provider.client.read().await.as_ref()
            && (!refresh || fetched.elapsed() < REDISCOVERY_INTERVAL)
        {
            return Ok(client.clone());
        }
        let mut slot = provider.client.write().await;
        if let Some((client, fetched)) = slot.as_ref()
            && (!refresh || fetched.elapsed() < REDISCOVERY_INTERVAL)
        {
            return Ok(client.clone());
        }
        let config = &provider.config;
        let issuer = IssuerUrl::new(issuer_string(&config.issuer_url))
            .map_err(|e| LoginError::Provider(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e: DiscoveryError<HttpError>| {
                LoginError::Provider(format!("discovery of {}: {e}", config.name))
            })?;
        let redirect = RedirectUrl::new(config.redirect_url.to_string())
            .map_err(|e| LoginError::Provider(e.to_string()))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose_secret().to_owned())),
        )
        .set_redirect_uri(redirect);
        *slot = Some((client.clone(), Instant::now()));
        Ok(client)
    }
}

/// Issuers are compared as exact strings by discovery; `Url` adds a trailing slash to a bare host, which
/// issuers such as `https://accounts.google.com` do not have.
fn issuer_string(url: &Url) -> String {
    let text = url.as_str();
    if url.path() == "/" && url.query().is_none() {
        text.trim_end_matches('/').to_owned()
    } else {
        text.to_owned()
    }
}

fn token_error(
    error: RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>,
) -> LoginError {
    match error {
        RequestTokenError::ServerResponse(response) => {
            LoginError::ProviderRefused(response.error().to_string())
        }
        other => LoginError::Provider(other.to_string()),
    }
}

/// 32 random bytes from the system RNG, base64url: state, nonce and binding values. A login never goes on
/// with a value that is not random.
fn random_token() -> Result<String, LoginError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| LoginError::Provider("the system random generator failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The binding cookie is stored hashed, so the database alone cannot finish someone's login.
fn binding_hash(binding: &str) -> String {
    hex_encode(&Sha256::digest(binding.as_bytes()))
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The HTTP client handed to openidconnect: redirects off (no SSRF through a provider), timeouts on, and a cap
/// on response size.
#[derive(Clone, Debug)]
struct OidcHttp(reqwest::Client);

impl OidcHttp {
    fn new() -> reqwest::Result<Self> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .map(Self)
    }
}

impl<'c> AsyncHttpClient<'c> for OidcHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(Box::new)?;
            let mut response = self.0.execute(request).await.map_err(Box::new)?;
            let mut builder = openidconnect::http::Response::builder()
                .status(response.status())
                .version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(Box::new)? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpClientError::Other("response body too large".to_owned()));
                }
                body.extend_from_slice(&chunk);
            }
            builder.body(body).map_err(HttpClientError::Http)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn issuer_strings_keep_their_path_and_lose_a_bare_slash() {
        assert_eq!(
            issuer_string(&Url::parse("https://accounts.google.com").unwrap()),
            "https://accounts.google.com"
        );
        assert_eq!(
            issuer_string(&Url::parse("http://127.0.0.1:9090/").unwrap()),
            "http://127.0.0.1:9090"
        );
        assert_eq!(
            issuer_string(&Url::parse("https://idp.example/realms/os").unwrap()),
            "https://idp.example/realms/os"
        );
    }

    #[test]
    fn bindings_compare_by_hash_in_constant_time() {
        let binding = random_token().unwrap();
        assert!(constant_time_eq(
            binding_hash(&binding).as_bytes(),
            binding_hash(&binding).as_bytes()
        ));
        assert!(!constant_time_eq(
            binding_hash(&binding).as_bytes(),
            binding_hash("other").as_bytes()
        ));
        assert!(!constant_time_eq(b"", binding_hash(&binding).as_bytes()));
    }
}
