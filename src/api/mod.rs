//! A small client of Retell's API: list and fetch calls and chats, typed
//! with the crate's own lenient models. Feature `api`.
//!
//! Retell has no endpoint that resends a webhook. What its API does have is
//! every call and chat with the data a `call_ended` or `call_analyzed`
//! carried, which is what `backfill` (with an inbox) rebuilds missed
//! events from.
//!
//! | method | request | answer |
//! |---|---|---|
//! | [`Client::list_calls`] | `POST /v3/list-calls` | a [`Page`] of [`Call`]s (without transcripts and `recording_url`) |
//! | [`Client::get_call`] | `GET /v2/get-call/{call_id}` | the whole [`Call`] |
//! | [`Client::list_chats`] | `POST /v3/list-chats` | a [`Page`] of [`Chat`]s |
//! | [`Client::get_chat`] | `GET /get-chat/{chat_id}` | the whole [`Chat`] |
//!
//! A listing answered as a bare JSON array (the shape of the older
//! `/v2/list-calls`) is read too. The client follows the conventions of
//! Retell's SDKs: `Authorization: Bearer <API key>`, 408, 409, 429 and 5xx
//! (and failed connections) retried twice after `min(0.5 × 2ⁿ, 8)` s less up
//! to 25 % jitter, or after `retry-after-ms` / `retry-after` when the server
//! asks for less than a minute; 300 s per listing, 60 s per other request,
//! 5 s to connect. The key is never in `Debug`, an error or a log line.
//!
//! ```no_run
//! use retell_webhooks::api::{Client, ListQuery, SortOrder};
//!
//! # async fn run() -> Result<(), retell_webhooks::api::ApiError> {
//! let client = Client::new(std::env::var("RETELL_API_KEY").unwrap_or_default())?;
//! let mut query = ListQuery::new()
//!     .started_between(1_785_420_000_000, 1_785_427_200_000)
//!     .with_status(["ended", "error", "not_connected"])
//!     .sort(SortOrder::Ascending);
//! loop {
//!     let page = client.list_calls(&query).await?;
//!     for listed in &page.items {
//!         let call = client.get_call(&listed.call_id).await?;
//!         println!("{} {:?}", call.call_id, call.disconnection_reason);
//!     }
//!     match page.next(&query) {
//!         Some(next) => query = next,
//!         None => break,
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod query;
mod retry;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::error::ParseError;
use crate::tokens::Tokens;
use crate::{Call, Chat};

pub use query::{ListQuery, Page, SortOrder};

/// Retell's API.
pub const DEFAULT_BASE_URL: &str = "https://api.retellai.com";

/// The most bytes read of one answer: a page of 1 000 calls is a few MiB.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// The longest error message kept from an answer.
const MAX_MESSAGE_CHARS: usize = 200;

/// Why a request failed. No variant holds the API key, a URL or a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// `401` or `403`: the key is wrong, revoked or lacks the permission.
    #[error(
        "the Retell API refused the key ({status} on {endpoint}): check the API key (RETELL_API_KEY)"
    )]
    Unauthorized {
        /// `list-calls`, `get-call`, `list-chats` or `get-chat`.
        endpoint: &'static str,
        /// The status.
        status: u16,
    },
    /// `404`: no such call or chat (or no such endpoint at the base URL).
    #[error("the Retell API answered 404 on {endpoint}: no such call, chat or endpoint")]
    NotFound {
        /// The endpoint.
        endpoint: &'static str,
    },
    /// Any other status that is not a success, after the retries it allows.
    #[error("the Retell API answered {status} on {endpoint} after {attempts} attempt(s){}", message_suffix(.message))]
    Status {
        /// The endpoint.
        endpoint: &'static str,
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The answer's `message`, shortened, without control characters.
        message: Option<String>,
    },
    /// No answer: connection refused or reset, TLS, timeout.
    #[error("no answer from the Retell API on {endpoint} after {attempts} attempt(s): {reason}")]
    Transport {
        /// The endpoint.
        endpoint: &'static str,
        /// Attempts made.
        attempts: u32,
        /// What failed (never a URL).
        reason: String,
    },
    /// A `2xx` whose body is not what Retell sends.
    #[error("the Retell API's answer on {endpoint} is not readable: {error}")]
    Answer {
        /// The endpoint.
        endpoint: &'static str,
        /// Where it broke (a JSON path, never a value).
        error: ParseError,
    },
    /// The client could not be built: a bad key or base URL.
    #[error("the API client cannot be built: {0}")]
    Config(String),
}

fn message_suffix(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

impl ApiError {
    /// The HTTP status of an answer that failed the request, if there was one.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { status, .. } | Self::Status { status, .. } => Some(*status),
            Self::NotFound { .. } => Some(404),
            _ => None,
        }
    }
}

