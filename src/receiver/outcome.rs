//! Responses, reasons and outcomes: the status policy in one place.

use super::body::BadBody;
use super::config::RouteKind;
use crate::allowlist::SourceRejection;
use crate::{Incoming, ParseError, VerifyError};
use std::fmt::{self, Write as _};

pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
pub(crate) const APPLICATION_JSON: &str = "application/json";

/// Body of every `401` response, whatever the verification failure was.
pub const UNAUTHORIZED_BODY: &[u8] = b"invalid or missing signature\n";

// ---------------------------------------------------------------------------
// Response and outcome
// ---------------------------------------------------------------------------

/// The HTTP response to send: status, optional body and its content type, an
/// `Allow` header for `405`, and `Connection: close` for a request that was
/// refused before its sender proved it holds the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub(crate) status: u16,
    pub(crate) content_type: Option<&'static str>,
    pub(crate) allow: Option<&'static str>,
    pub(crate) close: bool,
    pub(crate) body: Vec<u8>,
}

impl WebhookResponse {
    pub(crate) fn empty(status: u16) -> Self {
        Self {
            status,
            content_type: None,
            allow: None,
            close: false,
            body: Vec::new(),
        }
    }

    pub(crate) fn text(status: u16, body: &[u8]) -> Self {
        Self {
            status,
            content_type: Some(TEXT_PLAIN),
            allow: None,
            close: false,
            body: body.to_vec(),
        }
    }

    /// The same response, closing its connection: a forged request then
    /// costs its sender a new connection, and cannot keep one open for good.
    fn closing(self) -> Self {
        Self {
            close: true,
            ..self
        }
    }

    /// Whether the connection is closed after this response (`Connection:
    /// close`): after a `401`, a `403`, a `408` and a `413`, whose sender has
    /// not proved it holds the key.
    #[must_use]
    pub fn closes_connection(&self) -> bool {
        self.close
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body (empty for `204`).
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out.
    #[must_use]
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The `Content-Type` of the body, if there is one.
    #[must_use]
    pub fn content_type(&self) -> Option<&'static str> {
        self.content_type
    }

    /// Every header to set, as `(lower-case name, value)` pairs.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &'static str)> + use<> {
        let content_type = self.content_type.map(|v| ("content-type", v));
        let allow = self.allow.map(|v| ("allow", v));
        let close = self.close.then_some(("connection", "close"));
        content_type.into_iter().chain(allow).chain(close)
    }
}

impl fmt::Debug for WebhookResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookResponse")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why the request got its status: one value per request, for one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// A handler returned `Ok` for an event (`204`).
    Handled,
    /// A handler answered an inbound webhook or a function call (`200`).
    Answered,
    /// An event unknown to this crate was acknowledged by `on_unknown` (`204`).
    UnknownEvent,
    /// `on_unparsed` accepted a body the models could not read (`204`).
    FallbackAccepted,
    /// The event was already handled successfully, or is stored in the inbox
    /// already; the handler was not called again (`204`, deduplication or
    /// inbox on).
    Duplicate,
    /// The same event is being handled by another request (`409`, deduplication
    /// on); Retell retries later.
    InFlight,
    /// The deduplication store failed (`503`); its message.
    DedupeFailed(String),
    /// The event was stored durably in the inbox (`204`); a worker runs the
    /// handler.
    Stored,
    /// The verified body cannot be read as an event: it was stored in the
    /// inbox as a dead letter, with this reason, for a replay after an
    /// upgrade (`204`: Retell's retries could not make it readable).
    StoredUnreadable(String),
    /// The inbox did not store the event (`503`, Retell retries); its message.
    InboxFailed(String),
    /// The source address is not allowed (`403`).
    Forbidden(SourceRejection),
    /// The method is not `POST` (events) or a tool method (functions) (`405`).
    MethodNotAllowed,
    /// Nothing is served at this path (`404`; the tower service of feature
    /// `tower` mounted at a path with `WebhookService::with_path`).
    NotFound,
    /// The body has a `Content-Encoding` other than `identity` (`415`).
    UnsupportedEncoding,
    /// The adapter could not read the whole body (client went away, malformed
    /// chunked encoding, `Content-Length` longer than what was sent) (`400`).
    BodyReadFailed,
    /// No bytes of the body arrived for
    /// [`ReceiverConfig::body_read_timeout`](crate::ReceiverConfig::body_read_timeout)
    /// (`408`; the connection is closed).
    BodyReadTimeout,
    /// The body arrived slower on average than
    /// [`ReceiverConfig::body_min_rate`](crate::ReceiverConfig::body_min_rate)
    /// once its grace had passed, or was not complete within
    /// [`ReceiverConfig::body_time_limit`](crate::ReceiverConfig::body_time_limit)
    /// (`408`; the connection is closed).
    BodyTooSlow,
    /// The body (or its `Content-Length`) is over the limit (`413`).
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// Signature verification failed (`401`). The reason is for logs only.
    Unauthorized(VerifyError),
    /// The verified body is unusable (`400`).
    BadRequest(BadBody),
    /// The handler returned an error (`500`); its `Display` text.
    HandlerFailed(String),
    /// The handler panicked (`500`).
    HandlerPanicked,
    /// The handler's answer could not be serialized (`500`).
    AnswerNotSerializable,
    /// The request was not answered within its deadline (`503`): the handler
    /// ran out of time, or, in the adapters, no in-flight place or body budget
    /// freed up in time.
    DeadlineExceeded,
    /// The adapter has no verifier or handler configured (`500`, fail closed).
    NotConfigured,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Handled => f.write_str("handled"),
            Self::Answered => f.write_str("answered"),
            Self::UnknownEvent => f.write_str("unknown event acknowledged"),
            Self::FallbackAccepted => f.write_str("unparsed body accepted by fallback"),
            Self::Duplicate => f.write_str("duplicate of an event already handled or stored"),
            Self::InFlight => f.write_str("duplicate of an event still being handled"),
            Self::DedupeFailed(why) => write!(f, "dedupe store failed: {why}"),
            Self::Stored => f.write_str("stored in the inbox"),
            Self::StoredUnreadable(why) => write!(f, "stored as a dead letter: {why}"),
            Self::InboxFailed(why) => write!(f, "inbox failed: {why}"),
            Self::Forbidden(why) => write!(f, "forbidden: {why}"),
            Self::MethodNotAllowed => f.write_str("method not allowed"),
            Self::NotFound => f.write_str("not found"),
            Self::UnsupportedEncoding => {
                f.write_str("unsupported Content-Encoding (only identity is accepted)")
            }
            Self::BodyReadFailed => f.write_str("request body could not be read"),
            Self::BodyReadTimeout => f.write_str("request body not received in time"),
            Self::BodyTooSlow => f.write_str("request body arrived too slowly"),
            Self::PayloadTooLarge { limit } => write!(f, "body over the {limit}-byte limit"),
            Self::Unauthorized(why) => write!(f, "unauthorized: {why}"),
            Self::BadRequest(why) => write!(f, "bad request: {why}"),
            Self::HandlerFailed(why) => write!(f, "handler error: {why}"),
            Self::HandlerPanicked => f.write_str("handler panicked"),
            Self::AnswerNotSerializable => f.write_str("handler answer could not be serialized"),
            Self::DeadlineExceeded => f.write_str("deadline exceeded"),
            Self::NotConfigured => f.write_str("receiver not configured (no verifier or handler)"),
        }
    }
}

