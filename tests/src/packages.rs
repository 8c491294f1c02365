//! Loading packages through the gateway as os-packager does (sign, PUT, `/package/upload`, poll), and reading the
//! tables a load made, on either backend.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::TestApp;

/// The columnType packages under `tests/fixtures/packages` (see its `make.py`).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/packages")
        .join(name)
}

/// A permission token for `os.datastore`, after a dev login of `email`.
pub async fn permission_token(app: &TestApp, email: &str) -> String {
    let user = app.log_in(email).await;
    let (_, body) = app
        .get_json(&format!("/user/authorize?jwt={user}&service=os.datastore"))
        .await;
    body["token"].as_str().expect("a permission token").to_owned()
}

/// The owner id inside a permission token (its `userid` claim).
pub fn userid_of(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    claims["userid"].as_str().expect("a userid").to_owned()
}

/// Uploads `files` (path in the package → bytes) to the datastore under `dataset` and returns the URL of
/// `datapackage.json`.
pub async fn upload_files(app: &TestApp, token: &str, dataset: &str, files: &[(String, Vec<u8>)]) -> String {
    let urls = upload_files_as(app, token, dataset, files, "application/octet-stream").await;
    urls.get("datapackage.json")
        .cloned()
        .expect("a datapackage.json among the files")
}

/// Uploads `files` signed as `content_type` and returns the URL of each (without the signature).
pub async fn upload_files_as(
    app: &TestApp,
    token: &str,
    dataset: &str,
    files: &[(String, Vec<u8>)],
    content_type: &str,
) -> std::collections::BTreeMap<String, String> {
    let owner = userid_of(token);
    let filedata: serde_json::Map<String, Value> = files
        .iter()
        .map(|(path, bytes)| {
            let md5 = STANDARD.encode(Md5::digest(bytes));
            let spec = json!({"md5": md5, "name": path, "length": bytes.len(), "type": content_type});
            (path.clone(), spec)
        })
        .collect();
    let body =
        json!({"metadata": {"owner": owner, "name": dataset, "author": dataset}, "filedata": filedata});
    let response = app
        .client
        .post(app.url("/datastore/"))
        .header("Auth-Token", token)
        .json(&body)
        .send()
        .await
        .expect("/datastore/ answered");
    assert_eq!(response.status(), StatusCode::OK, "signing the upload");
    let signed: Value = response.json().await.expect("JSON");
    let mut urls = std::collections::BTreeMap::new();
    for (path, bytes) in files {
        let file = &signed["filedata"][path];
        let mut url = url::Url::parse(file["upload_url"].as_str().expect("an upload_url")).expect("a URL");
        urls.insert(path.clone(), url.to_string());
        for (name, values) in file["upload_query"].as_object().expect("upload_query") {
            url.query_pairs_mut()
                .append_pair(name, values[0].as_str().expect("a value"));
        }
        let status = app
            .client
            .put(url)
            .header("Content-MD5", STANDARD.encode(Md5::digest(bytes)))
            .header("Content-Type", content_type)
            .body(bytes.clone())
            .send()
            .await
            .expect("PUT answered")
            .status();
        assert_eq!(status, StatusCode::OK, "PUT {path}");
    }
    urls
}

/// Every file of a fixture package, by its path inside the package.
pub fn package_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("a fixture dir") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .expect("inside")
                    .to_string_lossy()
                    .into_owned();
                out.push((relative, std::fs::read(&path).expect("a fixture file")));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
}

/// `POST /package/upload` as os-packager sends it (both parameters in the query).
pub async fn start_load(app: &TestApp, token: &str, datapackage: &str) -> (StatusCode, Value) {
    let url = format!(
        "/package/upload?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("jwt", token)
            .append_pair("datapackage", datapackage)
            .finish()
    );
    app.post_form(&url, &[]).await
}

