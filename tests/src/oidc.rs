//! A real OpenID Connect provider for login tests (the npm `oidc-provider` in `tests/oidc-provider`, installed by
//! `./scripts/test`), and a scripted browser that follows a login through it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use url::Url;

/// The provider's confidential test client.
pub const CLIENT_ID: &str = "conductor-confidential";
pub const CLIENT_SECRET: &str = "conductor-secret";

/// A running test provider; stopped when dropped (and when the test process dies, as its stdin closes).
#[derive(Debug)]
pub struct TestProvider {
    pub issuer: Url,
    child: Child,
    _stdin: ChildStdin,
}

impl TestProvider {
    /// Starts the provider, allowing `redirect_uris`.
    pub fn start(redirect_uris: &[String]) -> Result<Self> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider");
        if !dir.join("node_modules/oidc-provider").is_dir() {
            bail!(
                "the test OIDC provider is not installed: run ./scripts/test (it runs `npm ci` in {})",
                dir.display()
            );
        }
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("PORT", "0")
            .env("REDIRECT_URIS", redirect_uris.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting node (the test OIDC provider)")?;
        let stdin = child.stdin.take().context("the provider's stdin")?;
        let stdout = child.stdout.take().context("the provider's stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the provider's address")?;
        let announced: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("the provider announced {line:?}"))?;
        let issuer = announced["issuer"]
            .as_str()
            .context("an issuer in the announcement")?;
        Ok(Self {
            issuer: Url::parse(issuer)?,
            child,
            _stdin: stdin,
        })
    }
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser: its own cookies, following redirects by hand so a test can look at (or tamper with) each hop.
#[derive(Debug)]
pub struct Browser {
    pub client: reqwest::Client,
}

/// Where a walk through the login stopped.
#[derive(Debug)]
pub struct Landing {
    pub status: StatusCode,
    pub url: Url,
    pub body: String,
}

impl Browser {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { client }
    }

    /// GETs `url`; on a redirect returns the next URL, otherwise the landing page.
    pub async fn step(&self, url: &Url) -> Result<Result<Url, Landing>> {
        let response = self.client.get(url.clone()).send().await?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get("location")
                .context("a redirect without Location")?;
            return Ok(Ok(url.join(location.to_str()?)?));
        }
        Ok(Err(Landing {
            status,
            url: url.clone(),
            body: response.text().await?,
        }))
    }

    /// Follows redirects from `url`, logging in as `login` at the provider's form, until the browser reaches a
    /// URL starting with `stop_at` (returned without being fetched) or a page that is not the login form.
    pub async fn walk(&self, url: Url, login: &str, stop_at: &str) -> Result<Result<Url, Landing>> {
        let mut url = url;
        for _ in 0..20 {
            if url.as_str().starts_with(stop_at) {
                return Ok(Ok(url));
            }
            match self.step(&url).await? {
                Ok(next) => url = next,
                Err(page) if page.body.contains("name=\"prompt\" value=\"login\"") => {
                    url = self.submit_login(&page, login).await?;
                }
                Err(page) => return Ok(Err(page)),
            }
        }
        bail!("too many redirects, last at {url}")
    }

    async fn submit_login(&self, page: &Landing, login: &str) -> Result<Url> {
        let action = page
            .body
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next());
        let action = page.url.join(action.context("the login form's action")?)?;
        let response = self
            .client
            .post(action.clone())
            .form(&[("prompt", "login"), ("login", login), ("password", "anything")])
            .send()
            .await?;
        let location = response
            .headers()
            .get("location")
            .context("the login form did not redirect")?;
        Ok(action.join(location.to_str()?)?)
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}
