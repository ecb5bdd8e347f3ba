//! Catch up on what Retell could not deliver: rebuild missed `call_ended`,
//! `call_analyzed`, `chat_ended` and `chat_analyzed` events from Retell's
//! API and store them in the same [inbox](crate::inbox), for the same
//! handler, exactly once. Features `api` and `inbox`.
//!
//! Retell tries a delivery four times within minutes. When the receiver was
//! down longer (a deploy gone wrong, a network outage, a certificate that
//! expired), those events are gone; the calls and chats are not. A
//! [`Backfill`] run:
//!
//! 1. lists the calls (and chats) whose `start_timestamp` is in a window,
//!    oldest first: from the stored watermark less an overlap (default 2 h)
//!    up to now less a settling delay (default 5 min);
//! 2. for each that has ended (`call_status` `ended`, `error` or
//!    `not_connected`; `chat_status` `ended` or `error`), looks up the keys
//!    of its `call_ended` and `call_analyzed` in the inbox;
//! 3. when one is missing, fetches the whole call (with transcripts) and
//!    inserts the missing events, built as Retell would have sent them, under
//!    the [same key](crate::dedupe) a live delivery has: `call_analyzed`
//!    only once the call has `call_analysis`. If Retell's own delivery
//!    arrives meanwhile, whichever is stored first wins and the other is a
//!    [`Inserted::Duplicate`]: the
//!    handler runs once either way;
//! 4. raises the watermark to what was stored: the window's end when the
//!    listing was read to its end, else the start of the last call handled
//!    before the first failure (or the page limit). The next run starts
//!    there, less the overlap.
//!
//! A rebuilt event carries the [`Recovered`] mark (a top-level key), so a
//! handler can tell it from a live one. It cannot rebuild `call_started`
//! at its moment, `transcript_updated`, the `transfer_*` events, or
//! transcripts Retell did not keep under an opt-out `data_storage_setting`.
//!
//! # The overlap
//!
//! Retell indexes calls by their start, and a call is only listed as ended
//! once it has ended: a call that started before the previous run's end and
//! ended after it is found only if the next window reaches back to its
//! start. Make the overlap at least the longest call (the agents'
//! `max_call_duration_ms`, 1 h by default in Retell) plus the time its analysis
//! takes. Calls within the overlap are listed again by every run, which
//! costs pages, not fetches: a call whose events are all stored is not
//! fetched. Keep the inbox's retention (7 days by default) longer than any
//! window: a pruned event is not known to be stored and would be rebuilt.
//!
//! ```no_run
//! use retell_webhooks::api::Client;
//! use retell_webhooks::backfill::Backfill;
//! use retell_webhooks::inbox::SqliteInbox;
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let inbox = SqliteInbox::open("/var/lib/app/retell-inbox.sqlite3")?;
//! let client = Client::new(std::env::var("RETELL_API_KEY")?)?;
//! let backfill = Backfill::new(client, inbox.clone()).with_overlap(Duration::from_secs(2 * 3600));
//! loop {
//!     let report = backfill.run().await;
//!     if let Some(error) = report.error() {
//!         eprintln!("backfill stopped early, resumes next time: {error}");
//!     }
//!     tokio::time::sleep(Duration::from_secs(600)).await;
//! }
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::api::{ApiError, Client, ListQuery, Page, SortOrder};
use crate::dedupe::DedupeKey;
use crate::inbox::{Inbox, InboxError, Inserted, NewEntry};
use crate::models::{CallStatus, ChatStatus};
use crate::{Call, CallEvent, Chat, ChatEvent, EventKind, Recovered, WebhookEvent};

/// Call statuses of calls that will not change any more.
const ENDED_CALLS: [CallStatus; 3] = [
    CallStatus::Ended,
    CallStatus::Error,
    CallStatus::NotConnected,
];

/// Chat statuses of chats that will not change any more.
const ENDED_CHATS: [ChatStatus; 2] = [ChatStatus::Ended, ChatStatus::Error];

/// Why a run stopped before the end of its window. The watermark stays at
/// what was stored before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackfillError {
    /// Retell's API failed (after its retries).
    #[error("{0}")]
    Api(#[from] ApiError),
    /// The inbox failed.
    #[error("{0}")]
    Inbox(#[from] InboxError),
}

/// What happened to one rebuilt event, for [`Backfill::with_observer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Stored: the worker will run the handler on it.
    Stored,
    /// Retell's own delivery was stored first: nothing changed.
    Duplicate,
    /// A dry run: it would have been stored.
    DryRun,
}

