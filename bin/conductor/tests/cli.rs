//! The `conductor` binary as a deployer runs it: start-up, configuration errors, `config show`, `migrate`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure fails the test"
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
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

/// The longest a command that should exit may run: a regression that makes it serve instead fails the test
/// rather than hanging CI.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

fn output(command: &mut Command) -> (i32, String, String) {
    use std::io::Read;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command did not exit within {COMMAND_LIMIT:?}: {command:?}");
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "a plain test function waiting on a child process, not an executor"
        )]
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().unwrap_or(-1),
        stdout.join().unwrap(),
        stderr.join().unwrap(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    // The image's HEALTHCHECK: 0 for a gateway that answers, 1 where none does.
    let healthcheck = |url: String| {
        let mut command = conductor(dir.path());
        command.args(["healthcheck", "--url", &url]);
        tokio::task::block_in_place(|| output(&mut command))
    };
    assert_eq!(healthcheck(format!("{base}/healthz")).0, 0);
    let (code, _, stderr) = healthcheck(format!("http://127.0.0.1:{}/healthz", free_port()));
    assert_eq!(code, 1);
    assert!(stderr.contains("unhealthy"), "{stderr}");
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
        stderr.contains("applied 4 migration(s) to the sqlite database"),
        "{stderr}"
    );
    let (code, _, stderr) = output(conductor(dir.path()).arg("migrate"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("up to date"), "{stderr}");
    assert!(dir.path().join("var/conductor.db").is_file());
}

/// The Python of the test venv (scripts/test makes it, with PyJWT), or the system's.
fn python() -> std::ffi::OsString {
    std::env::var_os("CONDUCTOR_TEST_PYTHON").unwrap_or_else(|| "python3".into())
}

#[tokio::test]
async fn minted_and_authorized_tokens_verify_through_the_jwks_and_pyjwt() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}/");
    let with_base = |command: &mut Command| {
        command
            .env("CONDUCTOR__SERVER__BASE_URL", &base)
            .env("CONDUCTOR__SERVER__BIND", format!("127.0.0.1:{port}"));
    };

    let mut mint = conductor(dir.path());
    mint.args([
        "token",
        "mint",
        "--email",
        "Ada@Example.test",
        "--name",
        "Ada",
        "--ttl",
        "2h",
    ]);
    with_base(&mut mint);
    let (code, stdout, stderr) = output(&mut mint);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the token on stdout: {stdout:?}");
    let user_token = lines[0].to_owned();
    assert_eq!(user_token.split('.').count(), 3);

    let mut serve = conductor(dir.path());
    with_base(&mut serve);
    let _served = Served(serve.stderr(Stdio::null()).spawn().unwrap());
    wait_for(&format!("{base}readyz"), 200).await;

    let authorized: serde_json::Value = serde_json::from_str(
        &wait_for(
            &format!("{base}user/authorize?jwt={user_token}&service=os.datastore"),
            200,
        )
        .await,
    )
    .unwrap();
    let permission_token = authorized["token"]
        .as_str()
        .expect("a permission token")
        .to_owned();

    // The Verifier built from the JWKS URL, as the example does.
    let jwks = url::Url::parse(&format!("{base}.well-known/jwks.json")).unwrap();
    let verifier = conductor_auth::Verifier::from_jwks_url(jwks)
        .await
        .unwrap()
        .with_issuer(base.clone());
    let user = verifier.verify_user(&user_token).await.unwrap();
    assert_eq!(
        user.userid,
        conductor_core::UserId::from_email("ada@example.test")
    );
    assert_eq!(user.exp - user.iat, 7200, "--ttl 2h");
    let permission = verifier
        .verify_permission(&permission_token, "os.datastore", "datapackage-upload")
        .await;
    assert_eq!(permission.unwrap().userid, user.userid);

    // PyJWT with only the public PEM and algorithms=["RS256"], as the original's Python services verified.
    let pem_path = dir.path().join("public.pem");
    std::fs::write(&pem_path, wait_for(&format!("{base}user/public-key"), 200).await).unwrap();
    let script = "import sys, jwt\n\
        pem = open(sys.argv[1]).read()\n\
        for token in sys.argv[2:]:\n\
        \x20   claims = jwt.decode(token, pem, algorithms=['RS256'])\n\
        \x20   print(claims['typ'], claims['userid'], claims.get('service', '-'))\n";
    let (code, stdout, stderr) = output(
        Command::new(python())
            .arg("-c")
            .arg(script)
            .arg(&pem_path)
            .arg(&user_token)
            .arg(&permission_token),
    );
    assert_eq!(code, 0, "PyJWT refused: {stderr}");
    let id = user.userid.as_str();
    assert_eq!(stdout, format!("user {id} -\npermission {id} os.datastore\n"));

    // And PyJWT refuses a forged one (HS256 keyed with the public key), so the check above can fail.
    let forged = jsonwebtoken_hs256(&std::fs::read_to_string(&pem_path).unwrap());
    let (code, _, stderr) = output(
        Command::new(python())
            .arg("-c")
            .arg(script)
            .arg(&pem_path)
            .arg(&forged),
    );
    assert_ne!(code, 0, "{stderr}");
}

