//! `conductor registry import` as a deployer moving over runs it: a dump of the original's registry into each
//! database, seen by search, `/package/status` and `/user/check`; run twice, nothing changes; and `serve` refuses
//! a cluster whose alias points at an index it did not make, leaving that index as it was.

use serde_json::{Value, json};

use super::{Served, TestDatabase, conductor, free_port, output, wait_for};

const ADA: &str = "ada@example.test";

/// The original's documents (reference §1.1), as an elasticdump of its `packages` and `users` indexes gives them,
/// plus one permissions row and one package with a legacy (e-mail) owner, which cannot be imported.
fn dump() -> (String, String, String) {
    let ada = conductor_core::UserId::from_email(ADA).to_string();
    let package = |name: &str, private: bool| {
        let id = format!("{ada}:{name}");
        json!({"_index": "packages-0", "_type": "package", "_id": id, "_source": {
            "id": id,
            "model": {"fact_table": format!("{ada}0123456789abcdef"), "measures": {}, "dimensions": {}},
            "package": {"name": name, "title": format!("Budget {name}"), "owner": ada, "private": private,
                        "countryCode": "MD", "count_of_rows": 12},
            "origin_url": format!("http://bucket.example/{ada}/{name}/final/datapackage.json"),
            "dataset": null, "author": null, "loading_status": "done", "loaded": true,
            "last_update": 1556712345.123,
        }})
    };
    let lines = [
        package("public-budget", false),
        package("private-budget", true),
        json!({"_index": "users", "_type": "user_profile", "_id": ada, "_source": {
            "id": "google:1234", "name": "Ada Lovelace", "email": ADA, "avatar_url": "https://a.example/ada.png",
            "idhash": ada, "username": "ada", "join_date": "2017-05-04T12:34:56.123456",
        }}),
        json!({"userid": ada, "service": "os.datastore", "permissions": {"datapackage-upload": true, "package-admin": true}}),
        json!({"_index": "packages-0", "_type": "package", "_id": "example@example.com:boost-moldova",
               "_source": {"id": "example@example.com:boost-moldova", "package": {}, "origin_url": ""}}),
    ];
    let text = lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    let origin = format!("http://bucket.example/{ada}/public-budget/final/datapackage.json");
    (text, ada, origin)
}

async fn imports_into(database: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let (text, ada, origin) = dump();
    std::fs::write(dir.path().join("registry.jsonl"), &text).unwrap();
    let import = || {
        output(
            conductor(dir.path())
                .args(["registry", "import", "--dump", "registry.jsonl"])
                .env("CONDUCTOR__DATABASE__URL", database.url()),
        )
    };
    let (code, dry, _) = output(
        conductor(dir.path())
            .args(["registry", "import", "--dump", "registry.jsonl", "--dry-run"])
            .env("CONDUCTOR__DATABASE__URL", database.url()),
    );
    assert_eq!(code, 0);
    assert_eq!(dry.matches(": imported").count(), 4, "{dry}");
    let (code, first, stderr) = import();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        first.matches(": imported").count(),
        4,
        "a dry run writes nothing: {first}"
    );
    assert!(
        first.contains("package example@example.com:boost-moldova: refused:"),
        "{first}"
    );
    let (code, second, stderr) = import();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(second.matches(": imported").count(), 0, "{second}");
    assert_eq!(second.matches("already here").count(), 4, "{second}");

    let port = free_port();
    let _served = Served(
        conductor(dir.path())
            .env("CONDUCTOR__DATABASE__URL", database.url())
            .env("CONDUCTOR__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("CONDUCTOR__SERVER__BASE_URL", format!("http://127.0.0.1:{port}/"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{base}/readyz"), 200).await;
    let get = |path: String| {
        let url = format!("{base}{path}");
        async move {
            let response = reqwest::get(url).await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (_, anonymous) = get(format!("/search/package?package.owner=%22{ada}%22")).await;
    let names: Vec<&str> = anonymous
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["package"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["public-budget"], "the private one stays private");
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("datapackage", &origin)
        .finish();
    let (status, job) = get(format!("/package/status?{query}")).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("done")), "{job}");
    let (_, stats) = get("/package/stats".to_owned()).await;
    assert_eq!(
        stats,
        json!({"num_packages": 2, "num_records": 24, "num_countries": 1})
    );

    let (code, token, stderr) = output(
        conductor(dir.path())
            .args(["token", "mint", "--email", ADA])
            .env("CONDUCTOR__DATABASE__URL", database.url())
            // The token's issuer is the base URL the gateway checks.
            .env("CONDUCTOR__SERVER__BASE_URL", format!("http://127.0.0.1:{port}/")),
    );
    assert_eq!(code, 0, "{stderr}");
    let (_, check) = get(format!("/user/check?jwt={}", token.trim())).await;
    assert_eq!(check["profile"]["idhash"], ada.as_str(), "{check}");
    assert_eq!(
        check["profile"]["username"], "ada",
        "the imported username is kept"
    );
    let (_, mine) = get(format!(
        "/search/package?jwt={}&package.owner=%22{ada}%22",
        token.trim()
    ))
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 2, "its owner sees both: {mine}");
}

