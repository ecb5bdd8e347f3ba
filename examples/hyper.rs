//! The receiver served with plain hyper 1.x through its tower service.
//! Run: `RETELL_API_KEY=key_… PORT=3000 cargo run --example hyper --features tower`.

use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use retell_webhooks::dispatch::{Receiver, ReceiverConfig, RouteKind, WebhookHandler};
use retell_webhooks::{CallEvent, Verifier, service::WebhookService};

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
    let service =
        WebhookService::new(&receiver, RouteKind::Events, App).with_path("/retell/webhook");
    let service = TowerToHyperService::new(service);
    let port = std::env::var("PORT").map_or(Ok(3000), |p| p.parse::<u16>())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://127.0.0.1:{port}/retell/webhook");
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        // A client must send its head within 5 s, so slow clients cannot pile up.
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(5));
        tokio::spawn(async move { http.serve_connection(TokioIo::new(stream), service).await });
    }
}