/// One rebuilt event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveredEvent {
    /// `call_ended`, `call_analyzed`, `chat_ended` or `chat_analyzed`.
    pub event: EventKind,
    /// The call or chat id, as Retell listed it (untrusted text).
    pub id: String,
    /// The call's or chat's `start_timestamp`.
    pub start_ms: Option<u64>,
    /// The event's key in the inbox.
    pub key: DedupeKey,
    /// Stored, a duplicate, or a dry run.
    pub outcome: Outcome,
}

/// What a run did for calls, or for chats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The window of `start_timestamp`s listed, `[from, to]` Unix ms; `None`
    /// when this kind was not listed.
    pub window: Option<(u64, u64)>,
    /// Pages read.
    pub pages: u32,
    /// Items listed.
    pub listed: u64,
    /// Items not ended (ongoing, registered, an unknown status): skipped.
    pub not_ended: u64,
    /// Items that could not be read (no id): skipped.
    pub unreadable: u64,
    /// Ended items whose events were all stored already.
    pub already_stored: u64,
    /// Calls or chats fetched in full.
    pub fetched: u64,
    /// Events stored by this run.
    pub recovered: u64,
    /// Events a live delivery stored first (while this run fetched them).
    pub duplicates: u64,
    /// Events a dry run would have stored.
    pub would_recover: u64,
    /// The watermark after the run (unchanged by a dry run).
    pub watermark: Option<u64>,
    /// Whether the whole window was read.
    pub complete: bool,
    /// Why the run stopped early, if it did.
    pub error: Option<BackfillError>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct Report {
    /// Calls.
    pub calls: Progress,
    /// Chats.
    pub chats: Progress,
    /// HTTP requests sent to Retell's API, retries included.
    pub requests: u64,
    /// How long the run took.
    pub elapsed: Duration,
}

impl Report {
    /// Events stored by this run.
    #[must_use]
    pub fn recovered(&self) -> u64 {
        self.calls.recovered + self.chats.recovered
    }

    /// The first error, calls before chats.
    #[must_use]
    pub fn error(&self) -> Option<&BackfillError> {
        self.calls.error.as_ref().or(self.chats.error.as_ref())
    }

    /// Whether both windows were read to their end without an error.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        let done = |p: &Progress| p.window.is_none() || (p.complete && p.error.is_none());
        done(&self.calls) && done(&self.chats)
    }
}

type Observer = Arc<dyn Fn(&RecoveredEvent) + Send + Sync>;
type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Rebuilds missed events from Retell's API into an inbox. See the
/// [module docs](self).
pub struct Backfill<I> {
    client: Client,
    inbox: I,
    name: String,
    overlap: Duration,
    settle: Duration,
    first_lookback: Duration,
    page_size: u32,
    max_pages: u32,
    calls: bool,
    chats: bool,
    dry_run: bool,
    pacer: Pacer,
    observer: Option<Observer>,
    clock: Clock,
}

impl<I> fmt::Debug for Backfill<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backfill")
            .field("client", &self.client)
            .field("name", &self.name)
            .field("overlap", &self.overlap)
            .field("settle", &self.settle)
            .field("first_lookback", &self.first_lookback)
            .field("page_size", &self.page_size)
            .field("max_pages", &self.max_pages)
            .field("requests_per_second", &self.pacer.per_second())
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// Which listing a step works on.
#[derive(Clone, Copy)]
enum Kind {
    Calls,
    Chats,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Calls => "calls",
            Kind::Chats => "chats",
        }
    }
}

impl<I: Inbox> Backfill<I> {
    /// A backfill into `inbox` with the defaults: a 2 h overlap, a 5 min
    /// settling delay, 2 h back on the first run, pages of 500, at most 50
    /// pages of calls and 50 of chats per run, 10 requests per second.
    #[must_use]
    pub fn new(client: Client, inbox: I) -> Self {
        Self {
            client,
            inbox,
            name: "default".to_owned(),
            overlap: Duration::from_secs(2 * 3600),
            settle: Duration::from_secs(5 * 60),
            first_lookback: Duration::from_secs(2 * 3600),
            page_size: 500,
            max_pages: 50,
            calls: true,
            chats: true,
            dry_run: false,
            pacer: Pacer::new(10.0),
            observer: None,
            clock: Arc::new(|| crate::unix_ms(SystemTime::now()).unwrap_or(0)),
        }
    }

