//! The S3 adapter: SigV4 presigned PUTs (rust-s3) for any S3-compatible endpoint, with `Content-MD5`,
//! `Content-Length` and `Content-Type` among the signed headers, so S3 itself refuses a body that differs.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine;
use conductor_core::{Timestamp, UserId};
use s3::creds::Credentials;
use s3::{Bucket, Region};
use url::Url;

use crate::{DatastoreError, ObjectKey, Result, SignedPut, UploadSigner, UploadSpec};

/// SigV4 presigned URLs live at most a week; anything longer is refused by S3.
const MAX_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// Where the bucket is and how to sign for it.
#[derive(Clone)]
pub struct S3Config {
    /// The endpoint URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
    pub endpoint: Url,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`.
    pub path_style: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

pub struct S3Datastore {
    bucket: Box<Bucket>,
    /// The bucket's public base URL, ending with `/`.
    public_base: String,
}

impl std::fmt::Debug for S3Datastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Datastore")
            .field("bucket", &self.bucket.name())
            .field("public_base", &self.public_base)
            .finish()
    }
}

impl S3Datastore {
    pub fn new(config: &S3Config) -> Result<Self> {
        let unavailable = |e: &dyn std::fmt::Display| DatastoreError::Unavailable(e.to_string());
        let endpoint = config.endpoint.as_str().trim_end_matches('/').to_owned();
        let region = Region::Custom {
            region: config.region.clone(),
            endpoint,
        };
        let credentials = Credentials::new(
            Some(&config.access_key),
            Some(&config.secret_key),
            None,
            None,
            None,
        )
        .map_err(|e| unavailable(&e))?;
        let mut bucket = Bucket::new(&config.bucket, region, credentials).map_err(|e| unavailable(&e))?;
        if config.path_style {
            bucket = bucket.with_path_style();
        }
        let public_base = format!("{}/", bucket.url().trim_end_matches('/'));
        Ok(Self { bucket, public_base })
    }
}

#[async_trait]
impl UploadSigner for S3Datastore {
    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn sign_put(
        &self,
        upload: &UploadSpec,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<SignedPut> {
        let seconds = ((expires_at.as_millis() - now.as_millis()) / 1000).clamp(1, MAX_EXPIRY_SECS as i64);
        let mut headers = http::HeaderMap::new();
        let header = |value: &str| {
            http::HeaderValue::from_str(value)
                .map_err(|e| DatastoreError::Signing(format!("header value: {e}")))
        };
        headers.insert(http::HeaderName::from_static("content-md5"), header(&upload.md5)?);
        headers.insert(http::header::CONTENT_LENGTH, header(&upload.length.to_string())?);
        headers.insert(http::header::CONTENT_TYPE, header(&upload.content_type)?);
        let presigned = self
            .bucket
            .presign_put(
                upload.key.as_str(),
                u32::try_from(seconds).unwrap_or(u32::MAX),
                Some(headers),
                None::<HashMap<String, String>>,
            )
            .await
            .map_err(|e| DatastoreError::Signing(e.to_string()))?;
        let url = Url::parse(&presigned).map_err(|e| DatastoreError::Signing(e.to_string()))?;
        let query = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut base = url;
        base.set_query(None);
        Ok(SignedPut {
            url: base.into(),
            query,
        })
    }

    fn prefixes(&self, owner: &UserId) -> Vec<String> {
        vec![format!("{}{owner}", self.public_base)]
    }

    fn public_url(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.public_base, key.url_path())
    }

    async fn presign_get(&self, url: &Url) -> Result<Option<Url>> {
        let Some(encoded) = url.as_str().strip_prefix(self.public_base.as_str()) else {
            return Ok(None);
        };
        let Ok(key) = percent_encoding::percent_decode_str(encoded).decode_utf8() else {
            return Ok(None);
        };
        let Ok(key) = ObjectKey::parse(&key) else {
            return Ok(None);
        };
        // Long enough for a slow load to begin; the body then streams on the open connection.
        let presigned = self
            .bucket
            .presign_get(key.as_str(), 900, None)
            .await
            .map_err(|e| DatastoreError::Signing(e.to_string()))?;
        Url::parse(&presigned)
            .map(Some)
            .map_err(|e| DatastoreError::Signing(e.to_string()))
    }

    async fn holds(&self, upload: &UploadSpec) -> Result<bool> {
        let Ok(md5) = base64::engine::general_purpose::STANDARD.decode(&upload.md5) else {
            return Ok(false);
        };
        let hex: String = md5.iter().map(|b| format!("{b:02x}")).collect();
        match self.bucket.head_object(upload.key.as_str()).await {
            // A single-part upload's ETag is its MD5 in hex; a multipart one's never matches (it has `-<parts>`).
            Ok((head, 200)) => Ok(head.content_length == i64::try_from(upload.length).ok()
                && head
                    .e_tag
                    .is_some_and(|tag| tag.trim_matches('"').eq_ignore_ascii_case(&hex))),
            Ok(_) | Err(s3::error::S3Error::HttpFailWithBody(404, _)) => Ok(false),
            Err(error) => Err(DatastoreError::Unavailable(error.to_string())),
        }
    }

    async fn check(&self) -> Result<()> {
        // Any answer from the bucket (an object found or not) proves the endpoint, bucket and credentials work.
        match self.bucket.head_object("conductor-readiness-probe").await {
            Ok(_) => Ok(()),
            Err(s3::error::S3Error::HttpFailWithBody(404, _)) => Ok(()),
            Err(error) => Err(DatastoreError::Unavailable(error.to_string())),
        }
    }
}
