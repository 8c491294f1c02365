//! What `/user/check` and `/user/authorize` keep for a few seconds so a busy client does not cost a signature
//! verification, a database read and an RS256 signature per call (docs/performance.md says what each saves).
//!
//! Each cache is bounded in entries (least recently used go first) and in age, and none widens what a token
//! grants: a verified user token is remembered only until it expires; a profile for [`PROFILE_TTL`] (this
//! replica forgets it at once when the user changes it here); a user's effective permissions for
//! [`PERMISSIONS_TTL`], so a grant or revoke reaches `/user/authorize` within a second on every replica (a
//! permission token already issued keeps what it says for its whole lifetime anyway); a permission token is
//! reused only for the same user, service and current permissions, while it is young.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use conductor_core::{Profile, Timestamp, UserId};
use conductor_permissions::Permissions;
use lru::LruCache;

use crate::tokens::UserClaims;

/// Entries per cache: a few MB at most (a token is under 1 KB).
const ENTRIES: usize = 4_096;
/// How long a verified user token is taken as verified without checking its signature again.
pub const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// How long another replica may show a profile from before a change (a username set elsewhere).
pub const PROFILE_TTL: Duration = Duration::from_secs(10);
/// How long a user's effective permissions for a service are taken as read.
pub const PERMISSIONS_TTL: Duration = Duration::from_secs(1);
/// The oldest permission token handed out again; its expiry is then at most this much nearer than a fresh one's.
pub const PERMISSION_REUSE: Duration = Duration::from_secs(60);

struct Aged<T> {
    at: Timestamp,
    value: T,
}

/// One bounded LRU map whose entries expire after `ttl`.
struct Recent<K: std::hash::Hash + Eq, V> {
    entries: Mutex<LruCache<K, Aged<V>>>,
    ttl: Duration,
}

impl<K: std::hash::Hash + Eq, V: Clone> Recent<K, V> {
    fn new(ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(ENTRIES).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            ttl,
        }
    }

    fn with<T>(&self, work: impl FnOnce(&mut LruCache<K, Aged<V>>) -> T) -> T {
        work(
            &mut self
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn get<Q>(&self, key: &Q, now: Timestamp) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let oldest = now.minus(self.ttl);
        self.with(|entries| match entries.get(key) {
            Some(entry) if entry.at > oldest && entry.at <= now => Some(entry.value.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        })
    }

    fn put(&self, key: K, value: V, now: Timestamp) {
        self.with(|entries| entries.put(key, Aged { at: now, value }));
    }

    fn forget<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.with(|entries| entries.pop(key));
    }
}

/// The three caches of the account hot paths.
pub(crate) struct RecentAccounts {
    verified: Recent<String, UserClaims>,
    profiles: Recent<UserId, Profile>,
    permissions: Recent<(UserId, String), Permissions>,
    permission_tokens: Recent<(UserId, String), (Permissions, String)>,
}

impl Default for RecentAccounts {
    fn default() -> Self {
        Self {
            verified: Recent::new(VERIFIED_TTL),
            profiles: Recent::new(PROFILE_TTL),
            permissions: Recent::new(PERMISSIONS_TTL),
            permission_tokens: Recent::new(PERMISSION_REUSE),
        }
    }
}

impl RecentAccounts {
    /// The claims of a user token verified lately, while it has not expired.
    pub(crate) fn verified(&self, token: &str, now: Timestamp) -> Option<UserClaims> {
        self.verified
            .get(token, now)
            .filter(|claims| claims.exp * 1000 > now.as_millis())
    }

    pub(crate) fn remember_verified(&self, token: &str, claims: &UserClaims, now: Timestamp) {
        self.verified.put(token.to_owned(), claims.clone(), now);
    }

    pub(crate) fn profile(&self, userid: &UserId, now: Timestamp) -> Option<Profile> {
        self.profiles.get(userid, now)
    }

    pub(crate) fn remember_profile(&self, profile: &Profile, now: Timestamp) {
        self.profiles.put(profile.idhash.clone(), profile.clone(), now);
    }

    pub(crate) fn forget_profile(&self, userid: &UserId) {
        self.profiles.forget(userid);
    }

