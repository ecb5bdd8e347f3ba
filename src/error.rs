//! Errors of parsing, and the combined error of verify-then-parse.

use std::fmt;

use crate::signature::VerifyError;

/// Why a body could not be parsed into a typed webhook model.
///
/// It carries the JSON path of the failure (`call.transcript_object[3].words`),
/// the line and column, and — when they can be read despite the failure — the
/// event name and the call/chat id, so a failed delivery can be traced.
///
/// Its `Display` never contains the body or any field value: only the path,
/// the position, the kind of failure and (for known event names) the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(Box<Details>);

/// Boxed so that `Result<_, ParseError>` stays one pointer wide.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    kind: ParseErrorKind,
    path: String,
    message: String,
    line: usize,
    column: usize,
    event: Option<String>,
    /// `event` when it is a name from the catalogue: the only form `Display`
    /// prints, so that an arbitrary string from the body never reaches a log.
    known_event: Option<&'static str>,
    call_id: Option<String>,
    chat_id: Option<String>,
}

/// The broad class of a [`ParseError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The body is not valid UTF-8 (checked over the whole body, including
    /// values the models skip).
    InvalidUtf8,
    /// Not JSON: syntax error, trailing characters, nesting deeper than 128.
    Syntax,
    /// The body ended in the middle of a value.
    Eof,
    /// Valid JSON of the wrong shape: not an object, missing or non-string
    /// `event`, duplicate key, wrong type or out-of-range number in a field.
    Data,
}

impl ParseError {
    /// The broad class of failure.
    pub fn kind(&self) -> ParseErrorKind {
        self.0.kind
    }

    /// JSON path of the failure (`.` for the document root).
    pub fn path(&self) -> &str {
        if self.0.path.is_empty() {
            "."
        } else {
            &self.0.path
        }
    }

    /// What went wrong, without any value from the body.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// 1-based line of the failure (0 when unknown).
    pub fn line(&self) -> usize {
        self.0.line
    }

    /// 1-based column (in bytes) of the failure (0 when unknown).
    pub fn column(&self) -> usize {
        self.0.column
    }

    /// The `event` name, when it could be read from the body.
    pub fn event(&self) -> Option<&str> {
        self.0.event.as_deref()
    }

    /// The `call.call_id` (or legacy `data.call_id`), when it could be read.
    pub fn call_id(&self) -> Option<&str> {
        self.0.call_id.as_deref()
    }

    /// The `chat.chat_id`, when it could be read.
    pub fn chat_id(&self) -> Option<&str> {
        self.0.chat_id.as_deref()
    }

    pub(crate) fn utf8(body: &[u8], error: std::str::Utf8Error) -> Self {
        let valid = body.get(..error.valid_up_to()).unwrap_or_default();
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        let column = 1 + valid.iter().rev().take_while(|&&b| b != b'\n').count();
        Self(Box::new(Details {
            kind: ParseErrorKind::InvalidUtf8,
            path: String::new(),
            message: "invalid UTF-8".to_owned(),
            line,
            column,
            event: None,
            known_event: None,
            call_id: None,
            chat_id: None,
        }))
    }

    pub(crate) fn json(error: &serde_json::Error, path: String) -> Self {
        use serde_json::error::Category;
        let kind = match error.classify() {
            Category::Syntax | Category::Io => ParseErrorKind::Syntax,
            Category::Eof => ParseErrorKind::Eof,
            Category::Data => ParseErrorKind::Data,
        };
        Self(Box::new(Details {
            kind,
            path,
            message: sanitize(&error.to_string()),
            line: error.line(),
            column: error.column(),
            event: None,
            known_event: None,
            call_id: None,
            chat_id: None,
        }))
    }

    pub(crate) fn shape(message: &str) -> Self {
        Self(Box::new(Details {
            kind: ParseErrorKind::Data,
            path: String::new(),
            message: message.to_owned(),
            line: 0,
            column: 0,
            event: None,
            known_event: None,
            call_id: None,
            chat_id: None,
        }))
    }

    /// Adds what could be read from the failed body: the `event` string as
    /// received, the same name when it is in the event catalogue (the
    /// caller checks it), and the ids.
    pub(crate) fn with_context(
        mut self,
        event: Option<String>,
        known_event: Option<&'static str>,
        call_id: Option<String>,
        chat_id: Option<String>,
    ) -> Self {
        self.0.event = event;
        self.0.known_event = known_event;
        self.0.call_id = call_id;
        self.0.chat_id = chat_id;
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid webhook body at `{}`", self.path())?;
        if self.0.line > 0 {
            write!(f, " (line {}, column {})", self.0.line, self.0.column)?;
        }
        write!(f, ": {}", self.0.message)?;
        // Only names from the known catalogue are printed: an arbitrary
        // string from the body never reaches a log line.
        if let Some(event) = self.0.known_event {
            write!(f, " (event `{event}`)")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// Rewrites a serde_json message so that it names the failure but never a value.
///
/// serde's messages quote offending values (`invalid type: string "…", expected
/// u64`); bodies carry phone numbers and transcripts, so those are cut out.
fn sanitize(message: &str) -> String {
    // serde_json appends " at line L column C"; the position is reported separately.
    let message = match message.rfind(" at line ") {
        Some(at) => message.get(..at).unwrap_or(message),
        None => message,
    };
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let unexpected = rest.split([' ', ',']).next().unwrap_or_default();
            let unexpected = match unexpected {
                "floating" => "floating point",
                "unit" => "null",
                other => other,
            };
            let expected = rest
                .rfind(", expected ")
                .and_then(|i| rest.get(i..))
                .unwrap_or_default();
            return format!("{prefix}{unexpected}{expected}");
        }
    }
    // Anything else (syntax errors, duplicate/missing field names from our own
    // schema, our custom messages) carries no body value, except possibly
    // quoted text: drop quoted segments defensively.
    let mut out = String::with_capacity(message.len());
    let mut in_quotes = false;
    for c in message.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
            if in_quotes {
                out.push_str("\"…\"");
            }
        } else if !in_quotes {
            out.push(c);
        }
    }
    out
}

/// Error of [`Verifier::verify_and_parse`](crate::Verifier::verify_and_parse) and
/// friends: either the signature check or the parse failed.
///
/// Map `Verify` to HTTP 401 and `Parse` to HTTP 400.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The signature did not verify; nothing was parsed.
    #[error("signature verification failed: {0}")]
    Verify(#[from] VerifyError),
    /// The signature verified but the body is not a valid webhook.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn sanitize_removes_values() {
        assert_eq!(
            sanitize("invalid type: string \"+1415555\", expected u64 at line 1 column 9"),
            "invalid type: string, expected u64"
        );
        assert_eq!(
            sanitize("invalid value: integer `-1`, expected a non-negative integer"),
            "invalid value: integer, expected a non-negative integer"
        );
        assert_eq!(
            sanitize("duplicate field `event` at line 1 column 30"),
            "duplicate field `event`"
        );
        assert_eq!(sanitize("weird \"secret\" text"), "weird \"…\" text");
    }
}
