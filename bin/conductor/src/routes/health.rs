//! `/healthz` (the process answers), `/readyz` (its backends do) and `/metrics`.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use conductor_store::Database;
use serde_json::json;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::services::datastore::Storage;
use crate::services::search::SearchState;

/// How long a readiness probe waits for a database connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz));
}

/// `/metrics`: on the API's port, or alone on `server.metrics_bind`.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 when the database answers and has every migration of this build, and the datastore answers; 503
/// otherwise, naming what is missing.
async fn readyz(
    database: web::Data<Database>,
    storage: web::Data<Storage>,
    search: web::Data<SearchState>,
) -> HttpResponse {
    let datastore = match storage.datastore.signer().check().await {
        Ok(()) => Ok(()),
        Err(error) => {
            tracing::debug!(%error, "readiness: datastore unavailable");
            Err("unavailable".to_owned())
        }
    };
    let search = if !search.is_synced() {
        Err("rebuilding from the registry".to_owned())
    } else {
        match search.search.index().count().await {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::debug!(%error, "readiness: search index unavailable");
                Err("unavailable".to_owned())
            }
        }
    };
    let database = database_check(&database).await;
    let status = |check: &Result<(), String>| match check {
        Ok(()) => "ok".to_owned(),
        Err(problem) => problem.clone(),
    };
    let checks =
        json!({"database": status(&database), "datastore": status(&datastore), "search": status(&search)});
    if database.is_ok() && datastore.is_ok() && search.is_ok() {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable", "checks": checks}))
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

async fn metrics(metrics: web::Data<Metrics>) -> Result<HttpResponse, ApiError> {
    let text = metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
