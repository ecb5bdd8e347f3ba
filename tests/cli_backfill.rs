//! `retell-webhooks backfill` and `listen --backfill-every`, run as a user
//! would, against the stand-in Retell API (`common/retell_api.rs`).

#[path = "common/cli_binary.rs"]
mod cli_binary;
#[path = "common/retell_api.rs"]
mod retell_api;
#[path = "common/temp_dir.rs"]
mod temp_dir;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use temp_dir::TempDir;

use axum::body::Bytes;
use axum::http::HeaderMap;
use cli_binary::{Listener, cli, stderr, stdout};
use retell_api::{API_KEY, Server};
use retell_webhooks::{Verifier, WebhookEvent};

const MINUTE: u64 = 60_000;

fn now_ms() -> u64 {
    retell_webhooks::unix_ms(SystemTime::now()).unwrap()
}

/// A runtime that serves the stand-in while the binary runs.
fn standin(calls: usize) -> (tokio::runtime::Runtime, Server) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(Server::start());
    let now = now_ms();
    server.add_calls(
        (0..calls).map(|n| retell_api::call(n, now - 60 * MINUTE + n as u64 * MINUTE / 4, 30_000)),
    );
    (runtime, server)
}

fn backfill(server: &Server, inbox: &str, args: &[&str]) -> std::process::Output {
    cli()
        .env("RETELL_API_KEY", API_KEY)
        .args([
            "backfill",
            "--inbox",
            inbox,
            "--api-base",
            &server.base_url(),
        ])
        .args(args)
        .output()
        .unwrap()
}

fn stats(inbox: &str) -> String {
    let out = cli()
        .args(["inbox", "--inbox", inbox, "stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn a_dry_run_stores_nothing() {
    let (_runtime, server) = standin(20);
    let dir = TempDir::new("dry");
    let inbox = dir.sqlite_url();
    let out = backfill(&server, &inbox, &["--since", "2h", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" recovered call_"))
        .collect();
    assert_eq!(lines.len(), 40, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with("would be stored (dry run)")),
        "{text}"
    );
    assert!(text.contains("calls: started"), "{text}");
    assert!(text.contains("40 would be recovered (dry run)"), "{text}");
    assert!(text.contains("0 events recovered"), "{text}");
    for state in ["ready", "done", "dead"] {
        assert!(
            stats(&inbox).contains(&format!("{state} 0")),
            "{}",
            stats(&inbox)
        );
    }
    // The next real run finds everything still missing.
    let out = backfill(&server, &inbox, &["--since", "2h"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("40 events recovered"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn backfill_stores_once_prints_escaped_ids_and_a_summary() {
    let (_runtime, server) = standin(10);
    // An id no terminal should see.
    let mut odd = retell_api::call(99, now_ms() - 30 * MINUTE, 1000);
    odd["call_id"] = "call_\u{1b}[31mred".into();
    server.add_calls([odd]);
    let dir = TempDir::new("store");
    let inbox = dir.sqlite_url();
    let out = backfill(&server, &inbox, &["--since", "2h"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("22 events recovered"), "{text}");
    assert!(
        text.contains("recovered call_ended call_00003 started "),
        "{text}"
    );
    assert!(
        text.contains("recovered call_analyzed (id not shown)"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'));
    assert!(text.contains("11 fetched, 22 recovered"), "{text}");
    assert!(stats(&inbox).contains("ready 22"), "{}", stats(&inbox));

    // Again, from the watermark: nothing twice.
    let out = backfill(&server, &inbox, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("0 events recovered"), "{text}");
    assert!(text.contains("11 already stored, 0 fetched"), "{text}");
    assert!(stats(&inbox).contains("ready 22"));
}

#[test]
fn a_refused_key_stops_with_a_clear_error() {
    let (_runtime, server) = standin(3);
    let dir = TempDir::new("refused");
    let out = cli()
        .env("RETELL_API_KEY", "key_wrong_123")
        .args([
            "backfill",
            "--inbox",
            &dir.sqlite_url(),
            "--api-base",
            &server.base_url(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("refused the key (401 on list-calls)"), "{err}");
    assert!(!err.contains("key_wrong_123") && !stdout(&out).contains("key_wrong_123"));
    // No key at all: a usage error.
    let out = cli()
        .args(["backfill", "--inbox", &dir.sqlite_url()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("needs Retell's API key"));
}

#[test]
fn forwarded_recovered_events_carry_the_header_and_a_fresh_signature() {
    let (runtime, server) = standin(4);
    let seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/retell",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let record = Arc::clone(&record);
            async move {
                record.lock().unwrap().push((headers, body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = TempDir::new("forward");
    let target = format!("http://{addr}/retell");
    let out = backfill(
        &server,
        &dir.sqlite_url(),
        &["--since", "2h", "--forward", &target],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 8, "{}", stdout(&out));
    let verifier = Verifier::new(API_KEY).unwrap();
    for (headers, body) in &seen {
        let signature = headers.get("x-retell-signature").unwrap();
        let event: WebhookEvent = verifier
            .verify_and_parse(body, signature.as_bytes())
            .unwrap();
        let mark = event.recovered().unwrap().recovered_ms.unwrap();
        let header = headers.get("x-retell-webhooks-recovered").unwrap();
        assert_eq!(header.to_str().unwrap(), mark.to_string());
        assert!(headers.get("idempotency-key").is_some());
    }
    assert!(stats(&dir.sqlite_url()).contains("done 8"));
}

#[test]
fn listen_backfills_every_period_next_to_the_receiver() {
    let (_runtime, server) = standin(3);
    let dir = TempDir::new("listen");
    let key_file = dir.0.join("key");
    std::fs::write(&key_file, API_KEY).unwrap();
    let inbox = dir.sqlite_url();
    let base = server.base_url();
    let (mut listener, _url) = Listener::start(&[
        "--inbox",
        &inbox,
        "--key-file",
        key_file.to_str().unwrap(),
        "--backfill-every",
        "1s",
        "--api-base",
        &base,
    ]);
    assert!(
        listener
            .banner
            .iter()
            .any(|l| l.starts_with("backfilling from http://127.0.0.1")),
        "{:?}",
        listener.banner
    );
    let mut recovered = 0;
    let mut processed = 0;
    let mut summaries = 0;
    while summaries < 2 || processed < 6 {
        let line = listener.next_line();
        if line.contains(" recovered call_") && line.ends_with(": stored") {
            recovered += 1;
        }
        if line.contains(" worker call_") && line.ends_with("processed") {
            processed += 1;
        }
        if line.contains("events recovered, ") {
            summaries += 1;
        }
    }
    assert_eq!((recovered, processed), (6, 6));
}