/// The API key: kept out of `Debug` and errors.
#[derive(Clone)]
struct Key(Arc<str>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A client of Retell's API; cheap to clone (clones share connections and
/// the request count). See the [module docs](self).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: Key,
    auth: HeaderValue,
    max_retries: u32,
    timeout: Duration,
    list_timeout: Duration,
    requests: Arc<AtomicU64>,
    jitter: Arc<Tokens>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("key", &self.key)
            .field("max_retries", &self.max_retries)
            .field("timeout", &self.timeout)
            .field("list_timeout", &self.list_timeout)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`Client`], from [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    key: String,
    base: String,
    max_retries: u32,
    timeout: Duration,
    list_timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base", &self.base)
            .field("key", &"<redacted>")
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Another base URL than [`DEFAULT_BASE_URL`] (a stand-in, a proxy):
    /// `http://` or `https://`, with or without a path prefix.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base = url.into();
        self
    }

    /// Retries after the first attempt (default 2).
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The bound on each request but listings (default 60 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The bound on each listing request (default 300 s).
    #[must_use]
    pub fn list_timeout(mut self, timeout: Duration) -> Self {
        self.list_timeout = timeout;
        self
    }

    /// The bound on connecting (default 5 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The client.
    ///
    /// # Errors
    ///
    /// [`ApiError::Config`] when the key is empty or not visible ASCII, the
    /// base URL is not an `http(s)://` URL, or the TLS stack cannot start.
    pub fn build(self) -> Result<Client, ApiError> {
        let key = self.key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::Config(
                "the API key must be non-empty visible ASCII".to_owned(),
            ));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| ApiError::Config("the API key cannot be a header value".to_owned()))?;
        auth.set_sensitive(true);
        let base = Url::parse(&self.base)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .filter(|url| url.query().is_none() && url.fragment().is_none())
            .ok_or_else(|| {
                ApiError::Config("the base URL must be an http:// or https:// URL".to_owned())
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("retell-webhooks/", env!("CARGO_PKG_VERSION")))
            // The key goes to the base URL's host only.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::Config(format!("the HTTP client cannot start: {e}")))?;
        Ok(Client {
            http,
            base,
            key: Key(Arc::from(key)),
            auth,
            max_retries: self.max_retries,
            timeout: self.timeout,
            list_timeout: self.list_timeout,
            requests: Arc::new(AtomicU64::new(0)),
            jitter: Arc::new(Tokens::new()),
        })
    }
}

/// One endpoint: its name (for errors) and how long it may take.
#[derive(Clone, Copy)]
struct Endpoint {
    name: &'static str,
    listing: bool,
}

const LIST_CALLS: Endpoint = Endpoint {
    name: "list-calls",
    listing: true,
};
const GET_CALL: Endpoint = Endpoint {
    name: "get-call",
    listing: false,
};
const LIST_CHATS: Endpoint = Endpoint {
    name: "list-chats",
    listing: true,
};
const GET_CHAT: Endpoint = Endpoint {
    name: "get-chat",
    listing: false,
};

