//! A complete Retell webhook receiver on actix-web.
//!
//! ```sh
//! RETELL_API_KEY=key_... cargo run --example actix --features actix
//! ```
//!
//! Point the agent's webhook URL (and the number's inbound webhook URL) at
//! `https://<your host>/retell/webhook`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpServer};
use retell_webhooks::adapters::actix::{WebhookConfig, endpoint};
use retell_webhooks::dispatch::{ReceiverConfig, Route, WebhookHandler};
use retell_webhooks::{CallEvent, InboundCallRequest, InboundResponse, Verifier};

/// Your application state; here, transcripts kept in memory.
#[derive(Default)]
struct Handler {
    transcripts: Mutex<HashMap<String, String>>,
}

impl WebhookHandler for Handler {
    /// Returning `Err` answers 500, so Retell retries the delivery.
    type Error = String;

    async fn on_call_ended(&self, event: CallEvent) -> Result<(), Self::Error> {
        let call = event.call;
        let transcript = call.transcript.unwrap_or_default();
        // Retell may deliver an event more than once: storing by call id is idempotent.
        let mut store = self.transcripts.lock().map_err(|e| e.to_string())?;
        store.insert(call.call_id, transcript);
        Ok(())
    }

    async fn on_call_analyzed(&self, event: CallEvent) -> Result<(), Self::Error> {
        if let Some(analysis) = &event.call.call_analysis {
            let summary = analysis.call_summary.as_deref().unwrap_or("(no summary)");
            let successful = analysis.call_successful.unwrap_or(false);
            println!("{}: successful={successful} {summary}", event.call.call_id);
        }
        Ok(())
    }

    /// Answered with 200 and this JSON before the call is connected.
    async fn on_call_inbound(
        &self,
        request: InboundCallRequest,
    ) -> Result<InboundResponse, Self::Error> {
        let caller = request.call_inbound.from_number;
        Ok(InboundResponse::call().dynamic_variables([("caller_number", caller)]))
    }
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The API key with the "webhook" badge in the Retell dashboard.
    let verifier = Verifier::new(&std::env::var("RETELL_API_KEY")?)?;
    // Defaults: 8 MiB body limit, 9 s handler deadline, no IP allowlist.
    let webhook = WebhookConfig::new(verifier).with_receiver_config(ReceiverConfig::new());
    // One handler shared by every worker thread.
    let handler = Arc::new(Handler::default());
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.parse())?;
    println!("listening on http://127.0.0.1:{port}/retell/webhook");
    HttpServer::new(move || {
        let route = endpoint(Route::Events, webhook.clone(), handler.clone());
        App::new().route("/retell/webhook", route)
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await?;
    Ok(())
}
