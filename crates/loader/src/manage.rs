//! Managing loaded packages (the `/package/*` endpoints besides upload): visibility, the viewer's default
//! parameters, statistics over every package, and the run-hooks payload. Callers check ownership first
//! (`conductor_permissions::may_manage`).

use conductor_core::PackageId;
use serde_json::{Value, json};

use crate::hooks::{HookAnswer, HookError, hook_target};
use crate::job::{LoadError, Loader, blocking, fact_table_of};

/// `/package/publish`'s `publish` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publish {
    True,
    False,
    Toggle,
}

impl std::str::FromStr for Publish {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.to_ascii_lowercase().as_str() {
            "true" => Ok(Self::True),
            "false" => Ok(Self::False),
            "toggle" => Ok(Self::Toggle),
            _ => Err(format!("publish must be true, false or toggle, not {raw:?}")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("no package {0}")]
    NotFound(PackageId),
    #[error("a load of {0} is queued or running; try again when it has finished")]
    Busy(PackageId),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Hook(#[from] HookError),
}

/// `/package/stats`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    pub num_packages: u64,
    pub num_records: u64,
    pub num_countries: u64,
}

impl Loader {
    /// The registry record of `id`, or `NotFound`.
    async fn existing(&self, id: &PackageId) -> Result<conductor_core::PackageRecord, ManageError> {
        self.packages
            .get(id)
            .await
            .map_err(LoadError::from)?
            .ok_or_else(|| ManageError::NotFound(id.clone()))
    }

    /// Sets a package's visibility; returns whether it is now published.
    pub async fn publish(&self, id: &PackageId, mode: Publish) -> Result<bool, ManageError> {
        let mut record = self.existing(id).await?;
        let private = record
            .package
            .get("private")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let publish = match mode {
            Publish::True => true,
            Publish::False => false,
            Publish::Toggle => private,
        };
        if let Some(package) = record.package.as_object_mut() {
            package.insert("private".into(), json!(!publish));
        }
        record.last_update = self.clock.now();
        self.registry.put(&record).await.map_err(LoadError::from)?;
        // What os-api may answer changed with the visibility: its cached answers go.
        self.clear_cache(id).await;
        Ok(publish)
    }

    /// Drops a package's registry record (and index entry) and its tables, unless a load of it is queued or
    /// running; returns whether the record existed. Tables left by an earlier delete that stopped half-way are
    /// dropped too, so trying again finishes it (and answers that no record existed).
    pub async fn remove(&self, package: &PackageId) -> Result<bool, ManageError> {
        if self
            .jobs
            .unfinished_for_package(package)
            .await
            .map_err(LoadError::from)?
            .is_some()
        {
            return Err(ManageError::Busy(package.clone()));
        }
        Ok(self.remove_now(package).await?)
    }

    async fn remove_now(&self, package: &PackageId) -> Result<bool, LoadError> {
        // The record goes first: a delete cut short between its two writes (a database restart, a killed
        // replica) then leaves tables nothing names, which the retry drops, never a record whose model names
        // tables that are gone (os-api would answer 500 for it; the soak caught one).
        let existed = self.registry.delete(package).await.map_err(LoadError::from)?;
        self.clear_cache(package).await;
        let fact_table = fact_table_of(package);
        let warehouse = self.warehouse.clone();
        blocking(move || warehouse.drop_tables(&fact_table))
            .await
            .map_err(LoadError::from)?;
        Ok(existed)
    }

    /// Clears os-api's cached answers for `id`; a failure is worth a warning, not a failed request.
    pub(crate) async fn clear_cache(&self, id: &PackageId) {
        match self.cache.clear(id).await {
            Ok(n) => tracing::debug!(package = %id, cleared = n, "os-api cache cleared"),
            Err(e) => tracing::warn!(package = %id, error = %e, "could not clear the os-api cache"),
        }
    }

    /// Keeps the viewer's default parameters as `package.defaultParams = {"params": <string>}` and clears the
    /// os-api cache, as the original did.
    pub async fn set_default_params(&self, id: &PackageId, params: String) -> Result<(), ManageError> {
        let mut record = self.existing(id).await?;
        if let Some(package) = record.package.as_object_mut() {
            package.insert("defaultParams".into(), json!({"params": params}));
        }
        self.registry.put(&record).await.map_err(LoadError::from)?;
        self.clear_cache(id).await;
        Ok(())
    }

    /// Counts every package, private ones too (as the original): packages, rows, and distinct country codes,
    /// counted by the database without reading the records.
    pub async fn stats(&self) -> Result<Stats, LoadError> {
        let counts = self.packages.counts().await?;
        Ok(Stats {
            num_packages: counts.packages,
            num_records: counts.rows,
            num_countries: counts.countries,
        })
    }

    /// Posts the package's JSON-LD to `pipeline`, checked first (before the package is read) by the rules of
    /// [`crate::hooks`]. Answers the pipeline's answer and the payload sent.
    pub async fn run_hooks(
        &self,
        id: &PackageId,
        pipeline: &url::Url,
    ) -> Result<(HookAnswer, Value), ManageError> {
        let target = hook_target(self.hooks.as_ref(), pipeline, &self.settings.hook_allowlist).await?;
        let payload = self.hook_payload(id).await?;
        let answer = self.hooks.post(&target, &payload).await?;
        Ok((answer, payload))
    }

    /// The JSON-LD document run-hooks posts for a package (DESIGN §7).
    async fn hook_payload(&self, id: &PackageId) -> Result<Value, ManageError> {
        let record = self.existing(id).await?;
        Ok(json!({
            "@context": {"@vocab": "http://schema.org/", "url": {"@type": "@id"}},
            "url": record.origin_url,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_modes_read_as_the_clients_send_them() {
        assert_eq!("toggle".parse(), Ok(Publish::Toggle));
        assert_eq!("True".parse(), Ok(Publish::True));
        assert_eq!("false".parse(), Ok(Publish::False));
        assert!("yes".parse::<Publish>().is_err());
    }
}
