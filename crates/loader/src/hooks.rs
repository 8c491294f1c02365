//! `/package/run-hooks` (DESIGN §7): a package's JSON-LD posted to a pipeline, only under a prefix of
//! `loader.hook_allowlist`, only to a public address (or one an allow-list entry names), pinned to the address
//! checked, the answer capped. The rules live here; the network sits behind the [`HookPoster`] port, and
//! [`Loader::run_hooks`](crate::Loader::run_hooks) puts them together with the package's payload.

use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;
use serde_json::Value;
use url::Url;

use crate::fetch::{forbidden, is_under};

/// The most of a hook's answer passed back to the caller.
pub const HOOK_RESPONSE_LIMIT: usize = 64 * 1024;

/// Why a hook was not posted, or failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Failed(String),
    #[error("the hook request could not be built: {0}")]
    Client(String),
}

/// A hook URL that passed the checks, and the one address it is posted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookTarget {
    pub pipeline: Url,
    pub address: SocketAddr,
}

/// What the pipeline answered: whether it took the post, and the start of its answer (at most
/// [`HOOK_RESPONSE_LIMIT`] bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookAnswer {
    pub success: bool,
    pub response: String,
}

/// The network side of run-hooks.
#[async_trait]
pub trait HookPoster: Send + Sync {
    /// Every address `host` resolves to.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, HookError>;
    /// Posts `payload` as the multipart file `input` to `target.address` alone, no redirects followed.
    async fn post(&self, target: &HookTarget, payload: &Value) -> Result<HookAnswer, HookError>;
}

/// Checks `pipeline` against `allowlist` and the address rules, before anything is read or sent: the target
/// to post to.
pub async fn hook_target(
    poster: &dyn HookPoster,
    pipeline: &Url,
    allowlist: &[String],
) -> Result<HookTarget, HookError> {
    if !hook_allowed(pipeline, allowlist) {
        return Err(HookError::NotAllowed(format!(
            "{pipeline} is not in loader.hook_allowlist"
        )));
    }
    let host = pipeline
        .host_str()
        .ok_or_else(|| HookError::NotAllowed(format!("{pipeline} has no host")))?
        .trim_matches(['[', ']']);
    let port = pipeline.port_or_known_default().unwrap_or(80);
    let addresses = poster.resolve(host, port).await?;
    let address = public_address(host, &addresses, &named_ips(allowlist)).map_err(HookError::NotAllowed)?;
    Ok(HookTarget {
        pipeline: pipeline.clone(),
        address,
    })
}

/// The same prefix rule as the loader's fetch allow-list.
fn hook_allowed(url: &Url, allowlist: &[String]) -> bool {
    allowlist
        .iter()
        .filter_map(|p| Url::parse(p).ok())
        .any(|prefix| is_under(url, &prefix))
}

/// The IP addresses allow-list entries name literally: the only private addresses a hook may reach.
fn named_ips(allowlist: &[String]) -> Vec<IpAddr> {
    allowlist
        .iter()
        .filter_map(|entry| Url::parse(entry).ok())
        .filter_map(|entry| entry.host_str()?.trim_matches(['[', ']']).parse().ok())
        .collect()
}

/// The first address that is public or named, refused when every one is loopback, private or link-local.
fn public_address(host: &str, addresses: &[SocketAddr], named: &[IpAddr]) -> Result<SocketAddr, String> {
    if let Some(address) = addresses
        .iter()
        .find(|a| !forbidden(a.ip()) || named.contains(&a.ip()))
    {
        return Ok(*address);
    }
    Err(match addresses.first() {
        Some(refused) => format!(
            "{host} resolves to {}, a private address; name that IP in loader.hook_allowlist",
            refused.ip()
        ),
        None => format!("{host} does not resolve"),
    })
}

#[cfg(feature = "http")]
pub use http::HttpHooks;

#[cfg(feature = "http")]
mod http {
    use std::time::Duration;

    use super::*;

    /// Posts hooks over HTTP: no proxy, no redirects, a minute at most, the answer read up to the cap.
    #[derive(Debug, Default, Clone)]
    pub struct HttpHooks;

