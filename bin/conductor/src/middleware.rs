//! Cross-cutting request handling: metrics, request ids, the body limit, JSONP and JSON for framework errors.

use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError, web};
use tracing_actix_web::RequestId;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// The configured limit on request bodies, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub u64);

/// Counts and times every request by method, route pattern and status.
pub async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().clone();
    // The pattern, not the path: one series per route however many ids are requested.
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let response = next.call(req).await;
    if let Some(metrics) = metrics {
        let status = match &response {
            Ok(res) => res.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        metrics.observe(method.as_str(), &route, status.as_u16(), started.elapsed());
    }
    response
}

/// Returns the request id that the tracing middleware generated, so a client can quote it in a report.
pub async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = req.extensions().get::<RequestId>().copied();
    let mut response = next.call(req).await?;
    if let Some(value) = request_id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}

/// Refuses a body announced larger than the limit before any handler reads it. Bodies without a length are
/// bounded by the extractors' limits, which answer the same 413.
pub async fn limit_body(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let limit = req.app_data::<web::Data<BodyLimit>>().map_or(u64::MAX, |l| l.0);
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit) {
        let response = ApiError::payload_too_large(limit).error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Wraps JSON answers (at most [`JSONP_MAX_BYTES`], never downloads) as `callback(...)` when `callback` is a
/// valid JavaScript identifier path, as the original's jsonpify did. Any other `callback` is refused before the
/// handler runs.
pub async fn jsonp(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let callback = match jsonp_callback(req.query_string()) {
        Ok(None) => return Ok(next.call(req).await?.map_into_boxed_body()),
        Ok(Some(callback)) => callback,
        Err(()) => {
            let error = ApiError::bad_request(
                "invalid-callback",
                "callback must be a JavaScript identifier path such as `cb` or `ns.cb`",
            );
            return Ok(req.into_response(error.error_response()).map_into_boxed_body());
        }
    };
    let response = next.call(req).await?;
    let headers = response.headers();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // A download (a stored file) is never our answer to wrap, whatever its type says.
    let is_download = headers
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("attachment"));
    if !is_json || is_download {
        return Ok(response.map_into_boxed_body());
    }
    let (request, response) = response.into_parts();
    let status = response.status();
    let headers = response.headers().clone();
    let json = match actix_web::body::to_bytes_limited(response.into_body(), JSONP_MAX_BYTES).await {
        Ok(Ok(json)) => json,
        Ok(Err(e)) => {
            return Err(
                ApiError::internal(format!("reading a response body for JSONP: {}", e.into())).into(),
            );
        }
        Err(_) => {
            let error = ApiError::bad_request(
                "jsonp-too-large",
                format!(
                    "the answer exceeds {} MiB, too large for JSONP; call without callback (CORS is allowed)",
                    JSONP_MAX_BYTES >> 20
                ),
            );
            return Ok(ServiceResponse::new(request, error.error_response()));
        }
    };
    let mut wrapped = HttpResponse::build(status);
    for (name, value) in &headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            wrapped.append_header((name.clone(), value.clone()));
        }
    }
    // The leading comment keeps a callback name from being the first bytes of the body (Rosetta Flash).
    let mut body = format!("/**/{callback}(").into_bytes();
    body.extend_from_slice(&json);
    body.extend_from_slice(b");");
    let wrapped = wrapped
        .insert_header((header::CONTENT_TYPE, "application/javascript; charset=utf-8"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body);
    Ok(ServiceResponse::new(request, wrapped))
}

/// The largest answer JSONP wraps: wrapping copies it, and no client of ours uses JSONP for more.
pub const JSONP_MAX_BYTES: usize = 16 * 1024 * 1024;

/// `Ok(None)` without a callback, `Ok(Some)` for a valid one, `Err` for anything else.
fn jsonp_callback(query: &str) -> Result<Option<String>, ()> {
    let Some((_, callback)) = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "callback")
    else {
        return Ok(None);
    };
    let identifier = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    if callback.len() <= 128 && callback.split('.').all(identifier) {
        Ok(Some(callback.into_owned()))
    } else {
        Err(())
    }
}

/// Gives the framework's bare 405 (a known path, another method) our JSON error shape.
pub fn method_not_allowed<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    if response.headers().contains_key(header::CONTENT_TYPE) {
        return Ok(ErrorHandlerResponse::Response(response.map_into_left_body()));
    }
    let message = format!(
        "{} is not allowed on {}",
        response.request().method(),
        response.request().path()
    );
    let error = ApiError::new(response.status(), "method-not-allowed", message);
    let (request, _) = response.into_parts();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, error.error_response()).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::middleware::from_fn;
    use actix_web::{App, test as actix_test};

    use super::*;

    #[actix_web::test]
    async fn jsonp_wraps_answers_up_to_its_bound_and_never_downloads() {
        let app = actix_test::init_service(
            App::new()
                .route(
                    "/small",
                    web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"a": 1})) }),
                )
                .route(
                    "/large",
                    web::get().to(|| async {
                        HttpResponse::Ok().json(serde_json::json!({"a": "x".repeat(JSONP_MAX_BYTES)}))
                    }),
                )
                .route(
                    "/download",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"a.json\""))
                            .body("{}")
                    }),
                )
                .wrap(from_fn(jsonp)),
        )
        .await;
        let call = |path: &str| actix_test::TestRequest::get().uri(path).to_request();
        let small = actix_test::call_service(&app, call("/small?callback=cb")).await;
        assert_eq!(actix_test::read_body(small).await, "/**/cb({\"a\":1});");
        let large = actix_test::call_service(&app, call("/large?callback=cb")).await;
        assert_eq!(large.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = actix_test::read_body_json(large).await;
        assert_eq!(body["error"]["code"], "jsonp-too-large");
        let download = actix_test::call_service(&app, call("/download?callback=cb")).await;
        assert_eq!(actix_test::read_body(download).await, "{}");
    }

    #[test]
    fn callbacks_must_be_identifier_paths() {
        assert_eq!(jsonp_callback("q=1"), Ok(None));
        assert_eq!(jsonp_callback("callback=cb"), Ok(Some("cb".into())));
        assert_eq!(
            jsonp_callback("callback=angular.callbacks._0"),
            Ok(Some("angular.callbacks._0".into()))
        );
        assert_eq!(jsonp_callback("callback=%24jq_12"), Ok(Some("$jq_12".into())));
        for bad in [
            "callback=",
            "callback=alert(1)",
            "callback=a..b",
            "callback=1a",
            "callback=a%3Bb",
            "callback=a-b",
        ] {
            assert_eq!(jsonp_callback(bad), Err(()), "{bad}");
        }
        assert_eq!(jsonp_callback(&format!("callback={}", "a".repeat(129))), Err(()));
    }
}
