//! Custom functions (custom tools): Retell calls your URL while the agent talks,
//! and gives the LLM your answer.

use std::fmt;

use serde::de::{self, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::call::Call;
use super::chat::Chat;
use super::raw::{RawJson, RawObject, read_raw};
use crate::error::ParseError;

model! {
    /// The default request body: `{name, call, args}` (chat agents presumably
    /// send `chat` instead of `call`; both are accepted).
    pub struct WrappedFunctionCall [name: "Tool name."] {
        /// The live call so far (`call_status: "ongoing"`, transcript up to now).
        call: Box<Call>,
        /// The live chat so far (chat agents).
        chat: Box<Chat>,
        /// Arguments produced by the LLM (an object matching the tool's parameters).
        args: RawJson,
    }
}

/// A custom-function request body, in either of its two forms.
///
/// With "Payload: args only" (`args_at_root`) the body is just the arguments
/// object. A body is read as [`FunctionCall::Wrapped`] when it has a string
/// `name`, an `args` key and a `call` or `chat` object; any other JSON object is
/// [`FunctionCall::ArgsOnly`].
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionCall {
    /// `{name, call | chat, args}`.
    Wrapped(WrappedFunctionCall),
    /// The arguments object alone.
    ArgsOnly(RawObject),
}

impl FunctionCall {
    /// Parses a request body (UTF-8 checked over the whole body; the body must
    /// be a JSON object). GET/DELETE tools send an empty body: don't parse it.
    pub fn from_slice(body: &[u8]) -> Result<Self, ParseError> {
        let text = std::str::from_utf8(body).map_err(|e| ParseError::utf8(body, e))?;
        if is_wrapped(text) {
            let mut de = serde_json::Deserializer::from_str(text);
            let call = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| ParseError::json(e.inner(), e.path().to_string()))?;
            de.end().map_err(|e| ParseError::json(&e, String::new()))?;
            return Ok(Self::Wrapped(call));
        }
        let raw = RawJson::parse(text).map_err(|e| ParseError::json(&e, String::new()))?;
        RawObject::try_from(raw)
            .map(Self::ArgsOnly)
            .map_err(|_| ParseError::shape("a custom-function body must be a JSON object"))
    }

    /// Tool name (wrapped form only).
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Wrapped(w) => Some(&w.name),
            Self::ArgsOnly(_) => None,
        }
    }

    /// The arguments, in either form.
    pub fn args(&self) -> Option<&RawJson> {
        match self {
            Self::Wrapped(w) => w.args.as_ref().filter(|args| args.is_object()),
            Self::ArgsOnly(args) => Some(args),
        }
    }

    /// Deserializes the arguments into your own type (which may borrow
    /// strings from them).
    pub fn args_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        match self {
            Self::Wrapped(w) => match &w.args {
                Some(args) => args.deserialize(),
                None => T::deserialize(Value::Null),
            },
            Self::ArgsOnly(args) => args.deserialize(),
        }
    }

    /// What the wrapped form keeps only as raw JSON (the arguments are
    /// free-form by design: nothing for the args-only form).
    pub fn untyped_paths(&self) -> Vec<super::Untyped> {
        match self {
            Self::Wrapped(w) => w.untyped_paths(),
            Self::ArgsOnly(_) => Vec::new(),
        }
    }

    /// The live call (wrapped form from a voice agent).
    pub fn call(&self) -> Option<&Call> {
        match self {
            Self::Wrapped(w) => w.call.as_deref(),
            Self::ArgsOnly(_) => None,
        }
    }

    /// The live chat (wrapped form from a chat agent).
    pub fn chat(&self) -> Option<&Chat> {
        match self {
            Self::Wrapped(w) => w.chat.as_deref(),
            Self::ArgsOnly(_) => None,
        }
    }
}

/// Whether a body has the wrapped form: a string `name`, an `args` key and a
/// `call` or `chat` object. Only reads the shape (no value is kept); a body
/// that is not valid JSON is not wrapped, and fails as arguments instead.
fn is_wrapped(text: &str) -> bool {
    let mut de = serde_json::Deserializer::from_str(text);
    de::Deserializer::deserialize_map(&mut de, ShapeOfBody).unwrap_or(false)
}

/// The JSON type of one value, skipping its contents.
#[derive(PartialEq, Eq)]
enum Shape {
    Object,
    String,
    Other,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::String)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Object)
    }
}

struct ShapeOfBody;

impl<'de> Visitor<'de> for ShapeOfBody {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let (mut name, mut args, mut subject) = (false, false, false);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "name" => name = map.next_value::<Shape>()? == Shape::String,
                "args" => {
                    map.next_value::<IgnoredAny>()?;
                    args = true;
                }
                "call" | "chat" => subject |= map.next_value::<Shape>()? == Shape::Object,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(name && args && subject)
    }
}

impl Serialize for FunctionCall {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Wrapped(w) => w.serialize(serializer),
            Self::ArgsOnly(args) => args.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for FunctionCall {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = read_raw(deserializer)?;
        if is_wrapped(raw.as_str()) {
            raw.deserialize()
                .map(Self::Wrapped)
                .map_err(D::Error::custom)
        } else {
            RawObject::try_from(raw)
                .map(Self::ArgsOnly)
                .map_err(|_| D::Error::custom("expected a JSON object"))
        }
    }
}

