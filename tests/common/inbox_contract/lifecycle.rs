//! Insert, lease, extend and ack: deduplication, exact bodies, leases and
//! their tokens.

use super::*;

pub async fn insert_then_duplicate(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let entry = call_event("call_ended", "call_a", NOW);
    assert_eq!(inbox.insert(entry.clone()).await, Ok(Inserted::Stored));
    // Retell's retry of the same event: same key, maybe other bytes and time.
    let mut retry = entry.clone();
    retry.body.extend_from_slice(b"  ");
    retry.received_ms = NOW + 2_000;
    retry.event = Some("call_analyzed".to_owned());
    assert_eq!(inbox.insert(retry).await, Ok(Inserted::Duplicate));
    assert_eq!(inbox.insert(entry.clone()).await, Ok(Inserted::Duplicate));
    let (stored, body) = shown(&*inbox, &entry.key).await;
    assert_eq!(body, entry.body);
    assert_eq!(stored.received_ms, NOW);
    assert_eq!(stored.event.as_deref(), Some("call_ended"));
    assert_eq!(stored.state, State::Ready);
    let stats = inbox.stats(NOW).await.unwrap();
    assert_eq!((stats.ready, stats.count(State::Ready)), (1, 1));
    assert_eq!(lease(&*inbox, 10, NOW).await.len(), 1);
}

pub async fn a_duplicate_of_a_done_or_dead_entry_changes_nothing(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let done = call_event("call_ended", "call_a", NOW);
    let failed = call_event("call_ended", "call_b", NOW + 1);
    let unreadable = NewEntry::unreadable(
        b"{\"event\":\"call_ended\",\"call\":7}",
        "call: invalid type",
        NOW + 2,
    );
    for entry in [&done, &failed, &unreadable] {
        insert(&*inbox, entry).await;
    }
    let leased = lease(&*inbox, 10, NOW).await;
    assert_eq!(keys(&leased), vec![done.key, failed.key]);
    assert!(
        inbox
            .ack(&done.key, leased[0].token, NOW + 10)
            .await
            .unwrap()
    );
    assert!(
        inbox
            .fail(
                &failed.key,
                leased[1].token,
                dead("no such customer"),
                NOW + 10
            )
            .await
            .unwrap()
    );
    let before = (
        shown(&*inbox, &done.key).await,
        shown(&*inbox, &failed.key).await,
        shown(&*inbox, &unreadable.key).await,
    );
    for entry in [&done, &failed, &unreadable] {
        assert_eq!(inbox.insert(entry.clone()).await, Ok(Inserted::Duplicate));
    }
    let after = (
        shown(&*inbox, &done.key).await,
        shown(&*inbox, &failed.key).await,
        shown(&*inbox, &unreadable.key).await,
    );
    assert_eq!(before, after);
    assert_eq!(before.0.0.state, State::Done);
    assert_eq!(before.1.0.state, State::Dead);
    assert_eq!(before.2.0.state, State::Dead);
    assert!(lease(&*inbox, 10, NOW + 100).await.is_empty());
    let stats = inbox.stats(NOW + 100).await.unwrap();
    assert_eq!((stats.ready, stats.done, stats.dead), (0, 1, 2));
}

pub async fn lease_hands_out_the_exact_body_with_no_attempts(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let ended = call_event("call_ended", "call_a", NOW);
    let binary = binary_entry(NOW + 1);
    insert(&*inbox, &ended).await;
    insert(&*inbox, &binary).await;
    let leased = lease(&*inbox, 10, NOW + 5).await;
    assert_eq!(keys(&leased), vec![ended.key, binary.key]);
    for (leased, entry) in leased.iter().zip([&ended, &binary]) {
        assert_eq!(leased.body, entry.body);
        assert_eq!(leased.attempts, 0);
        assert_eq!(leased.event, entry.event);
        assert_eq!(leased.received_ms, entry.received_ms);
    }
    assert_eq!(leased[0].event.as_deref(), Some("call_ended"));
    assert_ne!(leased[0].token, leased[1].token);
    assert_eq!(shown(&*inbox, &binary.key).await.1, binary.body);
}

pub async fn lease_hands_out_at_most_max_oldest_first(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let entries: Vec<_> = (0..7)
        .map(|i| call_event("call_started", &format!("call_{i}"), NOW + i))
        .collect();
    for entry in &entries {
        insert(&*inbox, entry).await;
    }
    let all: Vec<_> = entries.iter().map(|e| e.key).collect();
    assert!(lease(&*inbox, 0, NOW + 10).await.is_empty());
    assert_eq!(keys(&lease(&*inbox, 3, NOW + 10).await), all[..3]);
    assert_eq!(keys(&lease(&*inbox, 1, NOW + 10).await), all[3..4]);
    assert_eq!(keys(&lease(&*inbox, 10, NOW + 10).await), all[4..]);
    assert!(lease(&*inbox, 10, NOW + 10).await.is_empty());
    // Every token differs.
    let expired = lease(&*inbox, 10, NOW + 10 + LEASE_MS).await;
    assert_eq!(keys(&expired), all);
    let tokens: HashSet<_> = expired.iter().map(|l| l.token).collect();
    assert_eq!(tokens.len(), 7);
}

