//! Conductor's shared vocabulary.
//!
//! Everything here is plain data and traits: no web framework, no database driver. Domain crates and adapters
//! meet on these types, and the repository ports in [`repo`] are what the persistence adapters implement.

pub mod api_key;
pub mod clock;
pub mod ids;
pub mod records;
pub mod repo;
pub mod url_path;

pub use api_key::{ApiKey, KeyScope};
pub use clock::{Clock, SystemClock, Timestamp};
pub use ids::{DatasetName, IdError, PackageId, UserId};
pub use records::{
    Grantee, LoadJob, LoadStatus, LoginState, NewLoadJob, NewUser, PackageRecord, PermissionGrant, Profile,
};
