//! Free loopback ports and waits for something to listen or answer.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// Waits until `addr` accepts TCP connections.
pub async fn wait_for_tcp(addr: impl ToSocketAddrs, timeout: Duration) -> io::Result<()> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    let deadline = Instant::now() + timeout;
    loop {
        let error = match TcpStream::connect(&addrs[..]).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(timed_out(format!(
                "{addrs:?} did not accept connections: {error}"
            )));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Waits until `GET url` (plain `http://host:port/path`) answers with a 2xx status.
pub async fn wait_for_http_ok(url: &str, timeout: Duration) -> io::Result<()> {
    let target = HttpTarget::parse(url)?;
    let deadline = Instant::now() + timeout;
    loop {
        let error = match target.get_status().await {
            Ok(status) if (200..300).contains(&status) => return Ok(()),
            Ok(status) => format!("status {status}"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(timed_out(format!("GET {url} did not answer 2xx: {error}")));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

fn timed_out(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, message)
}

/// `host:port` and path of a plain HTTP URL.
struct HttpTarget {
    authority: String,
    path: String,
}

impl HttpTarget {
    fn parse(url: &str) -> io::Result<Self> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not an http:// URL: {url}"),
            )
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        Ok(HttpTarget {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    /// One `GET`, returning the status code.
    async fn get_status(&self) -> io::Result<u16> {
        let mut stream = TcpStream::connect(&self.authority).await?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.path, self.authority
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 32];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut head[read..]).await?;
            if n == 0 {
                break;
            }
            read += n;
        }
        parse_status(&head[..read])
    }
}

/// The code of a `HTTP/1.x NNN` status line.
fn parse_status(head: &[u8]) -> io::Result<u16> {
    std::str::from_utf8(head)
        .ok()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n").unwrap(), 200);
        assert_eq!(parse_status(b"HTTP/1.1 503 Ser").unwrap(), 503);
        assert!(parse_status(b"garbage").is_err());
    }

    #[test]
    fn urls() {
        let t = HttpTarget::parse("http://127.0.0.1:8080/readyz").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:8080", "/readyz")
        );
        assert_eq!(HttpTarget::parse("http://h:1").unwrap().path, "/");
        assert!(HttpTarget::parse("https://h").is_err());
    }
}