/// What happened to one request: enough for one log line, with no body, header
/// value or key in it.
///
/// `Display` renders `status=204 route=events event=call_ended call_id=call_1
/// reason="handled"`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The status sent.
    pub status: u16,
    /// Why.
    pub reason: Reason,
    /// The route kind.
    pub route: RouteKind,
    /// The `event` name, once the body was verified and parsed.
    pub event: Option<String>,
    /// The call id, when the event has one.
    pub call_id: Option<String>,
    /// The chat id, when the event has one.
    pub chat_id: Option<String>,
    /// How many parts of the parsed body are kept only as raw JSON (unknown
    /// keys, enum values and item kinds, fallbacks): non-zero when Retell
    /// sends something this version does not model. The paths are in the
    /// parsed value's `untyped_paths()`.
    pub untyped: usize,
    /// Set on a `401` when the signature digest has mismatched
    /// [`MISMATCH_ALERT_THRESHOLD`](super::MISMATCH_ALERT_THRESHOLD) times or more in a row (the value is the
    /// count), at most once per [`MISMATCH_ALERT_INTERVAL_MS`](super::MISMATCH_ALERT_INTERVAL_MS): the key is
    /// probably not the Retell API key with the webhook badge, and every event
    /// is being lost after Retell's retries. Log it as an error.
    pub key_alert: Option<u64>,
}

impl Outcome {
    /// Whether the status is 2xx (Retell will not retry).
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status={} route={}", self.status, self.route)?;
        for (name, value) in [
            ("event", &self.event),
            ("call_id", &self.call_id),
            ("chat_id", &self.chat_id),
        ] {
            if let Some(value) = value {
                write!(f, " {name}=")?;
                write_log_value(f, value)?;
            }
        }
        if self.untyped > 0 {
            write!(f, " untyped={}", self.untyped)?;
        }
        // The reason may quote handler text (its error message), which may
        // repeat anything from the body: escaped like the ids.
        f.write_str(" reason=\"")?;
        write!(Escaping(f), "{}", self.reason)?;
        f.write_str("\"")?;
        if let Some(streak) = self.key_alert {
            write!(
                f,
                " alert=\"{streak} signature mismatches in a row: check that the key is the Retell API key with the webhook badge\""
            )?;
        }
        Ok(())
    }
}

/// Writes through to a formatter with control characters, quotes and
/// backslashes escaped, as `str::escape_debug` does.
struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write!(self.0, "{}", text.escape_debug())
    }
}

