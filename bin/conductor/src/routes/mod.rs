//! The HTTP API, one `configure` per area.

pub mod datastore;
pub mod health;
pub mod home;
pub mod keys;
pub mod oauth;
pub mod openapi;
pub mod package;
pub mod pages;
pub mod search;
pub mod user;
pub mod wire;

use actix_web::web::ServiceConfig;

/// Every API path but the local datastore's files (`datastore::configure_files`, in a scope of their own):
///
/// - `/healthz`, `/readyz`, and `/metrics` unless it has an address of its own (`health`)
/// - `/user/check|authorize|update|public-key|lib|lib.mjs`, `/.well-known/jwks.json` (`user`)
/// - `/user/keys`, `/user/keys/{id}` (`keys`)
/// - `/oauth/<provider>/login|callback`, `/oauth/google_callback` (`oauth`)
/// - `/datastore/`, `/datastore/authorize`, `/datastore/info` (`datastore`)
/// - `/search/<kind>` (`search`)
/// - `/package/upload|status|publish|delete|update_params|run-hooks|stats` (`package`)
/// - `/`, `/openapi.json` and `/docs/` (`home`, `openapi`): what the service is and its description
pub fn configure(cfg: &mut ServiceConfig, metrics_here: bool, document: &utoipa::openapi::OpenApi) {
    home::configure(cfg);
    openapi::configure(cfg, document);
    health::configure(cfg);
    if metrics_here {
        health::configure_metrics(cfg);
    }
    user::configure(cfg);
    keys::configure(cfg);
    oauth::configure(cfg);
    datastore::configure(cfg);
    search::configure(cfg);
    package::configure(cfg);
}
