//! The receiver served with plain hyper 1.x through its tower service.
//! Run: `RETELL_API_KEY=key_… PORT=3000 cargo run --example hyper --features server`.
use retell_webhooks::server::ServeConfig;
use retell_webhooks::{CallEvent, Verifier, service::WebhookService};
use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, WebhookHandler};

struct App;
impl WebhookHandler for App {
    type Error = std::convert::Infallible;
    async fn on_call_ended(&self, event: CallEvent) -> Result<(), Self::Error> {
        println!("call ended: {}", event.call.call_id);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let verifier = Verifier::new(&std::env::var("RETELL_API_KEY")?)?;
    let receiver = Receiver::new(verifier, ReceiverConfig::new());
    let service = WebhookService::new(&receiver, RouteKind::Events, App);
    let service = service.with_path("/retell/webhook");
    let port = std::env::var("PORT").map_or(Ok(3000), |p| p.parse::<u16>())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    // hyper's HTTP/1 server with a 5 s head timeout (also closes idle
    // connections), at most 1 024 connections, 64 per source address, and
    // shedding of never-verified connections when all are taken.
    let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    retell_webhooks::serve(listener, service, ServeConfig::new(), ctrl_c).await?;
    Ok(())
}
