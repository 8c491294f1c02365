//! `conductor publish PATH --to URL --key KEY`: the client side of a whole upload against a remote Conductor,
//! for scripts and CI pipelines. It checks the package here with the loader's own code (a bad file fails before
//! anything is uploaded, naming row and column), signs and uploads every file the datastore does not already hold
//! with the same MD5, starts the load, follows it to `done` or `fail`, and exits 1 with the server's reason when
//! anything is refused.

mod client;
mod report;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use conductor_loader::{Vocabulary, check_package};
use md5::{Digest, Md5};
use serde_json::json;
use url::Url;

use self::client::{LocalFile, Remote};
use self::report::Report;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The package: its datapackage.json, or the folder holding it.
    path: PathBuf,
    /// The Conductor to publish to: its base URL.
    #[arg(long)]
    to: Url,
    /// The API key (`cnd_...`); also from CONDUCTOR_API_KEY or --key-file.
    #[arg(long, env = "CONDUCTOR_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// A file holding the API key.
    #[arg(long, conflicts_with = "key")]
    key_file: Option<PathBuf>,
    /// Make the package public once it has loaded.
    #[arg(long)]
    publish: bool,
    /// Progress as one JSON object per line on stdout, for pipelines.
    #[arg(long)]
    json: bool,
    /// Give up waiting for the load after this long.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    wait: Duration,
}

/// How often the load's status is read: as often as the server records progress, so the bar moves with it.
const POLL_EVERY: Duration = Duration::from_millis(250);

pub fn run(args: PublishArgs) -> Result<()> {
    let report = Report::new(args.json);
    let outcome = actix_web::rt::System::new().block_on(publish(&args, &report));
    if let Err(error) = &outcome {
        report.event("failed", json!({"reason": format!("{error:#}")}), || {
            format!("conductor: publishing failed: {error:#}")
        });
    }
    outcome
}

fn key(args: &PublishArgs) -> Result<String> {
    let key = match (&args.key, &args.key_file) {
        (Some(key), _) => key.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?,
        (None, None) => bail!("no API key: give --key, --key-file or CONDUCTOR_API_KEY"),
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        bail!("the API key is empty");
    }
    Ok(key)
}

async fn publish(args: &PublishArgs, report: &Report) -> Result<()> {
    let key = key(args)?;
    let descriptor = descriptor_path(&args.path)?;
    let folder = descriptor.parent().map(Path::to_owned).unwrap_or_default();

    let checked = {
        let descriptor = descriptor.clone();
        tokio::task::spawn_blocking(move || -> Result<_> {
            let vocabulary = Vocabulary::embedded()?;
            Ok(check_package(&vocabulary, &descriptor)?)
        })
        .await??
    };
    report.event(
        "checked",
        json!({"dataset": checked.dataset, "rows": checked.rows, "files": checked.files}),
        || {
            format!(
                "checked {}: {} rows, {} files",
                checked.dataset,
                checked.rows,
                checked.files.len()
            )
        },
    );
    let name = package_name(&descriptor)?;
    let files = local_files(&folder, &checked.files)?;

    let remote = Remote::new(&args.to, key)?;
    let granted = remote.authorize().await?;
    if granted.permissions.get("datapackage-upload") != Some(&serde_json::Value::Bool(true)) {
        bail!("the key does not carry datapackage-upload on os.datastore");
    }
    let id = format!("{}:{}", granted.userid, checked.dataset);
    let signed = remote
        .sign(&granted.token, &granted.userid, &name, &files)
        .await?;
    let started = Instant::now();
    let mut uploaded = 0;
    for file in &files {
        let signed = signed
            .get(&file.path)
            .with_context(|| format!("the datastore signed no upload of {}", file.path))?;
        if signed.stored {
            report.event(
                "skipped",
                json!({"file": file.path, "length": file.length}),
                || format!("  {} is stored already (same MD5): not uploaded", file.path),
            );
            continue;
        }
        let bar = report.file(&file.path, file.length);
        remote.put(&folder, file, signed, &bar).await?;
        bar.finish();
        uploaded += 1;
        report.event(
            "uploaded",
            json!({"file": file.path, "length": file.length}),
            || format!("  uploaded {} ({} bytes)", file.path, file.length),
        );
    }
    let datapackage = signed
        .get("datapackage.json")
        .map(|s| s.upload_url.clone())
        .context("the datastore signed no datapackage.json")?;
    report.event(
        "loading",
        json!({"datapackage": datapackage, "uploaded": uploaded, "upload_seconds": started.elapsed().as_secs_f64()}),
        || format!("{uploaded} file(s) uploaded; loading {datapackage}"),
    );

    remote.upload(&granted.token, &datapackage).await?;
    follow(&remote, &datapackage, args.wait, report).await?;
    if args.publish {
        // The first permission token may have expired during a long load: ask again.
        let granted = remote.authorize().await?;
        remote.publish(&granted.token, &id).await?;
    }
    let mut search = remote.base().join("search/package")?;
    search.query_pairs_mut().append_pair("id", &format!("\"{id}\""));
    report.event(
        "done",
        json!({"id": id, "rows": checked.rows, "public": args.publish, "url": search.as_str()}),
        || {
            format!(
                "published {id}: {} rows loaded{}; see {search}",
                checked.rows,
                if args.publish { ", public" } else { ", private" }
            )
        },
    );
    Ok(())
}

