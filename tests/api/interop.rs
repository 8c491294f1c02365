//! os-api reads what we load: its own engine, babbage 0.4.0 (`tests/interop/babbage_check.py`), queried over
//! every fixture package after Conductor loaded it over HTTP, on each backend. The test command installs babbage
//! (`ensure_babbage_peer`); without it this fails, it never skips.

use std::path::PathBuf;
use std::process::Command;

use conductor_tests::packages::{fixture, permission_token, userid_of};
use conductor_tests::{Backend, spawn_app};
use serde_json::Value;

use crate::package::{load, record};

/// The database URL as SQLAlchemy (babbage's) spells it.
pub(crate) fn sqlalchemy_url(database_url: &str) -> String {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        // Three slashes and the absolute path (which brings the fourth).
        format!("sqlite:///{path}")
    } else if let Some(rest) = database_url.strip_prefix("postgres://") {
        format!("postgresql://{rest}")
    } else {
        database_url.to_owned()
    }
}

/// Runs `babbage_check.py` over a loaded package: its Babbage `model` (as listed), the database, and the package
/// folder whose CSV the numbers are checked against; returns the check's summary, or fails with its report.
pub(crate) fn babbage_check(
    database_url: &str,
    model: &Value,
    package: &std::path::Path,
    label: &str,
) -> Value {
    let python = std::env::var_os("CONDUCTOR_TEST_BABBAGE_PYTHON")
        .expect("CONDUCTOR_TEST_BABBAGE_PYTHON: babbage's Python (./scripts/test installs it)");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/babbage_check.py");
    let work = tempfile::tempdir().unwrap();
    let model_path = work.path().join("model.json");
    std::fs::write(&model_path, model.to_string()).unwrap();
    let checked = Command::new(&python)
        .arg(&script)
        .arg("--db-url")
        .arg(sqlalchemy_url(database_url))
        .arg("--model")
        .arg(&model_path)
        .arg("--package")
        .arg(package)
        .output()
        .expect("babbage's Python runs");
    let stdout = String::from_utf8_lossy(&checked.stdout);
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(
        checked.status.success(),
        "{label}: babbage disagrees with the CSV\n{stdout}\n{stderr}"
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{label}: no summary ({e}): {stdout}"));
    assert!(summary["rows"].as_i64().unwrap_or(0) > 0, "{label}: {summary}");
    summary
}

async fn babbage_reads_every_fixture(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = permission_token(&app, "os-api@example.org").await;
    let user = app.log_in("os-api@example.org").await;
    let owner = userid_of(&token);
    for name in ["os-packager-example", "boost-moldova", "ukgov-finances-cra"] {
        let (_, _, last) = load(&app, &token, name).await;
        assert_eq!(last["status"], "done", "{backend:?} {name}: {last}");
        let descriptor: Value =
            serde_json::from_slice(&std::fs::read(fixture(name).join("datapackage.json")).unwrap()).unwrap();
        let id = format!("{owner}:{}", descriptor["name"].as_str().unwrap());
        let listed = record(&app, &user, &id)
            .await
            .expect("the loaded package is listed");
        babbage_check(
            &app.database_url,
            &listed["model"],
            &fixture(name),
            &format!("{backend:?} {name}"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn babbage_reads_every_fixture_on_postgres() {
    babbage_reads_every_fixture(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn babbage_reads_every_fixture_on_sqlite() {
    babbage_reads_every_fixture(Backend::Sqlite).await;
}

/// A record as the database holds it, the shape `registry_check.py` compares the library's answers with.
fn record_json(record: &conductor_core::PackageRecord) -> Value {
    serde_json::json!({
        "id": record.id.to_string(),
        "model": record.model,
        "package": record.package,
        "origin_url": record.origin_url,
        "dataset": record.dataset,
        "author": record.author,
        "loading_status": record.loading_status.map(|s| s.as_str()),
        "loaded": record.loaded,
        "last_update": record.last_update.as_millis(),
    })
}

/// os-api's registry library, os-package-registry 0.0.21, finds what it reads in the documents our OpenSearch
/// adapter wrote (`tests/interop/registry_check.py`: its own requests recorded, then replayed with only the
/// typed-path and `hits.total` version differences mapped, against osmem).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn os_package_registry_reads_our_documents() {
    let python = std::env::var_os("CONDUCTOR_TEST_REGISTRY_PYTHON")
        .expect("CONDUCTOR_TEST_REGISTRY_PYTHON: os-package-registry's Python (./scripts/test installs it)");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/registry_check.py");
    let osmem = conductor_search::testing::Osmem::start();
    let cluster = osmem.url().clone();
    let app = conductor_tests::spawn_app_with(Backend::Sqlite, |s| {
        s.search.backend = conductor::settings::SearchBackend::OpenSearch;
        s.search.opensearch.url = Some(cluster);
    })
    .await;
    let token = permission_token(&app, "os-api@example.org").await;
    let owner = userid_of(&token);
    let database = conductor_store::Database::open(
        &conductor_store::DatabaseUrl::parse(&app.database_url).unwrap(),
        1,
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .arg("--opensearch")
        .arg(osmem.url().as_str().trim_end_matches('/'))
        .arg("--index")
        .arg("packages");
    for name in ["os-packager-example", "boost-moldova", "ukgov-finances-cra"] {
        let (_, _, last) = load(&app, &token, name).await;
        assert_eq!(last["status"], "done", "{name}: {last}");
        let descriptor: Value =
            serde_json::from_slice(&std::fs::read(fixture(name).join("datapackage.json")).unwrap()).unwrap();
        let id =
            conductor_core::PackageId::parse(&format!("{owner}:{}", descriptor["name"].as_str().unwrap()))
                .unwrap();
        let stored = database
            .repositories()
            .packages
            .get(&id)
            .await
            .unwrap()
            .expect("the record");
        let path = work.path().join(format!("{name}.record.json"));
        std::fs::write(&path, record_json(&stored).to_string()).unwrap();
        command.arg("--record").arg(path);
    }
    let checked = command.output().expect("os-package-registry's Python runs");
    let stdout = String::from_utf8_lossy(&checked.stdout);
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(
        checked.status.success(),
        "os-package-registry does not find what it reads\n{stdout}\n{stderr}"
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no summary ({e}): {stdout}"));
    assert_eq!(summary["documents"], 3, "{summary}");
    assert_eq!(summary["differences"], 0, "{summary}");
}
