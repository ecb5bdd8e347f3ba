//! A minimal raw HTTP/1.1 client and request bodies for the adapter tests, so
//! header names, duplicate headers, chunked bodies and early responses are under
//! the test's control. Include it with `#[path = "common/http.rs"] mod http;`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the client received.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Lower-cased names, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes of the request written when the response was complete.
    pub sent: usize,
    /// Bytes of the request written in all (see [`send_raw_to_the_end`]).
    pub written: usize,
    /// Bytes of the whole request (head and framed body).
    pub wire_len: usize,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Status, content type, content length and body: what a client can tell
    /// apart (the `date` header aside).
    pub fn fingerprint(&self) -> (u16, Option<String>, Option<String>, Vec<u8>) {
        (
            self.status,
            self.header("content-type").map(str::to_owned),
            self.header("content-length").map(str::to_owned),
            self.body.clone(),
        )
    }
}

/// How the body is framed.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    /// `Content-Length` equal to the body length.
    Length,
    /// `Content-Length` with this value (the body is sent as given).
    DeclaredLength(u64),
    /// `Transfer-Encoding: chunked`, 64 KiB chunks.
    Chunked,
}

/// Sends one request with `Connection: close` and reads the response until it
/// is complete (its `Content-Length` is in, or the server closes).
///
/// The body is written concurrently with reading, in 64 KiB writes, and write
/// errors are ignored: a server may answer (413) and close before reading
/// everything. [`Reply::sent`] says how many bytes of the request had been
/// written when the response was complete.
pub async fn send_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    framing: Framing,
) -> Reply {
    exchange(addr, method, path, headers, body, framing, false).await
}

/// Like [`send_raw`], then keeps writing until the whole request is written or
/// a write fails, and records the total in [`Reply::written`]: less than
/// [`Reply::wire_len`] proves the server stopped reading and closed the
/// connection (a server that drains the body lets every write through).
pub async fn send_raw_to_the_end(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    framing: Framing,
) -> Reply {
    exchange(addr, method, path, headers, body, framing, true).await
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    framing: Framing,
    to_the_end: bool,
) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match framing {
        Framing::Length => head.push_str(&format!("Content-Length: {}\r\n", body.len())),
        Framing::DeclaredLength(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("\r\n");
    let mut wire = head.into_bytes();
    match framing {
        Framing::Chunked => {
            for chunk in body.chunks(64 * 1024) {
                wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        }
        _ => wire.extend_from_slice(body),
    }
    let wire_len = wire.len();
    let sent = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&sent);
    let write = tokio::spawn(async move {
        for piece in wire.chunks(64 * 1024) {
            if writer.write_all(piece).await.is_err() {
                break;
            }
            progress.fetch_add(piece.len(), Ordering::SeqCst);
        }
        let _ = writer.flush().await;
        writer
    });
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        if response_complete(&raw) {
            break;
        }
    }
    let sent_at_response = sent.load(Ordering::SeqCst);
    let mut reply = parse_reply(&raw);
    if to_the_end {
        drop(write.await);
        drop(reader);
    } else {
        write.abort();
    }
    reply.sent = sent_at_response;
    reply.written = sent.load(Ordering::SeqCst);
    reply.wire_len = wire_len;
    reply
}

/// Whether `raw` holds a whole response: the head, then as many body bytes as
/// its `Content-Length` (none for 1xx, 204 and 304).
fn response_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let Ok(head) = std::str::from_utf8(&raw[..split]) else {
        return false;
    };
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return true;
    }
    head.split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .is_some_and(|len| raw.len() >= split + 4 + len)
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
        sent: 0,
        written: 0,
        wire_len: 0,
    }
}

/// Bytes of `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A `call_ended` body of exactly `len` bytes (padded inside a JSON string).
pub fn call_ended_of_len(len: usize) -> Vec<u8> {
    let prefix = br#"{"event":"call_ended","call":{"call_id":"call_big"},"padding":""#;
    let suffix = br#""}"#;
    let pad = len - prefix.len() - suffix.len();
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(prefix);
    body.resize(prefix.len() + pad, b'a');
    body.extend_from_slice(suffix);
    assert_eq!(body.len(), len);
    body
}

/// A deterministic two-hour-class `call_analyzed` body of about 3 MiB: the
/// maximal fixture with its utterances repeated, like a long call with word
/// timings in `transcript_object` and two tool-call transcripts.
pub fn long_call_analyzed() -> Vec<u8> {
    let mut event: Value = serde_json::from_slice(&fixture("call_analyzed_maximal.json")).unwrap();
    let call = event["call"].as_object_mut().unwrap();
    for key in [
        "transcript_object",
        "transcript_with_tool_calls",
        "scrubbed_transcript_with_tool_calls",
    ] {
        let items = call[key].as_array().unwrap().clone();
        let once = serde_json::to_vec(&items).unwrap().len();
        let copies = 1_000_000 / once + 1;
        let long: Vec<Value> = (0..copies).flat_map(|_| items.iter().cloned()).collect();
        call.insert(key.to_owned(), Value::Array(long));
    }
    let transcript = call["transcript"].as_str().unwrap().repeat(60);
    call.insert("transcript".to_owned(), Value::String(transcript));
    serde_json::to_vec(&event).unwrap()
}
