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

const ENV_PREFIX: &str = "CONDUCTOR";
const ENV_SEPARATOR: &str = "__";
/// Keys whose `CONDUCTOR__` variable is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "server.cors.allowed_origins",
    "auth.redirect_allowlist",
    "auth.keys.retired_public_key_files",
    "datastore.allowed_types",
];

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

/// One configuration layer: its name in error messages, and the source it reads.
struct Layer {
    name: String,
    source: Box<dyn config::Source + Send + Sync>,
    from_conductor_variables: bool,
}

impl Settings {
    /// Loads the layers from `config_dir` and `env`, checks each, and merges them.
    pub fn load(config_dir: &Path, env: &Environment) -> Result<Self, SettingsError> {
        let layers = layers(config_dir, env)?;
        for layer in &layers {
            let alone = Config::builder()
                .add_source(vec![layer.source.clone_into_box()])
                .build()
                .and_then(Config::try_deserialize::<Self>);
            if let Err(error) = alone {
                return Err(SettingsError::Layer {
                    layer: layer.name.clone(),
                    message: describe(&error, layer),
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

    fn validate(&self) -> Result<(), SettingsError> {
        if !matches!(self.server.base_url.scheme(), "http" | "https") || self.server.base_url.host().is_none()
        {
            return Err(SettingsError::Invalid {
                key: "server.base_url",
                message: format!("must be an http(s) URL with a host, got {}", self.server.base_url),
            });
        }
        if self.server.body_limit.as_u64() == 0 {
            return Err(SettingsError::Invalid {
                key: "server.body_limit",
                message: "must be above zero".into(),
            });
        }
        if self.database.pool_size == 0 {
            return Err(SettingsError::Invalid {
                key: "database.pool_size",
                message: "must be at least 1".into(),
            });
        }
        conductor_store::DatabaseUrl::parse(self.database_url().expose()).map_err(|e| {
            SettingsError::Invalid {
                key: "database.url",
                message: e.to_string(),
            }
        })?;
        if let Some(redis) = &self.cache.redis_url
            && !matches!(
                Url::parse(redis.expose())
                    .map(|u| u.scheme().to_owned())
                    .as_deref(),
                Ok("redis" | "rediss")
            )
        {
            return Err(SettingsError::Invalid {
                key: "cache.redis_url",
                message: format!("must be a redis:// or rediss:// URL, got {}", redis.redacted()),
            });
        }
        self.cors_origins()?;
        self.validate_auth()?;
        self.validate_datastore()?;
        self.validate_loader()?;
        self.validate_search()
    }

    fn validate_loader(&self) -> Result<(), SettingsError> {
        let invalid = |key: &'static str, message: String| SettingsError::Invalid { key, message };
        if self.loader.heartbeat_timeout < std::time::Duration::from_secs(1) {
            return Err(invalid("loader.heartbeat_timeout", "must be at least 1s".into()));
        }
        for entry in &self.loader.fetch_allowlist {
            loader::check_prefix(entry).map_err(|m| invalid("loader.fetch_allowlist", m))?;
        }
        for entry in &self.loader.hook_allowlist {
            loader::check_prefix(entry).map_err(|m| invalid("loader.hook_allowlist", m))?;
        }
        Ok(())
    }

    fn validate_search(&self) -> Result<(), SettingsError> {
        let invalid = |key: &'static str, message: String| SettingsError::Invalid { key, message };
        if self.search.max_size == 0 {
            return Err(invalid("search.max_size", "must be at least 1".into()));
        }
        if self.search.backend == SearchBackend::OpenSearch && self.search.opensearch.url.is_none() {
            return Err(invalid(
                "search.opensearch.url",
                "is required when search.backend = \"opensearch\"".into(),
            ));
        }
        // OpenSearch's index naming rules: lower case, no path or wildcard characters, no leading _ - +.
        let index = &self.search.opensearch.index;
        let forbidden = |c: char| c.is_ascii_uppercase() || "\\/*?\"<>| ,#:".contains(c);
        if index.is_empty() || index.starts_with(['_', '-', '+']) || index.chars().any(forbidden) {
            return Err(invalid(
                "search.opensearch.index",
                format!("{index:?} is not an index name"),
            ));
        }
        Ok(())
    }

    fn validate_datastore(&self) -> Result<(), SettingsError> {
        let datastore = &self.datastore;
        let invalid = |key: &'static str, message: &str| SettingsError::Invalid {
            key,
            message: message.to_owned(),
        };
        if datastore.url_ttl.is_zero() || datastore.url_ttl > std::time::Duration::from_secs(3600) {
            return Err(invalid("datastore.url_ttl", "must be above zero and at most 1h"));
        }
        if datastore.max_file_size.as_u64() == 0 {
            return Err(invalid("datastore.max_file_size", "must be above zero"));
        }
        if datastore.allowed_types.is_empty() {
            return Err(invalid(
                "datastore.allowed_types",
                "must list at least one content type",
            ));
        }
        if datastore.backend == DatastoreBackend::S3 {
            let s3 = &datastore.s3;
            for (key, missing) in [
                ("datastore.s3.endpoint", s3.endpoint.is_none()),
                (
                    "datastore.s3.bucket",
                    s3.bucket.as_deref().is_none_or(str::is_empty),
                ),
                (
                    "datastore.s3.access_key",
                    s3.access_key.as_deref().is_none_or(str::is_empty),
                ),
                ("datastore.s3.secret_key", s3.secret_key.is_none()),
            ] {
                if missing {
                    return Err(invalid(key, "is required when datastore.backend = \"s3\""));
                }
            }
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), SettingsError> {
        let auth = &self.auth;
        let invalid = |key: &'static str, message: String| SettingsError::Invalid { key, message };
        self.redirect_allowlist()?;
        for (key, ttl) in [
            ("auth.user_token_ttl", auth.user_token_ttl),
            ("auth.permission_token_ttl", auth.permission_token_ttl),
        ] {
            if ttl.is_zero() {
                return Err(invalid(key, "must be above zero".into()));
            }
        }
        for (name, provider) in &auth.providers {
            let valid_name = !name.is_empty()
                && name.len() <= 40
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !valid_name || name == conductor_auth::DEV_PROVIDER {
                return Err(invalid(
                    "auth.providers",
                    format!("{name:?} is not a provider name: use a-z, 0-9, '-' and '_' (and not \"dev\")"),
                ));
            }
            if provider.client_secret.is_some() && provider.client_secret_file.is_some() {
                return Err(invalid(
                    "auth.providers",
                    format!("{name}: set client_secret or client_secret_file, not both"),
                ));
            }
            if !provider.scopes.iter().any(|s| s == "openid") {
                return Err(invalid(
                    "auth.providers",
                    format!("{name}: scopes must include \"openid\""),
                ));
            }
        }
        if self.is_production() {
            if auth.dev_login {
                return Err(invalid(
                    "auth.dev_login",
                    "the dev provider cannot be enabled in production".into(),
                ));
            }
            if !auth.keys.is_configured() {
                return Err(invalid(
                    "auth.keys",
                    "production needs a signing key: set auth.keys.private_key_file (or OS_CONDUCTOR_SECRETS_0..3)".into(),
                ));
            }
        }
        Ok(())
    }

    pub fn is_production(&self) -> bool {
        self.profile == "production"
    }

    /// `auth.redirect_allowlist`, parsed.
    /// `auth.redirect_allowlist`, and always the service's own `server.base_url`: a deployment that moves its
    /// base URL can still log in back to its own pages.
    pub fn redirect_allowlist(&self) -> Result<conductor_auth::RedirectAllowlist, SettingsError> {
        let mut entries = self.auth.redirect_allowlist.clone();
        entries.push(self.server.base_url.to_string());
        Self::allowlist(&entries)
    }

    fn allowlist(entries: &[String]) -> Result<conductor_auth::RedirectAllowlist, SettingsError> {
        conductor_auth::RedirectAllowlist::new(entries).map_err(|e| SettingsError::Invalid {
            key: "auth.redirect_allowlist",
            message: e.to_string(),
        })
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
            None => Ok(Self::allowlist(&self.auth.redirect_allowlist)?.origins()),
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

fn layers(config_dir: &Path, env: &Environment) -> Result<Vec<Layer>, SettingsError> {
    let file = |path: PathBuf, required: bool| Layer {
        name: path.display().to_string(),
        source: Box::new(File::from(path).format(FileFormat::Toml).required(required)),
        from_conductor_variables: false,
    };
    let mut layers = vec![
        file(config_dir.join("default.toml"), false),
        file(config_dir.join(format!("{}.toml", env.profile())), false),
        file(config_dir.join("local.toml"), false),
    ];
    if let Some(path) = env.get("CONDUCTOR_CONFIG") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(SettingsError::Layer {
                layer: format!("CONDUCTOR_CONFIG={}", path.display()),
                message: "no such file".into(),
            });
        }
        layers.push(file(path, true));
    }
    layers.push(Layer {
        name: "the original OS_* variables".into(),
        source: Box::new(original_variables(env)?),
        from_conductor_variables: false,
    });
    let ours: config::Map<String, String> = env
        .vars
        .iter()
        .filter(|(k, _)| k.starts_with("CONDUCTOR__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut environment = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator(ENV_SEPARATOR)
        .separator(ENV_SEPARATOR)
        .try_parsing(true)
        .list_separator(",");
    for key in LIST_KEYS {
        environment = environment.with_list_parse_key(key);
    }
    layers.push(Layer {
        name: "CONDUCTOR__* variables".into(),
        source: Box::new(environment.source(Some(ours))),
        from_conductor_variables: true,
    });
    Ok(layers)
}

/// The original service's variables, mapped onto our keys (DESIGN §9). Later issues add theirs here.
fn original_variables(env: &Environment) -> Result<MappedVariables, SettingsError> {
    let mut values = config::Map::new();
    let mut set = |var: &str, key: &str, value: String| {
        values.insert(key.to_owned(), config::Value::new(Some(&var.to_owned()), value));
    };
    if let Some(url) = env.get("OS_BASE_URL") {
        set("OS_BASE_URL", "server.base_url", url.to_owned());
    }
    if let Some(url) = env.get("OS_CONDUCTOR_ENGINE") {
        set("OS_CONDUCTOR_ENGINE", "database.url", url.to_owned());
    }
    if let Some(host) = env.get("OS_API_CACHE") {
        // The original took a bare host and connected on Redis's default port.
        let url = if host.contains("://") {
            host.to_owned()
        } else {
            format!("redis://{host}:6379")
        };
        set("OS_API_CACHE", "cache.redis_url", url);
    }
    // Setting the original's Elasticsearch address selects the OpenSearch index, as it did.
    if let Some(address) = env.get("OS_ELASTICSEARCH_ADDRESS") {
        let url = if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        set(
            "OS_ELASTICSEARCH_ADDRESS",
            "search.backend",
            "opensearch".to_owned(),
        );
        set("OS_ELASTICSEARCH_ADDRESS", "search.opensearch.url", url);
    }
    if let Some(index) = env.get("OS_ES_PACKAGES_INDEX_NAME") {
        set(
            "OS_ES_PACKAGES_INDEX_NAME",
            "search.opensearch.index",
            index.to_owned(),
        );
    }
    // Setting the original's S3 variables selects the S3 datastore, as they did.
    if let Some(host) = env.get("OS_S3_HOSTNAME") {
        let (endpoint, path_style) = datastore::endpoint_from_original(host, env.get("OS_S3_PORT"));
        set("OS_S3_HOSTNAME", "datastore.backend", "s3".to_owned());
        set("OS_S3_HOSTNAME", "datastore.s3.endpoint", endpoint);
        set(
            "OS_S3_HOSTNAME",
            "datastore.s3.path_style",
            path_style.to_string(),
        );
    }
    for (var, key) in [
        ("OS_STORAGE_BUCKET_NAME", "datastore.s3.bucket"),
        ("OS_ACCESS_KEY_ID", "datastore.s3.access_key"),
        ("OS_SECRET_ACCESS_KEY", "datastore.s3.secret_key"),
    ] {
        if let Some(value) = env.get(var) {
            set(var, key, value.to_owned());
        }
    }
    let pieces: Vec<&str> = (0..conductor_auth::bundle::PIECES)
        .filter_map(|i| env.get(&format!("OS_CONDUCTOR_SECRETS_{i}")))
        .collect();
    if !pieces.is_empty() {
        let bundle = conductor_auth::SecretsBundle::decode(&pieces).map_err(|e| SettingsError::Layer {
            layer: "OS_CONDUCTOR_SECRETS_0..3".into(),
            message: e.to_string(),
        })?;
        let var = "OS_CONDUCTOR_SECRETS";
        set(
            var,
            "auth.keys.private_key_pem",
            bundle.private_pem.expose_secret().to_owned(),
        );
        set(var, "auth.keys.public_key_pem", bundle.public_pem);
        if let (Some(id), Some(secret)) = (bundle.google_client_id, bundle.google_client_secret) {
            set(var, "auth.providers.google.issuer_url", GOOGLE_ISSUER.to_owned());
            set(var, "auth.providers.google.client_id", id);
            set(
                var,
                "auth.providers.google.client_secret",
                secret.expose_secret().to_owned(),
            );
            set(var, "auth.providers.google.display_name", "Google".to_owned());
        }
    }
    Ok(MappedVariables(values))
}

/// A configuration source of already-mapped keys, each value remembering the variable it came from.
#[derive(Clone, Debug)]
struct MappedVariables(config::Map<String, config::Value>);

impl config::Source for MappedVariables {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, ConfigError> {
        Ok(self.0.clone())
    }
}

/// A config error as a deployer wants to read it: the full key, and for a `CONDUCTOR__` layer the variable.
fn describe(error: &ConfigError, layer: &Layer) -> String {
    let (message, key) = match error {
        ConfigError::At {
            error: inner,
            key,
            origin,
        } => match unknown_field(inner) {
            Some((field, expected)) => {
                let full = key
                    .as_deref()
                    .map_or_else(|| field.to_owned(), |k| format!("{k}.{field}"));
                let from = origin.as_deref().map(|o| format!(" in {o}")).unwrap_or_default();
                (format!("unknown key `{full}`{from};{expected}"), Some(full))
            }
            None => (error.to_string(), key.clone()),
        },
        ConfigError::Message(_) => match unknown_field(error) {
            Some((field, expected)) => (
                format!("unknown key `{field}`;{expected}"),
                Some(field.to_owned()),
            ),
            None => (error.to_string(), None),
        },
        ConfigError::Type { key, .. } => (error.to_string(), key.clone()),
        other => (other.to_string(), None),
    };
    match key {
        Some(key) if layer.from_conductor_variables => format!("{message} (set by {})", variable_for(&key)),
        _ => message,
    }
}

/// serde's "unknown field `x`, expected …" as (`x`, " expected …").
fn unknown_field(error: &ConfigError) -> Option<(&str, &str)> {
    let ConfigError::Message(message) = error else {
        return None;
    };
    let (field, expected) = message.strip_prefix("unknown field `")?.split_once('`')?;
    Some((field, expected.trim_start_matches(',')))
}

/// The `CONDUCTOR__` variable that sets `key`.
fn variable_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{ENV_SEPARATOR}{}",
        key.replace('.', ENV_SEPARATOR).to_uppercase()
    )
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn load(files: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let dir = tempfile_dir();
        for (name, text) in files {
            fs::write(dir.join(name), text).unwrap();
        }
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.replace("{dir}", &dir.display().to_string())))
            .collect();
        Settings::load(&dir, &Environment::from_pairs(env))
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("conductor-settings-{}", rand_suffix()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rand_suffix() -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
    }

    #[test]
    fn the_shipped_default_toml_equals_the_built_in_defaults() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let text = fs::read_to_string(shipped.join("default.toml")).unwrap();
        let settings = load(&[("default.toml", &text)], &[]).unwrap();
        assert_eq!(settings, Settings::default());
        for profile in ["development", "production", "test"] {
            let text = fs::read_to_string(shipped.join(format!("{profile}.toml"))).unwrap();
            let key = (
                "CONDUCTOR__AUTH__KEYS__PRIVATE_KEY_FILE",
                "/etc/conductor/private.pem",
            );
            load(
                &[(&format!("{profile}.toml"), &text)],
                &[("CONDUCTOR_ENV", profile), key],
            )
            .unwrap_or_else(|e| panic!("config/{profile}.toml: {e}"));
        }
    }

    #[test]
    fn later_layers_win() {
        let settings = load(
            &[
                (
                    "default.toml",
                    "data_dir = 'a'\n[database]\npool_size = 2\nauto_migrate = false",
                ),
                ("development.toml", "data_dir = 'b'"),
                ("local.toml", "[server]\nbind = '127.0.0.1:9001'"),
                (
                    "extra.toml",
                    "[server]\nbind = '127.0.0.1:9002'\nbase_url = 'https://extra.example'",
                ),
            ],
            &[
                ("CONDUCTOR_CONFIG", "{dir}/extra.toml"),
                ("OS_BASE_URL", "https://os.example/"),
                ("CONDUCTOR__DATABASE__POOL_SIZE", "5"),
                ("CONDUCTOR__DATA_DIR", "/srv/conductor"),
            ],
        )
        .unwrap();
        assert_eq!(settings.data_dir, PathBuf::from("/srv/conductor"));
        assert_eq!(settings.server.bind, "127.0.0.1:9002".parse().unwrap());
        assert_eq!(
            settings.server.base_url.as_str(),
            "https://os.example/",
            "OS_* over files"
        );
        assert_eq!(settings.database.pool_size, 5, "CONDUCTOR__ over everything");
        assert!(!settings.database.auto_migrate);
        assert_eq!(
            settings.database_url().expose(),
            "sqlite:///srv/conductor/conductor.db"
        );
    }

    #[test]
    fn the_profile_file_follows_conductor_env() {
        let files = [
            ("production.toml", "data_dir = 'prod'"),
            ("development.toml", "data_dir = 'dev'"),
        ];
        assert_eq!(load(&files, &[]).unwrap().data_dir, PathBuf::from("dev"));
        let production = [
            ("CONDUCTOR_ENV", "production"),
            ("CONDUCTOR__AUTH__KEYS__PRIVATE_KEY_FILE", "/k.pem"),
        ];
        assert_eq!(load(&files, &production).unwrap().data_dir, PathBuf::from("prod"));
    }

    #[test]
    fn original_variables_map_onto_our_keys() {
        let settings = load(
            &[],
            &[
                ("OS_CONDUCTOR_ENGINE", "postgresql://postgres@db/postgres"),
                ("OS_API_CACHE", "redis-host"),
            ],
        )
        .unwrap();
        assert_eq!(
            settings.database_url().expose(),
            "postgresql://postgres@db/postgres"
        );
        assert_eq!(
            settings.cache.redis_url.unwrap().expose(),
            "redis://redis-host:6379"
        );
        let ours = load(
            &[],
            &[
                ("OS_CONDUCTOR_ENGINE", "postgresql://a/b"),
                ("CONDUCTOR__DATABASE__URL", "sqlite://x.db"),
            ],
        );
        assert_eq!(ours.unwrap().database_url().expose(), "sqlite://x.db");
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_layer() {
        let error = load(&[("local.toml", "[server]\nbindd = '127.0.0.1:1'")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("local.toml") && error.contains("unknown key `server.bindd`"),
            "{error}"
        );

        let error = load(&[], &[("CONDUCTOR__SERVER__BINDD", "x")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("CONDUCTOR__* variables") && error.contains("`server.bindd`"),
            "{error}"
        );

        let error = load(&[("default.toml", "colour = 'blue'")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("default.toml") && error.contains("unknown key `colour`"),
            "{error}"
        );
    }

    #[test]
    fn malformed_values_name_the_key_and_the_layer() {
        let error = load(&[("development.toml", "[database]\npool_size = 'many'")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("development.toml") && error.contains("database.pool_size"),
            "{error}"
        );

        let error = load(&[], &[("CONDUCTOR__SERVER__BIND", "not-an-address")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("CONDUCTOR__* variables") && error.contains("server.bind"),
            "{error}"
        );

        let error = load(&[], &[("OS_BASE_URL", "not a url")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("OS_") && error.contains("server.base_url"),
            "{error}"
        );

        let error = load(&[], &[("CONDUCTOR__SERVER__BODY_LIMIT", "lots")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("server.body_limit"), "{error}");
    }

    #[test]
    fn semantic_checks_name_the_key() {
        let cases = [
            ("CONDUCTOR__DATABASE__URL", "mysql://db/x", "database.url"),
            ("CONDUCTOR__DATABASE__POOL_SIZE", "0", "database.pool_size"),
            (
                "CONDUCTOR__SERVER__BASE_URL",
                "ftp://x.example",
                "server.base_url",
            ),
            (
                "CONDUCTOR__SERVER__CORS__ALLOWED_ORIGINS",
                "https://a.example,*",
                "server.cors.allowed_origins",
            ),
            ("CONDUCTOR__CACHE__REDIS_URL", "http://cache", "cache.redis_url"),
        ];
        for (var, value, key) in cases {
            let error = load(&[], &[(var, value)]).unwrap_err().to_string();
            assert!(error.starts_with(key), "{var}={value}: {error}");
        }
    }

    #[test]
    fn a_missing_conductor_config_file_is_an_error() {
        let error = load(&[], &[("CONDUCTOR_CONFIG", "/nonexistent/conductor.toml")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("CONDUCTOR_CONFIG=/nonexistent/conductor.toml"),
            "{error}"
        );
    }

    #[test]
    fn cors_defaults_to_the_base_url_origin_and_accepts_lists_from_env() {
        let settings = load(&[], &[]).unwrap();
        assert_eq!(settings.cors_origins().unwrap(), ["http://127.0.0.1:8000"]);
        let listed = load(
            &[],
            &[(
                "CONDUCTOR__SERVER__CORS__ALLOWED_ORIGINS",
                "https://a.example/x,http://b.example:8080",
            )],
        );
        assert_eq!(
            listed.unwrap().cors_origins().unwrap(),
            ["https://a.example", "http://b.example:8080"]
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_show() {
        let settings = load(
            &[],
            &[
                ("CONDUCTOR__DATABASE__URL", "postgres://app:hunter2@db/conductor"),
                ("OS_API_CACHE", "redis://:hunter3@cache:6379"),
            ],
        )
        .unwrap();
        let shown = settings.to_redacted_toml().unwrap();
        let debug = format!("{settings:?}");
        for text in [&shown, &debug] {
            assert!(!text.contains("hunter2") && !text.contains("hunter3"), "{text}");
            assert!(text.contains("postgres://app:[REDACTED]@db/conductor"), "{text}");
        }
    }

    #[test]
    fn the_original_secrets_bundle_sets_keys_and_the_google_provider() {
        let bundle = conductor_auth::SecretsBundle {
            private_pem: secrecy::SecretString::from("PRIVATE PEM"),
            public_pem: "PUBLIC PEM".into(),
            google_client_id: Some("client.apps.googleusercontent.com".into()),
            google_client_secret: Some(secrecy::SecretString::from("g-secret")),
        };
        let pieces = bundle.encode().unwrap();
        let env: Vec<(String, &str)> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("OS_CONDUCTOR_SECRETS_{i}"), p.as_str()))
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let settings = load(&[], &env).unwrap();
        assert_eq!(
            settings.auth.keys.private_key_pem.as_ref().map(Secret::expose),
            Some("PRIVATE PEM")
        );
        assert_eq!(settings.auth.keys.public_key_pem.as_deref(), Some("PUBLIC PEM"));
        let google = &settings.auth.providers["google"];
        assert_eq!(google.issuer_url.as_str(), "https://accounts.google.com/");
        assert_eq!(
            google.client_secret.as_ref().map(Secret::expose),
            Some("g-secret")
        );
        let shown = settings.to_redacted_toml().unwrap();
        assert!(
            !shown.contains("g-secret") && !shown.contains("PRIVATE PEM"),
            "{shown}"
        );

        let error = load(&[], &[("OS_CONDUCTOR_SECRETS_0", "garbage!")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("OS_CONDUCTOR_SECRETS_0..3"), "{error}");
    }

    #[test]
    fn production_refuses_the_dev_provider_and_missing_keys() {
        let error = load(&[], &[("CONDUCTOR_ENV", "production")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("auth.keys"), "{error}");
        let error = load(
            &[],
            &[
                ("CONDUCTOR_ENV", "production"),
                ("CONDUCTOR__AUTH__KEYS__PRIVATE_KEY_FILE", "/k.pem"),
                ("CONDUCTOR__AUTH__DEV_LOGIN", "true"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("auth.dev_login"), "{error}");
    }

    #[test]
    fn auth_values_are_checked() {
        let cases = [
            (
                "CONDUCTOR__AUTH__REDIRECT_ALLOWLIST",
                "not-a-url",
                "auth.redirect_allowlist",
            ),
            ("CONDUCTOR__AUTH__USER_TOKEN_TTL", "0s", "auth.user_token_ttl"),
            (
                "CONDUCTOR__AUTH__PROVIDERS__DEV__ISSUER_URL",
                "https://x.example",
                "auth.providers",
            ),
        ];
        for (var, value, key) in cases {
            let mut env = vec![(var, value)];
            if key == "auth.providers" {
                env.push(("CONDUCTOR__AUTH__PROVIDERS__DEV__CLIENT_ID", "x"));
            }
            let error = load(&[], &env).unwrap_err().to_string();
            assert!(error.starts_with(key), "{var}={value}: {error}");
        }
        let error = load(&[], &[("CONDUCTOR__AUTH__USER_TOKEN_TTL", "fortnight")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("auth.user_token_ttl"), "{error}");
        let settings = load(
            &[],
            &[(
                "CONDUCTOR__AUTH__REDIRECT_ALLOWLIST",
                "https://a.example/app/,https://b.example/",
            )],
        );
        assert_eq!(
            settings.unwrap().cors_origins().unwrap(),
            ["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn the_original_s3_variables_select_the_s3_datastore() {
        let settings = load(
            &[],
            &[
                ("OS_S3_HOSTNAME", "s3.eu-west-1.amazonaws.com"),
                ("OS_STORAGE_BUCKET_NAME", "datastore.openspending.org"),
                ("OS_ACCESS_KEY_ID", "AKID"),
                ("OS_SECRET_ACCESS_KEY", "s3-secret"),
            ],
        )
        .unwrap();
        assert_eq!(settings.datastore.backend, DatastoreBackend::S3);
        let s3 = &settings.datastore.s3;
        assert_eq!(
            s3.endpoint.as_ref().unwrap().as_str(),
            "https://s3.eu-west-1.amazonaws.com/"
        );
        assert!(!s3.path_style);
        assert_eq!(s3.bucket.as_deref(), Some("datastore.openspending.org"));
        assert!(!settings.to_redacted_toml().unwrap().contains("s3-secret"));

        let fake = load(
            &[],
            &[
                ("OS_S3_HOSTNAME", "fakes3"),
                ("OS_S3_PORT", "4567"),
                ("OS_STORAGE_BUCKET_NAME", "b"),
                ("OS_ACCESS_KEY_ID", "a"),
                ("OS_SECRET_ACCESS_KEY", "s"),
            ],
        );
        let fake = fake.unwrap();
        assert_eq!(
            fake.datastore.s3.endpoint.unwrap().as_str(),
            "http://fakes3:4567/"
        );
        assert!(fake.datastore.s3.path_style);

        let error = load(&[], &[("CONDUCTOR__DATASTORE__BACKEND", "s3")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("datastore.s3.endpoint"), "{error}");
        let error = load(&[], &[("CONDUCTOR__DATASTORE__URL_TTL", "3days")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("datastore.url_ttl"), "{error}");
    }

    #[test]
    fn the_original_elasticsearch_variables_select_opensearch() {
        let settings = load(
            &[],
            &[
                ("OS_ELASTICSEARCH_ADDRESS", "elasticsearch:9200"),
                ("OS_ES_PACKAGES_INDEX_NAME", "packages-v2"),
            ],
        );
        let settings = settings.unwrap();
        assert_eq!(settings.search.backend, SearchBackend::OpenSearch);
        assert_eq!(
            settings.search.opensearch.url.unwrap().as_str(),
            "http://elasticsearch:9200/"
        );
        assert_eq!(settings.search.opensearch.index, "packages-v2");
        let error = load(&[], &[("CONDUCTOR__SEARCH__BACKEND", "opensearch")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("search.opensearch.url"), "{error}");
        let error = load(&[], &[("CONDUCTOR__SEARCH__OPENSEARCH__INDEX", "Bad/Name")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("search.opensearch.index"), "{error}");
    }
}
