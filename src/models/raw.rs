//! [`RawJson`]: a free-form JSON value kept as compact JSON text.
//!
//! A `serde_json::Value` costs 32 bytes per node plus one allocation per
//! string, array and object: a body of small nodes grows 100-fold in memory.
//! Free-form parts (metadata, dynamic variables, unknown keys, fallbacks) are
//! instead written, while they are parsed, as compact text into one buffer.
//! The pass is the parse itself: serde_json checks syntax, strings, numbers
//! and the nesting limit as for any value, and [`Sink`] rejects duplicate keys
//! at every depth with one reusable list of key positions.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON value kept as compact JSON text, as parsed (free-form parts of a
/// body: `metadata`, dynamic variables, unknown keys, values that did not fit
/// their field).
///
/// The text is valid JSON by construction, in the form `serde_json` writes it
/// (no whitespace, keys in the order received). It holds the value exactly:
/// strings as received once unescaped, integers as integers, floats as the
/// nearest `f64` written in its shortest form (`1.50` is kept as `1.5`).
/// Serializing writes the text unchanged.
///
/// ```
/// use retell_webhooks::{models::RawJson, WebhookEvent};
///
/// let body = br#"{"event":"call_ended","call":{"call_id":"c1",
///     "metadata":{"crm_id": "cnt_1", "tries": [1, 2]}}}"#;
/// let event = WebhookEvent::from_slice(body)?;
/// let metadata = event.call().and_then(|c| c.metadata.as_ref()).unwrap();
/// assert_eq!(metadata.as_str(), r#"{"crm_id":"cnt_1","tries":[1,2]}"#);
///
/// // Read it as a `serde_json::Value`, or into your own type.
/// assert_eq!(metadata.to_value()?["crm_id"], "cnt_1");
/// #[derive(serde::Deserialize)]
/// struct Meta<'a> {
///     crm_id: &'a str,
/// }
/// assert_eq!(metadata.deserialize::<Meta>()?.crm_id, "cnt_1");
///
/// // Equal when the values are equal, whatever the key order.
/// let json = retell_webhooks::serde_json::json!({ "tries": [1, 2], "crm_id": "cnt_1" });
/// assert_eq!(*metadata, RawJson::from(json));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RawJson(Box<str>);

impl RawJson {
    /// JSON `null`.
    pub fn null() -> Self {
        Self("null".into())
    }

