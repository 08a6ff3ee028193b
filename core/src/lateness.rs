//! Lateness: which messages were made public after messages that sort after
//! them.
//!
//! The canonical order puts a message by its Lamport time, and its shown
//! time is its author's word (clamped to its causal past, see
//! [`crate::history`]). A message with an empty causal past (an author's
//! first, with no dependencies) can claim Lamport time 1 and any time at
//! all, and land at the top of everyone's history. Nothing in the message
//! itself can refute that; what the room can see is that other messages
//! were written **after** it, by its claimed time, **without knowing it**.
//!
//! The rule: message `e` is **late** when the history holds a message `f`
//! that sorts after `e`, does not have `e` in its causal past, and is shown
//! more than [`LATE_TOLERANCE_MS`] after `e`. (Honest messages written at
//! the same time without seeing each other are within the tolerance; a
//! message held back by a partition for longer is late, as it should be.)
//! The verdict depends only on which messages the history holds, never on
//! the order they arrived in, so a late joiner marks exactly the messages
//! every member marks. A message can become late after it is delivered,
//! when such an `f` arrives later: those marks are reported so the UIs can
//! update what they show ([`crate::output::AppEvent::Late`]).
//!
//! How it is computed, for each pair once, when the second of the two is
//! delivered:
//!
//! - When `e` is delivered, every `f` already delivered that sorts after
//!   it lacks `e` in its past (causal delivery), so `e` is late iff the
//!   latest shown time among messages sorting after it is past `e`'s by
//!   more than the tolerance. That maximum comes from a table of the
//!   latest shown time per Lamport time, in blocks.
//! - When `f` is delivered, the messages it did not know are, per author
//!   `a`, those of `a` numbered above the component of `f`'s causal past
//!   for `a`. Along one author's chain, order keys and shown times only
//!   grow, so the ones to mark are a run from that point on, stopping at
//!   the first that sorts after `f` or is shown too close to it.
//!
//! Causal pasts are kept as version vectors, per author and compressed:
//! for author `x` and component `a`, only the points along `x`'s chain
//! where that component grew. Memory is about one entry per dependency.
//!
//! What the rule reads of the messages themselves is kept here too, in
//! 16 bytes a message: each author's chain as Lamport and shown times.
//! Marking walks it, and the messages sorting right after a new one at its
//! own Lamport time are found in it (an author has at most one message per
//! Lamport time); so the rule never needs a message's body, and a history
//! is free to keep only a window of them in memory.

use std::collections::{BTreeSet, HashMap};

use crate::clock::{EventId, OrderKey, VersionVector};
use crate::history::Event;
use crate::identity::PeerId;

/// How much later than a message another one, written without knowing it,
/// must be shown before the first counts as late.
pub const LATE_TOLERANCE_MS: u64 = 60_000;

/// Lamport times per block of the latest-shown-time table.
const BLOCK: usize = 1024;

/// Lateness marks and what computing them needs.
#[derive(Debug, Default)]
pub struct Lateness {
    /// Per author `x`, per component author `a`: `(seq, n)` where the
    /// causal past of `x`'s event `seq` (and of its later ones, until the
    /// next entry) holds `a`'s events up to `n`.
    pasts: HashMap<PeerId, HashMap<PeerId, Vec<(u64, u64)>>>,
    /// Per author, its main chain in sequence order (entry `i` is event
    /// `i + 1`), shown or hidden.
    chains: HashMap<PeerId, Vec<Mark>>,
    /// The latest shown time of the messages at each Lamport time.
    by_lamport: Vec<u64>,
    /// The latest of `by_lamport` per block of [`BLOCK`].
    blocks: Vec<u64>,
    late: BTreeSet<EventId>,
    /// Messages marked late after their delivery, not yet reported.
    marked: Vec<EventId>,
}

/// What the rule reads of one message: its Lamport time and shown time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    lamport: u64,
    shown: u64,
}

