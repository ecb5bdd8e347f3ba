//! The models against the schema of the official Retell SDK.
//!
//! `tests/fixtures/sdk/paths.tsv` lists every field path of the SDK's
//! `PhoneCallResponse`, `WebCallResponse` and `ChatResponse` (one line each:
//! path, `req`/`opt`, type; `a[]` is an array item, `<role=x|y>` a transcript
//! item or chat message of those roles; `#NOTE` lines say a list has the same
//! item schema as another). `tests/fixtures/sdk/enums.json` lists the SDK's
//! string enums. `scripts/sdk-schema-diff.sh` extracts both from any SDK
//! release and points `RETELL_SDK_PATHS` / `RETELL_SDK_ENUMS` at them, so the
//! failures below are the list of what the models lack for that release.
//!
//! A path is typed when a body that sets it parses with no
//! [`untyped_paths`](WebhookEvent::untyped_paths) at all: an unknown key, an
//! unknown enum value or item kind, or a value that fell back to raw JSON all
//! mean the models do not cover it. One exception: a field the SDK types as
//! any string may be an open enum in the models, and then an unknown value of
//! it (the sample `"s"`) is expected (see [`Findings::check`]).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use retell_webhooks::{
    WebhookEvent,
    models::{Untyped, UntypedReason},
};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

/// Every path of the SDK schema, set alone to a sample of its type, is typed.
#[test]
fn every_sdk_path_is_typed() {
    let schema = Schema::load();
    let mut findings = Findings::new(&schema);
    for entry in &schema.entries {
        for concrete in entry.concrete_paths() {
            let leaf = concrete
                .selected_role_of_leaf()
                .map_or_else(|| schema.sample(entry, &entry.ty), Value::from);
            let body = schema.body(entry.root, &concrete, leaf);
            findings.check(&concrete.describe(entry), &body);
        }
    }
    findings.assert_none("SDK paths the models do not type");
}

/// Every value of every SDK enum, placed in a field that uses it, is known.
#[test]
fn every_sdk_enum_value_is_known() {
    let schema = Schema::load();
    let mut findings = Findings::new(&schema);
    for (name, values) in load_enums() {
        let wanted: BTreeSet<&str> = values.iter().map(String::as_str).collect();
        let fields: Vec<&Entry> = schema
            .entries
            .iter()
            .filter(|entry| entry.ty.enum_values().is_some_and(|v| v == wanted))
            .collect();
        // Some enums are used by no single field with exactly their values.
        // `CallType` is split into `phone_call` / `web_call` by response type,
        // and `TranscriptRole` / `ChatRole` are the union of the roles of the
        // item kinds: each of those values is the only value of some field
        // (`call_type`, an item kind's `role`), which the first test sets.
        // `AgentWebhookEvents` / `ChatAgentWebhookEvents` belong to the agent
        // configuration (which events an agent is sent), not to calls or chats.
        if fields.is_empty() {
            println!("enum {name}: no field has exactly its values, skipped");
            continue;
        }
        for entry in fields {
            for value in &values {
                for concrete in entry.concrete_paths() {
                    // An item kind's own `role` is only checked with that role.
                    if concrete
                        .selected_role_of_leaf()
                        .is_some_and(|role| role != value)
                    {
                        continue;
                    }
                    let body = schema.body(entry.root, &concrete, Value::from(value.as_str()));
                    let label = format!("{name}::{value} in {}", concrete.describe(entry));
                    findings.check(&label, &body);
                }
            }
        }
    }
    assert!(
        findings.checked > 0,
        "no enum of the enum list is used by any path"
    );
    findings.assert_none("SDK enum values the models do not know");
}

/// The maximal bodies (every SDK field present) parse with nothing untyped and
/// are written back unchanged.
#[test]
fn maximal_sdk_bodies_are_typed_and_lossless() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sdk"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with("max_") && name.ends_with(".json")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no max_*.json in {}", dir.display());

    let schema = Schema::load();
    let mut findings = Findings::new(&schema);
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let object: Value = serde_json::from_slice(&std::fs::read(file).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let root = if object.get("chat_id").is_some() {
            Root::Chat
        } else {
            Root::Call
        };
        let body = root.envelope(object);
        let Some(event) = findings.check(&name, &body) else {
            continue;
        };
        let written = serde_json::to_value(&event).expect("a parsed event serializes");
        let mut differences = Vec::new();
        differences_between(
            &common::normalize(&written),
            &common::normalize(&body),
            "",
            &mut differences,
        );
        for difference in differences {
            findings.fail(format!("{name}: written back differently at {difference}"));
        }
    }
    findings.assert_none("maximal SDK bodies the models do not cover");
}

