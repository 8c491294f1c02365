//! The `conductor` command line: `serve` (the default), `migrate`, `config show`, `keys generate|list|revoke`,
//! `token mint`, `permissions grant|revoke|list`, `secrets encode|decode`, `search reindex`, `package load|remove`, `registry import`, `publish`, `healthcheck`.

mod api_keys;
mod identity;
mod package;
mod publish;
mod registry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use conductor_store::{Database, DatabaseUrl};
use tracing_subscriber::EnvFilter;

use crate::settings::{Environment, Settings};
use crate::startup::Application;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "conductor",
    version,
    about = "OpenSpending's identity, datastore, loading and search service"
)]
struct Cli {
    /// Folder of the layered configuration files (default.toml, <CONDUCTOR_ENV>.toml, local.toml).
    #[arg(long, global = true, default_value = "config")]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Signing keys, and users' personal API keys.
    Keys {
        #[command(subcommand)]
        action: identity::KeysCommand,
    },
    /// User tokens.
    Token {
        #[command(subcommand)]
        action: identity::TokenCommand,
    },
    /// Permission grants.
    Permissions {
        #[command(subcommand)]
        action: identity::PermissionsCommand,
    },
    /// The original's OS_CONDUCTOR_SECRETS_0..3 bundle.
    Secrets {
        #[command(subcommand)]
        action: identity::SecretsCommand,
    },
    /// The search index.
    Search {
        #[command(subcommand)]
        action: SearchCommand,
    },
    /// Loading packages into the database, and removing them.
    Package {
        #[command(subcommand)]
        action: package::PackageCommand,
    },
    /// Publish a local package to a remote Conductor over HTTP with an API key (for scripts and CI).
    Publish(publish::PublishArgs),
    /// Exit 0 when a gateway answers 200 at URL within 5 s, 1 otherwise (a container's HEALTHCHECK: the image
    /// needs no curl).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8000/healthz")]
        url: url::Url,
    },
    /// An existing deployment's registry, moved in.
    Registry {
        #[command(subcommand)]
        action: registry::RegistryCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SearchCommand {
    /// Rebuild the search index from the database (stop `serve` first: the embedded index has one writer).
    Reindex,
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration, secrets redacted.
    Show,
}

/// Exit status for a configuration error, distinct from a runtime failure.
const EXIT_CONFIG: u8 = 2;

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // Clients of a service (a remote one, or this one from inside its container): no configuration is read.
    match cli.command {
        Some(Command::Publish(args)) => {
            return match publish::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        Some(Command::Healthcheck { url }) => return healthcheck(&url),
        // A publisher's own files, on their machine.
        Some(Command::Package {
            action: package::PackageCommand::Convert { path },
        }) => {
            return match package::convert(&path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("conductor: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let env = Environment::from_process();
    let settings = match Settings::load(&cli.config_dir, &env) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("conductor: configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Commands other than `serve` keep stderr for their own messages unless RUST_LOG asks for more.
    let default_level = if matches!(cli.command, None | Some(Command::Serve)) {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    if let Err(error) = telemetry::init(filter, std::io::stderr) {
        eprintln!("conductor: cannot set up logging: {error}");
        return ExitCode::FAILURE;
    }
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => actix_web::rt::System::new().block_on(serve(settings)),
        Command::Migrate => actix_web::rt::System::new().block_on(migrate(settings)),
        Command::Config {
            action: ConfigAction::Show,
        } => show(&settings),
        Command::Keys {
            action: identity::KeysCommand::Generate { out },
        } => identity::generate_keys(&out),
        Command::Keys { action } => {
            actix_web::rt::System::new().block_on(api_keys::administer(settings, action))
        }
        Command::Token { action } => actix_web::rt::System::new().block_on(identity::token(settings, action)),
        Command::Permissions { action } => {
            actix_web::rt::System::new().block_on(identity::permissions(settings, action))
        }
        Command::Secrets { action } => identity::secrets(&env, action),
        Command::Search {
            action: SearchCommand::Reindex,
        } => actix_web::rt::System::new().block_on(reindex(settings)),
        Command::Package { action } => {
            actix_web::rt::System::new().block_on(package::package(settings, action))
        }
        Command::Registry { action } => {
            actix_web::rt::System::new().block_on(registry::registry(settings, action))
        }
        // Taken before the settings are read (above); kept here so the match stays whole.
        Command::Publish(args) => publish::run(args),
        Command::Healthcheck { url } => {
            return healthcheck(&url);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("conductor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn healthcheck(url: &url::Url) -> ExitCode {
    let check = async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?;
        let status = client.get(url.clone()).send().await?.status();
        anyhow::ensure!(status.is_success(), "{url} answered {status}");
        Ok(())
    };
    match actix_web::rt::System::new().block_on(check) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("conductor: unhealthy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    Application::build(settings).await?.run_until_stopped().await?;
    Ok(())
}

/// Every service, as `serve` builds them, on the configured database with this build's migrations applied.
async fn migrated_services(settings: &Settings) -> anyhow::Result<crate::services::Services> {
    let services = crate::services::Services::build(settings, 1)?;
    services.database.migrate().await?;
    Ok(services)
}

/// A command's result on stdout, one line, so scripts can capture it.
fn print_line(line: &str) {
    #[expect(clippy::print_stdout, reason = "a command's result is its output")]
    {
        println!("{line}");
    }
}

async fn reindex(settings: Settings) -> anyhow::Result<()> {
    let state = migrated_services(&settings).await?.search;
    let count = state.search.rebuild_from_registry().await?;
    eprintln!(
        "conductor: the {} search index now holds {count} package(s)",
        state.search.index().backend()
    );
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let database = Database::open(&DatabaseUrl::parse(settings.database_url().expose())?, 1)?;
    let applied = database.migrate().await?;
    if applied.is_empty() {
        eprintln!("conductor: the {} database is up to date", database.backend());
    } else {
        eprintln!(
            "conductor: applied {} migration(s) to the {} database: {}",
            applied.len(),
            database.backend(),
            applied.join(", ")
        );
    }
    Ok(())
}

fn show(settings: &Settings) -> anyhow::Result<()> {
    #[expect(
        clippy::print_stdout,
        reason = "printing the configuration is this command's output"
    )]
    {
        print!("{}", settings.to_redacted_toml()?);
    }
    Ok(())
}
