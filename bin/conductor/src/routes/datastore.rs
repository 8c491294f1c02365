//! `/datastore/*`: signed uploads (DESIGN §6), the user's prefixes, and the local datastore's files.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use conductor_datastore::local::PresentedUpload;
use conductor_datastore::{ObjectKey, UploadRequest};
use conductor_permissions::{DATASTORE_SERVICE, Holder};

use crate::credentials::PermissionToken;
use crate::error::{ApiError, ErrorAnswer};
use crate::params::Params;
use crate::routes::wire::{Filedata, Prefixes};
use crate::services::auth::Identity;
use crate::services::datastore::Storage;

/// Where the local datastore's files are uploaded and read.
pub const FILES_SCOPE: &str = "/datastore/files";

/// The description of these routes, for `/openapi.json`.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(authorize, authorize_alias, info, put_file, get_file, head_file))]
pub struct Described;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(["/datastore/", "/datastore/authorize"]).post(authorize))
        .service(web::resource("/datastore/info").get(info));
}

/// The local datastore's files, under [`FILES_SCOPE`].
pub fn configure_files(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{key:.+}")
            .put(put_file)
            .get(get_file)
            .head(head_file),
    );
}

/// Signs one PUT per file of a data package, for the token holder's own prefix.
/// Signed upload URLs for a package's files, checked against the caller's permissions and the limits.
#[utoipa::path(post, path = "/datastore/", tag = "datastore", operation_id = "datastore_authorize",
    request_body = conductor_datastore::UploadRequest,
    responses((status = 200, body = Filedata),
        (status = 400, description = "A bad body: a path, MD5, length, type or owner refused", body = ErrorAnswer),
        (status = 401, description = "No valid permission token", body = ErrorAnswer),
        (status = 403, description = "No `datapackage-upload` permission for this owner", body = ErrorAnswer),
        (status = 413, description = "A file or the body is too large", body = ErrorAnswer)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn authorize(
    PermissionToken { claims, .. }: PermissionToken,
    body: web::Json<UploadRequest>,
    storage: web::Data<Storage>,
) -> Result<HttpResponse, ApiError> {
    let holder = Holder {
        userid: &claims.userid,
        service: &claims.service,
        permissions: &claims.permissions,
    };
    let filedata = storage.datastore.authorize(holder, &body).await?;
    Ok(HttpResponse::Ok().json(Filedata { filedata }))
}

/// The same as `POST /datastore/`, under the name some clients use.
#[utoipa::path(post, path = "/datastore/authorize", tag = "datastore",
    request_body = conductor_datastore::UploadRequest,
    responses((status = 200, body = Filedata),
        (status = 400, description = "A bad body", body = ErrorAnswer),
        (status = 401, description = "No valid permission token", body = ErrorAnswer),
        (status = 403, description = "No `datapackage-upload` permission for this owner", body = ErrorAnswer),
        (status = 413, description = "A file or the body is too large", body = ErrorAnswer)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
#[expect(dead_code, reason = "describes the second path of `authorize`'s resource")]
fn authorize_alias() {}

/// The URL prefixes of the token holder's files.
/// The URL prefixes the caller's files are stored under.
#[utoipa::path(get, path = "/datastore/info", tag = "datastore",
    responses((status = 200, body = Prefixes),
        (status = 401, description = "No valid permission token", body = ErrorAnswer),
        (status = 403, description = "Not an os.datastore token", body = ErrorAnswer)),
    security(("jwt" = []), ("auth_token" = []), ("bearer" = [])))]
async fn info(
    PermissionToken { claims, .. }: PermissionToken,
    storage: web::Data<Storage>,
) -> Result<HttpResponse, ApiError> {
    if claims.service != DATASTORE_SERVICE {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("a permission token for {DATASTORE_SERVICE} is required"),
        ));
    }
    Ok(HttpResponse::Ok().json(Prefixes {
        prefixes: storage.datastore.prefixes(&claims.userid),
    }))
}