// ---------------------------------------------------------------------------
// Parsing and reporting
// ---------------------------------------------------------------------------

/// What the checks of one test found.
struct Findings {
    checked: usize,
    /// One line per failed check.
    failures: Vec<String>,
    /// Every untyped path with its array indexes left out, and its reason:
    /// one line per thing the models lack, however many checks hit it.
    untyped: BTreeSet<String>,
    /// Paths (without indexes) of fields the SDK types as any string.
    free_strings: BTreeSet<String>,
    /// Unknown values of such fields, which are not counted as failures.
    open_values: BTreeSet<String>,
}

impl Findings {
    fn new(schema: &Schema) -> Self {
        Self {
            checked: 0,
            failures: Vec::new(),
            untyped: BTreeSet::new(),
            free_strings: schema.free_strings(),
            open_values: BTreeSet::new(),
        }
    }

    /// Parses `body` as an event and records everything untyped in it (or that
    /// it does not parse); gives back the event when it parses.
    fn check(&mut self, label: &str, body: &Value) -> Option<WebhookEvent> {
        self.checked += 1;
        let event = match WebhookEvent::from_slice(body.to_string().as_bytes()) {
            Ok(event) => event,
            Err(e) => {
                self.fail(format!("{label}: does not parse: {e}"));
                return None;
            }
        };
        let mut untyped = event.untyped_paths();
        // A field the SDK types as any string may be an open enum in the
        // models (a tool call's `type`: known values, "new values can be
        // added"). A sample such as "s" is then an unknown value of a typed
        // field, kept as it came: not something the models lack.
        untyped.retain(|item| {
            let open = matches!(item.reason, UntypedReason::UnknownValue)
                && self.free_strings.contains(&item.generic_path());
            if open {
                self.open_values.insert(item.generic_path());
            }
            !open
        });
        if !untyped.is_empty() {
            let list: Vec<String> = untyped.iter().map(ToString::to_string).collect();
            self.fail(format!("{label}: {}", list.join("; ")));
            for item in untyped {
                let generic = Untyped {
                    path: item.generic_path(),
                    ..item
                };
                self.untyped.insert(generic.to_string());
            }
        }
        Some(event)
    }

    fn fail(&mut self, line: String) {
        self.failures.push(line);
    }

    /// Fails with every finding (not just the first), so the test output is
    /// the complete list of what the models lack.
    fn assert_none(&self, what: &str) {
        for path in &self.open_values {
            println!("{path}: a string field read as an open enum (sample values are unknown)");
        }
        if self.failures.is_empty() {
            return;
        }
        let indent = |lines: Vec<&str>| lines.join("\n  ");
        panic!(
            "{what}: {} of {} checks failed.\n\
             Untyped, by path without indexes ({}):\n  {}\n\
             Every failed check:\n  {}\n",
            self.failures.len(),
            self.checked,
            self.untyped.len(),
            indent(self.untyped.iter().map(String::as_str).collect()),
            indent(self.failures.iter().map(String::as_str).collect()),
        );
    }
}

/// Every path where `actual` and `expected` differ (missing, extra or other
/// value), in document order.
fn differences_between(actual: &Value, expected: &Value, path: &str, out: &mut Vec<String>) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, e_value) in e {
                let here = format!("{path}.{key}");
                match a.get(key) {
                    Some(a_value) => differences_between(a_value, e_value, &here, out),
                    None => out.push(format!("{here}: missing (expected {e_value})")),
                }
            }
            for (key, a_value) in a {
                if !e.contains_key(key) {
                    out.push(format!(
                        "{path}.{key}: not in the input (written {a_value})"
                    ));
                }
            }
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => {
            for (i, (a_item, e_item)) in a.iter().zip(e).enumerate() {
                differences_between(a_item, e_item, &format!("{path}[{i}]"), out);
            }
        }
        _ if actual == expected => {}
        _ => out.push(format!("{path}: written {actual}, expected {expected}")),
    }
}

// ---------------------------------------------------------------------------
// The schema files
// ---------------------------------------------------------------------------

/// A file of the schema: `$var` if set, else `tests/fixtures/sdk/<default>`.
fn schema_file(var: &str, default: &str) -> (PathBuf, String) {
    let path = std::env::var_os(var).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sdk")
                .join(default)
        },
        PathBuf::from,
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} ({var}): {e}", path.display()));
    (path, text)
}

