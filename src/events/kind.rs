//! The catalogue of event names: [`EventKind`].
//!
//! Every name is written once, in the table of the `catalogue!` call below;
//! the enum, [`EventKind::ALL`], [`EventKind::as_str`], the `FromStr` impl,
//! [`KNOWN_EVENTS`] and [`INBOUND_EVENTS`] are all derived from it. The
//! constructors of [`WebhookEvent`](super::WebhookEvent) (one per event,
//! named after it) are checked against it at compile time.

use std::fmt;
use std::str::FromStr;

/// Defines [`EventKind`] with its `ALL` list, `as_str` and `FromStr` from one
/// table of `Variant => "name"` rows.
macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )+) => {
        /// The kind of a request Retell POSTs with an `event` key: one variant
        /// per `event` name this version knows.
        ///
        /// The eleven events of the event webhook ([`WebhookEvent`](super::WebhookEvent))
        /// come first, then the two inbound requests that expect an answer
        /// ([`Incoming::CallInbound`](super::Incoming::CallInbound),
        /// [`Incoming::ChatInbound`](super::Incoming::ChatInbound); see
        /// [`Self::is_inbound`]). A name outside the catalogue has no kind:
        /// it parses to [`WebhookEvent::Unknown`](super::WebhookEvent::Unknown),
        /// whose `kind()` is `None`.
        ///
        /// The enum is `#[non_exhaustive]`: later versions add a variant when
        /// Retell adds an event, so a `match` needs a `_` arm.
        ///
        /// ```
        /// use retell_webhooks::{EventKind, WebhookEvent};
        ///
        /// let kind: EventKind = "transfer_bridged".parse()?;
        /// assert_eq!(kind, EventKind::TransferBridged);
        /// assert_eq!(kind.as_str(), "transfer_bridged");
        /// assert_eq!(kind.to_string(), "transfer_bridged");
        /// assert!("call_exploded".parse::<EventKind>().is_err());
        ///
        /// let event = WebhookEvent::from_slice(br#"{"event":"call_ended","call":{"call_id":"c1"}}"#)?;
        /// assert_eq!(event.kind(), Some(EventKind::CallEnded));
        ///
        /// // Every kind, in catalogue order.
        /// let inbound: Vec<_> = EventKind::ALL.iter().filter(|k| k.is_inbound()).collect();
        /// assert_eq!(inbound, [&EventKind::CallInbound, &EventKind::ChatInbound]);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum EventKind {
            $( $(#[$doc])* $variant, )+
        }

        impl EventKind {
            /// Every kind, in catalogue order: the eleven events, then
            /// `call_inbound` and `chat_inbound`.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),+];

            /// The `event` name, exactly as Retell sends it.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)+
                }
            }
        }

        impl FromStr for EventKind {
            type Err = UnknownEventKind;

            /// The kind named `name` (exact, case-sensitive match).
            fn from_str(name: &str) -> Result<Self, UnknownEventKind> {
                match name {
                    $($name => Ok(EventKind::$variant),)+
                    _ => Err(UnknownEventKind { _private: () }),
                }
            }
        }
    };
}

