//! The one mapping from the crates' errors to HTTP, and the error shapes of DESIGN §2.

use std::fmt;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use conductor_core::repo::RepoError;
use conductor_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// How an endpoint's errors look on the wire: the original's shapes are kept where clients read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error": {"code": "<slug>", "message": "..."}}`
    Standard,
    /// `{"success": false, "error": "..."}`: update, publish, delete, run-hooks, update_params.
    Success,
    /// `{"status": "fail", "error": "..."}`: `/package/upload`.
    UploadStatus,
}

/// The standard error: `{"error": {"code": "<slug>", "message": "..."}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorAnswer {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable slug to branch on: `missing-parameter`, `unauthorized`, `forbidden`, `not-found`, ...
    pub code: String,
    /// For people.
    pub message: String,
}

/// The original's error of update, publish, delete, update_params and run-hooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuccessFailure {
    /// Always `false`.
    pub success: bool,
    pub error: String,
}

/// The original's error of `/package/upload`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadFailure {
    /// Always `fail`.
    pub status: String,
    pub error: String,
}

#[derive(Clone, Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    shape: ErrorShape,
    /// Seconds for `Retry-After` (a 429).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            shape: ErrorShape::Standard,
            retry_after: None,
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(retry_after: std::time::Duration, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", message);
        error.retry_after = Some(retry_after.as_secs().max(1));
        error
    }

    #[must_use]
    pub fn with_shape(mut self, shape: ErrorShape) -> Self {
        self.shape = shape;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the request body exceeds {limit} bytes"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// A failure the client cannot act on: the detail goes to the log, not to the client.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn body(&self) -> serde_json::Value {
        let message = self.message.clone();
        let body = match self.shape {
            ErrorShape::Standard => serde_json::to_value(ErrorAnswer {
                error: ErrorDetail {
                    code: self.code.to_owned(),
                    message,
                },
            }),
            ErrorShape::Success => serde_json::to_value(SuccessFailure {
                success: false,
                error: message,
            }),
            ErrorShape::UploadStatus => serde_json::to_value(UploadFailure {
                status: "fail".to_owned(),
                error: message,
            }),
        };
        body.unwrap_or_default()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.status.as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(self.body())
    }
}

impl From<RepoError> for ApiError {
    fn from(error: RepoError) -> Self {
        match error {
            RepoError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                Self::unavailable("the database is unavailable; try again shortly")
            }
            RepoError::Conflict(detail) => Self::new(StatusCode::CONFLICT, "conflict", detail),
            other @ (RepoError::Corrupt(_) | RepoError::Query(_)) => Self::internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                Self::unavailable("the database is unavailable; try again shortly")
            }
            other => Self::internal(other),
        }
    }
}

impl From<conductor_auth::AccountError> for ApiError {
    fn from(error: conductor_auth::AccountError) -> Self {
        use conductor_auth::AccountError as E;
        match error {
            E::Unauthorized(_) => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", error.to_string()),
            E::UnknownUser => Self::new(StatusCode::NOT_FOUND, "unknown-user", error.to_string()),
            E::InvalidUsername => Self::bad_request("invalid-username", error.to_string()),
            E::UsernameTaken => Self::new(StatusCode::CONFLICT, "username-taken", error.to_string()),
            E::UsernameAlreadySet => {
                Self::new(StatusCode::CONFLICT, "username-already-set", error.to_string())
            }
            E::InvalidEmail => Self::bad_request("invalid-email", error.to_string()),
            E::Permission(conductor_permissions::PermissionError::InvalidName(_)) => {
                Self::bad_request("invalid-service", error.to_string())
            }
            E::Permission(conductor_permissions::PermissionError::Repo(repo)) | E::Repo(repo) => {
                Self::from(repo)
            }
            E::Signing(_) => Self::internal(error),
        }
    }
}

