//! Moving in: an existing deployment's registry (its packages index, and where given its users index and
//! permissions table) read into the database, idempotently. Each document is imported, left as it is (already
//! here), or refused with a reason; nothing already stored is overwritten.
//!
//! Documents come as the original's cluster holds them (`{"_index", "_type", "_id", "_source"}`, as a scroll or an
//! elasticdump line gives them) or bare: a package `{"id", "package", "model", ...}` (reference §1.1), a user
//! `{"idhash", "email", ...}` (`user_profile`), a permissions row `{"userid", "service", "permissions"}`.

use std::sync::Arc;

use chrono::NaiveDateTime;
use conductor_core::repo::{
    JobProgress, LoadJobRepository, PackageRepository, PermissionRepository, RepoError,
    SearchOutboxRepository, UserRepository,
};
use conductor_core::{
    Clock, Grantee, LoadStatus, NewLoadJob, NewUser, PackageId, PackageRecord, PermissionGrant, Timestamp,
    UserId,
};
use serde_json::{Map, Value, json};

/// What one document came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Imported,
    /// Already in the database (an earlier import, or the package was loaded here): left as it is.
    Unchanged,
    Refused(String),
}

/// One line of the report: the kind and key of a document and what came of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    pub kind: &'static str,
    pub key: String,
    pub outcome: Outcome,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Imported => write!(f, "{} {}: imported", self.kind, self.key),
            Outcome::Unchanged => write!(f, "{} {}: already here, left as it is", self.kind, self.key),
            Outcome::Refused(reason) => write!(f, "{} {}: refused: {reason}", self.kind, self.key),
        }
    }
}

/// The ports an import writes through.
#[derive(Clone)]
pub struct RegistryImport {
    pub users: Arc<dyn UserRepository>,
    pub permissions: Arc<dyn PermissionRepository>,
    pub packages: Arc<dyn PackageRepository>,
    pub jobs: Arc<dyn LoadJobRepository>,
    /// Imported packages are queued here, so a running gateway indexes them (a starting one rebuilds anyway).
    pub outbox: Arc<dyn SearchOutboxRepository>,
    pub clock: Arc<dyn Clock>,
    /// Report what would happen, write nothing.
    pub dry_run: bool,
}

impl std::fmt::Debug for RegistryImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryImport")
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// Which kind of document a line is, when its shape or its `_type`/`_index` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Package,
    User,
    Permission,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Package => "package",
            Self::User => "user",
            Self::Permission => "permission",
        }
    }

    /// The kind of `document` (`hint` when the source says it, e.g. a users index); its body and `_id`.
    pub fn of(document: &Value, hint: Option<Self>) -> Option<(Self, &Value, Option<&str>)> {
        let (body, id, declared) = match document.get("_source") {
            Some(source) => {
                let declared = match (document["_type"].as_str(), document["_index"].as_str()) {
                    (Some("package"), _) => Some(Self::Package),
                    (Some("user_profile"), _) => Some(Self::User),
                    (_, Some(index)) if index.starts_with("user") => Some(Self::User),
                    (_, Some(index)) if index.starts_with("package") => Some(Self::Package),
                    _ => None,
                };
                (source, document["_id"].as_str(), declared)
            }
            None => (document, None, None),
        };
        let shaped = if body.get("service").is_some() && body.get("permissions").is_some() {
            Some(Self::Permission)
        } else if body.get("idhash").is_some() && body.get("email").is_some() {
            Some(Self::User)
        } else if body.get("package").is_some() {
            Some(Self::Package)
        } else {
            None
        };
        Some((hint.or(declared).or(shaped)?, body, id))
    }
}

