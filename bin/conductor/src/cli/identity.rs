//! CLI commands for keys, tokens, permissions and the original's secrets bundle.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use conductor_auth::{KeySet, SecretsBundle};
use conductor_core::{Grantee, UserId};
use conductor_permissions::{PermissionService, Permissions};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::settings::{Environment, Settings};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an RS256 key pair as private.pem (mode 0600) and public.pem in a folder.
    Generate {
        /// Where to write the files (created if missing; existing keys are never overwritten).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// List users' personal API keys (never their secrets), all or one user's.
    List {
        /// An e-mail address or a user id.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a personal API key by its id, whoever owns it.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a user token for an e-mail (creating the user if needed), and nothing else, on stdout.
    Mint {
        #[arg(long)]
        email: String,
        /// The user's display name when the user is created.
        #[arg(long)]
        name: Option<String>,
        /// The token's lifetime, e.g. `1h`, `30d` (default: auth.user_token_ttl).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PermissionsCommand {
    /// Grant permissions: `grant ada@example.org os.datastore package-admin` (`name=false` takes one away).
    Grant {
        /// An e-mail, a user id (idhash) or `*` for everyone's default.
        grantee: String,
        service: String,
        #[arg(required = true)]
        permissions: Vec<String>,
    },
    /// Remove one permission, or the grantee's whole grant for the service.
    Revoke {
        grantee: String,
        service: String,
        permission: Option<String>,
    },
    /// List grants, all or one grantee's.
    List { grantee: Option<String> },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print OS_CONDUCTOR_SECRETS_0..3 for a key pair and optional Google client, as the original expects.
    Encode {
        #[arg(long)]
        private_key: PathBuf,
        /// Defaults to the public half of the private key.
        #[arg(long)]
        public_key: Option<PathBuf>,
        #[arg(long)]
        google_client_id: Option<String>,
        /// A file holding the Google client secret.
        #[arg(long)]
        google_client_secret_file: Option<PathBuf>,
    },
    /// Write the files held in OS_CONDUCTOR_SECRETS_0..3 (from the environment) into a folder.
    Decode {
        #[arg(long)]
        out: PathBuf,
    },
}

/// `keys generate`: a new RS256 pair under `out`.
pub fn generate_keys(out: &Path) -> Result<()> {
    let private = out.join("private.pem");
    let public = out.join("public.pem");
    for path in [&private, &public] {
        if path.exists() {
            bail!("{} exists; keys are never overwritten", path.display());
        }
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let generated = KeySet::generate()?;
    conductor_auth::keys::write_private(&private, generated.private_pem.expose_secret())?;
    fs::write(&public, &generated.public_pem).with_context(|| format!("writing {}", public.display()))?;
    let keys = KeySet::from_pems(generated.private_pem.expose_secret(), None, Vec::new())?;
    eprintln!(
        "wrote {} and {} (kid {})",
        private.display(),
        public.display(),
        keys.current().kid()
    );
    Ok(())
}

pub async fn token(settings: Settings, command: TokenCommand) -> Result<()> {
    let TokenCommand::Mint { email, name, ttl } = command;
    let services = super::migrated_services(&settings).await?;
    // The configured accounts, with this token's lifetime when --ttl gives one.
    let accounts = match ttl {
        None => services.identity.accounts.clone(),
        Some(ttl) => crate::services::auth::accounts(
            &settings.auth,
            crate::services::Site::of(&settings),
            services.database.repositories(),
            services.clock.clone(),
            Some(ttl),
        )?,
    };
    let provider_id = format!("cli:{}", email.trim().to_lowercase());
    let (profile, token) = accounts
        .log_in_email(&email, name.as_deref(), None, provider_id)
        .await?;
    eprintln!("user {} <{}>", profile.idhash, profile.email);
    super::print_line(&token);
    Ok(())
}

pub async fn permissions(settings: Settings, command: PermissionsCommand) -> Result<()> {
    let services = super::migrated_services(&settings).await?;
    let service = PermissionService::new(services.database.repositories().permissions.clone());
    match command {
        PermissionsCommand::Grant {
            grantee,
            service: name,
            permissions,
        } => {
            let grantee = parse_grantee(&grantee)?;
            let mut granted = Permissions::new();
            for permission in permissions {
                let (permission, value) = match permission.split_once('=') {
                    Some((p, "true")) => (p.to_owned(), true),
                    Some((p, "false")) => (p.to_owned(), false),
                    Some(_) => {
                        bail!("{permission:?}: write a permission as `name`, `name=true` or `name=false`")
                    }
                    None => (permission, true),
                };
                granted.insert(permission, Value::Bool(value));
            }
            let grant = service.grant(&grantee, &name, granted).await?;
            super::print_line(&format!(
                "{} {} {}",
                grant.grantee,
                grant.service,
                Value::Object(grant.permissions)
            ));
        }
        PermissionsCommand::Revoke {
            grantee,
            service: name,
            permission,
        } => {
            let grantee = parse_grantee(&grantee)?;
            if !service.revoke(&grantee, &name, permission.as_deref()).await? {
                bail!("nothing to revoke: {grantee} has no such grant for {name}");
            }
            eprintln!("revoked");
        }
        PermissionsCommand::List { grantee } => {
            let grantee = grantee.as_deref().map(parse_grantee).transpose()?;
            for grant in service.list(grantee.as_ref()).await? {
                super::print_line(&format!(
                    "{} {} {}",
                    grant.grantee,
                    grant.service,
                    Value::Object(grant.permissions)
                ));
            }
        }
    }
    Ok(())
}

/// `*`, a user id, or an e-mail (whose id is its md5).
fn parse_grantee(raw: &str) -> Result<Grantee> {
    if raw == Grantee::EVERYONE {
        return Ok(Grantee::Everyone);
    }
    if raw.contains('@') {
        return Ok(Grantee::User(UserId::from_email(raw)));
    }
    Ok(Grantee::User(UserId::parse(raw).context(
        "a grantee is `*`, an e-mail or a 32-character user id",
    )?))
}

pub fn secrets(env: &Environment, command: SecretsCommand) -> Result<()> {
    match command {
        SecretsCommand::Encode {
            private_key,
            public_key,
            google_client_id,
            google_client_secret_file,
        } => {
            let private_pem = SecretString::from(read(&private_key)?);
            let public_pem = match public_key {
                Some(path) => read(&path)?,
                None => KeySet::from_pems(private_pem.expose_secret(), None, Vec::new())?
                    .current()
                    .pem()
                    .to_owned(),
            };
            // Check the pair before handing it to a deployment.
            KeySet::from_pems(private_pem.expose_secret(), Some(&public_pem), Vec::new())?;
            let google_client_secret = google_client_secret_file
                .map(|path| read(&path).map(|s| SecretString::from(s.trim().to_owned())))
                .transpose()?;
            if google_client_id.is_some() != google_client_secret.is_some() {
                bail!("give both --google-client-id and --google-client-secret-file, or neither");
            }
            let bundle = SecretsBundle {
                private_pem,
                public_pem,
                google_client_id,
                google_client_secret,
            };
            for (index, piece) in bundle.encode()?.iter().enumerate() {
                super::print_line(&format!("OS_CONDUCTOR_SECRETS_{index}={piece}"));
            }
        }
        SecretsCommand::Decode { out } => {
            let pieces: Vec<&str> = (0..conductor_auth::bundle::PIECES)
                .filter_map(|i| env.get(&format!("OS_CONDUCTOR_SECRETS_{i}")))
                .collect();
            if pieces.is_empty() {
                bail!("OS_CONDUCTOR_SECRETS_0..3 are not set");
            }
            let bundle = SecretsBundle::decode(&pieces)?;
            fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let private = out.join("private.pem");
            conductor_auth::keys::write_private(&private, bundle.private_pem.expose_secret())?;
            let public = out.join("public.pem");
            write_new(&public, &bundle.public_pem)?;
            eprintln!("wrote {} and {}", private.display(), public.display());
            if let (Some(id), Some(secret)) = (&bundle.google_client_id, &bundle.google_client_secret) {
                let secret_file = out.join("google.secret.key");
                conductor_auth::keys::write_private(&secret_file, secret.expose_secret())?;
                eprintln!(
                    "google client id {id}; its secret is in {}",
                    secret_file.display()
                );
            }
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write_new(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist)", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
