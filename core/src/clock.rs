//! Clock: Lamport time, per-author sequence numbers and causal dependencies.
//!
//! Every event in a room is named by its author and the author's sequence
//! number: an author's first event is `seq` 1, the next 2, and so on, with no
//! gaps. That pair is the [`EventId`].
//!
//! Each event also carries a **Lamport time** and the ids of its **causal
//! dependencies**: the heads of the room's event graph as its author saw it
//! (the delivered events no other delivered event depends on). The rule
//! that makes the time checkable by everyone is:
//!
//! ```text
//! lamport(e) = 1 + max(lamport(d) for d in deps(e))      (1 when deps is empty)
//! lamport(e) > lamport(previous event of the same author)
//! ```
//!
//! Because every event a member has seen is an ancestor of one of its heads,
//! and Lamport time grows along every causal edge, this is the classic
//! Lamport clock — but any member can recompute and verify it from the
//! event's dependencies alone, so a member cannot claim an absurd time.
//! When there are more heads than [`MAX_DEPS`], the author keeps those with
//! the highest time, which leaves the rule intact.
//!
//! A [`VersionVector`] maps each author to the highest sequence number such
//! that all of that author's events up to it are delivered. Because delivery
//! is causal, the delivered set is always exactly what the version vector
//! describes; it is the compact summary replicas exchange.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::identity::PeerId;

/// Most causal dependencies an event may name.
pub const MAX_DEPS: usize = 32;

/// An event's name: its author and the author's sequence number (from 1).
///
/// On the wire: `["<author hex>", seq]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct EventId {
    /// Who wrote the event.
    pub author: PeerId,
    /// The author's sequence number, starting at 1.
    pub seq: u64,
}

impl EventId {
    /// The id of `author`'s `seq`-th event.
    pub const fn new(author: PeerId, seq: u64) -> Self {
        EventId { author, seq }
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.author.short(), self.seq)
    }
}

/// Where an event sits in a room's canonical order: by Lamport time, ties
/// broken by author. It extends the causal order, so every member that holds
/// the same events shows them in the same order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct OrderKey {
    /// Lamport time.
    pub lamport: u64,
    /// Author, the tie-breaker.
    pub author: PeerId,
    /// The author's sequence number (never needed to break a tie: an
    /// author's events have distinct Lamport times; kept so the key names
    /// the event).
    pub seq: u64,
}

impl OrderKey {
    /// The lowest key there is (for ranges).
    pub const MIN: OrderKey = OrderKey {
        lamport: 0,
        author: PeerId::from_bytes([0; 32]),
        seq: 0,
    };
    /// The highest key there is (for ranges).
    pub const MAX: OrderKey = OrderKey {
        lamport: u64::MAX,
        author: PeerId::from_bytes([0xff; 32]),
        seq: u64::MAX,
    };

    /// The key of event `id` at Lamport time `lamport`.
    pub const fn new(lamport: u64, id: EventId) -> Self {
        OrderKey {
            lamport,
            author: id.author,
            seq: id.seq,
        }
    }

    /// The event this key names.
    pub const fn id(&self) -> EventId {
        EventId {
            author: self.author,
            seq: self.seq,
        }
    }
}

/// Per author, the highest sequence number delivered without a gap.
///
/// On the wire: a JSON object from author hex to sequence number. Authors
/// at 0 are never stored.
#[derive(Clone, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionVector(BTreeMap<PeerId, u64>);

impl VersionVector {
    /// An empty vector: nothing delivered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Highest contiguous sequence number of `author` (0: none).
    pub fn get(&self, author: &PeerId) -> u64 {
        self.0.get(author).copied().unwrap_or(0)
    }

    /// Whether event `id` is covered.
    pub fn contains(&self, id: &EventId) -> bool {
        id.seq != 0 && id.seq <= self.get(&id.author)
    }

    /// Records that `author`'s events up to `seq` are delivered.
    pub fn set(&mut self, author: PeerId, seq: u64) {
        if seq == 0 {
            self.0.remove(&author);
        } else {
            self.0.insert(author, seq);
        }
    }

    /// Number of authors with at least one event.
    pub fn authors(&self) -> usize {
        self.0.len()
    }

    /// Total number of events covered.
    pub fn total(&self) -> u64 {
        self.0.values().fold(0u64, |acc, s| acc.saturating_add(*s))
    }

    /// `(author, seq)` pairs, in author order.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, u64)> {
        self.0.iter().map(|(a, s)| (a, *s))
    }

    /// For each author where `other` is ahead of `self`: the author, the
    /// first sequence number `self` lacks, and the last one `other` has.
    pub fn lacking_from<'a>(
        &'a self,
        other: &'a VersionVector,
    ) -> impl Iterator<Item = (PeerId, u64, u64)> + 'a {
        other.0.iter().filter_map(move |(author, theirs)| {
            let mine = self.get(author);
            // `then`, not `then_some`: `mine` may be the largest number
            // there is (a vector from the network), and `mine + 1` is only
            // meant when `theirs` is above it.
            (*theirs > mine).then(|| (*author, mine + 1, *theirs))
        })
    }

    /// Whether `other` has any event `self` lacks.
    pub fn lacks_any_of(&self, other: &VersionVector) -> bool {
        self.lacking_from(other).next().is_some()
    }

    /// A short digest of the vector (8 bytes of SHA-256 over its canonical
    /// bytes): equal vectors have equal digests, so a heartbeat can say
    /// "this is what I have" in a few bytes.
    pub fn digest(&self) -> u64 {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"p2pchat/v1/vv\0");
        for (author, seq) in &self.0 {
            h.update(author.as_bytes());
            h.update(seq.to_be_bytes());
        }
        let out = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_be_bytes(first)
    }
}

/// A Lamport clock for authoring: the next event's time is one more than
/// the highest time among its dependencies.
pub fn next_lamport(dep_lamports: impl IntoIterator<Item = u64>) -> Option<u64> {
    dep_lamports.into_iter().max().unwrap_or(0).checked_add(1)
}
