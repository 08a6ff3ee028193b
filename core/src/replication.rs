//! Replication: anti-entropy, so that every member ends up with every event.
//!
//! New events are pushed at once to every member believed online; UDP may
//! lose them, members may be away, and late joiners have seen nothing, so
//! members also repair differences:
//!
//! 1. Every heartbeat carries a digest of the sender's version vector. A
//!    receiver whose own digest differs sends a **summary** — its whole
//!    version vector — asking for the other's in return (`reply`).
//! 2. Whoever receives a summary pushes the events the other lacks, in
//!    canonical order (so they can be delivered as they arrive), at most
//!    `batch` events and `batch_bytes` bytes of tokens per summary (so one
//!    round fits the receiver's socket buffer: a datagram the kernel drops
//!    costs a round), and within a per-peer **rate budget**
//!    (a token bucket of `rate` events per second, `burst` at once). If it
//!    was asked, it answers with its own summary, saying whether it had
//!    more to send; the asker then pushes what *it* has that the other
//!    lacks.
//! 3. An asker still behind after a response asks again at once, as long
//!    as the last round made progress, without waiting for the last
//!    round to be stored (a summary names events, it carries none);
//!    otherwise the next heartbeat (or the retry timer) starts a new
//!    round. So a late joiner pulls a
//!    long history in back-to-back batches, and a lost datagram costs one
//!    round, not the event.
//!
//! The push to "every member believed online" is the one place that grows
//! with the room; it is isolated in [`push_targets`] so that it can become
//! gossip with a bounded fan-out for large rooms.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::VersionVector;
use crate::equivocation;
use crate::history::{Event, History, MAX_AUTHORS};
use crate::identity::PeerId;
use crate::membership::{Members, Status};
use crate::output::AppEvent;
use crate::rate::TokenBucket;
use crate::room::{Incoming, Link, Outbox, RoomId, Sender};
use crate::wire::Control;
use crate::UnixMillis;

/// Anti-entropy summary: the sender's whole version vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Replay guard.
    pub stamp: u64,
    /// What the sender has delivered.
    pub vv: VersionVector,
    /// The sender asks for the receiver's summary in return.
    pub reply: bool,
    /// Per author of `vv`, in its order: a short digest of the newest
    /// event the sender holds ([`crate::equivocation::short`] keyed with
    /// `stamp`). Empty from older nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<u64>,
}

impl Summary {
    /// Whether the contents keep the limits: a room has at most
    /// [`MAX_AUTHORS`] authors.
    pub fn is_valid(&self) -> bool {
        self.vv.authors() <= MAX_AUTHORS
            && (self.heads.is_empty() || self.heads.len() == self.vv.authors())
    }
}

/// Replication tuning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// Most events pushed in answer to one summary.
    pub batch: usize,
    /// Most token bytes pushed in answer to one summary (at least one
    /// event is always pushed).
    pub batch_bytes: usize,
    /// Sustained events per second pushed to one peer for repair.
    pub rate: u64,
    /// Events that may be pushed to one peer at once.
    pub burst: u64,
    /// How long to wait for an answer to a summary before asking again.
    pub retry_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            batch: 256,
            batch_bytes: 64 * 1024,
            rate: 20_000,
            burst: 1_024,
            retry_ms: 1_000,
        }
    }
}

/// Per-peer repair state.
#[derive(Clone, Debug, Default)]
struct PeerSync {
    /// Events it may still be pushed now; full at first contact.
    budget: Option<TokenBucket>,
    /// When a summary asking for a reply was last sent, and how many
    /// events we had delivered then.
    asked_at: Option<UnixMillis>,
    delivered_when_asked: u64,
    /// The peer's last known version vector.
    theirs: Option<VersionVector>,
}

/// A room's anti-entropy state.
#[derive(Clone, Debug, Default)]
pub struct Replication {
    config: ReplicationConfig,
    peers: BTreeMap<PeerId, PeerSync>,
    /// Some member was known to hold events we lacked (for
    /// [`AppEvent::CaughtUp`]).
    was_behind: bool,
}