impl Client {
    /// A client of [`DEFAULT_BASE_URL`] with the default settings.
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::build`].
    pub fn new(api_key: impl Into<String>) -> Result<Self, ApiError> {
        Self::builder(api_key).build()
    }

    /// Settings, starting from the defaults.
    #[must_use]
    pub fn builder(api_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            key: api_key.into(),
            base: DEFAULT_BASE_URL.to_owned(),
            max_retries: 2,
            timeout: Duration::from_secs(60),
            list_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// The base URL.
    #[must_use]
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// HTTP requests sent so far by this client and its clones, retries
    /// included.
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `POST /v3/list-calls`: one page.
    ///
    /// # Errors
    ///
    /// An [`ApiError`] once the retries are spent, or at once for a status
    /// that is not retried (`401`: [`ApiError::Unauthorized`]).
    pub async fn list_calls(&self, query: &ListQuery) -> Result<Page<Call>, ApiError> {
        self.list(LIST_CALLS, &["v3", "list-calls"], query, "call_status")
            .await
    }

    /// `POST /v3/list-chats`: one page.
    ///
    /// # Errors
    ///
    /// As [`list_calls`](Self::list_calls).
    pub async fn list_chats(&self, query: &ListQuery) -> Result<Page<Chat>, ApiError> {
        self.list(LIST_CHATS, &["v3", "list-chats"], query, "chat_status")
            .await
    }

    /// `GET /v2/get-call/{call_id}`: the call with its transcripts.
    ///
    /// # Errors
    ///
    /// As [`list_calls`](Self::list_calls); an unknown id is
    /// [`ApiError::NotFound`].
    pub async fn get_call(&self, call_id: &str) -> Result<Call, ApiError> {
        let body = self
            .send(GET_CALL, Method::GET, &["v2", "get-call", call_id], None)
            .await?;
        Call::from_slice(&body).map_err(|error| ApiError::Answer {
            endpoint: GET_CALL.name,
            error,
        })
    }

    /// `GET /get-chat/{chat_id}`: the chat with its messages.
    ///
    /// # Errors
    ///
    /// As [`get_call`](Self::get_call).
    pub async fn get_chat(&self, chat_id: &str) -> Result<Chat, ApiError> {
        let body = self
            .send(GET_CHAT, Method::GET, &["get-chat", chat_id], None)
            .await?;
        Chat::from_slice(&body).map_err(|error| ApiError::Answer {
            endpoint: GET_CHAT.name,
            error,
        })
    }

    async fn list<T: query::Item>(
        &self,
        endpoint: Endpoint,
        path: &[&str],
        query: &ListQuery,
        status_field: &str,
    ) -> Result<Page<T>, ApiError> {
        let body = serde_json::to_vec(&query.to_body(status_field))
            .map_err(|e| ApiError::Config(format!("cannot write the query: {e}")))?;
        let answer = self.send(endpoint, Method::POST, path, Some(body)).await?;
        query::parse_page(&answer, query.page_size()).map_err(|error| ApiError::Answer {
            endpoint: endpoint.name,
            error,
        })
    }

    /// The URL of `segments` under the base, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, ApiError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ApiError::Config("the base URL cannot have a path".to_owned()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Sends one request with the retries it allows; the body of a `2xx`.
    async fn send(
        &self,
        endpoint: Endpoint,
        method: Method,
        path: &[&str],
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ApiError> {
        let url = self.url(path)?;
        let timeout = if endpoint.listing {
            self.list_timeout
        } else {
            self.timeout
        };
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, self.auth.clone())
                .timeout(timeout);
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let (error, headers) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match read_body(response).await {
                        Ok(bytes) if status.is_success() => return Ok(bytes),
                        Ok(bytes) => {
                            let error = self.status_error(endpoint, status, attempts, &bytes);
                            if !retry::retryable(status, &headers) {
                                return Err(error);
                            }
                            (error, Some(headers))
                        }
                        Err(reason) => (transport(endpoint, attempts, &reason), None),
                    }
                }
                Err(error) => {
                    let builder = error.is_builder();
                    let reason = describe(error);
                    if builder {
                        return Err(ApiError::Config(reason));
                    }
                    (transport(endpoint, attempts, &reason), None)
                }
            };
            if attempts > self.max_retries {
                return Err(error);
            }
            let pause = retry::delay(attempts - 1, headers.as_ref(), &self.jitter);
            tokio::time::sleep(pause).await;
        }
    }

    fn status_error(
        &self,
        endpoint: Endpoint,
        status: StatusCode,
        attempts: u32,
        body: &[u8],
    ) -> ApiError {
        match status.as_u16() {
            401 | 403 => ApiError::Unauthorized {
                endpoint: endpoint.name,
                status: status.as_u16(),
            },
            404 => ApiError::NotFound {
                endpoint: endpoint.name,
            },
            code => ApiError::Status {
                endpoint: endpoint.name,
                status: code,
                attempts,
                message: self.message_of(body),
            },
        }
    }

    /// The `message` (or `error`) string of an error answer: shortened,
    /// control characters dropped, and the key cut out should the server
    /// echo it.
    fn message_of(&self, body: &[u8]) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct ErrorAnswer {
            #[serde(default)]
            message: Option<String>,
            #[serde(default)]
            error: Option<String>,
        }
        let answer: ErrorAnswer = serde_json::from_slice(body).ok()?;
        let text = answer.message.or(answer.error)?;
        let text = text.replace(&*self.key.0, "<redacted>");
        let short: String = text
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_MESSAGE_CHARS)
            .collect();
        (!short.is_empty()).then_some(short)
    }
}

fn transport(endpoint: Endpoint, attempts: u32, reason: &str) -> ApiError {
    ApiError::Transport {
        endpoint: endpoint.name,
        attempts,
        reason: reason.to_owned(),
    }
}

/// The error and its causes, without the URL (it holds ids).
fn describe(error: reqwest::Error) -> String {
    let timed_out = error.is_timeout();
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if timed_out && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    text
}

/// Reads the body, at most [`MAX_ANSWER_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(format!(
                        "the answer is larger than {} MiB",
                        MAX_ANSWER_BYTES >> 20
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) => return Err(describe(error)),
        }
    }
}
