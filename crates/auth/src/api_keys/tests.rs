//! The key rules on in-memory fakes; the SQL adapters keep the repository contract in `conductor-store`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use conductor_core::repo::RepoResult;
use conductor_core::{Grantee, Timestamp};
use conductor_permissions::testing::InMemoryGrants;
use secrecy::ExposeSecret;
use serde_json::json;

use super::*;
use crate::keys::KeySet;
use crate::rate::LocalRates;
use crate::tokens::TokenPolicy;

#[derive(Default)]
struct Keys(Mutex<BTreeMap<String, ApiKey>>);

#[async_trait]
impl ApiKeyRepository for Keys {
    async fn create(&self, key: &ApiKey) -> RepoResult<()> {
        let mut keys = self.0.lock().unwrap();
        if keys.contains_key(&key.id) {
            return Err(RepoError::Conflict(key.id.clone()));
        }
        keys.insert(key.id.clone(), key.clone());
        Ok(())
    }
    async fn get(&self, id: &str) -> RepoResult<Option<ApiKey>> {
        Ok(self.0.lock().unwrap().get(id).cloned())
    }
    async fn list(&self, owner: Option<&UserId>) -> RepoResult<Vec<ApiKey>> {
        let keys = self.0.lock().unwrap();
        Ok(keys
            .values()
            .filter(|k| owner.is_none_or(|o| &k.owner == o))
            .cloned()
            .collect())
    }
    async fn revoke(&self, id: &str, owner: Option<&UserId>, now: Timestamp) -> RepoResult<bool> {
        let mut keys = self.0.lock().unwrap();
        match keys.get_mut(id) {
            Some(key) if key.revoked_at.is_none() && owner.is_none_or(|o| &key.owner == o) => {
                key.revoked_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn count_live(&self, owner: &UserId, now: Timestamp) -> RepoResult<u64> {
        let keys = self.0.lock().unwrap();
        Ok(keys
            .values()
            .filter(|k| &k.owner == owner && k.is_live(now))
            .count() as u64)
    }
    async fn touch(&self, id: &str, now: Timestamp, _: i64) -> RepoResult<()> {
        if let Some(key) = self.0.lock().unwrap().get_mut(id) {
            key.last_used_at = Some(now);
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct TestClock(AtomicI64);

impl conductor_core::Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

struct World {
    keys: ApiKeys,
    grants: PermissionService,
    clock: Arc<TestClock>,
}

fn ada() -> UserId {
    UserId::from_email("ada@example.test")
}

fn world(policy: KeyPolicy) -> World {
    static PAIR: std::sync::LazyLock<crate::keys::GeneratedKeys> =
        std::sync::LazyLock::new(|| KeySet::generate().unwrap());
    let keys = KeySet::from_pems(PAIR.private_pem.expose_secret(), None, vec![]).unwrap();
    let tokens = TokenIssuer::new(
        Arc::new(keys),
        TokenPolicy {
            issuer: "http://127.0.0.1:8000/".into(),
            user_ttl: Duration::from_secs(86_400),
            permission_ttl: Duration::from_secs(12 * 3600),
            permission_aud: false,
        },
    );
    let grants = PermissionService::new(Arc::new(InMemoryGrants::default()));
    let clock = Arc::new(TestClock(AtomicI64::new(1_800_000_000_000)));
    let keys = ApiKeys::new(ApiKeyParts {
        keys: Arc::new(Keys::default()),
        permissions: grants.clone(),
        tokens,
        rates: Arc::new(LocalRates::default()),
        clock: clock.clone(),
        policy,
    });
    World { keys, grants, clock }
}

fn scope(value: serde_json::Value) -> KeyScope {
    serde_json::from_value(value).unwrap()
}

fn upload_key(expires_in: Option<Duration>) -> NewKey {
    NewKey {
        name: "nightly publish".into(),
        scope: scope(json!({"os.datastore": ["datapackage-upload"]})),
        expires_in,
    }
}

async fn granted(world: &World, service: &str, permissions: serde_json::Value) {
    let permissions = permissions.as_object().cloned().unwrap();
    world
        .grants
        .grant(&Grantee::User(ada()), service, permissions)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_key_is_shown_once_stored_as_a_hash_and_used_within_its_scope() {
    let world = world(KeyPolicy::default());
    granted(
        &world,
        "os.datastore",
        json!({"datapackage-upload": true, "package-admin": true}),
    )
    .await;
    let created = world.keys.create(&ada(), upload_key(None)).await.unwrap();
    let secret = created.secret.expose_secret().to_owned();
    assert!(
        secret.starts_with(&format!("cnd_{}_", created.key.id)),
        "{secret}"
    );
    assert!(secret.len() > 50);
    assert!(
        !created.key.secret_hash.contains(&secret[20..]),
        "only a hash is kept"
    );

    let key = world.keys.authenticate(&secret, "127.0.0.1").await.unwrap();
    assert_eq!(key.id, created.key.id);
    let granted = world.keys.authorize(&key, "os.datastore").await.unwrap();
    assert_eq!(
        json!(granted.permissions),
        json!({"datapackage-upload": true}),
        "the scope narrows"
    );
    let claims = world
        .keys
        .tokens
        .verify_permission(&granted.token, world.clock.now())
        .unwrap();
    assert_eq!(claims.api_key.as_deref(), Some(key.id.as_str()));
    assert!(
        claims.exp - claims.iat <= 15 * 60,
        "a key's permission tokens are short-lived"
    );
    let other = world.keys.authorize(&key, "os.admin").await.unwrap();
    assert!(
        other.permissions.is_empty(),
        "a service outside the scope grants nothing"
    );
}

#[tokio::test]
async fn a_key_never_holds_more_than_its_owner() {
    let world = world(KeyPolicy::default());
    let beyond = NewKey {
        scope: scope(json!({"os.datastore": ["package-admin"]})),
        ..upload_key(None)
    };
    assert!(matches!(
        world.keys.create(&ada(), beyond).await,
        Err(ApiKeyError::BeyondPermissions { permission, .. }) if permission == "package-admin"
    ));
    granted(&world, "os.datastore", json!({"datapackage-upload": true})).await;
    let created = world.keys.create(&ada(), upload_key(None)).await.unwrap();
    let key = world
        .keys
        .authenticate(created.secret.expose_secret(), "c")
        .await
        .unwrap();
    // The owner loses the permission: the key loses it too, at the next use.
    granted(&world, "os.datastore", json!({"datapackage-upload": false})).await;
    let granted = world.keys.authorize(&key, "os.datastore").await.unwrap();
    assert!(granted.permissions.is_empty(), "{:?}", granted.permissions);
}

#[tokio::test]
async fn wrong_revoked_and_expired_keys_are_refused_alike() {
    let world = world(KeyPolicy::default());
    granted(&world, "os.datastore", json!({"datapackage-upload": true})).await;
    let revoked = world.keys.create(&ada(), upload_key(None)).await.unwrap();
    let expiring = world
        .keys
        .create(&ada(), upload_key(Some(Duration::from_secs(3600))))
        .await
        .unwrap();
    world.keys.revoke(&revoked.key.id, Some(&ada())).await.unwrap();
    assert!(matches!(
        world.keys.revoke(&revoked.key.id, Some(&ada())).await,
        Err(ApiKeyError::NotFound)
    ));
    world.clock.0.fetch_add(3_600_000, Ordering::SeqCst);
    let wrong_secret = format!("cnd_{}_{}", expiring.key.id, "A".repeat(43));
    for presented in [
        revoked.secret.expose_secret().to_owned(),
        expiring.secret.expose_secret().to_owned(),
        wrong_secret,
        "cnd_000000000000_x".to_owned(),
        "cnd_garbage".to_owned(),
    ] {
        let refused = world.keys.authenticate(&presented, "c").await;
        assert!(
            matches!(refused, Err(ApiKeyError::Refused)),
            "{presented}: {refused:?}"
        );
    }
    assert!(world.keys.still_live(&revoked.key.id).await.is_err());
}

#[tokio::test]
async fn uses_and_failures_are_rate_limited() {
    let policy = KeyPolicy {
        uses_per_window: 3,
        failures_per_window: 2,
        ..KeyPolicy::default()
    };
    let world = world(policy);
    granted(&world, "os.datastore", json!({"datapackage-upload": true})).await;
    let created = world.keys.create(&ada(), upload_key(None)).await.unwrap();
    let secret = created.secret.expose_secret().to_owned();
    for _ in 0..3 {
        world.keys.authenticate(&secret, "a").await.unwrap();
    }
    let limited = world.keys.authenticate(&secret, "a").await;
    assert!(
        matches!(limited, Err(ApiKeyError::RateLimited { retry_after }) if retry_after <= Duration::from_secs(60))
    );

    for _ in 0..2 {
        assert!(matches!(
            world.keys.authenticate("cnd_bad", "b").await,
            Err(ApiKeyError::Refused)
        ));
    }
    assert!(
        matches!(
            world.keys.authenticate("cnd_bad", "b").await,
            Err(ApiKeyError::RateLimited { .. })
        ),
        "a client that failed too often waits"
    );
    world.clock.0.fetch_add(60_000, Ordering::SeqCst);
    world
        .keys
        .authenticate(&secret, "b")
        .await
        .expect("the next window");
}

#[tokio::test]
async fn names_scopes_lifetimes_and_counts_are_bounded() {
    let policy = KeyPolicy {
        max_per_user: 2,
        max_lifetime: Some(Duration::from_secs(90 * 86_400)),
        ..KeyPolicy::default()
    };
    let world = world(policy);
    granted(&world, "os.datastore", json!({"datapackage-upload": true})).await;
    let day = Duration::from_secs(86_400);
    let bad = |change: fn(&mut NewKey)| {
        let mut request = upload_key(Some(day));
        change(&mut request);
        request
    };
    type Expected = fn(&ApiKeyError) -> bool;
    let cases: Vec<(NewKey, Expected)> = vec![
        (bad(|r| r.name = " ".into()), |e| {
            matches!(e, ApiKeyError::InvalidName)
        }),
        (bad(|r| r.name = "a\nb".into()), |e| {
            matches!(e, ApiKeyError::InvalidName)
        }),
        (bad(|r| r.scope = KeyScope::new()), |e| {
            matches!(e, ApiKeyError::EmptyScope)
        }),
        (bad(|r| r.scope = scope(json!({"OS Datastore": ["x"]}))), |e| {
            matches!(e, ApiKeyError::InvalidScope(_))
        }),
        (bad(|r| r.expires_in = None), |e| {
            matches!(e, ApiKeyError::TooLong { .. })
        }),
        (
            bad(|r| r.expires_in = Some(Duration::from_secs(91 * 86_400))),
            |e| matches!(e, ApiKeyError::TooLong { .. }),
        ),
        (bad(|r| r.expires_in = Some(Duration::from_millis(500))), |e| {
            matches!(e, ApiKeyError::TooShort)
        }),
    ];
    for (request, expected) in cases {
        let name = request.name.clone();
        let refused = world.keys.create(&ada(), request).await.unwrap_err();
        assert!(expected(&refused), "{name:?}: {refused:?}");
    }
    world.keys.create(&ada(), upload_key(Some(day))).await.unwrap();
    world.keys.create(&ada(), upload_key(Some(day))).await.unwrap();
    assert!(matches!(
        world.keys.create(&ada(), upload_key(Some(day))).await,
        Err(ApiKeyError::TooMany { limit: 2 })
    ));
}
