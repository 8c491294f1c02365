//! The identity side of the gateway, wired once from the settings: accounts and tokens, the login flow, and the
//! served auth library.

use std::net::IpAddr;
use std::sync::Arc;

use conductor_auth::api_keys::ApiKeyParts;
use conductor_auth::oidc::{LoginFlow, ProviderConfig};
use conductor_auth::rate::RateCounter;
use conductor_auth::{Accounts, ApiKeys, KeyError, KeySet, PublicKey, TokenIssuer, TokenPolicy};
use conductor_core::Clock;
use conductor_permissions::PermissionService;
use conductor_store::Repositories;
use secrecy::SecretString;
use url::Url;

use crate::services::{Site, StartupError};
use crate::settings::AuthSettings;

const LIB_JS: &str = include_str!("../../assets/lib.js");
const LIB_MJS: &str = include_str!("../../assets/lib.mjs");
const BASE_URL_PLACEHOLDER: &str = "__CONDUCTOR_BASE_URL__";

/// Everything the `/user` and `/oauth` routes use.
#[derive(Debug)]
pub struct Identity {
    pub accounts: Accounts,
    /// Personal API keys, accepted wherever a user token is.
    pub api_keys: ApiKeys,
    /// `server.trusted_proxies`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpAddr>,
    pub login: LoginFlow,
    /// Whether the `dev` provider is active (configured, loopback base URL, not production).
    pub dev_login: bool,
    /// The provider `/user/check` also lists as `google`, for the web clients (`auth.web_client_provider`).
    pub google_alias: Option<String>,
    pub token_in_query: bool,
    pub base_url: Url,
    /// Cookies get `Secure` when the service is reached over https.
    pub secure_cookies: bool,
    pub clock: Arc<dyn Clock>,
    /// `/user/lib` and `/user/lib.mjs` with the base URL filled in.
    pub lib_js: String,
    pub lib_mjs: String,
}

impl Identity {
    pub fn build(
        settings: &AuthSettings,
        site: Site<'_>,
        repositories: &Repositories,
        rates: Arc<dyn RateCounter>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let accounts = accounts(settings, site, repositories, clock.clone(), None)?;
        let api_keys = ApiKeys::new(ApiKeyParts {
            keys: repositories.api_keys.clone(),
            permissions: PermissionService::new(repositories.permissions.clone()),
            tokens: accounts.tokens().clone(),
            rates,
            clock: clock.clone(),
            policy: settings.api_keys.policy(),
        });
        let base_url = site.base_url.clone();
        let login = LoginFlow::new(
            provider_configs(settings, &base_url)?,
            repositories.login_states.clone(),
            settings.redirect_allowlist(&base_url)?,
            base_url.clone(),
        )
        .map_err(StartupError::Login)?;
        let base = base_url.as_str().trim_end_matches('/');
        // The base URL goes inside a JavaScript string literal: refuse anything that could end it.
        if base
            .chars()
            .any(|c| matches!(c, '\'' | '"' | '\\' | '<' | '>') || c.is_control())
        {
            return Err(StartupError::Invalid(format!(
                "server.base_url {base:?} cannot be served in /user/lib"
            )));
        }
        let dev_login = dev_login_active(settings, site);
        let google_alias = settings.web_client_provider.clone();
        if let Some(alias) = &google_alias {
            let known = login.providers().any(|(name, _)| name == alias)
                || (dev_login && alias == conductor_auth::DEV_PROVIDER);
            if !known {
                return Err(StartupError::Invalid(format!(
                    "auth.web_client_provider names {alias:?}, which is not a configured (and active) provider"
                )));
            }
        }
        Ok(Self {
            accounts,
            api_keys,
            trusted_proxies: site.trusted_proxies.to_vec(),
            login,
            dev_login,
            google_alias,
            token_in_query: settings.token_in_query,
            secure_cookies: base_url.scheme() == "https",
            base_url: base_url.clone(),
            clock,
            lib_js: LIB_JS.replace(BASE_URL_PLACEHOLDER, base),
            lib_mjs: LIB_MJS.replace(BASE_URL_PLACEHOLDER, base),
        })
    }

    /// What `/user/check` offers a visitor: each provider's login URL returning to `next`, and its name; the
    /// `dev` provider where it is active, and the `web_client_provider` again as `google` (the web clients read
    /// `providers.google.url` only).
    pub fn login_providers(&self, next: &str) -> serde_json::Map<String, serde_json::Value> {
        let dev = self
            .dev_login
            .then_some((conductor_auth::DEV_PROVIDER, "Development login"));
        let mut providers: serde_json::Map<String, serde_json::Value> = self
            .login
            .providers()
            .chain(dev)
            .map(|(name, display)| {
                let listed = serde_json::json!({"url": self.login_url(name, next), "name": display});
                (name.to_owned(), listed)
            })
            .collect();
        if let Some(listed) = self
            .google_alias
            .as_ref()
            .and_then(|alias| providers.get(alias).cloned())
        {
            providers.entry("google").or_insert(listed);
        }
        providers
    }

