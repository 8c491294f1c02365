//! Row types and their conversion to and from the domain records. Parsing happens here, once, so a bad row is a
//! `RepoError::Corrupt` naming the table rather than a panic further up.

use conductor_core::repo::{RepoError, RepoResult};
use conductor_core::{
    ApiKey, Grantee, KeyScope, LoadJob, LoadStatus, LoginState, PackageId, PackageRecord, PermissionGrant,
    Profile, Timestamp, UserId,
};
use diesel::prelude::*;
use serde_json::{Map, Value};

use crate::schema::{api_keys, load_jobs, login_states, packages, permissions, users};

pub(crate) fn corrupt(table: &str, detail: impl std::fmt::Display) -> RepoError {
    RepoError::Corrupt(format!("{table}: {detail}"))
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    pub idhash: String,
    pub provider_id: String,
    pub name: String,
    pub email: String,
    pub avatar_url: Option<String>,
    pub username: Option<String>,
    pub join_date: i64,
}

impl UserRow {
    pub(crate) fn into_profile(self) -> RepoResult<Profile> {
        Ok(Profile {
            idhash: UserId::parse(&self.idhash).map_err(|e| corrupt("users", e))?,
            provider_id: self.provider_id,
            name: self.name,
            email: self.email,
            avatar_url: self.avatar_url,
            username: self.username,
            join_date: Timestamp::from_millis(self.join_date),
        })
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = permissions)]
pub(crate) struct PermissionRow {
    pub userid: String,
    pub service: String,
    pub granted: String,
}

impl PermissionRow {
    pub(crate) fn from_grant(grant: &PermissionGrant) -> RepoResult<Self> {
        Ok(Self {
            userid: grant.grantee.as_str().to_owned(),
            service: grant.service.clone(),
            granted: serde_json::to_string(&grant.permissions)
                .map_err(|e| RepoError::Query(e.to_string()))?,
        })
    }

    pub(crate) fn into_grant(self) -> RepoResult<PermissionGrant> {
        let grantee = if self.userid == Grantee::EVERYONE {
            Grantee::Everyone
        } else {
            Grantee::User(UserId::parse(&self.userid).map_err(|e| corrupt("permissions", e))?)
        };
        let permissions: Map<String, Value> =
            serde_json::from_str(&self.granted).map_err(|e| corrupt("permissions", e))?;
        Ok(PermissionGrant {
            grantee,
            service: self.service,
            permissions,
        })
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = packages, treat_none_as_null = true)]
pub(crate) struct PackageRow {
    pub id: String,
    pub owner: String,
    pub model: String,
    pub package: String,
    pub origin_url: String,
    pub dataset: Option<String>,
    pub author: Option<String>,
    pub loading_status: Option<String>,
    pub loaded: bool,
    pub last_update: i64,
    /// Derived from `package` for `/package/stats` (the migration backfills it the same way).
    pub count_of_rows: Option<i64>,
    /// The descriptor's `countryCode`(s), upper-cased, distinct, sorted, as a JSON array; derived like the above.
    pub country_codes: Option<String>,
}

impl PackageRow {
    pub(crate) fn from_record(record: &PackageRecord) -> RepoResult<Self> {
        let json = |value: &Value| serde_json::to_string(value).map_err(|e| RepoError::Query(e.to_string()));
        Ok(Self {
            id: record.id.to_string(),
            owner: record.id.owner().to_string(),
            model: json(&record.model)?,
            package: json(&record.package)?,
            origin_url: record.origin_url.clone(),
            dataset: record.dataset.clone(),
            author: record.author.clone(),
            loading_status: record.loading_status.map(|s| s.as_str().to_owned()),
            loaded: record.loaded,
            last_update: record.last_update.as_millis(),
            count_of_rows: record
                .package
                .get("count_of_rows")
                .and_then(Value::as_u64)
                .and_then(|n| i64::try_from(n).ok()),
            country_codes: country_codes(&record.package)
                .map(|codes| json(&Value::from(codes)))
                .transpose()?,
        })
    }

    pub(crate) fn into_record(self) -> RepoResult<PackageRecord> {
        let json = |raw: &str| serde_json::from_str::<Value>(raw).map_err(|e| corrupt("packages", e));
        Ok(PackageRecord {
            id: PackageId::parse(&self.id).map_err(|e| corrupt("packages", e))?,
            model: json(&self.model)?,
            package: json(&self.package)?,
            origin_url: self.origin_url,
            dataset: self.dataset,
            author: self.author,
            loading_status: self
                .loading_status
                .map(|s| s.parse::<LoadStatus>())
                .transpose()
                .map_err(|e| corrupt("packages", e))?,
            loaded: self.loaded,
            last_update: Timestamp::from_millis(self.last_update),
        })
    }
}