/// What to push to a peer.
#[derive(Clone, Debug, Default)]
pub struct Push {
    /// The events, in canonical order.
    pub events: Vec<Arc<Event>>,
    /// The peer lacks more than was taken.
    pub more: bool,
    /// The per-peer rate budget held some back.
    pub rate_limited: bool,
}

impl Replication {
    /// Fresh state.
    pub fn new(config: ReplicationConfig) -> Self {
        Replication {
            config,
            peers: BTreeMap::new(),
            was_behind: false,
        }
    }

    /// Keeps only the peers for which `keep` holds (the room's current
    /// members), so the map is bounded by the member table.
    pub fn retain_peers(&mut self, mut keep: impl FnMut(&PeerId) -> bool) {
        self.peers.retain(|p, _| keep(p));
    }

    /// A summary `theirs` came from `peer`: what to push to it now.
    pub fn on_summary(
        &mut self,
        now: UnixMillis,
        peer: PeerId,
        theirs: VersionVector,
        history: &History,
    ) -> Push {
        let config = self.config;
        let allowed = self.available(now, peer).min(config.batch);
        let (events, more_than_taken) = missing_for(history, &theirs, allowed, config.batch_bytes);
        self.spend(now, peer, events.len());
        // Held back by the budget (not by the batch limits).
        let rate_limited = more_than_taken && allowed < config.batch && events.len() == allowed;
        self.peers.entry(peer).or_default().theirs = Some(theirs);
        Push {
            events,
            more: more_than_taken,
            rate_limited,
        }
    }

    /// Spends up to `n` events of `peer`'s repair budget at `now`; returns
    /// how many may be sent (what a [`crate::equivocation::Want`] is
    /// answered with counts against the same budget as pushes).
    pub fn spend(&mut self, now: UnixMillis, peer: PeerId, n: usize) -> usize {
        let allowed = self.available(now, peer).min(n);
        self.bucket(now, peer).spend(allowed as u64);
        allowed
    }

    /// Events `peer`'s repair budget allows at `now`.
    fn available(&mut self, now: UnixMillis, peer: PeerId) -> usize {
        let ReplicationConfig { rate, burst, .. } = self.config;
        let budget = self.bucket(now, peer).available(now, rate, burst);
        usize::try_from(budget).unwrap_or(usize::MAX)
    }

    /// `peer`'s repair budget, full at first contact.
    fn bucket(&mut self, now: UnixMillis, peer: PeerId) -> &mut TokenBucket {
        let burst = self.config.burst;
        self.peers
            .entry(peer)
            .or_default()
            .budget
            .get_or_insert_with(|| TokenBucket::full(burst, now))
    }

    /// Whether to ask `peer` for a summary now: it has (or may have) events
    /// we lack, and no question is outstanding — or the last one was
    /// answered with progress, or went unanswered for `retry_ms`.
    pub fn should_ask(
        &mut self,
        now: UnixMillis,
        peer: PeerId,
        answered: bool,
        delivered: u64,
    ) -> bool {
        let retry = self.config.retry_ms;
        let sync = self.peers.entry(peer).or_default();
        let ask = match sync.asked_at {
            None => true,
            Some(at) if answered => {
                delivered > sync.delivered_when_asked || now.saturating_sub(at) >= retry
            }
            Some(at) => now.saturating_sub(at) >= retry,
        };
        if ask {
            sync.asked_at = Some(now);
            sync.delivered_when_asked = delivered;
        }
        ask
    }

    /// Whether `peer` is known to hold events we lack.
    pub fn is_behind(&self, peer: &PeerId, mine: &VersionVector) -> bool {
        self.peers
            .get(peer)
            .and_then(|s| s.theirs.as_ref())
            .is_some_and(|theirs| mine.lacks_any_of(theirs))
    }

