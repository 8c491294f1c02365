//! Where a load may read from (security-checklist §4.7): a datapackage and its resources come only from the
//! owner's own datastore prefixes or from `loader.fetch_allowlist`, over http or https, and a fetch never reaches a
//! loopback, private, link-local or metadata address unless the operator listed that address itself. The checks run
//! before any connection: on the URL, on every address a host name resolves to, and again on every redirect.

use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;

use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0:?} is not a URL")]
    InvalidUrl(String),
    #[error("{0}: only http and https URLs can be loaded")]
    Scheme(String),
    #[error("{0}: not under your datastore prefixes or an allow-listed location")]
    NotAllowed(String),
    #[error("{url}: {host} is an address loads may not reach")]
    ForbiddenAddress {
        url: String,
        host: String,
        address: IpAddr,
    },
    #[error("{url}: the server answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("{0}: not found in the datastore")]
    NotFound(String),
}

impl FetchError {
    /// The same error naming `url` instead: a signed URL's query is a credential, and a failed load's reason is
    /// shown to anyone who asks `/package/status`.
    fn naming(self, url: &Url) -> Self {
        let url = url.to_string();
        match self {
            Self::InvalidUrl(_) => Self::InvalidUrl(url),
            Self::Scheme(_) => Self::Scheme(url),
            Self::NotAllowed(_) => Self::NotAllowed(url),
            Self::ForbiddenAddress { host, address, .. } => Self::ForbiddenAddress { url, host, address },
            Self::Status { status, .. } => Self::Status { url, status },
            Self::TooLarge { limit, .. } => Self::TooLarge { url, limit },
            Self::Failed { reason, .. } => Self::Failed { url, reason },
            Self::NotFound(_) => Self::NotFound(url),
        }
    }
}

/// Why a URL may be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Under the owner's datastore prefix: the store the operator configured, read whatever its address.
    Datastore,
    /// Under an entry of `loader.fetch_allowlist`: its addresses are checked unless the entry names an IP itself.
    Allowlisted,
    /// A file under the folder an operator named on the command line (`conductor package load PATH`).
    OperatorFile,
}

/// The places one owner's load may read.
#[derive(Clone, Debug)]
pub struct FetchPolicy {
    datastore_prefixes: Vec<Url>,
    allowlist: Vec<Url>,
    /// A `file:` folder the operator trusts; never set for loads asked for over HTTP.
    operator_folder: Option<Url>,
    pub max_download: u64,
    /// The longest one fetch may take in all, when shorter than the source's own limit.
    pub timeout: Option<std::time::Duration>,
}

impl FetchPolicy {
    /// `datastore_prefixes` are the owner's (`UploadSigner::prefixes`); `allowlist` are URL prefixes from
    /// `loader.fetch_allowlist`. Entries that are not URLs are dropped (settings validate them at start-up).
    pub fn new(datastore_prefixes: &[String], allowlist: &[String], max_download: u64) -> Self {
        let parse = |raw: &[String]| raw.iter().filter_map(|p| Url::parse(p).ok()).collect();
        Self {
            datastore_prefixes: parse(datastore_prefixes),
            allowlist: parse(allowlist),
            operator_folder: None,
            max_download,
            timeout: None,
        }
    }

    /// Also allows the files under `folder` (an operator's command-line load).
    pub fn with_operator_folder(mut self, folder: &std::path::Path) -> Self {
        self.operator_folder = Url::from_directory_path(folder).ok();
        self
    }

    /// Whether `url` may be read, and why; checked before anything is fetched.
    pub fn check(&self, url: &Url) -> Result<Trust, FetchError> {
        if url.scheme() == "file"
            && let Some(folder) = &self.operator_folder
            && url.host().is_none()
            && inside_folder(url, folder)
        {
            return Ok(Trust::OperatorFile);
        }
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Scheme(url.to_string()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::NotAllowed(url.to_string()));
        }
        if self.datastore_prefixes.iter().any(|p| is_under(url, p)) {
            return Ok(Trust::Datastore);
        }
        if let Some(entry) = self.allowlist.iter().find(|p| is_under(url, p)) {
            if let Some(ip) = literal_ip(url) {
                // An address written in the URL never goes through the resolver: check it here, unless the
                // operator allow-listed exactly that address.
                if forbidden(ip) && literal_ip(entry) != Some(ip) {
                    return Err(FetchError::ForbiddenAddress {
                        url: url.to_string(),
                        host: ip.to_string(),
                        address: ip,
                    });
                }
            }
            return Ok(Trust::Allowlisted);
        }
        Err(FetchError::NotAllowed(url.to_string()))
    }

    /// Whether an address a host name resolved to may be reached (host names in the datastore prefixes are
    /// the operator's own and always may).
    pub fn address_allowed(&self, host: &str, address: IpAddr) -> bool {
        if self.datastore_prefixes.iter().any(|p| p.host_str() == Some(host)) {
            return true;
        }
        !forbidden(address)
    }
}