impl Lateness {
    /// Whether `id` is late.
    pub fn is_late(&self, id: &EventId) -> bool {
        self.late.contains(id)
    }

    /// Number of late messages.
    pub fn len(&self) -> usize {
        self.late.len()
    }

    /// Whether no message is late.
    pub fn is_empty(&self) -> bool {
        self.late.is_empty()
    }

    /// Messages marked late after their delivery, since the last call.
    pub fn take_marked(&mut self) -> Vec<EventId> {
        std::mem::take(&mut self.marked)
    }

    /// What the rule has recorded, as plain data for a checkpoint
    /// ([`crate::checkpoint`]).
    pub(crate) fn export(&self) -> crate::checkpoint::LatenessState {
        use crate::checkpoint::{LatenessState, Pasts, PerAuthor};
        let key = |p: &PeerId| *p.as_bytes();
        let mut pasts: Vec<Pasts> = self
            .pasts
            .iter()
            .map(|(x, by)| {
                let mut by: PerAuthor = by
                    .iter()
                    .map(|(a, points)| (key(a), points.clone()))
                    .collect();
                by.sort();
                (key(x), by)
            })
            .collect();
        pasts.sort();
        let mut chains: PerAuthor = self
            .chains
            .iter()
            .map(|(a, chain)| {
                let marks = chain.iter().map(|m| (m.lamport, m.shown));
                (key(a), crate::checkpoint::deltas(marks))
            })
            .collect();
        chains.sort();
        LatenessState {
            pasts,
            chains,
            by_lamport: crate::checkpoint::signed_deltas(&self.by_lamport),
            late: self
                .late
                .iter()
                .map(|id| (key(&id.author), id.seq))
                .collect(),
        }
    }

    /// The rule's records back from [`Lateness::export`]; `None` if they
    /// do not hold together (a chain numbered other than the history's
    /// `vv` says, a table of the wrong length).
    pub(crate) fn import(
        state: crate::checkpoint::LatenessState,
        vv: &VersionVector,
    ) -> Option<Lateness> {
        let peer = |b: [u8; 32]| PeerId::from_bytes(b);
        let chains: HashMap<PeerId, Vec<Mark>> = state
            .chains
            .into_iter()
            .map(|(a, chain)| {
                let marks = crate::checkpoint::undeltas(&chain)
                    .map(|(lamport, shown)| Mark { lamport, shown })
                    .collect();
                (peer(a), marks)
            })
            .collect();
        let by_lamport = crate::checkpoint::unsigned_deltas(&state.by_lamport);
        let numbered = |a: &PeerId, n: usize| u64::try_from(n).ok() == Some(vv.get(a));
        if chains.len() != vv.authors() || !chains.iter().all(|(a, c)| numbered(a, c.len())) {
            return None;
        }
        let most = chains
            .values()
            .flat_map(|c| c.iter().map(|m| m.lamport))
            .max()
            .unwrap_or(0);
        if usize::try_from(most).ok().and_then(|m| m.checked_add(1)) != Some(by_lamport.len())
            && !(chains.values().all(Vec::is_empty) && by_lamport.is_empty())
        {
            return None;
        }
        let blocks = by_lamport
            .chunks(BLOCK)
            .map(|b| b.iter().copied().max().unwrap_or(0))
            .collect();
        Some(Lateness {
            pasts: state
                .pasts
                .into_iter()
                .map(|(x, by)| (peer(x), by.into_iter().map(|(a, p)| (peer(a), p)).collect()))
                .collect(),
            chains,
            by_lamport,
            blocks,
            late: state
                .late
                .into_iter()
                .map(|(a, seq)| EventId::new(peer(a), seq))
                .collect(),
            marked: Vec::new(),
        })
    }

    /// How many of `a`'s events are in the causal past of `id`.
    fn past_of(&self, id: &EventId, a: &PeerId) -> u64 {
        if *a == id.author {
            return id.seq.saturating_sub(1);
        }
        let Some(points) = self.pasts.get(&id.author).and_then(|p| p.get(a)) else {
            return 0;
        };
        let i = points.partition_point(|(seq, _)| *seq <= id.seq);
        i.checked_sub(1).map_or(0, |i| points[i].1)
    }

