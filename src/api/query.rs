//! The body of `POST /v3/list-calls` and `/v3/list-chats`, and the pages
//! they answer.

use serde_json::{Map, Value, json};

use crate::error::ParseError;
use crate::{Call, Chat};

/// The order of a listing, by `start_timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// Oldest first (what a backfill reads).
    Ascending,
    /// Newest first (Retell's default).
    Descending,
}

impl SortOrder {
    /// `"ascending"` or `"descending"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ascending => "ascending",
            Self::Descending => "descending",
        }
    }
}

/// What to list: the body of `POST /v3/list-calls` or `/v3/list-chats`.
///
/// ```
/// use retell_webhooks::api::{ListQuery, SortOrder};
/// use retell_webhooks::models::CallStatus;
///
/// let query = ListQuery::new()
///     .started_between(1_785_420_000_000, 1_785_427_200_000)
///     .with_status([CallStatus::Ended, CallStatus::Error])
///     .sort(SortOrder::Ascending)
///     .limit(500);
/// let body = query.to_body("call_status");
/// assert_eq!(body["filter_criteria"]["start_timestamp"]["op"], "bt");
/// assert_eq!(body["filter_criteria"]["call_status"]["value"][1], "error");
/// assert_eq!(body["limit"], 500);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    started: Option<(u64, u64)>,
    statuses: Vec<String>,
    sort: Option<SortOrder>,
    limit: Option<u32>,
    pagination_key: Option<String>,
    filters: Map<String, Value>,
}

impl ListQuery {
    /// Everything, in Retell's default order and page size.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Only calls or chats whose `start_timestamp` is in `[from_ms, to_ms]`
    /// (Unix milliseconds; whether Retell includes the bounds is not
    /// documented: overlap windows rather than rely on it).
    #[must_use]
    pub fn started_between(mut self, from_ms: u64, to_ms: u64) -> Self {
        self.started = Some((from_ms, to_ms));
        self
    }

    /// Only these statuses (`call_status` or `chat_status`): any value that
    /// displays as the wire string, such as
    /// [`CallStatus`](crate::models::CallStatus) or `&str`.
    #[must_use]
    pub fn with_status<S: ToString>(mut self, statuses: impl IntoIterator<Item = S>) -> Self {
        self.statuses = statuses.into_iter().map(|s| s.to_string()).collect();
        self
    }

    /// The order, by `start_timestamp`.
    #[must_use]
    pub fn sort(mut self, order: SortOrder) -> Self {
        self.sort = Some(order);
        self
    }

    /// At most this many items per page.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The page after the one that answered this `pagination_key`.
    #[must_use]
    pub fn after(mut self, pagination_key: impl Into<String>) -> Self {
        self.pagination_key = Some(pagination_key.into());
        self
    }

    /// Another condition of `filter_criteria`, as Retell spells it (`agent`,
    /// `direction`, `call_type`, …); replaces one of the same name.
    #[must_use]
    pub fn with_filter(mut self, name: impl Into<String>, condition: Value) -> Self {
        self.filters.insert(name.into(), condition);
        self
    }

    /// The page size asked for.
    #[must_use]
    pub fn page_size(&self) -> Option<u32> {
        self.limit
    }

    /// The cursor this query continues from.
    #[must_use]
    pub fn pagination_key(&self) -> Option<&str> {
        self.pagination_key.as_deref()
    }

