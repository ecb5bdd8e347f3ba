//! Feature `tracing`: one span per request with the route, event, ids, status
//! and reason; one event per outcome at the documented level; the handler's
//! own events inside the span; and never a body byte, the key, a digest or a
//! signature header in any field or message. Through the entry point and the
//! axum router over HTTP on 127.0.0.1, with a capturing subscriber.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retell_webhooks::adapters::axum::router;
use retell_webhooks::{CallEvent, Verifier, sign};
use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, WebhookHandler, receiver::RawRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

const KEY: &str = "key_tracing_secret_7f3a";
const NOW: u64 = 1_785_423_600_000;
/// Text only the bodies carry: it must never reach a log record.
const BODY_MARKER: &str = "transcript_marker_q9z";

#[derive(Debug, Clone)]
struct CapturedEvent {
    level: Level,
    text: String,
    /// Fields of the enclosing `retell_webhook` span when the event fired.
    span: Option<HashMap<String, String>>,
}

#[derive(Default)]
struct Captured {
    spans: HashMap<u64, (String, HashMap<String, String>)>,
    /// Spans in creation order.
    order: Vec<u64>,
    events: Vec<CapturedEvent>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Captured>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut captured = self.0.lock().unwrap();
        captured
            .spans
            .insert(id.into_u64(), (attrs.metadata().name().to_owned(), fields));
        captured.order.push(id.into_u64());
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut captured = self.0.lock().unwrap();
        if let Some((_, fields)) = captured.spans.get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let mut text = String::new();
        for (name, value) in &fields {
            let _ = write!(text, "{name}={value} ");
        }
        let span = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find(|span| span.name() == "retell_webhook")
                .map(|span| span.id().into_u64())
        });
        let mut captured = self.0.lock().unwrap();
        let span = span.and_then(|id| captured.spans.get(&id).map(|(_, f)| f.clone()));
        captured.events.push(CapturedEvent {
            level: *event.metadata().level(),
            text,
            span,
        });
    }
}

struct App;

impl WebhookHandler for App {
    type Error = String;

    async fn on_call_ended(&self, event: CallEvent) -> Result<(), String> {
        tracing::info!("handler stored the call");
        match event.call.call_id.as_str() {
            "call_fail" => Err("database unavailable".to_owned()),
            "call_hang" => std::future::pending().await,
            _ => Ok(()),
        }
    }
}

fn body(call_id: &str) -> Vec<u8> {
    let id = serde_json::to_string(call_id).unwrap();
    format!(
        r#"{{"event":"call_ended","call":{{"call_id":{id},"transcript":"Agent: {BODY_MARKER}"}}}}"#
    )
    .into_bytes()
}

fn receiver() -> Receiver {
    let config = ReceiverConfig::new().with_handler_deadline(Duration::from_millis(50));
    Receiver::new(Verifier::new(KEY).unwrap().with_clock(|| NOW), config)
}

async fn dispatch(receiver: &Receiver, body: &[u8], header: &str) -> u16 {
    let request = RawRequest::post(body).signature_values([header.as_bytes()]);
    receiver
        .dispatch(&App, RouteKind::Events, &request, tokio::time::sleep)
        .await
        .response
        .status()
}

async fn over_http(addr: std::net::SocketAddr, body: &[u8], header: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /hook HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Retell-Signature: {header}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    let line = String::from_utf8_lossy(&reply);
    line[9..12].parse().unwrap()
}

/// What every request leaves behind, checked for both receivers.
fn check(captured: &Captured, via: &str) -> Vec<String> {
    let mut secrets = vec![KEY.to_owned(), BODY_MARKER.to_owned()];
    for id in ["call_ok", "call_fail", "call_hang", "forged"] {
        let header = sign(&body(id), KEY, NOW);
        secrets.push(header.clone());
        secrets.push(header.rsplit("d=").next().unwrap().to_owned());
    }
    let mut texts: Vec<String> = captured.events.iter().map(|e| e.text.clone()).collect();
    for (name, fields) in captured.spans.values() {
        texts.push(format!("{name} {fields:?}"));
    }
    for text in &texts {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{via}: {secret:?} in {text}"
            );
        }
        assert!(!text.contains('\n'), "{via}: a raw line break in {text:?}");
    }
    captured
        .order
        .iter()
        .filter_map(|id| captured.spans.get(id))
        .filter(|(name, _)| name == "retell_webhook")
        .map(|(_, fields)| {
            let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
            format!(
                "route={} event={} call_id={} status={}",
                get("route"),
                get("event"),
                get("call_id"),
                get("status")
            )
        })
        .collect()
}

