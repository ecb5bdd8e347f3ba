//! With an inbox, an event is stored rather than handled: the answer
//! depends only on whether the store made it durable in time.

use std::sync::Arc;

use super::guard::{CatchUnwind, Panicked, Raced, race};
use super::outcome::{Dispatched, Reason};
use super::work::Work;
use crate::inbox::{Inbox, Inserted, NewEntry};
use crate::{Incoming, RouteKind, telemetry};

/// The entry to store for an events-route body, or `None` when the request
/// needs the handler's answer (the inbound call/SMS webhook).
///
/// `parsed` is what [`Work::parse`] made of it; a body it refused (not
/// UTF-8, not JSON, not an object) is verified all the same, so it is kept
/// as a dead letter with the refusal as its reason.
pub(crate) fn entry_of(
    parsed: &Result<(Work, super::outcome::Ids), Box<Dispatched>>,
    body: &[u8],
    now_ms: u64,
) -> Option<NewEntry> {
    match parsed {
        Ok((Work::Incoming(Incoming::Event(event)), _)) => {
            Some(NewEntry::for_event(event, body, now_ms))
        }
        Ok((Work::Incoming(_) | Work::Function(_), _)) => None,
        // Readable JSON that the models cannot read: stored ready, so the
        // worker gives the handler's `on_unparsed` its chance (declined, it
        // is dead at once).
        Ok((Work::Unparsed(error), ids)) => Some(NewEntry {
            event: ids.event.clone(),
            order: ids
                .call_id
                .as_ref()
                .map(|id| format!("call:{id}"))
                .or_else(|| ids.chat_id.as_ref().map(|id| format!("chat:{id}"))),
            dead_reason: None,
            ..NewEntry::unreadable(body, error.to_string(), now_ms)
        }),
        Err(refused) => Some(NewEntry::unreadable(
            body,
            refused.outcome.reason.to_string(),
            now_ms,
        )),
    }
}

/// Stores `entry` before `deadline`: `204` once durable (or already there),
/// `503` when the store fails, panics or is too slow.
pub(crate) async fn store<D>(inbox: &Arc<dyn Inbox>, entry: NewEntry, deadline: D) -> Dispatched
where
    D: Future<Output = ()> + Send,
{
    let unreadable = entry.dead_reason.clone();
    let insert = CatchUnwind::new(inbox.insert(entry));
    let reason = match race(insert, deadline).await {
        Raced::Done(Ok(Ok(Inserted::Stored))) => match unreadable {
            Some(why) => Reason::StoredUnreadable(why),
            None => Reason::Stored,
        },
        Raced::Done(Ok(Ok(Inserted::Duplicate))) => Reason::Duplicate,
        Raced::Done(Ok(Err(error))) => Reason::InboxFailed(error.0),
        Raced::Done(Err(Panicked)) => Reason::InboxFailed("the store panicked".to_owned()),
        Raced::Deadline => Reason::InboxFailed("the store did not answer in time".to_owned()),
    };
    telemetry::inbox_stored(&reason);
    Dispatched::from_reason(RouteKind::Events, reason)
}
