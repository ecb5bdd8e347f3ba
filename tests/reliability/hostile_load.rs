//! Hostile load over real HTTP on 127.0.0.1, through every receiver served
//! over HTTP: clients that stall or trickle cannot starve signed deliveries,
//! the deadline bounds the answer from the request's arrival, and a client
//! that goes away mid-handler hands its dedupe key back at once.
//!
//! Outcomes are asserted; elapsed times are printed (`--nocapture`). The two
//! time bounds asserted are the property under test (an answer within the
//! deadline, a delivery within a second while attackers hold their
//! connections), with wide margins over what a loaded machine needs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use retell_webhooks::receiver::Reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::{Framing, parse_reply};
use crate::receivers::{
    Behaviour, PATH, Probe, Receiver, Via, config, dedupe_config, http_vias, signature,
};

fn call_ended(id: &str) -> Vec<u8> {
    format!(r#"{{"event":"call_ended","call":{{"call_id":"{id}"}}}}"#).into_bytes()
}

/// How an attacking connection misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    /// Half a head, then nothing.
    StalledHead,
    /// A whole head without a signature, `Content-Length: 1000`, then nothing.
    UnsignedStalledBody,
    /// A head with a well-formed, fresh, forged signature, 10 bytes of body,
    /// then nothing.
    ForgedStalledBody,
    /// Like `ForgedStalledBody`, then one byte every 50 ms.
    ForgedTrickle,
}

async fn attack(addr: std::net::SocketAddr, how: Attack) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let forged = signature(b"not the body that follows");
    let head = match how {
        Attack::StalledHead => format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Le"),
        Attack::UnsignedStalledBody => {
            format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        }
        Attack::ForgedStalledBody | Attack::ForgedTrickle => format!(
            "POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Retell-Signature: {forged}\r\nContent-Length: 1000\r\n\r\n{{\"event\":"
        ),
    };
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Sends `body` correctly signed, waits until the (gated) handler runs, and
/// closes the connection without reading the answer.
async fn hang_up_mid_handler(receiver: &Receiver, body: &[u8]) {
    let sig = signature(body);
    let mut stream = TcpStream::connect(receiver.addr()).await.unwrap();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Retell-Signature: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    receiver.probe.entered().await;
}

/// Sends `body` correctly signed.
async fn deliver(receiver: &Receiver, body: &[u8]) -> crate::http::Reply {
    let sig = signature(body);
    receiver
        .send(
            "POST",
            &[("X-Retell-Signature", sig.as_str())],
            body,
            Framing::Length,
        )
        .await
}

fn status_of(reply: &[u8]) -> Option<u16> {
    (!reply.is_empty()).then(|| parse_reply(reply).status)
}

/// 200 connections stall or trickle their head or body while 20 correctly
/// signed deliveries are sent one after another: every delivery gets `204`
/// within a second. Afterwards every attacker that sent a body head got an
/// answer of its own (`401` at once without a signature; with a forged one,
/// `408` once stalled for the read timeout, and `408` too while trickling,
/// once the body falls behind the minimum rate), which proves they were being served, not ignored, while the
/// deliveries went through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_trickling_clients_do_not_starve_signed_deliveries() {
    let _heavy = crate::HEAVY.lock().await;
    const READ_TIMEOUT: Duration = Duration::from_secs(2);
    const DEADLINE: Duration = Duration::from_secs(4);
    for via in http_vias() {
        let config = config()
            .with_body_read_timeout(READ_TIMEOUT)
            .with_handler_deadline(DEADLINE);
        let receiver = Arc::new(Receiver::start(via, Probe::new(Behaviour::Ok), config).await);
        let kinds = [
            Attack::StalledHead,
            Attack::UnsignedStalledBody,
            Attack::ForgedStalledBody,
            Attack::ForgedTrickle,
        ];
        let mut attackers = Vec::new();
        for i in 0..200 {
            let how = kinds[i % kinds.len()];
            attackers.push((how, attack(receiver.addr(), how).await));
        }
        let mut replies = Vec::new();
        let mut stalled_heads = Vec::new();
        for (how, stream) in attackers {
            if how == Attack::StalledHead {
                // Nothing of the receiver's is involved until a head is
                // complete; held open until the end.
                stalled_heads.push(stream);
                continue;
            }
            replies.push(tokio::spawn(async move {
                let (mut read, mut write) = stream.into_split();
                let trickle = tokio::spawn(async move {
                    if how == Attack::ForgedTrickle {
                        loop {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            if write.write_all(b" ").await.is_err() {
                                break;
                            }
                        }
                    }
                    // Keeps the write side open.
                    std::future::pending::<()>().await;
                });
                let mut reply = Vec::new();
                let limit = DEADLINE + Duration::from_secs(5);
                let _ = tokio::time::timeout(limit, read.read_to_end(&mut reply)).await;
                trickle.abort();
                (how, reply)
            }));
        }
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        for n in 0..20 {
            let body = call_ended(&format!("call_starve_{n}"));
            let sent = Instant::now();
            let reply = deliver(&receiver, &body).await;
            let took = sent.elapsed();
            slowest = slowest.max(took);
            assert_eq!(reply.status, 204, "delivery {n} via {via}");
            assert!(
                took < Duration::from_secs(1),
                "delivery {n} via {via} took {took:?} behind 200 hostile connections"
            );
        }
        let deliveries_done = started.elapsed();
        assert_eq!(receiver.probe.calls(), 20);
        let mut seen = std::collections::BTreeMap::<(String, Option<u16>), usize>::new();
        for reply in replies {
            let (how, reply) = reply.await.unwrap();
            let status = status_of(&reply);
            match how {
                Attack::StalledHead => {}
                Attack::UnsignedStalledBody => assert_eq!(status, Some(401), "{how:?} via {via}"),
                Attack::ForgedStalledBody => assert_eq!(status, Some(408), "{how:?} via {via}"),
                Attack::ForgedTrickle => assert_eq!(status, Some(408), "{how:?} via {via}"),
            }
            *seen.entry((format!("{how:?}"), status)).or_default() += 1;
        }
        drop(stalled_heads);
        println!(
            "starvation via {via}: 20 deliveries in {deliveries_done:?} (slowest {slowest:?}) \
             behind 200 hostile connections; attackers got {seen:?}"
        );
    }
}