    /// Parses JSON text, with the rules of a body: duplicate keys and nesting
    /// deeper than 127 are errors. The text is kept in compact form.
    ///
    /// ```
    /// use retell_webhooks::models::RawJson;
    ///
    /// assert_eq!(RawJson::parse(r#"{ "a" : [1, 2.50] }"#)?.as_str(), r#"{"a":[1,2.5]}"#);
    /// assert!(RawJson::parse(r#"{"a":1,"a":2}"#).is_err());
    /// # Ok::<(), retell_webhooks::serde_json::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw = read_raw(&mut de)?;
        de.end()?;
        Ok(raw)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as a [`serde_json::Value`] (built on each call). Fails only
    /// for a value built from a `Value` nested deeper than serde_json reads.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// Deserializes the value into `T` (which may borrow strings from it).
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The string, when the value is a JSON string (borrowed unless it had
    /// escapes).
    pub fn string_value(&self) -> Option<Cow<'_, str>> {
        if !self.0.starts_with('"') {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(&self.0);
        de.deserialize_str(CowStr).ok()
    }

    /// The value of `key`, when this is an object that has it.
    pub fn get(&self, key: &str) -> Option<RawJson> {
        if !self.is_object() {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(&self.0);
        de.deserialize_map(Member { key }).ok().flatten()
    }

    /// `true` for `null`.
    pub fn is_null(&self) -> bool {
        &*self.0 == "null"
    }

    /// `true` for a JSON object.
    pub fn is_object(&self) -> bool {
        self.0.starts_with('{')
    }

    /// `true` for a JSON array.
    pub fn is_array(&self) -> bool {
        self.0.starts_with('[')
    }

    /// `true` for a JSON string.
    pub fn is_string(&self) -> bool {
        self.0.starts_with('"')
    }

    /// The text as a borrowed [`RawValue`], for serializers.
    fn raw(&self) -> Result<&RawValue, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl Default for RawJson {
    /// `null`.
    fn default() -> Self {
        Self::null()
    }
}

impl From<Value> for RawJson {
    fn from(value: Value) -> Self {
        Self::from(&value)
    }
}

impl From<&Value> for RawJson {
    fn from(value: &Value) -> Self {
        // Writing a `Value` cannot fail: its keys are strings.
        serde_json::to_string(value).map_or_else(|_| Self::null(), |text| Self(text.into()))
    }
}

impl From<&RawJson> for Value {
    /// The value (`null` only for one nested deeper than serde_json reads;
    /// [`RawJson::to_value`] reports that).
    fn from(raw: &RawJson) -> Self {
        raw.to_value().unwrap_or(Value::Null)
    }
}

/// Equal when the two hold the same JSON value: object keys in any order,
/// numbers compared as [`serde_json::Value`] compares them. Equal texts
/// compare without parsing.
impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        if self.0 == other.0 {
            return true;
        }
        match (self.to_value(), other.to_value()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl PartialEq<Value> for RawJson {
    fn eq(&self, other: &Value) -> bool {
        self.to_value().is_ok_and(|value| value == *other)
    }
}

/// Compares with a primitive as [`serde_json::Value`] does (`extra["n"] == 2`
/// reads as `extra["n"].to_value() == 2`).
macro_rules! eq_primitive {
    ($($ty:ty),+) => {$(
        impl PartialEq<$ty> for RawJson {
            fn eq(&self, other: &$ty) -> bool {
                self.to_value().is_ok_and(|value| value == *other)
            }
        }
    )+};
}

eq_primitive!(str, &str, String, bool, i32, i64, u32, u64, f64);

/// Shows the JSON text.
impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The JSON text.
impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Writes the text unchanged (serde_json); other serializers get the value.
impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// Reads any JSON value with the rules of a body (duplicate keys rejected).
impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        read_raw(deserializer)
    }
}

/// A JSON object kept as its text (dynamic variables, custom attributes):
/// a [`RawJson`] that is always an object. Any other value in such a field is
/// a fallback.
///
/// ```
/// use retell_webhooks::WebhookEvent;
///
/// let body = br#"{"event":"call_started","call":{"call_id":"c1",
///     "retell_llm_dynamic_variables":{"customer_name":"Ann"}}}"#;
/// let event = WebhookEvent::from_slice(body)?;
/// let vars = event.call().and_then(|c| c.retell_llm_dynamic_variables.as_ref()).unwrap();
/// let name = vars.get("customer_name").and_then(|v| v.string_value().map(|s| s.into_owned()));
/// assert_eq!(name.as_deref(), Some("Ann"));
/// let all: std::collections::BTreeMap<String, String> = vars.deserialize()?;
/// assert_eq!(all["customer_name"], "Ann");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct RawObject(RawJson);

impl RawObject {
    /// An empty object.
    pub fn new() -> Self {
        Self(RawJson("{}".into()))
    }

    /// The object's text as a [`RawJson`].
    pub fn as_json(&self) -> &RawJson {
        &self.0
    }

    /// The object as a [`RawJson`].
    pub fn into_json(self) -> RawJson {
        self.0
    }
}

impl Default for RawObject {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for RawObject {
    type Target = RawJson;

    fn deref(&self) -> &RawJson {
        &self.0
    }
}

impl TryFrom<RawJson> for RawObject {
    type Error = RawJson;

    /// The object, or the value back when it is not one.
    fn try_from(raw: RawJson) -> Result<Self, RawJson> {
        if raw.is_object() {
            Ok(Self(raw))
        } else {
            Err(raw)
        }
    }
}

impl From<serde_json::Map<String, Value>> for RawObject {
    fn from(object: serde_json::Map<String, Value>) -> Self {
        Self(RawJson::from(Value::Object(object)))
    }
}

impl fmt::Debug for RawObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::try_from(read_raw(deserializer)?)
            .map_err(|_| de::Error::custom("invalid type, expected a JSON object"))
    }
}

// ---------------------------------------------------------------------------
// Writing while parsing.
// ---------------------------------------------------------------------------

/// The text being written, and where the keys of the open objects are in it
/// (start and length of each key's quoted text, innermost object last).
#[derive(Default)]
pub(crate) struct Sink {
    out: String,
    keys: Vec<(u32, u32)>,
}

/// An object being written: where its keys start in [`Sink::keys`], and
/// whether an entry was written yet.
pub(crate) struct Object {
    level: usize,
    written: bool,
}

/// Objects with more keys than this are checked for duplicates by sorting.
const LINEAR_KEYS: usize = 8;

impl Sink {
    pub(crate) fn new() -> Self {
        // Room for a typical small value, so it is not grown byte by byte.
        Self {
            out: String::with_capacity(32),
            keys: Vec::new(),
        }
    }

