//! `HttpSource`'s defences against a real local server: a name that resolves to loopback is refused at
//! resolution, a redirect is re-checked (and one to such a name refused), at most three redirects are followed,
//! and `max_download` cuts a body off whether or not its length is announced.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use super::*;

/// A server on 127.0.0.1 answering by path: `/redirect/N` redirects to `/redirect/N-1` (and `/redirect/0` to
/// `/data`), `/to-localhost` redirects to `http://localhost:<port>/data`, `/data` is 10 bytes, `/big` 4096 bytes
/// with a Content-Length, `/big-chunked` 4096 bytes without one.
fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Drain the request's headers.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let redirect = |to: String| {
                format!(
                    "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
            };
            let answer = match path.as_str() {
                "/data" => {
                    "HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n0123456789".to_owned()
                }
                "/big" => format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: 4096\r\nconnection: close\r\n\r\n{}",
                    "x".repeat(4096)
                ),
                "/big-chunked" => format!(
                    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n1000\r\n{}\r\n0\r\n\r\n",
                    "x".repeat(4096)
                ),
                "/to-localhost" => redirect(format!("http://localhost:{port}/data")),
                "/to-metadata" => redirect("http://169.254.169.254/latest/meta-data/".to_owned()),
                "/redirect/0" => redirect("/data".to_owned()),
                other => match other
                    .strip_prefix("/redirect/")
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    Some(n) => redirect(format!("/redirect/{}", n - 1)),
                    None => {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                    }
                },
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    port
}

/// The local server by its IP (allowed, as an allow-list entry naming an IP allows that address) and by the
/// name `localhost` (allow-listed too, but a name that resolves to loopback is refused).
fn policy(port: u16, max_download: u64) -> FetchPolicy {
    FetchPolicy::new(
        &[],
        &[
            format!("http://127.0.0.1:{port}/"),
            format!("http://localhost:{port}/"),
        ],
        max_download,
    )
}

fn read_all(source: &HttpSource, url: &str, policy: &FetchPolicy) -> Result<Vec<u8>, String> {
    let opened = source
        .open(&Url::parse(url).unwrap(), policy)
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    Limited::new(opened.reader, u64::MAX)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    Ok(body)
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused() {
    let port = server();
    let source = HttpSource::default();
    let policy = policy(port, 1 << 20);
    assert_eq!(
        read_all(&source, &format!("http://127.0.0.1:{port}/data"), &policy).unwrap(),
        b"0123456789"
    );
    let refused = read_all(&source, &format!("http://localhost:{port}/data"), &policy).unwrap_err();
    assert!(
        refused.contains("resolves to an address loads may not reach"),
        "{refused}"
    );
}

#[test]
fn redirects_are_checked_again_and_limited_to_three() {
    let port = server();
    let source = HttpSource::default();
    let policy = policy(port, 1 << 20);
    let base = format!("http://127.0.0.1:{port}");
    let to_loopback = read_all(&source, &format!("{base}/to-localhost"), &policy).unwrap_err();
    assert!(
        to_loopback.contains("resolves to an address loads may not reach"),
        "{to_loopback}"
    );
    let to_metadata = read_all(&source, &format!("{base}/to-metadata"), &policy).unwrap_err();
    assert!(to_metadata.contains("169.254.169.254"), "{to_metadata}");
    // /redirect/2 is three redirects (2, 1, 0) to /data: followed. /redirect/3 is four: refused.
    assert_eq!(
        read_all(&source, &format!("{base}/redirect/2"), &policy).unwrap(),
        b"0123456789"
    );
    let too_many = read_all(&source, &format!("{base}/redirect/3"), &policy).unwrap_err();
    assert!(too_many.contains("more than 3 redirects"), "{too_many}");
}

#[test]
fn max_download_cuts_off_announced_and_unannounced_bodies() {
    let port = server();
    let source = HttpSource::default();
    let policy = policy(port, 1024);
    let base = format!("http://127.0.0.1:{port}");
    let announced = read_all(&source, &format!("{base}/big"), &policy).unwrap_err();
    assert!(
        announced.contains("larger than the limit of 1024 bytes"),
        "{announced}"
    );
    let streamed = read_all(&source, &format!("{base}/big-chunked"), &policy).unwrap_err();
    assert!(streamed.contains("1024"), "cut off while streaming: {streamed}");
    assert_eq!(
        read_all(&source, &format!("{base}/data"), &policy).unwrap().len(),
        10
    );
}
