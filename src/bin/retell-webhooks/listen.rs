//! `retell-webhooks listen`: a local receiver built on the crate's axum router.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::Response;
use retell_webhooks::FunctionRequest;
use retell_webhooks::adapters::axum::{function_router, router};
use retell_webhooks::dedupe::{MemoryDedupe, RedisDedupe};
use retell_webhooks::inbox::{Inbox, RetrySchedule, Worker};
use retell_webhooks::receiver::{Outcome, Reason};
use retell_webhooks::server::ServeConfig;
use retell_webhooks::{FunctionResponse, Verifier, VerifyError};
use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, WebhookHandler};
use tokio::task::JoinHandle;

use crate::common;
use crate::forward::{Forwarder, Printer};

/// Connections the kernel queues before `serve` accepts them. A flood that
/// reconnects all at once can fill tokio's default of 1 024, and a delivery's
/// dropped SYN is retried only a second later; the kernel caps it at
/// `net.core.somaxconn` (4 096 on current Linux).
const BACKLOG: u32 = 4096;

/// Binds `host:port` with a [`BACKLOG`]-long accept queue.
async fn bind(host: &str, port: u16) -> io::Result<tokio::net::TcpListener> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to bind");
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// How long Ctrl-C waits for the requests being answered.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Arguments of `listen`.
#[derive(clap::Args)]
#[command(after_help = "\
Every request is verified and answered exactly as the crate's axum router \
does in production: 204 for events, 200 with an empty answer for \
call_inbound / chat_inbound, 200 with {\"ok\":true} for custom functions, \
401 for any signature failure. One line per request: time (UTC), event, \
call or chat id, status, reason. Bodies and headers are never printed.

Each request head must arrive within 5 s of connecting or of the previous \
answer (so idle connections are closed after 5 s); at most 1024 connections \
are open at once, 64 from one address. When all are taken, a new connection \
displaces one that never delivered a signed request, from the address \
holding the most.

The key comes from --key-file (a file holding it), RETELL_API_KEY, or --key; \
prefer the first two: a --key value is visible to every user in `ps`. \
Without any of them, the public demo key is used and printed, with the \
`send` command to try.")]
pub struct Args {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Retell API key to verify with [default: the public demo key]. Never
    /// printed. Visible in `ps`: prefer --key-file or RETELL_API_KEY.
    #[arg(long, env = common::KEY_ENV, hide_env_values = true)]
    key: Option<String>,
    /// File holding the Retell API key (surrounding whitespace ignored).
    #[arg(long, value_name = "PATH", conflicts_with = "key")]
    key_file: Option<std::path::PathBuf>,
    /// URL path of the event webhook (events and inbound call/SMS requests).
    #[arg(long, default_value = "/webhook")]
    path: String,
    /// URL path of the custom-function endpoint.
    #[arg(long, default_value = "/function")]
    function_path: String,
    /// Process each event once: `off`, `memory` (this process), or a Redis URL
    /// (`redis://host:6379`, `redis+unix:///path/redis.sock`) that several
    /// listeners share.
    #[arg(long, value_name = "STORE", default_value = "off")]
    dedupe: String,
    /// Store every verified event durably before answering Retell, then
    /// process it with retries for hours: `sqlite:PATH` or a Redis URL
    /// (`redis://host:6379`, `redis+unix:///path/redis.sock`).
    #[arg(long, value_name = "URL")]
    inbox: Option<String>,
    /// With --inbox: POST each stored event's original bytes, signed again
    /// with the same key and with an `Idempotency-Key` header, to this
    /// http:// URL until it answers 2xx.
    #[arg(long, value_name = "URL", requires = "inbox")]
    forward: Option<String>,
    /// With --inbox: the delays between attempts of a failing event
    /// [default: 5s,30s,2m,10m,30m,1h,2h,4h,8h].
    #[arg(long, value_name = "LIST", requires = "inbox")]
    retry_schedule: Option<String>,
    /// With --inbox: events processed at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    workers: usize,
    /// With --inbox: how long one attempt (one forward) may take before it
    /// counts as failed. An event whose listener died mid-attempt is taken up
    /// again this long plus 30 s later.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        requires = "inbox"
    )]
    handler_timeout: String,
    /// Serve the receiver's and the inbox's metrics in the Prometheus text
    /// format at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// With --inbox: every DURATION (10m), rebuild from Retell's API the
    /// events Retell could not deliver, as `backfill` does, with the same
    /// key. The settings below apply to it.
    #[arg(long, value_name = "DURATION", requires = "inbox")]
    backfill_every: Option<String>,
    #[command(flatten)]
    backfill: crate::backfill::Settings,
}

