//! Layered configuration (DESIGN §9). The only module that reads the process environment.
//!
//! Layers, later wins: `config/default.toml` → `config/$CONDUCTOR_ENV.toml` (default `development`) →
//! `config/local.toml` → the file named by `CONDUCTOR_CONFIG` → the original `OS_*` variables →
//! `CONDUCTOR__SECTION__KEY` variables. Each layer is first checked on its own, so an unknown key or a malformed
//! value is reported with the layer it came from; then all are merged into one typed [`Settings`].

pub mod auth;
pub mod datastore;
pub mod loader;
pub mod search;
pub mod server;

mod layers;
mod original;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use config::{Config, ConfigError, File, FileFormat};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize, Serializer};
use url::Url;

pub use self::auth::{AuthSettings, GOOGLE_ISSUER, KeySettings, ProviderSettings, Secret};
pub use self::datastore::{DatastoreBackend, DatastoreSettings, S3Settings};
pub use self::loader::{CompatSettings, LoaderSettings};
pub use self::search::{OpenSearchSettings, SearchBackend, SearchSettings};
pub use self::server::{CorsSettings, ServerSettings};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{layer}: {message}")]
    Layer { layer: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The typed settings, deserialized once and passed down.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    /// Where the embedded tier keeps its files (SQLite database, datastore, index, dev keys).
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub cache: CacheSettings,
    pub auth: AuthSettings,
    pub datastore: DatastoreSettings,
    pub search: SearchSettings,
    pub loader: LoaderSettings,
    pub compat: CompatSettings,
    /// `CONDUCTOR_ENV`: chooses the profile file, and `production` turns fallbacks into errors.
    #[serde(skip)]
    pub profile: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://<path>` or `postgres://…`. Unset: `sqlite://<data_dir>/conductor.db`.
    pub url: Option<ConnectionUrl>,
    pub pool_size: u32,
    /// Apply pending migrations when `serve` starts; otherwise `/readyz` stays 503 until `conductor migrate`.
    pub auto_migrate: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Redis for os-api's cache (cleared after loads) and shared state. Unset: in-process only.
    pub redis_url: Option<ConnectionUrl>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings::default(),
            data_dir: PathBuf::from("var"),
            database: DatabaseSettings::default(),
            cache: CacheSettings::default(),
            auth: AuthSettings::default(),
            datastore: DatastoreSettings::default(),
            search: SearchSettings::default(),
            loader: LoaderSettings::default(),
            compat: CompatSettings::default(),
            profile: "development".to_owned(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 8,
            auto_migrate: true,
        }
    }
}

/// A connection URL that may carry a password: `Debug` and `config show` print it with the password redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn redacted(&self) -> String {
        match Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("REDACTED"));
                // Brackets would be percent-encoded inside the URL; add them after, for the eye.
                String::from(url).replacen(":REDACTED@", ":[REDACTED]@", 1)
            }
            Ok(url) => url.into(),
            // Unparseable: it may still hold a secret, so show only its scheme.
            Err(_) => format!("{}[REDACTED]", self.0.split_once("://").map_or("", |(s, _)| s)),
        }
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for ConnectionUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

/// A snapshot of the process environment, so loading is testable without touching the real one.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// `CONDUCTOR_ENV`: `development` unless set.
    pub fn profile(&self) -> &str {
        self.get("CONDUCTOR_ENV").unwrap_or("development")
    }
}

impl Settings {
    /// Loads the layers from `config_dir` and `env`, checks each, and merges them.
    pub fn load(config_dir: &Path, env: &Environment) -> Result<Self, SettingsError> {
        let layers = layers::layers(config_dir, env)?;
        for layer in &layers {
            let alone = Config::builder()
                .add_source(vec![layer.source.clone_into_box()])
                .build()
                .and_then(Config::try_deserialize::<Self>);
            if let Err(error) = alone {
                return Err(SettingsError::Layer {
                    layer: layer.name.clone(),
                    message: layers::describe(&error, layer),
                });
            }
        }
        let merged = layers.into_iter().fold(Config::builder(), |builder, layer| {
            builder.add_source(vec![layer.source])
        });
        // Each layer deserialized alone, so the merge can only fail on what no single layer had.
        let settings: Self = merged
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|error| SettingsError::Layer {
                layer: "merged configuration".into(),
                message: error.to_string(),
            })?;
        let mut settings = settings;
        settings.profile = env.profile().to_owned();
        settings.validate()?;
        Ok(settings)
    }
}

impl Settings {
    pub fn is_production(&self) -> bool {
        self.profile == "production"
    }

    /// `auth.redirect_allowlist` with `server.base_url`, parsed.
    pub fn redirect_allowlist(&self) -> Result<conductor_auth::RedirectAllowlist, SettingsError> {
        self.auth.redirect_allowlist(&self.server.base_url)
    }

    /// The database to use: `database.url`, or the SQLite file under `data_dir`.
    pub fn database_url(&self) -> ConnectionUrl {
        self.database.url.clone().unwrap_or_else(|| {
            ConnectionUrl::new(format!(
                "sqlite://{}",
                self.data_dir.join("conductor.db").display()
            ))
        })
    }

    /// The origins CORS allows, each as `scheme://host[:port]`. `*` is refused: every client calls with
    /// credentials, and a wildcard with credentials would let any site act as the user.
    pub fn cors_origins(&self) -> Result<Vec<String>, SettingsError> {
        let invalid = |message: String| SettingsError::Invalid {
            key: "server.cors.allowed_origins",
            message,
        };
        match &self.server.cors.allowed_origins {
            // The configured front-ends only: the service's own origin needs no CORS.
            None => Ok(self::auth::redirect_entries(&self.auth.redirect_allowlist)?.origins()),
            Some(origins) => origins
                .iter()
                .map(|raw| {
                    if raw.trim() == "*" {
                        return Err(invalid(
                            "`*` cannot be allowed with credentials; list the origins".into(),
                        ));
                    }
                    let url = Url::parse(raw.trim()).map_err(|e| invalid(format!("{raw:?}: {e}")))?;
                    match url.origin() {
                        origin @ url::Origin::Tuple(..) => Ok(origin.ascii_serialization()),
                        url::Origin::Opaque(_) => Err(invalid(format!("{raw:?} has no origin"))),
                    }
                })
                .collect(),
        }
    }

    /// The effective configuration as TOML, with secrets redacted: what `conductor config show` prints.
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        let mut shown = self.clone();
        shown.database.url = Some(self.database_url());
        toml::to_string_pretty(&shown)
    }
}
