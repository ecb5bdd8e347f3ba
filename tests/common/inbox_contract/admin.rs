//! What an operator sees and does: list, show, stats and prune.

use super::*;

pub async fn list_filters_by_state_and_time_and_limits(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    // Stored out of received order: a listing is by received time.
    let late = call_event("call_analyzed", "call_a", NOW + 20);
    let early = call_event("call_ended", "call_b", NOW);
    let middle = chat_event("chat_ended", "chat_c", NOW + 10);
    let broken = NewEntry::unreadable(b"{\"event\":7}", "event: invalid type", NOW + 30);
    for entry in [&late, &early, &middle, &broken] {
        insert(&*inbox, entry).await;
    }
    let all = inbox.list(ListFilter::default()).await.unwrap();
    let listed: Vec<_> = all.iter().map(|e| e.key).collect();
    assert_eq!(listed, vec![early.key, middle.key, late.key, broken.key]);
    let first = &all[0];
    assert_eq!(first.state, State::Ready);
    assert_eq!(first.event.as_deref(), Some("call_ended"));
    assert_eq!(first.order.as_deref(), Some("call:call_b"));
    assert_eq!(first.received_ms, NOW);
    assert_eq!(first.attempts, 0);
    assert_eq!(first.due_ms, None);
    assert_eq!(first.last_error, None);
    assert_eq!(first.body_len, early.body.len() as u64);
    let filter = |state, since_ms, limit| ListFilter {
        state,
        since_ms,
        limit,
    };
    let dead = inbox
        .list(filter(Some(State::Dead), None, 100))
        .await
        .unwrap();
    assert_eq!(
        dead.iter().map(|e| e.key).collect::<Vec<_>>(),
        vec![broken.key]
    );
    let since = inbox.list(filter(None, Some(NOW + 10), 100)).await.unwrap();
    assert_eq!(
        since.iter().map(|e| e.key).collect::<Vec<_>>(),
        vec![middle.key, late.key, broken.key]
    );
    let limited = inbox.list(filter(None, None, 2)).await.unwrap();
    assert_eq!(
        limited.iter().map(|e| e.key).collect::<Vec<_>>(),
        vec![early.key, middle.key]
    );
    let ready_since = inbox
        .list(filter(Some(State::Ready), Some(NOW + 1), 1))
        .await
        .unwrap();
    assert_eq!(
        ready_since.iter().map(|e| e.key).collect::<Vec<_>>(),
        vec![middle.key]
    );
    assert!(
        inbox
            .list(filter(Some(State::Leased), None, 100))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(inbox.list(filter(None, None, 0)).await.unwrap().is_empty());
    let leased = lease(&*inbox, 1, NOW + 40).await;
    let listed = inbox
        .list(filter(Some(State::Leased), None, 100))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, leased[0].key);
    assert_eq!(listed[0].due_ms, Some(NOW + 40 + LEASE_MS));
}

pub async fn show_returns_the_entry_and_its_body(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let entry = call_event("call_ended", "call_a", NOW);
    let binary = binary_entry(NOW + 1);
    insert(&*inbox, &entry).await;
    insert(&*inbox, &binary).await;
    let (listed, body) = shown(&*inbox, &entry.key).await;
    assert_eq!(body, entry.body);
    assert_eq!(listed.key, entry.key);
    assert_eq!(listed.event, entry.event);
    assert_eq!(listed.order, entry.order);
    assert_eq!(listed.body_len, entry.body.len() as u64);
    let (listed, body) = shown(&*inbox, &binary.key).await;
    assert_eq!(body, binary.body);
    assert_eq!((listed.event, listed.order), (None, None));
    assert_eq!(inbox.show(&DedupeKey::from_bytes([0; 32])).await, Ok(None));
    // `show` and `list` agree.
    let all = inbox.list(ListFilter::default()).await.unwrap();
    assert_eq!(all[1], shown(&*inbox, &binary.key).await.0);
}

pub async fn stats_count_each_state_and_the_oldest_ready_entry(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    assert_eq!(inbox.stats(NOW).await, Ok(Stats::default()));
    // Received +0 … +5; the first four are leased, then settled below.
    let entries: Vec<_> = (0..6)
        .map(|i| call_event("call_ended", &format!("call_{i}"), NOW + i))
        .collect();
    for entry in &entries {
        insert(&*inbox, entry).await;
    }
    assert_eq!(inbox.stats(NOW).await.unwrap().oldest_ready_ms, Some(NOW));
    let l = lease(&*inbox, 4, NOW + 10).await;
    assert!(inbox.ack(&l[0].key, l[0].token, NOW + 20).await.unwrap());
    assert!(
        inbox
            .fail(&l[1].key, l[1].token, dead("x"), NOW + 20)
            .await
            .unwrap()
    );
    assert!(
        inbox
            .fail(&l[2].key, l[2].token, retry_at(NOW + 1_000, "x"), NOW + 20)
            .await
            .unwrap()
    );
    let stats = inbox.stats(NOW + 30).await.unwrap();
    assert_eq!(
        stats,
        Stats {
            ready: 2,
            leased: 1,
            retry: 1,
            dead: 1,
            done: 1,
            oldest_ready_ms: Some(NOW + 4),
        }
    );
    for state in State::ALL {
        assert_eq!(
            stats.count(state),
            if state == State::Ready { 2 } else { 1 }
        );
    }
    // A released entry is ready again, and the oldest.
    assert!(inbox.release(&l[3].key, l[3].token).await.unwrap());
    assert_eq!(
        inbox.stats(NOW + 30).await.unwrap().oldest_ready_ms,
        Some(NOW + 3)
    );
}

