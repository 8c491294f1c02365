//! `/package/*`: loading packages into the database and managing them (DESIGN §2, §7), in the original's shapes.

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use conductor_auth::PermissionClaims;
use conductor_core::{LoadJob, PackageId};
use conductor_loader::Publish;
use conductor_permissions::{Holder, may_manage, may_upload};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::credentials::permission;
use crate::error::{ApiError, success_shape, upload_status_shape};
use crate::params::Params;
use crate::services::auth::Identity;
use crate::services::loader::Loading;
use crate::settings::Settings;

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
async fn upload(
    request: HttpRequest,
    params: Params,
    identity: web::Data<Identity>,
    loading: web::Data<Loading>,
) -> Result<HttpResponse, ApiError> {
    let claims = permission(&request, &params, &identity)?;
    may_upload(holder(&claims), &claims.userid).map_err(forbidden)?;
    let raw = params
        .get("datapackage")
        .ok_or_else(|| ApiError::bad_request("missing-parameter", "datapackage is required"))?;
    let url = url::Url::parse(raw)
        .map_err(|_| ApiError::bad_request("invalid-url", format!("{raw:?} is not a URL")))?;
    let job = loading.loader.submit(&url, &claims.userid).await?;
    tracing::info!(job = job.id, package = %job.package_id, "load queued");
    loading.wake.notify_one();
    Ok(HttpResponse::Ok().json(json!({"status": "queued", "progress": 0})))
}

/// The newest job for a datapackage URL.
async fn status(
    params: Params,
    loading: web::Data<Loading>,
    settings: web::Data<Settings>,
) -> Result<HttpResponse, ApiError> {
    let raw = params
        .get("datapackage")
        .ok_or_else(|| ApiError::bad_request("missing-parameter", "datapackage is required"))?;
    // Clients send the URL as they uploaded it; jobs keep it normalised.
    let normalised = url::Url::parse(raw)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| raw.to_owned());
    let job = loading
        .loader
        .jobs
        .latest_for_url(&normalised)
        .await?
        .ok_or_else(|| ApiError::not_found("no load of this datapackage is known"))?;
    Ok(HttpResponse::Ok().json(status_body(&job, settings.compat.progress_as_fraction)))
}

fn status_body(job: &LoadJob, progress_as_fraction: bool) -> Value {
    let fraction = match (job.status, job.rows_total) {
        (conductor_core::LoadStatus::Done, _) => 1.0,
        (_, Some(total)) if total > 0 => (job.rows_loaded as f64 / total as f64).min(1.0),
        _ => 0.0,
    };
    let mut body = json!({
        "status": job.status.as_str(),
        "progress": if progress_as_fraction { json!(fraction) } else { json!(job.rows_loaded) },
        "rows_total": job.rows_total,
        "fraction": fraction,
    });
    if let Some(error) = &job.error {
        body["error"] = json!(error);
    }
    body
}

/// The package named by `id`, after checking the caller may manage it .
fn managed(
    request: &HttpRequest,
    params: &Params,
    identity: &Identity,
) -> Result<(PermissionClaims, PackageId), ApiError> {
    let claims = permission(request, params, identity)?;
    let raw = params
        .get("id")
        .ok_or_else(|| ApiError::bad_request("missing-parameter", "id is required"))?;
    let id =
        PackageId::parse(raw).map_err(|e| ApiError::bad_request("invalid-id", format!("{raw:?}: {e}")))?;
    may_manage(holder(&claims), id.owner()).map_err(forbidden)?;
    Ok((claims, id))
}

async fn publish(
    request: HttpRequest,
    params: Params,
    identity: web::Data<Identity>,
    loading: web::Data<Loading>,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = managed(&request, &params, &identity)?;
    let mode: Publish = params
        .get("publish")
        .unwrap_or("toggle")
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid-parameter", e))?;
    let published = loading.loader.publish(&id, mode).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "published": published})))
}

async fn delete(
    request: HttpRequest,
    params: Params,
    identity: web::Data<Identity>,
    loading: web::Data<Loading>,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = managed(&request, &params, &identity)?;
    let existed = loading.loader.remove(&id).await.map_err(ApiError::from)?;
    if !existed {
        return Err(ApiError::not_found(format!("no package {id}")));
    }
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}

#[derive(Deserialize)]
struct DefaultParams {
    params: String,
}

async fn update_params(
    request: HttpRequest,
    params: Params,
    body: web::Bytes,
    identity: web::Data<Identity>,
    loading: web::Data<Loading>,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = managed(&request, &params, &identity)?;
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
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}

