//! `/package/*`: loading packages into the database and managing them (DESIGN §2, §7), in the original's shapes.

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use conductor_auth::PermissionClaims;
use conductor_core::{LoadJob, PackageId};
use conductor_loader::Publish;
use conductor_permissions::{Holder, may_manage, may_upload};
use serde::Deserialize;
use serde_json::json;

use crate::credentials::PermissionToken;
use crate::error::{
    ApiError, ErrorAnswer, SuccessFailure, UploadFailure, success_shape, upload_status_shape,
};
use crate::params::Params;
use crate::routes::wire::{HookRun, LoadStatusAnswer, Published, Queued, Success};
use crate::services::loader::Loading;

/// The description of these routes, for `/openapi.json`.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(upload, status, publish, delete, update_params, run_hooks, stats))]
pub struct Described;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The original's error shapes, chosen once per endpoint (DESIGN §2).
    let success = || from_fn(success_shape);
    cfg.service(
        web::resource("/package/upload")
            .wrap(from_fn(upload_status_shape))
            .post(upload),
    )
    .service(web::resource("/package/status").get(status))
    .service(web::resource("/package/publish").wrap(success()).post(publish))
    .service(web::resource("/package/delete").wrap(success()).post(delete))
    // os-viewer joins a base URL ending in `/` with `/package/update_params` (reference §4).
    .service(
        web::resource(["/package/update_params", "//package/update_params"])
            .wrap(success())
            .post(update_params),
    )
    .service(
        web::resource("/package/run-hooks")
            .wrap(success())
            .post(run_hooks),
    )
    .service(web::resource("/package/stats").get(stats));
}

fn holder(claims: &PermissionClaims) -> Holder<'_> {
    Holder {
        userid: &claims.userid,
        service: &claims.service,
        permissions: &claims.permissions,
    }
}

fn forbidden(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", error.to_string())
}

/// Records a load job for a datapackage under the caller's own prefixes and returns at once.
#[utoipa::path(post, path = "/package/upload", tag = "package",
    params(("datapackage" = String, Query, description = "The datapackage.json URL, under the caller's datastore prefixes or loader.fetch_allowlist (also as a form field)")),
    responses((status = 200, body = Queued),
        (status = 400, description = "No or a bad URL, or an invalid descriptor", body = UploadFailure),
        (status = 401, description = "No valid permission token", body = UploadFailure),
        (status = 403, description = "Not allowed to upload, or not under the caller's prefixes", body = UploadFailure),
        (status = 409, description = "A load of this package is already queued or running", body = UploadFailure)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn upload(
    PermissionToken { claims, params }: PermissionToken,
    loading: web::Data<Loading>,
) -> Result<HttpResponse, ApiError> {
    may_upload(holder(&claims), &claims.userid).map_err(forbidden)?;
    let raw = params
        .get("datapackage")
        .ok_or_else(|| ApiError::bad_request("missing-parameter", "datapackage is required"))?;
    let url = url::Url::parse(raw)
        .map_err(|_| ApiError::bad_request("invalid-url", format!("{raw:?} is not a URL")))?;
    let job = loading.loader.submit(&url, &claims.userid).await?;
    tracing::info!(job = job.id, package = %job.package_id, "load queued");
    loading.wake.notify_one();
    Ok(HttpResponse::Ok().json(Queued {
        status: "queued".to_owned(),
        progress: 0,
    }))
}

/// The newest job for a datapackage URL.
#[utoipa::path(get, path = "/package/status", tag = "package",
    params(("datapackage" = String, Query, description = "The datapackage.json URL as it was uploaded")),
    responses((status = 200, body = LoadStatusAnswer),
        (status = 400, description = "No `datapackage`", body = ErrorAnswer),
        (status = 404, description = "No load of it is known", body = ErrorAnswer)))]