    /// The text written, as a value.
    pub(crate) fn finish(self) -> RawJson {
        RawJson(self.out.into_boxed_str())
    }

    /// Appends the text of a value read before (a buffered or typed part).
    pub(crate) fn push_raw(&mut self, raw: &str) {
        self.out.push_str(raw);
    }

    /// Appends a separator before an array item that is not the first.
    pub(crate) fn push(&mut self, c: char) {
        self.out.push(c);
    }

    pub(crate) fn write_str(&mut self, v: &str) {
        write_escaped(&mut self.out, v);
    }

    pub(crate) fn write_u64(&mut self, v: u64) {
        self.out.push_str(itoa::Buffer::new().format(v));
    }

    pub(crate) fn write_i64(&mut self, v: i64) {
        self.out.push_str(itoa::Buffer::new().format(v));
    }

    pub(crate) fn write_f64(&mut self, v: f64) {
        // As serde_json writes floats; JSON never yields a non-finite one.
        if v.is_finite() {
            self.out.push_str(ryu::Buffer::new().format_finite(v));
        } else {
            self.out.push_str("null");
        }
    }

    pub(crate) fn write_bool(&mut self, v: bool) {
        self.out.push_str(if v { "true" } else { "false" });
    }

    /// Writes the rest of an array whose `[` and `written` first items are
    /// already written; returns how many items it wrote.
    pub(crate) fn write_seq_rest<'de, A: SeqAccess<'de>>(
        &mut self,
        mut seq: A,
        mut written: bool,
    ) -> Result<usize, A::Error> {
        let mut count = 0;
        loop {
            let mark = self.out.len();
            if written {
                self.out.push(',');
            }
            if seq.next_element_seed(Write(&mut *self))?.is_none() {
                self.out.truncate(mark);
                break;
            }
            written = true;
            count += 1;
        }
        self.out.push(']');
        Ok(count)
    }

    /// Writes an array from its first item on.
    pub(crate) fn write_seq<'de, A: SeqAccess<'de>>(&mut self, seq: A) -> Result<(), A::Error> {
        self.out.push('[');
        self.write_seq_rest(seq, false).map(drop)
    }

    /// Starts an object.
    pub(crate) fn open_object(&mut self) -> Object {
        self.out.push('{');
        Object {
            level: self.keys.len(),
            written: false,
        }
    }

    /// Writes one entry whose value was read before (a buffered part).
    pub(crate) fn raw_entry<E: de::Error>(
        &mut self,
        object: &mut Object,
        key: &str,
        raw: &str,
    ) -> Result<(), E> {
        if std::mem::replace(&mut object.written, true) {
            self.out.push(',');
        }
        let start = self.out.len();
        write_escaped(&mut self.out, key);
        self.note_key::<E>(start)?;
        self.out.push(':');
        self.out.push_str(raw);
        Ok(())
    }

