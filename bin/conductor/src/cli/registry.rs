//! `conductor registry import`: an existing deployment's registry (its cluster, or a JSON-lines dump of its
//! documents) into the database, idempotently, with a line per document saying what came of it.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use conductor_loader::import::{Imported, Kind, Outcome};
use serde_json::{Value, json};

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Reads an existing registry into the database: packages with their models, and users and permissions
    /// where given. Documents already here are left as they are; run it again at will.
    Import {
        /// A JSON-lines dump: one document a line, as the cluster holds it (`_index`, `_type`, `_id`,
        /// `_source`) or bare (a package, a `user_profile`, a permissions row).
        #[arg(
            long,
            conflicts_with = "from_cluster",
            required_unless_present = "from_cluster"
        )]
        dump: Option<PathBuf>,
        /// The original's Elasticsearch/OpenSearch, e.g. http://elasticsearch:9200.
        #[arg(long)]
        from_cluster: Option<url::Url>,
        /// Its packages index or alias (OS_ES_PACKAGES_INDEX_NAME).
        #[arg(long, default_value = "packages")]
        index: String,
        /// Its users index (OS_ES_USERS_INDEX_NAME), read too when given.
        #[arg(long)]
        users_index: Option<String>,
        /// Print what an import would do; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn registry(settings: Settings, command: RegistryCommand) -> anyhow::Result<()> {
    let RegistryCommand::Import {
        dump,
        from_cluster,
        index,
        users_index,
        dry_run,
    } = command;
    let services = super::migrated_services(&settings).await?;
    let import =
        crate::services::loader::registry_import(&services.database, services.clock.clone(), dry_run);
    let mut report = Report::default();
    if let Some(path) = dump {
        let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(document) => report.add(import.document(&document, None).await?),
                Err(e) => report.add(Imported {
                    kind: "line",
                    key: (number + 1).to_string(),
                    outcome: Outcome::Refused(format!("not JSON: {e}")),
                }),
            }
        }
    }
    if let Some(cluster) = from_cluster {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()?;
        let mut sources = vec![(index, Kind::Package)];
        sources.extend(users_index.map(|users| (users, Kind::User)));
        for (name, kind) in sources {
            for document in scroll(&client, &cluster, &name).await? {
                report.add(import.document(&document, Some(kind)).await?);
            }
        }
    }
    report.finish(dry_run);
    Ok(())
}

/// Every document of `index`, read with the scroll API (Elasticsearch 5 to OpenSearch 3 alike).
async fn scroll(client: &reqwest::Client, cluster: &url::Url, index: &str) -> anyhow::Result<Vec<Value>> {
    let base = cluster.as_str().trim_end_matches('/');
    let mut answer: Value = client
        .post(format!("{base}/{index}/_search?scroll=2m"))
        .json(&json!({"size": 500, "query": {"match_all": {}}}))
        .send()
        .await
        .with_context(|| format!("reading {index} from {cluster}"))?
        .error_for_status()
        .with_context(|| format!("reading {index} from {cluster}"))?
        .json()
        .await?;
    let mut documents = Vec::new();
    loop {
        let hits = answer["hits"]["hits"].as_array().cloned().unwrap_or_default();
        if hits.is_empty() {
            break;
        }
        documents.extend(hits);
        let Some(id) = answer["_scroll_id"].as_str().map(str::to_owned) else {
            break;
        };
        answer = client
            .post(format!("{base}/_search/scroll"))
            .json(&json!({"scroll": "2m", "scroll_id": id}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
    }
    if let Some(id) = answer["_scroll_id"].as_str() {
        // Releasing the scroll early is a courtesy; it expires by itself.
        let _ = client
            .delete(format!("{base}/_search/scroll"))
            .json(&json!({"scroll_id": [id]}))
            .send()
            .await;
    }
    Ok(documents)
}

#[derive(Debug, Default)]
struct Report {
    imported: usize,
    unchanged: usize,
    refused: usize,
}

impl Report {
    fn add(&mut self, line: Imported) {
        match line.outcome {
            Outcome::Imported => self.imported += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Refused(_) => self.refused += 1,
        }
        super::print_line(&line.to_string());
    }

    fn finish(&self, dry_run: bool) {
        let verb = if dry_run { "would import" } else { "imported" };
        eprintln!(
            "conductor: {verb} {}, left {} already here, refused {}",
            self.imported, self.unchanged, self.refused
        );
        if self.imported > 0 && !dry_run {
            eprintln!(
                "conductor: a running gateway indexes the imported packages within seconds; a starting one rebuilds its index"
            );
        }
    }
}