/// Posts the package's JSON-LD to an allow-listed pipeline, as a multipart file `input` (DESIGN §7).
async fn run_hooks(
    request: HttpRequest,
    params: Params,
    identity: web::Data<Identity>,
    loading: web::Data<Loading>,
    settings: web::Data<Settings>,
) -> Result<HttpResponse, ApiError> {
    let (_, id) = managed(&request, &params, &identity)?;
    let raw = params
        .get("pipeline")
        .ok_or_else(|| ApiError::bad_request("missing-parameter", "pipeline is required"))?;
    let pipeline = url::Url::parse(raw)
        .map_err(|_| ApiError::bad_request("invalid-url", format!("{raw:?} is not a URL")))?;
    if !hook_allowed(&pipeline, &settings.loader.hook_allowlist) {
        return Err(forbidden(format!("{pipeline} is not in loader.hook_allowlist")));
    }
    let address = hook_address(&pipeline, &settings.loader.hook_allowlist)
        .await
        .map_err(forbidden)?;
    let payload = loading.loader.hook_payload(&id).await.map_err(ApiError::from)?;
    let file = reqwest::multipart::Part::bytes(payload.to_string().into_bytes())
        .file_name("package-url.jsonld")
        .mime_str("application/ld+json")
        .map_err(ApiError::internal)?;
    // Pinned to the address checked above, so a second DNS answer cannot point the post elsewhere.
    let client = reqwest::Client::builder()
        .resolve(pipeline.host_str().unwrap_or_default(), address)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(ApiError::internal)?;
    let response = client
        .post(pipeline.clone())
        .multipart(reqwest::multipart::Form::new().part("input", file))
        .send()
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "hook-failed", format!("{pipeline}: {e}")))?;
    let success = response.status().is_success();
    let text = read_capped(response, HOOK_RESPONSE_LIMIT).await;
    Ok(HttpResponse::Ok().json(json!({"success": success, "response": text, "payload": payload})))
}

/// The most of a hook's answer passed back to the caller.
const HOOK_RESPONSE_LIMIT: usize = 64 * 1024;

/// A response body as text, cut at `limit` bytes so a large answer cannot fill our memory.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]);
        if body.len() >= limit {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The address a hook is posted to: the host's, refused when it is loopback, private or link-local unless an
/// allow-list entry names that very IP (the loader's rule for fetches).
async fn hook_address(url: &url::Url, allowlist: &[String]) -> Result<std::net::SocketAddr, String> {
    let host = url.host_str().ok_or_else(|| format!("{url} has no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let named_ips: Vec<std::net::IpAddr> = allowlist
        .iter()
        .filter_map(|entry| url::Url::parse(entry).ok())
        .filter_map(|entry| entry.host_str()?.trim_matches(['[', ']']).parse().ok())
        .collect();
    let addresses = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?;
    let mut first_refused = None;
    for address in addresses {
        if !conductor_loader::fetch::forbidden(address.ip()) || named_ips.contains(&address.ip()) {
            return Ok(address);
        }
        first_refused.get_or_insert(address.ip());
    }
    Err(match first_refused {
        Some(ip) => {
            format!("{host} resolves to {ip}, a private address; name that IP in loader.hook_allowlist")
        }
        None => format!("{host} does not resolve"),
    })
}

fn hook_allowed(url: &url::Url, allowlist: &[String]) -> bool {
    // The same prefix rule as the loader's fetch allow-list.
    allowlist
        .iter()
        .filter_map(|p| url::Url::parse(p).ok())
        .any(|prefix| conductor_loader::fetch::is_under(url, &prefix))
}

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
        assert_eq!(
            status_body(&job, false),
            json!({"status": "loading-data", "progress": 250, "rows_total": 1000, "fraction": 0.25})
        );
        assert_eq!(status_body(&job, true)["progress"], 0.25);
        let failed = LoadJob {
            status: conductor_core::LoadStatus::Fail,
            error: Some("row 3, column \"amount\": \"x\" is not a number".into()),
            rows_total: None,
            ..job
        };
        let body = status_body(&failed, false);
        assert_eq!(
            (body["status"].clone(), body["fraction"].clone()),
            (json!("fail"), json!(0.0))
        );
        assert_eq!(body["error"], "row 3, column \"amount\": \"x\" is not a number");
    }

    #[test]
    fn hooks_go_only_to_allow_listed_prefixes() {
        let allow = vec!["https://apps.openbudgets.eu/linkedpipes/execute/".to_owned()];
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert!(hook_allowed(
            &url("https://apps.openbudgets.eu/linkedpipes/execute/fdp2rdf"),
            &allow
        ));
        assert!(!hook_allowed(&url("https://apps.openbudgets.eu/other"), &allow));
        let no_slash = vec!["https://apps.openbudgets.eu/linkedpipes/execute".to_owned()];
        assert!(hook_allowed(
            &url("https://apps.openbudgets.eu/linkedpipes/execute/x"),
            &no_slash
        ));
        assert!(!hook_allowed(
            &url("https://apps.openbudgets.eu/linkedpipes/execute-evil"),
            &no_slash
        ));
        assert!(!hook_allowed(
            &url("https://apps.openbudgets.eu/linkedpipes/execute/..%2f..%2fadmin"),
            &allow
        ));
        assert!(!hook_allowed(
            &url("http://apps.openbudgets.eu/linkedpipes/execute/x"),
            &allow
        ));
        assert!(!hook_allowed(
            &url("https://169.254.169.254/linkedpipes/execute/"),
            &allow
        ));
        assert!(!hook_allowed(
            &url("https://apps.openbudgets.eu/linkedpipes/execute/x"),
            &[]
        ));
    }
}
