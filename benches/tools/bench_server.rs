//! A receiver with a no-op handler, for load tests (`benches/http.sh`).
//!
//! ```text
//! RETELL_API_KEY=key_… cargo run --release --features axum,actix,sqlite,redis --example bench_server -- \
//!     --framework axum --port 3000 --workers 2   # or actix, or tower (plain hyper)
//! ```
//!
//! Every request is read, verified, parsed and dispatched to the handler
//! exactly as in a real receiver; the handler does nothing. With `--inbox`
//! (tower only) events are stored instead, and nothing drains them:
//! `sqlite:PATH` (`SqliteInbox`, group commit), `redis://…` (`RedisInbox`), or
//! `sqlite-per-delivery:PATH`, the baseline that commits one SQLite
//! transaction per delivery.

use std::sync::Arc;

use retell_webhooks::Verifier;
use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, WebhookHandler};

/// Accepts every event.
struct Noop;

impl WebhookHandler for Noop {
    type Error = String;
}

#[path = "per_delivery.rs"]
mod per_delivery;

struct Args {
    framework: String,
    port: u16,
    workers: usize,
    inbox: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        framework: "axum".to_owned(),
        port: 3000,
        workers: std::thread::available_parallelism().map_or(2, usize::from),
        inbox: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--framework" => args.framework = value,
            "--port" => args.port = value.parse().map_err(|e| format!("--port: {e}"))?,
            "--workers" => args.workers = value.parse().map_err(|e| format!("--workers: {e}"))?,
            "--inbox" => args.inbox = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let verifier = Verifier::new(&std::env::var("RETELL_API_KEY")?)?;
    println!(
        "{} listening on http://127.0.0.1:{}/retell/webhook ({} workers)",
        args.framework, args.port, args.workers
    );
    match args.framework.as_str() {
        "axum" => axum_server(verifier, args.port, args.workers),
        "actix" => actix_server(verifier, args.port, args.workers),
        "tower" => tower_server(verifier, args.port, args.workers, args.inbox.as_deref()),
        other => Err(format!("unknown framework {other} (axum, actix or tower)").into()),
    }
}

/// A multi-threaded tokio runtime with `workers` threads.
fn tokio_runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
}

fn axum_server(
    verifier: Verifier,
    port: u16,
    workers: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    tokio_runtime(workers)?.block_on(async move {
        let receiver = Receiver::new(verifier, ReceiverConfig::new());
        let app =
            retell_webhooks::adapters::axum::router::<_, ()>("/retell/webhook", &receiver, Noop);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// The tower service served with plain hyper 1.x.
fn tower_server(
    verifier: Verifier,
    port: u16,
    workers: usize,
    inbox: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use retell_webhooks::service::WebhookService;
    tokio_runtime(workers)?.block_on(async move {
        let receiver = Receiver::new(verifier, inbox_config(inbox).await?);
        let service =
            WebhookService::new(&receiver, RouteKind::Events, Noop).with_path("/retell/webhook");
        let service = TowerToHyperService::new(service);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            let service = service.clone();
            tokio::spawn(async move {
                let http = hyper::server::conn::http1::Builder::new();
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}

/// The configuration for `--inbox`.
async fn inbox_config(inbox: Option<&str>) -> Result<ReceiverConfig, Box<dyn std::error::Error>> {
    use retell_webhooks::inbox::{RedisInbox, SqliteInbox};
    let config = ReceiverConfig::new();
    let Some(url) = inbox else {
        return Ok(config);
    };
    Ok(
        if let Some(path) = url.strip_prefix("sqlite-per-delivery:") {
            config.with_inbox(per_delivery::PerDelivery::open(path)?)
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            config.with_inbox(SqliteInbox::open(path)?)
        } else {
            config.with_inbox(RedisInbox::connect(url).await?)
        },
    )
}

fn actix_server(
    verifier: Verifier,
    port: u16,
    workers: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    use retell_webhooks::adapters::actix::endpoint;
    let receiver = Receiver::new(verifier, ReceiverConfig::new());
    let handler = Arc::new(Noop);
    actix_web::rt::System::new().block_on(async move {
        actix_web::HttpServer::new(move || {
            let route = endpoint(RouteKind::Events, &receiver, Arc::clone(&handler));
            actix_web::App::new().route("/retell/webhook", route)
        })
        .workers(workers.max(1))
        .bind(("127.0.0.1", port))?
        .run()
        .await
    })?;
    Ok(())
}