fn local(storage: &Storage) -> Result<&conductor_datastore::local::LocalDatastore, ApiError> {
    storage
        .local
        .as_deref()
        .ok_or_else(|| ApiError::not_found("this datastore is not served here"))
}

fn object_key(request: &HttpRequest) -> Result<ObjectKey, ApiError> {
    let raw = request.match_info().query("key");
    ObjectKey::parse(raw).map_err(|e| ApiError::bad_request("invalid-path", e.to_string()))
}

/// Receives an upload to the local datastore: only as signed, streamed, and stored only when it all checks out.
/// The local datastore's signed PUT (the URL `POST /datastore/` answered): the body must match the signed length,
/// MD5 and type.
#[utoipa::path(put, path = "/datastore/files/{key}", tag = "datastore",
    params(("key" = String, Path, description = "`<owner>/<package>/<path>`"),
        ("expires" = String, Query, description = "From the signed URL"),
        ("signature" = String, Query, description = "From the signed URL"),
        ("Content-MD5" = String, Header, description = "The file's MD5, base64")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "Stored; the ETag is the MD5"),
        (status = 400, description = "A bad key", body = ErrorAnswer),
        (status = 403, description = "A bad or expired signature, or a body that does not match it", body = ErrorAnswer),
        (status = 404, description = "This datastore is not served here", body = ErrorAnswer),
        (status = 408, description = "The body arrived too slowly", body = ErrorAnswer),
        (status = 413, description = "Longer than signed", body = ErrorAnswer)))]
async fn put_file(
    request: HttpRequest,
    params: Params,
    body: web::Payload,
    identity: web::Data<Identity>,
    storage: web::Data<Storage>,
) -> Result<HttpResponse, ApiError> {
    let store = local(&storage)?;
    let key = object_key(&request)?;
    let headers = request.headers();
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let presented = PresentedUpload {
        expires: params.get("expires"),
        signature: params.get("signature"),
        content_length: header_str(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        content_md5: header_str(header::HeaderName::from_static("content-md5")),
        content_type: header_str(header::CONTENT_TYPE),
    };
    store
        .receive(&key, &presented, body, identity.clock.now())
        .await
        .map_err(ApiError::from)?;
    let etag = presented
        .content_md5
        .and_then(|md5| HeaderValue::from_str(&format!("\"{md5}\"")).ok());
    let mut response = HttpResponse::Ok().finish();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// Public reads, as the original's public-read bucket. Served as the type that was signed for the upload, as a
/// download that cannot run as a page or a script on our origin.
/// A stored file's headers.
#[utoipa::path(head, path = "/datastore/files/{key}", tag = "datastore",
    params(("key" = String, Path, description = "`<owner>/<package>/<path>`")),
    responses((status = 200, description = "The file's headers"),
        (status = 400, description = "A bad key"),
        (status = 404, description = "No such object")))]
async fn head_file(request: HttpRequest, storage: web::Data<Storage>) -> Result<HttpResponse, ApiError> {
    get_file(request, storage).await
}

/// A stored file, as an attachment of the type it was signed for.
#[utoipa::path(get, path = "/datastore/files/{key}", tag = "datastore",
    params(("key" = String, Path, description = "`<owner>/<package>/<path>`")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "A bad key", body = ErrorAnswer),
        (status = 404, description = "No such object", body = ErrorAnswer)))]
async fn get_file(request: HttpRequest, storage: web::Data<Storage>) -> Result<HttpResponse, ApiError> {
    let store = local(&storage)?;
    let key = object_key(&request)?;
    let path = store.object_path(&key).map_err(ApiError::from)?;
    let content_type = store.object_type(&key).await;
    let file = actix_files::NamedFile::open_async(&path)
        .await
        .map_err(|_| ApiError::not_found("no such object"))?;
    let file_name = key.as_str().rsplit('/').next().unwrap_or_default().to_owned();
    let mut response = file
        .use_etag(true)
        .use_last_modified(true)
        .set_content_disposition(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(file_name)],
        })
        .into_response(&request);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    Ok(response)
}
