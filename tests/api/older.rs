//! The catalogue's older packages, uploaded as they were written (`tests/fixtures/packages/older`, the real
//! fixtures unchanged): pre-2018 `osType` and Fiscal Data Package 0.3 `model` descriptors load on each backend
//! with the CSV's rows, keep the package's own model, and babbage (os-api's engine) answers the CSV's totals and
//! drilldowns over them; the normalised package with its dimension in another resource is refused, naming the
//! resource and the key, and the package it would have replaced keeps its data.

use std::path::Path;

use conductor_loader::{Vocabulary, translate};
use conductor_tests::packages::{fixture, permission_token, query_number, userid_of};
use conductor_tests::{Backend, TestApp, spawn_app};
use serde_json::Value;

use crate::interop::babbage_check;
use crate::package::{load, record};

/// Each older fixture, its CSV's row count (counted with Python's csv module) and one dimension its own model
/// names, which a model inferred from types would not have.
const OLDER: [(&str, i64, &str); 3] = [
    ("boost-moldova", 2000, "other"),
    ("ukgov-finances-cra", 2000, "cofog1"),
    ("fdp-labels-and-hierarchies", 1, "classification"),
];

fn descriptor(folder: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(folder.join("datapackage.json")).unwrap()).unwrap()
}

/// A folder with the package's translated descriptor beside (links to) its data, for the checker, which reads
/// the current form.
fn translated_folder(folder: &Path) -> tempfile::TempDir {
    let current = translate(&Vocabulary::embedded().unwrap(), &descriptor(folder))
        .unwrap()
        .descriptor;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("datapackage.json"), current.to_string()).unwrap();
    for resource in current["resources"].as_array().unwrap() {
        let path = resource["path"].as_str().unwrap();
        let target = work.path().join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(std::fs::canonicalize(folder.join(path)).unwrap(), target).unwrap();
    }
    work
}

async fn loaded(app: &TestApp, user: &str, owner: &str, folder: &Path) -> Value {
    let id = format!("{owner}:{}", descriptor(folder)["name"].as_str().unwrap());
    record(app, user, &id)
        .await
        .unwrap_or_else(|| panic!("{id} is in the registry"))
}

async fn older_packages_load_as_they_were_written(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = "archivist@example.org";
    let token = permission_token(&app, email).await;
    let user = app.log_in(email).await;
    let owner = userid_of(&token);
    let db = &app.database_url;
    for (name, rows, own_dimension) in OLDER {
        let folder = fixture(&format!("older/{name}"));
        let (_, _, last) = load(&app, &token, &format!("older/{name}")).await;
        assert_eq!(last["status"], "done", "{backend:?} {name}: {last}");
        assert_eq!(last["progress"], rows, "{name}");
        let record = loaded(&app, &user, &owner, &folder).await;
        let fact = record["model"]["fact_table"].as_str().unwrap();
        assert_eq!(
            query_number(db, &format!("SELECT count(*) FROM \"{fact}\"")),
            Ok(rows),
            "{backend:?} {name}: the fact table holds the CSV's rows"
        );
        // The registry keeps the descriptor as uploaded, with the model the load used: the package's own.
        let uploaded = descriptor(&folder);
        assert_eq!(
            record["package"]["resources"], uploaded["resources"],
            "{name}: the fields as uploaded"
        );
        assert!(
            record["package"]["model"]["dimensions"][own_dimension].is_object(),
            "{name}: {}",
            record["package"]["model"]
        );
        let translated = translated_folder(&folder);
        babbage_check(
            db,
            &record["model"],
            translated.path(),
            &format!("{backend:?} older {name}"),
        );
    }

    // The normalised package has the labels package's name: refused, and the loaded one keeps its data.
    let (_, _, last) = load(&app, &token, "older/fdp-entities-normalized").await;
    assert_eq!(last["status"], "fail", "{last}");
    let error = last["error"].as_str().unwrap();
    assert!(
        error.contains(
            "dimension \"payee\" reads from resource \"entities\" (the foreign key payee → entities.id joins it to \
             \"budget\")"
        ) && error.contains("join \"entities\" into \"budget\""),
        "{error}"
    );
    let kept = loaded(&app, &user, &owner, &fixture("older/fdp-labels-and-hierarchies")).await;
    let fact = kept["model"]["fact_table"].as_str().unwrap();
    assert_eq!(
        query_number(db, &format!("SELECT count(*) FROM \"{fact}\"")),
        Ok(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_packages_load_as_they_were_written_on_sqlite() {
    older_packages_load_as_they_were_written(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_packages_load_as_they_were_written_on_postgres() {
    older_packages_load_as_they_were_written(Backend::Postgres).await;
}