pub async fn a_leased_entry_is_not_leased_again_before_its_lease_ends(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let entry = call_event("call_ended", "call_a", NOW);
    insert(&*inbox, &entry).await;
    lease_one(&*inbox, &entry, NOW).await;
    assert!(lease(&*inbox, 10, NOW).await.is_empty());
    assert!(lease(&*inbox, 10, NOW + LEASE_MS - 1).await.is_empty());
    let (listed, _) = shown(&*inbox, &entry.key).await;
    assert_eq!(listed.state, State::Leased);
    assert_eq!(listed.due_ms, Some(NOW + LEASE_MS));
    assert_eq!(inbox.stats(NOW).await.unwrap().leased, 1);
}

pub async fn an_expired_lease_is_leased_again_and_the_old_token_is_void(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let entry = call_event("call_ended", "call_a", NOW);
    insert(&*inbox, &entry).await;
    let first = lease_one(&*inbox, &entry, NOW).await;
    // The worker died: its lease ends, and another worker takes the entry.
    let second = lease_one(&*inbox, &entry, NOW + LEASE_MS).await;
    assert_ne!(first.token, second.token);
    assert_eq!(
        second.attempts, 0,
        "an expired lease is not a failed attempt"
    );
    assert_eq!(second.body, entry.body);
    let later = NOW + LEASE_MS + 10;
    let key = &entry.key;
    assert!(!inbox.ack(key, first.token, later).await.unwrap());
    assert!(
        !inbox
            .fail(key, first.token, dead("late"), later)
            .await
            .unwrap()
    );
    assert!(
        !inbox
            .fail(key, first.token, retry_at(later, "late"), later)
            .await
            .unwrap()
    );
    assert!(!inbox.extend(key, first.token, LEASE, later).await.unwrap());
    assert!(!inbox.release(key, first.token).await.unwrap());
    let (listed, _) = shown(&*inbox, key).await;
    assert_eq!((listed.state, listed.attempts), (State::Leased, 0));
    assert_eq!(listed.due_ms, Some(NOW + 2 * LEASE_MS));
    assert!(inbox.ack(key, second.token, later).await.unwrap());
    assert_eq!(state(&*inbox, key).await, State::Done);
}

pub async fn extend_keeps_the_lease_past_its_first_expiry(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let entry = call_event("call_ended", "call_a", NOW);
    insert(&*inbox, &entry).await;
    let leased = lease_one(&*inbox, &entry, NOW).await;
    assert!(
        inbox
            .extend(&entry.key, leased.token, LEASE, NOW + 20_000)
            .await
            .unwrap()
    );
    assert_eq!(
        shown(&*inbox, &entry.key).await.0.due_ms,
        Some(NOW + 50_000)
    );
    assert!(lease(&*inbox, 10, NOW + LEASE_MS).await.is_empty());
    assert!(lease(&*inbox, 10, NOW + 49_999).await.is_empty());
    assert!(
        inbox
            .extend(&entry.key, leased.token, LEASE, NOW + 40_000)
            .await
            .unwrap()
    );
    assert!(lease(&*inbox, 10, NOW + 69_999).await.is_empty());
    assert!(
        inbox
            .ack(&entry.key, leased.token, NOW + 60_000)
            .await
            .unwrap()
    );
}

pub async fn a_wrong_token_or_an_unknown_key_settles_nothing(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let entry = call_event("call_ended", "call_a", NOW);
    insert(&*inbox, &entry).await;
    let unknown = DedupeKey::from_bytes([9; 32]);
    // Not leased yet: no token holds it.
    assert!(!inbox.ack(&entry.key, 1, NOW).await.unwrap());
    let leased = lease_one(&*inbox, &entry, NOW).await;
    let wrong = leased.token.wrapping_add(1);
    for key in [&entry.key, &unknown] {
        let token = if *key == entry.key {
            wrong
        } else {
            leased.token
        };
        assert!(!inbox.ack(key, token, NOW).await.unwrap());
        assert!(!inbox.fail(key, token, dead("x"), NOW).await.unwrap());
        assert!(!inbox.extend(key, token, LEASE, NOW).await.unwrap());
        assert!(!inbox.release(key, token).await.unwrap());
    }
    let (listed, _) = shown(&*inbox, &entry.key).await;
    assert_eq!((listed.state, listed.attempts), (State::Leased, 0));
    assert_eq!(inbox.show(&unknown).await, Ok(None));
    assert!(inbox.ack(&entry.key, leased.token, NOW).await.unwrap());
    // Settled once: the token holds nothing any more.
    assert!(!inbox.ack(&entry.key, leased.token, NOW).await.unwrap());
    assert!(!inbox.release(&entry.key, leased.token).await.unwrap());
    assert_eq!(state(&*inbox, &entry.key).await, State::Done);
}