impl From<conductor_auth::ApiKeyError> for ApiError {
    fn from(error: conductor_auth::ApiKeyError) -> Self {
        use conductor_auth::ApiKeyError as E;
        match error {
            E::Refused => Self::new(StatusCode::UNAUTHORIZED, "invalid-api-key", error.to_string()),
            E::RateLimited { retry_after } => Self::too_many_requests(retry_after, error.to_string()),
            E::InvalidName => Self::bad_request("invalid-name", error.to_string()),
            E::EmptyScope | E::ScopeTooLarge | E::InvalidScope(_) => {
                Self::bad_request("invalid-scope", error.to_string())
            }
            E::TooLong { .. } | E::TooShort => Self::bad_request("invalid-expiry", error.to_string()),
            E::BeyondPermissions { .. } => Self::forbidden("beyond-permissions", error.to_string()),
            E::TooMany { .. } => Self::new(StatusCode::CONFLICT, "too-many-keys", error.to_string()),
            E::NotFound => Self::not_found(error.to_string()),
            E::Permission(conductor_permissions::PermissionError::InvalidName(_)) => {
                Self::bad_request("invalid-service", error.to_string())
            }
            E::Permission(conductor_permissions::PermissionError::Repo(repo)) | E::Repo(repo) => {
                Self::from(repo)
            }
            E::Signing(_) | E::NoEntropy => Self::internal(error),
        }
    }
}