/// The HTTP method a custom function was called with (the tool's setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionMethod {
    /// `GET` (empty body; arguments as query parameters, if any).
    Get,
    /// `POST` (Retell's default).
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE` (empty body).
    Delete,
}

impl FunctionMethod {
    /// The method for a request line's method, `None` for any other.
    #[must_use]
    pub fn parse(method: &str) -> Option<Self> {
        Some(match method {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            _ => return None,
        })
    }

    /// The method as on the request line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// A custom-function request as Retell sends it: the method, the query
/// parameters and, when the body is not empty, the [`FunctionCall`].
///
/// # What the signature covers
///
/// Retell signs the body and the timestamp only. The method, the query
/// string, the path and the other headers are not signed: whoever captures
/// one signed request can send the same body and signature again, within
/// the 5 minute window, with another method or query. For the empty body of
/// a `GET` or `DELETE` tool, a captured signature is good for any method and
/// query (`GET /function?customer=999`, `DELETE /function`), and reaches the
/// handler. So a tool should:
///
/// * treat [`method`](Self::method) and [`query`](Self::query) as untrusted
///   input, never as what decides who or what is acted on;
/// * take its parameters from the signed body ([`FunctionCall::args`]; a
///   `POST` tool, Retell's default);
/// * keep a `GET` tool idempotent and read-only, and answer nothing a
///   stranger may not see whatever the query says.
///
/// ```
/// use retell_webhooks::{FunctionCall, FunctionMethod, FunctionRequest};
///
/// let call = FunctionCall::from_slice(br#"{"date":"2026-12-02"}"#)?;
/// let request = FunctionRequest::new(FunctionMethod::Post, "tool=book&slot=10%3A00", Some(call));
/// assert_eq!(request.query_param("slot").as_deref(), Some("10:00"));
/// assert_eq!(request.name(), None); // "args only" bodies carry no name
/// # Ok::<(), retell_webhooks::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRequest {
    /// The method. Not signed: a replayed signature can come with another
    /// method (see [what the signature covers](Self#what-the-signature-covers)).
    pub method: FunctionMethod,
    /// The raw query string (without `?`; empty when there is none). Not
    /// signed: untrusted input (see
    /// [what the signature covers](Self#what-the-signature-covers)).
    pub query: String,
    /// The body, parsed; `None` for an empty body (`GET`, `DELETE`).
    pub call: Option<FunctionCall>,
}

impl FunctionRequest {
    /// A request (for tests and for adapters of your own).
    pub fn new(method: FunctionMethod, query: &str, call: Option<FunctionCall>) -> Self {
        Self {
            method,
            query: query.to_owned(),
            call,
        }
    }

    /// A `POST` with this body, as Retell sends by default.
    pub fn post(call: FunctionCall) -> Self {
        Self::new(FunctionMethod::Post, "", Some(call))
    }

    /// The tool name of a wrapped body.
    pub fn name(&self) -> Option<&str> {
        self.call.as_ref()?.name()
    }

    /// The query parameters, decoded (`+` and `%XX`), in order. Not signed:
    /// untrusted input (see [what the signature covers](Self#what-the-signature-covers)).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(key), form_decode(value))
            })
            .collect()
    }

    /// The first value of query parameter `key`, decoded. Not signed:
    /// untrusted input (see [what the signature covers](Self#what-the-signature-covers)).
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }
}

/// Decodes one `application/x-www-form-urlencoded` component; invalid
/// escapes are kept as written, invalid UTF-8 is replaced.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|c| (*c as char).to_digit(16));
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a custom function answers: JSON or plain text. Retell stringifies either
/// and gives at most [`FunctionResponse::MAX_CHARS`] characters to the LLM.
///
/// ```
/// use retell_webhooks::FunctionResponse;
///
/// let answer = FunctionResponse::json(serde_json::json!({ "slots": ["10:00"] }));
/// assert_eq!(answer.to_body(), br#"{"slots":["10:00"]}"#);
/// assert_eq!(answer.content_type(), "application/json");
/// assert_eq!(FunctionResponse::text("Booked").content_type(), "text/plain; charset=utf-8");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionResponse {
    /// A JSON body (`application/json`).
    Json(Value),
    /// A plain-text body (`text/plain; charset=utf-8`).
    Text(String),
}

impl FunctionResponse {
    /// Characters of the response Retell passes on to the LLM.
    pub const MAX_CHARS: usize = 15_000;

    /// A JSON answer.
    pub fn json(value: Value) -> Self {
        Self::Json(value)
    }

    /// A JSON answer from any serializable value.
    pub fn json_from<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_value(value).map(Self::Json)
    }

    /// A plain-text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// The HTTP body bytes.
    pub fn to_body(&self) -> Vec<u8> {
        match self {
            // Serializing a `Value` cannot fail.
            Self::Json(value) => serde_json::to_vec(value).unwrap_or_default(),
            Self::Text(text) => text.clone().into_bytes(),
        }
    }

    /// The HTTP `Content-Type` of [`Self::to_body`].
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Json(_) => "application/json",
            Self::Text(_) => "text/plain; charset=utf-8",
        }
    }

    /// `true` when the body is longer than Retell passes to the LLM.
    pub fn exceeds_llm_limit(&self) -> bool {
        String::from_utf8_lossy(&self.to_body()).chars().count() > Self::MAX_CHARS
    }
}

impl Serialize for FunctionResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Json(value) => value.serialize(serializer),
            Self::Text(text) => serializer.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for FunctionResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::Json)
    }
}