/// Reads `/package/status` until the load ends, advancing the load's bar; the server's reason on failure.
async fn follow(remote: &Remote, datapackage: &str, wait: Duration, report: &Report) -> Result<()> {
    let bar = report.load();
    let deadline = Instant::now() + wait;
    let mut last = String::new();
    loop {
        let status = remote.status(datapackage).await?;
        let rows = status.progress.as_u64().unwrap_or(0);
        if let Some(total) = status.rows_total.and_then(|t| u64::try_from(t).ok()) {
            if bar.length() == Some(0) {
                Report::counted(&bar);
            }
            bar.set_length(total.max(rows));
        }
        bar.set_position(rows);
        bar.set_message(status.status.clone());
        if status.status != last {
            if report.is_json() {
                report.event(
                    "status",
                    json!({"status": status.status, "rows": rows, "rows_total": status.rows_total}),
                    String::new,
                );
            }
            last.clone_from(&status.status);
        }
        match status.status.as_str() {
            "done" => {
                bar.finish();
                return Ok(());
            }
            "fail" => {
                bar.abandon();
                bail!(
                    "the load failed: {}",
                    status.error.as_deref().unwrap_or("the server gave no reason")
                );
            }
            _ if Instant::now() > deadline => {
                bar.abandon();
                bail!(
                    "the load is still {} after {}",
                    status.status,
                    humantime::format_duration(wait)
                );
            }
            _ => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

/// `datapackage.json` itself, or inside the folder given.
fn descriptor_path(given: &Path) -> Result<PathBuf> {
    let path = if given.is_dir() {
        given.join("datapackage.json")
    } else {
        given.to_owned()
    };
    std::fs::canonicalize(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// The descriptor's `name`, as the datastore's `metadata.name`.
fn package_name(descriptor: &Path) -> Result<String> {
    let text = std::fs::read(descriptor)?;
    let value: serde_json::Value = serde_json::from_slice(&text)?;
    value["name"]
        .as_str()
        .map(str::to_owned)
        .context("the datapackage has no name")
}

/// Each file's length, MD5 and type, read once.
fn local_files(folder: &Path, paths: &[String]) -> Result<Vec<LocalFile>> {
    paths
        .iter()
        .map(|path| {
            let mut opened =
                std::fs::File::open(folder.join(path)).with_context(|| format!("cannot read {path}"))?;
            let mut digest = Md5::new();
            let mut buffer = vec![0u8; 256 * 1024];
            let mut length = 0u64;
            loop {
                let n = opened.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                digest.update(&buffer[..n]);
                length += n as u64;
            }
            Ok(LocalFile {
                path: path.clone(),
                length,
                md5: STANDARD.encode(digest.finalize()),
                content_type: content_type(path),
            })
        })
        .collect()
}

/// The type a file is signed as: among the datastore's default `allowed_types`.
fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        Some("txt" | "md") => "text/plain",
        _ => "application/octet-stream",
    }
}
