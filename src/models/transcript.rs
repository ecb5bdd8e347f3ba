//! Transcript items of a call (`transcript_object`, `transcript_with_tool_calls`,
//! `scrubbed_transcript_with_tool_calls`).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::Extra;
use super::enums::{TranscriptRole, TransitionType, UtteranceRole};
use super::role::{self, RoleTagged};

/// One timed word of an utterance. Times are seconds relative to the call audio
/// (approximate; integers in playground calls).
///
/// The most numerous object in a payload (thousands per call, three copies), so
/// it has a hand-written `Deserialize` that avoids `#[serde(flatten)]`'s
/// buffering; the behaviour is the same as the derived one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Word {
    /// The word as transcribed (with punctuation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word: Option<String>,
    /// Start time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    /// End time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(WordVisitor)
    }
}

struct WordVisitor;

impl<'de> Visitor<'de> for WordVisitor {
    type Value = Word;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a word object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Word, A::Error> {
        let mut word = Word::default();
        let (mut seen_word, mut seen_start, mut seen_end) = (false, false, false);
        while let Some(key) = map.next_key_seed(WordKey)? {
            match key {
                WordField::Word => {
                    if std::mem::replace(&mut seen_word, true) {
                        return Err(de::Error::duplicate_field("word"));
                    }
                    word.word = map.next_value()?;
                }
                WordField::Start => {
                    if std::mem::replace(&mut seen_start, true) {
                        return Err(de::Error::duplicate_field("start"));
                    }
                    word.start = map.next_value()?;
                }
                WordField::End => {
                    if std::mem::replace(&mut seen_end, true) {
                        return Err(de::Error::duplicate_field("end"));
                    }
                    word.end = map.next_value()?;
                }
                WordField::Other(name) => {
                    let value: Value = map.next_value()?;
                    if word.extra.contains_key(&name) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate field `{}`",
                            role::short_key(&name)
                        )));
                    }
                    word.extra.insert(name, value);
                }
            }
        }
        Ok(word)
    }
}

enum WordField {
    Word,
    Start,
    End,
    Other(String),
}

/// Matches keys without allocating for the three known ones.
struct WordKey;

impl<'de> DeserializeSeed<'de> for WordKey {
    type Value = WordField;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<WordField, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for WordKey {
    type Value = WordField;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<WordField, E> {
        Ok(match key {
            "word" => WordField::Word,
            "start" => WordField::Start,
            "end" => WordField::End,
            other => WordField::Other(other.to_owned()),
        })
    }
}

/// What someone said (`role` = `agent`, `user` or `transfer_target`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Utterance {
    /// Who spoke.
    pub role: UtteranceRole,
    /// The text (may be empty).
    pub content: String,
    /// Word timings (may be empty).
    #[serde(deserialize_with = "super::exact::vec")]
    pub words: Vec<Word>,
    /// Keys this version does not model (real payloads carry e.g. `metadata`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// An [`Utterance`] without its `role`, read after the role was consumed.
#[derive(Deserialize)]
struct UtteranceBody {
    content: String,
    #[serde(deserialize_with = "super::exact::vec")]
    words: Vec<Word>,
    #[serde(flatten)]
    extra: Extra,
}

/// `role: "tool_call_invocation"`: the agent called a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallInvocation {
    /// Id linking the invocation to its result.
    pub tool_call_id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as a JSON **string** (may be `""`); see [`Self::arguments_json`].
    pub arguments: String,
    /// Gemini thought signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
    /// Tool type seen in real payloads (`custom`, `extract_dynamic_variable`, …).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub tool_type: Option<String>,
    /// Seconds since call start (seen in real payloads; often absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_sec: Option<f64>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ToolCallInvocation {
    /// Parses [`Self::arguments`] as JSON (`None` when empty or not JSON).
    pub fn arguments_json(&self) -> Option<Value> {
        serde_json::from_str(&self.arguments).ok()
    }
}

/// `role: "tool_call_result"`: what a tool returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallResult {
    /// Id of the matching invocation.
    pub tool_call_id: String,
    /// Result text (often stringified JSON).
    pub content: String,
    /// Whether the tool succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful: Option<bool>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `role: "node_transition"`: the conversation flow moved to another node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTransition {
    /// Previous node id.
    pub former_node_id: String,
    /// Previous node name.
    pub former_node_name: String,
    /// New node id.
    pub new_node_id: String,
    /// New node name.
    pub new_node_name: String,
    /// Kind of transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition_type: Option<TransitionType>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `role: "dtmf"`: a keypad digit pressed by the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dtmf {
    /// `"0"`–`"9"`, `"*"` or `"#"`.
    pub digit: String,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An attachment of an SMS/MMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Multimedia {
    /// Media URL.
    pub url: String,
    /// Retell's description of the media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `role: "sms"`: an SMS exchanged during the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sms {
    /// Message text.
    pub content: String,
    /// Seconds since call start.
    pub time_sec: f64,
    /// Attachments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multimedia: Option<Vec<Multimedia>>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `role: "injected"`: context injected with the update-live-call API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injected {
    /// Injected text.
    pub content: String,
    /// Seconds since call start.
    pub time_sec: f64,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One item of `transcript_with_tool_calls`, chosen by its `role`.
///
/// Unknown roles (three new kinds appeared in twelve months) keep the whole
/// object in [`TranscriptItem::Unknown`], including its `role`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TranscriptItem {
    /// `agent`, `user` or `transfer_target`.
    Utterance(Utterance),
    /// `tool_call_invocation`.
    ToolCallInvocation(ToolCallInvocation),
    /// `tool_call_result`.
    ToolCallResult(ToolCallResult),
    /// `node_transition`.
    NodeTransition(NodeTransition),
    /// `dtmf`.
    Dtmf(Dtmf),
    /// `sms`.
    Sms(Sms),
    /// `injected`.
    Injected(Injected),
    /// Any other role (or none): the whole object.
    Unknown(Value),
}