/// Polls `/package/status` until `done` or `fail` (or `within` passes) and returns every distinct status seen, in
/// order, and the last body.
pub async fn wait_for_load(app: &TestApp, datapackage: &str, within: Duration) -> (Vec<String>, Value) {
    let path = format!(
        "/package/status?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("datapackage", datapackage)
            .finish()
    );
    let deadline = Instant::now() + within;
    let mut seen: Vec<String> = Vec::new();
    loop {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, StatusCode::OK, "status of {datapackage}: {body}");
        let current = body["status"].as_str().expect("a status").to_owned();
        if seen.last() != Some(&current) {
            seen.push(current.clone());
        }
        if current == "done" || current == "fail" {
            return (seen, body);
        }
        assert!(
            Instant::now() < deadline,
            "still {current} after {within:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status codes in DESIGN §7's order.
pub const STATUS_ORDER: [&str; 12] = [
    "queued",
    "initializing",
    "loading-datapackage",
    "validating-datapackage",
    "loading-resource",
    "creating-table",
    "loading-data-ready",
    "loading-data",
    "creating-babbage-model",
    "deleting-table",
    "saving-metadata",
    "done",
];

/// Whether `seen` follows DESIGN §7's order (any subsequence, ending in `end`).
pub fn in_status_order(seen: &[String], end: &str) -> bool {
    let mut position = 0;
    for status in seen {
        if status == "fail" {
            return end == "fail";
        }
        match STATUS_ORDER[position..].iter().position(|s| s == status) {
            Some(i) => position += i,
            None => return false,
        }
    }
    seen.last().map(String::as_str) == Some(end)
}

/// One number a query returns (`SELECT count(*) ...`), on whichever backend `database_url` names.
pub fn query_number(database_url: &str, sql: &str) -> Result<i64, String> {
    // The postgres crate runs a runtime of its own, which cannot start inside a test's.
    off_runtime(|| query_number_now(database_url, sql))
}

/// Runs `sql` (statements separated by `;`) on whichever backend `database_url` names: a test's way to plant a
/// fault in the real database, such as a trigger that refuses a write.
pub fn execute_sql(database_url: &str, sql: &str) -> Result<(), String> {
    off_runtime(|| match connect(database_url)? {
        // The server's own message, not the crate's bare "db error".
        TestConnection::Postgres(mut client) => {
            client.batch_execute(sql).map_err(|e| match e.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => e.to_string(),
            })
        }
        TestConnection::Sqlite(mut conn) => {
            diesel::connection::SimpleConnection::batch_execute(&mut conn, sql).map_err(|e| e.to_string())
        }
    })
}

/// Runs blocking database work on a thread of its own.
fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(work).join().expect("the query thread"))
}

/// A connection of the test's own to the database `database_url` names, beside the gateway's.
enum TestConnection {
    Postgres(Box<postgres::Client>),
    Sqlite(diesel::sqlite::SqliteConnection),
}

fn connect(database_url: &str) -> Result<TestConnection, String> {
    if database_url.starts_with("postgres") {
        let client = postgres::Client::connect(database_url, postgres::NoTls).map_err(|e| e.to_string())?;
        Ok(TestConnection::Postgres(Box::new(client)))
    } else {
        use diesel::connection::{Connection, SimpleConnection};
        let path = database_url.trim_start_matches("sqlite://");
        let mut conn = diesel::sqlite::SqliteConnection::establish(path).map_err(|e| e.to_string())?;
        // The gateway may be writing: wait for its lock rather than fail.
        conn.batch_execute("PRAGMA busy_timeout = 5000")
            .map_err(|e| e.to_string())?;
        Ok(TestConnection::Sqlite(conn))
    }
}

fn query_number_now(database_url: &str, sql: &str) -> Result<i64, String> {
    match connect(database_url)? {
        TestConnection::Postgres(mut client) => {
            let row = client.query_one(sql, &[]).map_err(|e| e.to_string())?;
            Ok(row.get::<_, i64>(0))
        }
        TestConnection::Sqlite(mut conn) => {
            use diesel::{QueryableByName, RunQueryDsl};
            #[derive(QueryableByName)]
            struct Number {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let number: Number = diesel::sql_query(format!("SELECT ({sql}) AS n"))
                .get_result(&mut conn)
                .map_err(|e| e.to_string())?;
            Ok(number.n)
        }
    }
}

/// The tables whose names start with `prefix`.
pub fn tables(database_url: &str, prefix: &str) -> Vec<String> {
    let database = conductor_store::Database::open(
        &conductor_store::DatabaseUrl::parse(database_url).expect("a database URL"),
        1,
    )
    .expect("the database opens");
    let warehouse = database.warehouse();
    off_runtime(|| warehouse.tables_with_prefix(prefix).expect("tables listed"))
}

/// Whether a load is streaming rows into the staging fact table of `fact`: on PostgreSQL a COPY into it is
/// running (its staging tables live in the COPY's own transaction, which no other session sees); on SQLite the
/// staging table exists.
pub fn streaming_into(database_url: &str, fact: &str) -> bool {
    if database_url.starts_with("postgres") {
        let copying = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' \
             AND position('COPY \"{fact}__new\"' in query) = 1"
        );
        query_number(database_url, &copying).expect("pg_stat_activity read") > 0
    } else {
        tables(database_url, fact).iter().any(|t| t.ends_with("__new"))
    }
}