    /// `event` is being delivered to its author's main chain (next in
    /// sequence): the others already delivered were given here before it,
    /// and `vv` holds what is shared (leaving out the events `frozen` says
    /// are hidden: an equivocator's from its fork on, which count as
    /// unknown). Records its causal past, marks the messages it shows to
    /// be late, and returns whether it is late itself.
    pub fn deliver(
        &mut self,
        event: &Event,
        vv: &VersionVector,
        frozen: &dyn Fn(&EventId) -> bool,
    ) -> bool {
        let id = event.id;
        let shown = event.shown_time();
        let past = self.record_past(event, frozen);
        // Messages this one did not know, shown well before it, sorting
        // before it: along each author's chain, a run from what it knew.
        for (a, delivered) in vv.iter() {
            if *a == id.author {
                continue;
            }
            let known = past.get(a).copied().unwrap_or(0);
            if delivered <= known {
                continue;
            }
            let Some(chain) = self.chains.get(a) else {
                continue;
            };
            let start = usize::try_from(known).unwrap_or(usize::MAX);
            for (seq, m) in (known + 1..).zip(chain.iter().skip(start)) {
                let e = EventId::new(*a, seq);
                if OrderKey::new(m.lamport, e) >= event.key()
                    || m.shown.saturating_add(LATE_TOLERANCE_MS) >= shown
                {
                    break;
                }
                if self.late.insert(e) {
                    self.marked.push(e);
                }
            }
        }
        // This one, against those sorting after it: at higher Lamport
        // times from the table; at its own, only if the table says one
        // there could make it late.
        let threshold = shown.saturating_add(LATE_TOLERANCE_MS);
        let mut after = self.latest_after(event.lamport);
        if after <= threshold && self.latest_at(event.lamport) > threshold {
            after = after.max(self.latest_at_after(event.key(), frozen));
        }
        self.note_shown(event.lamport, shown);
        self.note_chain(event);
        let late = after > threshold;
        if late {
            self.late.insert(id);
        }
        late
    }

    /// Adds `event` to its author's chain without judging it (an event
    /// hidden as an equivocator's, when the marks are recomputed): the
    /// chain stays numbered by sequence.
    pub fn note_chain(&mut self, event: &Event) {
        let chain = self.chains.entry(event.id.author).or_default();
        if usize::try_from(event.id.seq).ok() == Some(chain.len() + 1) {
            chain.push(Mark {
                lamport: event.lamport,
                shown: event.shown_time(),
            });
        }
    }

    /// The latest shown time among messages at Lamport time `key.lamport`
    /// that sort after `key` and are not hidden: one per author at most,
    /// found in each chain by Lamport time.
    fn latest_at_after(&self, key: OrderKey, frozen: &dyn Fn(&EventId) -> bool) -> u64 {
        let mut latest = 0;
        for (author, chain) in &self.chains {
            let i = chain.partition_point(|m| m.lamport < key.lamport);
            let Some(m) = chain.get(i).filter(|m| m.lamport == key.lamport) else {
                continue;
            };
            let e = EventId::new(*author, i as u64 + 1);
            if OrderKey::new(m.lamport, e) > key && !frozen(&e) {
                latest = latest.max(m.shown);
            }
        }
        latest
    }

