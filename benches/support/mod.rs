//! What the latency benchmarks share: nearest-rank percentiles, a line of
//! p50 / p99 / max, and one HTTP/1.1 exchange on a new connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The nearest-rank `p` quantile (0 to 1) of `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Prints `name: n=… p50=… p99=… max=…`; returns the p99.
pub fn report(name: &str, mut d: Vec<Duration>) -> Duration {
    d.sort();
    let p99 = percentile(&d, 0.99);
    println!(
        "{name}: n={} p50={:?} p99={p99:?} max={:?}",
        d.len(),
        percentile(&d, 0.50),
        d[d.len() - 1]
    );
    p99
}

/// One HTTP/1.1 exchange on a new connection: the status and the body.
pub fn exchange(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("the daemon accepts");
    s.write_all(request.as_bytes())
        .expect("the request is sent");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("a response");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_owned())
}

/// A GET on a new connection: the status and the body.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}
