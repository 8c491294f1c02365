//! The test harness: starts the real gateway on port 0 for a backend, each test with its own database, and gives
//! typed request helpers. A service a test needs and cannot reach fails the test; nothing skips.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: a failure to set up must fail the test loudly"
)]

pub mod browser;
pub mod oidc;
pub mod packages;
pub mod s3;
pub mod slow_source;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use conductor::Settings;
use conductor::startup::Application;
use conductor_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::Value;

/// The backends a test can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: a temp SQLite file.
    Sqlite,
    /// A fresh database on the test PostgreSQL, dropped afterwards.
    Postgres,
}

impl Backend {
    pub const ALL: [Self; 2] = [Self::Sqlite, Self::Postgres];
}

/// A running gateway and what it owns; dropping it stops the server and removes its database and files.
#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// `server.base_url`: the tokens' issuer.
    pub base_url: url::Url,
    pub client: reqwest::Client,
    /// The port `/metrics` is served on alone, when the test set `server.metrics_bind`.
    pub metrics_port: Option<u16>,
    /// The database the gateway runs on (its tables can be read with [`packages::count`]).
    pub database_url: String,
    handle: actix_web::dev::ServerHandle,
    _database: Option<TestDatabase>,
    _data_dir: tempfile::TempDir,
}

/// Starts the gateway on `backend` with the test settings.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the gateway on `backend`, letting the test adjust the settings first, and waits until it is ready
/// (unless the test turned automatic migration off).
pub async fn spawn_app_with(backend: Backend, customize: impl FnOnce(&mut Settings)) -> TestApp {
    let database = match backend {
        Backend::Sqlite => TestDatabase::sqlite(),
        Backend::Postgres => TestDatabase::postgres(),
    }
    .expect("a test database");
    let mut auto_migrate = true;
    let mut app = spawn_on_url(database.url(), |settings| {
        customize(settings);
        auto_migrate = settings.database.auto_migrate;
    })
    .await;
    app._database = Some(database);
    if auto_migrate {
        assert!(
            app.wait_for_readiness(StatusCode::OK, Duration::from_secs(30))
                .await,
            "{backend:?} never ready"
        );
    }
    app
}

/// Starts the gateway on a temp SQLite database with the browser test pages of `tests/browser` mounted under
/// `/test-pages/` (same origin as the API, as behind OpenSpending's nginx), and waits until it is ready.
pub async fn spawn_app_with_test_pages() -> TestApp {
    let database = TestDatabase::sqlite().expect("a test database");
    let mut app = spawn(database.url(), |_| {}, test_pages()).await;
    app._database = Some(database);
    assert!(
        app.wait_for_readiness(StatusCode::OK, Duration::from_secs(30))
            .await,
        "never ready"
    );
    app
}

fn test_pages() -> conductor::startup::ExtraRoutes {
    use actix_web::{HttpResponse, web};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
    std::sync::Arc::new(move |cfg: &mut web::ServiceConfig| {
        let dir = dir.clone();
        cfg.route(
            "/test-pages/{name}",
            web::get().to(move |name: web::Path<String>| {
                let dir = dir.clone();
                async move {
                    let (file, content_type) = match name.as_str() {
                        "angular.html" | "esm.html" => (dir.join(name.as_str()), "text/html; charset=utf-8"),
                        "angular.min.js" => (
                            dir.join("node_modules/angular/angular.min.js"),
                            "application/javascript; charset=utf-8",
                        ),
                        _ => return HttpResponse::NotFound().finish(),
                    };
                    match std::fs::read(&file) {
                        Ok(body) => HttpResponse::Ok().content_type(content_type).body(body),
                        Err(error) => HttpResponse::InternalServerError().body(format!(
                            "{}: {error} (./scripts/test runs npm ci in tests/browser)",
                            file.display()
                        )),
                    }
                }
            }),
        );
    })
}

/// Starts the gateway on a database URL the test manages itself (a throwaway cluster, say).
pub async fn spawn_on_url(database_url: &str, customize: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(
        database_url,
        customize,
        std::sync::Arc::new(|_: &mut actix_web::web::ServiceConfig| {}),
    )
    .await
}