/// The local handler: acknowledges everything, answers inbound requests with
/// an empty response and functions with a small JSON ack.
#[derive(Debug, Clone, Copy)]
struct LocalHandler;

impl WebhookHandler for LocalHandler {
    type Error = Infallible;

    async fn on_function_call(
        &self,
        request: FunctionRequest,
    ) -> Result<FunctionResponse, Infallible> {
        let _ = request;
        Ok(FunctionResponse::json(serde_json::json!({ "ok": true })))
    }
}

/// A running local listener: both routes on one [`Receiver`].
pub struct Listener {
    addr: SocketAddr,
    path: String,
    function_path: String,
    task: JoinHandle<io::Result<()>>,
}

impl Listener {
    /// Binds `host:port`, mounts the event route at `path` and the function
    /// route at `function_path`, and serves until `shutdown` completes. Prints
    /// one line per request on standard output.
    pub async fn start<F>(
        host: &str,
        port: u16,
        path: &str,
        function_path: &str,
        verifier: Verifier,
        config: ReceiverConfig,
        shutdown: F,
    ) -> Result<Self, ExitCode>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        for (flag, value) in [("--path", path), ("--function-path", function_path)] {
            check_path(value).map_err(|why| {
                common::fail(common::EXIT_USAGE, format_args!("{flag}: {why}"), None)
            })?;
        }
        if path == function_path {
            return Err(common::fail(
                common::EXIT_USAGE,
                "--path and --function-path must differ",
                None,
            ));
        }
        // One receiver for both routes, with separate in-flight places and
        // shares of the body budget for each.
        let receiver = Receiver::new(verifier, config);
        let app = Router::new()
            .merge(router(path, &receiver, LocalHandler))
            .merge(function_router(function_path, &receiver, LocalHandler))
            .layer(axum::middleware::map_response(log_line));
        let listener = bind(host, port).await.map_err(|err| {
            common::fail(
                common::EXIT_USAGE,
                format_args!("cannot listen on {host}:{port}: {err}"),
                Some("pick another --port (0: any free port)"),
            )
        })?;
        let addr = listener.local_addr().map_err(|err| {
            common::fail(
                common::EXIT_USAGE,
                format_args!("cannot listen: {err}"),
                None,
            )
        })?;
        let config = ServeConfig::new().with_shutdown_grace(SHUTDOWN_GRACE);
        let task = tokio::spawn(retell_webhooks::serve(listener, app, config, shutdown));
        Ok(Self {
            addr,
            path: path.to_owned(),
            function_path: function_path.to_owned(),
            task,
        })
    }

    /// `http://host:port` of the bound socket.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of the route that receives `route` requests.
    pub fn url(&self, route: RouteKind) -> String {
        let path = match route {
            RouteKind::Events => &self.path,
            RouteKind::Function => &self.function_path,
        };
        format!("{}{path}", self.base_url())
    }

    /// Waits until the server has shut down (after the shutdown signal).
    pub async fn wait(self) -> Result<(), ExitCode> {
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(common::fail(
                common::EXIT_USAGE,
                format_args!("the receiver stopped: {err}"),
                None,
            )),
            Err(err) => Err(common::fail(
                common::EXIT_USAGE,
                format_args!("the receiver stopped: {err}"),
                None,
            )),
        }
    }
}

/// A route path axum accepts as a plain path: `/` then no parameters.
fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must start with `/`");
    }
    if path.contains(['{', '}', '*']) {
        return Err("must be a plain path (no `{`, `}` or `*`)");
    }
    Ok(())
}

/// Prints the one line of a request, and a warning when the receiver's
/// wrong-key alert fires.
async fn log_line(response: Response) -> Response {
    let outcome = response.extensions().get::<Outcome>();
    let line = match outcome {
        Some(outcome) => describe(outcome),
        None => format!(
            "- - {} {}",
            response.status().as_u16(),
            if response.status() == axum::http::StatusCode::NOT_FOUND {
                "no route at this path"
            } else {
                "not a webhook route"
            }
        ),
    };
    common::print(format_args!("{} {line}", clock()));
    // The receiver raises this at most once a minute; only a log would show it.
    if let Some(streak) = outcome.and_then(|outcome| outcome.key_alert) {
        common::warn(format_args!(
            "{streak} requests in a row failed the signature check and none verified \
             (answered 401): the key is probably not the Retell API key with the \
             webhook badge in Retell's dashboard"
        ));
    }
    response
}