/// The enum list: name → values.
fn load_enums() -> Vec<(String, Vec<String>)> {
    let (path, text) = schema_file("RETELL_SDK_ENUMS", "enums.json");
    let parsed: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let Value::Object(map) = parsed else {
        panic!("{}: expected an object of name → values", path.display());
    };
    // Each enum is checked on its own: the order of the file does not matter.
    map.into_iter()
        .map(|(name, values)| {
            let values = values
                .as_array()
                .and_then(|v| v.iter().map(|s| s.as_str().map(String::from)).collect())
                .unwrap_or_else(|| panic!("{}: {name} is not a list of strings", path.display()));
            (name, values)
        })
        .collect()
}

/// The response type a path belongs to, and the event that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Call,
    Chat,
}

impl Root {
    fn from_sdk(name: &str) -> Self {
        match name {
            "PhoneCallResponse" | "WebCallResponse" => Self::Call,
            "ChatResponse" => Self::Chat,
            other => panic!("response type {other} has no event in this test"),
        }
    }

    /// The smallest object the models accept: just the id.
    fn base(self) -> Map<String, Value> {
        let mut object = Map::new();
        match self {
            Self::Call => object.insert("call_id".into(), json!("call_schema")),
            Self::Chat => object.insert("chat_id".into(), json!("chat_schema")),
        };
        object
    }

    /// The key of the object in its event.
    fn key(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Chat => "chat",
        }
    }

    /// `object` in the envelope of an event that carries it.
    fn envelope(self, object: Value) -> Value {
        let event = match self {
            Self::Call => "call_ended",
            Self::Chat => "chat_ended",
        };
        json!({ "event": event, self.key(): object })
    }
}

/// One line of the path list.
#[derive(Debug, Clone)]
struct Entry {
    /// The path as listed (after `#NOTE` aliases are applied).
    path: String,
    root: Root,
    segments: Vec<Segment>,
    ty: Ty,
}

/// One step of a path: `key`, `key[]` or `key[]<role=a|b>`.
#[derive(Debug, Clone)]
struct Segment {
    key: String,
    item: Option<Item>,
}

#[derive(Debug, Clone)]
enum Item {
    /// `key[]`: any item of the list.
    Any,
    /// `key[]<role=a|b>`: an item with one of these roles.
    Role(Vec<String>),
}

/// A path with one role chosen for every role-selected item.
struct Concrete {
    segments: Vec<Segment>,
    roles: Vec<String>,
}

impl Entry {
    /// The path in an event, without indexes: `call.transcript_object[].role`.
    fn envelope_path(&self) -> String {
        let mut path = String::from(self.root.key());
        for segment in &self.segments {
            path.push('.');
            path.push_str(&segment.key);
            if segment.item.is_some() {
                path.push_str("[]");
            }
        }
        path
    }

    /// The path once per choice of role (`<role=agent|user>` → one path with
    /// `agent`, one with `user`), so every item kind is checked.
    fn concrete_paths(&self) -> Vec<Concrete> {
        let mut paths = vec![Concrete {
            segments: Vec::new(),
            roles: Vec::new(),
        }];
        for segment in &self.segments {
            let choices: Vec<Option<&String>> = match &segment.item {
                Some(Item::Role(roles)) => roles.iter().map(Some).collect(),
                _ => vec![None],
            };
            paths = paths
                .into_iter()
                .flat_map(|path| {
                    choices.iter().map(move |role| {
                        let mut next = Concrete {
                            segments: path.segments.clone(),
                            roles: path.roles.clone(),
                        };
                        let mut segment = segment.clone();
                        if let Some(role) = role {
                            segment.item = Some(Item::Role(vec![(*role).clone()]));
                            next.roles.push((*role).clone());
                        }
                        next.segments.push(segment);
                        next
                    })
                })
                .collect();
        }
        paths
    }
}

impl Concrete {
    /// For the `role` key of a role-selected item: the chosen role (its sample
    /// must agree with the item kind being built).
    fn selected_role_of_leaf(&self) -> Option<&str> {
        let [.., parent, leaf] = self.segments.as_slice() else {
            return None;
        };
        match &parent.item {
            Some(Item::Role(roles)) if leaf.key == "role" && leaf.item.is_none() => {
                roles.first().map(String::as_str)
            }
            _ => None,
        }
    }

    /// The listed path, plus the roles chosen when the listing allows several.
    fn describe(&self, entry: &Entry) -> String {
        let several = entry
            .segments
            .iter()
            .any(|s| matches!(&s.item, Some(Item::Role(r)) if r.len() > 1));
        if several {
            format!("{} (role={})", entry.path, self.roles.join(","))
        } else {
            entry.path.clone()
        }
    }
}

/// The path list, with `#NOTE` aliases expanded into paths of their own.
struct Schema {
    entries: Vec<Entry>,
}