/// A descriptor's `countryCode` (a string or a list of them), upper-cased, distinct and sorted.
fn country_codes(package: &Value) -> Option<Vec<String>> {
    let codes: std::collections::BTreeSet<String> = match package.get("countryCode")? {
        Value::String(code) => std::iter::once(code.to_ascii_uppercase()).collect(),
        Value::Array(codes) => codes
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_uppercase)
            .collect(),
        _ => return None,
    };
    Some(codes.into_iter().collect())
}

#[derive(Insertable)]
#[diesel(table_name = load_jobs)]
pub(crate) struct NewLoadJobRow {
    pub package_id: String,
    pub datapackage_url: String,
    pub owner: String,
    pub status: String,
    pub rows_loaded: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = load_jobs)]
pub(crate) struct LoadJobRow {
    pub id: i64,
    pub package_id: String,
    pub datapackage_url: String,
    pub owner: String,
    pub status: String,
    pub rows_loaded: i64,
    pub rows_total: Option<i64>,
    pub error: Option<String>,
    pub heartbeat_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl LoadJobRow {
    pub(crate) fn into_job(self) -> RepoResult<LoadJob> {
        Ok(LoadJob {
            id: self.id,
            package_id: PackageId::parse(&self.package_id).map_err(|e| corrupt("load_jobs", e))?,
            datapackage_url: self.datapackage_url,
            owner: UserId::parse(&self.owner).map_err(|e| corrupt("load_jobs", e))?,
            status: self.status.parse().map_err(|e| corrupt("load_jobs", e))?,
            rows_loaded: self.rows_loaded,
            rows_total: self.rows_total,
            error: self.error,
            heartbeat_at: self.heartbeat_at.map(Timestamp::from_millis),
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = login_states)]
pub(crate) struct LoginStateRow {
    pub state: String,
    pub provider: String,
    pub pkce_verifier: String,
    pub nonce: String,
    pub next_url: String,
    pub browser_binding: String,
    pub expires_at: i64,
}

impl From<&LoginState> for LoginStateRow {
    fn from(s: &LoginState) -> Self {
        Self {
            state: s.state.clone(),
            provider: s.provider.clone(),
            pkce_verifier: s.pkce_verifier.clone(),
            nonce: s.nonce.clone(),
            next_url: s.next_url.clone(),
            browser_binding: s.browser_binding.clone(),
            expires_at: s.expires_at.as_millis(),
        }
    }
}

impl From<LoginStateRow> for LoginState {
    fn from(r: LoginStateRow) -> Self {
        Self {
            state: r.state,
            provider: r.provider,
            pkce_verifier: r.pkce_verifier,
            nonce: r.nonce,
            next_url: r.next_url,
            browser_binding: r.browser_binding,
            expires_at: Timestamp::from_millis(r.expires_at),
        }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub(crate) struct ApiKeyRow {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub scope: String,
    pub secret_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl ApiKeyRow {
    pub(crate) fn from_key(key: &ApiKey) -> RepoResult<Self> {
        Ok(Self {
            id: key.id.clone(),
            owner: key.owner.as_str().to_owned(),
            name: key.name.clone(),
            scope: serde_json::to_string(&key.scope).map_err(|e| RepoError::Query(e.to_string()))?,
            secret_hash: key.secret_hash.clone(),
            created_at: key.created_at.as_millis(),
            expires_at: key.expires_at.map(Timestamp::as_millis),
            revoked_at: key.revoked_at.map(Timestamp::as_millis),
            last_used_at: key.last_used_at.map(Timestamp::as_millis),
        })
    }

    pub(crate) fn into_key(self) -> RepoResult<ApiKey> {
        Ok(ApiKey {
            owner: UserId::parse(&self.owner).map_err(|e| corrupt("api_keys", e))?,
            scope: serde_json::from_str::<KeyScope>(&self.scope).map_err(|e| corrupt("api_keys", e))?,
            id: self.id,
            name: self.name,
            secret_hash: self.secret_hash,
            created_at: Timestamp::from_millis(self.created_at),
            expires_at: self.expires_at.map(Timestamp::from_millis),
            revoked_at: self.revoked_at.map(Timestamp::from_millis),
            last_used_at: self.last_used_at.map(Timestamp::from_millis),
        })
    }
}