catalogue! {
    /// `call_started`: a call began ([`WebhookEvent::CallStarted`](super::WebhookEvent::CallStarted)).
    CallStarted => "call_started",
    /// `call_ended`: a call ended ([`WebhookEvent::CallEnded`](super::WebhookEvent::CallEnded)).
    CallEnded => "call_ended",
    /// `call_analyzed`: a call's analysis is ready ([`WebhookEvent::CallAnalyzed`](super::WebhookEvent::CallAnalyzed)).
    CallAnalyzed => "call_analyzed",
    /// `transcript_updated`: a call's or chat's transcript changed
    /// ([`WebhookEvent::TranscriptUpdated`](super::WebhookEvent::TranscriptUpdated)).
    TranscriptUpdated => "transcript_updated",
    /// `transfer_started` ([`WebhookEvent::TransferStarted`](super::WebhookEvent::TransferStarted)).
    TransferStarted => "transfer_started",
    /// `transfer_bridged` ([`WebhookEvent::TransferBridged`](super::WebhookEvent::TransferBridged)).
    TransferBridged => "transfer_bridged",
    /// `transfer_cancelled` ([`WebhookEvent::TransferCancelled`](super::WebhookEvent::TransferCancelled)).
    TransferCancelled => "transfer_cancelled",
    /// `transfer_ended` ([`WebhookEvent::TransferEnded`](super::WebhookEvent::TransferEnded)).
    TransferEnded => "transfer_ended",
    /// `chat_started` ([`WebhookEvent::ChatStarted`](super::WebhookEvent::ChatStarted)).
    ChatStarted => "chat_started",
    /// `chat_ended` ([`WebhookEvent::ChatEnded`](super::WebhookEvent::ChatEnded)).
    ChatEnded => "chat_ended",
    /// `chat_analyzed`: a chat's analysis is ready ([`WebhookEvent::ChatAnalyzed`](super::WebhookEvent::ChatAnalyzed)).
    ChatAnalyzed => "chat_analyzed",
    /// `call_inbound`: the inbound call webhook, which expects an answer
    /// ([`Incoming::CallInbound`](super::Incoming::CallInbound)).
    CallInbound => "call_inbound",
    /// `chat_inbound`: the inbound SMS webhook, which expects an answer
    /// ([`Incoming::ChatInbound`](super::Incoming::ChatInbound)).
    ChatInbound => "chat_inbound",
}

impl EventKind {
    /// `true` for the inbound call / SMS requests (`call_inbound`,
    /// `chat_inbound`), which expect an answer; `false` for the events of
    /// [`WebhookEvent`](super::WebhookEvent).
    #[must_use]
    pub const fn is_inbound(self) -> bool {
        matches!(self, Self::CallInbound | Self::ChatInbound)
    }

    /// The kind named `name`, if it is in the catalogue.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an [`EventKind`] from a name outside the catalogue.
///
/// It does not carry or print the name: it may come from an unverified body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownEventKind {
    _private: (),
}

impl fmt::Display for UnknownEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an event name this version knows")
    }
}

impl std::error::Error for UnknownEventKind {}

/// How many kinds have `is_inbound() == inbound`.
const fn count(inbound: bool) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < EventKind::ALL.len() {
        if EventKind::ALL[i].is_inbound() == inbound {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The names of the kinds with `is_inbound() == inbound`, in catalogue order
/// (`N` is `count(inbound)`; evaluated at compile time).
const fn names<const N: usize>(inbound: bool) -> [&'static str; N] {
    let mut names = [""; N];
    let mut n = 0;
    let mut i = 0;
    while i < EventKind::ALL.len() {
        let kind = EventKind::ALL[i];
        if kind.is_inbound() == inbound {
            names[n] = kind.as_str();
            n += 1;
        }
        i += 1;
    }
    names
}

const EVENT_NAMES: [&str; count(false)] = names(false);
const INBOUND_NAMES: [&str; count(true)] = names(true);

/// Every event name of the event webhook this version knows: the names of
/// the [`EventKind`]s that are not [inbound](EventKind::is_inbound), in
/// catalogue order (derived from [`EventKind::ALL`]).
pub const KNOWN_EVENTS: &[&str] = &EVENT_NAMES;

/// Names of the inbound webhook requests ([`Incoming::CallInbound`](super::Incoming::CallInbound) /
/// [`Incoming::ChatInbound`](super::Incoming::ChatInbound)): the names of the
/// [inbound](EventKind::is_inbound) [`EventKind`]s (derived from [`EventKind::ALL`]).
pub const INBOUND_EVENTS: &[&str] = &INBOUND_NAMES;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_lists_follow_the_catalogue() {
        let all: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        let lists: Vec<_> = KNOWN_EVENTS.iter().chain(INBOUND_EVENTS).copied().collect();
        assert_eq!(all, lists);
        assert_eq!(KNOWN_EVENTS.len(), 11);
        assert_eq!(INBOUND_EVENTS, ["call_inbound", "chat_inbound"]);
    }

    #[test]
    fn from_name_is_exact() {
        assert_eq!(
            EventKind::from_name("chat_ended"),
            Some(EventKind::ChatEnded)
        );
        assert_eq!(EventKind::from_name("Chat_Ended"), None);
        assert_eq!(EventKind::from_name(" chat_ended"), None);
        assert_eq!(EventKind::from_name(""), None);
    }
}
