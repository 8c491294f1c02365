//! `conductor publish` as a publisher's script runs it: against a gateway on the embedded default and one on
//! PostgreSQL with the S3 datastore (s3s-fs), over HTTP only, with an API key; and in a terminal, as a person
//! sees it (tmux), its capture kept in `docs/publish-terminal.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure fails the test"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conductor_tests::packages::{fixture, query_number};
use conductor_tests::s3::S3Server;
use conductor_tests::{Backend, TestApp, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_conductor");
/// The longest one publish may take here.
const PUBLISH_LIMIT: Duration = Duration::from_secs(180);

/// The current-form fixtures, as the load tests map them, and their CSVs' row counts.
const FIXTURES: [(&str, i64); 3] = [
    ("os-packager-example", 9),
    ("boost-moldova", 2000),
    ("ukgov-finances-cra", 2000),
];

/// A user's API key for uploads, made at `/user/keys` with a dev login's user token.
async fn upload_key(app: &TestApp, email: &str) -> String {
    let user = app.log_in(email).await;
    let response = app
        .client
        .post(app.url("/user/keys"))
        .bearer_auth(&user)
        .json(&json!({"name": "publish test", "scope": {"os.datastore": ["datapackage-upload"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What one run printed: its exit code, its JSON events (with `--json`) and its stderr.
#[derive(Debug)]
struct Run {
    code: i32,
    events: Vec<Value>,
    stderr: String,
}

impl Run {
    fn of(&self, event: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == event).collect()
    }
}

/// Runs `conductor publish PATH --to APP --json [extra]` with the key in the environment (none when empty), off the runtime that
/// serves the gateway, bounded in time.
async fn publish(app: &TestApp, key: &str, path: &Path, extra: &[&str]) -> Run {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    if !key.is_empty() {
        command.env("CONDUCTOR_API_KEY", key);
    }
    command
        .arg("publish")
        .arg(path)
        .args(["--to", app.base_url.as_str(), "--json"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = tokio::task::spawn_blocking(move || {
        let child = command.spawn().expect("the binary runs");
        let pid = child.id();
        let killer = std::thread::spawn(move || {
            std::thread::park_timeout(PUBLISH_LIMIT);
            let _ = Command::new("kill").arg(pid.to_string()).status();
        });
        let output = child.wait_with_output().expect("it ran");
        killer.thread().unpark();
        output
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let events = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("a JSON line: {line}")))
        .collect();
    Run {
        code: output.status.code().unwrap_or(-1),
        events,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The fact table's rows of the package `id`, read from the registry record's model.
async fn fact_rows(app: &TestApp, id: &str) -> Result<i64, String> {
    let owner_view = format!("/search/package?id=%22{}%22", id.replace(':', "%3A"));
    let (_, found) = app.get_json(&owner_view).await;
    let fact = found[0]["model"]["fact_table"]
        .as_str()
        .ok_or_else(|| format!("{id} is not found by the public search: {found}"))?
        .to_owned();
    query_number(&app.database_url, &format!("SELECT count(*) FROM \"{fact}\""))
}

async fn every_fixture_publishes_then_republishes_without_uploading(app: &TestApp) {
    let key = upload_key(app, "publisher@example.org").await;
    for (name, rows) in FIXTURES {
        let run = publish(app, &key, &fixture(name), &["--publish"]).await;
        assert_eq!(run.code, 0, "{name}: {run:?}");
        let done = run.of("done");
        let id = done[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(done[0]["rows"], rows, "{name}: {run:?}");
        assert!(!run.of("uploaded").is_empty(), "{name}: the first run uploads");
        assert_eq!(fact_rows(app, &id).await, Ok(rows), "{name}");

        let again = publish(app, &key, &fixture(name), &["--publish"]).await;
        assert_eq!(again.code, 0, "{name}: {again:?}");
        assert!(
            again.of("uploaded").is_empty(),
            "{name}: nothing uploaded again: {again:?}"
        );
        assert_eq!(
            again.of("skipped").len(),
            run.of("uploaded").len(),
            "{name}: every file skipped"
        );
        let statuses: Vec<&Value> = again.of("status").iter().map(|e| &e["status"]).collect();
        assert_eq!(
            statuses.last(),
            Some(&&json!("done")),
            "{name}: reloaded: {again:?}"
        );
        assert_eq!(
            fact_rows(app, &id).await,
            Ok(rows),
            "{name}: the reload kept the rows"
        );
    }
}

/// A copy of the small fixture under another name with one value broken: row 3's amount (`money`).
fn broken_package(dir: &Path) -> PathBuf {
    let source = fixture("os-packager-example");
    let mut descriptor: Value =
        serde_json::from_slice(&std::fs::read(source.join("datapackage.json")).unwrap()).unwrap();
    descriptor["name"] = json!("broken-example");
    std::fs::write(dir.join("datapackage.json"), descriptor.to_string()).unwrap();
    let csv = std::fs::read_to_string(source.join("example-resource.csv")).unwrap();
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    let amount = lines[0]
        .split(',')
        .position(|h| h.trim() == "money")
        .expect("a money column");
    let mut cells: Vec<String> = lines[3].split(',').map(str::to_owned).collect();
    cells[amount] = "twelve".into();
    lines[3] = cells.join(",");
    std::fs::write(dir.join("example-resource.csv"), lines.join("\n") + "\n").unwrap();
    dir.join("datapackage.json")
}

/// Nothing of the broken package reached the datastore.
fn nothing_stored(app: &TestApp, s3: Option<&S3Server>) -> bool {
    let holds = |path: &Path| path.to_string_lossy().contains("broken-example");
    match s3 {
        Some(s3) => !s3.files().iter().any(|p| holds(p)),
        None => walk(&app.data_dir()).iter().all(|p| !holds(p)),
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

async fn a_broken_csv_fails_here_and_uploads_nothing(app: &TestApp, s3: Option<&S3Server>) {
    let key = upload_key(app, "publisher@example.org").await;
    let dir = tempfile::tempdir().unwrap();
    let run = publish(app, &key, &broken_package(dir.path()), &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let reason = run.of("failed")[0]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("row 3") && reason.contains("money"), "{reason}");
    assert!(
        run.of("checked").is_empty() && run.of("uploaded").is_empty(),
        "{run:?}"
    );
    assert!(
        nothing_stored(app, s3),
        "no file of the broken package was stored"
    );
}

async fn on(app: &TestApp, s3: Option<&S3Server>) {
    every_fixture_publishes_then_republishes_without_uploading(app).await;
    a_broken_csv_fails_here_and_uploads_nothing(app, s3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_to_the_embedded_default() {
    let app = spawn_app(Backend::Sqlite).await;
    on(&app, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_to_postgres_with_the_s3_datastore() {
    let s3 = S3Server::start().await.expect("s3s-fs");
    let app = spawn_app_with(Backend::Postgres, |s| s3.configure(s)).await;
    on(&app, Some(&s3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_is_reported_with_the_servers_reason_and_status_1() {
    // The server reads at most 10 kB per file: boost-moldova's CSV is 580 kB, which only the server knows.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.loader.max_download = bytesize::ByteSize::kb(10);
    })
    .await;
    let key = upload_key(&app, "publisher@example.org").await;
    let run = publish(&app, &key, &fixture("boost-moldova"), &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!run.of("uploaded").is_empty(), "the files were uploaded: {run:?}");
    let reason = run.of("failed")[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("the load failed: "), "{reason}");
    assert!(
        reason.contains("larger than the limit of 10000 bytes"),
        "the server's own reason: {reason}"
    );
    // The key from a file (a CI secret mounted as one) works as from the environment.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("conductor-key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let from_file = publish(
        &app,
        "",
        &fixture("os-packager-example"),
        &["--key-file", key_file.to_str().unwrap()],
    )
    .await;
    assert_eq!(from_file.code, 0, "{from_file:?}");
    assert_eq!(from_file.of("done")[0]["rows"], 9);
    // A bad key is the server's refusal too, before anything is uploaded.
    let refused = publish(&app, "cnd_0123456789ab_wrong", &fixture("boost-moldova"), &[]).await;
    assert_eq!(refused.code, 1);
    let reason = refused.of("failed")[0]["reason"].as_str().unwrap();
    assert!(reason.contains("the API key is not valid"), "{reason}");
    assert!(
        refused.stderr.is_empty() || !refused.stderr.contains("cnd_"),
        "{}",
        refused.stderr
    );
}

/// A package of `rows` generated rows (year, ministry code, amount), to give the bars something to show.
fn generated_package(dir: &Path, rows: usize) -> PathBuf {
    let descriptor = json!({
        "name": "generated-budget",
        "title": "Generated budget",
        "resources": [{"name": "budget", "path": "budget.csv", "schema": {"fields": [
            {"name": "Year", "columnType": "date:fiscal-year"},
            {"name": "Ministry", "columnType": "administrative-classification:generic:level1:code"},
            {"name": "Amount", "columnType": "value"},
        ]}}],
    });
    std::fs::write(dir.join("datapackage.json"), descriptor.to_string()).unwrap();
    let mut csv = String::from("Year,Ministry,Amount\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "{},M{:03},{}.{:02}\n",
            2000 + i % 25,
            i % 400,
            i % 100_000,
            i % 100
        ));
    }
    std::fs::write(dir.join("budget.csv"), csv).unwrap();
    dir.join("datapackage.json")
}

/// tmux on a socket of this test's own, so it never touches a user's sessions.
fn tmux(socket: &str, args: &[&str]) -> String {
    let output = Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .expect("tmux runs (./scripts/test installs it)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The row counts the load's bar shows (`  N/M rows`) in a screen.
fn rows_shown(screen: &str) -> Option<u64> {
    let line = screen.lines().find(|line| line.contains(" rows "))?;
    let before = line.split(" rows ").next()?;
    before.split_whitespace().last()?.split('/').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_shows_the_bars_advancing_and_the_final_line() {
    // Large enough that the load takes seconds however fast the loader gets, so its bar must move.
    const ROWS: u64 = 1_000_000;
    let app = spawn_app(Backend::Sqlite).await;
    let key = upload_key(&app, "publisher@example.org").await;
    let dir = tempfile::tempdir().unwrap();
    generated_package(dir.path(), ROWS as usize);
    let socket = format!("conductor-publish-test-{}", std::process::id());
    let command = format!(
        "{BINARY} publish {} --to {}; echo \"exit status $?\"; sleep 120",
        dir.path().display(),
        app.base_url
    );
    let key_variable = format!("CONDUCTOR_API_KEY={key}");
    tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "publish",
            "-x",
            "120",
            "-y",
            "12",
            "-e",
            &key_variable,
            &command,
        ],
    );
    let started = Instant::now();
    let mut frames: Vec<(Duration, String)> = Vec::new();
    loop {
        let screen = tmux(&socket, &["capture-pane", "-p", "-t", "publish"]);
        let screen = screen.trim_end().to_owned();
        if frames.last().is_none_or(|(_, last)| *last != screen) && !screen.is_empty() {
            frames.push((started.elapsed(), screen.clone()));
        }
        if screen.contains("exit status") {
            break;
        }
        assert!(started.elapsed() < PUBLISH_LIMIT, "still running: {screen}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tmux(&socket, &["kill-server"]);

    let last = &frames.last().unwrap().1;
    assert!(last.contains("exit status 0"), "{last}");
    assert!(
        last.contains("published ") && last.contains(&format!("{ROWS} rows loaded")),
        "{last}"
    );
    assert!(
        !frames.iter().any(|(_, f)| f.contains(&key)),
        "the key never shows"
    );
    // The load's bar advanced: it showed a count part of the way, then rising counts up to all the rows. (How
    // many counts in between depends on how fast the loader is, which is not this test's business.)
    let counts: Vec<u64> = frames.iter().filter_map(|(_, f)| rows_shown(f)).collect();
    assert!(
        counts.iter().any(|&n| n > 0 && n < ROWS)
            && counts.windows(2).all(|pair| pair[0] <= pair[1])
            && counts.last() == Some(&ROWS),
        "the load's bar should advance, saw {counts:?}"
    );
    assert!(
        frames.iter().any(|(_, f)| f.contains("budget.csv")),
        "the upload's bar was shown"
    );

    // A few frames from start to end, as a person watching saw them.
    let picked: Vec<&(Duration, String)> = {
        let step = (frames.len() / 6).max(1);
        let mut picked: Vec<_> = frames.iter().step_by(step).collect();
        if picked.last().map(|(_, f)| f) != Some(last) {
            picked.push(frames.last().unwrap());
        }
        picked
    };
    let mut capture = String::from(
        "# `conductor publish` in a terminal\n\nCaptured by `bin/conductor/tests/publish.rs` \
         (`the_terminal_shows_the_bars_advancing_and_the_final_line`): a 1,000,000-row package published to a \
         gateway on the embedded default, the screen read with `tmux capture-pane` while it ran. The user \
         id and port differ from run to run.\n",
    );
    for (at, frame) in picked {
        let frame = frame.replace(&app.base_url.to_string(), "http://127.0.0.1:8000/");
        capture.push_str(&format!(
            "\n## at {:.1} s\n\n```text\n{frame}\n```\n",
            at.as_secs_f64()
        ));
    }
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/publish-terminal.md");
    std::fs::write(docs, capture).unwrap();
}

/// `conductor keys list|revoke` on the gateway's own database, as an administrator runs them on the server.
fn keys_command(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CONDUCTOR__DATA_DIR", app.data_dir())
        .env("CONDUCTOR__DATABASE__URL", &app.database_url)
        .current_dir(app.data_dir())
        .arg("keys")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_list_and_revoke_keys_from_the_command_line() {
    let app = spawn_app(Backend::Sqlite).await;
    let key = upload_key(&app, "publisher@example.org").await;
    let id = key.split('_').nth(1).unwrap().to_owned();
    // The commands block: off the runtime's worker, so the gateway keeps serving meanwhile.
    let (code, stdout, stderr) =
        tokio::task::block_in_place(|| keys_command(&app, &["list", "--user", "publisher@example.org"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with(&format!("{id}\t")), "{stdout}");
    assert!(
        stdout.contains("os.datastore:datapackage-upload") && stdout.trim_end().ends_with("live"),
        "{stdout}"
    );
    assert!(!stdout.contains(&key), "no secret listed");
    let (code, _, stderr) = tokio::task::block_in_place(|| keys_command(&app, &["revoke", &id]));
    assert_eq!(code, 0, "{stderr}");
    let status = app
        .client
        .get(app.url("/user/check"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked from the command line, refused at once"
    );
    let (code, _, stderr) = tokio::task::block_in_place(|| keys_command(&app, &["revoke", &id]));
    assert_eq!(code, 1);
    assert!(stderr.contains("no live API key"), "{stderr}");
    let (_, stdout, _) = tokio::task::block_in_place(|| keys_command(&app, &["list"]));
    assert!(stdout.contains("\trevoked "), "{stdout}");
}
