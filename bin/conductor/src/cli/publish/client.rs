//! The remote Conductor's API as `conductor publish` calls it, over HTTP only: the same requests os-packager
//! makes, authenticated with an API key (or a user token).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use indicatif::ProgressBar;
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

/// How long any one request but an upload may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of an error body that is shown.
const ERROR_BODY_LIMIT: usize = 2_000;

/// One file of the package, as signed and uploaded.
#[derive(Clone, Debug)]
pub struct LocalFile {
    /// Relative to the package's folder, `/`-separated.
    pub path: String,
    pub length: u64,
    /// Base64, as `Content-MD5` carries it.
    pub md5: String,
    pub content_type: &'static str,
}

/// A signed upload of one file.
#[derive(Debug, Deserialize)]
pub struct Signed {
    pub upload_url: String,
    #[serde(default)]
    pub upload_query: std::collections::BTreeMap<String, Vec<String>>,
    /// The datastore holds this file already.
    #[serde(default)]
    pub stored: bool,
}

/// What `/user/authorize` granted.
#[derive(Debug, Deserialize)]
pub struct Granted {
    pub token: String,
    pub userid: String,
    #[serde(default)]
    pub permissions: serde_json::Map<String, Value>,
}

/// `/package/status`.
#[derive(Debug, Deserialize)]
pub struct Status {
    pub status: String,
    #[serde(default)]
    pub progress: Value,
    #[serde(default)]
    pub rows_total: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct Remote {
    base: Url,
    client: reqwest::Client,
    key: String,
}

impl Remote {
    pub fn new(base: &Url, key: String) -> Result<Self> {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("conductor-publish/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { base, client, key })
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("{path} under {}", self.base))
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// A permission token for `os.datastore` from the key.
    pub async fn authorize(&self) -> Result<Granted> {
        let mut url = self.url("user/authorize")?;
        url.query_pairs_mut().append_pair("service", "os.datastore");
        let response = self
            .client
            .get(url)
            .bearer_auth(&self.key)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let answer: Value = answered(response, "the key was refused").await?;
        if answer.get("token").is_none() {
            bail!("the server took the credential for no user: is it an API key (cnd_...) of this server?");
        }
        Ok(serde_json::from_value(answer)?)
    }

    /// Signed uploads for `files` of the package `name`, owned by `owner`.
    pub async fn sign(
        &self,
        token: &str,
        owner: &str,
        name: &str,
        files: &[LocalFile],
    ) -> Result<std::collections::BTreeMap<String, Signed>> {
        let filedata: serde_json::Map<String, Value> = files
            .iter()
            .map(|f| {
                let spec = json!({"md5": f.md5, "length": f.length, "name": f.path, "type": f.content_type});
                (f.path.clone(), spec)
            })
            .collect();
        let body = json!({"metadata": {"owner": owner, "name": name}, "filedata": filedata});
        let response = self
            .client
            .post(self.url("datastore/")?)
            .header("Auth-Token", token)
            .json(&body)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?;
        #[derive(Deserialize)]
        struct Filedata {
            filedata: std::collections::BTreeMap<String, Signed>,
        }
        let answer: Filedata = answered(response, "the datastore refused the upload").await?;
        Ok(answer.filedata)
    }

    /// PUTs one file to its signed URL, streaming it from disk and advancing `bar`.
    pub async fn put(
        &self,
        folder: &Path,
        file: &LocalFile,
        signed: &Signed,
        bar: &ProgressBar,
    ) -> Result<()> {
        let mut url = Url::parse(&signed.upload_url).context("the upload URL")?;
        for (name, values) in &signed.upload_query {
            if let Some(value) = values.first() {
                url.query_pairs_mut().append_pair(name, value);
            }
        }
        let opened = tokio::fs::File::open(folder.join(&file.path))
            .await
            .with_context(|| format!("cannot read {}", file.path))?;
        let bar_in_stream = bar.clone();
        let body = futures_util::stream::unfold(opened, move |mut opened| {
            let bar = bar_in_stream.clone();
            async move {
                use tokio::io::AsyncReadExt;
                let mut buffer = vec![0u8; 256 * 1024];
                match opened.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buffer.truncate(n);
                        bar.inc(n as u64);
                        Some((Ok::<_, std::io::Error>(buffer), opened))
                    }
                    Err(error) => Some((Err(error), opened)),
                }
            }
        });
        let response = self
            .client
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, file.length)
            .header("Content-MD5", &file.md5)
            .header(reqwest::header::CONTENT_TYPE, file.content_type)
            .body(reqwest::Body::wrap_stream(body.boxed()))
            .send()
            .await
            .with_context(|| format!("uploading {}", file.path))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            bail!("uploading {} was refused ({status}): {}", file.path, clip(&text));
        }
        Ok(())
    }

    /// Starts the load of the uploaded `datapackage` URL.
    pub async fn upload(&self, token: &str, datapackage: &str) -> Result<()> {
        let query = [("datapackage", datapackage)];
        self.post("package/upload", &query, token, "the server refused the load")
            .await
    }

    pub async fn status(&self, datapackage: &str) -> Result<Status> {
        let mut url = self.url("package/status")?;
        url.query_pairs_mut().append_pair("datapackage", datapackage);
        let response = self.client.get(url).timeout(REQUEST_TIMEOUT).send().await?;
        answered(response, "the load's status is unknown").await
    }

    /// Makes the package public.
    pub async fn publish(&self, token: &str, id: &str) -> Result<()> {
        let query = [("id", id), ("publish", "true")];
        self.post("package/publish", &query, token, "publishing was refused")
            .await
    }

    /// A POST with a permission token and a query, as os-packager sends `/package/*` calls.
    async fn post(&self, path: &str, query: &[(&str, &str)], token: &str, refused: &str) -> Result<()> {
        let mut url = self.url(path)?;
        url.query_pairs_mut().extend_pairs(query);
        let response = self
            .client
            .post(url)
            .header("Auth-Token", token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?;
        let _: Value = answered(response, refused).await?;
        Ok(())
    }
}

/// The JSON of a 2xx answer, or an error carrying the server's own reason (whichever error shape it used).
async fn answered<T: serde::de::DeserializeOwned>(response: Response, refused: &str) -> Result<T> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        return serde_json::from_str(&text)
            .with_context(|| format!("an answer that is not JSON: {}", clip(&text)));
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let reason = body["error"]["message"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .map_or_else(|| clip(&text), str::to_owned);
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(anyhow!(
            "{refused} ({status}): {reason}; retry after {} s",
            retry_after.as_deref().unwrap_or("?")
        ));
    }
    Err(anyhow!("{refused} ({status}): {reason}"))
}

fn clip(text: &str) -> String {
    let mut end = text.len().min(ERROR_BODY_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_owned()
}
