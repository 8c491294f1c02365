//! The `loader.*` and `compat.*` sections (DESIGN §9).

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderSettings {
    /// Load jobs this process runs at once (0: this replica only serves, others load).
    pub workers: usize,
    /// A job whose worker has not beaten for this long is failed by any replica; its old data stays.
    #[serde(with = "humantime_serde")]
    pub heartbeat_timeout: Duration,
    /// URL prefixes (scheme, host, port, path) loads may read besides the owner's datastore prefixes. An entry
    /// whose host is an IP address also allows that address, even a private one.
    pub fetch_allowlist: Vec<String>,
    /// URL prefixes `/package/run-hooks` may post to.
    pub hook_allowlist: Vec<String>,
    /// The largest file a load reads.
    pub max_download: ByteSize,
}

impl Default for LoaderSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            heartbeat_timeout: Duration::from_secs(60),
            fetch_allowlist: Vec::new(),
            hook_allowlist: Vec::new(),
            max_download: ByteSize::gib(5),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompatSettings {
    /// `/package/status` sends `progress` as a fraction 0..1 (what os-packager's progress bar reads) instead of
    /// the rows loaded.
    pub progress_as_fraction: bool,
}

/// Checks an allow-list entry: an http(s) URL prefix with a host and nothing else.
pub fn check_prefix(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{raw:?} must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{raw:?} must be a plain URL prefix (no credentials, query or fragment)"
        ));
    }
    Ok(url)
}
