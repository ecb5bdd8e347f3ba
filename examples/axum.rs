//! A complete Retell webhook receiver on axum.
//!
//! Run: `RETELL_API_KEY=key_... cargo run --example axum --features axum,server`
//! (listens on 127.0.0.1:3000; set `PORT` to change the port). Point the agent's
//! webhook URL and the phone number's inbound webhook URL at `/retell/webhook`.
use std::collections::HashMap;
use std::sync::Mutex;

use axum::Router;
use retell_webhooks::adapters::axum::router;
use retell_webhooks::receiver::{IpRange, RETELL_SOURCE_IP};
use retell_webhooks::server::ServeConfig;
use retell_webhooks::{CallEvent, InboundCallRequest, InboundResponse, Verifier};
use retell_webhooks::{Receiver, ReceiverConfig, WebhookHandler};

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

    // `axum::serve` has no timeouts and no connection limit; `serve` runs
    // hyper's HTTP/1 server with a 5 s head timeout (a client that trickles
    // its head holds a connection only that long; idle connections close
    // after as long), at most 1 024 connections and 64 per source address.
    // When all are taken, a new connection sheds one that never delivered a
    // signed request instead of waiting in the listen backlog. Retell's
    // address is exempt from the per-source limit and from shedding; add
    // your reverse proxy's address if there is one. Each request carries the
    // peer address (`ConnectInfo`), for a source allowlist.
    let config = ServeConfig::new().with_exempt_sources([IpRange::from(RETELL_SOURCE_IP)]);
    let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    retell_webhooks::serve(listener, app, config, ctrl_c).await?;
    Ok(())
}