impl TranscriptItem {
    /// The `role` string of the item (`None` for an unknown item without one).
    pub fn role(&self) -> Option<&str> {
        Some(match self {
            Self::Utterance(u) => u.role.as_str(),
            Self::ToolCallInvocation(_) => "tool_call_invocation",
            Self::ToolCallResult(_) => "tool_call_result",
            Self::NodeTransition(_) => "node_transition",
            Self::Dtmf(_) => "dtmf",
            Self::Sms(_) => "sms",
            Self::Injected(_) => "injected",
            Self::Unknown(value) => return value.get("role").and_then(Value::as_str),
        })
    }

    /// The `role` as an open enum (`None` for an unknown item without a string role).
    pub fn kind(&self) -> Option<TranscriptRole> {
        self.role().map(TranscriptRole::from)
    }

    /// The text of utterances, tool results, SMS and injected items.
    pub fn content(&self) -> Option<&str> {
        match self {
            Self::Utterance(u) => Some(&u.content),
            Self::ToolCallResult(r) => Some(&r.content),
            Self::Sms(s) => Some(&s.content),
            Self::Injected(i) => Some(&i.content),
            _ => None,
        }
    }

    /// The item as an utterance, if it is one.
    pub fn as_utterance(&self) -> Option<&Utterance> {
        match self {
            Self::Utterance(u) => Some(u),
            _ => None,
        }
    }
}

impl RoleTagged for TranscriptItem {
    const EXPECTING: &'static str = "a transcript item object";

    fn from_rest<'de, D: Deserializer<'de>>(role: String, rest: D) -> Result<Self, D::Error> {
        Ok(match role.as_str() {
            "agent" | "user" | "transfer_target" => {
                let body = UtteranceBody::deserialize(rest)?;
                Self::Utterance(Utterance {
                    role: UtteranceRole::from(role),
                    content: body.content,
                    words: body.words,
                    extra: body.extra,
                })
            }
            "tool_call_invocation" => Self::ToolCallInvocation(Deserialize::deserialize(rest)?),
            "tool_call_result" => Self::ToolCallResult(Deserialize::deserialize(rest)?),
            "node_transition" => Self::NodeTransition(Deserialize::deserialize(rest)?),
            "dtmf" => Self::Dtmf(Deserialize::deserialize(rest)?),
            "sms" => Self::Sms(Deserialize::deserialize(rest)?),
            "injected" => Self::Injected(Deserialize::deserialize(rest)?),
            _ => {
                let mut object = Map::<String, Value>::deserialize(rest)?;
                if object.contains_key("role") {
                    return Err(serde::de::Error::duplicate_field("role"));
                }
                object.insert("role".to_owned(), Value::String(role));
                Self::Unknown(Value::Object(object))
            }
        })
    }

    fn unknown(object: Map<String, Value>) -> Self {
        Self::Unknown(Value::Object(object))
    }

    fn extra_has_role(&self) -> bool {
        let extra = match self {
            Self::Utterance(x) => &x.extra,
            Self::ToolCallInvocation(x) => &x.extra,
            Self::ToolCallResult(x) => &x.extra,
            Self::NodeTransition(x) => &x.extra,
            Self::Dtmf(x) => &x.extra,
            Self::Sms(x) => &x.extra,
            Self::Injected(x) => &x.extra,
            Self::Unknown(_) => return false,
        };
        extra.contains_key("role")
    }
}

impl<'de> Deserialize<'de> for TranscriptItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        role::deserialize_tagged(deserializer)
    }
}

/// Writes `role` followed by the fields of a kind struct.
#[derive(Serialize)]
pub(crate) struct Tagged<'a, T> {
    pub(crate) role: &'a str,
    #[serde(flatten)]
    pub(crate) inner: &'a T,
}

impl Serialize for TranscriptItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn tagged<S: Serializer, T: Serialize>(
            s: S,
            role: &str,
            inner: &T,
        ) -> Result<S::Ok, S::Error> {
            Tagged { role, inner }.serialize(s)
        }
        match self {
            Self::Utterance(u) => u.serialize(serializer),
            Self::ToolCallInvocation(x) => tagged(serializer, "tool_call_invocation", x),
            Self::ToolCallResult(x) => tagged(serializer, "tool_call_result", x),
            Self::NodeTransition(x) => tagged(serializer, "node_transition", x),
            Self::Dtmf(x) => tagged(serializer, "dtmf", x),
            Self::Sms(x) => tagged(serializer, "sms", x),
            Self::Injected(x) => tagged(serializer, "injected", x),
            Self::Unknown(value) => value.serialize(serializer),
        }
    }
}
