//! The table of open connections by source, and the choice of the one to
//! shed: plain data, no sockets, so the policy is tested on its own.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One open connection.
struct Entry<H> {
    source: IpAddr,
    exempt: bool,
    /// Set once a request on it carried a valid signature.
    verified: Arc<AtomicBool>,
    /// What stops it (a channel to its task; anything in the tests).
    handle: H,
}

impl<H> Entry<H> {
    fn verified(&self) -> bool {
        self.verified.load(Ordering::Relaxed)
    }
}

/// A connection taken out of the table to make room: stop it.
#[derive(Debug)]
pub(crate) struct Shed<H> {
    pub(crate) handle: H,
    /// Whether it had delivered a verified request: such a connection is let
    /// finish the request it is on; any other is dropped at once.
    pub(crate) verified: bool,
}

/// What [`Connections::admit`] decided.
#[derive(Debug)]
pub(crate) enum Admission<H> {
    /// The connection is in, under this id; stop `shed`, if any, to make room.
    Admitted { id: u64, shed: Option<Shed<H>> },
    /// Nothing could make room: close the new connection.
    Refused,
}

/// The open connections, oldest first (ids only grow), with a count per
/// source.
pub(crate) struct Connections<H> {
    entries: BTreeMap<u64, Entry<H>>,
    per_source: HashMap<IpAddr, usize>,
    next_id: u64,
    max: usize,
    max_per_source: usize,
}

impl<H> Connections<H> {
    pub(crate) fn new(max: usize, max_per_source: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            per_source: HashMap::new(),
            next_id: 0,
            max: max.max(1),
            max_per_source: max_per_source.max(1),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Admits a connection from `source`, shedding one to make room if need
    /// be:
    ///
    /// * a source that is not exempt and holds its limit already sheds its
    ///   own oldest never-verified connection, else the new one is refused;
    /// * when the cap is full, the victim is, in this order: a connection of
    ///   a source that is not exempt before one of an exempt source (which
    ///   only an exempt newcomer may shed), a never-verified one before a
    ///   verified one, one from the source holding the most connections,
    ///   the oldest. With none, the new one is refused.
    pub(crate) fn admit(
        &mut self,
        source: IpAddr,
        exempt: bool,
        verified: Arc<AtomicBool>,
        handle: H,
    ) -> Admission<H> {
        let held = self.per_source.get(&source).copied().unwrap_or(0);
        let victim = if !exempt && held >= self.max_per_source {
            match self.oldest_unverified_of(source) {
                Some(id) => Some(id),
                None => return Admission::Refused,
            }
        } else if self.entries.len() >= self.max {
            match self.victim(exempt) {
                Some(id) => Some(id),
                None => return Admission::Refused,
            }
        } else {
            None
        };
        let shed = victim
            .and_then(|id| self.remove_entry(id))
            .map(|entry| Shed {
                verified: entry.verified(),
                handle: entry.handle,
            });
        let id = self.next_id;
        self.next_id += 1;
        *self.per_source.entry(source).or_insert(0) += 1;
        self.entries.insert(
            id,
            Entry {
                source,
                exempt,
                verified,
                handle,
            },
        );
        Admission::Admitted { id, shed }
    }

    /// Removes a connection (it ended, or was shed); `None` if it is gone.
    pub(crate) fn remove(&mut self, id: u64) -> Option<H> {
        self.remove_entry(id).map(|entry| entry.handle)
    }

    fn remove_entry(&mut self, id: u64) -> Option<Entry<H>> {
        let entry = self.entries.remove(&id)?;
        if let Some(count) = self.per_source.get_mut(&entry.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_source.remove(&entry.source);
            }
        }
        Some(entry)
    }

    fn oldest_unverified_of(&self, source: IpAddr) -> Option<u64> {
        self.entries
            .iter()
            .find(|(_, entry)| entry.source == source && !entry.verified())
            .map(|(&id, _)| id)
    }