/// Runs one query of a held transaction (or, given `None`, commits it).
type HeldQuery = Box<dyn FnMut(Option<&str>) -> Result<i64, String>>;

/// A read transaction held open across whatever the test does meanwhile, on whichever backend `database_url`
/// names, on a thread of its own: what a reader in the middle of a query sees.
#[derive(Debug)]
pub struct HeldRead {
    ask: std::sync::mpsc::Sender<Option<String>>,
    answers: std::sync::mpsc::Receiver<Result<i64, String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldRead {
    /// Begins the transaction (`REPEATABLE READ` on PostgreSQL; a WAL snapshot on SQLite, taken at its first read).
    pub fn begin(database_url: &str) -> Self {
        let (ask, asked) = std::sync::mpsc::channel::<Option<String>>();
        let (answer, answers) = std::sync::mpsc::channel();
        let url = database_url.to_owned();
        let thread = std::thread::spawn(move || {
            let mut run: HeldQuery = if url.starts_with("postgres") {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("PostgreSQL");
                client
                    .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    .expect("a transaction");
                Box::new(move |sql| match sql {
                    Some(sql) => client
                        .query_one(sql, &[])
                        .map(|row| row.get::<_, i64>(0))
                        .map_err(|e| e.to_string()),
                    None => client
                        .batch_execute("COMMIT")
                        .map(|()| 0)
                        .map_err(|e| e.to_string()),
                })
            } else {
                use diesel::connection::{Connection, SimpleConnection};
                use diesel::{QueryableByName, RunQueryDsl};
                #[derive(QueryableByName)]
                struct Number {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                let path = url.trim_start_matches("sqlite://").to_owned();
                let mut conn = diesel::sqlite::SqliteConnection::establish(&path).expect("SQLite");
                conn.batch_execute("PRAGMA busy_timeout = 5000; BEGIN")
                    .expect("a transaction");
                Box::new(move |sql| match sql {
                    Some(sql) => diesel::sql_query(format!("SELECT ({sql}) AS n"))
                        .get_result::<Number>(&mut conn)
                        .map(|number| number.n)
                        .map_err(|e| e.to_string()),
                    None => conn
                        .batch_execute("COMMIT")
                        .map(|()| 0)
                        .map_err(|e| e.to_string()),
                })
            };
            while let Ok(sql) = asked.recv() {
                let done = sql.is_none();
                let _ = answer.send(run(sql.as_deref()));
                if done {
                    return;
                }
            }
        });
        Self {
            ask,
            answers,
            thread: Some(thread),
        }
    }

    /// One number, read inside the transaction.
    pub fn number(&self, sql: &str) -> Result<i64, String> {
        self.ask.send(Some(sql.to_owned())).expect("the reader");
        self.answers.recv().expect("an answer")
    }

    /// Ends the transaction.
    pub fn commit(mut self) {
        self.ask.send(None).expect("the reader");
        self.answers.recv().expect("committed").expect("a commit");
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the reader thread");
        }
    }
}

/// For each dimension of a Babbage `model`: its table, its first attribute's column, and the query counting the
/// fact rows that join a row of that table (all of them, in a whole package).
pub fn dimension_joins(model: &Value) -> Vec<(String, String, String)> {
    let fact = model["fact_table"].as_str().expect("a fact table");
    model["dimensions"]
        .as_object()
        .expect("dimensions")
        .values()
        .map(|dimension| {
            let id_column = dimension["join_column"][0].as_str().expect("a join column");
            let attribute = dimension["attributes"]
                .as_object()
                .and_then(|a| a.values().next())
                .expect("an attribute");
            let (table, column) = attribute["column"]
                .as_str()
                .and_then(|c| c.split_once('.'))
                .expect("T.c");
            let joined = format!(
                "SELECT count(*) FROM \"{fact}\" f JOIN \"{table}\" d ON f.\"{id_column}\" = d._fdp__id_"
            );
            (table.to_owned(), column.to_owned(), joined)
        })
        .collect()
}
