//! A complete Retell webhook receiver on actix-web (the same handler as
//! `examples/axum.rs`).
//!
//! Run: `RETELL_API_KEY=key_... cargo run --example actix --features actix`
//! (listens on 127.0.0.1:3000; set `PORT` to change the port). Point the agent's
//! webhook URL and the phone number's inbound webhook URL at `/retell/webhook`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::HttpServer;
use retell_webhooks::adapters::actix::endpoint;
use retell_webhooks::{CallEvent, InboundCallRequest, InboundResponse, Verifier};
use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, WebhookHandler};

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

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The API key with the "webhook" badge in the Retell dashboard.
    let verifier = Verifier::new(&std::env::var("RETELL_API_KEY")?)?;
    // Defaults: 8 MiB body limit, 9 s handler deadline, no IP allowlist.
    // Built once: every worker thread shares its in-flight places.
    let receiver = Receiver::new(verifier, ReceiverConfig::new());
    // Built once: every worker thread shares this handler.
    let app = Arc::new(App::default());

    let port = std::env::var("PORT").map_or(Ok(3000), |p| p.parse::<u16>())?;
    println!("listening on http://127.0.0.1:{port}/retell/webhook");
    // actix-web limits connections per worker: 1 024 open connections in all.
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    HttpServer::new(move || {
        let route = endpoint(RouteKind::Events, &receiver, Arc::clone(&app));
        actix_web::App::new().route("/retell/webhook", route)
    })
    // The first request head within 5 s of connecting (`408` after that): a
    // client that trickles its head holds a connection only that long.
    .client_request_timeout(Duration::from_secs(5))
    // An idle kept-alive connection is closed after 65 s: longer than the 60 s
    // a proxy in front (nginx's upstream keep-alive, an AWS ALB) keeps one
    // idle, so the server never closes a connection the proxy is reusing.
    .keep_alive(Duration::from_secs(65))
    // After an answer that closes the connection (`413`, `408`), what the client
    // still sends is read and discarded for 1 s, so it sees the answer rather
    // than a reset; then the connection is dropped.
    .client_disconnect_timeout(Duration::from_secs(1))
    // Each connection is a file descriptor; past the limit new connections
    // wait in the listen backlog.
    .workers(workers)
    .max_connections((1024 / workers).max(1))
    .bind(("127.0.0.1", port))?
    .run()
    .await?;
    Ok(())
}
