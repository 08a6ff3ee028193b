//! Equivocation: an author who signs two different events under one
//! sequence number.
//!
//! An honest author numbers its events 1, 2, 3, … and never reuses a
//! number. A member who signs two different events under one number and
//! shows each to different members would split the room: each side takes
//! the version it saw first and, since both sides then hold "the author's
//! event 7", neither asks the other for it. This module makes sure such a
//! fork is **found**, **proven** and **shown**:
//!
//! - **Digest.** Every event has a digest: SHA-256 over a domain tag and
//!   its signed words (author, number, Lamport time, dependencies, time,
//!   name, body). It is computed from the words, not the token: any member
//!   can encrypt an author's signed words again into a new token, and that
//!   copy is the same event ([`crate::history::Event::same_words`]).
//! - **Found.** A member's heartbeat digest covers, per author, the digest
//!   of the newest event it holds, not only how many it holds; so two
//!   members holding different versions find their states differ and
//!   exchange summaries. A summary carries, per author, a short digest of
//!   that newest event, keyed with the summary's stamp (a collision cannot
//!   be prepared in advance). A member that holds the event with that
//!   number and finds a different digest pushes its own version: the
//!   receiver now holds both.
//! - **Proven.** A member that is offered an event whose number it already
//!   holds (delivered or waiting) with different words keeps the pair as a
//!   [`Fork`]: two events its author signed under one number, which nobody
//!   could have forged. The event is refused (counted as `equivocations`);
//!   the version held first stays.
//! - **Shown, everywhere.** The first time a member proves a fork of an
//!   author it tells its user ([`AppEvent::Equivocation`]: the terminal and
//!   the web page warn, and mark the author in the member list) and sends
//!   both versions to every member it believes online, so each of them
//!   proves the fork too, whichever version it held.
//!
//! Limits: one fork kept per author (the lowest number proven), at most
//! [`MAX_AUTHORS`] of them; at most [`MAX_CONFLICTS_PER_SUMMARY`] versions
//! pushed in answer to one summary.
//!
//! Not done here yet: one deterministic rule that makes members holding
//! different versions show the same history (the author's events after
//! the fork), and keeping proofs across restarts (a restarted member finds
//! the fork again from the members that hold the other version).

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::history::{Body, Event, History, MAX_AUTHORS};
use crate::identity::PeerId;
use crate::membership::Members;
use crate::output::AppEvent;
use crate::replication::{push_targets, Summary};
use crate::room::{Link, Outbox, RoomId};

/// Most versions pushed back in answer to one summary whose heads differ
/// from ours.
pub const MAX_CONFLICTS_PER_SUMMARY: usize = 8;

/// An event's digest: SHA-256 over its signed words.
pub type Digest = [u8; 32];

/// The digest of `event`'s signed words.
pub fn digest(event: &Event) -> Digest {
    let mut h = Sha256::new();
    h.update(b"p2pchat/v1/event\0");
    h.update(event.id.author.as_bytes());
    h.update(event.id.seq.to_be_bytes());
    h.update(event.lamport.to_be_bytes());
    h.update((event.deps.len() as u64).to_be_bytes());
    for dep in &event.deps {
        h.update(dep.author.as_bytes());
        h.update(dep.seq.to_be_bytes());
    }
    h.update(event.time.to_be_bytes());
    h.update((event.name.len() as u64).to_be_bytes());
    h.update(event.name.as_bytes());
    match &event.body {
        Body::Text { text } => {
            h.update([1u8]);
            h.update((text.len() as u64).to_be_bytes());
            h.update(text.as_bytes());
        }
        Body::Unsupported => h.update([0u8]),
    }
    h.finalize().into()
}

/// A short form of `digest` for a summary stamped `stamp`: 8 bytes of
/// SHA-256 over both, so that two versions whose short forms collide
/// cannot be made before the stamp is known.
pub fn short(digest: &Digest, stamp: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(b"p2pchat/v1/head\0");
    h.update(stamp.to_be_bytes());
    h.update(digest);
    let out = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out[..8]);
    u64::from_be_bytes(first)
}

/// Two different events one author signed under one sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fork {
    /// The version this member held first.
    pub held: Arc<Event>,
    /// The other version.
    pub other: Arc<Event>,
}

impl Fork {
    /// Who signed both.
    pub fn author(&self) -> PeerId {
        self.held.id.author
    }

    /// The sequence number both claim.
    pub fn seq(&self) -> u64 {
        self.held.id.seq
    }

    /// Whether the pair proves the fork: one id, different signed words.
    pub fn is_proof(&self) -> bool {
        self.held.id == self.other.id && !self.held.same_words(&self.other)
    }
}

/// The forks a room's history has proven, one per author.
#[derive(Clone, Debug, Default)]
pub struct Forks {
    by_author: BTreeMap<PeerId, Fork>,
    /// Authors proven since the last [`Forks::take_new`].
    new: Vec<PeerId>,
}

