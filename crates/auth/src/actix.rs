//! An actix-web extractor for services that accept Conductor's permission tokens.
//!
//! Register a [`Verifier`] as `web::Data<Verifier>`, then take [`PermissionToken`] in a handler: the request is
//! refused with 401 when it carries no valid permission token. Check the service and permission the handler
//! needs with [`PermissionClaims::grants`] and `service`, or use [`Verifier::verify_permission`] directly.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};

use crate::tokens::PermissionClaims;
use crate::verifier::{Verifier, VerifyError, request_token};

/// The verified claims of the request's permission token.
#[derive(Clone, Debug)]
pub struct PermissionToken(pub PermissionClaims);

/// Why a request's permission token was refused.
#[derive(Debug, thiserror::Error)]
pub enum Unauthorized {
    #[error("no permission token: send Authorization: Bearer, Auth-Token or ?jwt=")]
    Missing,
    #[error("{0}")]
    Invalid(#[from] VerifyError),
    #[error("no Verifier is registered as app data")]
    NotConfigured,
}

impl ResponseError for Unauthorized {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = serde_json::json!({"error": {"code": "unauthorized", "message": self.to_string()}});
        HttpResponse::build(self.status_code()).json(body)
    }
}

impl FromRequest for PermissionToken {
    type Error = Unauthorized;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let jwt = url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == "jwt")
            .map(|(_, v)| v.into_owned());
        let token = request_token(
            header("authorization").as_deref(),
            header("auth-token").as_deref(),
            jwt.as_deref(),
        )
        .map(str::to_owned);
        let verifier = req.app_data::<web::Data<Verifier>>().cloned();
        Box::pin(async move {
            let verifier = verifier.ok_or(Unauthorized::NotConfigured)?;
            let token = token.ok_or(Unauthorized::Missing)?;
            Ok(Self(verifier.verify_any_permission(&token).await?))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use actix_web::{App, HttpResponse, test, web};
    use conductor_core::{Clock, SystemClock, UserId};
    use secrecy::ExposeSecret;

    use super::*;
    use crate::keys::KeySet;
    use crate::tokens::{TokenIssuer, TokenPolicy};

    async fn upload(token: PermissionToken) -> HttpResponse {
        if token.0.service == "os.datastore" && token.0.grants("datapackage-upload") {
            HttpResponse::Ok().body(token.0.userid.to_string())
        } else {
            HttpResponse::Forbidden().finish()
        }
    }

    #[actix_web::test]
    async fn the_extractor_accepts_a_valid_permission_token_from_any_place() {
        let generated = KeySet::generate().unwrap();
        let keys = KeySet::from_pems(generated.private_pem.expose_secret(), None, vec![]).unwrap();
        let issuer = TokenIssuer::new(
            Arc::new(keys),
            TokenPolicy {
                issuer: "http://conductor.test/".into(),
                user_ttl: Duration::from_secs(60),
                permission_ttl: Duration::from_secs(60),
                permission_aud: false,
            },
        );
        let ada = UserId::from_email("ada@example.test");
        let permissions = serde_json::json!({"datapackage-upload": true})
            .as_object()
            .cloned()
            .unwrap();
        let token = issuer
            .issue_permission(&ada, "os.datastore", permissions, SystemClock.now())
            .unwrap();
        let user_token = issuer.issue_user(&ada, SystemClock.now()).unwrap();

        let verifier = web::Data::new(Verifier::from_public_pem(&generated.public_pem).unwrap());
        let app = test::init_service(
            App::new()
                .app_data(verifier)
                .route("/upload", web::post().to(upload)),
        )
        .await;
        for request in [
            test::TestRequest::post()
                .uri("/upload")
                .insert_header(("Authorization", format!("Bearer {token}"))),
            test::TestRequest::post()
                .uri("/upload")
                .insert_header(("Auth-Token", token.clone())),
            test::TestRequest::post().uri(&format!("/upload?jwt={token}")),
        ] {
            let response = test::call_service(&app, request.to_request()).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(test::read_body(response).await, ada.as_str());
        }
        for refused in [
            test::TestRequest::post().uri("/upload"),
            test::TestRequest::post().uri(&format!("/upload?jwt={user_token}")),
            test::TestRequest::post().uri("/upload?jwt=garbage"),
        ] {
            let response = test::call_service(&app, refused.to_request()).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
    }
}