    /// `<base_url>/oauth/<provider>/login?next=<next>`: the URL `/user/check` offers for each provider.
    pub fn login_url(&self, provider: &str, next: &str) -> String {
        let mut url = self.base_url.clone();
        url.set_path(&format!(
            "{}/oauth/{provider}/login",
            self.base_url.path().trim_end_matches('/')
        ));
        url.query_pairs_mut().append_pair("next", next);
        url.into()
    }
}

/// Accounts with the configured signing key and token policy; `user_ttl` overrides `auth.user_token_ttl`
/// (`token mint --ttl`).
pub(crate) fn accounts(
    settings: &AuthSettings,
    site: Site<'_>,
    repositories: &Repositories,
    clock: Arc<dyn Clock>,
    user_ttl: Option<std::time::Duration>,
) -> Result<Accounts, StartupError> {
    let keys = Arc::new(load_keys(settings, site)?);
    tracing::info!(
        kid = keys.current().kid(),
        retired = keys.retired().len(),
        "signing key loaded"
    );
    let tokens = TokenIssuer::new(
        keys,
        TokenPolicy {
            issuer: site.base_url.to_string(),
            user_ttl: user_ttl.unwrap_or(settings.user_token_ttl),
            permission_ttl: settings.permission_token_ttl,
            permission_aud: settings.permission_token_aud,
        },
    );
    let permissions = PermissionService::new(repositories.permissions.clone());
    Ok(Accounts::new(
        tokens,
        repositories.users.clone(),
        permissions,
        clock,
    ))
}

/// The signing key from the settings: a PEM file, PEM text (the env or the original's bundle), or in
/// development a generated pair under `<data_dir>/keys`. Production without keys never gets here.
fn load_keys(settings: &AuthSettings, site: Site<'_>) -> Result<KeySet, StartupError> {
    let keys = &settings.keys;
    let retired = keys
        .retired_public_key_files
        .iter()
        .map(|path| {
            let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                path: path.clone(),
                source,
            })?;
            PublicKey::from_pem(&pem, &path.display().to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let public_pem = match (&keys.public_key_file, &keys.public_key_pem) {
        (Some(path), _) => Some(std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.clone(),
            source,
        })?),
        (None, pem) => pem.clone(),
    };
    let set = match (&keys.private_key_file, &keys.private_key_pem) {
        (Some(path), _) => {
            let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                path: path.clone(),
                source,
            })?;
            KeySet::from_pems(&pem, public_pem.as_deref(), retired)?
        }
        (None, Some(pem)) => KeySet::from_pems(pem.expose(), public_pem.as_deref(), retired)?,
        (None, None) => {
            tracing::warn!("no signing key configured: using the development key pair under data_dir/keys");
            KeySet::development(&site.data_dir.join("keys"), retired)?
        }
    };
    Ok(set)
}

fn provider_configs(settings: &AuthSettings, base: &Url) -> Result<Vec<ProviderConfig>, StartupError> {
    settings
        .providers
        .iter()
        .map(|(name, provider)| {
            let client_secret = match (&provider.client_secret, &provider.client_secret_file) {
                (Some(secret), _) => Some(SecretString::from(secret.expose().to_owned())),
                (None, Some(path)) => {
                    let secret =
                        std::fs::read_to_string(path).map_err(|source| StartupError::ClientSecretFile {
                            provider: name.clone(),
                            path: path.clone(),
                            source,
                        })?;
                    Some(SecretString::from(secret.trim().to_owned()))
                }
                (None, None) => None,
            };
            // Google's registered redirect URI is the original's `/oauth/google_callback`.
            let callback = if name == "google" {
                "oauth/google_callback".to_owned()
            } else {
                format!("oauth/{name}/callback")
            };
            let mut redirect_url = base.clone();
            redirect_url.set_path(&format!("{}/{callback}", base.path().trim_end_matches('/')));
            Ok(ProviderConfig {
                name: name.clone(),
                display_name: provider.display_name.clone().unwrap_or_else(|| name.clone()),
                issuer_url: provider.issuer_url.clone(),
                client_id: provider.client_id.clone(),
                client_secret,
                scopes: provider.scopes.clone(),
                redirect_url,
            })
        })
        .collect()
}

/// The `dev` provider runs only where nobody else can reach it: a loopback base URL and a loopback listening
/// address (a loopback base URL on `0.0.0.0` is reachable by anyone who reaches the port), outside production.
fn dev_login_active(settings: &AuthSettings, site: Site<'_>) -> bool {
    if !settings.dev_login {
        return false;
    }
    let base_url_loopback = match site.base_url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    let bind_loopback = site.bind.ip().is_loopback();
    if !base_url_loopback || !bind_loopback {
        tracing::warn!(base_url = %site.base_url, bind = %site.bind, "auth.dev_login is set but the base URL or the listening address is not loopback: the dev provider stays off");
    }
    base_url_loopback && bind_loopback && !site.production
}
