//! The `server.*` section (DESIGN §9): where the gateway listens and the bounds every request meets.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// The public URL clients reach this service at; login and datastore URLs are built from it.
    pub base_url: Url,
    /// The largest request body accepted, except datastore uploads, which are bounded by what was signed.
    pub body_limit: ByteSize,
    /// How long reading a request body may take, plus one second per `min_body_rate` of its announced length:
    /// a body trickling in a byte at a time cannot hold its connection.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// The slowest body rate the deadline allows for, per second (large datastore uploads get longer).
    pub min_body_rate: ByteSize,
    /// Connections one client address may hold open at once (0: no cap). Behind a reverse proxy every client
    /// is the proxy's address: raise it or cap at the proxy.
    pub max_connections_per_client: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed: a request from one of these addresses is counted
    /// (for the API key rate limits) as coming from the nearest address before them in the header.
    pub trusted_proxies: Vec<IpAddr>,
    /// Serve `/metrics` only on this address (an internal port) instead of on `bind`.
    pub metrics_bind: Option<SocketAddr>,
    pub cors: CorsSettings,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Origins allowed to call with credentials. Unset: the origins of `auth.redirect_allowlist`.
    pub allowed_origins: Option<Vec<String>>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            base_url: Url::parse("http://127.0.0.1:8000").unwrap_or_else(|_| unreachable!("a valid literal")),
            body_limit: ByteSize::mib(1),
            body_timeout: Duration::from_secs(30),
            min_body_rate: ByteSize::kib(64),
            max_connections_per_client: 64,
            trusted_proxies: Vec::new(),
            metrics_bind: None,
            cors: CorsSettings::default(),
        }
    }
}
