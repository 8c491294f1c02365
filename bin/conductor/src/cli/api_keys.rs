//! `conductor keys list|revoke`: users' personal API keys, for administrators on the server.

use anyhow::{Result, bail};

use super::identity::KeysCommand;
use crate::routes::keys::rfc3339;
use crate::settings::Settings;

pub async fn administer(settings: Settings, command: KeysCommand) -> Result<()> {
    let services = super::migrated_services(&settings).await?;
    let keys = &services.identity.api_keys;
    match command {
        KeysCommand::List { user } => {
            let owner = user.as_deref().map(super::package::owner_id).transpose()?;
            let now = services.clock.now();
            for key in keys.list(owner.as_ref()).await? {
                let state = match (key.revoked_at, key.is_live(now)) {
                    (Some(at), _) => format!("revoked {}", rfc3339(at)),
                    (None, false) => "expired".to_owned(),
                    (None, true) => "live".to_owned(),
                };
                let scope: Vec<String> = key
                    .scope
                    .iter()
                    .map(|(service, names)| format!("{service}:{}", names.join(",")))
                    .collect();
                super::print_line(&format!(
                    "{}\t{}\t{}\t{}\tcreated {}\texpires {}\tlast used {}\t{}",
                    key.id,
                    key.owner,
                    key.name,
                    scope.join(" "),
                    rfc3339(key.created_at),
                    key.expires_at.map_or_else(|| "never".to_owned(), rfc3339),
                    key.last_used_at.map_or_else(|| "never".to_owned(), rfc3339),
                    state
                ));
            }
            Ok(())
        }
        KeysCommand::Revoke { id } => match keys.revoke(&id, None).await {
            Ok(()) => {
                eprintln!("conductor: revoked API key {id}");
                Ok(())
            }
            Err(conductor_auth::ApiKeyError::NotFound) => bail!("no live API key {id}"),
            Err(error) => Err(error.into()),
        },
        KeysCommand::Generate { .. } => bail!("keys generate makes signing keys, not API keys"),
    }
}