async fn status(params: Params, loading: web::Data<Loading>) -> Result<HttpResponse, ApiError> {
    let raw = params
        .get("datapackage")
        .ok_or_else(|| ApiError::bad_request("missing-parameter", "datapackage is required"))?;
    // Clients send the URL as they uploaded it; jobs keep it normalised.
    let normalised = url::Url::parse(raw)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| raw.to_owned());
    let job = loading
        .loader
        .latest_job(&normalised)
        .await?
        .ok_or_else(|| ApiError::not_found("no load of this datapackage is known"))?;
    Ok(HttpResponse::Ok().json(status_body(&job, loading.progress_as_fraction)))
}

fn status_body(job: &LoadJob, progress_as_fraction: bool) -> LoadStatusAnswer {
    let fraction = match (job.status, job.rows_total) {
        (conductor_core::LoadStatus::Done, _) => 1.0,
        (_, Some(total)) if total > 0 => (job.rows_loaded as f64 / total as f64).min(1.0),
        _ => 0.0,
    };
    LoadStatusAnswer {
        status: job.status.as_str().to_owned(),
        progress: if progress_as_fraction {
            json!(fraction)
        } else {
            json!(job.rows_loaded)
        },
        rows_total: job.rows_total,
        fraction,
        error: job.error.clone(),
    }
}

/// The package named by `id`, after checking the caller may manage it .
fn managed(auth: &PermissionToken) -> Result<PackageId, ApiError> {
    let raw = auth
        .params
        .get("id")
        .ok_or_else(|| ApiError::bad_request("missing-parameter", "id is required"))?;
    let id =
        PackageId::parse(raw).map_err(|e| ApiError::bad_request("invalid-id", format!("{raw:?}: {e}")))?;
    may_manage(holder(&auth.claims), id.owner()).map_err(forbidden)?;
    Ok(id)
}

#[utoipa::path(post, path = "/package/publish", tag = "package",
    params(("id" = String, Query, description = "The package id, `<owner>:<name>` (also as a form field)"),
        ("publish" = Option<String>, Query, description = "`true`, `false` or `toggle` (the default)")),
    responses((status = 200, body = Published),
        (status = 400, description = "A bad id or publish value", body = SuccessFailure),
        (status = 401, description = "No valid permission token", body = SuccessFailure),
        (status = 403, description = "Neither the owner nor a package-admin", body = SuccessFailure),
        (status = 404, description = "No such package", body = SuccessFailure)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn publish(auth: PermissionToken, loading: web::Data<Loading>) -> Result<HttpResponse, ApiError> {
    let id = managed(&auth)?;
    let mode: Publish = auth
        .params
        .get("publish")
        .unwrap_or("toggle")
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid-parameter", e))?;
    let published = loading.loader.publish(&id, mode).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(Published {
        success: true,
        published,
    }))
}

/// Removes the package: its tables, registry record and index entry.
#[utoipa::path(post, path = "/package/delete", tag = "package",
    params(("id" = String, Query, description = "The package id, `<owner>:<name>` (also as a form field)")),
    responses((status = 200, body = Success),
        (status = 400, description = "A bad id", body = SuccessFailure),
        (status = 401, description = "No valid permission token", body = SuccessFailure),
        (status = 403, description = "Neither the owner nor a package-admin", body = SuccessFailure),
        (status = 404, description = "No such package", body = SuccessFailure),
        (status = 409, description = "A load of it is running", body = SuccessFailure)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn delete(auth: PermissionToken, loading: web::Data<Loading>) -> Result<HttpResponse, ApiError> {
    let id = managed(&auth)?;
    let existed = loading.loader.remove(&id).await.map_err(ApiError::from)?;
    if !existed {
        return Err(ApiError::not_found(format!("no package {id}")));
    }
    Ok(HttpResponse::Ok().json(Success::YES))
}

/// `/package/update_params`' body: the viewer's default parameters, as a string.
#[derive(Deserialize, utoipa::ToSchema)]
struct DefaultParams {
    params: String,
}

/// Sets the package's `defaultParams` (os-viewer's saved view).
#[utoipa::path(post, path = "/package/update_params", tag = "package",
    params(("id" = String, Query, description = "The package id, `<owner>:<name>` (also as a form field)")),
    request_body = DefaultParams,
    responses((status = 200, body = Success),
        (status = 400, description = "A bad id or body", body = SuccessFailure),
        (status = 401, description = "No valid permission token", body = SuccessFailure),
        (status = 403, description = "Neither the owner nor a package-admin", body = SuccessFailure),
        (status = 404, description = "No such package", body = SuccessFailure)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn update_params(
    auth: PermissionToken,
    body: web::Bytes,
    loading: web::Data<Loading>,
) -> Result<HttpResponse, ApiError> {
    let id = managed(&auth)?;
    let body: DefaultParams = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid-json",
            format!("the body must be JSON {{\"params\": \"<string>\"}}: {e}"),
        )
    })?;
    loading
        .loader
        .set_default_params(&id, body.params)
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(Success::YES))
}