/// The file `url` names, resolved (`..`, symlinks and encoded separators included), lies inside `folder`.
fn inside_folder(url: &Url, folder: &Url) -> bool {
    let (Ok(path), Ok(folder)) = (url.to_file_path(), folder.to_file_path()) else {
        return false;
    };
    match (std::fs::canonicalize(&path), std::fs::canonicalize(&folder)) {
        (Ok(path), Ok(folder)) => path.starts_with(folder),
        _ => false,
    }
}

/// `url` lies under `prefix`: same origin, and the path continues at a segment boundary.
pub fn is_under(url: &Url, prefix: &Url) -> bool {
    if url.scheme() != prefix.scheme()
        || url.host_str() != prefix.host_str()
        || url.port_or_known_default() != prefix.port_or_known_default()
    {
        return false;
    }
    let base = prefix.path();
    let path = url.path();
    if conductor_core::url_path::hides_separator(path) {
        return false;
    }
    match path.strip_prefix(base) {
        Some(rest) => base.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Loopback, private (RFC 1918, unique local), link-local (cloud metadata included), shared (100.64/10),
/// unspecified, multicast, broadcast and documentation ranges, and IPv4 addresses inside IPv6.
pub fn forbidden(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_broadcast()
                || ip.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped().or_else(|| ip.to_ipv4()) {
                return forbidden(IpAddr::V4(v4));
            }
            let s = ip.segments();
            let embedded = |hi: u16, lo: u16| {
                forbidden(IpAddr::V4(std::net::Ipv4Addr::from(
                    (u32::from(hi) << 16) | u32::from(lo),
                )))
            };
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that is reached in the end.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] && embedded(s[6], s[7]) {
                return true;
            }
            if s[0] == 0x2002 && embedded(s[1], s[2]) {
                return true;
            }
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                // Teredo tunnels and the documentation range.
                || (s[0] == 0x2001 && (s[1] == 0 || s[1] == 0x0db8))
        }
    }
}

/// An opened resource: a byte stream and, when known, its length (for the progress estimate).
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub size: Option<u64>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Reads a URL the policy allows. Blocking: the loader calls it from a thread of its own.
pub trait Source: Send + Sync {
    fn open(&self, url: &Url, policy: &FetchPolicy) -> Result<Opened, FetchError>;
}

/// Where a datastore URL is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Located {
    /// A file on this machine (the local datastore).
    File(PathBuf),
    /// A signed URL of the same object (a private bucket).
    Signed(Url),
}

/// Finds where the object behind one of the datastore's URLs is read.
pub trait DatastoreReads: Send + Sync {
    fn locate(&self, url: &Url) -> Option<Located>;
}

/// Reads datastore objects where the datastore says (from disk when it is local), and everything else through
/// `remote`.
pub struct DatastoreFirst<R> {
    pub datastore: Option<std::sync::Arc<dyn DatastoreReads>>,
    pub remote: R,
}

impl<R> std::fmt::Debug for DatastoreFirst<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatastoreFirst")
            .field("datastore", &self.datastore.is_some())
            .finish_non_exhaustive()
    }
}

impl<R: Source> Source for DatastoreFirst<R> {
    fn open(&self, url: &Url, policy: &FetchPolicy) -> Result<Opened, FetchError> {
        let path = match (policy.check(url)?, &self.datastore) {
            (Trust::OperatorFile, _) => url.to_file_path().ok(),
            (Trust::Datastore, Some(datastore)) => match datastore.locate(url) {
                Some(Located::File(path)) => Some(path),
                Some(Located::Signed(signed)) => {
                    return self.remote.open(&signed, policy).map_err(|e| e.naming(url));
                }
                None => None,
            },
            _ => return self.remote.open(url, policy),
        };
        let path = path.ok_or_else(|| FetchError::NotFound(url.to_string()))?;
        let file = std::fs::File::open(&path).map_err(|e| FetchError::Failed {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        if size.is_some_and(|s| s > policy.max_download) {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                limit: policy.max_download,
            });
        }
        Ok(Opened {
            reader: Box::new(file),
            size,
        })
    }
}