    /// Computes and records the causal past of `event` (its author's
    /// previous event and its dependencies, with their pasts); returns the
    /// components other than its author's.
    fn record_past(
        &mut self,
        event: &Event,
        frozen: &dyn Fn(&EventId) -> bool,
    ) -> HashMap<PeerId, u64> {
        let id = event.id;
        let mut past: HashMap<PeerId, u64> = HashMap::new();
        if id.seq > 1 {
            let prev = EventId::new(id.author, id.seq - 1);
            if let Some(points) = self.pasts.get(&id.author) {
                for a in points.keys() {
                    past.insert(*a, self.past_of(&prev, a));
                }
            }
        }
        let before = past.clone();
        for dep in event.deps.iter().filter(|d| !frozen(d)) {
            if dep.author != id.author {
                let n = past.entry(dep.author).or_default();
                *n = (*n).max(dep.seq);
            }
            let components: Vec<PeerId> = self
                .pasts
                .get(&dep.author)
                .map(|p| p.keys().copied().collect())
                .unwrap_or_default();
            for a in components {
                if a == id.author {
                    continue;
                }
                let n = self.past_of(dep, &a);
                let slot = past.entry(a).or_default();
                *slot = (*slot).max(n);
            }
        }
        let points = self.pasts.entry(id.author).or_default();
        for (a, n) in &past {
            if before.get(a).copied().unwrap_or(0) < *n {
                points.entry(*a).or_default().push((id.seq, *n));
            }
        }
        past
    }

    /// The latest shown time among messages with a Lamport time above
    /// `lamport`.
    fn latest_after(&self, lamport: u64) -> u64 {
        let Ok(first) = usize::try_from(lamport.saturating_add(1)) else {
            return 0;
        };
        let block_end = (first / BLOCK + 1) * BLOCK;
        let within = self
            .by_lamport
            .get(first..block_end.min(self.by_lamport.len()))
            .and_then(|s| s.iter().max().copied())
            .unwrap_or(0);
        let beyond = self
            .blocks
            .get(first / BLOCK + 1..)
            .and_then(|s| s.iter().max().copied())
            .unwrap_or(0);
        within.max(beyond)
    }

    /// The latest shown time among messages at Lamport time `lamport`.
    fn latest_at(&self, lamport: u64) -> u64 {
        usize::try_from(lamport)
            .ok()
            .and_then(|i| self.by_lamport.get(i).copied())
            .unwrap_or(0)
    }

