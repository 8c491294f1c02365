//! `/package/run-hooks`' post: the package's JSON-LD as a multipart file `input`, only to an allow-listed prefix,
//! only to a public address (or one the allow-list names), pinned to the address checked, the answer capped.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use url::Url;

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

/// A hook URL that passed the checks, with the address it is posted to.
#[derive(Debug)]
pub struct Hook {
    pipeline: Url,
    address: SocketAddr,
}

/// Checks `pipeline` against the allow-list and the address rules, before anything is read or sent.
pub async fn check(pipeline: &Url, allowlist: &[String]) -> Result<Hook, HookError> {
    if !hook_allowed(pipeline, allowlist) {
        return Err(HookError::NotAllowed(format!(
            "{pipeline} is not in loader.hook_allowlist"
        )));
    }
    let address = hook_address(pipeline, allowlist)
        .await
        .map_err(HookError::NotAllowed)?;
    Ok(Hook {
        pipeline: pipeline.clone(),
        address,
    })
}

impl Hook {
    /// Posts `payload`; answers whether the hook took it and the start of its answer.
    pub async fn post(&self, payload: &Value) -> Result<(bool, String), HookError> {
        let (pipeline, address) = (&self.pipeline, self.address);
        let file = reqwest::multipart::Part::bytes(payload.to_string().into_bytes())
            .file_name("package-url.jsonld")
            .mime_str("application/ld+json")
            .map_err(|e| HookError::Client(e.to_string()))?;
        // Pinned to the address checked above, so a second DNS answer cannot point the post elsewhere.
        let client = reqwest::Client::builder()
            .resolve(pipeline.host_str().unwrap_or_default(), address)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| HookError::Client(e.to_string()))?;
        let response = client
            .post(pipeline.clone())
            .multipart(reqwest::multipart::Form::new().part("input", file))
            .send()
            .await
            .map_err(|e| HookError::Failed(format!("{pipeline}: {e}")))?;
        let success = response.status().is_success();
        Ok((success, read_capped(response, HOOK_RESPONSE_LIMIT).await))
    }
}

/// The most of a hook's answer passed back to the caller.
const HOOK_RESPONSE_LIMIT: usize = 64 * 1024;

/// A response body as text, cut at `limit` bytes so a large answer cannot fill our memory.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]);
        if body.len() >= limit {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The address a hook is posted to: the host's, refused when it is loopback, private or link-local unless an
/// allow-list entry names that very IP (the loader's rule for fetches).
async fn hook_address(url: &Url, allowlist: &[String]) -> Result<SocketAddr, String> {
    let host = url.host_str().ok_or_else(|| format!("{url} has no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let named_ips: Vec<std::net::IpAddr> = allowlist
        .iter()
        .filter_map(|entry| url::Url::parse(entry).ok())
        .filter_map(|entry| entry.host_str()?.trim_matches(['[', ']']).parse().ok())
        .collect();
    let addresses = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?;
    let mut first_refused = None;
    for address in addresses {
        if !conductor_loader::fetch::forbidden(address.ip()) || named_ips.contains(&address.ip()) {
            return Ok(address);
        }
        first_refused.get_or_insert(address.ip());
    }
    Err(match first_refused {
        Some(ip) => {
            format!("{host} resolves to {ip}, a private address; name that IP in loader.hook_allowlist")
        }
        None => format!("{host} does not resolve"),
    })
}

fn hook_allowed(url: &Url, allowlist: &[String]) -> bool {
    // The same prefix rule as the loader's fetch allow-list.
    allowlist
        .iter()
        .filter_map(|p| url::Url::parse(p).ok())
        .any(|prefix| conductor_loader::fetch::is_under(url, &prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_go_only_to_allow_listed_prefixes() {
        let allow = vec!["https://apps.openbudgets.eu/linkedpipes/execute/".to_owned()];
        let url = |s: &str| url::Url::parse(s).unwrap();
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
}
