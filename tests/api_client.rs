//! `api::Client` against the stand-in Retell API (`common/retell_api.rs`):
//! pagination, the bare-array answer, retries and their delays, a refused
//! key, and calls the models do not fully know.

#[path = "common/retell_api.rs"]
mod retell_api;

use std::time::{Duration, Instant};

use retell_webhooks::api::{ApiError, Client, ListQuery, SortOrder};
use retell_webhooks::models::{CallStatus, ChatStatus};
use retell_webhooks::serde_json::json;

use retell_api::{API_KEY, Fault, Server};

const T0: u64 = 1_785_420_000_000;

fn client(server: &Server) -> Client {
    Client::builder(API_KEY)
        .base_url(server.base_url())
        .build()
        .unwrap()
}

fn ended_query() -> ListQuery {
    ListQuery::new()
        .started_between(T0, T0 + 3_600_000)
        .with_status([
            CallStatus::Ended,
            CallStatus::Error,
            CallStatus::NotConnected,
        ])
        .sort(SortOrder::Ascending)
}

async fn list_all(client: &Client, mut query: ListQuery) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let page = client.list_calls(&query).await.unwrap();
        pages += 1;
        ids.extend(page.items.iter().map(|c| c.call_id.clone()));
        match page.next(&query) {
            Some(next) => query = next,
            None => return (ids, pages),
        }
    }
}

#[tokio::test]
async fn pagination_is_followed_until_has_more_is_false() {
    let server = Server::start().await;
    server.add_calls((0..120).map(|n| retell_api::call(n, T0 + n as u64 * 1000, 30_000)));
    // Outside the window, and still going: not listed.
    server.add_calls([retell_api::call(900, T0 - 1, 30_000)]);
    let mut ongoing = retell_api::call(901, T0 + 5, 30_000);
    ongoing["call_status"] = "ongoing".into();
    server.add_calls([ongoing]);
    let client = client(&server);

    let (ids, pages) = list_all(&client, ended_query().limit(50)).await;
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..120).map(|n| format!("call_{n:05}")).collect();
    assert_eq!(ids, expected);

    let bodies = server.state.list_bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3);
    assert_eq!(
        bodies[0]["filter_criteria"]["start_timestamp"],
        json!({"op": "bt", "type": "range", "value": [T0, T0 + 3_600_000]})
    );
    assert_eq!(
        bodies[0]["filter_criteria"]["call_status"],
        json!({"op": "in", "type": "enum", "value": ["ended", "error", "not_connected"]})
    );
    assert_eq!(bodies[0]["sort_order"], "ascending");
    assert!(bodies[0].get("pagination_key").is_none());
    assert_eq!(bodies[1]["pagination_key"], "pk_50");
    assert_eq!(bodies[2]["pagination_key"], "pk_100");
    let auth = server.state.auth_seen.lock().unwrap().clone();
    assert!(auth.iter().all(|a| *a == format!("Bearer {API_KEY}")));
    assert_eq!(client.requests_sent(), 3);
}

#[tokio::test]
async fn listed_items_lack_transcripts_and_get_call_has_them() {
    let server = Server::start().await;
    server.add_calls([retell_api::call(1, T0, 42_000)]);
    let client = client(&server);
    let page = client.list_calls(&ended_query()).await.unwrap();
    let listed = &page.items[0];
    assert_eq!(listed.transcript, None);
    assert_eq!(listed.recording_url, None);
    assert!(listed.call_analysis.is_some());
    assert!(!page.has_more);
    assert!(!page.bare_array);

    let call = client.get_call("call_00001").await.unwrap();
    assert!(call.transcript.as_deref().unwrap().contains("café"));
    assert_eq!(call.duration_ms, Some(42_000));
    // Lossless: the same JSON as the stand-in's.
    let written = retell_webhooks::serde_json::to_value(&call).unwrap();
    assert_eq!(written, server.call("call_00001"));

    let missing = client.get_call("call_nope").await.unwrap_err();
    assert_eq!(
        missing,
        ApiError::NotFound {
            endpoint: "get-call"
        }
    );
}

