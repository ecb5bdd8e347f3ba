//! A stand-in for Retell's API on 127.0.0.1 (axum): `POST /v3/list-calls`,
//! `GET /v2/get-call/{id}`, `POST /v3/list-chats`, `GET /get-chat/{id}`,
//! with Retell's filters, cursor pagination and answer shapes, and faults on
//! demand (statuses with `retry-after`, a bare-array answer, get-call
//! failing after N successes). Only what the tests need; no real API.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The key the stand-in accepts.
pub const API_KEY: &str = "key_standin_3f9c2b7e4a1d8c6b";

/// An answer to give instead of the real one.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Fault {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: json!({"status": "error", "message": format!("stand-in fault {status}")})
                .to_string(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Default)]
pub struct Standin {
    pub calls: Mutex<Vec<Value>>,
    pub chats: Mutex<Vec<Value>>,
    /// Answers given, in order, to the next requests (any endpoint).
    pub faults: Mutex<VecDeque<Fault>>,
    /// get-call and get-chat answer `500` once this many have succeeded.
    pub fail_gets_after: Mutex<Option<usize>>,
    /// Listings answer a bare array (v2).
    pub bare_array: AtomicBool,
    /// The page size when the query gives none.
    pub default_limit: AtomicUsize,
    pub list_requests: AtomicU64,
    pub get_requests: AtomicU64,
    gets_ok: AtomicUsize,
    /// Every listing body received.
    pub list_bodies: Mutex<Vec<Value>>,
    /// Authorization headers received.
    pub auth_seen: Mutex<Vec<String>>,
}

pub struct Server {
    pub addr: SocketAddr,
    pub state: Arc<Standin>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start() -> Self {
        let state = Arc::new(Standin {
            default_limit: AtomicUsize::new(50),
            ..Standin::default()
        });
        let app = Router::new()
            .route("/v3/list-calls", post(list_calls))
            .route("/v3/list-chats", post(list_chats))
            .route("/v2/get-call/{id}", get(get_call))
            .route("/get-chat/{id}", get(get_chat))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, state, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_calls(&self, calls: impl IntoIterator<Item = Value>) {
        let mut all = self.state.calls.lock().unwrap();
        all.extend(calls);
        all.sort_by_key(|c| c["start_timestamp"].as_u64().unwrap_or(0));
    }

    pub fn add_chats(&self, chats: impl IntoIterator<Item = Value>) {
        let mut all = self.state.chats.lock().unwrap();
        all.extend(chats);
        all.sort_by_key(|c| c["start_timestamp"].as_u64().unwrap_or(0));
    }

    pub fn fault(&self, fault: Fault) {
        self.state.faults.lock().unwrap().push_back(fault);
    }

    pub fn fail_gets_after(&self, n: Option<usize>) {
        *self.state.fail_gets_after.lock().unwrap() = n;
        self.state.gets_ok.store(0, Ordering::SeqCst);
    }

    pub fn call(&self, call_id: &str) -> Value {
        self.state
            .calls
            .lock()
            .unwrap()
            .iter()
            .find(|c| c["call_id"] == call_id)
            .cloned()
            .unwrap()
    }

    pub fn requests(&self) -> u64 {
        self.state.list_requests.load(Ordering::SeqCst)
            + self.state.get_requests.load(Ordering::SeqCst)
    }
}

/// A call as get-call answers it: ended at `start + duration`, analyzed.
pub fn call(n: usize, start_ms: u64, duration_ms: u64) -> Value {
    json!({
        "call_id": format!("call_{n:05}"),
        "call_type": "phone_call",
        "agent_id": "agent_3f9c2b7e4a1d8c6b5e0f2a9d7c",
        "agent_version": 7,
        "call_status": "ended",
        "direction": "inbound",
        "from_number": "+14155550101",
        "to_number": "+14155550199",
        "start_timestamp": start_ms,
        "end_timestamp": start_ms + duration_ms,
        "duration_ms": duration_ms,
        "disconnection_reason": "user_hangup",
        "transcript": format!("Agent: Harbor Dental, how can I help?\nUser: call {n}, café hours?\n"),
        "transcript_object": [{"role": "agent", "content": "Harbor Dental, how can I help?", "words": []}],
        "recording_url": format!("https://recordings.example/{n}.wav"),
        "call_analysis": {"call_summary": "The caller asked for opening hours.", "user_sentiment": "Positive", "call_successful": true},
        "metadata": {"crm_contact_id": format!("cnt_{n}")}
    })
}

/// A chat as get-chat answers it.
pub fn chat(n: usize, start_ms: u64) -> Value {
    json!({
        "chat_id": format!("chat_{n:05}"),
        "agent_id": "agent_6d1b8f3e0a5c7e9b2d4f6a8c1e",
        "chat_status": "ended",
        "chat_type": "sms_chat",
        "start_timestamp": start_ms,
        "end_timestamp": start_ms + 60_000,
        "transcript": "User: hi\nAgent: hello\n",
        "chat_analysis": {"chat_summary": "Greetings.", "chat_successful": true}
    })
}

fn authorized(state: &Standin, headers: &HeaderMap) -> Option<Response> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state.auth_seen.lock().unwrap().push(auth.clone());
    if auth == format!("Bearer {API_KEY}") {
        None
    } else {
        Some(
            (
                StatusCode::UNAUTHORIZED,
                json!({"status": "error", "message": "Invalid API key"}).to_string(),
            )
                .into_response(),
        )
    }
}