pub async fn prune_deletes_only_done_entries_received_before_the_cutoff(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    // done +0, done +10, dead +0, retry +1, ready +2, leased +3.
    let old_done = call_event("call_ended", "call_a", NOW);
    let new_done = call_event("call_ended", "call_b", NOW + 10);
    let dead_one = call_event("call_ended", "call_c", NOW);
    let retry = call_event("call_ended", "call_d", NOW + 1);
    let ready = call_event("call_ended", "call_e", NOW + 2);
    let leased = call_event("call_ended", "call_f", NOW + 3);
    for entry in [&old_done, &new_done, &dead_one, &retry, &leased] {
        insert(&*inbox, entry).await;
    }
    let l = lease(&*inbox, 10, NOW + 20).await;
    assert_eq!(
        keys(&l),
        vec![
            old_done.key,
            new_done.key,
            dead_one.key,
            retry.key,
            leased.key
        ]
    );
    assert!(
        inbox
            .ack(&old_done.key, l[0].token, NOW + 30)
            .await
            .unwrap()
    );
    assert!(
        inbox
            .ack(&new_done.key, l[1].token, NOW + 30)
            .await
            .unwrap()
    );
    assert!(
        inbox
            .fail(&dead_one.key, l[2].token, dead("x"), NOW + 30)
            .await
            .unwrap()
    );
    assert!(
        inbox
            .fail(&retry.key, l[3].token, retry_at(NOW + 900, "x"), NOW + 30)
            .await
            .unwrap()
    );
    insert(&*inbox, &ready).await;
    assert_eq!(inbox.prune(NOW).await, Ok(0));
    assert_eq!(inbox.prune(NOW + 10).await, Ok(1));
    assert_eq!(inbox.show(&old_done.key).await, Ok(None));
    for entry in [&new_done, &dead_one, &retry, &ready, &leased] {
        assert!(inbox.show(&entry.key).await.unwrap().is_some());
    }
    assert_eq!(inbox.prune(NOW + 1_000_000).await, Ok(1));
    let stats = inbox.stats(NOW).await.unwrap();
    assert_eq!(
        (
            stats.done,
            stats.dead,
            stats.retry,
            stats.ready,
            stats.leased
        ),
        (0, 1, 1, 1, 1)
    );
    // A pruned event is forgotten: a copy of it is stored again.
    assert_eq!(inbox.insert(old_done.clone()).await, Ok(Inserted::Stored));
}

/// What a backfill asks before it synthesizes an event: is its key stored,
/// in any state? A pruned entry is not.
pub async fn contains_sees_every_state_until_pruned(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let ready = call_event("call_ended", "call_r", NOW);
    let done = call_event("call_ended", "call_d", NOW);
    let dead = NewEntry::unreadable(b"{\"event\":7}", "event: invalid type", NOW);
    for entry in [&ready, &done, &dead] {
        insert(&*inbox, entry).await;
    }
    let leased = lease(&*inbox, 10, NOW + 1).await;
    let held = leased.iter().find(|l| l.key == done.key).unwrap();
    assert!(inbox.ack(&held.key, held.token, NOW + 2).await.unwrap());
    for key in [ready.key, done.key, dead.key] {
        assert_eq!(inbox.contains(&key).await, Ok(true));
    }
    let absent = call_event("call_analyzed", "call_r", NOW);
    assert_eq!(inbox.contains(&absent.key).await, Ok(false));
    assert_eq!(inbox.prune(NOW + 1).await, Ok(1));
    assert_eq!(inbox.contains(&done.key).await, Ok(false));
    assert_eq!(inbox.contains(&ready.key).await, Ok(true));
}

/// A backfill's watermarks: absent until set, kept by name, raised and
/// never lowered (two backfills racing each keep what they stored).
pub async fn watermarks_are_kept_by_name_and_never_go_back(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    assert_eq!(inbox.watermark("calls").await, Ok(None));
    assert_eq!(inbox.advance_watermark("calls", NOW).await, Ok(NOW));
    assert_eq!(inbox.advance_watermark("calls", NOW - 5).await, Ok(NOW));
    assert_eq!(inbox.watermark("calls").await, Ok(Some(NOW)));
    assert_eq!(inbox.advance_watermark("chats", 7).await, Ok(7));
    assert_eq!(inbox.advance_watermark("calls", NOW + 9).await, Ok(NOW + 9));
    assert_eq!(inbox.watermark("calls").await, Ok(Some(NOW + 9)));
    assert_eq!(inbox.watermark("chats").await, Ok(Some(7)));
    // Events and watermarks do not mix: a prune keeps every watermark.
    assert_eq!(inbox.prune(u64::MAX).await, Ok(0));
    assert_eq!(inbox.watermark("chats").await, Ok(Some(7)));
}
