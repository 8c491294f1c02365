//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`, installed by
//! `./scripts/test`), for tests of what a page does with the gateway.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// A browser session; quit it at the end of the test (dropping kills the driver as a fallback).
#[derive(Debug)]
pub struct Chrome {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Chrome {
    pub async fn start() -> Result<Self> {
        for binary in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            if !std::path::Path::new(binary).exists() {
                bail!("{binary} is missing: ./scripts/test installs Debian's chromium and chromium-driver");
            }
        }
        let port = crate::free_port()?;
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = client.get(format!("{base}/status")).send().await;
            if let Ok(response) = ready
                && response
                    .json::<Value>()
                    .await
                    .is_ok_and(|s| s["value"]["ready"] == true)
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir()?;
        // The flags keep Chromium off the network (this machine has none) and out of the user's profile.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let created: Value = client
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await?
            .json()
            .await?;
        let session = created["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no WebDriver session: {created}"))?
            .to_owned();
        Ok(Self {
            driver,
            base,
            session,
            client,
            _profile: profile,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        let answer: Value = self
            .client
            .post(self.url("/url"))
            .json(&json!({"url": url}))
            .send()
            .await?
            .json()
            .await?;
        if answer["value"].get("error").is_some() {
            bail!("navigating to {url}: {answer}");
        }
        Ok(())
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub async fn eval(&self, script: &str) -> Result<Value> {
        let answer: Value = self
            .client
            .post(self.url("/execute/sync"))
            .json(&json!({"script": script, "args": []}))
            .send()
            .await?
            .json()
            .await?;
        Ok(answer["value"].clone())
    }

    /// Evaluates `script` until it returns a non-empty string, for up to `within`.
    pub async fn wait_for_text(&self, script: &str, within: Duration) -> Result<String> {
        let deadline = Instant::now() + within;
        loop {
            // A navigation in progress makes a script fail; that is not the end of the wait.
            if let Ok(Value::String(text)) = self.eval(script).await
                && !text.is_empty()
            {
                return Ok(text);
            }
            if Instant::now() > deadline {
                let address = self.eval("return window.location.href").await.unwrap_or_default();
                bail!("nothing after {within:?}; the page is at {address}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page as a PNG, written to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) -> Result<()> {
        use base64::Engine as _;
        let answer: Value = self
            .client
            .get(self.url("/screenshot"))
            .send()
            .await?
            .json()
            .await?;
        let encoded = answer["value"]
            .as_str()
            .with_context(|| format!("no screenshot: {answer}"))?;
        let png = base64::engine::general_purpose::STANDARD.decode(encoded)?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    pub async fn quit(mut self) {
        let _ = self.client.delete(self.url("")).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
