//! What a worker does with one leased entry: the user's typed handler, or a
//! raw handler that gets the original bytes.

use std::fmt;

use super::{Leased, StoreFuture};
use crate::receiver::Fallback;
use crate::telemetry::Attempt;
use crate::{WebhookEvent, WebhookHandler};

/// Handles stored events as their original bytes: a forwarder, a queue
/// producer, anything that needs the body exactly as Retell signed it rather
/// than the typed event. Run it with [`Worker::raw`](super::Worker::raw).
///
/// `Ok` acknowledges the event; `Err` (or a panic, or the worker's timeout)
/// schedules a retry.
pub trait RawHandler: Send + Sync + 'static {
    /// The error; its `Display` text is kept with the entry.
    type Error: fmt::Display + Send + 'static;

    /// Handles one leased entry.
    fn handle(&self, entry: &Leased) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// How one run ended.
pub(crate) enum Verdict {
    Done,
    /// Worth retrying: the handler's error.
    Failed(String),
    /// The body cannot be read and the handler's fallback declined it:
    /// retrying the same bytes cannot help, so it is dead at once.
    Unreadable(String),
}

impl Verdict {
    /// The attempt's outcome for the metrics; panics and timeouts are the
    /// worker's to tell.
    pub(crate) fn attempt(&self) -> Attempt {
        match self {
            Verdict::Done => Attempt::Ok,
            Verdict::Failed(_) => Attempt::Error,
            Verdict::Unreadable(_) => Attempt::Unreadable,
        }
    }
}

/// A handler behind a pointer the worker can share between its tasks.
pub(crate) trait Process: Send + Sync {
    fn process<'a>(&'a self, entry: &'a Leased) -> StoreFuture<'a, Verdict>;
}

pub(crate) struct Typed<H>(pub(crate) H);

impl<H: WebhookHandler + 'static> Process for Typed<H> {
    fn process<'a>(&'a self, entry: &'a Leased) -> StoreFuture<'a, Verdict> {
        Box::pin(async move {
            match WebhookEvent::from_slice(&entry.body) {
                Ok(event) => match event.dispatch_to(&self.0).await {
                    Ok(()) => Verdict::Done,
                    Err(error) => Verdict::Failed(error.to_string()),
                },
                Err(error) => match self.0.on_unparsed(&entry.body, &error).await {
                    Ok(Fallback::Accepted) => Verdict::Done,
                    Ok(Fallback::Declined) => Verdict::Unreadable(error.to_string()),
                    Err(failed) => Verdict::Failed(failed.to_string()),
                },
            }
        })
    }
}

pub(crate) struct Raw<R>(pub(crate) R);

impl<R: RawHandler> Process for Raw<R> {
    fn process<'a>(&'a self, entry: &'a Leased) -> StoreFuture<'a, Verdict> {
        Box::pin(async move {
            match self.0.handle(entry).await {
                Ok(()) => Verdict::Done,
                Err(error) => Verdict::Failed(error.to_string()),
            }
        })
    }
}