/// With every in-flight place taken by a handler that does not finish, a
/// further delivery is answered `503` once its deadline, counted from its
/// arrival, has passed: not later because it waited for a place first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_bounds_the_answer_while_handlers_are_saturated() {
    let _heavy = crate::HEAVY.lock().await;
    const DEADLINE: Duration = Duration::from_secs(1);
    for via in http_vias() {
        let config = config()
            .with_max_in_flight(2)
            .with_handler_deadline(DEADLINE);
        let receiver = Arc::new(Receiver::start(via, Probe::new(Behaviour::Gated), config).await);
        let mut busy = Vec::new();
        for n in 0..2 {
            let receiver = Arc::clone(&receiver);
            busy.push(tokio::spawn(async move {
                let body = call_ended(&format!("call_busy_{n}"));
                let sent = Instant::now();
                let reply = deliver(&receiver, &body).await;
                (reply.status, sent.elapsed())
            }));
        }
        // Both places are held by running handlers.
        receiver.probe.entered().await;
        receiver.probe.entered().await;
        let body = call_ended("call_waiting");
        let sent = Instant::now();
        let reply = deliver(&receiver, &body).await;
        let took = sent.elapsed();
        assert_eq!(reply.status, 503, "via {via}");
        assert!(
            took < DEADLINE + Duration::from_millis(600),
            "via {via}: answered after {took:?}, deadline {DEADLINE:?}"
        );
        for handle in busy {
            let (status, took) = handle.await.unwrap();
            assert_eq!(status, 503, "via {via}");
            assert!(
                took < DEADLINE + Duration::from_millis(600),
                "via {via}: {took:?}"
            );
        }
        let outcomes = receiver.outcomes();
        assert_eq!(outcomes.len(), 3, "via {via}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| o.reason == Reason::DeadlineExceeded),
            "via {via}: {outcomes:?}"
        );
        println!("deadline via {via}: the waiting delivery got 503 after {took:?}");
    }
}

/// A client that goes away while its handler runs. hyper (axum, the tower
/// service) drops the request: the receiver hands the dedupe key back at once,
/// and Retell's next attempt is processed instead of getting `409` until the
/// lease (deadline + 1 s = 10 s here) runs out. actix-web keeps running the
/// handler after a disconnect, so there the key stays claimed by a handler
/// that is still at work, and once it finishes the retry is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_handler_releases_its_key() {
    for via in http_vias() {
        if via == Via::Actix {
            the_handler_finishes_after_a_disconnect(via).await;
            continue;
        }
        let receiver =
            Arc::new(Receiver::start(via, Probe::new(Behaviour::Gated), dedupe_config()).await);
        let body = call_ended("call_gone");
        hang_up_mid_handler(&receiver, &body).await;
        // Retell's retry: `409` while the first attempt is still being torn
        // down, then processed. Bounded well under the 10 s lease.
        let started = Instant::now();
        let retry = {
            let receiver = Arc::clone(&receiver);
            let body = body.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                loop {
                    let reply = deliver(&receiver, &body).await;
                    if reply.status != 409 || conflicts == 100 {
                        return (reply.status, conflicts);
                    }
                    conflicts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let entered = tokio::time::timeout(Duration::from_secs(3), receiver.probe.entered()).await;
        let released_after = started.elapsed();
        assert!(
            entered.is_ok(),
            "via {via}: the key was not handed back within {released_after:?}"
        );
        receiver.probe.open(1);
        let (status, conflicts) = retry.await.unwrap();
        assert_eq!(status, 204, "via {via}");
        println!(
            "disconnect via {via}: retry processed after {released_after:?} ({conflicts} × 409 first)"
        );
    }
}

/// actix-web: the handler outlives its client; its success is recorded and the
/// retry is answered as a duplicate without running again.
async fn the_handler_finishes_after_a_disconnect(via: Via) {
    let receiver = Receiver::start(via, Probe::new(Behaviour::Gated), dedupe_config()).await;
    let body = call_ended("call_gone");
    hang_up_mid_handler(&receiver, &body).await;
    let reply = deliver(&receiver, &body).await;
    assert_eq!(
        reply.status, 409,
        "via {via}: the first attempt is still running"
    );
    receiver.probe.open(1);
    let mut status = 409;
    for _ in 0..100 {
        status = deliver(&receiver, &body).await.status;
        if status != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 204, "via {via}");
    assert_eq!(receiver.probe.effect_count(), 1, "via {via}");
    println!("disconnect via {via}: the handler ran on and its success stands");
}