    pub(crate) fn permissions(&self, userid: &UserId, service: &str, now: Timestamp) -> Option<Permissions> {
        self.permissions.get(&(userid.clone(), service.to_owned()), now)
    }

    pub(crate) fn remember_permissions(
        &self,
        userid: &UserId,
        service: &str,
        permissions: &Permissions,
        now: Timestamp,
    ) {
        self.permissions
            .put((userid.clone(), service.to_owned()), permissions.clone(), now);
    }

    /// A young permission token for exactly these permissions, if one was issued.
    pub(crate) fn permission_token(
        &self,
        userid: &UserId,
        service: &str,
        permissions: &Permissions,
        now: Timestamp,
    ) -> Option<String> {
        let key = (userid.clone(), service.to_owned());
        self.permission_tokens
            .get(&key, now)
            .filter(|(granted, _)| granted == permissions)
            .map(|(_, token)| token)
    }

    pub(crate) fn remember_permission_token(
        &self,
        userid: &UserId,
        service: &str,
        permissions: &Permissions,
        token: &str,
        now: Timestamp,
    ) {
        let key = (userid.clone(), service.to_owned());
        self.permission_tokens
            .put(key, (permissions.clone(), token.to_owned()), now);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_millis(seconds * 1000)
    }

    #[test]
    fn entries_expire_and_stay_bounded() {
        let recent: Recent<String, u32> = Recent::new(Duration::from_secs(10));
        recent.put("a".into(), 1, at(100));
        assert_eq!(recent.get("a", at(105)), Some(1));
        assert_eq!(recent.get("a", at(110)), None, "gone at its age limit");
        assert_eq!(recent.get("a", at(105)), None, "and forgotten");
        for i in 0..(ENTRIES as u32 + 10) {
            recent.put(format!("k{i}"), i, at(200));
        }
        assert_eq!(recent.with(|entries| entries.len()), ENTRIES);
        assert_eq!(
            recent.get("k0", at(200)),
            None,
            "the least recently used went first"
        );
    }

    #[test]
    fn a_verified_token_is_never_taken_past_its_expiry() {
        let recent = RecentAccounts::default();
        let claims = UserClaims {
            typ: "user".into(),
            userid: UserId::from_email("ada@example.test"),
            iss: "http://x/".into(),
            iat: 100,
            exp: 130,
        };
        recent.remember_verified("t", &claims, at(100));
        assert_eq!(recent.verified("t", at(120)), Some(claims));
        assert_eq!(
            recent.verified("t", at(130)),
            None,
            "expired, though young in the cache"
        );
    }

    #[test]
    fn permissions_are_taken_as_read_for_a_second_only() {
        let recent = RecentAccounts::default();
        let ada = UserId::from_email("ada@example.test");
        let none = Permissions::new();
        recent.remember_permissions(&ada, "os.datastore", &none, Timestamp::from_millis(100_000));
        let read = |millis| recent.permissions(&ada, "os.datastore", Timestamp::from_millis(millis));
        assert_eq!(read(100_999), Some(Permissions::new()));
        assert_eq!(read(101_000), None, "read again after a second");
        assert_eq!(recent.permissions(&ada, "other", at(100)), None);
    }

    #[test]
    fn a_permission_token_is_reused_only_for_the_same_permissions() {
        let recent = RecentAccounts::default();
        let ada = UserId::from_email("ada@example.test");
        let mut upload = Permissions::new();
        upload.insert("datapackage-upload".into(), Value::Bool(true));
        recent.remember_permission_token(&ada, "os.datastore", &upload, "tok", at(100));
        assert_eq!(
            recent
                .permission_token(&ada, "os.datastore", &upload, at(130))
                .as_deref(),
            Some("tok")
        );
        let none = Permissions::new();
        assert_eq!(
            recent.permission_token(&ada, "os.datastore", &none, at(130)),
            None,
            "revoked since"
        );
        assert_eq!(recent.permission_token(&ada, "other", &upload, at(130)), None);
        assert_eq!(
            recent.permission_token(&ada, "os.datastore", &upload, at(161)),
            None,
            "too old"
        );
    }
}