impl Schema {
    fn load() -> Self {
        let (path, text) = schema_file("RETELL_SDK_PATHS", "paths.tsv");
        let mut lines = Vec::new();
        let mut aliases = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let at = || format!("{}:{}", path.display(), number + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(note) = line.strip_prefix("#NOTE\t") {
                aliases.push(parse_note(note).unwrap_or_else(|| panic!("{}: bad #NOTE", at())));
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let columns: Vec<&str> = line.split('\t').collect();
            let [path, requirement, ty] = columns[..] else {
                panic!("{}: expected path, req/opt, type", at());
            };
            assert!(
                matches!(requirement, "req" | "opt"),
                "{}: {requirement} is neither req nor opt",
                at()
            );
            lines.push((path.to_owned(), ty.to_owned()));
        }

        // `#NOTE  R.pre_session_x: item schema identical to x`: every path
        // under `R.x[]` also exists under `R.pre_session_x[]`.
        let mut expanded = lines.clone();
        for (alias, original) in &aliases {
            let prefix = format!("{original}[]");
            for (path, ty) in &lines {
                if let Some(rest) = path.strip_prefix(&prefix) {
                    expanded.push((format!("{alias}[]{rest}"), ty.clone()));
                }
            }
        }

        let entries: Vec<Entry> = expanded
            .into_iter()
            .map(|(path, ty)| {
                let (root, rest) = path
                    .split_once('.')
                    .unwrap_or_else(|| panic!("{path}: no field after the response type"));
                Entry {
                    root: Root::from_sdk(root),
                    segments: rest.split('.').map(parse_segment).collect(),
                    ty: Ty::parse(&ty)
                        .unwrap_or_else(|| panic!("{path}: type {ty} not understood")),
                    path,
                }
            })
            .collect();
        assert!(!entries.is_empty(), "{}: no paths", path.display());
        Self { entries }
    }

    /// Paths, as `untyped_paths` writes them without indexes
    /// (`call.transcript_with_tool_calls[].type`), of the fields that every
    /// response type and item kind having them types as `str`.
    fn free_strings(&self) -> BTreeSet<String> {
        let mut typed_otherwise = BTreeSet::new();
        let mut strings = BTreeSet::new();
        for entry in &self.entries {
            if entry.ty == Ty::Str {
                strings.insert(entry.envelope_path());
            } else {
                typed_otherwise.insert(entry.envelope_path());
            }
        }
        &strings - &typed_otherwise
    }

    /// The event whose body sets `path` (and the parents it needs) to `leaf`.
    fn body(&self, root: Root, path: &Concrete, leaf: Value) -> Value {
        let mut object = root.base();
        insert(&mut object, &path.segments, leaf);
        root.envelope(Value::Object(object))
    }

    /// A sample of `ty` for the field `entry`.
    fn sample(&self, entry: &Entry, ty: &Ty) -> Value {
        match ty {
            Ty::Str => json!("s"),
            Ty::Int => json!(7),
            Ty::Float => json!(1.5),
            Ty::Bool => json!(true),
            Ty::Null => Value::Null,
            Ty::Any => json!({ "k": "v" }),
            Ty::Object => json!({}),
            Ty::Enum(values) => json!(values[0]),
            Ty::Union(alternatives) => self.sample(entry, &alternatives[0]),
            Ty::Map(value) => match &**value {
                Ty::Str => json!({ "k": "v" }),
                // `map<str,union<str,float,bool>>`: one entry per alternative.
                Ty::Union(alternatives) => alternatives
                    .iter()
                    .enumerate()
                    .map(|(i, alt)| (format!("k{i}"), self.sample(entry, alt)))
                    .collect::<Map<_, _>>()
                    .into(),
                other => json!({ "k": self.sample(entry, other) }),
            },
            Ty::List(item) => match &**item {
                // A list of item kinds: one item of the first kind listed.
                Ty::Union(kinds) if kinds.iter().all(|k| *k == Ty::Object) => {
                    json!([{ "role": self.first_role_of(entry) }])
                }
                other => json!([self.sample(entry, other)]),
            },
        }
    }

    /// The first role of the item kinds listed under `entry`'s path.
    fn first_role_of(&self, entry: &Entry) -> String {
        let prefix = format!("{}[]<role=", entry.path);
        self.entries
            .iter()
            .find_map(|other| {
                let rest = other.path.strip_prefix(&prefix)?;
                let roles = &rest[..rest.find('>')?];
                roles.split('|').next().map(String::from)
            })
            .unwrap_or_else(|| panic!("{}: no item kinds listed under it", entry.path))
    }
}

/// `R.a.list: item schema identical to other` → (`R.a.list`, `R.a.other`).
fn parse_note(note: &str) -> Option<(String, String)> {
    let (alias, original) = note.split_once(": item schema identical to ")?;
    let parent = alias.rsplit_once('.')?.0;
    Some((alias.to_owned(), format!("{parent}.{}", original.trim())))
}

fn parse_segment(text: &str) -> Segment {
    let Some((key, rest)) = text.split_once("[]") else {
        return Segment {
            key: text.to_owned(),
            item: None,
        };
    };
    let item = if rest.is_empty() {
        Item::Any
    } else {
        let roles = rest
            .strip_prefix("<role=")
            .and_then(|r| r.strip_suffix('>'))
            .unwrap_or_else(|| panic!("{text}: expected `key[]` or `key[]<role=…>`"));
        Item::Role(roles.split('|').map(String::from).collect())
    };
    Segment {
        key: key.to_owned(),
        item: Some(item),
    }
}

/// Sets `segments` in `object` to `leaf`, creating parents (objects, lists of
/// one item, items with the selected role) on the way.
fn insert(object: &mut Map<String, Value>, segments: &[Segment], leaf: Value) {
    let Some((segment, rest)) = segments.split_first() else {
        return;
    };
    let Some(item) = &segment.item else {
        if rest.is_empty() {
            object.insert(segment.key.clone(), leaf);
        } else {
            let child = object.entry(&segment.key).or_insert_with(|| json!({}));
            insert(as_object(child), rest, leaf);
        }
        return;
    };
    let list = object.entry(&segment.key).or_insert_with(|| json!([{}]));
    let first = &mut list.as_array_mut().expect("parents are lists")[0];
    if rest.is_empty() {
        *first = leaf;
        return;
    }
    if let Item::Role(roles) = item {
        as_object(first).insert("role".into(), json!(roles[0]));
    }
    insert(as_object(first), rest, leaf);
}

fn as_object(value: &mut Value) -> &mut Map<String, Value> {
    value.as_object_mut().expect("parents are objects")
}

/// A type of the path list: `str`, `int`, `float`, `bool`, `any`, `object`,
/// `null`, `enum(a|b)`, `list<T>`, `map<str,T>`, `union<A,B>` and `A|B`.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Str,
    Int,
    Float,
    Bool,
    Null,
    Any,
    Object,
    Enum(Vec<String>),
    List(Box<Ty>),
    Map(Box<Ty>),
    Union(Vec<Ty>),
}