    /// Peers known to hold events we lack.
    pub fn ahead_of<'a>(&'a self, mine: &'a VersionVector) -> impl Iterator<Item = PeerId> + 'a {
        self.peers
            .iter()
            .filter(|(_, s)| s.theirs.as_ref().is_some_and(|t| mine.lacks_any_of(t)))
            .map(|(p, _)| *p)
    }

    /// Forgets what `peer` was known to hold, so it no longer counts as
    /// ahead (it went offline; it will say again when it is back).
    pub fn forget_vv(&mut self, peer: &PeerId) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.theirs = None;
        }
    }

    /// When an unanswered question should be retried, if any.
    pub fn next_retry(&self, mine: &VersionVector) -> Option<UnixMillis> {
        self.peers
            .values()
            .filter(|s| s.theirs.as_ref().is_some_and(|t| mine.lacks_any_of(t)))
            .filter_map(|s| s.asked_at)
            .map(|at| at.saturating_add(self.config.retry_ms))
            .min()
    }
}

/// The events in `history` that a peer with vector `theirs` lacks, in
/// canonical order, at most `limit` of them and `max_bytes` of tokens (but
/// at least one); and whether there were more.
pub fn missing_for(
    history: &History,
    theirs: &VersionVector,
    limit: usize,
    max_bytes: usize,
) -> (Vec<Arc<Event>>, bool) {
    let mine = history.shared_vector();
    // k-way merge by order key of each author's missing run.
    let mut runs: Vec<&[Arc<Event>]> = Vec::new();
    let mut heap = BinaryHeap::new();
    for (author, from, _) in theirs.lacking_from(mine) {
        let run = history.range_of(&author, from);
        if let Some(first) = run.first() {
            heap.push(Reverse((first.key(), runs.len(), 0usize)));
            runs.push(run);
        }
    }
    let mut out: Vec<Arc<Event>> = Vec::new();
    let mut bytes = 0usize;
    while let Some(Reverse((_, run, idx))) = heap.pop() {
        let event = &runs[run][idx];
        bytes = bytes.saturating_add(event.token_len);
        if out.len() >= limit || (!out.is_empty() && bytes > max_bytes) {
            return (out, true);
        }
        out.push(Arc::clone(event));
        if let Some(next) = runs[run].get(idx + 1) {
            heap.push(Reverse((next.key(), run, idx + 1)));
        }
    }
    (out, false)
}

/// The members a new event is pushed to at once: today every member
/// believed online or suspect. A gossip fan-out would choose a bounded
/// random subset here.
pub fn push_targets<I>(live: I) -> Vec<(PeerId, SocketAddr)>
where
    I: IntoIterator<Item = (PeerId, SocketAddr)>,
{
    live.into_iter().collect()
}

// ----- the room's replication traffic ---------------------------------------

/// Pushes a new event (its datagrams) to the members it goes to at once.
pub(crate) fn push_new(members: &Members, datagrams: &[Vec<u8>], out: &mut Outbox<'_>) {
    for (_, addr) in push_targets(members.live()) {
        for bytes in datagrams {
            out.transmit(addr, bytes.clone());
        }
    }
}

/// A member's heartbeat carried `digest`: if it differs from ours, ask for
/// its summary (unless a question is out already).
pub(crate) fn on_digest(
    repl: &mut Replication,
    history: &History,
    link: &Link,
    now: UnixMillis,
    from: Sender,
    digest: u64,
    out: &mut Outbox<'_>,
) {
    if digest != history.state_digest() {
        let delivered = history.len() as u64;
        if repl.should_ask(now, from.peer, false, delivered) {
            send_summary(history, link, now, from.addr, true, out);
        }
    }
}

