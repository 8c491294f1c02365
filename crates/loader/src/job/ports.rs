//! What a load reports to and clears: os-api's cache, a progress observer, the owner's datastore prefixes.

use std::sync::Arc;

use async_trait::async_trait;
use conductor_core::{LoadStatus, PackageId, UserId};

/// Clears os-api's cache of a package (reference §5); a no-op when no Redis is configured.
#[async_trait]
pub trait ApiCache: Send + Sync {
    async fn clear(&self, package: &PackageId) -> Result<u64, String>;
}

/// No os-api cache to clear.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoApiCache;

#[async_trait]
impl ApiCache for NoApiCache {
    async fn clear(&self, _package: &PackageId) -> Result<u64, String> {
        Ok(0)
    }
}

/// Hears a job's progress as it happens (the CLI draws its progress bar from it).
pub trait Observer: Send + Sync {
    fn progress(&self, status: LoadStatus, rows: u64, bytes: u64, size: Option<u64>);
}

/// Hears nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {
    fn progress(&self, _: LoadStatus, _: u64, _: u64, _: Option<u64>) {}
}

/// The datastore URL prefixes of an owner (`UploadSigner::prefixes`).
pub type Prefixes = Arc<dyn Fn(&UserId) -> Vec<String> + Send + Sync>;