#[tokio::test]
async fn the_v2_bare_array_answer_is_read_and_paged_by_the_last_id() {
    let server = Server::start().await;
    server.add_calls((0..120).map(|n| retell_api::call(n, T0 + n as u64 * 1000, 30_000)));
    server
        .state
        .bare_array
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let client = client(&server);

    let first = client.list_calls(&ended_query().limit(50)).await.unwrap();
    assert!(first.bare_array);
    assert!(first.has_more);
    assert_eq!(first.pagination_key.as_deref(), Some("call_00049"));
    assert_eq!(first.total, None);

    let (ids, pages) = list_all(&client, ended_query().limit(50)).await;
    assert_eq!(ids.len(), 120);
    assert_eq!(ids.last().map(String::as_str), Some("call_00119"));
    assert_eq!(pages, 3);
    let bodies = server.state.list_bodies.lock().unwrap().clone();
    assert_eq!(bodies.last().unwrap()["pagination_key"], "call_00099");
}

#[tokio::test]
async fn a_429_with_retry_after_and_a_500_are_retried() {
    let server = Server::start().await;
    server.add_calls([retell_api::call(1, T0, 1000)]);
    let client = client(&server);

    server.fault(Fault::status(429).header("retry-after-ms", "300"));
    let started = Instant::now();
    let page = client.list_calls(&ended_query()).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(client.requests_sent(), 2);

    server.fault(Fault::status(429).header("retry-after", "1"));
    let started = Instant::now();
    client.get_call("call_00001").await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(client.requests_sent(), 4);

    // No header: the first back-off, 375 to 500 ms.
    server.fault(Fault::status(500));
    let started = Instant::now();
    client.get_call("call_00001").await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(375), "{waited:?}");
    assert_eq!(client.requests_sent(), 6);

    // 408 and 409 too, and a 502 then a 503: two retries.
    server.fault(Fault::status(409));
    client.get_call("call_00001").await.unwrap();
    server.fault(Fault::status(502).header("retry-after-ms", "10"));
    server.fault(Fault::status(503).header("retry-after-ms", "10"));
    client.get_call("call_00001").await.unwrap();
    assert_eq!(client.requests_sent(), 11);
}

#[tokio::test]
async fn retries_end_after_two_with_the_last_status() {
    let server = Server::start().await;
    let client = client(&server);
    for _ in 0..3 {
        server.fault(Fault::status(503).header("retry-after-ms", "5"));
    }
    let error = client.list_calls(&ended_query()).await.unwrap_err();
    assert_eq!(
        error,
        ApiError::Status {
            endpoint: "list-calls",
            status: 503,
            attempts: 3,
            message: Some("stand-in fault 503".to_owned()),
        }
    );
    assert_eq!(client.requests_sent(), 3);

    // A 400 is final at once; `x-should-retry: false` stops a 503.
    server.fault(Fault::status(400));
    let error = client.list_calls(&ended_query()).await.unwrap_err();
    assert_eq!(error.status(), Some(400));
    server.fault(Fault::status(503).header("x-should-retry", "false"));
    client.list_calls(&ended_query()).await.unwrap_err();
    assert_eq!(client.requests_sent(), 5);
}

#[tokio::test]
async fn a_401_stops_at_once_with_a_clear_error_that_hides_the_key() {
    let server = Server::start().await;
    let secret = "key_wrong_0123456789abcdef";
    let client = Client::builder(secret)
        .base_url(server.base_url())
        .build()
        .unwrap();
    let error = client.list_calls(&ended_query()).await.unwrap_err();
    assert_eq!(
        error,
        ApiError::Unauthorized {
            endpoint: "list-calls",
            status: 401
        }
    );
    let text = error.to_string();
    assert!(text.contains("refused the key"), "{text}");
    assert!(!text.contains(secret));
    assert_eq!(client.requests_sent(), 1);
    assert!(!format!("{client:?}").contains(secret));
    assert!(!format!("{:?}", Client::builder(secret)).contains(secret));

    // A server that echoes the key in its message: cut out.
    let client = self::client(&server);
    let mut echo = Fault::status(400);
    echo.body =
        json!({"message": format!("bad request for Bearer {API_KEY}\u{1b}[31m")}).to_string();
    server.fault(echo);
    let text = client.get_call("call_1").await.unwrap_err().to_string();
    assert!(!text.contains(API_KEY), "{text}");
    assert!(
        text.contains("<redacted>") && !text.contains('\u{1b}'),
        "{text}"
    );
}

