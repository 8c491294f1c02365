//! One contract suite for the repository ports, run against every backend.

use conductor_core::repo::{JobProgress, RepoError, UsernameChange};
use conductor_core::{
    Grantee, LoadStatus, LoginState, NewLoadJob, NewUser, PackageId, PackageRecord, PermissionGrant,
    Timestamp, UserId,
};
use serde_json::json;

use crate::testing::TestDatabase;
use crate::{Database, DatabaseUrl, Repositories};

async fn migrated(db: &TestDatabase) -> Database {
    let database = Database::open(&DatabaseUrl::parse(db.url()).unwrap(), 4).unwrap();
    assert!(database.pending_migrations().await.unwrap() > 0);
    let applied = database.migrate().await.unwrap();
    assert_eq!(applied.len(), 4, "every migration of this build");
    assert_eq!(database.pending_migrations().await.unwrap(), 0);
    assert!(
        database.migrate().await.unwrap().is_empty(),
        "migrating twice applies nothing"
    );
    database
}

fn user(email: &str) -> NewUser {
    NewUser {
        idhash: UserId::from_email(email),
        provider_id: format!("google:{email}"),
        name: "Ada Lovelace".into(),
        email: email.into(),
        avatar_url: Some("https://example.test/ada.png".into()),
    }
}

async fn users(repos: &Repositories) {
    let ada = user("ada@example.test");
    assert_eq!(repos.users.get(&ada.idhash).await.unwrap(), None);

    let created = repos
        .users
        .upsert_login(&ada, Timestamp::from_millis(1_000))
        .await
        .unwrap();
    assert_eq!(created.join_date, Timestamp::from_millis(1_000));
    assert_eq!(created.username, None);
    assert_eq!(repos.users.get(&ada.idhash).await.unwrap(), Some(created.clone()));

    assert_eq!(
        repos.users.set_username(&ada.idhash, "ada").await.unwrap(),
        UsernameChange::Set
    );
    assert_eq!(
        repos.users.set_username(&ada.idhash, "other").await.unwrap(),
        UsernameChange::AlreadySet
    );

    // A second login refreshes the profile but keeps the username and the join date.
    let renamed = NewUser {
        name: "Ada King".into(),
        avatar_url: None,
        ..ada.clone()
    };
    let again = repos
        .users
        .upsert_login(&renamed, Timestamp::from_millis(9_000))
        .await
        .unwrap();
    assert_eq!(again.name, "Ada King");
    assert_eq!(again.avatar_url, None);
    assert_eq!(again.username.as_deref(), Some("ada"));
    assert_eq!(again.join_date, Timestamp::from_millis(1_000));

    let bob = user("bob@example.test");
    repos
        .users
        .upsert_login(&bob, Timestamp::from_millis(2_000))
        .await
        .unwrap();
    assert_eq!(
        repos.users.set_username(&bob.idhash, "ada").await.unwrap(),
        UsernameChange::Taken
    );
    let nobody = UserId::from_email("nobody@example.test");
    assert_eq!(
        repos.users.set_username(&nobody, "x").await.unwrap(),
        UsernameChange::NoSuchUser
    );
}

