//! Forged requests that hold a receiver's body budget: a fresh, well-formed
//! signature that no key made (`v=<now>,d=<64 zeros>`) passes the checks on
//! the head, and its digest can only be refuted once the whole body is in, so
//! each forged body claims budget for as long as it takes to arrive.
//! Include it with `#[path = "common/forged_bodies.rs"] mod forged_bodies;`
//! (`"../common/forged_bodies.rs"` from a test directory).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// A well-formed signature header value timestamped `now_ms` that no key
/// made.
pub fn forged(now_ms: u64) -> String {
    format!("v={now_ms},d={}", "0".repeat(64))
}

/// The loopback addresses `127.0.0.<last>`: distinct sources for a server on
/// 127.0.0.1, which Linux accepts without set-up.
pub fn loopback(last: std::ops::RangeInclusive<u8>) -> Vec<IpAddr> {
    last.map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .collect()
}

/// The forged request each attacker sends, again and again.
#[derive(Debug, Clone)]
pub struct Forged {
    /// The route's path.
    pub path: String,
    /// The `Content-Length` declared.
    pub declared: usize,
    /// Bytes sent at once after the head.
    pub burst: usize,
    /// Then one byte every `every`.
    pub every: Duration,
    /// The verifier's clock (milliseconds since the epoch), read for each
    /// request so the forged signature is always fresh to it.
    pub now_ms: fn() -> u64,
}

/// Connections sending one [`Forged`] request after another to `addr` until
/// stopped: a head, the burst, then a byte at a time; each reconnects
/// whenever the server answers or closes. Counts the answers.
pub struct Attackers {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    bursts_sent: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Attackers {
    /// `connections` attackers, spread in turn over the local addresses
    /// `sources` (one is enough unless the server limits connections per
    /// source).
    pub fn start(addr: SocketAddr, sources: &[IpAddr], connections: usize, forged: Forged) -> Self {
        assert!(!sources.is_empty(), "no source address");
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let bursts_sent = Arc::new(AtomicUsize::new(0));
        let burst_bytes = Arc::new(vec![b' '; forged.burst]);
        let forged = Arc::new(forged);
        let tasks = (0..connections)
            .map(|i| {
                let source = sources[i % sources.len()];
                let (stop, answered, sent) = (stop.clone(), answered.clone(), bursts_sent.clone());
                let burst_bytes = Arc::clone(&burst_bytes);
                let forged = Arc::clone(&forged);
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(stream) = connect_from(source, addr).await else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        let (mut read, mut write) = stream.into_split();
                        let head = format!(
                            "POST {} HTTP/1.1\r\nHost: x\r\nX-Retell-Signature: {}\r\n\
                             Content-Length: {}\r\n\r\n",
                            forged.path,
                            self::forged((forged.now_ms)()),
                            forged.declared
                        );
                        let every = forged.every;
                        let stop_writing = Arc::clone(&stop);
                        let sent = Arc::clone(&sent);
                        let burst_bytes = Arc::clone(&burst_bytes);
                        let writer = tokio::spawn(async move {
                            if write.write_all(head.as_bytes()).await.is_err()
                                || write.write_all(&burst_bytes).await.is_err()
                            {
                                return;
                            }
                            sent.fetch_add(1, Ordering::Relaxed);
                            while !stop_writing.load(Ordering::Relaxed) {
                                tokio::time::sleep(every).await;
                                if write.write_all(b" ").await.is_err() {
                                    return;
                                }
                            }
                        });
                        let mut reply = [0u8; 256];
                        let got = read.read(&mut reply).await.unwrap_or(0);
                        writer.abort();
                        if got > 0 {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            answered,
            bursts_sent,
            tasks,
        }
    }

    /// Waits until `n` bursts have been sent (the server has read or buffered
    /// them), at most `limit`; whether they were.
    pub async fn wait_for_bursts(&self, n: usize, limit: Duration) -> bool {
        let started = Instant::now();
        while self.bursts_sent.load(Ordering::Relaxed) < n {
            if started.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Bursts sent so far.
    pub fn bursts_sent(&self) -> usize {
        self.bursts_sent.load(Ordering::Relaxed)
    }

    /// Stops every attacker; how many forged requests were answered.
    pub fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
        self.answered.load(Ordering::Relaxed)
    }
}

/// A connection to `addr` from `source` (any port; a port in `TIME_WAIT` may
/// be taken again, as `connect` alone would).
async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}
