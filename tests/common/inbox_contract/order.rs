//! Per-call order: a call's events reach the handler in the order received.

use super::*;

pub async fn per_call_order_holds_a_calls_later_events(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let ended = call_event("call_ended", "call_a", NOW);
    let analyzed = call_event("call_analyzed", "call_a", NOW + 1);
    let other = call_event("call_ended", "call_b", NOW + 2);
    for entry in [&ended, &analyzed, &other] {
        insert(&*inbox, entry).await;
    }
    let first = lease(&*inbox, 10, NOW).await;
    assert_eq!(keys(&first), vec![ended.key, other.key]);
    assert!(lease(&*inbox, 10, NOW).await.is_empty());
    assert!(
        inbox
            .ack(&other.key, first[1].token, NOW + 5)
            .await
            .unwrap()
    );
    // While `call_ended` waits for its retry, `call_analyzed` waits too.
    let due = NOW + 60_000;
    assert!(
        inbox
            .fail(
                &ended.key,
                first[0].token,
                retry_at(due, "crm down"),
                NOW + 5
            )
            .await
            .unwrap()
    );
    assert!(lease(&*inbox, 10, NOW + 5).await.is_empty());
    assert!(lease(&*inbox, 10, due - 1).await.is_empty());
    let retried = lease_one(&*inbox, &ended, due).await;
    // An expired lease still holds its call back, and is leased again.
    let expired = lease_one(&*inbox, &ended, due + LEASE_MS).await;
    assert_ne!(retried.token, expired.token);
    assert!(
        inbox
            .ack(&ended.key, expired.token, due + LEASE_MS + 1)
            .await
            .unwrap()
    );
    let next = lease_one(&*inbox, &analyzed, due + LEASE_MS + 1).await;
    assert_eq!(next.attempts, 0);
}

pub async fn a_dead_event_lets_its_calls_later_events_go(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let ended = call_event("call_ended", "call_a", NOW);
    let analyzed = call_event("call_analyzed", "call_a", NOW + 1);
    insert(&*inbox, &ended).await;
    insert(&*inbox, &analyzed).await;
    let leased = lease_one(&*inbox, &ended, NOW).await;
    assert!(
        inbox
            .fail(&ended.key, leased.token, dead("bad data"), NOW + 1)
            .await
            .unwrap()
    );
    let next = lease_one(&*inbox, &analyzed, NOW + 2).await;
    // Replayed while `call_analyzed` runs. The docs allow both: leased at
    // once, back in its place (`SqliteInbox`), or once the later event that
    // went ahead is settled (`RedisInbox`); never twice.
    assert_eq!(inbox.replay(Replay::Key(ended.key), NOW + 3).await, Ok(1));
    let at_once = lease(&*inbox, 10, NOW + 4).await;
    assert!(inbox.ack(&analyzed.key, next.token, NOW + 5).await.unwrap());
    if at_once.is_empty() {
        lease_one(&*inbox, &ended, NOW + 6).await;
    } else {
        assert_eq!(keys(&at_once), vec![ended.key]);
        assert!(lease(&*inbox, 10, NOW + 6).await.is_empty());
    }
}

pub async fn per_call_order_holds_up_no_other_call(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let mut entries = Vec::new();
    for (i, call) in ["call_a", "call_b", "call_c"].iter().enumerate() {
        let at = NOW + 10 * i as u64;
        entries.push(call_event("call_started", call, at));
        entries.push(call_event("call_ended", call, at + 1));
    }
    entries.push(chat_event("chat_ended", "chat_a", NOW + 40));
    entries.push(chat_event("chat_analyzed", "chat_a", NOW + 41));
    // Ordered with nothing.
    entries.push(binary_entry(NOW + 50));
    for entry in &entries {
        insert(&*inbox, entry).await;
    }
    assert_eq!(entries[6].order.as_deref(), Some("chat:chat_a"));
    let firsts: Vec<_> = [0, 2, 4, 6, 8].iter().map(|&i| entries[i].key).collect();
    let leased = lease(&*inbox, 100, NOW + 60).await;
    assert_eq!(keys(&leased), firsts);
    for l in &leased {
        assert!(inbox.ack(&l.key, l.token, NOW + 70).await.unwrap());
    }
    let seconds: Vec<_> = [1, 3, 5, 7].iter().map(|&i| entries[i].key).collect();
    assert_eq!(keys(&lease(&*inbox, 100, NOW + 70).await), seconds);
}

pub async fn without_per_call_order_a_calls_events_lease_at_once(stores: &dyn Stores) {
    let inbox = stores.fresh(false).await;
    let ended = call_event("call_ended", "call_a", NOW);
    let analyzed = call_event("call_analyzed", "call_a", NOW + 1);
    insert(&*inbox, &ended).await;
    insert(&*inbox, &analyzed).await;
    let leased = lease(&*inbox, 10, NOW).await;
    assert_eq!(keys(&leased), vec![ended.key, analyzed.key]);
    // A retry holds nothing back either.
    assert!(
        inbox
            .fail(
                &ended.key,
                leased[0].token,
                retry_at(NOW + 60_000, "x"),
                NOW
            )
            .await
            .unwrap()
    );
    assert!(
        inbox
            .ack(&analyzed.key, leased[1].token, NOW)
            .await
            .unwrap()
    );
    let later = call_event("call_started", "call_a", NOW + 2);
    insert(&*inbox, &later).await;
    lease_one(&*inbox, &later, NOW + 3).await;
}
