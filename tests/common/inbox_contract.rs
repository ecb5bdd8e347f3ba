//! What every `Inbox` store must do, whatever it keeps entries in: each case
//! is a `pub async fn` taking a [`Stores`] that makes fresh, empty stores,
//! so the same cases run against `SqliteInbox` (`tests/sqlite_inbox.rs`)
//! and any other store. [`for_each_case!`] names them all, so a test file
//! cannot leave one out: it passes the name of a macro of its own that
//! turns each into a test (a `#[tokio::test]`, or a libtest-mimic `Trial`).
//!
//! The cases live in `inbox_contract/`: lease life cycle, failures and
//! replay, per-call order, and the operator's calls. Time is the `now_ms`
//! given to each call: the cases never sleep.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use retell_webhooks::WebhookEvent;
use retell_webhooks::dedupe::DedupeKey;
use retell_webhooks::inbox::{
    Entry, Failure, Inbox, Inserted, LeaseRequest, Leased, ListFilter, NewEntry, Replay, State,
    Stats, StoreFuture,
};

/// Makes the stores of one case.
pub trait Stores: Sync {
    /// A new, empty store, keeping per-call order or not.
    fn fresh(&self, per_call_order: bool) -> StoreFuture<'_, Arc<dyn Inbox>>;
}

/// Calls `$run!` with the name of every case (each a function of this
/// module taking `&dyn Stores`).
macro_rules! for_each_case {
    ($run:ident) => {
        $run! {
            insert_then_duplicate,
            a_duplicate_of_a_done_or_dead_entry_changes_nothing,
            lease_hands_out_the_exact_body_with_no_attempts,
            a_leased_entry_is_not_leased_again_before_its_lease_ends,
            an_expired_lease_is_leased_again_and_the_old_token_is_void,
            extend_keeps_the_lease_past_its_first_expiry,
            a_failure_with_a_retry_time_waits_for_it_and_counts_the_attempt,
            a_failure_without_a_retry_time_makes_a_dead_letter,
            an_unreadable_body_is_stored_as_a_dead_letter,
            release_makes_it_ready_at_once_without_an_attempt,
            replay_of_a_key,
            replay_of_dead_letters_since,
            replay_of_a_received_range,
            per_call_order_holds_a_calls_later_events,
            a_dead_event_lets_its_calls_later_events_go,
            per_call_order_holds_up_no_other_call,
            without_per_call_order_a_calls_events_lease_at_once,
            list_filters_by_state_and_time_and_limits,
            show_returns_the_entry_and_its_body,
            stats_count_each_state_and_the_oldest_ready_entry,
            prune_deletes_only_done_entries_received_before_the_cutoff,
            lease_hands_out_at_most_max_oldest_first,
            a_wrong_token_or_an_unknown_key_settles_nothing,
            contains_sees_every_state_until_pruned,
            watermarks_are_kept_by_name_and_never_go_back,
        }
    };
}

#[path = "inbox_contract/admin.rs"]
mod admin;
#[path = "inbox_contract/failures.rs"]
mod failures;
#[path = "inbox_contract/lifecycle.rs"]
mod lifecycle;
#[path = "inbox_contract/order.rs"]
mod order;

pub use admin::*;
pub use failures::*;
pub use lifecycle::*;
pub use order::*;

/// Sunday 2026-07-26, 10:41:40 UTC: the cases' clock starts here.
pub const NOW: u64 = 1_785_062_500_000;
/// The lease every case asks for.
pub const LEASE: Duration = Duration::from_secs(30);
const LEASE_MS: u64 = 30_000;

/// A `call_*` event as Retell sends it (shortened), stored as the receiver
/// stores it.
pub fn call_event(event: &str, call_id: &str, received_ms: u64) -> NewEntry {
    let body = format!(
        r#"{{"event":"{event}","call":{{"call_id":"{call_id}","call_type":"phone_call","agent_id":"agent_3f9c2b7e4a1d8c6b5e0f2a9d7c","agent_version":7,"call_status":"ended","start_timestamp":1785062400000,"end_timestamp":1785062442310,"duration_ms":42310,"direction":"inbound","from_number":"+14155550101","to_number":"+14155550199","disconnection_reason":"user_hangup","transcript":"Agent: Harbor Dental, how can I help?\nUser: I'd like to move my cleaning to Tuesday — café hours?\n","metadata":{{"crm_contact_id":"cnt_20931"}}}}}}"#
    );
    entry_of(body.as_bytes(), received_ms)
}

/// A `chat_*` event.
pub fn chat_event(event: &str, chat_id: &str, received_ms: u64) -> NewEntry {
    let body = format!(
        r#"{{"event":"{event}","chat":{{"chat_id":"{chat_id}","agent_id":"agent_6d1b8f3e0a5c7e9b2d4f6a8c1e","chat_status":"ended","chat_type":"sms_chat","start_timestamp":1785062400000,"metadata":{{"crm_contact_id":"cnt_20931"}}}}}}"#
    );
    entry_of(body.as_bytes(), received_ms)
}

fn entry_of(body: &[u8], received_ms: u64) -> NewEntry {
    let event = WebhookEvent::from_slice(body).expect("the test body parses");
    NewEntry::for_event(&event, body, received_ms)
}

/// Every byte value, invalid UTF-8 and NULs included: a store keeps bytes,
/// not text.
pub fn binary_entry(received_ms: u64) -> NewEntry {
    let mut body: Vec<u8> = (0..=255u8).collect();
    body.extend_from_slice(b"\0\xff\xfe{\"event\":\0}");
    body.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    NewEntry {
        key: DedupeKey::of_body(&body),
        body,
        event: None,
        order: None,
        received_ms,
        dead_reason: None,
    }
}

pub fn request(max: usize, now_ms: u64) -> LeaseRequest {
    LeaseRequest {
        max,
        lease: LEASE,
        now_ms,
        consumer: "worker-a".to_owned(),
    }
}

pub async fn insert(inbox: &dyn Inbox, entry: &NewEntry) {
    assert_eq!(inbox.insert(entry.clone()).await, Ok(Inserted::Stored));
}

pub async fn lease(inbox: &dyn Inbox, max: usize, now_ms: u64) -> Vec<Leased> {
    inbox.lease(request(max, now_ms)).await.expect("lease")
}

/// Leases exactly the entry `entry` (and nothing else) at `now_ms`.
pub async fn lease_one(inbox: &dyn Inbox, entry: &NewEntry, now_ms: u64) -> Leased {
    let mut leased = lease(inbox, 10, now_ms).await;
    assert_eq!(keys(&leased), vec![entry.key], "leased {leased:?}");
    leased.remove(0)
}

pub fn keys(leased: &[Leased]) -> Vec<DedupeKey> {
    leased.iter().map(|l| l.key).collect()
}

pub async fn shown(inbox: &dyn Inbox, key: &DedupeKey) -> (Entry, Vec<u8>) {
    inbox
        .show(key)
        .await
        .expect("show")
        .expect("the entry is stored")
}

pub async fn state(inbox: &dyn Inbox, key: &DedupeKey) -> State {
    shown(inbox, key).await.0.state
}

pub fn retry_at(at: u64, error: &str) -> Failure {
    Failure {
        error: error.to_owned(),
        retry_at_ms: Some(at),
    }
}

pub fn dead(error: &str) -> Failure {
    Failure {
        error: error.to_owned(),
        retry_at_ms: None,
    }
}
