//! A local HTTP source that is slow on purpose, for tests that must catch a load mid-stream: `/datapackage.json`
//! (a package named `slow` with one resource `data.csv` of `year,amount`) at once, any other path as a CSV
//! header and then one row every 50 ms, `rows` of them or without end, counting the rows sent.
//!
//! Self-contained (std and serde_json), so the command-line tests in `bin/conductor` include it by path: they
//! cannot depend on this harness, which depends on them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Starts the source on a free loopback port: answers the port and the count of rows sent so far.
pub fn slow_source(rows: Option<usize>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let port = listener.local_addr().expect("a bound listener").port();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..n]).into_owned();
            let counter = counter.clone();
            std::thread::spawn(move || {
                if head.starts_with("GET /datapackage.json") {
                    serve_descriptor(stream);
                } else {
                    serve_rows(stream, rows, &counter);
                }
            });
        }
    });
    (port, sent)
}

fn serve_descriptor(mut stream: TcpStream) {
    let descriptor = serde_json::json!({"name": "slow", "resources": [{"name": "data", "path": "data.csv",
        "schema": {"fields": [
            {"name": "year", "columnType": "date:fiscal-year"},
            {"name": "amount", "columnType": "value"}]}}]})
    .to_string();
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{descriptor}",
            descriptor.len()
        )
        .as_bytes(),
    );
}

fn serve_rows(mut stream: TcpStream, rows: Option<usize>, counter: &AtomicUsize) {
    if stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\nconnection: close\r\n\r\nyear,amount\n")
        .is_err()
    {
        return;
    }
    for i in 0..rows.unwrap_or(usize::MAX) {
        if stream.write_all(format!("2001,{i}\n").as_bytes()).is_err() {
            return;
        }
        counter.fetch_add(1, Ordering::Relaxed);
        #[expect(
            clippy::disallowed_methods,
            reason = "a server thread of its own, not an executor"
        )]
        std::thread::sleep(Duration::from_millis(50));
    }
}
