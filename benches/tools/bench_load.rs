//! An HTTP load generator whose every request is a different event, for the
//! inbox receivers of `benches/http.sh` (wrk repeats one body, which an
//! inbox answers as a copy without storing it).
//!
//! ```text
//! RETELL_API_KEY=key_… cargo run --release --example bench_load -- \
//!     --url http://127.0.0.1:3917/retell/webhook --connections 32 --seconds 8 [--size medium|large]
//! ```
//!
//! Each request is the realistic `call_ended` of `benches/data` with a call id
//! of its own, signed when it is sent, over keep-alive HTTP/1.1 connections.
//! Prints `RESULT rps=… p50_ms=… p99_ms=… requests=… non2xx=… errors=…`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

struct Args {
    url: String,
    connections: usize,
    seconds: u64,
    size: String,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        url: "http://127.0.0.1:3917/retell/webhook".to_owned(),
        connections: 32,
        seconds: 8,
        size: "medium".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => args.url = value,
            "--connections" => args.connections = value.parse().map_err(|e| format!("{e}"))?,
            "--seconds" => args.seconds = value.parse().map_err(|e| format!("{e}"))?,
            "--size" => args.size = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

/// The body with its call id swapped for one of the same length made of `n`.
struct Template {
    body: Vec<u8>,
    id_at: usize,
    id_len: usize,
}

impl Template {
    fn new(body: &[u8]) -> Result<Self, String> {
        let needle = b"\"call_id\":\"";
        let start = body
            .windows(needle.len())
            .position(|w| w == needle)
            .ok_or("no call_id in the body")?
            + needle.len();
        let len = body[start..]
            .iter()
            .position(|&b| b == b'"')
            .ok_or("unterminated call_id")?;
        Ok(Self {
            body: body.to_vec(),
            id_at: start,
            id_len: len,
        })
    }

    fn with_id(&self, run: u64, n: u64) -> Vec<u8> {
        let mut body = self.body.clone();
        let id = format!("{run:x}{n:020x}");
        let id = id.as_bytes();
        let slot = &mut body[self.id_at..self.id_at + self.id_len];
        slot.fill(b'0');
        let from = self.id_len.saturating_sub(id.len());
        slot[from..].copy_from_slice(&id[id.len().saturating_sub(self.id_len)..]);
        body
    }
}

struct Totals {
    requests: AtomicU64,
    non2xx: AtomicU64,
    errors: AtomicU64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let key: Arc<str> = std::env::var("RETELL_API_KEY")?.into();
    let body: &[u8] = match args.size.as_str() {
        "large" => include_bytes!("../data/large.json"),
        _ => include_bytes!("../data/medium.json"),
    };
    let template = Arc::new(Template::new(body)?);
    let uri: hyper::Uri = args.url.parse()?;
    let host = uri.host().ok_or("no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let path: Arc<str> = uri.path().into();
    // Ids differ from one run to the next, so a store that kept the last
    // run's events still stores every request.
    let run = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_millis() as u64;
    let next = Arc::new(AtomicU64::new(0));
    let totals = Arc::new(Totals {
        requests: AtomicU64::new(0),
        non2xx: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (host, path, key) = (host.clone(), Arc::clone(&path), Arc::clone(&key));
        let (template, next, totals) = (
            Arc::clone(&template),
            Arc::clone(&next),
            Arc::clone(&totals),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            'connect: while Instant::now() < until {
                let Ok(stream) = tokio::net::TcpStream::connect((host.as_str(), port)).await else {
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let Ok((mut sender, conn)) = http1::handshake(TokioIo::new(stream)).await else {
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                tokio::spawn(conn);
                while Instant::now() < until {
                    let body = template.with_id(run, next.fetch_add(1, Ordering::Relaxed));
                    let now = retell_webhooks::unix_ms(SystemTime::now()).unwrap_or(0);
                    let signature = retell_webhooks::sign(&body, &key, now);
                    let request = Request::post(&*path)
                        .header("host", host.as_str())
                        .header("content-type", "application/json")
                        .header(retell_webhooks::SIGNATURE_HEADER, signature)
                        .body(Full::new(Bytes::from(body)))
                        .unwrap_or_default();
                    let sent = Instant::now();
                    let answer = match sender.send_request(request).await {
                        Ok(answer) => answer,
                        Err(_) => {
                            totals.errors.fetch_add(1, Ordering::Relaxed);
                            continue 'connect;
                        }
                    };
                    let status = answer.status();
                    if answer.into_body().collect().await.is_err() {
                        totals.errors.fetch_add(1, Ordering::Relaxed);
                        continue 'connect;
                    }
                    latencies.push(sent.elapsed());
                    totals.requests.fetch_add(1, Ordering::Relaxed);
                    if !status.is_success() {
                        totals.non2xx.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let requests = totals.requests.load(Ordering::Relaxed);
    println!(
        "RESULT rps={:.0} p50_ms={:.2} p99_ms={:.2} requests={} non2xx={} errors={}",
        requests as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
        requests,
        totals.non2xx.load(Ordering::Relaxed),
        totals.errors.load(Ordering::Relaxed)
    );
    Ok(())
}
