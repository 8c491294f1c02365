//! `/healthz` (the process answers), `/readyz` (its backends do) and `/metrics`.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use conductor_store::Database;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::wire::{Health, Readiness, ReadinessChecks};
use crate::services::datastore::Storage;
use crate::services::search::SearchState;

/// How long a readiness probe waits for a database connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The description of these routes, for `/openapi.json`.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics))]
pub struct Described;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz));
}

/// `/metrics`: on the API's port, or alone on `server.metrics_bind`.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(metrics));
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".to_owned(),
    })
}

/// 200 when the database answers and has every migration of this build, and the datastore answers; 503
/// otherwise, naming what is missing.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Readiness), (status = 503, description = "Not ready", body = Readiness)))]
async fn readyz(
    database: web::Data<Database>,
    storage: web::Data<Storage>,
    search: web::Data<SearchState>,
) -> HttpResponse {
    let (database, datastore, search) = (
        database_check(&database).await,
        datastore_check(&storage).await,
        search_check(&search).await,
    );
    let ready = database.is_ok() && datastore.is_ok() && search.is_ok();
    let status = |check: Result<(), String>| check.err().unwrap_or_else(|| "ok".to_owned());
    let answer = Readiness {
        status: if ready { "ready" } else { "unavailable" }.to_owned(),
        checks: ReadinessChecks {
            database: status(database),
            datastore: status(datastore),
            search: status(search),
        },
    };
    if ready {
        HttpResponse::Ok().json(answer)
    } else {
        HttpResponse::ServiceUnavailable().json(answer)
    }
}

async fn datastore_check(storage: &Storage) -> Result<(), String> {
    match storage.datastore.signer().check().await {
        Ok(()) => Ok(()),
        Err(error) => {
            tracing::debug!(%error, "readiness: datastore unavailable");
            Err("unavailable".to_owned())
        }
    }
}

async fn search_check(search: &SearchState) -> Result<(), String> {
    if !search.is_synced() {
        return Err("rebuilding from the registry".to_owned());
    }
    match search.search.index().count().await {
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::debug!(%error, "readiness: search index unavailable");
            Err("unavailable".to_owned())
        }
    }
}

async fn database_check(database: &Database) -> Result<(), String> {
    match database.ping(PROBE_TIMEOUT).await {
        Err(error) => {
            tracing::debug!(%error, "readiness: database unreachable");
            Err("unreachable".to_owned())
        }
        Ok(()) => match database.pending_migrations().await {
            Ok(0) => Ok(()),
            Ok(pending) => Err(format!("{pending} migration(s) pending")),
            Err(error) => {
                tracing::debug!(%error, "readiness: migrations unknown");
                Err("migration state unknown".to_owned())
            }
        },
    }
}

/// Prometheus metrics (here unless `server.metrics_bind` gives them an address of their own).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(metrics: web::Data<Metrics>) -> Result<HttpResponse, ApiError> {
    let text = metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
