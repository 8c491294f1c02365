//! The API key repository's part of the contract suite (`contract.rs` runs it on every backend).

use conductor_core::repo::RepoError;
use conductor_core::{ApiKey, KeyScope, Timestamp, UserId};

use crate::Repositories;

fn key(id: &str, owner: &UserId, created: i64, expires: Option<i64>) -> ApiKey {
    let mut scope = KeyScope::new();
    scope.insert("os.datastore".into(), vec!["datapackage-upload".into()]);
    ApiKey {
        id: id.into(),
        owner: owner.clone(),
        name: format!("key {id}"),
        scope,
        secret_hash: format!("hash-of-{id}"),
        created_at: Timestamp::from_millis(created),
        expires_at: expires.map(Timestamp::from_millis),
        revoked_at: None,
        last_used_at: None,
    }
}

pub(crate) async fn api_keys(repos: &Repositories) {
    let keys = &repos.api_keys;
    let ada = UserId::from_email("ada@example.org");
    let bob = UserId::from_email("bob@example.org");
    keys.create(&key("a1", &ada, 1_000, None)).await.unwrap();
    keys.create(&key("a2", &ada, 2_000, Some(5_000))).await.unwrap();
    keys.create(&key("b1", &bob, 1_500, None)).await.unwrap();
    assert!(matches!(
        keys.create(&key("a1", &bob, 3_000, None)).await,
        Err(RepoError::Conflict(_))
    ));

    assert_eq!(
        keys.get("a2").await.unwrap(),
        Some(key("a2", &ada, 2_000, Some(5_000)))
    );
    assert_eq!(keys.get("zz").await.unwrap(), None);
    let listed: Vec<String> = keys
        .list(Some(&ada))
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, ["a2", "a1"], "newest first, one owner's");
    assert_eq!(keys.list(None).await.unwrap().len(), 3);

    let now = Timestamp::from_millis(4_000);
    assert_eq!(keys.count_live(&ada, now).await.unwrap(), 2);
    assert_eq!(
        keys.count_live(&ada, Timestamp::from_millis(5_000))
            .await
            .unwrap(),
        1,
        "a2 expired"
    );

    assert!(
        !keys.revoke("b1", Some(&ada), now).await.unwrap(),
        "not ada's key"
    );
    assert!(keys.revoke("a1", Some(&ada), now).await.unwrap());
    assert!(
        !keys.revoke("a1", Some(&ada), now).await.unwrap(),
        "already revoked"
    );
    assert!(
        keys.revoke("b1", None, now).await.unwrap(),
        "an administrator revokes anyone's"
    );
    assert_eq!(keys.get("a1").await.unwrap().unwrap().revoked_at, Some(now));
    assert_eq!(keys.count_live(&ada, now).await.unwrap(), 1);

    keys.touch("a2", Timestamp::from_millis(10_000), 60_000)
        .await
        .unwrap();
    keys.touch("a2", Timestamp::from_millis(20_000), 60_000)
        .await
        .unwrap();
    assert_eq!(
        keys.get("a2").await.unwrap().unwrap().last_used_at,
        Some(Timestamp::from_millis(10_000)),
        "a use within the minute writes nothing"
    );
    keys.touch("a2", Timestamp::from_millis(80_000), 60_000)
        .await
        .unwrap();
    assert_eq!(
        keys.get("a2").await.unwrap().unwrap().last_used_at,
        Some(Timestamp::from_millis(80_000))
    );
}
