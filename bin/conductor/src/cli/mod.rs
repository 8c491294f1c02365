//! The `conductor` command line: `serve` (the default), `migrate`, `config show`, `keys generate`,
//! `token mint`, `permissions grant|revoke|list`, `secrets encode|decode`, `search reindex`, `package load|remove`, `registry import`.

mod identity;
mod package;
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
    /// Signing keys.
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
        Command::Keys { action } => identity::keys(action),
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
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("conductor: {error:#}");
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