/// Stops a stream with an error once it passes `limit` bytes.
#[derive(Debug)]
pub struct Limited<R> {
    inner: R,
    remaining: u64,
    limit: u64,
}

impl<R> Limited<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Read one byte past the limit so a stream of exactly `limit` bytes passes and a longer one fails.
        let want = buf
            .len()
            .min(usize::try_from(self.remaining.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.remaining {
            return Err(std::io::Error::other(format!(
                "larger than the limit of {} bytes",
                self.limit
            )));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(feature = "http")]
pub use http::HttpSource;

#[cfg(feature = "http")]
mod http {
    use std::net::{SocketAddr, ToSocketAddrs};
    use std::sync::Arc;
    use std::time::Duration;

    use reqwest::dns::{Addrs, Name, Resolve, Resolving};

    use super::*;

    /// Redirects followed at most (security-checklist §4.7).
    const MAX_REDIRECTS: usize = 3;

    /// Fetches over HTTP with the policy's rules: no proxies, addresses checked at resolution, redirects
    /// re-checked, time and size limits.
    #[derive(Debug, Clone)]
    pub struct HttpSource {
        pub connect_timeout: Duration,
        /// The longest a response may take to arrive in full.
        pub timeout: Duration,
    }

    impl Default for HttpSource {
        fn default() -> Self {
            Self {
                connect_timeout: Duration::from_secs(5),
                timeout: Duration::from_secs(3600),
            }
        }
    }

    /// Resolves with the system resolver and refuses the whole answer if any address is forbidden, so a
    /// rebinding answer cannot slip a private address in beside a public one.
    struct CheckingResolver {
        policy: FetchPolicy,
    }

    impl Resolve for CheckingResolver {
        fn resolve(&self, name: Name) -> Resolving {
            let policy = self.policy.clone();
            let host = name.as_str().to_owned();
            Box::pin(async move {
                let lookup = host.clone();
                let addresses: Vec<SocketAddr> =
                    tokio::task::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs())
                        .await??
                        .collect();
                if let Some(bad) = addresses.iter().find(|a| !policy.address_allowed(&host, a.ip())) {
                    // The address stays in the log: job errors are readable by anyone who knows the URL.
                    tracing::warn!(%host, address = %bad.ip(), "refused a fetch to a forbidden address");
                    return Err(format!("{host} resolves to an address loads may not reach").into());
                }
                let addrs: Addrs = Box::new(addresses.into_iter());
                Ok(addrs)
            })
        }
    }

    impl Source for HttpSource {
        fn open(&self, url: &Url, policy: &FetchPolicy) -> Result<Opened, FetchError> {
            policy.check(url)?;
            let redirect_policy = policy.clone();
            let client = reqwest::blocking::Client::builder()
                .no_proxy()
                .connect_timeout(self.connect_timeout)
                .timeout(policy.timeout.map_or(self.timeout, |t| t.min(self.timeout)))
                .dns_resolver(Arc::new(CheckingResolver {
                    policy: policy.clone(),
                }))
                .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                    if attempt.previous().len() > MAX_REDIRECTS {
                        return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                    }
                    match redirect_policy.check(attempt.url()) {
                        Ok(_) => attempt.follow(),
                        Err(e) => attempt.error(e.to_string()),
                    }
                }))
                .build()
                .map_err(|e| failed(url, &e))?;
            let response = client.get(url.clone()).send().map_err(|e| failed(url, &e))?;
            let status = response.status();
            if !status.is_success() {
                // The target's body is never echoed back (security-checklist §4.7).
                return Err(FetchError::Status {
                    url: url.to_string(),
                    status: status.as_u16(),
                });
            }
            let size = response.content_length();
            if size.is_some_and(|s| s > policy.max_download) {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                    limit: policy.max_download,
                });
            }
            Ok(Opened {
                reader: Box::new(Limited::new(response, policy.max_download)),
                size,
            })
        }
    }

    /// A client error as a person reads it: the innermost cause says what happened (refused address, timeout).
    fn failed(url: &Url, error: &reqwest::Error) -> FetchError {
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        FetchError::Failed {
            url: url.to_string(),
            reason,
        }
    }
}

#[cfg(test)]
#[cfg(feature = "http")]
#[path = "fetch_http_tests.rs"]
mod http_tests;

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
