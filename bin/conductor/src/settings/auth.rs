//! The `auth.*` section (DESIGN §9): keys, token lifetimes, login providers and redirects.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use url::Url;

use super::SettingsError;

/// The issuer of the original's `google` provider, for the secrets bundle's client id and secret.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub keys: KeySettings,
    /// Lifetime of user tokens (from login and `token mint`).
    #[serde(with = "humantime_serde")]
    pub user_token_ttl: Duration,
    /// Lifetime of permission tokens (from `/user/authorize`); os-admin keeps one for a working session.
    #[serde(with = "humantime_serde")]
    pub permission_token_ttl: Duration,
    /// Put `aud = service` in permission tokens. Off by default: PyJWT rejects a token with `aud` when the
    /// verifier names none, which the original's Python services do.
    pub permission_token_aud: bool,
    /// Where a login may return to: origins with optional path prefixes. CORS allows these origins by default.
    pub redirect_allowlist: Vec<String>,
    /// Deliver the token to `next` in the query (as the original did; os-packager's logged-in page needs it)
    /// instead of the fragment.
    pub token_in_query: bool,
    /// OpenID Connect providers by name; `google` also comes from the original's secrets bundle.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// The `dev` provider: logs in any e-mail without an upstream. Only ever active on a loopback base URL.
    pub dev_login: bool,
    /// The provider the web clients' login button uses: they read only `providers.google.url`, so `/user/check`
    /// also lists this provider as `google` (when no provider is named `google` itself).
    pub web_client_provider: Option<String>,
    /// Personal API keys for scripts (`/user/keys`).
    pub api_keys: ApiKeySettings,
}

/// The `auth.api_keys.*` bounds (DESIGN §5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeySettings {
    /// Live keys one user may hold.
    pub max_per_user: u64,
    /// The longest lifetime a key may be given. Unset: keys may also be made without an expiry.
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// Requests one key may make per minute.
    pub uses_per_minute: u64,
    /// Failed key attempts one client address may make per minute before it is refused for the rest of it.
    pub failed_attempts_per_minute: u64,
    /// Lifetime of a permission token issued for a key (at most `permission_token_ttl`).
    #[serde(with = "humantime_serde")]
    pub permission_token_ttl: Duration,
}

impl Default for ApiKeySettings {
    fn default() -> Self {
        let policy = conductor_auth::api_keys::KeyPolicy::default();
        Self {
            max_per_user: policy.max_per_user,
            max_lifetime: policy.max_lifetime,
            uses_per_minute: policy.uses_per_window,
            failed_attempts_per_minute: policy.failures_per_window,
            permission_token_ttl: policy.token_ttl,
        }
    }
}

impl ApiKeySettings {
    pub fn policy(&self) -> conductor_auth::api_keys::KeyPolicy {
        conductor_auth::api_keys::KeyPolicy {
            max_per_user: self.max_per_user,
            max_lifetime: self.max_lifetime,
            uses_per_window: self.uses_per_minute,
            failures_per_window: self.failed_attempts_per_minute,
            window: Duration::from_secs(60),
            token_ttl: self.permission_token_ttl,
        }
    }
}

impl AuthSettings {
    /// `auth.redirect_allowlist`, and always the service's own `base_url`: a deployment that moves its base URL
    /// can still log in back to its own pages.
    pub fn redirect_allowlist(
        &self,
        base_url: &Url,
    ) -> Result<conductor_auth::RedirectAllowlist, SettingsError> {
        let mut entries = self.redirect_allowlist.clone();
        entries.push(base_url.to_string());
        redirect_entries(&entries)
    }
}

/// Redirect allow-list entries, parsed; an error names `auth.redirect_allowlist`.
pub(super) fn redirect_entries(
    entries: &[String],
) -> Result<conductor_auth::RedirectAllowlist, SettingsError> {
    conductor_auth::RedirectAllowlist::new(entries).map_err(|e| SettingsError::Invalid {
        key: "auth.redirect_allowlist",
        message: e.to_string(),
    })
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            keys: KeySettings::default(),
            user_token_ttl: Duration::from_secs(14 * 24 * 3600),
            permission_token_ttl: Duration::from_secs(12 * 3600),
            permission_token_aud: false,
            redirect_allowlist: vec!["http://127.0.0.1:8000/".to_owned()],
            token_in_query: false,
            providers: BTreeMap::new(),
            dev_login: false,
            web_client_provider: None,
            api_keys: ApiKeySettings::default(),
        }
    }
}

/// The signing key and the public keys still published. Unset: a development pair is generated under
/// `data_dir`, and production refuses to start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    pub private_key_file: Option<PathBuf>,
    pub public_key_file: Option<PathBuf>,
    /// Public keys of earlier signing keys, published in the JWKS until their tokens have expired.
    pub retired_public_key_files: Vec<PathBuf>,
    /// The private key as PEM text (for an environment variable); `private_key_file` is preferred.
    pub private_key_pem: Option<Secret>,
    pub public_key_pem: Option<String>,
}

impl KeySettings {
    pub fn is_configured(&self) -> bool {
        self.private_key_file.is_some() || self.private_key_pem.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// The issuer; discovery is read from `<issuer_url>/.well-known/openid-configuration`.
    pub issuer_url: Url,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// A file holding the client secret (preferred to `client_secret` in files under version control).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The name shown to users; defaults to the provider's key.
    #[serde(default)]
    pub display_name: Option<String>,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

/// A secret setting: shown as `[REDACTED]` by `Debug` and `config show`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[REDACTED]")
    }
}
