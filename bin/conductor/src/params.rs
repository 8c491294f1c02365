//! Request parameters from the query string or a form body alike, as the original read `request.values`.

use std::future::{Ready, ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use crate::error::ApiError;

/// All parameters of a request: the query string's first, then a `application/x-www-form-urlencoded` body's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(encoded: &[u8]) -> Self {
        Self {
            pairs: url::form_urlencoded::parse(encoded).into_owned().collect(),
        }
    }

    /// The first value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a parameter, in order (repeated search filters are OR-ed).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

type ParamsFuture = Pin<Box<dyn Future<Output = Result<Params, ApiError>>>>;

impl FromRequest for Params {
    type Error = ApiError;
    type Future = futures_util::future::Either<Ready<Result<Params, ApiError>>, ParamsFuture>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let query = Self::parse(req.query_string().as_bytes());
        if req.content_type() != "application/x-www-form-urlencoded" {
            return futures_util::future::Either::Left(ready(Ok(query)));
        }
        // Read through actix's Bytes extractor so the configured payload limit applies.
        let body = web::Bytes::from_request(req, payload);
        futures_util::future::Either::Right(Box::pin(async move {
            let body = body.await.map_err(|error| {
                let status = error.as_response_error().status_code();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(status, "payload-too-large", "the form body is too large")
                } else {
                    ApiError::bad_request("unreadable-body", "the form body could not be read")
                }
            })?;
            let mut params = query;
            params.pairs.extend(Self::parse(&body).pairs);
            Ok(params)
        }))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[actix_web::test]
    async fn query_and_form_are_read_alike() {
        let (req, mut payload) = TestRequest::post()
            .uri("/package/publish?jwt=abc&id=o%3An")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload("publish=toggle&id=second")
            .to_http_parts();
        let params = Params::from_request(&req, &mut payload).await.unwrap();
        assert_eq!(params.get("jwt"), Some("abc"));
        assert_eq!(params.get("publish"), Some("toggle"));
        assert_eq!(
            params.all("id").collect::<Vec<_>>(),
            ["o:n", "second"],
            "query first, then form"
        );
        assert_eq!(params.get("missing"), None);
    }

    #[actix_web::test]
    async fn a_form_over_the_limit_is_413() {
        let (req, mut payload) = TestRequest::post()
            .uri("/x")
            .app_data(web::PayloadConfig::new(8))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload("username=much-too-long")
            .to_http_parts();
        let error = Params::from_request(&req, &mut payload).await.unwrap_err();
        assert_eq!(error.code(), "payload-too-large");
    }

    #[actix_web::test]
    async fn a_json_body_is_not_read_as_parameters() {
        let (req, mut payload) = TestRequest::post()
            .uri("/x?id=1")
            .insert_header(("content-type", "application/json"))
            .set_payload(r#"{"id": "2"}"#)
            .to_http_parts();
        let params = Params::from_request(&req, &mut payload).await.unwrap();
        assert_eq!(params.all("id").collect::<Vec<_>>(), ["1"]);
    }
}