/// Writes a value taken from a verified body into a log line: plain ids as
/// they are, anything else quoted with control characters, quotes and
/// backslashes escaped, so a crafted id cannot forge or split log lines.
pub(crate) fn write_log_value(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if plain {
        f.write_str(value)
    } else {
        write!(f, "\"{}\"", value.escape_debug())
    }
}

/// The result of [`Receiver::dispatch`](crate::Receiver::dispatch): the
/// response to send and the outcome to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    /// Send this.
    pub response: WebhookResponse,
    /// Log this.
    pub outcome: Outcome,
}

impl Dispatched {
    pub(crate) fn new(route: RouteKind, reason: Reason, response: WebhookResponse) -> Self {
        Self {
            outcome: Outcome {
                status: response.status,
                reason,
                route,
                event: None,
                call_id: None,
                chat_id: None,
                untyped: 0,
                key_alert: None,
            },
            response,
        }
    }

    /// The response for `reason`: the one place that maps a reason to its
    /// status and bytes, so every framework sends the same.
    pub(crate) fn from_reason(route: RouteKind, reason: Reason) -> Self {
        let response = match &reason {
            Reason::Handled
            | Reason::UnknownEvent
            | Reason::FallbackAccepted
            | Reason::Duplicate
            | Reason::Stored
            | Reason::StoredUnreadable(_) => WebhookResponse::empty(204),
            Reason::InFlight => WebhookResponse::text(409, b"conflict: already in progress\n"),
            Reason::Answered => WebhookResponse::empty(200),
            Reason::Forbidden(_) => WebhookResponse::text(403, b"forbidden\n").closing(),
            Reason::MethodNotAllowed => WebhookResponse {
                allow: Some(match route {
                    RouteKind::Events => "POST",
                    RouteKind::Function => "GET, POST, PUT, PATCH, DELETE",
                }),
                ..WebhookResponse::text(405, b"method not allowed\n")
            },
            Reason::NotFound => WebhookResponse::text(404, b"not found\n"),
            Reason::UnsupportedEncoding => {
                WebhookResponse::text(415, b"unsupported content encoding\n")
            }
            Reason::PayloadTooLarge { .. } => {
                WebhookResponse::text(413, b"payload too large\n").closing()
            }
            Reason::Unauthorized(_) => WebhookResponse::text(401, UNAUTHORIZED_BODY).closing(),
            Reason::BadRequest(_) | Reason::BodyReadFailed => {
                WebhookResponse::text(400, b"bad request\n")
            }
            Reason::BodyReadTimeout | Reason::BodyTooSlow => {
                WebhookResponse::text(408, b"request timeout\n").closing()
            }
            Reason::HandlerFailed(_)
            | Reason::HandlerPanicked
            | Reason::AnswerNotSerializable
            | Reason::NotConfigured => WebhookResponse::text(500, b"internal server error\n"),
            Reason::DeadlineExceeded | Reason::DedupeFailed(_) | Reason::InboxFailed(_) => {
                WebhookResponse::text(503, b"service unavailable\n")
            }
        };
        Self::new(route, reason, response)
    }

    pub(crate) fn with_ids(mut self, ids: &Ids) -> Self {
        self.outcome.event.clone_from(&ids.event);
        self.outcome.call_id.clone_from(&ids.call_id);
        self.outcome.chat_id.clone_from(&ids.chat_id);
        self.outcome.untyped = ids.untyped;
        self
    }
}

/// The ids of a parsed body, for the outcome and the trace: only what a log
/// line may carry (escaped when written).
#[derive(Default, Clone)]
pub(crate) struct Ids {
    pub(crate) event: Option<String>,
    pub(crate) call_id: Option<String>,
    pub(crate) chat_id: Option<String>,
    pub(crate) untyped: usize,
}

impl Ids {
    /// The ids an answer already carries.
    #[cfg(feature = "inbox")]
    pub(crate) fn of_outcome(outcome: &Outcome) -> Self {
        Self {
            event: outcome.event.clone(),
            call_id: outcome.call_id.clone(),
            chat_id: outcome.chat_id.clone(),
            untyped: outcome.untyped,
        }
    }

    pub(crate) fn of_error(error: &ParseError) -> Self {
        Self {
            event: error.event().map(str::to_owned),
            call_id: error.call_id().map(str::to_owned),
            chat_id: error.chat_id().map(str::to_owned),
            untyped: 0,
        }
    }

    pub(crate) fn of_incoming(incoming: &Incoming) -> Self {
        match incoming {
            Incoming::Event(event) => Self {
                event: Some(event.event_name().to_owned()),
                call_id: event.call_id().map(str::to_owned),
                chat_id: event.chat_id().map(str::to_owned),
                untyped: event.untyped_count(),
            },
            Incoming::CallInbound(request) => Self {
                event: Some("call_inbound".to_owned()),
                call_id: request.call_inbound.call_id.clone(),
                untyped: request.untyped_paths().len(),
                ..Self::default()
            },
            Incoming::ChatInbound(request) => Self {
                event: Some("chat_inbound".to_owned()),
                chat_id: request.chat_inbound.chat_id.clone(),
                untyped: request.untyped_paths().len(),
                ..Self::default()
            },
        }
    }
}
