//! The datastore chosen from `datastore.backend`, wired once.

use std::sync::Arc;

use conductor_core::Clock;
use conductor_datastore::local::LocalDatastore;
use conductor_datastore::s3::{S3Config, S3Datastore};
use conductor_datastore::{Datastore, Limits, UploadSigner};

use crate::services::{Site, StartupError};
use crate::settings::{DatastoreBackend, DatastoreSettings};

/// The datastore, and the local store when that is the backend (the gateway serves its files).
#[derive(Clone, Debug)]
pub struct Storage {
    pub datastore: Datastore,
    pub local: Option<Arc<LocalDatastore>>,
}

impl Storage {
    pub fn build(
        config: &DatastoreSettings,
        site: Site<'_>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let limits = Limits {
            url_ttl: config.url_ttl,
            max_file_size: config.max_file_size.as_u64(),
            allowed_types: config.allowed_types.clone(),
        };
        let (signer, local): (Arc<dyn UploadSigner>, _) = match config.backend {
            DatastoreBackend::Local => {
                let local = Arc::new(
                    LocalDatastore::open(
                        &site.data_dir.join("datastore"),
                        site.base_url,
                        &site.data_dir.join("keys").join("datastore-hmac.key"),
                    )
                    .map_err(StartupError::LocalDatastore)?,
                );
                (local.clone(), Some(local))
            }
            DatastoreBackend::S3 => {
                let s3 = &config.s3;
                // Validation made sure these are set.
                let required = |value: Option<String>, key: &str| {
                    value.ok_or_else(|| StartupError::Invalid(format!("{key} is required")))
                };
                let s3_config = S3Config {
                    endpoint: s3
                        .endpoint
                        .clone()
                        .ok_or_else(|| StartupError::Invalid("datastore.s3.endpoint is required".into()))?,
                    region: s3.region.clone(),
                    bucket: required(s3.bucket.clone(), "datastore.s3.bucket")?,
                    access_key: required(s3.access_key.clone(), "datastore.s3.access_key")?,
                    secret_key: required(
                        s3.secret_key.as_ref().map(|s| s.expose().to_owned()),
                        "datastore.s3.secret_key",
                    )?,
                    path_style: s3.path_style,
                };
                let signer = S3Datastore::new(&s3_config).map_err(StartupError::S3)?;
                (Arc::new(signer), None)
            }
        };
        tracing::info!(backend = signer.backend(), "datastore configured");
        Ok(Self {
            datastore: Datastore::new(signer, limits, clock),
            local,
        })
    }
}
