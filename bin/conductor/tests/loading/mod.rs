//! Loading as a deployer runs it: `conductor package load|remove`, and a loading process killed mid-stream.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use conductor_core::{LoadStatus, PackageId, UserId};
use conductor_store::testing::TestDatabase;
use conductor_store::{Database, DatabaseUrl};
use serde_json::json;

use crate::slow_source::slow_source;

const BINARY: &str = env!("CARGO_BIN_EXE_conductor");

fn conductor(dir: &Path, database_url: &str, config: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CONDUCTOR__DATABASE__URL", database_url)
        .env("CONDUCTOR_CONFIG", config)
        .current_dir(dir);
    command
}

/// A package named `generated` whose CSV is `csv_url` (relative to the descriptor, or absolute).
fn write_package(dir: &Path, csv_url: &str, rows: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let descriptor = json!({
        "name": "generated",
        "resources": [{"name": "data", "path": csv_url, "schema": {"fields": [
            {"name": "year", "columnType": "date:fiscal-year"},
            {"name": "amount", "columnType": "value"},
        ]}}],
    });
    std::fs::write(dir.join("datapackage.json"), descriptor.to_string()).unwrap();
    let mut csv = String::from("year,amount\n");
    for i in 0..rows {
        csv.push_str(&format!("{},{i}\n", 2000 + i % 5));
    }
    std::fs::write(dir.join("data.csv"), csv).unwrap();
}

fn fact_table(owner: &UserId) -> String {
    conductor_loader::fact_table_name(owner, &conductor_core::DatasetName::parse("generated").unwrap())
}

fn warehouse(database_url: &str) -> Arc<dyn conductor_loader::Warehouse> {
    Database::open(&DatabaseUrl::parse(database_url).unwrap(), 1)
        .unwrap()
        .warehouse()
}

#[test]
fn package_load_and_remove_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::sqlite().unwrap();
    let config = dir.path().join("conductor.toml");
    std::fs::write(&config, "").unwrap();
    write_package(&dir.path().join("pkg"), "data.csv", 25);
    let run = |args: &[&str]| {
        let out = conductor(dir.path(), database.url(), &config)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["package", "load", "pkg", "--owner", "ada@example.org"]);
    assert_eq!(code, Some(0), "{stderr}");
    let owner = UserId::from_email("ada@example.org");
    assert!(
        stderr.contains(&format!("loaded 25 rows into {owner}:generated")),
        "{stderr}"
    );
    let warehouse = warehouse(database.url());
    assert_eq!(warehouse.count_rows(&fact_table(&owner)).unwrap(), 25);

    // A file outside the package's folder is refused.
    write_package(&dir.path().join("escape"), "../pkg/data.csv", 1);
    let (code, stderr) = run(&[
        "package",
        "load",
        "escape/datapackage.json",
        "--owner",
        owner.as_str(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("only http and https"), "{stderr}");

    let (code, stderr) = run(&["package", "remove", &format!("{owner}:generated")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        warehouse
            .tables_with_prefix(&fact_table(&owner))
            .unwrap()
            .is_empty()
    );
    let (code, stderr) = run(&["package", "remove", &format!("{owner}:generated")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no such package"), "{stderr}");
    let (code, _) = run(&["package", "load", "pkg", "--owner", "not-an-owner"]);
    assert_eq!(code, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_killed_mid_stream_fails_and_leaves_the_old_data() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::postgres().unwrap();
    let (port, sent) = slow_source(None);
    let config = dir.path().join("conductor.toml");
    std::fs::write(
        &config,
        format!(
            "[loader]\nheartbeat_timeout = \"2s\"\nfetch_allowlist = [\"http://127.0.0.1:{port}/\"]\n\
             [server]\nbind = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let owner = UserId::from_email("ada@example.org");
    let fact = fact_table(&owner);

    // The current data: 30 rows.
    write_package(&dir.path().join("v1"), "data.csv", 30);
    let status = conductor(dir.path(), database.url(), &config)
        .args(["package", "load", "v1", "--owner", owner.as_str()])
        .status()
        .unwrap();
    assert!(status.success());
    let warehouse = warehouse(database.url());
    // The postgres crate runs a runtime of its own, which cannot start on this test's executor threads.

    assert_eq!(
        tokio::task::block_in_place(|| warehouse.count_rows(&fact)).unwrap(),
        30
    );
    // The rows went in frozen (COPY FREEZE): every page is all-visible from the start, so os-api's first reads
    // and autovacuum have nothing to write. ANALYZE copies the visibility map's count into pg_class. The key's
    // leaves are full (fillfactor 100), under the key's name after the swap.
    let visible = Command::new("psql")
        .args([
            database.url(),
            "-qtAc",
            &format!(
                "ANALYZE \"{fact}\"; SELECT relpages > 0 AND relallvisible = relpages FROM pg_class \
                 WHERE relname = '{fact}'; SELECT reloptions FROM pg_class WHERE relname = '{fact}_pkey'"
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&visible.stdout).trim(),
        "t\n{fillfactor=100}",
        "{}",
        String::from_utf8_lossy(&visible.stderr)
    );

    // A reload whose CSV arrives slowly; the process is killed while it streams.
    write_package(
        &dir.path().join("v2"),
        &format!("http://127.0.0.1:{port}/data.csv"),
        0,
    );
    let mut child = conductor(dir.path(), database.url(), &config)
        .args(["package", "load", "v2", "--owner", owner.as_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent.load(Ordering::Relaxed) < 20 {
        assert!(Instant::now() < deadline, "the slow CSV was never read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The staging tables are created in the COPY's own transaction, so only the server sees it streaming.
    let copying = Command::new("psql")
        .args([
            database.url(),
            "-tAc",
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' \
             AND query LIKE 'COPY %\\_\\_new%'",
        ])
        .output()
        .unwrap();
    let copying = String::from_utf8_lossy(&copying.stdout);
    assert!(
        copying.contains(&format!("{fact}__new")),
        "it was streaming into the staging tables: {copying:?}"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Start it again: the replica's sweep fails the job whose heartbeat stopped and drops its staging tables.
    let mut serving = conductor(dir.path(), database.url(), &config)
        .args(["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let database_handle = Database::open(&DatabaseUrl::parse(database.url()).unwrap(), 1).unwrap();
    let jobs = database_handle.repositories().load_jobs.clone();
    let url =
        url::Url::from_file_path(std::fs::canonicalize(dir.path().join("v2/datapackage.json")).unwrap())
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job = jobs
            .latest_for_url(url.as_str())
            .await
            .unwrap()
            .expect("the killed job");
        if job.status.is_terminal() {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the killed job is still {}",
            job.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job.status, LoadStatus::Fail);
    assert!(job.error.as_deref().unwrap().contains("heartbeat"), "{job:?}");
    // The sweep fails the job, then drops any staging tables left (none here: the killed connection's
    // transaction took them with it): wait for the second step too.
    let current = vec![fact.clone(), format!("{fact}_0")];
    loop {
        let tables = tokio::task::block_in_place(|| warehouse.tables_with_prefix(&fact)).unwrap();
        if tables == current {
            break;
        }
        assert!(Instant::now() < deadline, "staging tables remain: {tables:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = serving.kill();
    let _ = serving.wait();
    assert_eq!(
        tokio::task::block_in_place(|| warehouse.count_rows(&fact)).unwrap(),
        30,
        "the old data is intact"
    );
    let record = database_handle
        .repositories()
        .packages
        .get(&PackageId::new(
            owner.clone(),
            conductor_core::DatasetName::parse("generated").unwrap(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.package["count_of_rows"], 30);
}
