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

/// A TCP proxy under the test's control, between a client and a server: `cut` drops every connection and
/// refuses new ones (an outage), `restore` lets them through again, `retarget` points it at another server.
#[derive(Debug)]
pub struct Proxy {
    url: Url,
    state: std::sync::Arc<ProxyState>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct ProxyState {
    target: std::sync::Mutex<std::net::SocketAddr>,
    cut: std::sync::atomic::AtomicBool,
    connections: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    #[expect(
        clippy::expect_used,
        reason = "test support: a proxy that cannot start fails the test loudly"
    )]
    pub async fn start(target: &Url) -> Self {
        use std::sync::atomic::Ordering;
        let target = target.socket_addrs(|| None).expect("a target address")[0];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a proxy port");
        let url =
            Url::parse(&format!("http://{}", listener.local_addr().expect("its address"))).expect("a URL");
        let state = std::sync::Arc::new(ProxyState {
            target: std::sync::Mutex::new(target),
            cut: std::sync::atomic::AtomicBool::new(false),
            connections: std::sync::Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if shared.cut.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let target = *shared.target.lock().expect("the target");
                let connection = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                shared
                    .connections
                    .lock()
                    .expect("the connections")
                    .push(connection);
            }
        });
        Self { url, state, accept }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    #[expect(clippy::expect_used, reason = "test support")]
    pub fn cut(&self) {
        self.state.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for connection in self.state.connections.lock().expect("the connections").drain(..) {
            connection.abort();
        }
    }

    pub fn restore(&self) {
        self.state.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    #[expect(clippy::expect_used, reason = "test support")]
    pub fn retarget(&self, target: &Url) {
        self.cut();
        *self.state.target.lock().expect("the target") = target.socket_addrs(|| None).expect("an address")[0];
        self.restore();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
