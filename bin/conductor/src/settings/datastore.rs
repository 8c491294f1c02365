//! The `datastore.*` section (DESIGN §9): where uploads go and how they are signed.

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use url::Url;

use super::Secret;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatastoreBackend {
    /// Files under `<data_dir>/datastore`, uploaded to and served by the gateway.
    #[default]
    Local,
    /// Any S3-compatible object store.
    S3,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatastoreSettings {
    pub backend: DatastoreBackend,
    /// How long a signed upload URL stays valid (at most an hour).
    #[serde(with = "humantime_serde")]
    pub url_ttl: Duration,
    /// The largest file a user may upload (a single PUT; S3 allows 5 GiB).
    pub max_file_size: ByteSize,
    /// Content types an upload may declare; anything else is refused at signing.
    pub allowed_types: Vec<String>,
    pub s3: S3Settings,
}

impl Default for DatastoreSettings {
    fn default() -> Self {
        Self {
            backend: DatastoreBackend::Local,
            url_ttl: Duration::from_secs(15 * 60),
            max_file_size: ByteSize::gib(5),
            allowed_types: [
                "application/octet-stream",
                "text/csv",
                "application/json",
                "text/plain",
            ]
            .map(String::from)
            .to_vec(),
            s3: S3Settings::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// The endpoint, e.g. `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: Option<Url>,
    pub region: String,
    pub bucket: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    /// Address the bucket in the path (`endpoint/bucket/key`) rather than the host name.
    pub path_style: bool,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".to_owned(),
            bucket: None,
            access_key: None,
            secret_key: None,
            path_style: false,
        }
    }
}

/// The original's `OS_S3_HOSTNAME` (and `OS_S3_PORT`): a port other than 443 meant a plain-HTTP test server
/// (the fake S3 of its docker setup), addressed path-style.
pub fn endpoint_from_original(host: &str, port: Option<&str>) -> (String, bool) {
    match port.map(str::trim).filter(|p| !p.is_empty() && *p != "443") {
        Some(port) => (format!("http://{host}:{port}"), true),
        None => (format!("https://{host}"), false),
    }
}