/// `event id status reason`, with `-` for what is unknown.
pub fn describe(outcome: &Outcome) -> String {
    let event = match (&outcome.event, outcome.route) {
        (Some(event), _) => common::printable_id(event),
        (None, RouteKind::Function) => "custom_function",
        (None, RouteKind::Events) => "-",
    };
    let id = outcome
        .call_id
        .as_deref()
        .or(outcome.chat_id.as_deref())
        .map_or("-", common::printable_id);
    format!(
        "{event} {id} {} {}",
        outcome.status,
        reason(&outcome.reason)
    )
}

/// A short reason: `ok`, `answered`, `signature mismatch`, …
fn reason(reason: &Reason) -> String {
    match reason {
        Reason::Handled => "ok".to_owned(),
        Reason::Unauthorized(why) => match why {
            VerifyError::MissingSignature => "missing signature".to_owned(),
            VerifyError::Mismatch => "signature mismatch".to_owned(),
            VerifyError::TooOld { skew_ms, .. } => {
                format!("signature too old ({skew_ms} ms; replay window exceeded)")
            }
            VerifyError::TooNew { skew_ms, .. } => {
                format!("signature from the future ({skew_ms} ms; check the clock)")
            }
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}

/// The current UTC time, `HH:MM:SS`.
pub fn clock() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second())
}

/// The configuration for `--dedupe`.
async fn dedupe_config(store: &str) -> Result<ReceiverConfig, ExitCode> {
    let config = ReceiverConfig::new();
    match store {
        "off" => Ok(config),
        "memory" => {
            common::print("deduplicating in this process");
            Ok(config.with_dedupe(MemoryDedupe::new()))
        }
        url if url.starts_with("redis") => {
            let store = RedisDedupe::connect(url).await.map_err(|err| {
                common::fail(
                    common::EXIT_USAGE,
                    format_args!("--dedupe: {err}"),
                    Some("is redis-server running at that address?"),
                )
            })?;
            common::print(format_args!("deduplicating in {store:?}"));
            Ok(config.with_dedupe(store))
        }
        _ => Err(common::fail(
            common::EXIT_USAGE,
            "--dedupe takes off, memory or a redis:// / redis+unix:// URL",
            None,
        )),
    }
}

