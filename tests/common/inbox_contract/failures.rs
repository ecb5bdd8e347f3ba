//! Failed attempts, dead letters, release and replay.

use super::*;

pub async fn a_failure_with_a_retry_time_waits_for_it_and_counts_the_attempt(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let entry = call_event("call_analyzed", "call_a", NOW);
    insert(&*inbox, &entry).await;
    let first = lease_one(&*inbox, &entry, NOW).await;
    let due = NOW + 60_000;
    assert!(
        inbox
            .fail(
                &entry.key,
                first.token,
                retry_at(due, "database unavailable"),
                NOW + 100
            )
            .await
            .unwrap()
    );
    let (listed, _) = shown(&*inbox, &entry.key).await;
    assert_eq!(listed.state, State::Retry);
    assert_eq!(listed.attempts, 1);
    assert_eq!(listed.due_ms, Some(due));
    assert_eq!(listed.last_error.as_deref(), Some("database unavailable"));
    assert_eq!(inbox.stats(NOW + 100).await.unwrap().retry, 1);
    assert!(lease(&*inbox, 10, NOW + 100).await.is_empty());
    assert!(lease(&*inbox, 10, due - 1).await.is_empty());
    // The old token is spent.
    assert!(!inbox.ack(&entry.key, first.token, due).await.unwrap());
    let second = lease_one(&*inbox, &entry, due).await;
    assert_eq!(second.attempts, 1);
    assert_eq!(second.body, entry.body);
    let due2 = due + 120_000;
    assert!(
        inbox
            .fail(
                &entry.key,
                second.token,
                retry_at(due2, "timed out"),
                due + 10
            )
            .await
            .unwrap()
    );
    let third = lease_one(&*inbox, &entry, due2 + 5_000).await;
    assert_eq!(third.attempts, 2);
    assert_eq!(
        shown(&*inbox, &entry.key).await.0.last_error.as_deref(),
        Some("timed out")
    );
    assert!(
        inbox
            .ack(&entry.key, third.token, due2 + 6_000)
            .await
            .unwrap()
    );
    assert_eq!(shown(&*inbox, &entry.key).await.0.attempts, 2);
}

pub async fn a_failure_without_a_retry_time_makes_a_dead_letter(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let entry = call_event("call_ended", "call_a", NOW);
    insert(&*inbox, &entry).await;
    let leased = lease_one(&*inbox, &entry, NOW).await;
    assert!(
        inbox
            .fail(&entry.key, leased.token, dead("handler panicked"), NOW + 10)
            .await
            .unwrap()
    );
    let (listed, body) = shown(&*inbox, &entry.key).await;
    assert_eq!(listed.state, State::Dead);
    assert_eq!(listed.attempts, 1);
    assert_eq!(listed.due_ms, None);
    assert_eq!(listed.last_error.as_deref(), Some("handler panicked"));
    assert_eq!(body, entry.body);
    assert!(lease(&*inbox, 10, NOW + 86_400_000).await.is_empty());
    assert!(!inbox.release(&entry.key, leased.token).await.unwrap());
    assert_eq!(inbox.stats(NOW).await.unwrap().dead, 1);
}

pub async fn an_unreadable_body_is_stored_as_a_dead_letter(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let body = b"{\"event\":\"call_ended\",\"call\":{\"call_id\":42}}";
    let entry = NewEntry::unreadable(body, "call.call_id: invalid type: integer", NOW);
    assert_eq!(inbox.insert(entry.clone()).await, Ok(Inserted::Stored));
    let (listed, stored) = shown(&*inbox, &entry.key).await;
    assert_eq!(stored, body);
    assert_eq!(listed.state, State::Dead);
    assert_eq!(listed.attempts, 0);
    assert_eq!(listed.event, None);
    assert_eq!(
        listed.last_error.as_deref(),
        Some("call.call_id: invalid type: integer")
    );
    assert!(lease(&*inbox, 10, NOW + 1_000).await.is_empty());
    let stats = inbox.stats(NOW).await.unwrap();
    assert_eq!(
        (stats.dead, stats.ready, stats.oldest_ready_ms),
        (1, 0, None)
    );
}

pub async fn release_makes_it_ready_at_once_without_an_attempt(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let entry = call_event("call_ended", "call_a", NOW);
    insert(&*inbox, &entry).await;
    let first = lease_one(&*inbox, &entry, NOW).await;
    assert!(
        inbox
            .fail(&entry.key, first.token, retry_at(NOW + 1_000, "busy"), NOW)
            .await
            .unwrap()
    );
    let second = lease_one(&*inbox, &entry, NOW + 1_000).await;
    assert_eq!(second.attempts, 1);
    // The worker shuts down mid-lease and gives the entry back.
    assert!(inbox.release(&entry.key, second.token).await.unwrap());
    let (listed, _) = shown(&*inbox, &entry.key).await;
    assert_eq!(
        (listed.state, listed.attempts, listed.due_ms),
        (State::Ready, 1, None)
    );
    assert!(!inbox.release(&entry.key, second.token).await.unwrap());
    assert!(
        !inbox
            .ack(&entry.key, second.token, NOW + 1_001)
            .await
            .unwrap()
    );
    // Ready at once, well before the lease would have ended.
    let third = lease_one(&*inbox, &entry, NOW + 1_001).await;
    assert_eq!(third.attempts, 1);
    assert_ne!(third.token, second.token);
}

