//! A complete Retell webhook receiver on axum.
//!
//! Run: `RETELL_API_KEY=key_... cargo run --example axum --features axum`
//! (listens on 127.0.0.1:3000; set `PORT` to change the port). Point the agent's
//! webhook URL and the phone number's inbound webhook URL at `/retell/webhook`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use retell_webhooks::adapters::axum::router;
use retell_webhooks::{CallEvent, InboundCallRequest, InboundResponse, Verifier};
use retell_webhooks::{Receiver, ReceiverConfig, WebhookHandler};
use tokio::sync::Semaphore;

/// Application state: here, transcripts kept in memory by call id.
#[derive(Default)]
struct App {
    transcripts: Mutex<HashMap<String, String>>,
}

impl WebhookHandler for App {
    /// Any `Display` error works; returning `Err` answers 500 and Retell retries.
    type Error = String;

    async fn on_call_ended(&self, event: CallEvent) -> Result<(), Self::Error> {
        let call = event.call;
        let transcript = call.transcript.unwrap_or_default();
        // Retell may deliver the same event twice: inserting by id is idempotent.
        let mut store = self.transcripts.lock().map_err(|_| "store poisoned")?;
        store.insert(call.call_id, transcript);
        Ok(())
    }

    async fn on_call_analyzed(&self, event: CallEvent) -> Result<(), Self::Error> {
        if let Some(analysis) = &event.call.call_analysis {
            println!(
                "call {}: successful={:?} summary={:?}",
                event.call.call_id, analysis.call_successful, analysis.call_summary
            );
        }
        Ok(())
    }

    /// The inbound webhook: answer within 10 s with variables for the prompt.
    async fn on_call_inbound(
        &self,
        request: InboundCallRequest,
    ) -> Result<InboundResponse, Self::Error> {
        let caller = request.call_inbound.from_number.unwrap_or_default();
        Ok(InboundResponse::call().dynamic_variables([
            ("caller_number", caller),
            ("customer_tier", "gold".to_owned()),
        ]))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The API key with the "webhook" badge in the Retell dashboard.
    let verifier = Verifier::new(&std::env::var("RETELL_API_KEY")?)?;
    // Defaults: 8 MiB body limit, 9 s handler deadline, no IP allowlist.
    let receiver = Receiver::new(verifier, ReceiverConfig::new());
    let app: Router = router("/retell/webhook", &receiver, App::default());

    let port = std::env::var("PORT").map_or(Ok(3000), |p| p.parse::<u16>())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://127.0.0.1:{port}/retell/webhook");

    // `axum::serve` has no timeouts and no connection limit, so each connection
    // is served by hyper's HTTP/1 builder. Each request head must arrive within
    // 5 s of connecting or of the previous answer: a client that trickles its
    // head holds a connection only that long (Retell sends its head at once).
    // hyper runs the same timer while a connection waits for its next request,
    // so it also closes connections idle 5 s.
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5));
    // At most 1 024 open connections: each is a file descriptor, and past the
    // limit new ones wait in the listen backlog instead of failing `accept`.
    let slots = Arc::new(Semaphore::new(1024));
    loop {
        let slot = Arc::clone(&slots).acquire_owned().await?;
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors, say: wait for some to close, don't exit.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // The peer address, needed only for a source allowlist (what
        // `into_make_service_with_connect_info` adds under `axum::serve`).
        let app = app.clone().layer(Extension(ConnectInfo(peer)));
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
        tokio::spawn(async move {
            // A connection that ends badly (head timeout, client gone) concerns
            // only that client.
            let _ = connection.await;
            drop(slot);
        });
    }
}