async fn permissions(repos: &Repositories) {
    // The migration seeds everyone's default.
    let seeded = repos
        .permissions
        .get(&Grantee::Everyone, "os.datastore")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        seeded.permissions,
        json!({"datapackage-upload": true}).as_object().cloned().unwrap()
    );

    let ada = Grantee::User(UserId::from_email("ada@example.test"));
    let grant = |value: serde_json::Value| PermissionGrant {
        grantee: ada.clone(),
        service: "os.datastore".into(),
        permissions: value.as_object().cloned().unwrap(),
    };
    repos
        .permissions
        .put(&grant(json!({"package-admin": true})))
        .await
        .unwrap();
    repos
        .permissions
        .put(&grant(json!({"package-admin": false, "x": true})))
        .await
        .unwrap();
    let stored = repos
        .permissions
        .get(&ada, "os.datastore")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, grant(json!({"package-admin": false, "x": true})));
    let ada_id = UserId::from_email("ada@example.test");
    let both = repos.permissions.for_user(&ada_id, "os.datastore").await.unwrap();
    assert_eq!(
        both,
        [seeded.clone(), stored.clone()],
        "everyone's first, then her own"
    );
    let bob = UserId::from_email("bob@example.test");
    assert_eq!(
        repos.permissions.for_user(&bob, "os.datastore").await.unwrap(),
        vec![seeded.clone()]
    );
    assert!(
        repos
            .permissions
            .for_user(&ada_id, "elsewhere")
            .await
            .unwrap()
            .is_empty()
    );

    let all = repos.permissions.list(None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].grantee, Grantee::Everyone, "'*' sorts first");
    assert_eq!(repos.permissions.list(Some(&ada)).await.unwrap().len(), 1);

    assert!(repos.permissions.delete(&ada, "os.datastore").await.unwrap());
    assert!(!repos.permissions.delete(&ada, "os.datastore").await.unwrap());
    assert_eq!(repos.permissions.get(&ada, "os.datastore").await.unwrap(), None);
}

fn package(id: &str, loaded: bool) -> PackageRecord {
    PackageRecord {
        id: PackageId::parse(id).unwrap(),
        model: json!({"fact_table": "t", "measures": {}, "dimensions": {}}),
        package: json!({"name": "example", "title": "Ünïcode title", "private": true}),
        origin_url: "http://127.0.0.1:8000/datastore/files/x/datapackage.json".into(),
        dataset: None,
        author: Some("Ada <ada@not.shown>".into()),
        loading_status: Some(LoadStatus::Done),
        loaded,
        last_update: Timestamp::from_millis(1_556_712_345_123),
    }
}

