//! Equivocation: an author who signs two different events under one
//! sequence number.
//!
//! An honest author numbers its events 1, 2, 3, … and never reuses a
//! number. A member who signs two different events under one number and
//! shows each to different members would split the room: each side takes
//! the version it saw first and, since both sides then hold "the author's
//! event 7", neither asks the other for it. This module makes sure such a
//! fork is **found**, **proven**, **shown** and **healed**:
//!
//! - **Digest and hash chain.** Every event has a digest: SHA-256 over a
//!   domain tag and its signed words (author, number, Lamport time,
//!   dependencies, time, name, body, and the two fields below). It is
//!   computed from the words, not the token: any member can encrypt an
//!   author's signed words again into a new token, and that copy is the
//!   same event ([`crate::history::Event::same_words`]). In a room whose
//!   Chat ID is version 3 (every room created since), each event also
//!   names the digest of its author's previous event (`prev`: the hash
//!   chain) and of each dependency (`refs`): the exact versions it follows.
//!   So an event's causal past is the same on every member, whatever
//!   versions of an equivocator's events each saw first.
//! - **Found.** A member's heartbeat digest covers, per author, the digest
//!   of the newest event it holds, not only how many it holds; so two
//!   members holding different versions find their states differ and
//!   exchange summaries. A summary carries, per author, a short digest of
//!   that newest event, keyed with the summary's stamp (a collision cannot
//!   be prepared in advance). A member that holds the event with that
//!   number and finds a different digest pushes its own version.
//! - **Proven.** A member offered a well-formed event whose number it
//!   already holds (delivered or waiting) with different words keeps the
//!   pair as a [`Fork`]: two events its author signed under one number,
//!   which nobody could have forged. The lowest number proven is kept.
//! - **Shown, everywhere.** The first time a member proves a fork of an
//!   author it tells its user ([`AppEvent::Equivocation`]: the terminal and
//!   the web page warn, and mark the author in the member list and on its
//!   messages) and sends both versions to every member it believes online,
//!   so each of them proves it too, whichever version it held; it does so
//!   again whenever it proves the fork at a lower number.
//! - **Healed by one rule.** The author is **frozen at its fork**: none of
//!   its events numbered from the lowest proven fork on is shown, on any
//!   member ([`crate::history::History::frozen_from`]); its events before
//!   the fork, which every branch shares, stay. Its later events, on any
//!   branch, are not placed on its main chain but kept beside it (checked
//!   like any event: their own past held, their Lamport time right) when
//!   others' events name them, so those are placed and shown everywhere. A
//!   member that lacks a version an event names asks for it ([`Want`]);
//!   whoever holds it answers with it and the versions before it. Once
//!   every member holds the proofs, every member shows the same history:
//!   everyone's events, the equivocator's up to its fork. Late marks count
//!   hidden events as unknown, and are computed again when a fork hides
//!   events ([`AppEvent::Reshown`]).
//! - **Kept.** Versions kept beside a main chain, and both versions of a
//!   proof, are stored ([`crate::store::Record::Version`]), so a restarted
//!   member proves the fork again from its own store.
//!
//! Rooms created before the chain (Chat ID versions 1 and 2) keep their
//! rules: events without `prev` and `refs` are taken, dependencies are
//! resolved by number on the main chains, a fork is found, proven and
//! shown, and the version held first stays; it is not healed there.
//!
//! Limits: one fork kept per author (the lowest number proven), at most
//! [`MAX_AUTHORS`] of them; at most [`MAX_CONFLICTS_PER_SUMMARY`] versions
//! pushed in answer to one summary; a [`Want`] names at most
//! [`MAX_WANTED`] versions and is answered with at most
//! [`MAX_SENT_PER_WANT`]; versions kept beside the main chains take at
//! most [`crate::history::MAX_OTHER_BYTES`] of tokens per room.

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
/// Most versions one [`Want`] names.
pub const MAX_WANTED: usize = 32;
/// Most events sent in answer to one [`Want`]: the versions named and, for
/// each, the versions before it on its author's chain.
pub const MAX_SENT_PER_WANT: usize = 64;

/// A request for exact versions: a member holds events that depend on
/// them (or on versions before them) and has not got them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Want {
    /// Replay guard.
    pub stamp: u64,
    /// The digests of the versions wanted.
    pub digests: Vec<Digest>,
}

impl Want {
    /// Whether it names at least one version and at most [`MAX_WANTED`].
    pub fn is_valid(&self) -> bool {
        !self.digests.is_empty() && self.digests.len() <= MAX_WANTED
    }
}

/// An event's digest: SHA-256 over its signed words. On the wire, 64
/// lowercase hex characters.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", hex::encode(&self.0[..4]))
    }
}

crate::hex_serde::impl_hex_serde!(Digest, 32);

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
    // The hash chain: what it commits to is signed too.
    match &event.prev {
        Some(prev) => {
            h.update([1u8]);
            h.update(prev.as_bytes());
        }
        None => h.update([0u8]),
    }
    h.update((event.refs.len() as u64).to_be_bytes());
    for r in &event.refs {
        h.update(r.as_bytes());
    }
    Digest(h.finalize().into())
}

/// The digest of the event `author` seals as `ev`.
pub fn wire_digest(author: PeerId, ev: &crate::wire::EventWire) -> Digest {
    digest(&Event {
        id: crate::clock::EventId::new(author, ev.seq),
        lamport: ev.lamport,
        deps: ev.deps.clone(),
        time: ev.time,
        name: ev.name.clone(),
        body: ev.body.clone(),
        token: String::new(),
        floor: 0,
        token_len: 0,
        prev: ev.prev,
        refs: ev.refs.clone(),
        digest: Digest::default(),
    })
}