/// An HS256 token signed with the public PEM as the secret: the classic key-confusion forgery.
fn jsonwebtoken_hs256(public_pem: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac_sha256_for_test::sign;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(br#"{"typ":"user","userid":"x","exp":4102444800}"#);
    let signing_input = format!("{header}.{claims}");
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(sign(public_pem.as_bytes(), signing_input.as_bytes()))
    )
}

mod hmac_sha256_for_test {
    use sha2::{Digest, Sha256};

    /// HMAC-SHA256 (RFC 2104), enough for forging a test token.
    pub fn sign(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .to_vec()
    }
}

#[test]
fn permissions_are_granted_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| output(conductor(dir.path()).args(args));
    let (code, stdout, stderr) = run(&[
        "permissions",
        "grant",
        "ada@example.test",
        "os.datastore",
        "package-admin",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let ada = conductor_core::UserId::from_email("ada@example.test");
    assert_eq!(
        stdout.trim(),
        format!("{ada} os.datastore {{\"package-admin\":true}}")
    );
    let (_, stdout, _) = run(&["permissions", "list"]);
    assert_eq!(
        stdout,
        format!(
            "* os.datastore {{\"datapackage-upload\":true}}\n{ada} os.datastore {{\"package-admin\":true}}\n"
        )
    );
    let (code, _, _) = run(&[
        "permissions",
        "revoke",
        &ada.to_string(),
        "os.datastore",
        "package-admin",
    ]);
    assert_eq!(code, 0);
    let (_, stdout, _) = run(&["permissions", "list", "ada@example.test"]);
    assert_eq!(stdout, "");
    let (code, _, stderr) = run(&["permissions", "revoke", "ada@example.test", "os.datastore"]);
    assert_eq!(code, 1, "{stderr}");
    let (code, _, stderr) = run(&["permissions", "grant", "not-a-user", "os.datastore", "x"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("a grantee is"), "{stderr}");
}

#[tokio::test]
async fn a_secrets_bundle_from_encode_runs_the_service_with_those_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = output(conductor(dir.path()).args(["keys", "generate", "--out", "keys"]));
    assert_eq!(code, 0, "{stderr}");
    let kid = stderr
        .split("(kid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_owned();
    let (code, _, stderr) = output(conductor(dir.path()).args(["keys", "generate", "--out", "keys"]));
    assert_eq!(code, 1, "never overwrites: {stderr}");

    let (code, stdout, stderr) =
        output(conductor(dir.path()).args(["secrets", "encode", "--private-key", "keys/private.pem"]));
    assert_eq!(code, 0, "{stderr}");
    let variables: Vec<(String, String)> = stdout
        .lines()
        .map(|line| {
            line.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .unwrap()
        })
        .collect();
    assert_eq!(variables.len(), 4);

    let port = free_port();
    let mut serve = conductor(dir.path());
    serve
        .envs(variables.iter().cloned())
        .env("CONDUCTOR__SERVER__BIND", format!("127.0.0.1:{port}"));
    let _served = Served(serve.stderr(Stdio::null()).spawn().unwrap());
    let jwks = wait_for(&format!("http://127.0.0.1:{port}/.well-known/jwks.json"), 200).await;
    assert!(jwks.contains(&kid), "served with the bundle's key");
    assert!(
        !dir.path().join("var/keys/private.pem").exists(),
        "no development key generated"
    );

    let (code, _, stderr) = output(
        conductor(dir.path())
            .args(["secrets", "decode", "--out", "decoded"])
            .envs(variables),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("decoded/public.pem"))
            .unwrap()
            .trim(),
        std::fs::read_to_string(dir.path().join("keys/public.pem"))
            .unwrap()
            .trim()
    );
}

/// Puts packages `datasets` into the registry of the embedded database under `dir` (made by a first command).
async fn put_packages(dir: &Path, datasets: &[&str]) {
    use conductor_core::{PackageId, PackageRecord, Timestamp};
    let url = format!("sqlite://{}", dir.join("var/conductor.db").display());
    let database =
        conductor_store::Database::open(&conductor_store::DatabaseUrl::parse(&url).unwrap(), 1).unwrap();
    let owner = conductor_core::UserId::from_email("ada@example.test");
    for dataset in datasets {
        let record = PackageRecord {
            id: PackageId::parse(&format!("{owner}:{dataset}")).unwrap(),
            model: serde_json::json!({}),
            package: serde_json::json!({"name": dataset, "private": false}),
            origin_url: String::new(),
            dataset: None,
            author: None,
            loading_status: None,
            loaded: true,
            last_update: Timestamp::from_millis(0),
        };
        database.repositories().packages.put(&record).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_reindex_rebuilds_the_index_from_the_database() {
    use conductor_search::SearchIndex;
    let dir = tempfile::tempdir().unwrap();
    let reindex =
        || tokio::task::block_in_place(|| output(conductor(dir.path()).args(["search", "reindex"])));
    let (code, _, stderr) = reindex();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("holds 0 package(s)"), "{stderr}");

    put_packages(dir.path(), &["a", "b"]).await;
    let (code, _, stderr) = reindex();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("the embedded search index now holds 2 package(s)"),
        "{stderr}"
    );
    // The index itself, read where the gateway reads it, not the count the command printed.
    let index = conductor_search::embedded::EmbeddedIndex::open(&dir.path().join("var/search")).unwrap();
    assert_eq!(
        index.count().await.unwrap(),
        2,
        "the rebuilt index holds both packages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_reindex_fills_an_empty_opensearch_from_the_database() {
    let osmem = conductor_search::testing::Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        tokio::task::block_in_place(|| {
            output(
                conductor(dir.path())
                    .args(["search", "reindex"])
                    .env("OS_ELASTICSEARCH_ADDRESS", osmem.url().as_str())
                    .env("OS_ES_PACKAGES_INDEX_NAME", "os-packages"),
            )
        })
    };
    let (code, _, stderr) = run();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("the opensearch search index now holds 0 package(s)"),
        "{stderr}"
    );
    put_packages(dir.path(), &["a", "b", "c"]).await;
    let (code, _, stderr) = run();
    assert_eq!(code, 0, "{stderr}");
    // The cluster itself: the alias OS_ES_PACKAGES_INDEX_NAME names points at one index, which holds the three.
    let cluster = osmem.url().as_str().trim_end_matches('/');
    let aliases: serde_json::Value = reqwest::get(format!("{cluster}/_alias/os-packages"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let behind: Vec<&String> = aliases.as_object().unwrap().keys().collect();
    assert_eq!(behind.len(), 1, "one index behind the alias: {aliases}");
    let counted: serde_json::Value = reqwest::get(format!("{cluster}/os-packages/_count"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counted["count"], 3, "{counted}");
}

#[test]
fn a_web_client_provider_that_is_not_configured_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (code, _, stderr) = output(
        conductor(dir.path())
            .env("CONDUCTOR__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("CONDUCTOR__AUTH__WEB_CLIENT_PROVIDER", "keycloak"),
    );
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("auth.web_client_provider") && stderr.contains("keycloak"),
        "{stderr}"
    );
}

#[path = "registry/import.rs"]
mod registry_import;

// Loading as a deployer runs it, in this one test binary (one link on two cores, not two).
mod loading;

// Converting older descriptors as a publisher does.
mod convert;

/// The harness's slow source, included by path: this crate's tests cannot depend on the harness crate.
#[path = "../../../tests/src/slow_source.rs"]
mod slow_source;
