//! `retell_webhooks::serve` over real sockets on 127.0.0.1: the per-source
//! limit, shedding when the cap is full, exempt sources, verified connections
//! kept longest, graceful shutdown, and the keep-alive chain attack, against
//! `serve` and against the semaphore loop it replaces.
//!
//! Distinct sources are distinct 127.x addresses, which Linux's loopback
//! accepts as source addresses without set-up.
#![cfg(feature = "server")]

#[path = "common/chain_attack.rs"]
mod chain_attack;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use retell_webhooks::receiver::IpRange;
use retell_webhooks::server::ServeConfig;
use retell_webhooks::service::WebhookService;
use retell_webhooks::{CallEvent, Receiver, ReceiverConfig, RouteKind, Verifier, WebhookHandler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use chain_attack::{Route, attack_size, chain_attack, read_response, try_connect_from, wait_for};

const KEY: &str = "key_9f3c2e1d7a8b4c6e0f5a2b3c";

const ROUTE: Route = Route {
    path: "/webhook",
    key: KEY,
};

/// Long enough that no idle test connection meets the head timeout.
const LONG: Duration = Duration::from_secs(60);

/// How long a closure the test expects may take to show.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// The two attack runs make thousands of connections: one at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Acknowledges every event; the one of call `slow` waits for `release`.
#[derive(Default)]
struct App {
    started: Notify,
    release: Notify,
    handled: AtomicUsize,
}

impl WebhookHandler for App {
    type Error = Infallible;

    async fn on_call_ended(&self, event: CallEvent) -> Result<(), Infallible> {
        if event.call.call_id == "slow" {
            self.started.notify_one();
            self.release.notified().await;
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn service_with(app: &Arc<App>, config: ReceiverConfig) -> WebhookService<Arc<App>> {
    let receiver = Receiver::new(Verifier::new(KEY).unwrap(), config);
    WebhookService::new(&receiver, RouteKind::Events, Arc::clone(app)).with_path(ROUTE.path)
}

/// The receiver without its bounds on unverified bodies (minimum rate, time
/// limit), which also cut each forged request of the chain attack short: the
/// chain tests show what the connection handling does on its own.
fn without_body_bounds() -> ReceiverConfig {
    ReceiverConfig::new()
        .with_body_min_rate(0, Duration::ZERO)
        .with_body_time_limit(LONG)
}

struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

async fn start(config: ServeConfig) -> Server {
    start_with(config, ReceiverConfig::new()).await
}

async fn start_with(config: ServeConfig, receiver: ReceiverConfig) -> Server {
    let app = Arc::new(App::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, stop) = oneshot::channel::<()>();
    let stop = async {
        let _ = stop.await;
    };
    let task = tokio::spawn(retell_webhooks::serve(
        listener,
        service_with(&app, receiver),
        config,
        stop,
    ));
    Server {
        addr,
        app,
        shutdown: Some(shutdown),
        task,
    }
}

async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    try_connect_from(source, addr).await.unwrap()
}

/// Sends a signed `call_ended` on `stream`; the status, `None` if the
/// connection failed.
async fn deliver(stream: &mut TcpStream, call_id: &str) -> Option<u16> {
    ROUTE.deliver(stream, call_id).await
}

/// Whether the server closes `stream` (end of file or reset) within `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Spawns a reader per stream that counts it when the server closes it.
fn watch_closures(streams: Vec<TcpStream>) -> (Arc<AtomicUsize>, Vec<JoinHandle<bool>>) {
    let closed = Arc::new(AtomicUsize::new(0));
    let tasks = streams
        .into_iter()
        .map(|mut stream| {
            let closed = Arc::clone(&closed);
            tokio::spawn(async move {
                let gone = closed_by_server(&mut stream, LONG).await;
                if gone {
                    closed.fetch_add(1, Ordering::SeqCst);
                }
                gone
            })
        })
        .collect();
    (closed, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_over_its_limit_loses_its_oldest_idle_connections() {
    let limit = 4;
    let extra = 3;
    let server = start(
        ServeConfig::new()
            .with_head_timeout(LONG)
            .with_max_connections_per_source(limit),
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..limit + extra {
        idle.push(connect_from("127.0.0.2", server.addr).await);
    }
    // Each connection over the limit sheds the source's oldest idle one.
    for stream in &mut idle[..extra] {
        assert!(closed_by_server(stream, CLOSE_WITHIN).await);
    }
    for (i, stream) in idle[extra..].iter_mut().enumerate() {
        assert_eq!(deliver(stream, &format!("kept_{i}")).await, Some(204));
    }
    let mut other = connect_from("127.0.0.3", server.addr).await;
    assert_eq!(deliver(&mut other, "other").await, Some(204));
    assert_eq!(server.app.handled.load(Ordering::SeqCst), limit + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cap_sheds_a_flood_for_a_delivery_but_never_an_exempt_source() {
    let cap = 16;
    let server = start(
        ServeConfig::new()
            .with_head_timeout(LONG)
            .with_max_connections(cap)
            .with_exempt_sources(["127.0.0.9".parse::<IpRange>().unwrap()]),
    )
    .await;
    // The exempt connections are the oldest: shed first by age alone.
    let mut exempt = Vec::new();
    for _ in 0..4 {
        exempt.push(connect_from("127.0.0.9", server.addr).await);
    }
    // 36 idle connections from six sources (six each, under the limit of 8):
    // the cap leaves room for 12, so 24 are shed.
    let mut flood = Vec::new();
    for source in 2..8 {
        for _ in 0..6 {
            flood.push(connect_from(&format!("127.0.0.{source}"), server.addr).await);
        }
    }
    let (closed, _readers) = watch_closures(flood);
    assert!(wait_for(&closed, 24, CLOSE_WITHIN).await, "{closed:?}");

    let started = Instant::now();
    let mut delivery = connect_from("127.0.0.20", server.addr).await;
    let status = tokio::time::timeout(Duration::from_secs(1), deliver(&mut delivery, "c1")).await;
    assert_eq!(status, Ok(Some(204)), "after {:?}", started.elapsed());
    // Its admission shed one more of the flood.
    assert!(wait_for(&closed, 25, CLOSE_WITHIN).await, "{closed:?}");
    for (i, stream) in exempt.iter_mut().enumerate() {
        assert_eq!(deliver(stream, &format!("exempt_{i}")).await, Some(204));
    }
    assert_eq!(closed.load(Ordering::SeqCst), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_connections_are_shed_after_never_verified_ones() {
    let server = start(
        ServeConfig::new()
            .with_head_timeout(LONG)
            .with_max_connections(4),
    )
    .await;
    // The oldest connection delivers a signed request and stays open.
    let mut verified = connect_from("127.0.0.2", server.addr).await;
    assert_eq!(deliver(&mut verified, "v1").await, Some(204));
    let mut idle = Vec::new();
    for source in 3..6 {
        idle.push(connect_from(&format!("127.0.0.{source}"), server.addr).await);
    }
    // Each newcomer sheds the oldest never-verified connection, not the
    // verified one, older still.
    let mut newcomers = Vec::new();
    for (i, source) in (6..9).enumerate() {
        newcomers.push(connect_from(&format!("127.0.0.{source}"), server.addr).await);
        assert!(
            closed_by_server(&mut idle[i], CLOSE_WITHIN).await,
            "idle {i}"
        );
    }
    assert_eq!(deliver(&mut verified, "v2").await, Some(204));
    // Once every connection is verified, the oldest of them goes.
    for (i, stream) in newcomers.iter_mut().enumerate() {
        assert_eq!(deliver(stream, &format!("n{i}")).await, Some(204));
    }
    let mut last = connect_from("127.0.0.10", server.addr).await;
    assert!(closed_by_server(&mut verified, CLOSE_WITHIN).await);
    assert_eq!(deliver(&mut last, "last").await, Some(204));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish() {
    let mut server = start(ServeConfig::new()).await;
    let mut stream = connect_from("127.0.0.2", server.addr).await;
    stream
        .write_all(&ROUTE.signed_request("slow"))
        .await
        .unwrap();
    server.app.started.notified().await;
    server.shutdown.take().unwrap().send(()).unwrap();
    // The listener closes at once: a new connection is refused (bounded wait).
    let deadline = Instant::now() + CLOSE_WITHIN;
    while try_connect_from("127.0.0.3", server.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !server.task.is_finished(),
        "returned before the request ended"
    );
    server.app.release.notify_one();
    assert_eq!(read_response(&mut stream).await.map(|r| r.0), Some(204));
    let served = tokio::time::timeout(CLOSE_WITHIN, server.task).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "{served:?}");
    assert_eq!(server.app.handled.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------
// The keep-alive chain attack
// ---------------------------------------------------------------------------

/// The attack's connection count and a cap below it, in proportion to
/// 1 100 against 1 024.
fn attack_and_cap() -> (usize, usize) {
    let connections = attack_size();
    (connections, connections * 1024 / 1100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keep_alive_chain_attack_does_not_delay_deliveries() {
    let _heavy = HEAVY.lock().await;
    let (connections, cap) = attack_and_cap();
    let config = ServeConfig::new().with_max_connections(cap);
    let server = start_with(config, without_body_bounds()).await;
    let report = chain_attack(server.addr, ROUTE, connections).await;
    eprintln!("serve, {connections} attack connections, cap {cap}: {report}");
    assert_eq!(report.within(Duration::from_secs(1)), 20, "{report}");
}

/// The control: the same attack against the loop `listen` ran before
/// (`header_read_timeout` and a semaphore of connections taken before
/// `accept`), where deliveries wait in the backlog behind the attackers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keep_alive_chain_attack_delays_deliveries_on_a_semaphore_loop() {
    let _heavy = HEAVY.lock().await;
    let (connections, cap) = attack_and_cap();
    let app = Arc::new(App::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service =
        hyper_util::service::TowerToHyperService::new(service_with(&app, without_body_bounds()));
    let server = tokio::spawn(async move {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(5));
        let slots = Arc::new(tokio::sync::Semaphore::new(cap));
        loop {
            let slot = Arc::clone(&slots).acquire_owned().await.unwrap();
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let connection =
                http.serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone());
            tokio::spawn(async move { (connection.await, drop(slot)) });
        }
    });
    let report = chain_attack(addr, ROUTE, connections).await;
    server.abort();
    eprintln!("semaphore loop, {connections} attack connections, cap {cap}: {report}");
    assert!(report.within(Duration::from_secs(1)) < 20, "{report}");
}