async fn spawn(
    database_url: &str,
    customize: impl FnOnce(&mut Settings),
    extra_routes: conductor::startup::ExtraRoutes,
) -> TestApp {
    let data_dir = tempfile::tempdir().expect("a temp data dir");
    let mut settings = Settings::default();
    // The base URL must be the real address (tokens carry it as `iss`, login redirects return to it), so the
    // port is chosen before binding.
    let port = free_port().expect("a free port");
    settings.server.bind = format!("127.0.0.1:{port}").parse().expect("an address");
    settings.server.base_url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("a URL");
    settings.auth.redirect_allowlist = vec![settings.server.base_url.to_string()];
    settings.auth.dev_login = true;
    settings.data_dir = data_dir.path().to_owned();
    settings.database.url = Some(conductor::settings::ConnectionUrl::new(database_url));
    settings.database.pool_size = 4;
    customize(&mut settings);
    let base_url = settings.server.base_url.clone();
    let application = Application::build_with(settings, extra_routes)
        .await
        .expect("the gateway starts");
    let port = application.port();
    let metrics_port = application.metrics_port();
    let handle = application.handle();
    tokio::spawn(application.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        base_url,
        client,
        metrics_port,
        database_url: database_url.to_owned(),
        handle,
        _database: None,
        _data_dir: data_dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn data_dir(&self) -> PathBuf {
        self._data_dir.path().to_owned()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET answered")
    }

    /// GET, returning the status and the body parsed as JSON (failing the test if it is not JSON).
    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.get(path).await;
        let status = response.status();
        let text = response.text().await.expect("a body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path} answered {status} {text:?}: {e}"));
        (status, json)
    }

    /// POST a form body, returning status and JSON.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("POST answered");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    pub async fn readyz(&self) -> StatusCode {
        self.get("/readyz").await.status()
    }

    /// Polls `/readyz` until it answers `want` or `within` passes; returns whether it did.
    pub async fn wait_for_readiness(&self, want: StatusCode, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.readyz().await == want {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Logs `email` in through the `dev` provider and returns the user token delivered to `next`.
    pub async fn log_in(&self, email: &str) -> String {
        let response = self
            .client
            .post(self.url("/oauth/dev/login"))
            .form(&[("email", email), ("next", self.base_url.as_str())])
            .send()
            .await
            .expect("dev login answered");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "dev login of {email}");
        let location = response.headers()["location"]
            .to_str()
            .expect("a location")
            .to_owned();
        let fragment = url::Url::parse(&location)
            .expect("a URL")
            .fragment()
            .expect("a fragment")
            .to_owned();
        url::form_urlencoded::parse(fragment.as_bytes())
            .find(|(k, _)| k == "jwt")
            .map(|(_, v)| v.into_owned())
            .expect("a jwt in the fragment")
    }

    /// Stops the gateway gracefully (as SIGTERM does): it stops serving, and its loader gives running jobs back.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// A token issuer with this gateway's development key and issuer, to make tokens the gateway would not
    /// (expired, of another kind, for another service).
    pub fn forger(&self, user_ttl: Duration, permission_ttl: Duration) -> conductor_auth::TokenIssuer {
        let keys = conductor_auth::KeySet::development(&self.data_dir().join("keys"), Vec::new())
            .expect("the dev key");
        conductor_auth::TokenIssuer::new(
            std::sync::Arc::new(keys),
            conductor_auth::TokenPolicy {
                issuer: self.base_url.to_string(),
                user_ttl,
                permission_ttl,
                permission_aud: false,
            },
        )
    }

    /// The value of one series of `/metrics`, or 0 when it has not been recorded yet.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.expect("metrics text");
        text.lines()
            .find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting and let the workers finish; the runtime may end before this completes.
        drop(self.handle.stop(false));
    }
}

/// A PostgreSQL cluster of the test's own on a random port, never the machine's shared one, so a test can stop
/// and start it. Removed when dropped.
#[derive(Debug)]
pub struct ThrowawayPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl ThrowawayPostgres {
    /// Creates the cluster (initdb) without starting it.
    pub fn init() -> Result<Self> {
        let bin = postgres_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("conductor-pg-").tempdir()?;
        let as_postgres = is_root()?;
        if as_postgres {
            // initdb refuses to run as root; the cluster belongs to the postgres user.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()))?;
        }
        let port = free_port()?;
        let cluster = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = cluster.data_dir();
        run(cluster
            .command("initdb")
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data))?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start(&self) -> Result<()> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-o", &options, "-w", "start"]))
    }

    pub fn stop(&self) -> Result<()> {
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "stop"]))
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn run(command: &mut Command) -> Result<()> {
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn is_root() -> Result<bool> {
    let output = Command::new("id").arg("-u").output().context("running id -u")?;
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// The newest installed PostgreSQL's binaries (Debian keeps them under /usr/lib/postgresql/<version>/bin).
fn postgres_bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries under /usr/lib/postgresql (./scripts/test installs them)")?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no initdb under /usr/lib/postgresql/*/bin")
}

/// A port nothing listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
