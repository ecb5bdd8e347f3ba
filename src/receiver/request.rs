//! The framework-agnostic request: head, signature header, body.

use crate::allowlist::trim_ows;
use std::fmt;
use std::net::IpAddr;

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

/// The `X-Retell-Signature` header as received: absent, exactly one, or several
/// (rejected: never pick the first or the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SignatureHeader<'a> {
    /// No such header.
    #[default]
    Absent,
    /// Exactly one header line, with its raw value.
    One(&'a [u8]),
    /// The header was sent more than once.
    Several,
}

impl<'a> SignatureHeader<'a> {
    /// Classifies every value of the header, in the order received.
    pub(crate) fn from_values<I>(values: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut values = values.into_iter();
        match (values.next(), values.next()) {
            (None, _) => Self::Absent,
            (Some(one), None) => Self::One(one),
            (Some(_), Some(_)) => Self::Several,
        }
    }
}

/// The parts of an HTTP request the dispatcher looks at, borrowed from whatever
/// the HTTP stack hands out.
///
/// Header values are raw bytes; names are the adapter's business (they are
/// case-insensitive). Build it with [`RawRequest::new`] or [`RawRequest::post`]
/// and the `with`-style methods.
///
/// The body is the raw bytes as received (`&[u8]`): the signature covers
/// exactly those bytes, so no entry point of the core takes a parsed value or
/// a re-serialised string.
///
/// ```
/// use retell_webhooks::receiver::RawRequest;
///
/// fn from_the_wire<'a>(body: &'a [u8], signature: &'a [u8]) -> RawRequest<'a> {
///     RawRequest::post(body).signature_values([signature])
/// }
/// # let _ = from_the_wire(b"{}", b"");
/// ```
///
/// A parsed value does not compile:
///
/// ```compile_fail
/// use retell_webhooks::receiver::RawRequest;
///
/// let parsed = serde_json::json!({ "event": "call_ended" });
/// let _ = RawRequest::post(&parsed);
/// ```
///
/// Nor does a `String` (re-serialised JSON is not the signed bytes):
///
/// ```compile_fail
/// use retell_webhooks::receiver::RawRequest;
///
/// let text = String::from(r#"{"event":"call_ended"}"#);
/// let _ = RawRequest::post(&text);
/// ```
#[derive(Clone, Default)]
pub struct RawRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) body: &'a [u8],
    pub(crate) query: &'a str,
    pub(crate) signature: SignatureHeader<'a>,
    pub(crate) encoded: bool,
    pub(crate) content_length: Option<u64>,
    pub(crate) peer: Option<IpAddr>,
    pub(crate) forwarded_for: Vec<&'a [u8]>,
}

impl<'a> RawRequest<'a> {
    /// A request with this method (case-sensitive, as in HTTP) and body.
    #[must_use]
    pub fn new(method: &'a str, body: &'a [u8]) -> Self {
        Self {
            method,
            body,
            ..Self::default()
        }
    }

    /// A `POST` request with this body.
    #[must_use]
    pub fn post(body: &'a [u8]) -> Self {
        Self::new("POST", body)
    }

    /// Sets the query string (without `?`), handed to custom functions.
    #[must_use]
    pub fn with_query(mut self, query: &'a str) -> Self {
        self.query = query;
        self
    }

    /// Replaces the body (e.g. once it has been read).
    #[must_use]
    pub fn with_body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// Sets the `X-Retell-Signature` header from all its values, in order:
    /// none, exactly one, or several (refused: never the first or the last).
    #[must_use]
    pub fn signature_values<I>(self, values: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        Self {
            signature: SignatureHeader::from_values(values),
            ..self
        }
    }

    /// Sets the `Content-Encoding` header from all its values. Absent, empty or
    /// `identity` (any case) means the body is not encoded.
    #[must_use]
    pub fn content_encoding_values<I>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        self.encoded = values.into_iter().any(|value| {
            value.split(|&b| b == b',').any(|coding| {
                let coding = trim_ows(coding);
                !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity")
            })
        });
        self
    }

    /// Sets the `Content-Length` header value, if the request had a valid one.
    #[must_use]
    pub fn with_content_length(mut self, length: Option<u64>) -> Self {
        self.content_length = length;
        self
    }

    /// Sets `Content-Length` from the header's values as received: only exactly
    /// one value of ASCII digits counts (servers refuse other framings before
    /// this point; a value that is not plain digits is ignored here, never
    /// guessed at).
    #[must_use]
    pub fn content_length_values<I>(self, values: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut values = values.into_iter();
        let length = match (values.next(), values.next()) {
            (Some(digits), None) if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => {
                std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
            }
            _ => None,
        };
        self.with_content_length(length)
    }

    /// Sets the TCP peer address, for the source allowlist.
    #[must_use]
    pub fn with_peer(mut self, peer: Option<IpAddr>) -> Self {
        self.peer = peer;
        self
    }

    /// Sets the `X-Forwarded-For` header values, in the order received.
    #[must_use]
    pub fn forwarded_for_values<I>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        self.forwarded_for = values.into_iter().collect();
        self
    }

    /// The method.
    #[must_use]
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The `Content-Length` given with [`with_content_length`](Self::with_content_length).
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }
}

impl fmt::Debug for RawRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRequest")
            .field("method", &self.method)
            .field("body_len", &self.body.len())
            .field(
                "signature",
                &match self.signature {
                    SignatureHeader::Absent => "absent",
                    SignatureHeader::One(_) => "one [REDACTED]",
                    SignatureHeader::Several => "several",
                },
            )
            .field("encoded", &self.encoded)
            .field("content_length", &self.content_length)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