#[tokio::test]
async fn no_server_is_a_transport_error_without_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::builder(API_KEY)
        .base_url(format!("http://{addr}/"))
        .max_retries(1)
        .build()
        .unwrap();
    let error = client.get_call("call_secret_id").await.unwrap_err();
    let ApiError::Transport { attempts, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*attempts, 2);
    assert!(!error.to_string().contains("call_secret_id"), "{error}");
}

#[tokio::test]
async fn an_unknown_field_and_an_unknown_status_parse() {
    let server = Server::start().await;
    let mut odd = retell_api::call(7, T0, 1000);
    odd["call_status"] = "archived".into();
    odd["brand_new_field"] = json!({"nested": [1, 2, 3]});
    odd["duration_ms"] = "not a number".into();
    server.add_calls([odd.clone()]);
    let client = client(&server);

    let page = client
        .list_calls(&ListQuery::new().with_status(["archived"]))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let call = client.get_call("call_00007").await.unwrap();
    assert_eq!(
        call.call_status,
        Some(CallStatus::Unknown("archived".to_owned()))
    );
    assert!(call.extra.contains_key("brand_new_field"));
    assert_eq!(call.duration_ms, None);
    assert_eq!(retell_webhooks::serde_json::to_value(&call).unwrap(), odd);

    // An item without an id is skipped and counted, not fatal.
    server.add_calls([json!({"call_status": "ended", "start_timestamp": T0 + 1})]);
    let page = client.list_calls(&ListQuery::new()).await.unwrap();
    assert_eq!((page.items.len(), page.unreadable), (1, 1));
}

#[tokio::test]
async fn chats_are_listed_and_fetched() {
    let server = Server::start().await;
    server.add_chats((0..3).map(|n| retell_api::chat(n, T0 + n as u64)));
    let client = client(&server);
    let query = ListQuery::new()
        .started_between(T0, T0 + 10)
        .with_status([ChatStatus::Ended, ChatStatus::Error])
        .sort(SortOrder::Ascending)
        .limit(2);
    let page = client.list_chats(&query).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.has_more);
    let rest = client
        .list_chats(&page.next(&query).unwrap())
        .await
        .unwrap();
    assert_eq!(rest.items[0].chat_id, "chat_00002");
    let bodies = server.state.list_bodies.lock().unwrap().clone();
    assert_eq!(
        bodies[0]["filter_criteria"]["chat_status"]["value"],
        json!(["ended", "error"])
    );
    let chat = client.get_chat("chat_00001").await.unwrap();
    assert_eq!(chat.chat_status, Some(ChatStatus::Ended));
    assert!(chat.chat_analysis.is_some());
}

#[test]
fn bad_settings_are_refused_without_echoing_the_key() {
    for key in ["", "  ", "key with spaces", "key\u{e9}"] {
        let error = Client::new(key).unwrap_err();
        assert!(matches!(error, ApiError::Config(_)), "{error:?}");
    }
    for base in ["ftp://api.example", "not a url", "http://x/?q=1"] {
        let error = Client::builder(API_KEY).base_url(base).build().unwrap_err();
        assert!(matches!(error, ApiError::Config(_)), "{base}: {error:?}");
        assert!(!error.to_string().contains(API_KEY));
    }
    let client = Client::builder(API_KEY)
        .base_url("http://127.0.0.1:9/retell/")
        .build()
        .unwrap();
    assert_eq!(client.base_url(), "http://127.0.0.1:9/retell/");
}
