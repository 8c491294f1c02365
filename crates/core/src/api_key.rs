//! Personal API keys as stored (DESIGN §5): who owns a key, what it may be used for, and only a hash of its secret.

use std::collections::BTreeMap;
use std::fmt;

use crate::clock::Timestamp;
use crate::ids::UserId;

/// What a key may be used for: service → the permission names it may carry. A key never grants more than its
/// owner has at the moment of use; this only narrows that.
pub type KeyScope = BTreeMap<String, Vec<String>>;

/// One API key. The secret itself is never stored: `secret_hash` is the hex SHA-256 of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The public part of the key, shown in lists and logs.
    pub id: String,
    pub owner: UserId,
    pub name: String,
    pub scope: KeyScope,
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

impl ApiKey {
    /// Neither revoked nor expired at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| now < expires)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiKey {
        ApiKey {
            id: "k1".into(),
            owner: UserId::from_email("ada@example.org"),
            name: "nightly".into(),
            scope: KeyScope::new(),
            secret_hash: "s3cr3t-hash".into(),
            created_at: Timestamp::from_millis(0),
            expires_at: Some(Timestamp::from_millis(1_000)),
            revoked_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn a_key_is_live_until_it_expires_or_is_revoked() {
        let key = key();
        assert!(key.is_live(Timestamp::from_millis(999)));
        assert!(!key.is_live(Timestamp::from_millis(1_000)));
        let revoked = ApiKey {
            revoked_at: Some(Timestamp::from_millis(5)),
            ..key.clone()
        };
        assert!(!revoked.is_live(Timestamp::from_millis(10)));
        assert!(!format!("{key:?}").contains("s3cr3t"));
    }
}