    /// Writes the remaining entries of a live map.
    pub(crate) fn map_entries<'de, A: MapAccess<'de>>(
        &mut self,
        object: &mut Object,
        mut map: A,
    ) -> Result<(), A::Error> {
        loop {
            let mark = self.out.len();
            if object.written {
                self.out.push(',');
            }
            let start = self.out.len();
            if map.next_key_seed(Key(&mut *self))?.is_none() {
                self.out.truncate(mark);
                return Ok(());
            }
            object.written = true;
            self.note_key::<A::Error>(start)?;
            self.out.push(':');
            map.next_value_seed(Write(&mut *self))?;
        }
    }

    /// Ends an object: fails if a key occurs twice in it.
    pub(crate) fn close_object<E: de::Error>(&mut self, object: Object) -> Result<(), E> {
        let result = self.check_keys(object.level);
        self.keys.truncate(object.level);
        self.out.push('}');
        result
    }

    /// Writes an object from its first entry on.
    pub(crate) fn write_map<'de, A: MapAccess<'de>>(&mut self, map: A) -> Result<(), A::Error> {
        let mut object = self.open_object();
        self.map_entries(&mut object, map)?;
        self.close_object(object)
    }

    /// Records the key written from `start` to the end of the text.
    fn note_key<E: de::Error>(&mut self, start: usize) -> Result<(), E> {
        let len = self.out.len() - start;
        match (u32::try_from(start), u32::try_from(len)) {
            (Ok(start), Ok(len)) => {
                self.keys.push((start, len));
                Ok(())
            }
            _ => Err(E::custom("free-form JSON value too large")),
        }
    }

    /// Fails on a key written twice among the keys of the object at `level`.
    fn check_keys<E: de::Error>(&mut self, level: usize) -> Result<(), E> {
        let Sink { out, keys } = self;
        let Some(own) = keys.get_mut(level..) else {
            return Ok(());
        };
        let text = |&(start, len): &(u32, u32)| {
            let start = start as usize;
            out.get(start..start + len as usize).unwrap_or("")
        };
        let twice = if own.len() <= LINEAR_KEYS {
            own.iter()
                .enumerate()
                .find(|(i, a)| own.iter().skip(i + 1).any(|b| text(a) == text(b)))
                .map(|(_, a)| *a)
        } else {
            own.sort_unstable_by(|a, b| text(a).cmp(text(b)));
            own.windows(2)
                .find(|pair| text(&pair[0]) == text(&pair[1]))
                .map(|pair| pair[0])
        };
        match twice {
            None => Ok(()),
            Some(key) => {
                let quoted = text(&key);
                let decoded = serde_json::from_str::<String>(quoted);
                Err(duplicate(decoded.as_deref().unwrap_or(quoted)))
            }
        }
    }
}

/// Writes `v` as a JSON string, escaped as serde_json escapes.
fn write_escaped(out: &mut String, v: &str) {
    out.reserve(v.len() + 2);
    out.push('"');
    let mut rest = v;
    // Most strings need no escape: one scan, one copy.
    while let Some(at) = rest.bytes().position(needs_escape) {
        let (plain, tail) = rest.split_at(at);
        out.push_str(plain);
        let mut chars = tail.chars();
        if let Some(c) = chars.next() {
            push_escape(out, c);
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
    out.push('"');
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The escape of one character that [`needs_escape`].
fn push_escape(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        other => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let code = u32::from(other) as usize;
            out.push_str("\\u00");
            for digit in [code >> 4, code & 0xf] {
                out.push(char::from(HEX.get(digit).copied().unwrap_or(b'0')));
            }
        }
    }
}

/// Reads any value into a [`RawJson`].
pub(crate) fn read_raw<'de, D: Deserializer<'de>>(deserializer: D) -> Result<RawJson, D::Error> {
    let mut sink = Sink::new();
    Write(&mut sink).deserialize(deserializer)?;
    Ok(sink.finish())
}

/// The rest of an array as a value, after the visitor saw `[`.
pub(crate) fn raw_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<RawJson, A::Error> {
    let mut sink = Sink::new();
    sink.write_seq(seq)?;
    Ok(sink.finish())
}

/// The rest of an object as a value, after the visitor saw `{`.
pub(crate) fn raw_map<'de, A: MapAccess<'de>>(map: A) -> Result<RawJson, A::Error> {
    let mut sink = Sink::new();
    sink.write_map(map)?;
    Ok(sink.finish())
}

/// A string as a value.
pub(crate) fn raw_str(v: &str) -> RawJson {
    let mut sink = Sink::new();
    sink.write_str(v);
    sink.finish()
}

/// A boolean as a value.
pub(crate) fn raw_bool(v: bool) -> RawJson {
    RawJson(if v { "true" } else { "false" }.into())
}

/// An integer as a value.
pub(crate) fn raw_u64(v: u64) -> RawJson {
    RawJson(itoa::Buffer::new().format(v).into())
}

/// A negative integer as a value.
pub(crate) fn raw_i64(v: i64) -> RawJson {
    RawJson(itoa::Buffer::new().format(v).into())
}

/// A float as a value.
pub(crate) fn raw_f64(v: f64) -> RawJson {
    let mut sink = Sink::new();
    sink.write_f64(v);
    sink.finish()
}

/// Writes one value into a [`Sink`].
pub(crate) struct Write<'a>(pub(crate) &'a mut Sink);

impl<'de> DeserializeSeed<'de> for Write<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Write<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.write_bool(v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.write_i64(v);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.write_u64(v);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.write_f64(v);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.write_str(v);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.out.push_str("null");
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.write_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.write_map(map)
    }
}

