//! The `conductor` binary as a deployer runs it: start-up, configuration errors, `config show`, `migrate`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure fails the test"
)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use conductor_store::testing::TestDatabase;

const BINARY: &str = env!("CARGO_BIN_EXE_conductor");

/// The binary with a clean environment (no CONDUCTOR_* or OS_* of the caller's), run in `dir`.
fn conductor(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir);
    command
}

fn output(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the binary runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into(),
        String::from_utf8_lossy(&stderr).into(),
    )
}

/// A served process, killed when dropped.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GETs `url` until it answers `want` (or gives up after 30 s); returns the last body.
async fn wait_for(url: &str, want: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(url).await
            && response.status().as_u16() == want
        {
            return response.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "{url} never answered {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn serves_on_the_embedded_default_with_data_dir_and_bind_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _served = Served(
        conductor(dir.path())
            .env("CONDUCTOR__DATA_DIR", dir.path().join("elsewhere"))
            .env("CONDUCTOR__SERVER__BIND", format!("127.0.0.1:{port}"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        wait_for(&format!("{base}/healthz"), 200).await,
        r#"{"status":"ok"}"#
    );
    wait_for(&format!("{base}/readyz"), 200).await;
    assert!(
        dir.path().join("elsewhere/conductor.db").is_file(),
        "SQLite created under CONDUCTOR__DATA_DIR"
    );
    assert!(
        !dir.path().join("var").exists(),
        "nothing under the default data_dir"
    );
}

#[tokio::test]
async fn the_original_engine_variable_runs_it_on_postgres() {
    let database = TestDatabase::postgres().expect("PostgreSQL for tests");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _served = Served(
        conductor(dir.path())
            .env("OS_CONDUCTOR_ENGINE", database.url())
            .env("CONDUCTOR__SERVER__BIND", format!("127.0.0.1:{port}"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&format!("http://127.0.0.1:{port}/readyz"), 200).await;
    assert!(
        !dir.path().join("var/conductor.db").exists(),
        "no SQLite file when PostgreSQL is configured"
    );
}

#[test]
fn unknown_keys_and_malformed_values_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    // (config/local.toml, an environment variable, what the message must name)
    let cases: [(&str, (&str, &str), &[&str]); 4] = [
        (
            "[server]\nbindd = '127.0.0.1:1'\n",
            ("", ""),
            &["config/local.toml", "unknown key `server.bindd`"],
        ),
        (
            "[database]\npool_size = 'many'\n",
            ("", ""),
            &["config/local.toml", "database.pool_size"],
        ),
        (
            "",
            ("CONDUCTOR__DATABASE__POOLSIZE", "4"),
            &["CONDUCTOR__", "unknown key `database.poolsize`"],
        ),
        (
            "",
            ("CONDUCTOR__SERVER__BIND", "localhost"),
            &["CONDUCTOR__", "server.bind"],
        ),
    ];
    for (file, (var, value), expected) in cases {
        std::fs::write(dir.path().join("config/local.toml"), file).unwrap();
        let mut command = conductor(dir.path());
        if !var.is_empty() {
            command.env(var, value);
        }
        let (code, _, stderr) = output(&mut command);
        assert_eq!(code, 2, "{stderr}");
        for needle in expected {
            assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
        }
        assert!(!dir.path().join("var").exists(), "nothing started");
    }
}

#[test]
fn config_show_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = output(
        conductor(dir.path())
            .args(["config", "show"])
            .env(
                "OS_CONDUCTOR_ENGINE",
                "postgresql://conductor:hunter2@db.internal/os",
            )
            .env("CONDUCTOR__SERVER__BASE_URL", "https://openspending.example"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(r#"url = "postgresql://conductor:[REDACTED]@db.internal/os""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"base_url = "https://openspending.example/""#),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"));
}

#[test]
fn migrate_applies_the_schema_once() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = output(conductor(dir.path()).arg("migrate"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("applied 1 migration(s) to the sqlite database"),
        "{stderr}"
    );
    let (code, _, stderr) = output(conductor(dir.path()).arg("migrate"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("up to date"), "{stderr}");
    assert!(dir.path().join("var/conductor.db").is_file());
}