    #[async_trait]
    impl HookPoster for HttpHooks {
        async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, HookError> {
            let lookup = host.to_owned();
            let resolved = tokio::task::spawn_blocking(move || {
                std::net::ToSocketAddrs::to_socket_addrs(&(lookup.as_str(), port)).map(Iterator::collect)
            })
            .await
            .map_err(|e| HookError::Client(e.to_string()))?;
            resolved.map_err(|e| HookError::NotAllowed(format!("{host} does not resolve: {e}")))
        }

        async fn post(&self, target: &HookTarget, payload: &Value) -> Result<HookAnswer, HookError> {
            let pipeline = &target.pipeline;
            let file = reqwest::multipart::Part::bytes(payload.to_string().into_bytes())
                .file_name("package-url.jsonld")
                .mime_str("application/ld+json")
                .map_err(|e| HookError::Client(e.to_string()))?;
            // Pinned to the address checked, so a second DNS answer cannot point the post elsewhere.
            let client = reqwest::Client::builder()
                .resolve(pipeline.host_str().unwrap_or_default(), target.address)
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| HookError::Client(e.to_string()))?;
            let mut response = client
                .post(pipeline.clone())
                .multipart(reqwest::multipart::Form::new().part("input", file))
                .send()
                .await
                .map_err(|e| HookError::Failed(format!("{pipeline}: {e}")))?;
            let success = response.status().is_success();
            let mut body = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                body.extend_from_slice(&chunk[..chunk.len().min(HOOK_RESPONSE_LIMIT - body.len())]);
                if body.len() >= HOOK_RESPONSE_LIMIT {
                    break;
                }
            }
            Ok(HookAnswer {
                success,
                response: String::from_utf8_lossy(&body).into_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_go_only_to_allow_listed_prefixes() {
        let allow = vec!["https://apps.openbudgets.eu/linkedpipes/execute/".to_owned()];
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(hook_allowed(
            &url("https://apps.openbudgets.eu/linkedpipes/execute/fdp2rdf"),
            &allow
        ));
        assert!(!hook_allowed(&url("https://apps.openbudgets.eu/other"), &allow));
        let no_slash = vec!["https://apps.openbudgets.eu/linkedpipes/execute".to_owned()];
        assert!(hook_allowed(
            &url("https://apps.openbudgets.eu/linkedpipes/execute/x"),
            &no_slash
        ));
        assert!(!hook_allowed(
            &url("https://apps.openbudgets.eu/linkedpipes/execute-evil"),
            &no_slash
        ));
        assert!(!hook_allowed(
            &url("https://apps.openbudgets.eu/linkedpipes/execute/..%2f..%2fadmin"),
            &allow
        ));
        assert!(!hook_allowed(
            &url("http://apps.openbudgets.eu/linkedpipes/execute/x"),
            &allow
        ));
        assert!(!hook_allowed(
            &url("https://169.254.169.254/linkedpipes/execute/"),
            &allow
        ));
        assert!(!hook_allowed(
            &url("https://apps.openbudgets.eu/linkedpipes/execute/x"),
            &[]
        ));
    }

    #[test]
    fn a_private_address_is_reached_only_when_an_entry_names_it() {
        let address = |s: &str| s.parse::<SocketAddr>().unwrap();
        let private = [address("10.0.0.5:80"), address("127.0.0.1:80")];
        let refused = public_address("pipes.example", &private, &[]).unwrap_err();
        assert!(refused.contains("10.0.0.5, a private address"), "{refused}");
        let named = ["10.0.0.5".parse().unwrap()];
        assert_eq!(public_address("pipes.example", &private, &named), Ok(private[0]));
        let mixed = [address("127.0.0.1:80"), address("93.184.215.14:80")];
        assert_eq!(public_address("pipes.example", &mixed, &[]), Ok(mixed[1]));
        assert!(
            public_address("pipes.example", &[], &[])
                .unwrap_err()
                .contains("does not resolve")
        );
        assert_eq!(
            named_ips(&["http://[::1]:9/x/".into(), "https://pipes.example/".into()]),
            vec!["::1".parse::<IpAddr>().unwrap()]
        );
    }
}