    fn note_shown(&mut self, lamport: u64, shown: u64) {
        // The Lamport rule keeps times within one of what is delivered,
        // so the table is dense; a time past what an index can hold
        // cannot be reached.
        let Ok(i) = usize::try_from(lamport) else {
            return;
        };
        if self.by_lamport.len() <= i {
            self.by_lamport.resize(i + 1, 0);
            self.blocks.resize(i / BLOCK + 1, 0);
        }
        self.by_lamport[i] = self.by_lamport[i].max(shown);
        self.blocks[i / BLOCK] = self.blocks[i / BLOCK].max(shown);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use super::*;
    use crate::clock::next_lamport;
    use crate::history::{Body, History};

    fn author(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    /// Random events by three authors: each depends on a random subset of
    /// what its author has seen, at a random time (some well in the past,
    /// some long after), as a member that was partitioned away would.
    pub(crate) fn random_room(seed: u64) -> Vec<Event> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut events: Vec<Event> = Vec::new();
        let mut seqs = [0u64; 3];
        for _ in 0..40 {
            let who = (rng.next_u32() % 3) as usize;
            let mut deps = Vec::new();
            for e in &events {
                if e.id.author != author(who as u8) && rng.next_u32() % 4 == 0 {
                    deps.push(e.id);
                }
            }
            if seqs[who] > 0 {
                // Its own previous event, so the Lamport time follows it.
                deps.push(EventId::new(author(who as u8), seqs[who]));
            }
            deps.truncate(crate::clock::MAX_DEPS);
            seqs[who] += 1;
            let id = EventId::new(author(who as u8), seqs[who]);
            let dep_lamports = events
                .iter()
                .filter(|e| deps.contains(&e.id))
                .map(|e| e.lamport);
            let lamport = next_lamport(dep_lamports).unwrap_or(1);
            let minutes = u64::from(rng.next_u32() % 30);
            events.push(Event {
                id,
                lamport,
                deps,
                time: 1_000_000_000 + minutes * 60_000,
                name: "x".into(),
                body: Body::Text {
                    text: format!("{id}"),
                },
                token: String::new(),
                floor: 0,
                token_len: 0,
                prev: None,
                refs: Vec::new(),
                digest: Default::default(),
            });
        }
        events
    }

    /// The rule, straight from its statement.
    fn late_by_definition(history: &History) -> BTreeSet<EventId> {
        let events: Vec<Arc<Event>> = history.iter().collect();
        let past = |f: &Event| -> HashSet<EventId> {
            let mut seen = HashSet::new();
            let mut todo: Vec<EventId> = f.deps.clone();
            if f.id.seq > 1 {
                todo.push(EventId::new(f.id.author, f.id.seq - 1));
            }
            while let Some(id) = todo.pop() {
                if seen.insert(id) {
                    if let Some(e) = history.get(&id) {
                        todo.extend(e.deps.iter().copied());
                        if id.seq > 1 {
                            todo.push(EventId::new(id.author, id.seq - 1));
                        }
                    }
                }
            }
            seen
        };
        let mut late = BTreeSet::new();
        for e in &events {
            for f in &events {
                if f.key() > e.key()
                    && !past(f).contains(&e.id)
                    && f.shown_time() > e.shown_time() + LATE_TOLERANCE_MS
                {
                    late.insert(e.id);
                }
            }
        }
        late
    }

    fn marks(history: &History) -> BTreeSet<EventId> {
        history
            .iter()
            .map(|e| e.id)
            .filter(|id| history.is_late(id))
            .collect()
    }

    #[test]
    fn marks_follow_the_rule_whatever_the_arrival_order() {
        let (mut late, mut all) = (0, 0);
        for seed in 0..64 {
            let events = random_room(seed);
            let mut written = History::new();
            for e in &events {
                written.offer(e.clone(), 0).expect("valid");
            }
            assert_eq!(written.len(), events.len(), "seed {seed}");
            let expected = late_by_definition(&written);
            (late, all) = (late + expected.len(), all + events.len());
            assert_eq!(marks(&written), expected, "seed {seed}, in written order");
            // Shuffled: the pending buffer delivers in some causal order.
            let mut rng = ChaCha20Rng::seed_from_u64(seed + 1000);
            let mut shuffled = events.clone();
            for i in (1..shuffled.len()).rev() {
                let j = (rng.next_u32() as usize) % (i + 1);
                shuffled.swap(i, j);
            }
            let mut arrived = History::new();
            for e in shuffled {
                let _ = arrived.offer(e, 0);
            }
            assert_eq!(arrived.len(), events.len(), "seed {seed}");
            assert_eq!(marks(&arrived), expected, "seed {seed}, shuffled");
            // In canonical order, as a late joiner gets them.
            let mut joiner = History::new();
            for e in written.iter() {
                let mut e = (*e).clone();
                e.floor = 0;
                joiner.offer(e, 0).expect("valid");
            }
            assert_eq!(marks(&joiner), expected, "seed {seed}, late joiner");
        }
        // Neither rule nor test is vacuous.
        assert!(late > all / 10 && late < all / 2, "{late} of {all} late");
    }

    #[test]
    fn honest_concurrent_messages_are_not_late() {
        let mut h = History::new();
        let at = |who: u8, time: u64| Event {
            id: EventId::new(author(who), 1),
            lamport: 1,
            deps: vec![],
            time,
            name: "x".into(),
            body: Body::Text { text: "hi".into() },
            token: String::new(),
            floor: 0,
            token_len: 0,
            prev: None,
            refs: Vec::new(),
            digest: Default::default(),
        };
        h.offer(at(2, 1_000_000), 0).expect("valid");
        h.offer(at(1, 1_000_000 + LATE_TOLERANCE_MS), 0)
            .expect("valid");
        assert!(marks(&h).is_empty());
        // Sorts first, written well before what sorts after it.
        h.offer(at(0, 1_000_000 - 1), 0).expect("valid");
        assert_eq!(marks(&h), BTreeSet::from([EventId::new(author(0), 1)]));
    }
}