async fn packages(repos: &Repositories) {
    let owner = UserId::from_email("ada@example.test");
    let first = package(&format!("{owner}:example"), true);
    let second = package(&format!("{owner}:budget-2014.v2"), false);
    let other = package(
        &format!("{}:example", UserId::from_email("bob@example.test")),
        true,
    );
    for record in [&first, &second, &other] {
        repos.packages.put(record).await.unwrap();
    }
    assert_eq!(repos.packages.get(&first.id).await.unwrap(), Some(first.clone()));

    // put replaces the whole record, including clearing optional fields.
    let replaced = PackageRecord {
        author: None,
        loading_status: None,
        loaded: false,
        ..first.clone()
    };
    repos.packages.put(&replaced).await.unwrap();
    assert_eq!(repos.packages.get(&first.id).await.unwrap(), Some(replaced));

    // Pages in the database's id order, each after the last id of the one before: together every package once.
    let first_page = repos.packages.page(None, 2).await.unwrap();
    let rest = repos
        .packages
        .page(first_page.last().map(|r| &r.id), 2)
        .await
        .unwrap();
    let mut paged: Vec<String> = first_page.iter().chain(&rest).map(|r| r.id.to_string()).collect();
    paged.sort();
    let mut all: Vec<String> = [&first, &second, &other]
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    all.sort();
    assert_eq!((first_page.len(), rest.len()), (2, 1));
    assert_eq!(paged, all, "every package once");
    assert!(
        repos
            .packages
            .page(rest.last().map(|r| &r.id), 2)
            .await
            .unwrap()
            .is_empty(),
        "nothing after the last"
    );
    let mut many: Vec<_> = repos
        .packages
        .get_many(&[
            second.id.clone(),
            first.id.clone(),
            PackageId::parse(&format!("{owner}:missing")).unwrap(),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    many.sort();
    assert_eq!(
        many,
        vec![second.id.clone(), first.id.clone()],
        "existing ones only"
    );
    assert!(repos.packages.get_many(&[]).await.unwrap().is_empty());
    assert!(repos.packages.delete(&second.id).await.unwrap());
    assert!(!repos.packages.delete(&second.id).await.unwrap());
    assert_eq!(repos.packages.get(&second.id).await.unwrap(), None);
}

/// `/package/stats`'s counts: every package, the sum of `count_of_rows`, distinct country codes of either form.
async fn package_counts(repos: &Repositories) {
    let before = repos.packages.counts().await.unwrap();
    let carol = UserId::from_email("carol@example.test");
    let with = |name: &str, descriptor: serde_json::Value| PackageRecord {
        package: descriptor,
        ..package(&format!("{carol}:{name}"), true)
    };
    for record in [
        with("a", json!({"count_of_rows": 9, "countryCode": "md"})),
        with(
            "b",
            json!({"count_of_rows": 2000, "countryCode": ["MD", "gb", 7]}),
        ),
        with("c", json!({"count_of_rows": "many", "countryCode": {"x": 1}})),
        with("d", json!({"private": true, "countryCode": ["FR"]})),
    ] {
        repos.packages.put(&record).await.unwrap();
    }
    let after = repos.packages.counts().await.unwrap();
    assert_eq!(after.packages, before.packages + 4);
    assert_eq!(after.rows, before.rows + 2009);
    assert_eq!(after.countries, before.countries + 3, "MD, GB and FR");
    // A replaced record counts as it is now.
    repos
        .packages
        .put(&with("a", json!({"count_of_rows": 1})))
        .await
        .unwrap();
    let replaced = repos.packages.counts().await.unwrap();
    assert_eq!(replaced.rows, before.rows + 2001);
    assert_eq!(replaced.countries, before.countries + 3, "MD is still b's");
}

async fn load_jobs(repos: &Repositories) {
    let owner = UserId::from_email("ada@example.test");
    let job = NewLoadJob {
        package_id: PackageId::parse(&format!("{owner}:example")).unwrap(),
        datapackage_url: "http://127.0.0.1:8000/datastore/files/a/datapackage.json".into(),
        owner: owner.clone(),
    };
    let first = repos
        .load_jobs
        .enqueue(&job, Timestamp::from_millis(10))
        .await
        .unwrap();
    assert_eq!(first.status, LoadStatus::Queued);
    assert_eq!(first.heartbeat_at, None);
    let second = repos
        .load_jobs
        .enqueue(&job, Timestamp::from_millis(20))
        .await
        .unwrap();
    assert!(second.id > first.id);
    assert_eq!(
        repos
            .load_jobs
            .latest_for_url(&job.datapackage_url)
            .await
            .unwrap()
            .map(|j| j.id),
        Some(second.id)
    );
    assert_eq!(
        repos.load_jobs.latest_for_url("http://elsewhere/").await.unwrap(),
        None
    );

    let loading = JobProgress {
        status: LoadStatus::LoadingData,
        rows_loaded: 500,
        rows_total: Some(1000),
        error: None,
    };
    assert!(
        repos
            .load_jobs
            .record_progress(second.id, &loading, Timestamp::from_millis(30))
            .await
            .unwrap()
    );
    let stored = repos.load_jobs.get(second.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.rows_loaded, stored.rows_total),
        (LoadStatus::LoadingData, 500, Some(1000))
    );
    assert_eq!(stored.heartbeat_at, Some(Timestamp::from_millis(30)));
    assert_eq!(stored.created_at, Timestamp::from_millis(20));

    let failed = JobProgress {
        status: LoadStatus::Fail,
        error: Some("row 3: bad number".into()),
        ..loading.clone()
    };
    assert!(
        repos
            .load_jobs
            .record_progress(second.id, &failed, Timestamp::from_millis(40))
            .await
            .unwrap()
    );
    // A terminal job is not revived by a late worker.
    assert!(
        !repos
            .load_jobs
            .record_progress(second.id, &loading, Timestamp::from_millis(50))
            .await
            .unwrap()
    );
    let stored = repos.load_jobs.get(second.id).await.unwrap().unwrap();
    assert_eq!(stored.status, LoadStatus::Fail);
    assert_eq!(stored.error.as_deref(), Some("row 3: bad number"));
    assert_eq!(repos.load_jobs.get(i64::MAX).await.unwrap(), None);
}

async fn login_states(repos: &Repositories) {
    let state = |id: &str, expires: i64| LoginState {
        state: id.into(),
        provider: "google".into(),
        pkce_verifier: "verifier".into(),
        nonce: "nonce".into(),
        next_url: "http://127.0.0.1:8000/".into(),
        browser_binding: "binding".into(),
        expires_at: Timestamp::from_millis(expires),
    };
    repos.login_states.put(&state("live", 1_000)).await.unwrap();
    repos.login_states.put(&state("stale", 100)).await.unwrap();
    repos.login_states.put(&state("old", 50)).await.unwrap();
    assert!(matches!(
        repos.login_states.put(&state("live", 5)).await,
        Err(RepoError::Conflict(_))
    ));

    let now = Timestamp::from_millis(500);
    assert_eq!(
        repos.login_states.take("live", now).await.unwrap(),
        Some(state("live", 1_000))
    );
    assert_eq!(
        repos.login_states.take("live", now).await.unwrap(),
        None,
        "a state is redeemable once"
    );
    assert_eq!(
        repos.login_states.take("stale", now).await.unwrap(),
        None,
        "an expired state is refused"
    );
    assert_eq!(repos.login_states.take("missing", now).await.unwrap(), None);
    assert_eq!(repos.login_states.purge_expired(now).await.unwrap(), 1);
}

async fn search_outbox(repos: &Repositories) {
    let id = |d: &str| PackageId::parse(&format!("{}:{d}", UserId::from_email("ada@example.test"))).unwrap();
    repos
        .search_outbox
        .push(&id("a"), Timestamp::from_millis(1))
        .await
        .unwrap();
    repos
        .search_outbox
        .push(&id("b"), Timestamp::from_millis(2))
        .await
        .unwrap();
    let pending = repos.search_outbox.pending(10).await.unwrap();
    assert_eq!(
        pending.iter().map(|e| e.package_id.clone()).collect::<Vec<_>>(),
        [id("a"), id("b")],
        "oldest first"
    );
    repos
        .search_outbox
        .failed(pending[0].id, "index unreachable")
        .await
        .unwrap();
    assert_eq!(repos.search_outbox.pending(1).await.unwrap()[0].attempts, 1);
    repos.search_outbox.done(pending[0].id).await.unwrap();
    assert_eq!(repos.search_outbox.pending(10).await.unwrap().len(), 1);
}

async fn job_claims(repos: &Repositories) {
    let owner = UserId::from_email("claims@example.test");
    let new = |dataset: &str| NewLoadJob {
        package_id: PackageId::parse(&format!("{owner}:{dataset}")).unwrap(),
        datapackage_url: format!("http://127.0.0.1:8000/datastore/files/{dataset}/datapackage.json"),
        owner: owner.clone(),
    };
    let jobs = &repos.load_jobs;
    let a1 = jobs.enqueue(&new("a"), Timestamp::from_millis(1)).await.unwrap();
    let a2 = jobs.enqueue(&new("a"), Timestamp::from_millis(2)).await.unwrap();
    let b1 = jobs.enqueue(&new("b"), Timestamp::from_millis(3)).await.unwrap();
    let claimed = jobs.claim(Timestamp::from_millis(10)).await.unwrap().unwrap();
    assert_eq!((claimed.id, claimed.status), (a1.id, LoadStatus::Initializing));
    assert_eq!(claimed.heartbeat_at, Some(Timestamp::from_millis(10)));
    // a2 waits behind a1 (one package's jobs run in order); b1 does not.
    assert_eq!(
        jobs.claim(Timestamp::from_millis(11))
            .await
            .unwrap()
            .map(|j| j.id),
        Some(b1.id)
    );
    assert_eq!(jobs.claim(Timestamp::from_millis(12)).await.unwrap(), None);
    let done = JobProgress {
        status: LoadStatus::Done,
        rows_loaded: 1,
        rows_total: Some(1),
        error: None,
    };
    assert!(
        jobs.record_progress(a1.id, &done, Timestamp::from_millis(20))
            .await
            .unwrap()
    );
    assert_eq!(
        jobs.claim(Timestamp::from_millis(30))
            .await
            .unwrap()
            .map(|j| j.id),
        Some(a2.id)
    );

    // b1 last beat at 11, a2 at 30: only b1 is stale at 25.
    let stale = jobs
        .fail_stale(
            Timestamp::from_millis(25),
            "worker gone",
            Timestamp::from_millis(40),
        )
        .await
        .unwrap();
    assert_eq!(stale.iter().map(|j| j.id).collect::<Vec<_>>(), vec![b1.id]);
    let b1 = jobs.get(b1.id).await.unwrap().unwrap();
    assert_eq!(
        (b1.status, b1.error.as_deref()),
        (LoadStatus::Fail, Some("worker gone"))
    );
    assert!(
        jobs.record_progress(a2.id, &done, Timestamp::from_millis(50))
            .await
            .unwrap()
    );

    // Concurrent claimers never take the same job.
    for i in 0..6 {
        jobs.enqueue(&new(&format!("c{i}")), Timestamp::from_millis(60))
            .await
            .unwrap();
    }
    let claims = futures_util::future::join_all((0..8).map(|_| jobs.claim(Timestamp::from_millis(70)))).await;
    let mut ids: Vec<i64> = claims
        .into_iter()
        .filter_map(|c| c.unwrap())
        .map(|j| j.id)
        .collect();
    let claimed = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((claimed, ids.len()), (6, 6), "each of six jobs claimed once");
    for id in ids {
        assert!(
            jobs.record_progress(id, &done, Timestamp::from_millis(80))
                .await
                .unwrap()
        );
    }
}

async fn suite(db: TestDatabase) {
    let database = migrated(&db).await;
    let repos = database.repositories();
    users(repos).await;
    permissions(repos).await;
    packages(repos).await;
    package_counts(repos).await;
    job_claims(repos).await;
    load_jobs(repos).await;
    login_states(repos).await;
    search_outbox(repos).await;
    crate::contract_api_keys::api_keys(repos).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_repositories_keep_the_contract() {
    suite(TestDatabase::sqlite().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_repositories_keep_the_contract() {
    suite(TestDatabase::postgres().expect("PostgreSQL for tests")).await;
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_a_busy_timeout() {
    use diesel::prelude::*;
    let db = TestDatabase::sqlite().unwrap();
    let database = migrated(&db).await;
    drop(database);
    let path = db.url().trim_start_matches("sqlite://").to_owned();
    let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(
        mode.journal_mode, "wal",
        "WAL is persistent on the file once set by the pool"
    );
}

#[test]
fn urls_select_the_backend() {
    use crate::Backend;
    assert_eq!(
        DatabaseUrl::parse("postgresql://postgres@db/postgres")
            .unwrap()
            .backend(),
        Backend::Postgres
    );
    assert_eq!(
        DatabaseUrl::parse("sqlite://var/conductor.db").unwrap().backend(),
        Backend::Sqlite
    );
    assert_eq!(
        DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(),
        DatabaseUrl::Sqlite(std::path::PathBuf::from("/tmp/x.db"))
    );
    for bad in ["mysql://x", "sqlite://", "var/conductor.db"] {
        assert!(DatabaseUrl::parse(bad).is_err(), "{bad} accepted");
    }
    let secret = DatabaseUrl::parse("postgres://u:hunter2@db/x").unwrap();
    assert!(!format!("{secret:?}").contains("hunter2"));
}