fn scripted(state: &Standin) -> Option<Response> {
    let fault = state.faults.lock().unwrap().pop_front()?;
    let mut response = (StatusCode::from_u16(fault.status).unwrap(), fault.body).into_response();
    for (name, value) in fault.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    Some(response)
}

async fn list_calls(
    State(state): State<Arc<Standin>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.list_requests.fetch_add(1, Ordering::SeqCst);
    list(
        &state,
        &headers,
        &body,
        "call_status",
        "call_id",
        &state.calls,
    )
}

async fn list_chats(
    State(state): State<Arc<Standin>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.list_requests.fetch_add(1, Ordering::SeqCst);
    list(
        &state,
        &headers,
        &body,
        "chat_status",
        "chat_id",
        &state.chats,
    )
}

fn list(
    state: &Standin,
    headers: &HeaderMap,
    body: &[u8],
    status_field: &str,
    id_field: &str,
    all: &Mutex<Vec<Value>>,
) -> Response {
    if let Some(denied) = authorized(state, headers) {
        return denied;
    }
    if let Some(fault) = scripted(state) {
        return fault;
    }
    let query: Value = serde_json::from_slice(body).unwrap();
    state.list_bodies.lock().unwrap().push(query.clone());
    let filters = &query["filter_criteria"];
    let range = filters["start_timestamp"]["value"]
        .as_array()
        .map(|bounds| (bounds[0].as_u64().unwrap(), bounds[1].as_u64().unwrap()));
    let statuses: Option<Vec<String>> = filters[status_field]["value"]
        .as_array()
        .map(|v| v.iter().map(|s| s.as_str().unwrap().to_owned()).collect());
    let mut matching: Vec<Value> = all
        .lock()
        .unwrap()
        .iter()
        .filter(|item| {
            let start = item["start_timestamp"].as_u64().unwrap_or(0);
            range.is_none_or(|(lo, hi)| lo <= start && start <= hi)
        })
        .filter(|item| {
            statuses
                .as_ref()
                .is_none_or(|s| s.iter().any(|status| item[status_field] == status.as_str()))
        })
        .cloned()
        .collect();
    if query["sort_order"] != "ascending" {
        matching.reverse();
    }
    let limit = query["limit"]
        .as_u64()
        .map_or(state.default_limit.load(Ordering::SeqCst), |l| l as usize);
    let bare = state.bare_array.load(Ordering::SeqCst);
    // v3: an opaque cursor (an offset here); v2: the last id, exclusive.
    let offset = match query["pagination_key"].as_str() {
        None => 0,
        Some(key) if bare => matching
            .iter()
            .position(|item| item[id_field] == key)
            .map_or(matching.len(), |at| at + 1),
        Some(key) => key.strip_prefix("pk_").unwrap().parse().unwrap(),
    };
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|item| {
            let mut item = item.clone();
            let object = item.as_object_mut().unwrap();
            for omitted in [
                "transcript",
                "transcript_object",
                "transcript_with_tool_calls",
                "recording_url",
            ] {
                object.remove(omitted);
            }
            item
        })
        .collect();
    let next = offset + page.len();
    if bare {
        return (StatusCode::OK, Value::Array(page).to_string()).into_response();
    }
    let has_more = next < matching.len();
    let mut answer = json!({"items": page, "has_more": has_more});
    if has_more {
        answer["pagination_key"] = format!("pk_{next}").into();
    }
    (StatusCode::OK, answer.to_string()).into_response()
}

async fn get_call(
    State(state): State<Arc<Standin>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.get_requests.fetch_add(1, Ordering::SeqCst);
    fetch(&state, &headers, &id, "call_id", &state.calls)
}

async fn get_chat(
    State(state): State<Arc<Standin>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.get_requests.fetch_add(1, Ordering::SeqCst);
    fetch(&state, &headers, &id, "chat_id", &state.chats)
}

fn fetch(
    state: &Standin,
    headers: &HeaderMap,
    id: &str,
    id_field: &str,
    all: &Mutex<Vec<Value>>,
) -> Response {
    if let Some(denied) = authorized(state, headers) {
        return denied;
    }
    if let Some(fault) = scripted(state) {
        return fault;
    }
    let outage = (*state.fail_gets_after.lock().unwrap())
        .is_some_and(|limit| state.gets_ok.load(Ordering::SeqCst) >= limit);
    if outage {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "{\"message\":\"stand-in outage\"}",
        )
            .into_response();
    }
    let found = all
        .lock()
        .unwrap()
        .iter()
        .find(|item| item[id_field] == id)
        .cloned();
    match found {
        Some(item) => {
            state.gets_ok.fetch_add(1, Ordering::SeqCst);
            (StatusCode::OK, item.to_string()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "{\"message\":\"Not found\"}").into_response(),
    }
}
