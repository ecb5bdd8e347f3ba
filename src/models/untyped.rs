//! What a parsed value keeps only as raw JSON.
//!
//! Nothing Retell sends is dropped: keys this version does not model, enum
//! values and item kinds it does not know, and values of a known field that did
//! not fit its type are all kept and written back. [`Untyped`] lists them, so a
//! receiver can log "Retell sent fields this version does not model" and an
//! upgrade can be planned before anything depends on them.

use std::fmt;

/// One part of a parsed body that is kept only as raw JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untyped {
    /// JSON path from the value the list was taken of, e.g.
    /// `call.transcript_object[3].metadata`. Object keys come from the body:
    /// control characters in them are escaped (`\u{1b}`), but treat the path as
    /// untrusted text.
    pub path: String,
    /// Why it is untyped.
    pub reason: UntypedReason,
}

/// Why a part of a body is kept only as raw JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UntypedReason {
    /// A key this version does not model (kept in the object's `extra`).
    UnknownKey,
    /// A string-enum value this version does not know (an `Unknown(..)` variant).
    UnknownValue,
    /// A transcript item or chat message whose `role` this version does not
    /// know, or that is not an object (an `Unknown(..)` variant).
    UnknownKind,
    /// A known field whose value has another JSON type or is out of range: the
    /// typed field reads `None` and the value is kept as it came.
    Fallback {
        /// What the field expects, e.g. `"a non-negative integer"`.
        expected: &'static str,
    },
}

impl Untyped {
    /// `true` for a [`UntypedReason::Fallback`].
    pub fn is_fallback(&self) -> bool {
        matches!(self.reason, UntypedReason::Fallback { .. })
    }

    /// The path with every array index written as `[]`
    /// (`call.transcript_object[].metadata`), to group equal fields of many items.
    pub fn generic_path(&self) -> String {
        let mut out = String::with_capacity(self.path.len());
        let mut in_index = false;
        for c in self.path.chars() {
            match c {
                '[' => {
                    in_index = true;
                    out.push_str("[]");
                }
                ']' if in_index => in_index = false,
                _ if in_index => {}
                _ => out.push(c),
            }
        }
        out
    }
}

impl fmt::Display for Untyped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        match self.reason {
            UntypedReason::UnknownKey => f.write_str(" (unknown key)"),
            UntypedReason::UnknownValue => f.write_str(" (unknown value)"),
            UntypedReason::UnknownKind => f.write_str(" (unknown kind)"),
            UntypedReason::Fallback { expected } => write!(f, " (fallback: expected {expected})"),
        }
    }
}

/// A JSON path being built while a value is walked.
#[derive(Default)]
pub(crate) struct Path {
    text: String,
    marks: Vec<usize>,
    /// Counting only: no path text is built (see [`Path::counter`]).
    counting: bool,
}

impl Path {
    /// A path starting at `root` (empty for the value itself).
    pub(crate) fn new(root: &str) -> Self {
        let mut path = Self::default();
        if !root.is_empty() {
            path.text.push_str(root);
        }
        path
    }

    /// A path that builds no text: records carry an empty path, for callers
    /// that only count (the per-delivery outcome).
    pub(crate) fn counter() -> Self {
        Self {
            counting: true,
            ..Self::default()
        }
    }

    /// Enters an object key.
    pub(crate) fn push_key(&mut self, key: &str) {
        if self.counting {
            return;
        }
        self.marks.push(self.text.len());
        if !self.text.is_empty() {
            self.text.push('.');
        }
        for c in key.chars() {
            if c.is_control() {
                self.text.extend(c.escape_unicode());
            } else {
                self.text.push(c);
            }
        }
    }

    /// Enters an array item.
    pub(crate) fn push_index(&mut self, index: usize) {
        use fmt::Write as _;
        if self.counting {
            return;
        }
        self.marks.push(self.text.len());
        let _ = write!(self.text, "[{index}]");
    }

    /// Leaves the last key or item.
    pub(crate) fn pop(&mut self) {
        if self.counting {
            return;
        }
        if let Some(mark) = self.marks.pop() {
            self.text.truncate(mark);
        }
    }

    /// Records the current path.
    pub(crate) fn record(&self, out: &mut Vec<Untyped>, reason: UntypedReason) {
        out.push(Untyped {
            path: self.text.clone(),
            reason,
        });
    }

    /// Records `key` under the current path.
    pub(crate) fn record_key(&mut self, key: &str, out: &mut Vec<Untyped>, reason: UntypedReason) {
        self.push_key(key);
        self.record(out, reason);
        self.pop();
    }
}