    /// How far each run reaches back before the watermark (default 2 h): at
    /// least the longest call plus its analysis.
    #[must_use]
    pub fn with_overlap(mut self, overlap: Duration) -> Self {
        self.overlap = overlap;
        self
    }

    /// How far behind now each window ends (default 5 min): calls that
    /// started since are left to the next run.
    #[must_use]
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// How far back a run reaches when no watermark is stored yet
    /// (default 2 h).
    #[must_use]
    pub fn with_first_lookback(mut self, lookback: Duration) -> Self {
        self.first_lookback = lookback;
        self
    }

    /// Items per page asked for (default 500).
    #[must_use]
    pub fn with_page_size(mut self, size: u32) -> Self {
        self.page_size = size.max(1);
        self
    }

    /// Pages of calls, and of chats, read per run at most (default 50); a
    /// run cut short by it resumes next time from where it stopped. With
    /// the page size it must exceed the calls in one overlap, or runs would
    /// never get past it.
    #[must_use]
    pub fn with_max_pages(mut self, pages: u32) -> Self {
        self.max_pages = pages.max(1);
        self
    }

    /// Requests per second to Retell's API at most (default 10), retries
    /// aside.
    #[must_use]
    pub fn with_requests_per_second(mut self, per_second: f64) -> Self {
        self.pacer = Pacer::new(per_second);
        self
    }

    /// Whether to list calls and chats (default both).
    #[must_use]
    pub fn with_kinds(mut self, calls: bool, chats: bool) -> Self {
        self.calls = calls;
        self.chats = chats;
        self
    }

    /// Lists, looks up and fetches, but stores nothing and keeps the
    /// watermarks as they are.
    #[must_use]
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Names the watermarks `backfill:<name>:calls` and
    /// `backfill:<name>:chats` (default `default`): one name per Retell
    /// account feeding the inbox.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Called with each rebuilt event as it is stored (or found a
    /// duplicate, or would be stored by a dry run).
    #[must_use]
    pub fn with_observer(
        mut self,
        observer: impl Fn(&RecoveredEvent) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The clock (Unix milliseconds) windows and `received_ms` are read
    /// from (default the system clock).
    #[must_use]
    pub fn with_clock(mut self, now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now_ms);
        self
    }

    /// The watermark's name for calls or chats.
    #[must_use]
    pub fn watermark_name(&self, chats: bool) -> String {
        let kind = if chats { Kind::Chats } else { Kind::Calls };
        format!("backfill:{}:{}", self.name, kind.suffix())
    }

    /// The client.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One run from the stored watermarks (less the overlap) to now less
    /// the settling delay.
    pub async fn run(&self) -> Report {
        self.run_in(None).await
    }

    /// One run over `[from_ms, to_ms]`. It raises a watermark only when the
    /// window starts at or before it (or none is stored): a window that
    /// leaves a gap after the watermark does not move it past the gap.
    pub async fn run_window(&self, from_ms: u64, to_ms: u64) -> Report {
        self.run_in(Some((from_ms, to_ms))).await
    }

    async fn run_in(&self, window: Option<(u64, u64)>) -> Report {
        let started = Instant::now();
        let requests = self.client.requests_sent();
        let mut report = Report::default();
        if self.calls {
            report.calls = self.kind(Kind::Calls, window).await;
        }
        if self.chats {
            report.chats = self.kind(Kind::Chats, window).await;
        }
        report.requests = self.client.requests_sent().saturating_sub(requests);
        report.elapsed = started.elapsed();
        report
    }