    /// The JSON body, with the statuses under `status_field` (`call_status`
    /// or `chat_status`).
    #[must_use]
    pub fn to_body(&self, status_field: &str) -> Value {
        let mut filters = self.filters.clone();
        if let Some((from, to)) = self.started {
            filters.insert(
                "start_timestamp".to_owned(),
                json!({ "op": "bt", "type": "range", "value": [from, to] }),
            );
        }
        if !self.statuses.is_empty() {
            filters.insert(
                status_field.to_owned(),
                json!({ "op": "in", "type": "enum", "value": self.statuses }),
            );
        }
        let mut body = Map::new();
        if !filters.is_empty() {
            body.insert("filter_criteria".to_owned(), Value::Object(filters));
        }
        if let Some(order) = self.sort {
            body.insert("sort_order".to_owned(), order.as_str().into());
        }
        if let Some(limit) = self.limit {
            body.insert("limit".to_owned(), limit.into());
        }
        if let Some(key) = &self.pagination_key {
            body.insert("pagination_key".to_owned(), key.as_str().into());
        }
        Value::Object(body)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page<T> {
    /// The calls or chats (v3 listings leave out transcripts and
    /// `recording_url`: fetch those per call).
    pub items: Vec<T>,
    /// Whether another page follows.
    pub has_more: bool,
    /// The cursor of the next page.
    pub pagination_key: Option<String>,
    /// The total count, when Retell sent it.
    pub total: Option<u64>,
    /// Items that could not be read (no id, not an object): skipped.
    pub unreadable: usize,
    /// The answer was a bare JSON array (the v2 shape): `has_more` is then
    /// "the page is full" and `pagination_key` the last item's id.
    pub bare_array: bool,
}

impl<T> Page<T> {
    /// The query of the next page, or `None` at the end (no `has_more`, or
    /// no cursor to continue from).
    #[must_use]
    pub fn next(&self, query: &ListQuery) -> Option<ListQuery> {
        if !self.has_more {
            return None;
        }
        let key = self.pagination_key.as_deref()?;
        Some(query.clone().after(key))
    }
}

/// What a page holds.
pub(super) trait Item: Sized {
    fn parse(text: &[u8]) -> Result<Self, ParseError>;
    fn id(&self) -> &str;
}

impl Item for Call {
    fn parse(text: &[u8]) -> Result<Self, ParseError> {
        Call::from_slice(text)
    }
    fn id(&self) -> &str {
        &self.call_id
    }
}

impl Item for Chat {
    fn parse(text: &[u8]) -> Result<Self, ParseError> {
        Chat::from_slice(text)
    }
    fn id(&self) -> &str {
        &self.chat_id
    }
}

/// The v3 envelope; unknown keys are ignored.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    items: Vec<&'a serde_json::value::RawValue>,
    #[serde(default)]
    has_more: Option<bool>,
    #[serde(default)]
    pagination_key: Option<String>,
    #[serde(default)]
    total: Option<u64>,
}

/// Reads a listing's answer: the v3 envelope or a bare array.
pub(super) fn parse_page<T: Item>(body: &[u8], limit: Option<u32>) -> Result<Page<T>, ParseError> {
    let text = std::str::from_utf8(body).map_err(|e| ParseError::utf8(body, e))?;
    let bare_array = text.trim_start().starts_with('[');
    let (raw_items, has_more, pagination_key, total) = if bare_array {
        let items: Vec<&serde_json::value::RawValue> =
            serde_json::from_str(text).map_err(|e| ParseError::json(&e, String::new()))?;
        (items, None, None, None)
    } else {
        let envelope: Envelope<'_> =
            serde_json::from_str(text).map_err(|e| ParseError::json(&e, String::new()))?;
        (
            envelope.items,
            envelope.has_more,
            envelope.pagination_key,
            envelope.total,
        )
    };
    let listed = raw_items.len();
    let mut items = Vec::with_capacity(listed);
    for raw in raw_items {
        if let Ok(item) = T::parse(raw.get().as_bytes()) {
            items.push(item);
        }
    }
    let unreadable = listed - items.len();
    if bare_array {
        // v2: a full page may have a successor, found after the last id.
        let full = limit.is_some_and(|limit| listed >= limit as usize && listed > 0);
        let last = items.last().map(|item| item.id().to_owned());
        return Ok(Page {
            has_more: full && last.is_some(),
            pagination_key: last.filter(|_| full),
            items,
            total: None,
            unreadable,
            bare_array,
        });
    }
    Ok(Page {
        items,
        has_more: has_more.unwrap_or(false),
        pagination_key,
        total,
        unreadable,
        bare_array,
    })
}
