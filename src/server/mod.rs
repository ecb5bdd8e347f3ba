//! A hardened HTTP/1 server loop (feature `server`): [`serve`] any tower
//! service — the crate's [`WebhookService`](crate::service::WebhookService),
//! an axum `Router` — on a [`TcpListener`], with the limits of a
//! [`ServeConfig`].
//!
//! `axum::serve` and a bare hyper loop have no head timeout and no connection
//! limit, so a client that opens connections and sends nothing, or trickles
//! its requests, holds the server's file descriptors for as long as it likes.
//! [`serve`] bounds each connection's head, caps the connections, limits those
//! of one source address, and when the cap is full makes room for a new
//! connection by shedding one that never proved it holds the key, instead of
//! leaving the newcomer — perhaps Retell's delivery — in the listen backlog.
//!
//! ```no_run
//! use retell_webhooks::server::ServeConfig;
//! use retell_webhooks::service::WebhookService;
//! use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, Verifier, WebhookHandler};
//!
//! struct App;
//! impl WebhookHandler for App {
//!     type Error = std::convert::Infallible;
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = Receiver::new(Verifier::new("key_from_the_dashboard")?, ReceiverConfig::new());
//! let service = WebhookService::new(&receiver, RouteKind::Events, App).with_path("/webhook");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! let shutdown = async { /* a Ctrl-C or SIGTERM future */ };
//! retell_webhooks::serve(listener, service, ServeConfig::new(), shutdown).await?;
//! # Ok(())
//! # }
//! ```

mod config;
mod connections;

pub use config::{
    DEFAULT_ACCEPT_ERROR_PAUSE, DEFAULT_HEAD_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SHUTDOWN_GRACE, ServeConfig,
};

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::connections::{Admission, Connections};
use crate::service::SignatureVerified;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `service` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish (up to [`ServeConfig::with_shutdown_grace`]) and
/// returns.
///
/// Each connection is served by hyper's HTTP/1 server, with these bounds:
///
/// * **Head timeout.** Each request head must arrive within
///   [`with_head_timeout`](ServeConfig::with_head_timeout) (5 s) of the
///   connection or of the previous answer; idle keep-alive connections close
///   after as long.
/// * **Connection cap** ([`with_max_connections`](ServeConfig::with_max_connections),
///   1 024). When it is full, a new connection is not left in the listen
///   backlog: one already open is shed to make room. The victim is a
///   connection that never delivered a verified request, from the source
///   address holding the most connections, the oldest; only when every
///   connection has delivered one, a verified connection, by the same order.
///   A connection from an exempt source is shed only to admit another exempt
///   one. When nothing can be shed, the new connection is closed.
/// * **Per-source limit**
///   ([`with_max_connections_per_source`](ServeConfig::with_max_connections_per_source),
///   64). A source at its limit that opens another connection sheds its own
///   oldest never-verified connection, or, if it has none, has the new one
///   closed. Shedding the old one rather than refusing the new one keeps a
///   fresh connection — the one most likely to carry a delivery — for a
///   sender behind an address it shares with a flood (a NAT), while the
///   flood still cannot grow past the limit.
/// * **Exempt sources** ([`with_exempt_sources`](ServeConfig::with_exempt_sources)):
///   no per-source limit, shed only for each other. Put Retell's address and
///   your reverse proxies there: a proxy's clients all share its address.
/// * **Failed `accept`s**: a connection reset before it was accepted is
///   skipped; any other error (out of file descriptors) is logged with
///   feature `tracing` and pauses accepting
///   ([`with_accept_error_pause`](ServeConfig::with_accept_error_pause), 1 s).
///   Neither ends the server.
///
/// A connection has delivered a verified request once a response of the
/// crate's [`WebhookService`](crate::service::WebhookService) (which the axum
/// `router`, `function_router` and `endpoint` are) to a request with a valid
/// signature went through it: the service marks such responses. Connections
/// served by the extractors (`VerifiedEvent`, …) in handlers of your own, or
/// through a layer that replaces the response's extensions, are never marked,
/// and count as never verified.
///
/// Shedding drops a never-verified connection at once, with any request on
/// it: its slot is free the moment it is chosen. That includes a sender's
/// first request still in its handler, since the mark comes with the
/// response; Retell retries it, and exempting Retell's address avoids it. A
/// verified connection is asked to close after the request it is on, if any
/// (hyper's graceful shutdown): its slot is given to the newcomer at once,
/// its file descriptor is released when that request ends.
///
/// Each request gets the peer's [`SocketAddr`] in its extensions (IPv4-mapped
/// IPv6 addresses as IPv4), where the receiver's source allowlist looks for
/// it; with feature `axum`, axum's `ConnectInfo<SocketAddr>` too.
///
/// # Errors
///
/// None at present: failed `accept`s are retried, and a connection that ends
/// badly concerns only its client. The `io::Result` leaves room for errors
/// of set-up.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.head_timeout);
    let table = Arc::new(Table(Mutex::new(Connections::new(
        config.max_connections,
        config.max_connections_per_source(),
    ))));
    // Every connection task watches it; dropping it (when `serve` returns or
    // is dropped) stops them all at once.
    let (stop_all, _) = watch::channel(Stop::Run);
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) =>
            {
                continue;
            }
            Err(err) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    target: "retell_webhooks",
                    "cannot accept a connection: {err}; pausing {} ms",
                    config.accept_error_pause.as_millis()
                );
                #[cfg(not(feature = "tracing"))]
                let _ = err;
                tokio::select! {
                    () = tokio::time::sleep(config.accept_error_pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let source = peer.ip().to_canonical();
        let verified = Arc::new(AtomicBool::new(false));
        let (own, own_stop) = watch::channel(Stop::Run);
        let admission =
            table
                .lock()
                .admit(source, config.is_exempt(source), Arc::clone(&verified), own);
        let id = match admission {
            Admission::Admitted { id, shed } => {
                if let Some(shed) = shed {
                    #[cfg(feature = "tracing")]
                    tracing::debug!(target: "retell_webhooks", %source, verified = shed.verified, "connection shed to admit another");
                    shed.handle.send_replace(if shed.verified {
                        Stop::Graceful
                    } else {
                        Stop::Now
                    });
                }
                id
            }
            Admission::Refused => {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "retell_webhooks", %source, "connection refused: no room");
                continue;
            }
        };
        let service = Marking {
            inner: service.clone(),
            peer: SocketAddr::new(source, peer.port()),
            verified,
        };
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let leave = Leave {
            table: Arc::clone(&table),
            id,
        };
        let all_stop = stop_all.subscribe();
        tokio::spawn(async move {
            drive(connection, own_stop, all_stop).await;
            drop(leave);
        });
    }
    drop(listener);
    stop_all.send_replace(Stop::Graceful);
    let _ = tokio::time::timeout(config.shutdown_grace, stop_all.closed()).await;
    Ok(())
}