/// Writes one object key into a [`Sink`].
struct Key<'a>(&'a mut Sink);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.write_str(v);
        Ok(())
    }
}

/// A string, borrowed from the text when it has no escapes.
struct CowStr;

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Looks up one member of an object, skipping the others.
struct Member<'k> {
    key: &'k str,
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = Option<RawJson>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.key {
                let value = map.next_value_seed(RawSeed)?;
                drain(map)?;
                return Ok(Some(value));
            }
            map.next_value::<de::IgnoredAny>()?;
        }
        Ok(None)
    }
}

/// `DeserializeSeed` for [`read_raw`].
pub(crate) struct RawSeed;

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = RawJson;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawJson, D::Error> {
        read_raw(deserializer)
    }
}

/// A serializable part (a typed model) as a value.
pub(crate) fn to_raw<T: Serialize + ?Sized>(value: &T) -> Result<RawJson, serde_json::Error> {
    serde_json::to_string(value).map(|text| RawJson(text.into()))
}

/// The string at `path` (object keys) in `raw`, borrowed from the text:
/// `None` when there is none, or when it is written with escapes (in the
/// compact text, only strings holding `"`, `\\` or control characters are).
pub(crate) fn str_at<'a>(raw: &'a RawJson, path: &[&str]) -> Option<&'a str> {
    let mut de = serde_json::Deserializer::from_str(raw.as_str());
    PathStr { path }.deserialize(&mut de).ok().flatten()
}

struct PathStr<'p> {
    path: &'p [&'p str],
}

impl<'de> DeserializeSeed<'de> for PathStr<'_> {
    type Value = Option<&'de str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PathStr<'_> {
    type Value = Option<&'de str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(self.path.is_empty().then_some(v))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Ok(None);
        };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == *first {
                let found = map.next_value_seed(PathStr { path: rest })?;
                drain(map)?;
                return Ok(found);
            }
            map.next_value::<de::IgnoredAny>()?;
        }
        Ok(None)
    }
}

/// Skips the rest of an object (serde_json checks that a map was read to
/// its end).
fn drain<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map
        .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
        .is_some()
    {}
    Ok(())
}

/// The error for a key that occurs twice in one object. The key comes from
/// the body: it is capped and escaped, so the message stays one short line
/// that a crafted key cannot extend or split.
pub(crate) fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format_args!(
        "duplicate field `{}`",
        short_key(key).escape_debug()
    ))
}

/// Key names in messages are capped so an error never echoes a huge key.
pub(crate) fn short_key(key: &str) -> &str {
    match key.char_indices().nth(64) {
        Some((end, _)) => key.get(..end).unwrap_or(key),
        None => key,
    }
}