    /// The connection to shed for a newcomer when the cap is full (ties go
    /// to the oldest: `min_by_key` keeps the first minimum it meets).
    fn victim(&self, newcomer_exempt: bool) -> Option<u64> {
        self.entries
            .iter()
            .filter(|(_, entry)| newcomer_exempt || !entry.exempt)
            .min_by_key(|(_, entry)| {
                let held = self.per_source.get(&entry.source).copied().unwrap_or(0);
                (entry.exempt, entry.verified(), Reverse(held))
            })
            .map(|(&id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Admits a connection whose handle is `name`; returns its id, its
    /// verified flag and the name of the one shed, if any.
    fn admit(
        table: &mut Connections<&'static str>,
        source: &str,
        exempt: bool,
        name: &'static str,
    ) -> Option<(u64, Arc<AtomicBool>, Option<&'static str>)> {
        let flag = Arc::new(AtomicBool::new(false));
        match table.admit(ip(source), exempt, Arc::clone(&flag), name) {
            Admission::Admitted { id, shed } => Some((id, flag, shed.map(|shed| shed.handle))),
            Admission::Refused => None,
        }
    }

    #[test]
    fn a_source_at_its_limit_sheds_its_oldest_unverified_connection() {
        let mut table = Connections::new(100, 2);
        let (_, first, _) = admit(&mut table, "10.0.0.1", false, "a1").unwrap();
        admit(&mut table, "10.0.0.1", false, "a2").unwrap();
        admit(&mut table, "10.0.0.2", false, "b1").unwrap();
        first.store(true, Ordering::Relaxed);
        let (_, _, shed) = admit(&mut table, "10.0.0.1", false, "a3").unwrap();
        assert_eq!(shed, Some("a2"), "the verified a1 stays");
        assert_eq!(table.len(), 3);
        // Now a1 (verified) and a3: a3 goes; then only verified ones: refused.
        let (_, third, _) = admit(&mut table, "10.0.0.1", false, "a4").unwrap();
        third.store(true, Ordering::Relaxed);
        assert!(admit(&mut table, "10.0.0.1", false, "a5").is_none());
        // Exempt sources have no limit.
        for name in ["e1", "e2", "e3"] {
            assert!(
                admit(&mut table, "10.0.0.9", true, name)
                    .unwrap()
                    .2
                    .is_none()
            );
        }
    }

    #[test]
    fn a_full_table_sheds_from_the_biggest_source_unverified_first() {
        let mut table = Connections::new(6, 6);
        let (_, a1, _) = admit(&mut table, "10.0.0.1", false, "a1").unwrap();
        admit(&mut table, "10.0.0.1", false, "a2").unwrap();
        admit(&mut table, "10.0.0.1", false, "a3").unwrap();
        admit(&mut table, "10.0.0.2", false, "b1").unwrap();
        admit(&mut table, "10.0.0.2", false, "b2").unwrap();
        admit(&mut table, "10.0.0.3", true, "e1").unwrap();
        a1.store(true, Ordering::Relaxed);
        // a has 3, b has 2: a's oldest unverified is a2.
        assert_eq!(
            admit(&mut table, "10.0.0.4", false, "c1").unwrap().2,
            Some("a2")
        );
        // a and b have 2 each: a3 is older than b1.
        assert_eq!(
            admit(&mut table, "10.0.0.4", false, "c2").unwrap().2,
            Some("a3")
        );
        // b and c have 2, a 1: b1 is the oldest of the biggest sources.
        assert_eq!(
            admit(&mut table, "10.0.0.5", false, "d1").unwrap().2,
            Some("b1")
        );
        assert_eq!(table.len(), 6);
    }

    #[test]
    fn exempt_connections_go_only_for_exempt_newcomers() {
        let mut table = Connections::new(3, 3);
        let (_, verified, _) = admit(&mut table, "10.0.0.1", false, "a1").unwrap();
        verified.store(true, Ordering::Relaxed);
        admit(&mut table, "10.0.0.9", true, "e1").unwrap();
        admit(&mut table, "10.0.0.9", true, "e2").unwrap();
        // Only a verified connection is left to shed for a plain newcomer.
        assert_eq!(
            admit(&mut table, "10.0.0.2", false, "b1").unwrap().2,
            Some("a1")
        );
        // b1 is unverified: it goes for the next newcomer.
        assert_eq!(
            admit(&mut table, "10.0.0.3", false, "c1").unwrap().2,
            Some("b1")
        );
        // c1 goes, then only exempt ones: a plain newcomer is refused…
        assert_eq!(
            admit(&mut table, "10.0.0.4", false, "d1").unwrap().2,
            Some("c1")
        );
        assert_eq!(
            admit(&mut table, "10.0.0.5", true, "e3").unwrap().2,
            Some("d1")
        );
        assert!(admit(&mut table, "10.0.0.6", false, "f1").is_none());
        // …and an exempt one sheds the oldest exempt connection.
        assert_eq!(
            admit(&mut table, "10.0.0.9", true, "e4").unwrap().2,
            Some("e1")
        );
    }

    #[test]
    fn removal_frees_the_slot_and_the_source_count() {
        let mut table = Connections::new(1, 1);
        let (id, _, _) = admit(&mut table, "10.0.0.1", false, "a1").unwrap();
        assert_eq!(table.remove(id), Some("a1"));
        assert_eq!(table.remove(id), None);
        assert_eq!(table.len(), 0);
        assert_eq!(admit(&mut table, "10.0.0.1", false, "a2").unwrap().2, None);
        assert_eq!(table.len(), 1);
    }
}
