//! `conductor package load PATH|URL --owner EMAIL|ID` (the loader run in-process, with a progress bar),
//! `conductor package remove ID...` and `conductor package convert PATH` (an older descriptor in the current form).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;
use conductor_core::{LoadStatus, PackageId, UserId};
use conductor_loader::Observer;
use indicatif::{ProgressBar, ProgressStyle};

use crate::services::loader::Loading;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Loads a datapackage (a local datapackage.json, its folder, or a URL under the owner's datastore prefixes
    /// or loader.fetch_allowlist) into the database, as /package/upload does.
    Load {
        source: String,
        /// The owner: an e-mail address or a user id.
        #[arg(long)]
        owner: String,
    },
    /// Removes packages: their tables, registry records and index entries.
    Remove {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Prints a datapackage.json (or its folder's) in the current form: `osType` fields and Fiscal Data Package
    /// 0.3 `model`/`mapping` translated to `columnType`s, as a load translates them. Reads no configuration.
    Convert { path: PathBuf },
}

/// `conductor package convert`: the translated descriptor on stdout, or every problem found.
pub fn convert(given: &Path) -> anyhow::Result<()> {
    let path = descriptor_path(given)?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let descriptor: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))?;
    let vocabulary = conductor_loader::Vocabulary::embedded().context("the embedded vocabulary")?;
    let translated = conductor_loader::translate(&vocabulary, &descriptor).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "{} cannot be translated:\n  {}",
            path.display(),
            lines.join("\n  ")
        )
    })?;
    // The load reads it as it would read this output: checked the same way, so a printed form always loads.
    conductor_loader::package_model(&vocabulary, &translated.descriptor)
        .with_context(|| format!("{} translates, but would not load", path.display()))?;
    let mut text = serde_json::to_string_pretty(&translated.descriptor)?;
    text.push('\n');
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
    Ok(())
}

pub async fn package(settings: Settings, command: PackageCommand) -> anyhow::Result<()> {
    if let PackageCommand::Convert { path } = &command {
        return convert(path);
    }
    // Two connections: the staging holds one for the whole load, and progress and heartbeats need the other.
    let (database, mut loading) = crate::services::Services::build_loading(&settings, 2)?;
    database.migrate().await?;
    match command {
        PackageCommand::Convert { .. } => Ok(()),
        PackageCommand::Load { source, owner } => {
            let owner = owner_id(&owner)?;
            let url = match url::Url::parse(&source) {
                Ok(url) if url.scheme() != "file" => url,
                _ => {
                    let path = descriptor_path(Path::new(source.trim_start_matches("file://")))?;
                    let folder = path.parent().map(Path::to_owned).unwrap_or_default();
                    loading.loader = loading.loader.with_operator_folder(folder);
                    url::Url::from_file_path(&path)
                        .map_err(|()| anyhow::anyhow!("{} is not an absolute path", path.display()))?
                }
            };
            load(&loading, &url, owner).await
        }
        PackageCommand::Remove { ids } => {
            let ids = ids
                .iter()
                .map(|raw| PackageId::parse(raw).with_context(|| format!("{raw:?} is not a package id")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut missing = Vec::new();
            for id in ids {
                if loading.loader.remove(&id).await? {
                    eprintln!("conductor: removed {id}");
                } else {
                    missing.push(id.to_string());
                }
            }
            if !missing.is_empty() {
                bail!("no such package: {}", missing.join(", "));
            }
            Ok(())
        }
    }
}

pub(super) fn owner_id(raw: &str) -> anyhow::Result<UserId> {
    if raw.contains('@') {
        Ok(UserId::from_email(raw))
    } else {
        UserId::parse(raw).with_context(|| format!("{raw:?} is neither an e-mail address nor a user id"))
    }
}

/// `datapackage.json` itself, or inside the folder given, made absolute.
fn descriptor_path(given: &Path) -> anyhow::Result<PathBuf> {
    let path = if given.is_dir() {
        given.join("datapackage.json")
    } else {
        given.to_owned()
    };
    std::fs::canonicalize(&path).with_context(|| format!("cannot read {}", path.display()))
}

async fn load(loading: &Loading, url: &url::Url, owner: UserId) -> anyhow::Result<()> {
    let bar = Bar::new();
    let outcome = loading.loader.load_here(url, &owner, &bar).await;
    bar.bar.finish_and_clear();
    let loaded = outcome?;
    eprintln!(
        "conductor: loaded {} rows into {} (fact table {}) in {:.1}s",
        loaded.rows,
        loaded.package,
        loaded.fact_table,
        bar.started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The progress bar: bytes read against the resource's size when known, rows and their rate beside it.
struct Bar {
    bar: ProgressBar,
    started: Instant,
}

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {percent:>3}% eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Self {
            bar,
            started: Instant::now(),
        }
    }
}

impl Observer for Bar {
    fn progress(&self, status: LoadStatus, rows: u64, bytes: u64, size: Option<u64>) {
        if let Some(size) = size {
            self.bar.set_length(size);
            self.bar.set_position(bytes.min(size));
        }
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        self.bar.set_message(format!(
            "{status}: {rows} rows ({:.0} rows/s)",
            rows as f64 / seconds
        ));
    }
}
