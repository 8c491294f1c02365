//! `GET /search/<kind>`: the original's package search (DESIGN §8).

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::credentials::OptionalUser;
use crate::error::ApiError;
use crate::services::search::SearchState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/search/{kind}").get(search));
}

/// Visible packages matching the parameters; a valid user token adds the caller's own private ones, and a bad
/// or expired one counts as anonymous.
async fn search(
    kind: web::Path<String>,
    caller: OptionalUser,
    state: web::Data<SearchState>,
) -> Result<HttpResponse, ApiError> {
    let viewer = caller.user().map(|claims| claims.userid.clone());
    let records = state.search.search(&kind, caller.params.iter(), viewer).await?;
    let results: Vec<Value> = records
        .into_iter()
        .map(|record| {
            json!({
                "id": record.id,
                "model": record.model,
                "package": record.package,
                "origin_url": record.origin_url,
                "loaded": record.loaded,
                "last_update": record.last_update.as_secs_f64(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(results))
}
