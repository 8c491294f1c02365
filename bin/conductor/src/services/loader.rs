//! The loader wired to this process's database, datastore, search registry and os-api cache; its workers and the
//! sweep that fails jobs whose worker went away.

use std::sync::Arc;
use std::time::Duration;

use conductor_core::Clock;
use conductor_datastore::UploadSigner;
use conductor_loader::fetch::{DatastoreFirst, DatastoreReads, HttpSource, Located};
use conductor_loader::hooks::HttpHooks;
use conductor_loader::import::RegistryImport;
use conductor_loader::{ApiCache, Loader, LoaderParts, LoaderSettings, NoApiCache, Vocabulary};
use conductor_store::Database;
use conductor_store::redis_cache::RedisApiCache;
use tokio::sync::Notify;

use crate::services::StartupError;
use crate::services::datastore::Storage;
use crate::services::search::SearchState;
use crate::settings::{CacheSettings, LoaderSettings as LoaderSection};

/// The loader, what wakes its workers, and the workers themselves.
#[derive(Debug, Clone)]
pub struct Loading {
    pub loader: Loader,
    /// Notified when a job is queued, so an idle worker starts at once.
    pub wake: Arc<Notify>,
    workers: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// `compat.progress_as_fraction`: `/package/status` reports `progress` as a fraction.
    pub progress_as_fraction: bool,
}

/// The settings the loading service reads: its own section, the cache it clears on publish, and the status
/// shape the deployment's clients expect.
#[derive(Clone, Copy, Debug)]
pub struct LoadingSettings<'a> {
    pub loader: &'a LoaderSection,
    pub cache: &'a CacheSettings,
    pub progress_as_fraction: bool,
}

/// How long a stopping process waits for its loads to give their jobs back.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The datastore's objects: read from disk when they are on this machine, through a signed GET otherwise.
struct SignerReads {
    signer: Arc<dyn UploadSigner>,
    /// The loader reads on blocking threads; signing is async.
    runtime: tokio::runtime::Handle,
}

impl DatastoreReads for SignerReads {
    fn locate(&self, url: &url::Url) -> Option<Located> {
        if let Some(path) = self.signer.local_file(url) {
            return Some(Located::File(path));
        }
        match self.runtime.block_on(self.signer.presign_get(url)) {
            Ok(signed) => signed.map(Located::Signed),
            Err(error) => {
                tracing::warn!(%error, "could not sign a datastore read");
                None
            }
        }
    }
}

impl Loading {
    pub fn build(
        settings: LoadingSettings<'_>,
        database: &Database,
        storage: &Storage,
        search: &SearchState,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let vocabulary = Vocabulary::embedded().map_err(StartupError::Vocabulary)?;
        let cache: Arc<dyn ApiCache> = match &settings.cache.redis_url {
            Some(url) => Arc::new(
                RedisApiCache::new(url.expose())
                    .map_err(|e| StartupError::Invalid(format!("cache.redis_url: {e}")))?,
            ),
            None => Arc::new(NoApiCache),
        };
        let reads: Arc<dyn DatastoreReads> = Arc::new(SignerReads {
            signer: storage.datastore.signer_arc(),
            runtime: tokio::runtime::Handle::current(),
        });
        let datastore = storage.datastore.clone();
        let repositories = database.repositories();
        let loader = Loader::new(LoaderParts {
            vocabulary: Arc::new(vocabulary),
            jobs: repositories.load_jobs.clone(),
            packages: repositories.packages.clone(),
            registry: search.registry.clone(),
            warehouse: database.warehouse(),
            source: Arc::new(DatastoreFirst {
                datastore: Some(reads),
                remote: HttpSource::default(),
            }),
            prefixes: Arc::new(move |owner| datastore.prefixes(owner)),
            cache,
            hooks: Arc::new(HttpHooks),
            clock,
            settings: LoaderSettings {
                fetch_allowlist: settings.loader.fetch_allowlist.clone(),
                max_download: settings.loader.max_download.as_u64(),
                heartbeat_timeout: settings.loader.heartbeat_timeout,
                operator_folder: None,
                hook_allowlist: settings.loader.hook_allowlist.clone(),
            },
        });
        Ok(Self {
            loader,
            wake: Arc::new(Notify::new()),
            workers: Arc::default(),
            progress_as_fraction: settings.progress_as_fraction,
        })
    }

    /// Starts `workers` workers and the stale-job sweep on the current runtime.
    pub fn start(&self, workers: usize) {
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let loader = self.loader.clone();
            let wake = self.wake.clone();
            handles.push(tokio::spawn(async move { loader.work(wake).await }));
        }
        if let Ok(mut running) = self.workers.lock() {
            running.extend(handles);
        }
        let loader = self.loader.clone();
        // Every replica sweeps, workers or not: failing a dead job is the same whoever does it.
        tokio::spawn(async move {
            let every = (loader.settings().heartbeat_timeout / 2).max(Duration::from_millis(500));
            let mut ticker = tokio::time::interval(every);
            while !loader.is_stopping() {
                ticker.tick().await;
                if let Err(e) = loader.fail_stale_jobs().await {
                    tracing::debug!(error = %e, "could not sweep stale load jobs; will retry");
                }
            }
        });
    }

    /// Stops the workers: running loads stop, drop their staging tables and put their jobs back in the queue for
    /// another replica (or this one, restarted). Waits for that, up to a limit.
    pub async fn stop(&self) {
        self.loader.stop();
        self.wake.notify_waiters();
        let handles: Vec<_> = match self.workers.lock() {
            Ok(mut running) => running.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let all = futures_util::future::join_all(handles);
        if tokio::time::timeout(STOP_TIMEOUT, all).await.is_err() {
            tracing::warn!("loads still stopping after {STOP_TIMEOUT:?}; their jobs are left to the sweep");
        }
    }
}

/// `conductor registry import` on the database's stores. Imported packages go through the search outbox, so it
/// needs no index of its own and runs beside a serving gateway.
pub fn registry_import(database: &Database, clock: Arc<dyn Clock>, dry_run: bool) -> RegistryImport {
    let repositories = database.repositories();
    RegistryImport {
        users: repositories.users.clone(),
        permissions: repositories.permissions.clone(),
        packages: repositories.packages.clone(),
        jobs: repositories.load_jobs.clone(),
        outbox: repositories.search_outbox.clone(),
        clock,
        dry_run,
    }
}