impl From<conductor_datastore::DatastoreError> for ApiError {
    fn from(error: conductor_datastore::DatastoreError) -> Self {
        use conductor_datastore::DatastoreError as E;
        match &error {
            E::Denied(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", error.to_string()),
            E::MissingMetadata(_) | E::InvalidOwner | E::InvalidName(_) | E::NoFiles => {
                Self::bad_request("invalid-request", error.to_string())
            }
            E::InvalidPath { .. } => Self::bad_request("invalid-path", error.to_string()),
            E::InvalidMd5 { .. } => Self::bad_request("invalid-md5", error.to_string()),
            E::TooLarge { .. } => Self::bad_request("file-too-large", error.to_string()),
            E::TypeNotAllowed { .. } => Self::bad_request("type-not-allowed", error.to_string()),
            E::Unavailable(_) => Self::unavailable(error.to_string()),
            E::Signing(_) => Self::internal(error),
        }
    }
}

impl From<conductor_search::SearchError> for ApiError {
    fn from(error: conductor_search::SearchError) -> Self {
        use conductor_search::SearchError as E;
        match &error {
            E::UnknownKind(_) => Self::bad_request("unknown-kind", error.to_string()),
            E::InvalidJson(_) | E::InvalidSize(_) => {
                Self::bad_request("invalid-parameter", error.to_string())
            }
            E::Unavailable(_) | E::Index(_) | E::Missing(_) | E::Foreign(_) => {
                tracing::warn!(%error, "search failed");
                Self::unavailable("search is unavailable; try again shortly")
            }
        }
    }
}

impl From<conductor_datastore::local::UploadError> for ApiError {
    fn from(error: conductor_datastore::local::UploadError) -> Self {
        use conductor_datastore::local::UploadError as E;
        let (status, code) = match &error {
            E::Expired => (StatusCode::FORBIDDEN, "expired"),
            E::BadSignature => (StatusCode::FORBIDDEN, "signature-does-not-match"),
            E::LengthRequired => (StatusCode::LENGTH_REQUIRED, "length-required"),
            E::WrongLength => (StatusCode::BAD_REQUEST, "incomplete-body"),
            E::BadDigest => (StatusCode::BAD_REQUEST, "bad-digest"),
            E::NotFound => (StatusCode::NOT_FOUND, "not-found"),
            E::Interrupted(_) => (StatusCode::BAD_REQUEST, "interrupted"),
            E::Io(_) => return Self::internal(error),
        };
        Self::new(status, code, error.to_string())
    }
}

impl From<conductor_loader::SubmitError> for ApiError {
    fn from(error: conductor_loader::SubmitError) -> Self {
        use conductor_loader::SubmitError as E;
        match error {
            E::NotAllowed(reason) => Self::bad_request("url-not-allowed", reason),
            E::Unreadable(reason) => Self::bad_request("unreadable-datapackage", reason),
            E::Store(e) => e.into(),
            E::Busy(reason) => Self::new(StatusCode::CONFLICT, "load-in-progress", reason),
            E::Load(e) => e.into(),
        }
    }
}

impl From<conductor_loader::LoadError> for ApiError {
    fn from(error: conductor_loader::LoadError) -> Self {
        match error {
            conductor_loader::LoadError::Database(detail) => Self::internal(detail),
            conductor_loader::LoadError::Unavailable(detail) => RepoError::Unavailable(detail).into(),
            other => Self::bad_request("invalid-package", other.to_string()),
        }
    }
}

impl From<conductor_loader::ManageError> for ApiError {
    fn from(error: conductor_loader::ManageError) -> Self {
        use conductor_loader::ManageError as E;
        match error {
            E::NotFound(id) => Self::not_found(format!("no package {id}")),
            busy @ E::Busy(_) => Self::new(StatusCode::CONFLICT, "load-in-progress", busy.to_string()),
            E::Load(e) => e.into(),
            E::Hook(e) => e.into(),
        }
    }
}

impl From<conductor_loader::HookError> for ApiError {
    fn from(error: conductor_loader::HookError) -> Self {
        use conductor_loader::HookError as E;
        match error {
            E::NotAllowed(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", error.to_string()),
            E::Failed(_) => Self::new(StatusCode::BAD_GATEWAY, "hook-failed", error.to_string()),
            E::Client(_) => Self::internal(error),
        }
    }
}

/// Gives every error of an endpoint whose original answered `{"success": false, "error": ...}` that shape: wraps
/// the resource, so its handler never chooses a shape per `?`.
pub async fn success_shape(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    reshape(ErrorShape::Success, req, next).await
}

/// The same for `/package/upload`'s `{"status": "fail", "error": ...}`.
pub async fn upload_status_shape(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    reshape(ErrorShape::UploadStatus, req, next).await
}

async fn reshape<B: MessageBody + 'static>(
    shape: ErrorShape,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let response = next.call(req).await?;
    let reshaped = response
        .response()
        .error()
        .and_then(|error| error.as_error::<ApiError>())
        .map(|error| error.clone().with_shape(shape).error_response());
    match reshaped {
        Some(body) => {
            let (request, _) = response.into_parts();
            Ok(ServiceResponse::new(request, body).map_into_right_body())
        }
        None => Ok(response.map_into_left_body()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_shape_matches_the_original() {
        let error = ApiError::bad_request("bad-id", "no such package");
        assert_eq!(
            error.body(),
            json!({"error": {"code": "bad-id", "message": "no such package"}})
        );
        let shaped = ApiError::bad_request("bad-id", "no such package").with_shape(ErrorShape::Success);
        assert_eq!(
            shaped.body(),
            json!({"success": false, "error": "no such package"})
        );
        let upload = ApiError::bad_request("bad-id", "unauthorized").with_shape(ErrorShape::UploadStatus);
        assert_eq!(upload.body(), json!({"status": "fail", "error": "unauthorized"}));
        assert_eq!(upload.status_code(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn internal_details_stay_out_of_the_response() {
        let error = ApiError::from(RepoError::Query("relation \"users\" does not exist".into()));
        assert_eq!(error.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!error.body().to_string().contains("relation"));
        assert_eq!(
            ApiError::from(RepoError::Unavailable("x".into())).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // Reached through the loader too (`/package/status` during a database restart answered 500 in the soak).
        let through_the_loader = conductor_loader::LoadError::from(RepoError::Unavailable(
            "terminating connection due to administrator command".into(),
        ));
        assert_eq!(
            ApiError::from(through_the_loader).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // And through the warehouse (`/package/delete` during the same restart).
        let dropping_tables = conductor_loader::LoadError::from(
            conductor_loader::WarehouseError::Unavailable("connection closed".into()),
        );
        assert_eq!(
            ApiError::from(dropping_tables).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