#[tokio::test]
async fn a_dump_of_the_original_registry_imports_into_sqlite() {
    imports_into(TestDatabase::sqlite().unwrap()).await;
}

#[tokio::test]
async fn a_dump_of_the_original_registry_imports_into_postgres() {
    imports_into(TestDatabase::postgres().expect("PostgreSQL for tests")).await;
}

#[tokio::test]
async fn serve_refuses_an_alias_on_an_index_it_did_not_make() {
    let osmem = conductor_search::testing::Osmem::start();
    let cluster = osmem.url().as_str().trim_end_matches('/').to_owned();
    let client = reqwest::Client::new();
    // The original's layout: an index packages-0 behind the alias packages, one document in it.
    let created = client
        .put(format!("{cluster}/packages-0"))
        .json(&json!({"aliases": {"packages": {}}}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.text().await.unwrap());
    let (dump, ada, _) = dump();
    let original: Value = serde_json::from_str(dump.lines().next().unwrap()).unwrap();
    let id = original["_id"].as_str().unwrap().to_owned();
    let indexed = client
        .put(format!("{cluster}/packages-0/_doc/{id}?refresh=true"))
        .json(&original["_source"])
        .send()
        .await
        .unwrap();
    assert!(indexed.status().is_success());

    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = output(
        conductor(dir.path())
            .env("OS_ELASTICSEARCH_ADDRESS", &cluster)
            .env("CONDUCTOR__SERVER__BIND", format!("127.0.0.1:{}", free_port())),
    );
    assert_ne!(code, 0, "serve started over a foreign index: {stderr}");
    assert!(
        stderr.contains("packages-0") && stderr.contains("registry import"),
        "{stderr}"
    );
    let alias: Value = client
        .get(format!("{cluster}/_alias/packages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        alias.get("packages-0").is_some(),
        "the alias still points there: {alias}"
    );
    let kept: Value = client
        .get(format!("{cluster}/packages-0/_doc/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kept["found"], true, "the document is still there: {kept}");

    // What the message says to do: import from the cluster, then serve on an alias of Conductor's own.
    let (code, imported, stderr) = output(conductor(dir.path()).args([
        "registry",
        "import",
        "--from-cluster",
        &cluster,
        "--index",
        "packages",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(imported.trim(), format!("package {id}: imported"), "{stderr}");
    let port = free_port();
    let _served = Served(
        conductor(dir.path())
            .env("OS_ELASTICSEARCH_ADDRESS", &cluster)
            .env("OS_ES_PACKAGES_INDEX_NAME", "conductor-packages")
            .env("CONDUCTOR__SERVER__BIND", format!("127.0.0.1:{port}"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&format!("http://127.0.0.1:{port}/readyz"), 200).await;
    let found: Value = reqwest::get(format!(
        "http://127.0.0.1:{port}/search/package?package.owner=%22{ada}%22"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
}
