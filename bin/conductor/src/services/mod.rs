//! The services the gateway and the command line run, one module per domain crate: `auth` (identity and login),
//! `datastore` (upload signing and the local files), `search`, `loader`. Each is built from its own settings
//! section and the [`Site`] it runs on, and [`Services::build`] builds them all once, for `serve` and for every
//! command that works on the service's data (`token`, `permissions`, `search`, `package`, `registry`). Building
//! takes no lock a serving gateway holds: the embedded index takes its one writer at the first write, so commands
//! run beside a gateway (and an index write one cannot make is queued in the outbox, which the gateway drains).

pub mod auth;
pub mod datastore;
pub mod loader;
pub mod search;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use conductor_core::{Clock, SystemClock};
use conductor_store::{Database, DatabaseUrl, StoreError};
use url::Url;

use crate::settings::{Settings, SettingsError};

#[derive(Debug, thiserror::Error)]
/// Why the services could not be built (or the gateway could not start).
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("signing key: {0}")]
    Keys(#[from] conductor_auth::KeyError),
    #[error("login providers: {0}")]
    Login(#[source] conductor_auth::oidc::LoginError),
    #[error("auth.providers.{provider}.client_secret_file {}: {source}", path.display())]
    ClientSecretFile {
        provider: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the local datastore under data_dir: {0}")]
    LocalDatastore(#[source] std::io::Error),
    #[error("datastore: {0}")]
    S3(#[source] conductor_datastore::DatastoreError),
    #[error("search: {0}")]
    Index(#[source] conductor_search::SearchError),
    #[error("the os-types vocabulary: {0}")]
    Vocabulary(#[source] serde_json::Error),
    /// A setting that is missing or cannot work, with why (no underlying error).
    #[error("{0}")]
    Invalid(String),
}

/// What every service knows of where it runs, besides its own settings section.
#[derive(Clone, Copy, Debug)]
pub struct Site<'a> {
    /// The embedded tier's folder (database, datastore, index, development keys).
    pub data_dir: &'a Path,
    /// The public URL clients reach the service at.
    pub base_url: &'a Url,
    pub bind: SocketAddr,
    /// `CONDUCTOR_ENV=production`: fallbacks are errors.
    pub production: bool,
    /// `server.trusted_proxies`.
    pub trusted_proxies: &'a [std::net::IpAddr],
}

impl<'a> Site<'a> {
    pub fn of(settings: &'a Settings) -> Self {
        Self {
            data_dir: &settings.data_dir,
            base_url: &settings.server.base_url,
            bind: settings.server.bind,
            production: settings.is_production(),
            trusted_proxies: &settings.server.trusted_proxies,
        }
    }
}

/// Everything a request or a command works with, built from the settings: the one place that knows which
/// adapters run.
pub struct Services {
    pub database: Arc<Database>,
    pub clock: Arc<dyn Clock>,
    pub identity: auth::Identity,
    pub storage: datastore::Storage,
    pub search: Arc<search::SearchState>,
    pub loading: loader::Loading,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

impl Services {
    /// Opens the database (`pool_size` connections) and builds every service on it. Nothing is started: the
    /// gateway starts the workers and background tasks it wants; a command uses what it needs.
    pub fn build(settings: &Settings, pool_size: u32) -> Result<Self, StartupError> {
        let parts = LoadingParts::build(settings, pool_size)?;
        let identity = auth::Identity::build(
            &settings.auth,
            Site::of(settings),
            parts.database.repositories(),
            rate_counter(&settings.cache)?,
            parts.clock.clone(),
        )?;
        Ok(Self {
            database: parts.database,
            clock: parts.clock,
            identity,
            storage: parts.storage,
            search: parts.search,
            loading: parts.loading,
        })
    }

    /// Only what loading needs (the database, datastore, search and the loader), for `conductor package`: no
    /// signing keys are read, which cost a tenth of a second of RSA key checks before every command-line load.
    pub fn build_loading(
        settings: &Settings,
        pool_size: u32,
    ) -> Result<(Arc<Database>, loader::Loading), StartupError> {
        let parts = LoadingParts::build(settings, pool_size)?;
        Ok((parts.database, parts.loading))
    }
}

/// Every service but identity.
struct LoadingParts {
    database: Arc<Database>,
    clock: Arc<dyn Clock>,
    storage: datastore::Storage,
    search: Arc<search::SearchState>,
    loading: loader::Loading,
}

impl LoadingParts {
    fn build(settings: &Settings, pool_size: u32) -> Result<Self, StartupError> {
        let database_url = DatabaseUrl::parse(settings.database_url().expose())?;
        let database = Arc::new(Database::open(&database_url, pool_size)?);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let site = Site::of(settings);
        let storage = datastore::Storage::build(&settings.datastore, site, clock.clone())?;
        let search =
            search::SearchState::build(&settings.search, site, database.repositories(), clock.clone())?;
        let loading = loader::Loading::build(
            loader::LoadingSettings {
                loader: &settings.loader,
                cache: &settings.cache,
                progress_as_fraction: settings.compat.progress_as_fraction,
            },
            &database,
            &storage,
            &search,
            clock.clone(),
        )?;
        Ok(Self {
            database,
            clock,
            storage,
            search,
            loading,
        })
    }
}

/// Where API key uses are counted: Redis when `cache.redis_url` is set (one count for every replica), else in
/// process.
fn rate_counter(
    cache: &crate::settings::CacheSettings,
) -> Result<Arc<dyn conductor_auth::rate::RateCounter>, StartupError> {
    Ok(match &cache.redis_url {
        Some(url) => Arc::new(
            conductor_store::redis_rates::RedisRates::new(url.expose()).map_err(StartupError::Invalid)?,
        ),
        None => Arc::new(conductor_auth::rate::LocalRates::default()),
    })
}
