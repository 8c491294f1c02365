//! A real S3-compatible server for the S3 datastore tests: `s3s-fs` 0.17.0, installed by `./scripts/test` into
//! a cache outside the clone. Objects are plain files under its folder, so tests can check what was stored.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use url::Url;

pub const ACCESS_KEY: &str = "AKIDCONDUCTORTEST";
pub const SECRET_KEY: &str = "conductor-test-secret-key";
pub const BUCKET: &str = "openspending";

/// A running `s3s-fs` with one bucket; stopped when dropped.
#[derive(Debug)]
pub struct S3Server {
    pub endpoint: Url,
    dir: tempfile::TempDir,
    child: Child,
}

/// `CONDUCTOR_TEST_S3S_FS`, or where scripts/test installs it.
fn binary() -> PathBuf {
    std::env::var_os("CONDUCTOR_TEST_S3S_FS").map_or_else(
        || PathBuf::from("/var/cache/conductor/s3s-fs/bin/s3s-fs"),
        PathBuf::from,
    )
}

impl S3Server {
    pub async fn start() -> Result<Self> {
        let binary = binary();
        if !binary.exists() {
            bail!(
                "{} is missing: ./scripts/test installs s3s-fs 0.17.0 there",
                binary.display()
            );
        }
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join(BUCKET))?;
        let port = crate::free_port()?;
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("s3s-fs did not start listening on {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            endpoint: Url::parse(&format!("http://127.0.0.1:{port}"))?,
            dir,
            child,
        })
    }

    /// Points a gateway's datastore at this server's bucket.
    pub fn configure(&self, settings: &mut conductor::Settings) {
        use conductor::settings::{DatastoreBackend, S3Settings, Secret};
        settings.datastore.backend = DatastoreBackend::S3;
        settings.datastore.s3 = S3Settings {
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            bucket: Some(BUCKET.into()),
            access_key: Some(ACCESS_KEY.into()),
            secret_key: Some(Secret::new(SECRET_KEY)),
            path_style: true,
        };
    }

    /// The file behind an object key.
    pub fn object(&self, key: &str) -> PathBuf {
        self.dir.path().join(BUCKET).join(key)
    }

    /// Every file s3s-fs holds, so a test can see that a rejected upload left nothing.
    pub fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out)
                } else {
                    out.push(path)
                }
            }
        }
        let mut files = Vec::new();
        walk(self.dir.path(), &mut files);
        files
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