impl Ty {
    fn parse(text: &str) -> Option<Self> {
        // `T|null` is `T` for the samples: leave `null` out of alternatives.
        let alternatives: Vec<&str> = split_top(text, '|');
        if alternatives.len() > 1 {
            let mut types: Vec<Ty> = alternatives
                .into_iter()
                .map(Ty::parse)
                .collect::<Option<_>>()?;
            types.retain(|t| *t != Ty::Null);
            return match types.len() {
                0 => Some(Ty::Null),
                1 => types.pop(),
                _ => Some(Ty::Union(types)),
            };
        }
        let inner = |prefix: &str, end: char| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(end))
        };
        Some(match text {
            "str" => Ty::Str,
            "int" => Ty::Int,
            "float" => Ty::Float,
            "bool" => Ty::Bool,
            "null" => Ty::Null,
            "any" => Ty::Any,
            "object" => Ty::Object,
            _ => {
                if let Some(values) = inner("enum(", ')') {
                    Ty::Enum(values.split('|').map(String::from).collect())
                } else if let Some(item) = inner("list<", '>') {
                    Ty::List(Box::new(Ty::parse(item)?))
                } else if let Some(pair) = inner("map<", '>') {
                    let [key, value] = split_top(pair, ',')[..] else {
                        return None;
                    };
                    if key != "str" {
                        return None;
                    }
                    Ty::Map(Box::new(Ty::parse(value)?))
                } else if let Some(items) = inner("union<", '>') {
                    Ty::Union(
                        split_top(items, ',')
                            .into_iter()
                            .map(Ty::parse)
                            .collect::<Option<_>>()?,
                    )
                } else {
                    return None;
                }
            }
        })
    }

    /// The values of an enum type, as a set.
    fn enum_values(&self) -> Option<BTreeSet<&str>> {
        match self {
            Ty::Enum(values) => Some(values.iter().map(String::as_str).collect()),
            _ => None,
        }
    }
}

/// Splits `text` at `separator`s outside `<…>` and `(…)`.
fn split_top(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth = depth.saturating_sub(1),
            _ if c == separator && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}
