//! `/datastore/*`: signed uploads (DESIGN §6), the user's prefixes, and the local datastore's files.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use conductor_datastore::local::PresentedUpload;
use conductor_datastore::{ObjectKey, UploadRequest};
use conductor_permissions::{DATASTORE_SERVICE, Holder};
use serde_json::json;

use crate::credentials::PermissionToken;
use crate::error::ApiError;
use crate::params::Params;
use crate::services::auth::Identity;
use crate::services::datastore::Storage;

/// Where the local datastore's files are uploaded and read.
pub const FILES_SCOPE: &str = "/datastore/files";

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
            .head(get_file),
    );
}

/// Signs one PUT per file of a data package, for the token holder's own prefix.
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
    Ok(HttpResponse::Ok().json(json!({"filedata": filedata})))
}

/// The URL prefixes of the token holder's files.
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
    Ok(HttpResponse::Ok().json(json!({"prefixes": storage.datastore.prefixes(&claims.userid)})))
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
