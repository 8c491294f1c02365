//! The datastore (DESIGN §6): authorizing uploads of a data package's files and signing one PUT per file,
//! confined to the uploader's own `<owner>/<dataset>/` prefix, with the length, MD5 and type bound into the
//! signature. Signing is a port, [`UploadSigner`], with two adapters: S3 ([`s3`], behind the `s3` feature) and the
//! embedded default, a local folder served by the gateway ([`local`]).

pub mod local;
mod path;
#[cfg(feature = "s3")]
pub mod s3;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conductor_core::{Clock, DatasetName, Timestamp, UserId};
use conductor_permissions::{Denied, Holder, may_upload};
use serde::{Deserialize, Serialize};

pub use path::{ObjectKey, PathError, RelativePath};

#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    #[error("metadata.{0} is required")]
    MissingMetadata(&'static str),
    #[error("metadata.owner is not a user id")]
    InvalidOwner,
    #[error("metadata.name {0:?} gives no usable dataset name")]
    InvalidName(String),
    #[error("filedata is empty: nothing to upload")]
    NoFiles,
    #[error("{path:?}: {reason}")]
    InvalidPath { path: String, reason: PathError },
    #[error("{path:?}: md5 must be the base64 of 16 bytes")]
    InvalidMd5 { path: String },
    #[error("{path:?}: length {length} is over the limit of {limit} bytes")]
    TooLarge { path: String, length: u64, limit: u64 },
    #[error("{path:?}: type {content_type:?} is not accepted (allowed: {allowed})")]
    TypeNotAllowed {
        path: String,
        content_type: String,
        allowed: String,
    },
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("the datastore is unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, DatastoreError>;

/// `POST /datastore/`'s body, read leniently: fields the original's clients send that we do not use are ignored.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadRequest {
    pub metadata: Metadata,
    #[serde(default)]
    pub filedata: BTreeMap<String, FileSpec>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Metadata {
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileSpec {
    pub length: u64,
    pub md5: String,
    #[serde(default, rename = "type")]
    pub content_type: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// One file's signed PUT, in the original's answer shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthorizedFile {
    pub md5: String,
    pub name: String,
    pub length: u64,
    #[serde(rename = "type")]
    pub content_type: String,
    pub upload_url: String,
    /// The query to add to `upload_url`, as a dict of lists (clients take the first of each).
    pub upload_query: BTreeMap<String, Vec<String>>,
    /// The datastore already holds this file (same key, length and MD5): a client may skip its upload. Not in
    /// the original's answer; its clients ignore it.
    pub stored: bool,
}

/// A file to sign for: validated key, length, MD5 (base64) and content type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSpec {
    pub key: ObjectKey,
    pub length: u64,
    pub md5: String,
    pub content_type: String,
}

/// A signed PUT: where, and the query parameters that carry the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPut {
    pub url: String,
    pub query: Vec<(String, String)>,
}

/// Signs uploads for one storage backend.
#[async_trait]
pub trait UploadSigner: Send + Sync {
    /// `s3` or `local`, for readiness and logs.
    fn backend(&self) -> &'static str;
    /// A PUT of exactly this file to its key, valid until `expires_at`.
    async fn sign_put(&self, upload: &UploadSpec, now: Timestamp, expires_at: Timestamp)
    -> Result<SignedPut>;
    /// The URL prefixes of `owner`'s files: every upload URL signed for them starts with one.
    fn prefixes(&self, owner: &UserId) -> Vec<String>;
    /// The public URL a stored object is read at.
    fn public_url(&self, key: &ObjectKey) -> String;
    /// Whether the storage answers (for `/readyz`).
    async fn check(&self) -> Result<()>;
    /// The file behind one of this store's public URLs, when the store keeps files on this machine, so the
    /// loader reads it directly instead of fetching it from ourselves over HTTP.
    fn local_file(&self, _url: &url::Url) -> Option<std::path::PathBuf> {
        None
    }
    /// A short-lived signed GET for one of this store's public URLs, when reading needs credentials (a private
    /// bucket); `None` when the URL is not this store's or can be read as it is.
    async fn presign_get(&self, _url: &url::Url) -> Result<Option<url::Url>> {
        Ok(None)
    }
    /// Whether the store holds an object at the upload's key with its length and MD5 already.
    async fn holds(&self, upload: &UploadSpec) -> Result<bool>;
}

/// Upload limits from `datastore.*`.
#[derive(Clone, Debug)]
pub struct Limits {
    pub url_ttl: Duration,
    pub max_file_size: u64,
    pub allowed_types: Vec<String>,
}

/// Upload authorization over one signer.
#[derive(Clone)]
pub struct Datastore {
    signer: Arc<dyn UploadSigner>,
    limits: Limits,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Datastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datastore")
            .field("backend", &self.signer.backend())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Datastore {
    pub fn new(signer: Arc<dyn UploadSigner>, limits: Limits, clock: Arc<dyn Clock>) -> Self {
        Self {
            signer,
            limits,
            clock,
        }
    }

    /// The signer, shared (the loader reads the datastore's objects through it).
    pub fn signer_arc(&self) -> Arc<dyn UploadSigner> {
        self.signer.clone()
    }

    pub fn signer(&self) -> &dyn UploadSigner {
        self.signer.as_ref()
    }

    /// Checks the request and the holder's right to upload for its owner, then signs one PUT per file.
    pub async fn authorize(
        &self,
        holder: Holder<'_>,
        request: &UploadRequest,
    ) -> Result<BTreeMap<String, AuthorizedFile>> {
        let owner = request.metadata.owner.as_deref().filter(|o| !o.is_empty());
        let owner = owner.ok_or(DatastoreError::MissingMetadata("owner"))?;
        let name = request.metadata.name.as_deref().filter(|n| !n.trim().is_empty());
        let name = name.ok_or(DatastoreError::MissingMetadata("name"))?;
        // The owner is compared with the token before anything else about it, so a mismatch is a 403.
        let owner = UserId::parse(owner).map_err(|_| {
            if owner == holder.userid.as_str() {
                DatastoreError::InvalidOwner
            } else {
                Denied::NotOwner.into()
            }
        })?;
        may_upload(holder, &owner)?;
        let dataset = DatasetName::slug(name).map_err(|_| DatastoreError::InvalidName(name.to_owned()))?;
        if request.filedata.is_empty() {
            return Err(DatastoreError::NoFiles);
        }
        let now = self.clock.now();
        let expires_at = now.plus(self.limits.url_ttl);
        let mut authorized = BTreeMap::new();
        for (path, file) in &request.filedata {
            let upload = self.check_file(&owner, &dataset, path, file)?;
            let signed = self.signer.sign_put(&upload, now, expires_at).await?;
            // A store that cannot tell only costs the client an upload it could have skipped.
            let stored = self.signer.holds(&upload).await.unwrap_or_else(|error| {
                tracing::warn!(key = upload.key.as_str(), %error, "could not check for a stored copy");
                false
            });
            let mut upload_query: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (key, value) in signed.query {
                upload_query.entry(key).or_default().push(value);
            }
            authorized.insert(
                path.clone(),
                AuthorizedFile {
                    md5: upload.md5,
                    name: file.name.clone().unwrap_or_else(|| path.clone()),
                    length: upload.length,
                    content_type: upload.content_type,
                    upload_url: signed.url,
                    upload_query,
                    stored,
                },
            );
        }
        Ok(authorized)
    }

    fn check_file(
        &self,
        owner: &UserId,
        dataset: &DatasetName,
        path: &str,
        file: &FileSpec,
    ) -> Result<UploadSpec> {
        let relative = RelativePath::parse(path).map_err(|reason| DatastoreError::InvalidPath {
            path: path.to_owned(),
            reason,
        })?;
        let key =
            ObjectKey::new(owner, dataset, &relative).map_err(|reason| DatastoreError::InvalidPath {
                path: path.to_owned(),
                reason,
            })?;
        if file.length > self.limits.max_file_size {
            return Err(DatastoreError::TooLarge {
                path: path.to_owned(),
                length: file.length,
                limit: self.limits.max_file_size,
            });
        }
        let md5_valid = STANDARD
            .decode(file.md5.trim())
            .is_ok_and(|digest| digest.len() == 16);
        if !md5_valid {
            return Err(DatastoreError::InvalidMd5 {
                path: path.to_owned(),
            });
        }
        let content_type = file
            .content_type
            .as_deref()
            .map_or("application/octet-stream", str::trim);
        if !self
            .limits
            .allowed_types
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(content_type))
        {
            return Err(DatastoreError::TypeNotAllowed {
                path: path.to_owned(),
                content_type: content_type.to_owned(),
                allowed: self.limits.allowed_types.join(", "),
            });
        }
        Ok(UploadSpec {
            key,
            length: file.length,
            md5: file.md5.trim().to_owned(),
            content_type: content_type.to_owned(),
        })
    }

    pub fn prefixes(&self, owner: &UserId) -> Vec<String> {
        self.signer.prefixes(owner)
    }
}
