//! The JSON the routes answer, as types: each handler builds one of these, and `/openapi.json` describes the
//! same types (utoipa derives their schemas), so the description cannot drift from what is sent.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// `/readyz`: `ready` with every check `ok`, or `unavailable` with what is not.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: String,
    pub checks: ReadinessChecks,
}

/// Each dependency: `ok`, or why not (`unreachable`, `rebuilding from the registry`, `2 migration(s) pending`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessChecks {
    pub database: String,
    pub datastore: String,
    pub search: String,
}

/// `/user/check` with a valid user token.
#[derive(Debug, Serialize, ToSchema)]
// No other field: the two answers of one endpoint must not both match an answer (`oneOf`).
#[serde(deny_unknown_fields)]
pub struct Authenticated {
    /// Always `true`.
    pub authenticated: bool,
    pub profile: ProfileAnswer,
}

/// The user as the original's clients read them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileAnswer {
    /// The provider's subject, `<provider>:<subject>`.
    pub id: String,
    pub name: String,
    pub email: String,
    pub avatar_url: Option<String>,
    /// The user id: the MD5 of the lower-cased e-mail.
    pub idhash: String,
    pub username: Option<String>,
}

/// `/user/check` without a valid user token: where to log in.
#[derive(Debug, Serialize, ToSchema)]
// No other field: the two answers of one endpoint must not both match an answer (`oneOf`).
#[serde(deny_unknown_fields)]
pub struct NotAuthenticated {
    /// Always `false`.
    pub authenticated: bool,
    /// Each provider's login URL (returning to `next`) and display name; the web clients read `google`.
    #[schema(value_type = Object)]
    pub providers: Map<String, Value>,
}

/// `/user/check`'s two answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CheckAnswer {
    Authenticated(Authenticated),
    NotAuthenticated(NotAuthenticated),
}

/// `/user/authorize` with a valid user token.
#[derive(Debug, Serialize, ToSchema)]
// No other field: the two answers of one endpoint must not both match an answer (`oneOf`).
#[serde(deny_unknown_fields)]
pub struct Authorized {
    /// The permission token (RS256 JWT) for `service`.
    pub token: String,
    pub userid: String,
    /// Permission name to value, e.g. `{"datapackage-upload": true}`.
    #[schema(value_type = Object)]
    pub permissions: Map<String, Value>,
    pub service: String,
}

/// `/user/authorize` without a valid user token: no permissions (status 200, as the original answered).
#[derive(Debug, Serialize, ToSchema)]
// No other field: the two answers of one endpoint must not both match an answer (`oneOf`).
#[serde(deny_unknown_fields)]
pub struct NoPermissions {
    /// Always `{}`.
    #[schema(value_type = Object)]
    pub permissions: Map<String, Value>,
}

/// `/user/authorize`'s two answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AuthorizeAnswer {
    Authorized(Authorized),
    NoPermissions(NoPermissions),
}

/// `{"success": true}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Success {
    pub success: bool,
}

impl Success {
    pub const YES: Self = Self { success: true };
}

/// `/package/publish`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    pub success: bool,
    /// Whether the package is public now.
    pub published: bool,
}

/// `/package/upload`: the load is queued; poll `/package/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    #[schema(example = "queued")]
    pub status: String,
    pub progress: u64,
}

/// `/package/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoadStatusAnswer {
    /// `queued`, `initializing`, `loading-data`, `creating-babbage-model`, `saving-metadata`, `done` or `fail`.
    pub status: String,
    /// Rows loaded so far, or the fraction done when `compat.progress_as_fraction` is set.
    #[schema(value_type = f64)]
    pub progress: Value,
    /// The resource's row count: estimated from bytes read while loading, exact when done.
    pub rows_total: Option<i64>,
    /// Between 0 and 1.
    pub fraction: f64,
    /// Why a failed load failed, naming row and column where it can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `/package/run-hooks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookRun {
    /// Whether the pipeline answered 2xx.
    pub success: bool,
    /// The start of the pipeline's answer (at most 64 KiB).
    pub response: String,
    /// The JSON-LD posted as the multipart file `input`.
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// `POST /datastore/`: a signed upload per file, keyed by the path the client sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Filedata {
    pub filedata: BTreeMap<String, conductor_datastore::AuthorizedFile>,
}

/// `/datastore/info`: the URL prefixes the caller's files are stored under.
#[derive(Debug, Serialize, ToSchema)]
pub struct Prefixes {
    pub prefixes: Vec<String>,
}

/// One package in a `/search/package` answer. The search streams the answer stored in the index
/// (`conductor_search::search_answer` makes it); this type describes that object.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackageAnswer {
    /// `<owner>:<name>`.
    pub id: String,
    /// The Babbage model os-api serves (`{}` until the package is loaded).
    #[schema(value_type = Object)]
    pub model: Value,
    /// The Fiscal Data Package descriptor, with `owner`, `author`, `private`, `count_of_rows` and so on.
    #[schema(value_type = Object)]
    pub package: Value,
    pub origin_url: String,
    pub loaded: bool,
    /// Seconds since the epoch.
    pub last_update: f64,
}
