//! A real OpenSearch-compatible server for tests: `osmem-server` (PyPI), installed by `./scripts/test` into the
//! test venv named by `CONDUCTOR_TEST_PYTHON`. It fails the test loudly when it is missing; it never skips.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use url::Url;

/// A running osmem-server; stopped when dropped.
#[derive(Debug)]
pub struct Osmem {
    url: Url,
    child: Child,
}

impl Osmem {
    #[expect(
        clippy::panic,
        clippy::expect_used,
        reason = "test support: a missing service fails the test loudly"
    )]
    pub fn start() -> Self {
        let python = std::env::var_os("CONDUCTOR_TEST_PYTHON").unwrap_or_else(|| "python3".into());
        let found = Command::new(&python)
            .args(["-c", "import osmem_server; print(osmem_server.resolve_binary())"])
            .output()
            .expect("python for osmem-server");
        let binary = String::from_utf8_lossy(&found.stdout).trim().to_owned();
        if !found.status.success() || binary.is_empty() {
            panic!(
                "osmem-server is not installed for {python:?} (./scripts/test installs it): {}",
                String::from_utf8_lossy(&found.stderr)
            );
        }
        let mut child = Command::new(binary)
            .args(["-addr", "127.0.0.1:0", "-no-stdin-watch", "-no-ja"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("osmem-server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("its announcement");
        let announced: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("osmem-server announced {line:?}: {e}"));
        let url = announced["url"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .expect("a URL in the announcement");
        Self { url, child }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
