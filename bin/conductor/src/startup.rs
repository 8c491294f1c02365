//! Wiring: the one place that knows which adapters run, chosen from the settings.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, ResponseError, web};
use conductor_core::Clock;
use conductor_core::repo::LoginStateRepository;
use conductor_store::Database;
use tracing_actix_web::TracingLogger;

use crate::error::ApiError;
use crate::limits::{self, BodyDeadline, ClientConnections};
use crate::metrics::Metrics;
use crate::middleware::{self, BodyLimit};
use crate::routes;
use crate::services::Services;
pub use crate::services::StartupError;
use crate::services::loader::Loading;
use crate::services::search::SearchState;
use crate::settings::Settings;
use crate::telemetry::RedactingRootSpan;

/// Routes an embedding program mounts beside the API.
pub type ExtraRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A running gateway: bound to its port, serving until stopped.
pub struct Application {
    port: u16,
    server: Server,
    /// The server of `/metrics` alone, when `server.metrics_bind` is set, and its port.
    metrics_server: Option<(Server, u16)>,
    loading: Loading,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the backends, binds the listener (port 0 picks a free one) and starts serving.
    /// A database that is down does not stop start-up: `/readyz` answers 503 until it is reachable.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with(settings, Arc::new(|_: &mut web::ServiceConfig| {})).await
    }

    /// [`Application::build`] with extra routes mounted beside the API: what an embedding program (or a test
    /// serving its own pages from the same origin) adds.
    pub async fn build_with(settings: Settings, extra_routes: ExtraRoutes) -> Result<Self, StartupError> {
        let Services {
            database,
            clock,
            identity,
            storage,
            search,
            loading,
        } = Services::build(&settings, settings.database.pool_size)?;
        tracing::info!(backend = %database.backend(), "database configured");
        let identity = web::Data::new(identity);
        let storage = web::Data::new(storage);
        refuse_a_foreign_index(&search).await?;
        tokio::spawn(search.clone().sync_when_reachable());
        tokio::spawn(search.clone().drain_outbox_periodically());
        loading.start(settings.loader.workers);
        let stopper = loading.clone();
        let loading = web::Data::new(loading);
        let search = web::Data::from(search);
        tokio::spawn(purge_expired_logins(
            database.repositories().login_states.clone(),
            clock,
        ));
        if settings.database.auto_migrate {
            tokio::spawn(migrate_when_reachable(database.clone()));
        }

        let address = settings.server.bind;
        let base_url = settings.server.base_url.clone();
        let bind_error = |source| StartupError::Bind {
            address: address.to_string(),
            source,
        };
        let listener = TcpListener::bind(address).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();

        let cors_origins = settings.cors_origins()?;
        let body_limit = settings.server.body_limit.as_u64();
        let body_deadline = web::Data::new(BodyDeadline {
            base: settings.server.body_timeout,
            min_rate: settings.server.min_body_rate.as_u64(),
        });
        let connection_cap = settings.server.max_connections_per_client;
        let metrics = web::Data::new(Metrics::new()?);
        let metrics_server = match settings.server.metrics_bind {
            Some(address) => Some(serve_metrics(address, metrics.clone())?),
            None => None,
        };
        let metrics_on_api_port = metrics_server.is_none();
        let database = web::Data::from(database);

        let document = routes::openapi::document(&base_url, metrics_on_api_port);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(database.clone())
                .app_data(metrics.clone())
                .app_data(identity.clone())
                .app_data(storage.clone())
                .app_data(search.clone())
                .app_data(loading.clone())
                .app_data(web::Data::new(BodyLimit(body_limit)))
                .app_data(body_deadline.clone())
                .app_data(web::PayloadConfig::new(saturating_usize(body_limit)))
                .app_data(json_config(body_limit))
                .app_data(web::FormConfig::default().limit(saturating_usize(body_limit)))
                // Uploads to the local datastore are bounded by the length that was signed, checked as they
                // stream: their scope is the one the body limit does not wrap.
                .service(
                    web::scope(routes::datastore::FILES_SCOPE).configure(routes::datastore::configure_files),
                )
                .service(
                    web::scope("")
                        .wrap(from_fn(middleware::limit_body))
                        .configure(|cfg| routes::configure(cfg, metrics_on_api_port, &document))
                        .configure(|cfg| extra_routes(cfg)),
                )
                .default_service(web::to(not_found))
                // Outermost last: tracing sees every request, metrics count even refused ones.
                .wrap(
                    ErrorHandlers::new()
                        .handler(StatusCode::METHOD_NOT_ALLOWED, middleware::method_not_allowed),
                )
                .wrap(from_fn(middleware::jsonp))
                // The deadline wraps the refusal too: it drains what it refuses.
                .wrap(from_fn(limits::refuse_encoded_bodies))
                .wrap(from_fn(limits::body_deadline))
                .wrap(from_fn(limits::connection_cap))
                .wrap(cors(&cors_origins))
                .wrap(from_fn(middleware::request_id_header))
                .wrap(from_fn(middleware::record_metrics))
                .wrap(TracingLogger::<RedactingRootSpan>::new())
        })
        .worker_max_blocking_threads(blocking_threads_per_worker(settings.database.pool_size))
        // Header reads already time out (5 s); a body's deadline is `server.body_timeout`, checked per request.
        .on_connect(limits::on_connect(
            Arc::new(ClientConnections::default()),
            connection_cap,
        ))
        .listen(listener)
        .map_err(bind_error)?
        .run();
        tracing::info!(%address, port, "listening");
        Ok(Self {
            port,
            server,
            metrics_server,
            loading: stopper,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` is served on alone, when `server.metrics_bind` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, port)| *port)
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM, SIGINT or the handle), then stops the loader: running loads give their
    /// jobs back to the queue.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics_server = self.metrics_server.map(|(server, _)| {
            let handle = server.handle();
            (tokio::spawn(server), handle)
        });
        let served = self.server.await;
        if let Some((running, handle)) = metrics_server {
            handle.stop(true).await;
            let _ = running.await;
        }
        self.loading.stop().await;
        served
    }
}

/// Threads each HTTP worker may run blocking work on (database queries, index reads). actix's default is 512
/// shared out over the workers: when the database went away for a few seconds, every waiting query took a
/// thread of its own, and steady traffic then kept the grown pool alive (the soak's gateways doubled their
/// threads at a PostgreSQL restart and kept the memory). As many as the pool has connections: more could only
/// wait for one; beyond it, work queues as tasks, not threads. Reads that need no connection (the embedded
/// index, local files) share them, so while the database is away they may wait behind queries waiting for a
/// connection (its 5 s timeout at most); at least four threads however small the pool.
fn blocking_threads_per_worker(pool_size: u32) -> usize {
    usize::try_from(pool_size).unwrap_or(usize::MAX).max(4)
}

/// `/metrics` alone on its own (internal) address, so the public port does not show it.
fn serve_metrics(address: SocketAddr, metrics: web::Data<Metrics>) -> Result<(Server, u16), StartupError> {
    let bind_error = |source| StartupError::Bind {
        address: address.to_string(),
        source,
    };
    let listener = TcpListener::bind(address).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .configure(routes::health::configure_metrics)
    })
    .workers(1)
    .listen(listener)
    .map_err(bind_error)?
    .run();
    tracing::info!(%address, port, "serving /metrics");
    Ok((server, port))
}

/// An index an existing deployment made stops start-up before anything could rebuild or re-point it. A cluster
/// that does not answer yet is left to the background sync, whose rebuild makes the same check.
async fn refuse_a_foreign_index(search: &SearchState) -> Result<(), StartupError> {
    let checked =
        tokio::time::timeout(Duration::from_secs(10), search.search.index().check_ownership()).await;
    match checked {
        Ok(Err(conductor_search::SearchError::Foreign(message))) => Err(StartupError::Invalid(message)),
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not check who made the search index yet; the rebuild will");
            Ok(())
        }
        Ok(Ok(())) | Err(_) => Ok(()),
    }
}

/// Applies migrations, retrying with backoff while the database is unreachable: a PostgreSQL that starts after
/// us is picked up without a restart (and without a crash loop).
async fn migrate_when_reachable(database: Arc<Database>) {
    let mut delay = Duration::from_millis(250);
    loop {
        match database.migrate().await {
            Ok(applied) => {
                tracing::info!(applied = applied.len(), "database migrated");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?delay, "database not ready; will retry migrations");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Logins abandoned at the provider leave their state behind; remove expired ones now and then. Any replica
/// may do it: deleting what has expired is the same whoever does it.
async fn purge_expired_logins(states: Arc<dyn LoginStateRepository>, clock: Arc<dyn Clock>) {
    let mut every = tokio::time::interval(LOGIN_STATE_PURGE_INTERVAL);
    loop {
        every.tick().await;
        match states.purge_expired(clock.now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "expired login states removed"),
            Err(error) => tracing::debug!(%error, "could not purge login states; will retry"),
        }
    }
}

const LOGIN_STATE_PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// CORS as DESIGN §9: the configured origins, with credentials, and the headers clients send.
fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods([Method::GET, Method::POST, Method::PUT, Method::OPTIONS])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("auth-token"),
            header::HeaderName::from_static("content-md5"),
            header::HeaderName::from_static("x-requested-with"),
        ])
        .expose_headers([header::HeaderName::from_static("x-request-id")])
        .supports_credentials()
        .max_age(3600)
}

fn json_config(limit: u64) -> web::JsonConfig {
    // Bodies are read as JSON whatever their Content-Type says, as the original read them (leniently).
    web::JsonConfig::default()
        .content_type_required(false)
        .limit(saturating_usize(limit))
        .error_handler(move |error, _| {
            use actix_web::error::JsonPayloadError;
            let api_error = match &error {
                JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::payload_too_large(limit)
                }
                JsonPayloadError::ContentType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "send application/json",
                ),
                other => ApiError::bad_request("invalid-json", other.to_string()),
            };
            actix_web::error::InternalError::from_response(error, api_error.error_response()).into()
        })
}

fn saturating_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

async fn not_found(request: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no route for {}", request.path())))
}
