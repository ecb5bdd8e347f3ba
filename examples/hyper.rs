//! The receiver served with plain hyper 1.x through its tower service.
//! Run: `RETELL_API_KEY=key_… PORT=3000 cargo run --example hyper --features tower`.
use hyper_util::{rt::TokioIo, rt::TokioTimer, service::TowerToHyperService};
use retell_webhooks::{CallEvent, Verifier, service::WebhookService};
use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, WebhookHandler};
use std::{sync::Arc, time::Duration};

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
    let service = TowerToHyperService::new(service.with_path("/retell/webhook"));
    let port = std::env::var("PORT").map_or(Ok(3000), |p| p.parse::<u16>())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    // Each head within 5 s of connecting or of the last answer (also closes idle connections).
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5));
    let slots = Arc::new(tokio::sync::Semaphore::new(1024)); // open connections (fds)
    loop {
        let slot = Arc::clone(&slots).acquire_owned().await?;
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await; // out of fds: retry, don't exit
            continue;
        };
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        tokio::spawn(async move { (connection.await, drop(slot)) }); // slot freed at the end
    }
}