/// Posts the package's JSON-LD to an allow-listed pipeline, as a multipart file `input` (DESIGN §7).
#[utoipa::path(post, path = "/package/run-hooks", tag = "package",
    params(("id" = String, Query, description = "The package id, `<owner>:<name>` (also as a form field)"),
        ("pipeline" = String, Query, description = "A URL under loader.hook_allowlist")),
    responses((status = 200, body = HookRun),
        (status = 400, description = "A bad id or URL", body = SuccessFailure),
        (status = 401, description = "No valid permission token", body = SuccessFailure),
        (status = 403, description = "Not allowed: the caller, the URL or its address", body = SuccessFailure),
        (status = 404, description = "No such package", body = SuccessFailure),
        (status = 502, description = "The pipeline could not be reached", body = SuccessFailure)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn run_hooks(auth: PermissionToken, loading: web::Data<Loading>) -> Result<HttpResponse, ApiError> {
    let id = managed(&auth)?;
    let raw = auth
        .params
        .get("pipeline")
        .ok_or_else(|| ApiError::bad_request("missing-parameter", "pipeline is required"))?;
    let pipeline = url::Url::parse(raw)
        .map_err(|_| ApiError::bad_request("invalid-url", format!("{raw:?} is not a URL")))?;
    let (answer, payload) = loading.loader.run_hooks(&id, &pipeline).await?;
    Ok(HttpResponse::Ok().json(HookRun {
        success: answer.success,
        response: answer.response,
        payload,
    }))
}

/// Counts over every loaded package.
#[utoipa::path(get, path = "/package/stats", tag = "package",
    responses((status = 200, body = conductor_loader::Stats)))]
async fn stats(loading: web::Data<Loading>) -> Result<HttpResponse, ApiError> {
    let stats = loading.loader.stats().await.map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_rows_or_the_fraction_as_configured() {
        let owner = conductor_core::UserId::from_email("a@example.org");
        let job = LoadJob {
            id: 1,
            package_id: PackageId::parse(&format!("{owner}:d")).unwrap(),
            datapackage_url: "http://h/datapackage.json".into(),
            owner,
            status: conductor_core::LoadStatus::LoadingData,
            rows_loaded: 250,
            rows_total: Some(1000),
            error: None,
            heartbeat_at: None,
            created_at: conductor_core::Timestamp::from_millis(0),
            updated_at: conductor_core::Timestamp::from_millis(0),
        };
        let body = |job: &LoadJob, fraction: bool| serde_json::to_value(status_body(job, fraction)).unwrap();
        assert_eq!(
            body(&job, false),
            json!({"status": "loading-data", "progress": 250, "rows_total": 1000, "fraction": 0.25})
        );
        assert_eq!(body(&job, true)["progress"], 0.25);
        let failed = LoadJob {
            status: conductor_core::LoadStatus::Fail,
            error: Some("row 3, column \"amount\": \"x\" is not a number".into()),
            rows_total: None,
            ..job
        };
        let body = body(&failed, false);
        assert_eq!(
            (body["status"].clone(), body["fraction"].clone()),
            (json!("fail"), json!(0.0))
        );
        assert_eq!(body["error"], "row 3, column \"amount\": \"x\" is not a number");
    }
}