/// A short form of `digest` for a summary stamped `stamp`: 8 bytes of
/// SHA-256 over both, so that two versions whose short forms collide
/// cannot be made before the stamp is known.
pub fn short(digest: &Digest, stamp: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(b"p2pchat/v1/head\0");
    h.update(stamp.to_be_bytes());
    h.update(digest.as_bytes());
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
    /// Authors proven, or proven at a lower number, since the last
    /// [`Forks::take_new`]; with whether it is the first proof.
    new: Vec<(PeerId, bool)>,
}

impl Forks {
    /// Keeps `fork` if it is the first of its author, or a lower number
    /// than the one kept. Returns whether the author is newly proven.
    /// Either way the fork is passed on ([`Forks::take_new`]).
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
                    if !self.new.iter().any(|(a, _)| *a == author) {
                        self.new.push((author, false));
                    }
                }
                false
            }
            None if full => false,
            None => {
                self.by_author.insert(author, fork);
                self.new.push((author, true));
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

    /// Authors proven (`true`) or proven at a lower number (`false`)
    /// since the last call.
    pub fn take_new(&mut self) -> Vec<(PeerId, bool)> {
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
        .filter(|((author, seq), _)| *seq <= history.shared_vector().get(author))
        .filter_map(|((author, seq), head)| {
            let ours = history.get(&crate::clock::EventId::new(*author, seq))?;
            (short(&ours.digest, summary.stamp) != *head).then_some(ours)
        })
        .take(MAX_CONFLICTS_PER_SUMMARY)
        .collect()
}

/// The heads of `history` for a summary stamped `stamp`, in the order of
/// its version vector.
pub fn heads(history: &History, stamp: u64) -> Vec<u64> {
    history
        .shared_vector()
        .iter()
        .map(|(author, _)| history.head_digest(author).map_or(0, |d| short(&d, stamp)))
        .collect()
}

/// A member wants exact versions: sends each we hold, and the versions
/// before it on its author's chain as far as we hold them, newest first,
/// at most [`MAX_SENT_PER_WANT`] events and one batch of bytes in all,
/// within the member's repair budget ([`crate::replication`]).
pub(crate) fn on_want(want: Want, at: crate::room::Incoming<'_>, out: &mut Outbox<'_>) {
    let crate::room::Incoming {
        now,
        from,
        history,
        repl,
        link,
        ..
    } = at;
    let mut seen: std::collections::BTreeSet<Digest> = std::collections::BTreeSet::new();
    let mut chosen: Vec<&Arc<Event>> = Vec::new();
    let mut bytes = 0usize;
    let max_bytes = crate::replication::ReplicationConfig::default().batch_bytes;
    'wanted: for digest in &want.digests {
        let mut next = history.version(digest);
        while let Some(event) = next {
            if chosen.len() >= MAX_SENT_PER_WANT || bytes >= max_bytes {
                break 'wanted;
            }
            if !seen.insert(event.digest) {
                break;
            }
            bytes = bytes.saturating_add(event.token_len);
            chosen.push(event);
            next = event.prev.as_ref().and_then(|p| history.version(p));
        }
    }
    let allowed = repl.spend(now, from.peer, chosen.len());
    if allowed < chosen.len() {
        out.counters().rate_limited += 1;
    }
    for event in chosen.into_iter().take(allowed) {
        link.send(from.addr, event, out);
    }
}

/// Asks `to` for the versions our waiting events need, if any.
pub(crate) fn want(
    history: &History,
    link: &Link,
    now: crate::UnixMillis,
    to: std::net::SocketAddr,
    out: &mut Outbox<'_>,
) {
    let digests = history.wanted(MAX_WANTED);
    if digests.is_empty() {
        return;
    }
    let stamp = out.stamp(now);
    link.control(
        now,
        to,
        crate::wire::Control::Want(Want { stamp, digests }),
        out,
    );
}

/// How often the versions waiting events need are asked of every member.
pub const WANT_RETRY_MS: u64 = 1_000;

/// Time passed: if waiting events still need versions nobody sent, asks
/// every member believed online (whoever holds them answers), at most
/// every [`WANT_RETRY_MS`].
pub(crate) fn on_timeout(
    history: &History,
    members: &Members,
    link: &Link,
    asked_at: &mut crate::UnixMillis,
    now: crate::UnixMillis,
    out: &mut Outbox<'_>,
) {
    if now < asked_at.saturating_add(WANT_RETRY_MS) || history.wanted(1).is_empty() {
        return;
    }
    *asked_at = now;
    for (_, addr) in push_targets(members.live()) {
        want(history, link, now, addr, out);
    }
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
    for (author, first) in history.forks_mut().take_new() {
        let Some(fork) = history.forks().get(&author) else {
            continue;
        };
        if first {
            out.event(AppEvent::Equivocation {
                room,
                author,
                seq: fork.seq(),
            });
        }
        for (_, addr) in push_targets(members.live()) {
            for version in [&fork.held, &fork.other] {
                link.send(addr, version, out);
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
            token_len: 0,
            prev: None,
            refs: Vec::new(),
            digest: Default::default(),
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
        assert_eq!(forks.take_new(), vec![(author, true)]);
        assert!(forks.take_new().is_empty());
        // A lower one still is passed on, not told again.
        let lowest = |text: &str| {
            let mut e = event(text);
            e.id.seq = 1;
            Arc::new(e)
        };
        assert!(!forks.record(Fork {
            held: lowest("one"),
            other: lowest("two"),
        }));
        assert_eq!(forks.take_new(), vec![(author, false)]);
    }
}