/// What a connection's task is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Serve on.
    Run,
    /// Finish the request in flight, if any, then close.
    Graceful,
    /// Close now.
    Now,
}

/// The open connections, shared by the accept loop and the connection tasks.
struct Table(Mutex<Connections<watch::Sender<Stop>>>);

impl Table {
    fn lock(&self) -> MutexGuard<'_, Connections<watch::Sender<Stop>>> {
        // Nothing panics while holding it; a poisoned table is still sound.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Takes a connection out of the table when its task ends.
struct Leave {
    table: Arc<Table>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.table.lock().remove(self.id);
    }
}

/// Runs one connection until it ends or is stopped, by its own channel (shed)
/// or the server's (shutdown).
async fn drive<S, B>(
    connection: http1::Connection<TokioIo<tokio::net::TcpStream>, Marking<S>>,
    mut own: watch::Receiver<Stop>,
    mut all: watch::Receiver<Stop>,
) where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut connection = pin!(connection);
    let mut own_open = true;
    loop {
        let stop = tokio::select! {
            // An error concerns only this client (head timeout, client gone).
            _ = connection.as_mut() => return,
            changed = own.changed(), if own_open => {
                own_open = changed.is_ok();
                *own.borrow_and_update()
            }
            changed = all.changed() => match changed {
                Ok(()) => *all.borrow_and_update(),
                Err(_) => Stop::Now,
            },
        };
        match stop {
            Stop::Run => {}
            Stop::Graceful => connection.as_mut().graceful_shutdown(),
            Stop::Now => return,
        }
    }
}

/// The user's service, with the peer address put in each request and the
/// connection flagged once a response carries [`SignatureVerified`].
struct Marking<S> {
    inner: S,
    peer: SocketAddr,
    verified: Arc<AtomicBool>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Marking<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        #[cfg(feature = "axum")]
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let mut inner = self.inner.clone();
        let verified = Arc::clone(&self.verified);
        Box::pin(async move {
            std::future::poll_fn(|cx: &mut Context<'_>| -> Poll<Result<(), S::Error>> {
                inner.poll_ready(cx)
            })
            .await?;
            let response = inner.call(request).await?;
            if response.extensions().get::<SignatureVerified>().is_some() {
                verified.store(true, Ordering::Relaxed);
            }
            Ok(response)
        })
    }
}