pub async fn replay_of_a_key(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let done = call_event("call_ended", "call_a", NOW);
    let failed = call_event("call_ended", "call_b", NOW + 1);
    let running = call_event("call_ended", "call_c", NOW + 2);
    for entry in [&done, &failed, &running] {
        insert(&*inbox, entry).await;
    }
    let leased = lease(&*inbox, 10, NOW).await;
    assert!(inbox.ack(&done.key, leased[0].token, NOW).await.unwrap());
    assert!(
        inbox
            .fail(&failed.key, leased[1].token, dead("bug"), NOW)
            .await
            .unwrap()
    );
    let later = NOW + 3_600_000;
    // A leased entry is left to its worker, even an expired lease.
    assert_eq!(inbox.replay(Replay::Key(running.key), later).await, Ok(0));
    assert_eq!(state(&*inbox, &running.key).await, State::Leased);
    assert_eq!(
        inbox
            .replay(Replay::Key(DedupeKey::from_bytes([7; 32])), later)
            .await,
        Ok(0)
    );
    for entry in [&done, &failed] {
        assert_eq!(inbox.replay(Replay::Key(entry.key), later).await, Ok(1));
        let (listed, body) = shown(&*inbox, &entry.key).await;
        assert_eq!((listed.state, listed.attempts), (State::Ready, 0));
        assert_eq!(body, entry.body);
    }
    // The expired lease of `running` is due too.
    let again = lease(&*inbox, 10, later).await;
    let mut got: Vec<_> = keys(&again);
    got.sort();
    let mut want = vec![done.key, failed.key, running.key];
    want.sort();
    assert_eq!(got, want);
    assert!(again.iter().all(|l| l.attempts == 0));
}

pub async fn replay_of_dead_letters_since(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    let entries: Vec<_> = (0..4)
        .map(|i| call_event("call_ended", &format!("call_{i}"), NOW + i * 10))
        .collect();
    for entry in &entries {
        insert(&*inbox, entry).await;
    }
    let leased = lease(&*inbox, 10, NOW).await;
    assert_eq!(
        keys(&leased),
        entries.iter().map(|e| e.key).collect::<Vec<_>>()
    );
    // Three dead letters (received at +0, +10, +20) and one done entry.
    for l in &leased[..3] {
        assert!(
            inbox
                .fail(&l.key, l.token, dead("bug 17"), NOW + 50)
                .await
                .unwrap()
        );
    }
    assert!(
        inbox
            .ack(&leased[3].key, leased[3].token, NOW + 50)
            .await
            .unwrap()
    );
    let since = Replay::Dead {
        since_ms: Some(NOW + 10),
    };
    assert_eq!(inbox.replay(since, NOW + 100).await, Ok(2));
    assert_eq!(state(&*inbox, &entries[0].key).await, State::Dead);
    assert_eq!(state(&*inbox, &entries[1].key).await, State::Ready);
    assert_eq!(state(&*inbox, &entries[2].key).await, State::Ready);
    assert_eq!(state(&*inbox, &entries[3].key).await, State::Done);
    assert_eq!(
        inbox
            .replay(Replay::Dead { since_ms: None }, NOW + 100)
            .await,
        Ok(1)
    );
    assert_eq!(
        inbox
            .replay(Replay::Dead { since_ms: None }, NOW + 100)
            .await,
        Ok(0)
    );
    let again = lease(&*inbox, 10, NOW + 100).await;
    assert_eq!(
        keys(&again),
        entries[..3].iter().map(|e| e.key).collect::<Vec<_>>()
    );
    assert!(again.iter().all(|l| l.attempts == 0));
    let stats = inbox.stats(NOW + 100).await.unwrap();
    assert_eq!((stats.dead, stats.leased, stats.done), (0, 3, 1));
}

pub async fn replay_of_a_received_range(stores: &dyn Stores) {
    let inbox = stores.fresh(true).await;
    // Received at +0 … +5, then brought to: done, dead, retry, leased, done, ready.
    let entries: Vec<_> = (0..6)
        .map(|i| call_event("call_analyzed", &format!("call_{i}"), NOW + i))
        .collect();
    for entry in &entries {
        insert(&*inbox, entry).await;
    }
    let l = lease(&*inbox, 5, NOW + 10).await;
    assert_eq!(l.len(), 5);
    assert!(inbox.ack(&l[0].key, l[0].token, NOW + 20).await.unwrap());
    assert!(
        inbox
            .fail(&l[1].key, l[1].token, dead("bug"), NOW + 20)
            .await
            .unwrap()
    );
    assert!(
        inbox
            .fail(
                &l[2].key,
                l[2].token,
                retry_at(NOW + 600_000, "bug"),
                NOW + 20
            )
            .await
            .unwrap()
    );
    assert!(inbox.ack(&l[4].key, l[4].token, NOW + 20).await.unwrap());
    let range = Replay::Received {
        from_ms: NOW + 1,
        to_ms: NOW + 5,
    };
    // +1 dead, +2 retry, +4 done; not +3 (leased), not +0 or +5 (outside).
    assert_eq!(inbox.replay(range, NOW + 30).await, Ok(3));
    let states = [
        State::Done,
        State::Ready,
        State::Ready,
        State::Leased,
        State::Ready,
        State::Ready,
    ];
    for (entry, want) in entries.iter().zip(states) {
        assert_eq!(
            state(&*inbox, &entry.key).await,
            want,
            "{:?}",
            entry.received_ms
        );
    }
    assert_eq!(shown(&*inbox, &entries[2].key).await.0.attempts, 0);
    let again = lease(&*inbox, 10, NOW + 30).await;
    let want: Vec<_> = [1, 2, 4, 5].iter().map(|&i| entries[i].key).collect();
    assert_eq!(keys(&again), want);
}