    /// Lists one kind over its window, rebuilds what is missing, and raises
    /// its watermark.
    async fn kind(&self, kind: Kind, explicit: Option<(u64, u64)>) -> Progress {
        let mut progress = Progress::default();
        let name = format!("backfill:{}:{}", self.name, kind.suffix());
        let stored = match self.inbox.watermark(&name).await {
            Ok(stored) => stored,
            Err(error) => {
                progress.error = Some(error.into());
                return progress;
            }
        };
        progress.watermark = stored;
        let now = (self.clock)();
        let (from, to) = explicit.unwrap_or_else(|| {
            let from = match stored {
                Some(mark) => mark.saturating_sub(millis(self.overlap)),
                None => now.saturating_sub(millis(self.first_lookback)),
            };
            (from, now.saturating_sub(millis(self.settle)))
        });
        progress.window = Some((from, to));
        if from > to {
            progress.complete = true;
            return progress;
        }
        let mut query = ListQuery::new()
            .started_between(from, to)
            .sort(SortOrder::Ascending)
            .limit(self.page_size);
        query = match kind {
            Kind::Calls => query.with_status(ENDED_CALLS),
            Kind::Chats => query.with_status(ENDED_CHATS),
        };
        // The start of the last item handled with everything before it.
        let mut handled_to: Option<u64> = None;
        loop {
            if progress.pages >= self.max_pages {
                break;
            }
            self.pacer.wait().await;
            let listed = match kind {
                Kind::Calls => self.client.list_calls(&query).await.map(Listed::Calls),
                Kind::Chats => self.client.list_chats(&query).await.map(Listed::Chats),
            };
            let page = match listed {
                Ok(page) => page,
                Err(error) => {
                    progress.error = Some(error.into());
                    break;
                }
            };
            progress.pages += 1;
            progress.unreadable += page.unreadable() as u64;
            let next = page.next(&query);
            let mut failed = false;
            for item in page.into_items() {
                progress.listed += 1;
                match self.item(&item, &mut progress).await {
                    Ok(()) => {
                        if let Some(start) = item.start_ms() {
                            handled_to = Some(handled_to.map_or(start, |h| h.max(start)));
                        }
                    }
                    Err(error) => {
                        // Never past an item that is not stored, even if
                        // the listing was out of order.
                        if let Some(start) = item.start_ms() {
                            handled_to = handled_to.map(|h| h.min(start.saturating_sub(1)));
                        }
                        progress.error = Some(error);
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                break;
            }
            match next {
                Some(next) => query = next,
                None => {
                    progress.complete = true;
                    break;
                }
            }
        }
        let reached = if progress.complete {
            Some(to)
        } else {
            handled_to
        };
        // An explicit window after the watermark leaves a gap: keep it.
        let contiguous = explicit.is_none() || stored.is_none_or(|mark| from <= mark);
        if let (Some(reached), false, true) = (reached, self.dry_run, contiguous) {
            match self.inbox.advance_watermark(&name, reached).await {
                Ok(mark) => progress.watermark = Some(mark),
                Err(error) => {
                    progress.error.get_or_insert(error.into());
                }
            }
        }
        progress
    }

    /// Looks up one listed call or chat, and rebuilds what is missing.
    async fn item(&self, item: &Item, progress: &mut Progress) -> Result<(), BackfillError> {
        if !item.has_ended() {
            progress.not_ended += 1;
            return Ok(());
        }
        let (ended, analyzed) = item.keys();
        let need_ended = !self.inbox.contains(&ended).await?;
        let need_analyzed = !self.inbox.contains(&analyzed).await?;
        if !need_ended && !need_analyzed {
            progress.already_stored += 1;
            return Ok(());
        }
        self.pacer.wait().await;
        let full = match item {
            Item::Call(call) => Item::Call(Box::new(self.client.get_call(&call.call_id).await?)),
            Item::Chat(chat) => Item::Chat(Box::new(self.client.get_chat(&chat.chat_id).await?)),
        };
        progress.fetched += 1;
        let now = (self.clock)();
        let mark = Recovered::at(now);
        let mut events = Vec::with_capacity(2);
        match full {
            Item::Call(call) => {
                if need_analyzed && call.call_analysis.is_some() {
                    events.push(WebhookEvent::CallAnalyzed(
                        CallEvent::new((*call).clone()).with_recovered(mark),
                    ));
                }
                if need_ended {
                    // `call_ended` comes before the analysis exists.
                    let mut ended = *call;
                    ended.call_analysis = None;
                    events.insert(
                        0,
                        WebhookEvent::CallEnded(CallEvent::new(ended).with_recovered(mark)),
                    );
                }
            }
            Item::Chat(chat) => {
                if need_analyzed && chat.chat_analysis.is_some() {
                    events.push(WebhookEvent::ChatAnalyzed(
                        ChatEvent::new((*chat).clone()).with_recovered(mark),
                    ));
                }
                if need_ended {
                    let mut ended = *chat;
                    ended.chat_analysis = None;
                    events.insert(
                        0,
                        WebhookEvent::ChatEnded(ChatEvent::new(ended).with_recovered(mark)),
                    );
                }
            }
        }
        // In order: `*_ended` before `*_analyzed`, as Retell sends them.
        for event in events {
            let body = serde_json::to_vec(&event)
                .map_err(|e| InboxError::new(format!("cannot write a rebuilt event: {e}")))?;
            let entry = NewEntry::for_event(&event, &body, now);
            let outcome = if self.dry_run {
                progress.would_recover += 1;
                Outcome::DryRun
            } else {
                match self.inbox.insert(entry.clone()).await? {
                    Inserted::Stored => {
                        progress.recovered += 1;
                        Outcome::Stored
                    }
                    Inserted::Duplicate => {
                        progress.duplicates += 1;
                        Outcome::Duplicate
                    }
                }
            };
            if let (Some(observer), Some(kind)) = (&self.observer, event.kind()) {
                observer(&RecoveredEvent {
                    event: kind,
                    id: item.id().to_owned(),
                    start_ms: item.start_ms(),
                    key: entry.key,
                    outcome,
                });
            }
        }
        Ok(())
    }
}

/// A page of calls or of chats.
enum Listed {
    Calls(Page<Call>),
    Chats(Page<Chat>),
}

impl Listed {
    fn unreadable(&self) -> usize {
        match self {
            Listed::Calls(page) => page.unreadable,
            Listed::Chats(page) => page.unreadable,
        }
    }

    fn into_items(self) -> Vec<Item> {
        match self {
            Listed::Calls(page) => page
                .items
                .into_iter()
                .map(|c| Item::Call(Box::new(c)))
                .collect(),
            Listed::Chats(page) => page
                .items
                .into_iter()
                .map(|c| Item::Chat(Box::new(c)))
                .collect(),
        }
    }

    fn next(&self, query: &ListQuery) -> Option<ListQuery> {
        match self {
            Listed::Calls(page) => page.next(query),
            Listed::Chats(page) => page.next(query),
        }
    }
}

/// A listed call or chat.
enum Item {
    Call(Box<Call>),
    Chat(Box<Chat>),
}

impl Item {
    fn id(&self) -> &str {
        match self {
            Item::Call(call) => &call.call_id,
            Item::Chat(chat) => &chat.chat_id,
        }
    }

    fn start_ms(&self) -> Option<u64> {
        match self {
            Item::Call(call) => call.start_timestamp,
            Item::Chat(chat) => chat.start_timestamp,
        }
    }

    /// Whether it will not change any more (an unknown status is not).
    fn has_ended(&self) -> bool {
        match self {
            Item::Call(call) => call
                .call_status
                .as_ref()
                .is_some_and(|s| ENDED_CALLS.contains(s)),
            Item::Chat(chat) => chat
                .chat_status
                .as_ref()
                .is_some_and(|s| ENDED_CHATS.contains(s)),
        }
    }

    /// The keys of its `*_ended` and `*_analyzed`: those of a live
    /// delivery (a lifecycle key depends on the event and the id only).
    fn keys(&self) -> (DedupeKey, DedupeKey) {
        let key = |event: &WebhookEvent| DedupeKey::for_event(event, b"");
        match self {
            Item::Call(call) => (
                key(&WebhookEvent::call_ended(Call::new(call.call_id.clone()))),
                key(&WebhookEvent::call_analyzed(Call::new(
                    call.call_id.clone(),
                ))),
            ),
            Item::Chat(chat) => (
                key(&WebhookEvent::chat_ended(Chat::new(chat.chat_id.clone()))),
                key(&WebhookEvent::chat_analyzed(Chat::new(
                    chat.chat_id.clone(),
                ))),
            ),
        }
    }
}

/// Spaces requests evenly: at most `per_second`.
struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    fn new(per_second: f64) -> Self {
        let interval = if per_second.is_finite() && per_second > 0.0 {
            Duration::from_secs_f64(1.0 / per_second)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            next: Mutex::new(None),
        }
    }

    fn per_second(&self) -> f64 {
        if self.interval.is_zero() {
            f64::INFINITY
        } else {
            1.0 / self.interval.as_secs_f64()
        }
    }

    async fn wait(&self) {
        if self.interval.is_zero() {
            return;
        }
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let slot = next.map_or(now, |at| at.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
