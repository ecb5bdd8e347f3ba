//! `listen --forward URL`: each stored event's original bytes, re-signed with
//! the same key, POSTed to the user's app until it answers `2xx`.

use std::fmt;

use retell_webhooks::inbox::{Leased, RawHandler};
use retell_webhooks::{SIGNATURE_HEADER, WebhookEvent};

use crate::common;
use crate::send::{Target, post_with};

/// The header that carries the event's dedupe key: the same for every
/// attempt of one event, so the app can drop a copy it already processed.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// On events a backfill rebuilt from Retell's API: when it stored them
/// (Unix ms). The body says the same in its top-level
/// `retell_webhooks_recovered` key.
pub const RECOVERED_HEADER: &str = "X-Retell-Webhooks-Recovered";

/// Forwards stored events to one URL.
pub struct Forwarder {
    target: Target,
    url: String,
    key: String,
}

impl fmt::Debug for Forwarder {
    // The key is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarder")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder to `url` (http://), signing with `key`.
    pub fn new(url: &str, key: &str) -> Result<Self, String> {
        Ok(Self {
            target: Target::parse(url)?,
            url: url.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl RawHandler for Forwarder {
    type Error = String;

    async fn handle(&self, entry: &Leased) -> Result<(), String> {
        // A fresh timestamp: the app verifies it with Retell's own scheme
        // and window, whenever the attempt happens.
        let now_ms = common::now_ms().map_err(|_| "the system clock is before 1970".to_owned())?;
        let signature = retell_webhooks::sign(&entry.body, &self.key, now_ms);
        let key = entry.key.to_hex();
        let recovered = WebhookEvent::from_slice(&entry.body)
            .ok()
            .and_then(|event| event.recovered())
            .map(|mark| {
                mark.recovered_ms
                    .map_or_else(|| "1".to_owned(), |ms| ms.to_string())
            });
        let mut headers = vec![
            (SIGNATURE_HEADER, signature.as_str()),
            (IDEMPOTENCY_HEADER, key.as_str()),
        ];
        if let Some(at) = &recovered {
            headers.push((RECOVERED_HEADER, at.as_str()));
        }
        let sent = post_with(&self.target, entry.body.clone(), &headers).await;
        let event = entry.event.as_deref().map_or("-", common::printable_id);
        let attempt = entry.attempts + 1;
        let outcome = match &sent {
            Ok(answer) => answer.status_line(),
            Err(why) => format!("no answer: {}", common::escape_for_terminal(why.as_bytes())),
        };
        common::print(format_args!(
            "{} forward {event} {key:.12} attempt {attempt}: {outcome}",
            crate::listen::clock()
        ));
        match sent {
            Ok(answer) if answer.status.is_success() => Ok(()),
            Ok(answer) => Err(format!("the app answered {}", answer.status_line())),
            Err(why) => Err(format!("the app did not answer: {why}")),
        }
    }
}

/// Without `--forward`: prints each stored event as the worker processes it.
/// The demo makes it fail the first attempt of one event, as an outage of
/// the app's database would.
#[derive(Debug, Default)]
pub struct Printer {
    /// The event whose first attempt fails.
    pub fail_first: Option<&'static str>,
}

impl RawHandler for Printer {
    type Error = &'static str;

    async fn handle(&self, entry: &Leased) -> Result<(), Self::Error> {
        let event = entry.event.as_deref().map_or("-", common::printable_id);
        let attempt = entry.attempts + 1;
        let fails = attempt == 1 && self.fail_first.is_some_and(|name| name == event);
        common::print(format_args!(
            "{} worker {event} {:.12} attempt {attempt}: {}",
            crate::listen::clock(),
            entry.key.to_hex(),
            if fails {
                "failed (simulated outage of the app's database)"
            } else {
                "processed"
            }
        ));
        if fails {
            Err("simulated outage")
        } else {
            Ok(())
        }
    }
}
