//! Free loopback ports and waits for something to listen or answer.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// Where the kernel takes the local ports of outgoing connections from (Linux's default, used
/// when `/proc` does not say).
const EPHEMERAL_DEFAULT_START: u16 = 32768;
/// How many ports below the ephemeral range are handed out.
const SPAN: u16 = 16384;
/// The lowest port ever handed out.
const LOWEST: u16 = 1024;

/// A loopback port nothing listens on right now, from below the kernel's ephemeral range, and
/// never the same one twice in this process. Below that range no outgoing connection can take
/// the port after the test picked it: a server restarted on its old port (a killed NATS node,
/// a gateway) finds it free, and two servers never get the same one. Each process starts at
/// its own place in the range, so parallel test processes rarely meet.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let (first, span) = handed_out_range();
    let start = std::process::id() % u32::from(span);
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % u32::from(span);
        let port = first + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free loopback port in {first}..{}",
        u32::from(first) + u32::from(span)
    )
}

/// The first port and the number of ports [`free_port`] hands out: the [`SPAN`] ports just
/// below the ephemeral range (fewer when that range starts low).
fn handed_out_range() -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(EPHEMERAL_DEFAULT_START);
    let first = ephemeral_start.saturating_sub(SPAN).max(LOWEST);
    let span = ephemeral_start.saturating_sub(first).max(1);
    (first, span)
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
    fn ports_come_from_below_the_ephemeral_range_and_never_twice() {
        let (first, span) = handed_out_range();
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            ports.len(),
            "a port handed out twice: {ports:?}"
        );
        assert!(
            (ports.iter())
                .all(|&p| p >= first && u32::from(p) < u32::from(first) + u32::from(span)),
            "{ports:?} outside {first}+{span}"
        );
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
