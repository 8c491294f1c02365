//! Logging: one line per request with a request id, and nothing secret in any line at any level.
//!
//! tracing-actix-web's default root span records the full request target, query string included, and every
//! client sends its token as `?jwt=`; so the root span here is our own and records the target with the values
//! of secret-bearing parameters replaced. Headers are never recorded.

use std::borrow::Cow;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

const REDACTED: &str = "[REDACTED]";

/// Query parameters whose values are credentials or signatures (compared case-insensitively after decoding).
const SECRET_PARAMETERS: &[&str] = &[
    "jwt",
    "token",
    "auth-token",
    "access_token",
    "id_token",
    "authorization",
    "code",
    "state",
    "client_secret",
    "password",
    "secret",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

/// Installs the process-wide subscriber writing to `writer`, and routes `log` records into it.
pub fn init<W>(filter: EnvFilter, writer: W) -> Result<(), tracing_subscriber::util::TryInitError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let format = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false)
        // The request span's close event is the request log line: fields, status and latency.
        .with_span_events(FmtSpan::CLOSE);
    Registry::default().with(filter).with(format).try_init()
}

/// The root span of every request, recording the target with secrets redacted.
#[derive(Debug)]
pub struct RedactingRootSpan;

impl RootSpanBuilder for RedactingRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        let request_id = request.extensions().get::<RequestId>().copied();
        let target = request.uri().path_and_query().map_or("", |p| p.as_str());
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.target = %redact_target(target),
            http.status_code = tracing::field::Empty,
            request_id = %request_id.map(|id| id.to_string()).unwrap_or_default(),
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The request target with the value of every secret-bearing query parameter replaced by `[REDACTED]`.
pub fn redact_target(target: &str) -> Cow<'_, str> {
    let Some((path, query)) = target.split_once('?') else {
        return Cow::Borrowed(target);
    };
    let mut changed = false;
    let pairs: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| {
            let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
            // Decode the key as the server does, so `jw%74=` or `JWT=` is caught too.
            let key: String = url::form_urlencoded::parse(raw_key.as_bytes())
                .next()
                .map(|(k, _)| k.to_ascii_lowercase())
                .unwrap_or_default();
            // An API key is redacted wherever it appears, whatever the parameter is called.
            let value = pair.split_once('=').map_or("", |(_, v)| v);
            if SECRET_PARAMETERS.contains(&key.as_str())
                || value.starts_with(conductor_auth::api_keys::KEY_PREFIX)
            {
                changed = true;
                Cow::Owned(format!("{raw_key}={REDACTED}"))
            } else {
                Cow::Borrowed(pair)
            }
        })
        .collect();
    if changed {
        Cow::Owned(format!("{path}?{}", pairs.join("&")))
    } else {
        Cow::Borrowed(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_parameters_are_redacted_and_others_kept() {
        let target = "/datastore/files/a.csv?X-Amz-Signature=abc&jwt=tok&size=10&Jw%74=x&callback=cb&sig";
        assert_eq!(
            redact_target(target),
            "/datastore/files/a.csv?X-Amz-Signature=[REDACTED]&jwt=[REDACTED]&size=10&Jw%74=[REDACTED]\
             &callback=cb&sig=[REDACTED]"
        );
        assert!(matches!(redact_target("/healthz?x=1"), Cow::Borrowed(_)));
        assert_eq!(
            redact_target("/user/check?next=/&key=cnd_0123456789ab_secret"),
            "/user/check?next=/&key=[REDACTED]"
        );
        assert_eq!(redact_target("/healthz"), "/healthz");
    }
}