impl RegistryImport {
    /// Imports one document; `hint` names its kind when its source does (a users index, say).
    pub async fn document(&self, document: &Value, hint: Option<Kind>) -> Result<Imported, RepoError> {
        let Some((kind, body, id)) = Kind::of(document, hint) else {
            return Ok(Imported {
                kind: "document",
                key: document.to_string().chars().take(60).collect(),
                outcome: Outcome::Refused("neither a package, a user nor a permissions row".into()),
            });
        };
        let key = id
            .or_else(|| body["id"].as_str())
            .or_else(|| body["idhash"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}/{}", body["userid"].as_str().unwrap_or("?"), body["service"]));
        let outcome = match kind {
            Kind::Package => self.package(body, id).await?,
            Kind::User => self.user(body).await?,
            Kind::Permission => self.permission(body).await?,
        };
        Ok(Imported {
            kind: kind.name(),
            key,
            outcome,
        })
    }

    async fn package(&self, body: &Value, id: Option<&str>) -> Result<Outcome, RepoError> {
        let record = match package_record(body, id, self.clock.now()) {
            Ok(record) => record,
            Err(reason) => return Ok(Outcome::Refused(reason)),
        };
        if self.packages.get(&record.id).await?.is_some() {
            return Ok(Outcome::Unchanged);
        }
        if self.dry_run {
            return Ok(Outcome::Imported);
        }
        self.packages.put(&record).await?;
        self.outbox.push(&record.id, self.clock.now()).await?;
        self.record_status(&record).await?;
        Ok(Outcome::Imported)
    }

    /// A finished job for the package's URL, so `/package/status` answers for it as it did before the move.
    async fn record_status(&self, record: &PackageRecord) -> Result<(), RepoError> {
        if record.origin_url.is_empty() || self.jobs.latest_for_url(&record.origin_url).await?.is_some() {
            return Ok(());
        }
        let rows = record.package["count_of_rows"].as_i64().unwrap_or(0);
        let (status, error) = if record.loaded {
            (LoadStatus::Done, None)
        } else {
            let was = record.loading_status.map_or("none", LoadStatus::as_str);
            let error = format!(
                "the previous deployment had not finished loading it (loading_status {was}); upload it again"
            );
            (LoadStatus::Fail, Some(error))
        };
        let now = self.clock.now();
        let job = NewLoadJob {
            package_id: record.id.clone(),
            datapackage_url: record.origin_url.clone(),
            owner: record.id.owner().clone(),
        };
        let progress = JobProgress {
            status,
            rows_loaded: rows,
            rows_total: record.loaded.then_some(rows),
            error,
        };
        crate::job::record_finished_job(self.jobs.as_ref(), &job, &progress, now).await
    }

    async fn user(&self, body: &Value) -> Result<Outcome, RepoError> {
        let text = |key: &str| body[key].as_str().filter(|v| !v.is_empty()).map(str::to_owned);
        let Some(email) = text("email") else {
            return Ok(Outcome::Refused("no e-mail".into()));
        };
        let idhash = UserId::from_email(&email);
        if text("idhash").as_deref() != Some(idhash.as_str()) {
            return Ok(Outcome::Refused(format!(
                "its idhash is not the md5 of its lower-cased e-mail ({idhash}): after a login it would not find its packages"
            )));
        }
        if self.users.get(&idhash).await?.is_some() {
            return Ok(Outcome::Unchanged);
        }
        if self.dry_run {
            return Ok(Outcome::Imported);
        }
        let joined = text("join_date")
            .and_then(|d| NaiveDateTime::parse_from_str(&d, "%Y-%m-%dT%H:%M:%S%.f").ok())
            .map_or_else(
                || self.clock.now(),
                |d| Timestamp::from_millis(d.and_utc().timestamp_millis()),
            );
        let user = NewUser {
            idhash: idhash.clone(),
            provider_id: text("id").unwrap_or_else(|| format!("imported:{email}")),
            name: text("name").unwrap_or_else(|| email.clone()),
            email,
            avatar_url: text("avatar_url"),
        };
        self.users.upsert_login(&user, joined).await?;
        if let Some(username) = text("username") {
            self.users.set_username(&idhash, &username).await?;
        }
        Ok(Outcome::Imported)
    }

    async fn permission(&self, body: &Value) -> Result<Outcome, RepoError> {
        let grantee = match body["userid"].as_str() {
            Some(Grantee::EVERYONE) => Grantee::Everyone,
            Some(id) => match UserId::parse(id) {
                Ok(id) => Grantee::User(id),
                Err(e) => return Ok(Outcome::Refused(format!("userid {id:?}: {e}"))),
            },
            None => return Ok(Outcome::Refused("no userid".into())),
        };
        let Some(service) = body["service"].as_str().filter(|s| !s.is_empty()) else {
            return Ok(Outcome::Refused("no service".into()));
        };
        // The original kept the permissions as a JSON object, or as its text.
        let permissions = match &body["permissions"] {
            Value::Object(map) => map.clone(),
            Value::String(text) => match serde_json::from_str::<Map<String, Value>>(text) {
                Ok(map) => map,
                Err(e) => {
                    return Ok(Outcome::Refused(format!(
                        "permissions are not a JSON object: {e}"
                    )));
                }
            },
            _ => return Ok(Outcome::Refused("permissions are not a JSON object".into())),
        };
        let grant = PermissionGrant {
            grantee,
            service: service.to_owned(),
            permissions,
        };
        let existing = self.permissions.get(&grant.grantee, service).await?;
        if existing.as_ref() == Some(&grant) {
            return Ok(Outcome::Unchanged);
        }
        if existing.is_some() {
            return Ok(Outcome::Refused(
                "this grantee already has other permissions for the service here; left as they are".into(),
            ));
        }
        if !self.dry_run {
            self.permissions.put(&grant).await?;
        }
        Ok(Outcome::Imported)
    }
}

/// A registry document as a record: the original's fields (reference §1.1), `loaded` true when missing (as
/// os-package-registry's `get_raw` reads it), `package.owner` from the id when missing.
fn package_record(body: &Value, id: Option<&str>, now: Timestamp) -> Result<PackageRecord, String> {
    let raw = body["id"].as_str().or(id).ok_or("no id")?;
    let id = PackageId::parse(raw).map_err(|e| format!("{raw:?} is not an <owner>:<dataset> id ({e})"))?;
    let Some(Value::Object(descriptor)) = body.get("package") else {
        return Err("no package descriptor".into());
    };
    let mut descriptor = descriptor.clone();
    descriptor
        .entry("owner")
        .or_insert_with(|| json!(id.owner().as_str()));
    let origin_url = body["origin_url"].as_str().ok_or("no origin_url")?.to_owned();
    let text = |key: &str| body[key].as_str().map(str::to_owned);
    let last_update = body["last_update"]
        .as_f64()
        .map_or(now, |secs| Timestamp::from_millis((secs * 1000.0) as i64));
    Ok(PackageRecord {
        id,
        model: body.get("model").cloned().unwrap_or_else(|| json!({})),
        package: Value::Object(descriptor),
        origin_url,
        dataset: text("dataset"),
        author: text("author"),
        loading_status: body["loading_status"].as_str().and_then(|s| s.parse().ok()),
        loaded: body["loaded"].as_bool().unwrap_or(true),
        last_update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_told_apart_by_their_source_or_their_shape() {
        let package =
            json!({"_index": "packages-0", "_type": "package", "_id": "a:b", "_source": {"package": {}}});
        assert_eq!(Kind::of(&package, None).map(|k| k.0), Some(Kind::Package));
        let user = json!({"_index": "users", "_id": "x", "_source": {"email": "a@b"}});
        assert_eq!(Kind::of(&user, None).map(|k| k.0), Some(Kind::User));
        let row = json!({"userid": "*", "service": "os.datastore", "permissions": {}});
        assert_eq!(Kind::of(&row, None).map(|k| k.0), Some(Kind::Permission));
        assert_eq!(Kind::of(&json!({"x": 1}), None), None);
    }

    #[test]
    fn a_registry_document_reads_as_the_original_wrote_it() {
        let owner = UserId::from_email("ada@example.test");
        let body = json!({
            "id": format!("{owner}:budget"), "model": {"fact_table": "t"}, "package": {"name": "budget"},
            "origin_url": "http://x/datapackage.json", "loading_status": "done", "last_update": 1556712345.123,
        });
        let record = package_record(&body, None, Timestamp::from_millis(0)).unwrap();
        assert!(record.loaded, "loaded defaults to true");
        assert_eq!(record.package["owner"], owner.as_str());
        assert_eq!(record.last_update, Timestamp::from_millis(1_556_712_345_123));
        assert_eq!(record.loading_status, Some(LoadStatus::Done));
        let legacy = json!({"id": "example@example.com:boost-moldova", "package": {}, "origin_url": ""});
        assert!(package_record(&legacy, None, Timestamp::from_millis(0)).is_err());
    }
}