/// A summary from a member: push what it lacks, answer if it asked, ask
/// again if it has more than we do.
pub(crate) fn on_summary(summary: Summary, at: Incoming<'_>, out: &mut Outbox<'_>) {
    let Incoming {
        now,
        from,
        room,
        history,
        repl,
        link,
        ..
    } = at;
    let Sender { peer: sender, addr } = from;
    // Versions of events the sender holds differently: it proves the fork.
    for event in equivocation::conflicting(history, &summary) {
        link.send(addr, &event, out);
    }
    let push = repl.on_summary(now, sender, summary.vv, history);
    if push.rate_limited {
        out.counters().rate_limited += 1;
    }
    for event in &push.events {
        link.send(addr, event, out);
    }
    if summary.reply {
        send_summary(history, link, now, addr, false, out);
    } else {
        let delivered = history.len() as u64;
        if repl.is_behind(&sender, history.shared_vector())
            && repl.should_ask(now, sender, true, delivered)
        {
            send_summary(history, link, now, addr, true, out);
        }
    }
    check_caught_up(repl, history, room, out);
}

/// An event from `sender` waits for something it depends on: ask whoever
/// sent it for what it has.
pub(crate) fn on_gap(
    repl: &mut Replication,
    history: &History,
    members: &Members,
    link: &Link,
    now: UnixMillis,
    sender: PeerId,
    out: &mut Outbox<'_>,
) {
    let addr = members.get(&sender).and_then(|m| m.addr);
    let delivered = history.len() as u64;
    if let Some(addr) = addr {
        if repl.should_ask(now, sender, false, delivered) {
            send_summary(history, link, now, addr, true, out);
            // Versions of another branch it named: only asking finds them.
            equivocation::want(history, link, now, addr, out);
        }
    }
}

/// Tells the user once every member known to be ahead has been caught up
/// with.
pub(crate) fn check_caught_up(
    repl: &mut Replication,
    history: &History,
    room: RoomId,
    out: &mut Outbox<'_>,
) {
    let behind = repl.ahead_of(history.shared_vector()).next().is_some();
    if repl.was_behind && !behind {
        out.event(AppEvent::CaughtUp {
            room,
            events: history.len(),
        });
    }
    repl.was_behind = behind;
}

/// Time passed: forget the state of members no longer in the table, and
/// ask again where a question went unanswered.
pub(crate) fn on_timeout(
    repl: &mut Replication,
    history: &History,
    members: &Members,
    link: &Link,
    now: UnixMillis,
    out: &mut Outbox<'_>,
) {
    // Replication state only for members still in the table (which is
    // bounded): a forgotten member's state goes with it.
    repl.retain_peers(|p| members.get(p).is_some());
    let delivered = history.len() as u64;
    let ahead: Vec<PeerId> = repl.ahead_of(history.shared_vector()).collect();
    let mut ask = Vec::new();
    for peer in ahead {
        let addr = members
            .get(&peer)
            .filter(|m| m.status != Status::Offline)
            .and_then(|m| m.addr);
        match addr {
            Some(addr) => {
                if repl.should_ask(now, peer, false, delivered) {
                    ask.push(addr);
                }
            }
            // Unreachable: stop counting on it (and stop the retry timer)
            // until it speaks again.
            None => repl.forget_vv(&peer),
        }
    }
    for addr in ask {
        send_summary(history, link, now, addr, true, out);
    }
}

/// Sends our version vector to `to`; `reply` asks for theirs. It goes
/// ahead of the batch being stored, unless something for `to` is queued
/// before it (see [`crate::output`]): an asker catching up asks for the
/// next round while the last one is being stored.
pub(crate) fn send_summary(
    history: &History,
    link: &Link,
    now: UnixMillis,
    to: SocketAddr,
    reply: bool,
    out: &mut Outbox<'_>,
) {
    let stamp = out.stamp(now);
    let vv = history.shared_vector().clone();
    let heads = equivocation::heads(history, stamp);
    let summary = Summary {
        stamp,
        vv,
        reply,
        heads,
    };
    // It names events, it carries none: it need not wait for the store.
    let datagrams = link.control_datagrams(now, Control::Summary(summary), out);
    out.transmit_ahead(to, datagrams);
}
