//! How bodies are read, through every receiver served over HTTP (axum,
//! actix-web and the tower service on hyper), and for the content type and
//! unsigned hostile bodies through the entry point too: a huge body is refused
//! and no longer read, a `Content-Length` that disagrees with the bytes sent
//! never reaches the handler, the content type is not checked, an unsigned
//! body is refused whatever it holds.
//!
//! Covered elsewhere and not repeated here: the limit is exact (at the default
//! and at a small limit), a two-hour call is under it, the method and
//! `Content-Encoding` are checked, and a signed body that is not JSON is a
//! `400` ([`crate::parity`]; invalid UTF-8 in [`crate::hostile_json`]). That an
//! unsigned body never reaches the JSON parser needs the crate-internal parse
//! counter, so it is a unit test of each adapter (`src/adapters/{axum,actix}.rs`).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::{Framing, send_raw_to_the_end};
use crate::receivers::{
    Behaviour, PATH, Probe, Receiver, Via, all_vias, config, http_vias, signature,
};

const LIMIT: usize = 8 * 1024 * 1024;
const HUNDRED_MIB: usize = 100 * 1024 * 1024;

/// 100 MiB with a forged signature (well formed and fresh, so the
/// head passes; the digest is wrong), with `Content-Length` and chunked:
/// `413`, and the server stops reading. Proof: the client's writes start failing (the server
/// closed the connection) before the whole request is written, and by then it
/// had written at most the limit plus what the socket buffers hold.
#[tokio::test]
async fn hundred_mib_forged_is_413_and_the_server_stops_reading() {
    let body = vec![b'a'; HUNDRED_MIB];
    for via in http_vias() {
        let receiver = Receiver::start(via, Probe::new(Behaviour::Ok), config()).await;
        for (framing, name, bound) in [
            // Refused from the header: nothing of the body needs reading.
            (Framing::Length, "Content-Length", 32 * 1024 * 1024),
            // Refused once the limit is crossed.
            (Framing::Chunked, "chunked", LIMIT + 32 * 1024 * 1024),
        ] {
            let started = std::time::Instant::now();
            let forged = signature(b"some other body");
            let headers = [("X-Retell-Signature", forged.as_str())];
            let reply =
                send_raw_to_the_end(receiver.addr(), "POST", PATH, &headers, &body, framing).await;
            println!(
                "100 MiB forged, {name}, via {via}: 413 after {} of {} bytes sent, {} written in all, {:?}",
                reply.sent,
                reply.wire_len,
                reply.written,
                started.elapsed()
            );
            assert_eq!(reply.status, 413, "{name} via {via}");
            assert!(reply.sent <= bound, "{name} via {via}: {} sent", reply.sent);
            if closes_at_once(via) {
                assert!(
                    reply.written < reply.wire_len,
                    "{name} via {via}: the server read all {} bytes",
                    reply.written
                );
            }
        }
        assert_eq!(receiver.probe.calls(), 0);
    }
}

/// Whether the server closes the connection as soon as it has sent the `413`,
/// so the client's remaining writes fail. hyper (behind axum and behind the
/// tower service) does. actix-web "lingers" after a response that closes the
/// connection: it reads and discards (never buffers) whatever arrives for up to
/// `HttpServer::client_disconnect_timeout` (1 s by default), so on loopback the
/// client gets everything out; the adapter itself stopped reading at the
/// limit, as `sent` shows.
fn closes_at_once(via: Via) -> bool {
    match via {
        Via::Axum | Via::Tower => true,
        Via::Actix => false,
        Via::Core => unreachable!("the entry point has no connection"),
    }
}

/// Writes `wire` on a fresh connection, shuts the write side (the client
/// sends nothing more), and reads until the server closes.
async fn raw_exchange(receiver: &Receiver, wire: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(receiver.addr()).await.unwrap();
    stream.write_all(wire).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    out
}

fn statuses(raw: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(raw);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

/// A `Content-Length` that disagrees with the bytes sent never reaches the
/// handler. Too short: the declared 10 bytes are the body (signed over all 20,
/// so `401`) and the other 10 are the start of a next request that never
/// completes (`400` or nothing). Too long, then the client closes: the body is
/// never complete, so the answer is `400` or nothing. (The "then idle" variant ends
/// at the server's read timeout, which a test could only wait for.)
#[tokio::test]
async fn a_content_length_mismatch_never_reaches_the_handler() {
    let body = br#"{"event":"call_ended","call":{"call_id":"c1"}}"#;
    let twenty = &body[..20];
    let sig = signature(twenty);
    for via in http_vias() {
        let receiver = Receiver::start(via, Probe::new(Behaviour::Ok), config()).await;
        let head = |len: usize| {
            format!(
                "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nX-Retell-Signature: {sig}\r\nContent-Length: {len}\r\n\r\n"
            )
        };
        let short = [head(10).as_bytes(), twenty].concat();
        let got = statuses(&raw_exchange(&receiver, &short).await);
        assert!(!got.is_empty(), "via {via}: no response");
        assert_eq!(got[0], 401, "via {via}: {got:?}");
        assert!(got[1..].iter().all(|s| *s == 400), "via {via}: {got:?}");

        let long = [head(20).as_bytes(), &twenty[..10]].concat();
        let got = statuses(&raw_exchange(&receiver, &long).await);
        assert!(got.iter().all(|s| *s == 400), "via {via}: {got:?}");
        assert_eq!(receiver.probe.calls(), 0, "via {via}");
    }
}

/// The signature is the authority, not the content type.
#[tokio::test]
async fn the_content_type_is_not_checked() {
    let body = br#"{"event":"call_ended","call":{"call_id":"c1"}}"#;
    let sig = signature(body);
    for via in all_vias() {
        let receiver = Receiver::start(via, Probe::new(Behaviour::Ok), config()).await;
        for content_type in [
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("text/plain"),
            None,
        ] {
            let mut headers = vec![("X-Retell-Signature", sig.as_str())];
            headers.extend(content_type.map(|t| ("Content-Type", t)));
            let reply = receiver.send("POST", &headers, body, Framing::Length).await;
            assert_eq!(reply.status, 204, "{content_type:?} via {via}");
        }
        assert_eq!(receiver.probe.calls(), 4);
    }
}

/// Unsigned hostile bodies (the parse counter is checked in the adapters'
/// unit tests) are `401` and never reach the handler or the fallback.
#[tokio::test]
async fn unsigned_hostile_bodies_are_401() {
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let mut wide = String::from("{");
    for i in 0..500_000 {
        wide.push_str(&format!("\"{i}\":1,"));
    }
    wide.push_str("\"event\":\"call_ended\"}");
    for via in all_vias() {
        let receiver = Receiver::start(via, Probe::new(Behaviour::Ok), config()).await;
        for body in [deep.as_bytes(), wide.as_bytes()] {
            let reply = receiver.send("POST", &[], body, Framing::Length).await;
            assert_eq!(reply.status, 401, "via {via}");
            let wrong = retell_webhooks::sign(body, "not_the_key", crate::receivers::NOW);
            let headers = [("X-Retell-Signature", wrong.as_str())];
            let reply = receiver.send("POST", &headers, body, Framing::Length).await;
            assert_eq!(reply.status, 401, "via {via}");
        }
        assert_eq!(receiver.probe.calls(), 0);
        assert_eq!(
            receiver
                .probe
                .unparsed
                .load(std::sync::atomic::Ordering::SeqCst),
            0
        );
    }
}