/// Runs the receiver until Ctrl-C.
pub fn run(args: &Args) -> ExitCode {
    let runtime = match common::runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(listen(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

async fn listen(args: &Args) -> Result<(), ExitCode> {
    let from_file = match &args.key_file {
        Some(path) => Some(common::read_key_file(path)?),
        None => None,
    };
    if from_file.is_none() && common::key_flag_on_command_line() {
        common::warn(
            "--key is visible to other users in `ps`: prefer --key-file or RETELL_API_KEY",
        );
    }
    let (key, demo) = common::key_or_demo(from_file.as_deref().or(args.key.as_deref()));
    let verifier = common::verifier(key)?;
    let shutdown = async {
        // Without a signal handler there is no clean way to stop: serve on.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        common::print("shutting down");
    };
    let metrics = match &args.metrics {
        Some(addr) => Some(crate::metrics::serve(addr).await?),
        None => None,
    };
    let mut config = dedupe_config(&args.dedupe).await?;
    let mut store = None;
    let worker = match &args.inbox {
        Some(url) => {
            let (with_inbox, worker, opened) = inbox_worker(args, url, key, config).await?;
            config = with_inbox;
            store = Some(opened);
            Some(worker)
        }
        None => None,
    };
    let backfill = match (&args.backfill_every, store) {
        (Some(every), Some(store)) => Some(periodic_backfill(args, every, key, demo, store)?),
        _ => None,
    };
    let receiver = Listener::start(
        &args.host,
        args.port,
        &args.path,
        &args.function_path,
        verifier,
        config,
        shutdown,
    )
    .await?;
    let events = receiver.url(RouteKind::Events);
    let function = receiver.url(RouteKind::Function);
    let env = if demo {
        common::print(format_args!(
            "no --key or {}: verifying with the public demo key {} (local tests only)",
            common::KEY_ENV,
            common::DEMO_KEY
        ));
        ""
    } else {
        common::print(format_args!(
            "verifying with the key from --key-file, --key or {} (not shown)",
            common::KEY_ENV
        ));
        "RETELL_API_KEY=<same key> "
    };
    if let Some(url) = metrics {
        common::print(format_args!("metrics (Prometheus text format) at {url}"));
    }
    common::print(format_args!(
        "try: {env}retell-webhooks send --url {events} --event call_ended"
    ));
    common::print(format_args!(
        "     {env}retell-webhooks send --url {function} --event custom_function"
    ));
    common::print(format_args!(
        "listening on {events} (events, call_inbound, chat_inbound) and {function} \
         (custom functions); Ctrl-C to stop"
    ));
    let worker = worker.map(Worker::spawn);
    let backfill = backfill.map(tokio::spawn);
    let served = receiver.wait().await;
    if let Some(backfill) = backfill {
        // A run cut here loses nothing: what it stored is stored, and the
        // watermark moves only past that.
        backfill.abort();
    }
    if let Some(worker) = worker {
        worker.shutdown().await;
    }
    served
}

/// `--backfill-every`: a run now, then one every period.
fn periodic_backfill(
    args: &Args,
    every: &str,
    key: &str,
    demo: bool,
    store: Arc<dyn Inbox>,
) -> Result<impl Future<Output = ()> + Send + 'static, ExitCode> {
    let period = common::parse_duration(every).map_err(|why| {
        common::fail(
            common::EXIT_USAGE,
            format_args!("--backfill-every: {why}"),
            Some("for example --backfill-every 10m"),
        )
    })?;
    if period.is_zero() {
        return Err(common::fail(
            common::EXIT_USAGE,
            "--backfill-every must be longer than 0",
            None,
        ));
    }
    if demo {
        common::warn("--backfill-every with the demo key: Retell's API will refuse it");
    }
    let backfill = args.backfill.backfill(key, store)?;
    common::print(format_args!(
        "backfilling from {} every {every}",
        common::escape_for_terminal(backfill.client().base_url().as_bytes())
    ));
    Ok(async move {
        loop {
            let report = backfill.run().await;
            crate::backfill::print_report(&report);
            if let Some(error) = report.error() {
                common::warn(format_args!(
                    "the backfill stopped early ({error}); the next run resumes from there"
                ));
            }
            tokio::time::sleep(period).await;
        }
    })
}

/// `--inbox` (with `--forward`, `--retry-schedule`, `--workers`): the
/// configuration that stores events, the worker that processes them, and
/// the store.
async fn inbox_worker(
    args: &Args,
    url: &str,
    key: &str,
    config: ReceiverConfig,
) -> Result<(ReceiverConfig, Worker, Arc<dyn Inbox>), ExitCode> {
    let store = crate::store::open(url).await?;
    let schedule = match &args.retry_schedule {
        Some(list) => list.parse::<RetrySchedule>().map_err(|err| {
            common::fail(
                common::EXIT_USAGE,
                format_args!("--retry-schedule: {err}"),
                Some("for example --retry-schedule 5s,30s,2m,10m,1h"),
            )
        })?,
        None => RetrySchedule::default(),
    };
    let worker = match &args.forward {
        Some(target) => {
            let forwarder = Forwarder::new(target, key).map_err(|why| {
                common::fail(common::EXIT_USAGE, format_args!("--forward: {why}"), None)
            })?;
            common::print(format_args!(
                "forwarding each stored event to {}",
                common::escape_for_terminal(target.as_bytes())
            ));
            Worker::raw(Arc::clone(&store), forwarder)
        }
        None => Worker::raw(Arc::clone(&store), Printer::default()),
    };
    let shown = if url.starts_with("sqlite:") {
        common::escape_for_terminal(url.as_bytes())
    } else {
        "Redis (address not shown)".to_owned()
    };
    common::print(format_args!(
        "storing every verified event in {shown} before answering; {} retries over {} min",
        schedule.delays().len(),
        schedule.delays().iter().sum::<Duration>().as_secs() / 60
    ));
    let timeout = common::parse_duration(&args.handler_timeout)
        .ok()
        .filter(|timeout| !timeout.is_zero())
        .ok_or_else(|| {
            common::fail(
                common::EXIT_USAGE,
                "--handler-timeout: expected a positive duration",
                Some("for example --handler-timeout 30s"),
            )
        })?;
    let worker = worker
        .with_concurrency(args.workers)
        .with_handler_timeout(timeout)
        .with_retry_schedule(schedule);
    Ok((config.with_inbox_store(Arc::clone(&store)), worker, store))
}