fn levels(captured: &Captured) -> Vec<(Level, String)> {
    captured
        .events
        .iter()
        .filter(|e| e.text.contains("status="))
        .map(|e| (e.level, e.text.clone()))
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn spans_levels_and_nothing_secret() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    // The entry point.
    let core = receiver();
    let forged = sign(b"another body", KEY, NOW);
    assert_eq!(
        dispatch(&core, &body("call_ok"), &sign(&body("call_ok"), KEY, NOW)).await,
        204
    );
    assert_eq!(
        dispatch(
            &core,
            &body("call_fail"),
            &sign(&body("call_fail"), KEY, NOW)
        )
        .await,
        500
    );
    assert_eq!(
        dispatch(
            &core,
            &body("call_hang"),
            &sign(&body("call_hang"), KEY, NOW)
        )
        .await,
        503
    );
    let crafted = "call\n status=204 reason=\"handled\"";
    assert_eq!(
        dispatch(&core, &body(crafted), &sign(&body(crafted), KEY, NOW)).await,
        204
    );
    for _ in 0..10 {
        assert_eq!(dispatch(&core, &body("forged"), &forged).await, 401);
    }
    {
        let captured = capture.0.lock().unwrap();
        let spans = check(&captured, "core");
        assert_eq!(spans.len(), 14, "{spans:#?}");
        assert_eq!(
            spans[0],
            "route=events event=call_ended call_id=call_ok status=204"
        );
        assert!(
            spans[1].ends_with("call_id=call_fail status=500"),
            "{}",
            spans[1]
        );
        assert!(
            spans[2].ends_with("call_id=call_hang status=503"),
            "{}",
            spans[2]
        );
        assert!(
            spans[3].contains(r#"call_id="call\n status=204"#),
            "{}",
            spans[3]
        );
        assert!(spans[4].ends_with("status=401"), "{}", spans[4]);
        let levels = levels(&captured);
        let level_of = |needle: &str| {
            levels
                .iter()
                .filter(|(_, text)| text.contains(needle))
                .map(|(level, _)| *level)
                .collect::<Vec<_>>()
        };
        assert_eq!(level_of("status=204"), [Level::INFO, Level::INFO]);
        assert_eq!(level_of("status=500"), [Level::ERROR]);
        assert_eq!(level_of("status=503"), [Level::WARN]);
        // Nine plain mismatches, then the wrong-key alert.
        let unauthorized = level_of("status=401");
        assert_eq!(unauthorized[..9], [Level::INFO; 9]);
        assert_eq!(unauthorized[9], Level::ERROR);
        // The handler's own event carries the request's ids.
        let handler = captured
            .events
            .iter()
            .find(|e| e.text.contains("handler stored the call"))
            .unwrap();
        let span = handler.span.as_ref().unwrap();
        assert_eq!(span.get("call_id").map(String::as_str), Some("call_ok"));
        assert_eq!(span.get("event").map(String::as_str), Some("call_ended"));
    }
    *capture.0.lock().unwrap() = Captured::default();

    // The axum router over HTTP, on this thread (so under this subscriber).
    let app: axum::Router = router("/hook", &receiver(), App);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    assert_eq!(
        over_http(addr, &body("call_ok"), &sign(&body("call_ok"), KEY, NOW)).await,
        204
    );
    assert_eq!(
        over_http(
            addr,
            &body("call_fail"),
            &sign(&body("call_fail"), KEY, NOW)
        )
        .await,
        500
    );
    assert_eq!(over_http(addr, &body("forged"), &forged).await, 401);
    let captured = capture.0.lock().unwrap();
    let spans = check(&captured, "axum");
    assert_eq!(
        spans,
        [
            "route=events event=call_ended call_id=call_ok status=204",
            "route=events event=call_ended call_id=call_fail status=500",
            "route=events event= call_id= status=401",
        ]
    );
}