impl Forks {
    /// Keeps `fork` if it is the first of its author, or a lower number
    /// than the one kept. Returns whether the author is newly proven.
    pub fn record(&mut self, fork: Fork) -> bool {
        if !fork.is_proof() {
            return false;
        }
        let author = fork.author();
        let full = self.by_author.len() >= MAX_AUTHORS;
        match self.by_author.get_mut(&author) {
            Some(kept) => {
                if fork.seq() < kept.seq() {
                    *kept = fork;
                }
                false
            }
            None if full => false,
            None => {
                self.by_author.insert(author, fork);
                self.new.push(author);
                true
            }
        }
    }

    /// The fork proven for `author`, if any.
    pub fn get(&self, author: &PeerId) -> Option<&Fork> {
        self.by_author.get(author)
    }

    /// Every fork, by author.
    pub fn iter(&self) -> impl Iterator<Item = &Fork> {
        self.by_author.values()
    }

    /// Authors proven since the last call.
    pub fn take_new(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.new)
    }
}

/// Our versions of the events a summary's heads name with another digest:
/// the member that sent it holds a different version of each.
pub fn conflicting(history: &History, summary: &Summary) -> Vec<Arc<Event>> {
    if summary.heads.len() != summary.vv.authors() {
        return Vec::new();
    }
    summary
        .vv
        .iter()
        .zip(&summary.heads)
        .filter(|((author, seq), _)| *seq <= history.version_vector().get(author))
        .filter_map(|((author, seq), head)| {
            let ours = history.get(&crate::clock::EventId::new(*author, seq))?;
            (short(&digest(ours), summary.stamp) != *head).then(|| Arc::clone(ours))
        })
        .take(MAX_CONFLICTS_PER_SUMMARY)
        .collect()
}

/// The heads of `history` for a summary stamped `stamp`, in the order of
/// its version vector.
pub fn heads(history: &History, stamp: u64) -> Vec<u64> {
    history
        .version_vector()
        .iter()
        .map(|(author, _)| history.head_digest(author).map_or(0, |d| short(&d, stamp)))
        .collect()
}

/// Tells the user about every author newly proven to equivocate, and
/// sends both versions to every member believed online so that each of
/// them can prove it too.
pub(crate) fn on_new_forks(
    history: &mut History,
    room: RoomId,
    members: &Members,
    link: &Link,
    out: &mut Outbox<'_>,
) {
    for author in history.forks_mut().take_new() {
        let Some(fork) = history.forks().get(&author) else {
            continue;
        };
        out.event(AppEvent::Equivocation {
            room,
            author,
            seq: fork.seq(),
        });
        let (me, mtu) = (out.local.me, out.local.config.mtu);
        let mut datagrams = Vec::new();
        for version in [&fork.held, &fork.other] {
            if let Some(d) = link.event_datagrams(me, &version.token, mtu) {
                datagrams.extend(d);
            }
        }
        for (_, addr) in push_targets(members.live()) {
            for bytes in &datagrams {
                out.transmit(addr, bytes.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::EventId;

    fn event(text: &str) -> Event {
        Event {
            id: EventId::new(PeerId::from_bytes([7; 32]), 3),
            lamport: 5,
            deps: vec![EventId::new(PeerId::from_bytes([8; 32]), 2)],
            time: 1_000,
            name: "mallory".into(),
            body: Body::Text { text: text.into() },
            token: format!("token of {text}"),
            floor: 0,
        }
    }

    #[test]
    fn the_digest_covers_the_words_and_not_the_token() {
        let a = event("yes");
        let mut copy = a.clone();
        copy.token = "another token".into();
        assert_eq!(digest(&a), digest(&copy));
        assert_ne!(digest(&a), digest(&event("no")));
        let mut later = a.clone();
        later.time += 1;
        assert_ne!(digest(&a), digest(&later));
        let mut renamed = a.clone();
        renamed.name = "mallor".into();
        renamed.body = Body::Text {
            text: "yyes".into(),
        };
        assert_ne!(digest(&a), digest(&renamed), "fields are length-prefixed");
    }

    #[test]
    fn short_digests_depend_on_the_stamp() {
        let d = digest(&event("yes"));
        assert_ne!(short(&d, 1), short(&d, 2));
        assert_eq!(short(&d, 1), short(&d, 1));
    }

    #[test]
    fn only_a_real_pair_is_kept_and_the_lowest_number_wins() {
        let mut forks = Forks::default();
        let a = Arc::new(event("yes"));
        let copy = Arc::new(Event {
            token: "re-encrypted".into(),
            ..(*a).clone()
        });
        assert!(!forks.record(Fork {
            held: Arc::clone(&a),
            other: copy,
        }));
        let b = Arc::new(event("no"));
        assert!(forks.record(Fork {
            held: Arc::clone(&a),
            other: Arc::clone(&b),
        }));
        let lower = |text: &str| {
            let mut e = event(text);
            e.id.seq = 2;
            Arc::new(e)
        };
        assert!(!forks.record(Fork {
            held: lower("one"),
            other: lower("two"),
        }));
        let author = a.id.author;
        assert_eq!(forks.get(&author).map(Fork::seq), Some(2));
        assert_eq!(forks.take_new(), vec![author]);
        assert!(forks.take_new().is_empty());
    }
}
