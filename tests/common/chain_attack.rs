//! The keep-alive chain attack over real sockets: many connections, each
//! chaining forged requests whose small body trickles in, against a server on
//! 127.0.0.1, while signed deliveries from another source must be answered.
//! Include it with `#[path = "common/chain_attack.rs"] mod chain_attack;` in a
//! test that serves (or starts) the server under attack.
//!
//! Distinct sources are distinct 127.x addresses, which Linux's loopback
//! accepts as source addresses without set-up.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use retell_webhooks::{sign, unix_ms};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The event route under attack and the key its deliveries are signed with.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub path: &'static str,
    pub key: &'static str,
}

impl Route {
    /// A signed `call_ended` request for `call_id`, signed now (real clock).
    pub fn signed_request(&self, call_id: &str) -> Vec<u8> {
        let body = format!(r#"{{"event":"call_ended","call":{{"call_id":"{call_id}"}}}}"#);
        let signature = sign(
            body.as_bytes(),
            self.key,
            unix_ms(SystemTime::now()).unwrap(),
        );
        format!(
            "POST {} HTTP/1.1\r\nhost: test\r\nx-retell-signature: {signature}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.path,
            body.len()
        )
        .into_bytes()
    }

    /// Sends a signed `call_ended` on `stream`; the status, `None` if the
    /// connection failed.
    pub async fn deliver(&self, stream: &mut TcpStream, call_id: &str) -> Option<u16> {
        stream.write_all(&self.signed_request(call_id)).await.ok()?;
        read_response(stream).await.map(|(status, _)| status)
    }
}

/// A connection to `addr` from the local address `source` (any port).
pub async fn try_connect_from(source: &str, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    socket.connect(addr).await
}

/// One response: its status and whether it closes the connection; `None`
/// when the connection ended first.
pub async fn read_response(stream: &mut TcpStream) -> Option<(u16, bool)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    let head_end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status = head.get(9..12)?.parse().ok()?;
    let header = |name: &str| {
        head.lines()
            .find_map(|line| line.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let length: usize = header("content-length:").map_or(0, |v| v.parse().unwrap_or(0));
    let close = header("connection:").is_some_and(|v| v == "close");
    while raw.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    Some((status, close))
}

/// Waits (bounded) until `count` reaches `at_least`.
pub async fn wait_for(count: &AtomicUsize, at_least: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while count.load(Ordering::SeqCst) < at_least {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Attack connections (`SERVE_ATTACK_CONNECTIONS`, default 1 100), sized down
/// to fit the open-file limit: each is at most two descriptors in this
/// process (the client's, and the server's when it runs in-process).
pub fn attack_size() -> usize {
    let wanted = std::env::var("SERVE_ATTACK_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1100);
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(1024);
    wanted.min(soft.saturating_sub(200) / 2)
}

/// One attacker: forged requests to `path` whose 20-byte body comes a byte
/// every 0.4 s, chained on one keep-alive connection, reconnecting whenever
/// the connection closes. Counts itself in `connected` once its first head
/// is sent.
pub async fn attacker(
    addr: SocketAddr,
    path: &'static str,
    source: String,
    connected: Arc<AtomicUsize>,
) {
    let mut counted = false;
    loop {
        let Ok(mut stream) = try_connect_from(&source, addr).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        'connection: loop {
            let now = unix_ms(SystemTime::now()).unwrap();
            let head = format!(
                "POST {path} HTTP/1.1\r\nhost: test\r\nx-retell-signature: v={now},d={}\r\n\
                 content-length: 20\r\n\r\n",
                "0".repeat(64)
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                break 'connection;
            }
            if !counted {
                counted = true;
                connected.fetch_add(1, Ordering::SeqCst);
            }
            for _ in 0..20 {
                if stream.write_all(b"x").await.is_err() {
                    break 'connection;
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            match read_response(&mut stream).await {
                Some((_, false)) => {}
                _ => break 'connection,
            }
        }
    }
}

/// What the deliveries met under attack.
pub struct Report {
    /// Latency of each delivery answered `2xx`; `None`: not within 3 s.
    pub latencies: Vec<Option<Duration>>,
}

impl Report {
    pub fn within(&self, limit: Duration) -> usize {
        self.latencies
            .iter()
            .filter(|l| l.is_some_and(|l| l <= limit))
            .count()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let answered: Vec<_> = self.latencies.iter().flatten().collect();
        let max = answered.iter().max();
        write!(
            f,
            "{}/{} answered 2xx within 1 s, {} within 3 s; slowest answered {:?}; latencies (ms): {:?}",
            self.within(Duration::from_secs(1)),
            self.latencies.len(),
            answered.len(),
            max,
            self.latencies
                .iter()
                .map(|l| l.map(|l| l.as_millis()))
                .collect::<Vec<_>>()
        )
    }
}

/// Floods `route` at `addr` with `connections` attackers from 127.0.0.2 to
/// 127.0.0.20, then sends 20 signed deliveries from 127.0.0.1, 0.4 s apart
/// (over one attacker cycle), each on a new connection.
pub async fn chain_attack(addr: SocketAddr, route: Route, connections: usize) -> Report {
    let connected = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..connections)
        .map(|i| {
            let source = format!("127.0.0.{}", 2 + i % 19);
            tokio::spawn(attacker(addr, route.path, source, Arc::clone(&connected)))
        })
        .collect();
    assert!(
        wait_for(&connected, connections, Duration::from_secs(20)).await,
        "only {connected:?} attackers connected"
    );
    let mut deliveries = Vec::new();
    for i in 0..20 {
        deliveries.push(tokio::spawn(async move {
            let started = Instant::now();
            let answered = tokio::time::timeout(Duration::from_secs(3), async {
                let mut stream = try_connect_from("127.0.0.1", addr).await.ok()?;
                route.deliver(&mut stream, &format!("call_{i}")).await
            })
            .await;
            match answered {
                Ok(Some(status)) if (200..300).contains(&status) => Some(started.elapsed()),
                _ => None,
            }
        }));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let mut latencies = Vec::new();
    for delivery in deliveries {
        latencies.push(delivery.await.unwrap());
    }
    for attacker in attackers {
        attacker.abort();
    }
    Report { latencies }
}
