//! The records Conductor keeps (DESIGN §4), as the domain sees them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::Timestamp;
use crate::ids::{PackageId, UserId};

/// A user's profile, keyed by [`UserId`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub idhash: UserId,
    /// The provider's subject, as `<provider>:<subject>` (the original's `id`).
    pub provider_id: String,
    pub name: String,
    pub email: String,
    pub avatar_url: Option<String>,
    pub username: Option<String>,
    pub join_date: Timestamp,
}

/// What a login knows about a user; the repository keeps `username` and `join_date` of an existing one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    pub idhash: UserId,
    pub provider_id: String,
    pub name: String,
    pub email: String,
    pub avatar_url: Option<String>,
}

/// Who a permission row applies to: `*` is everyone's default.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Grantee {
    Everyone,
    User(UserId),
}

impl Grantee {
    pub const EVERYONE: &'static str = "*";

    pub fn as_str(&self) -> &str {
        match self {
            Self::Everyone => Self::EVERYONE,
            Self::User(id) => id.as_str(),
        }
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the permissions table: a grantee's permissions for one service.
#[derive(Clone, Debug, PartialEq)]
pub struct PermissionGrant {
    pub grantee: Grantee,
    pub service: String,
    pub permissions: Map<String, Value>,
}

/// The registry document of a package (reference §1.1). The database is its source of truth.
#[derive(Clone, Debug, PartialEq)]
pub struct PackageRecord {
    pub id: PackageId,
    /// The Babbage model, opaque to Conductor.
    pub model: Value,
    /// The Fiscal Data Package descriptor.
    pub package: Value,
    pub origin_url: String,
    pub dataset: Option<String>,
    pub author: Option<String>,
    pub loading_status: Option<LoadStatus>,
    pub loaded: bool,
    pub last_update: Timestamp,
}

/// The status codes of a load, in the order a job passes through them (DESIGN §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LoadStatus {
    Queued,
    Initializing,
    LoadingDatapackage,
    ValidatingDatapackage,
    LoadingResource,
    CreatingTable,
    LoadingDataReady,
    LoadingData,
    CreatingBabbageModel,
    DeletingTable,
    SavingMetadata,
    Done,
    Fail,
}

impl LoadStatus {
    pub const ALL: [Self; 13] = [
        Self::Queued,
        Self::Initializing,
        Self::LoadingDatapackage,
        Self::ValidatingDatapackage,
        Self::LoadingResource,
        Self::CreatingTable,
        Self::LoadingDataReady,
        Self::LoadingData,
        Self::CreatingBabbageModel,
        Self::DeletingTable,
        Self::SavingMetadata,
        Self::Done,
        Self::Fail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Initializing => "initializing",
            Self::LoadingDatapackage => "loading-datapackage",
            Self::ValidatingDatapackage => "validating-datapackage",
            Self::LoadingResource => "loading-resource",
            Self::CreatingTable => "creating-table",
            Self::LoadingDataReady => "loading-data-ready",
            Self::LoadingData => "loading-data",
            Self::CreatingBabbageModel => "creating-babbage-model",
            Self::DeletingTable => "deleting-table",
            Self::SavingMetadata => "saving-metadata",
            Self::Done => "done",
            Self::Fail => "fail",
        }
    }

    /// `done` and `fail` end a job; every other status means a worker still owns it.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Fail)
    }
}

impl fmt::Display for LoadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown load status {0:?}")]
pub struct UnknownLoadStatus(pub String);

impl FromStr for LoadStatus {
    type Err = UnknownLoadStatus;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| UnknownLoadStatus(raw.to_owned()))
    }
}

impl Serialize for LoadStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LoadStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// A load job as it is enqueued by `/package/upload`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLoadJob {
    pub package_id: PackageId,
    pub datapackage_url: String,
    pub owner: UserId,
}

/// A load job: durable, so any replica can report on it or fail it when its worker dies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadJob {
    pub id: i64,
    pub package_id: PackageId,
    pub datapackage_url: String,
    pub owner: UserId,
    pub status: LoadStatus,
    pub rows_loaded: i64,
    pub rows_total: Option<i64>,
    pub error: Option<String>,
    /// The last sign of life of the worker running it; `None` while queued.
    pub heartbeat_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A login in flight between `/oauth/<provider>/login` and the provider's callback, kept server-side so any
/// replica can finish it.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginState {
    /// The random `state` value sent to the provider.
    pub state: String,
    pub provider: String,
    pub pkce_verifier: String,
    pub nonce: String,
    pub next_url: String,
    /// A hash of the browser-binding cookie, so a state is only redeemable by the browser that began it.
    pub browser_binding: String,
    pub expires_at: Timestamp,
}

impl fmt::Debug for LoginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The verifier and nonce are secrets until the login finishes.
        f.debug_struct("LoginState")
            .field("provider", &self.provider)
            .field("next_url", &self.next_url)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_status_round_trips_every_code() {
        for status in LoadStatus::ALL {
            assert_eq!(status.as_str().parse::<LoadStatus>(), Ok(status));
        }
        assert!("finished".parse::<LoadStatus>().is_err());
        assert!(LoadStatus::Done.is_terminal() && LoadStatus::Fail.is_terminal());
        assert!(!LoadStatus::LoadingData.is_terminal());
    }

    #[test]
    fn login_state_debug_hides_secrets() {
        let state = LoginState {
            state: "s3cr3t-state".into(),
            provider: "google".into(),
            pkce_verifier: "s3cr3t-verifier".into(),
            nonce: "s3cr3t-nonce".into(),
            next_url: "http://127.0.0.1:8000/".into(),
            browser_binding: "s3cr3t-binding".into(),
            expires_at: Timestamp::from_millis(0),
        };
        assert!(!format!("{state:?}").contains("s3cr3t"));
    }
}
