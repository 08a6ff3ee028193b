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
//!
//!    The budget **paces, it never stalls**: when it cannot pay for what
//!    the summary asks (a whole batch, or all that is missing if less, or
//!    `burst` if that is smaller), the answer — push and reply summary
//!    together — is *owed*, and given at the moment the budget can pay.
//!    A peer has at most one answer owed (a newer summary replaces it),
//!    so a member asking faster than the budget gets `rate` events a
//!    second and makes the node hold nothing more. (Answering at once with
//!    the little the budget held made rounds of a handful of events, or of
//!    none, which the asker took for no progress and retried a second
//!    later: a catch-up that asked fast enough stalled on its own speed.)
//! 3. An asker still behind after a response asks again as soon as the
//!    events the response says were pushed (`pushed`) are delivered — at
//!    once if they came first, later if the answer overtook them — as long
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

use serde::{Deserialize, Serialize};

use crate::clock::{EventId, VersionVector};
use crate::equivocation;
use crate::history::{History, MAX_AUTHORS};
use crate::identity::PeerId;
use crate::membership::{Members, Status};
use crate::output::AppEvent;
use crate::rate::TokenBucket;
use crate::room::{Incoming, Link, Outbox, RoomId, Sender};
use crate::store::Entry;
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
    /// In an answer: how many events the sender pushed just before it,
    /// so the asker asks again once they are delivered, not before (an
    /// answer may overtake its events). Zero in a question.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pushed: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
            // Above what a late joiner takes in (about 28,000 a second on
            // 2 cores): the budget bounds what one member can make this
            // node send, it should not pace an honest catch-up (at 20,000
            // it did: 100,000 events took exactly 5 s).
            rate: 100_000,
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
    /// An answer the budget could not pay for yet.
    owed: Option<Owed>,
    /// Its answer came before the events it pushed: ask again once this
    /// many events are delivered.
    awaiting: Option<u64>,
    /// Our last question to it has had no answer yet.
    unanswered: bool,
}

/// A summary to answer once the budget can pay for it.
#[derive(Clone, Debug)]
struct Owed {
    /// When the budget will hold enough.
    due: UnixMillis,
    /// Where the summary came from.
    addr: SocketAddr,
    /// What it said the peer holds.
    vv: VersionVector,
    /// Whether it asked for our summary in return.
    reply: bool,
}

/// What to do with a summary.
#[derive(Debug)]
pub enum Answer {
    /// Push these events now (and reply, if asked).
    Now(Push),
    /// The budget cannot pay for the push yet: it is owed, with the reply.
    Later,
}

/// A room's anti-entropy state.
#[derive(Clone, Debug, Default)]
pub struct Replication {
    config: ReplicationConfig,
    peers: BTreeMap<PeerId, PeerSync>,
    /// Some member was known to hold events we lacked (for
    /// [`AppEvent::CaughtUp`]).
    was_behind: bool,
    /// Peers whose `awaiting` is set (so a delivery looks at no others).
    awaiting: Vec<PeerId>,
}

/// What to push to a peer.
#[derive(Clone, Debug, Default)]
pub struct Push {
    /// The events, in canonical order (their tokens are read from the
    /// store to be sent).
    pub events: Vec<EventId>,
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
            awaiting: Vec::new(),
        }
    }

    /// Keeps only the peers for which `keep` holds (the room's current
    /// members), so the map is bounded by the member table.
    pub fn retain_peers(&mut self, mut keep: impl FnMut(&PeerId) -> bool) {
        self.peers.retain(|p, _| keep(p));
        let peers = &self.peers;
        self.awaiting.retain(|p| peers.contains_key(p));
    }

    /// A summary `theirs` came from `peer` at `addr`, asking for a reply
    /// or not: what to push to it now, or whether the answer is owed (see
    /// the module's doc).
    pub fn on_summary(
        &mut self,
        now: UnixMillis,
        peer: PeerId,
        addr: SocketAddr,
        theirs: VersionVector,
        reply: bool,
        history: &History,
    ) -> Answer {
        let ReplicationConfig {
            batch,
            batch_bytes,
            rate,
            burst,
            ..
        } = self.config;
        let (entries, mut more) = missing_for(history, &theirs, batch, batch_bytes);
        let mut events: Vec<EventId> = entries.iter().map(|e| e.key.id()).collect();
        let wanted = events.len();
        let available = self.available(now, peer);
        let enough = wanted.min(usize::try_from(burst).unwrap_or(usize::MAX));
        let sync = self.peers.entry(peer).or_default();
        sync.theirs = Some(theirs.clone());
        if available < enough {
            // Earned at `rate` per second, in thousandths of a token.
            let short = (enough - available) as u64;
            let wait = short.saturating_mul(1000).div_ceil(rate.max(1));
            sync.owed = Some(Owed {
                due: now.saturating_add(wait),
                addr,
                vv: theirs,
                reply,
            });
            return Answer::Later;
        }
        sync.owed = None;
        let rate_limited = available < wanted;
        if rate_limited {
            events.truncate(available);
            more = true;
        }
        self.spend(now, peer, events.len());
        Answer::Now(Push {
            events,
            more,
            rate_limited,
        })
    }

    /// The owed answers due at `now`: `(peer, addr, vv, reply)` each, to be
    /// given as if the summary came now (which takes them off the books,
    /// or owes them again if the budget was spent meanwhile).
    pub fn take_due(&mut self, now: UnixMillis) -> Vec<(PeerId, SocketAddr, VersionVector, bool)> {
        let mut due = Vec::new();
        for (peer, sync) in &mut self.peers {
            if sync.owed.as_ref().is_some_and(|o| o.due <= now) {
                if let Some(o) = sync.owed.take() {
                    due.push((*peer, o.addr, o.vv, o.reply));
                }
            }
        }
        due
    }

    /// When the next owed answer is due, if any.
    pub fn next_owed(&self) -> Option<UnixMillis> {
        self.peers
            .values()
            .filter_map(|s| s.owed.as_ref().map(|o| o.due))
            .min()
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
            sync.awaiting = None;
            sync.unanswered = true;
        }
        ask
    }

    /// `peer` asks us while our own question to it has gone unanswered
    /// and it holds events we lack: whether our answer should ask again.
    /// A question sent before the peer had proved our address was dropped
    /// there (see [`crate::path`]); its question shows it now takes ours,
    /// so a joiner's first round need not wait for the retry timer.
    pub fn ask_back(&mut self, now: UnixMillis, peer: PeerId, delivered: u64) -> bool {
        let sync = self.peers.entry(peer).or_default();
        let ask = sync.unanswered
            && sync
                .theirs
                .as_ref()
                .is_some_and(|_| sync.asked_at.is_some_and(|at| at < now));
        if ask {
            sync.asked_at = Some(now);
            sync.delivered_when_asked = delivered;
            sync.awaiting = None;
        }
        ask
    }

    /// `peer` answered our question, saying it pushed `pushed` events
    /// first: whether to ask again now (when we are still behind it). If
    /// they are not all delivered yet, the question waits for them
    /// ([`Replication::take_arrived`]) or for the retry timer.
    pub fn on_answer(
        &mut self,
        now: UnixMillis,
        peer: PeerId,
        pushed: u32,
        delivered: u64,
    ) -> bool {
        let sync = self.peers.entry(peer).or_default();
        sync.unanswered = false;
        let target = sync.delivered_when_asked.saturating_add(u64::from(pushed));
        if delivered < target {
            sync.awaiting = Some(target);
            if !self.awaiting.contains(&peer) {
                self.awaiting.push(peer);
            }
            return false;
        }
        self.should_ask(now, peer, true, delivered)
    }

    /// Events were delivered (`delivered` in all): the peers whose
    /// answer was waiting for them, to be asked again now.
    pub fn take_arrived(&mut self, now: UnixMillis, delivered: u64) -> Vec<PeerId> {
        if self.awaiting.is_empty() {
            return Vec::new();
        }
        let mut ready = Vec::new();
        let peers = &mut self.peers;
        self.awaiting.retain(|peer| {
            let Some(sync) = peers.get_mut(peer) else {
                return false;
            };
            match sync.awaiting {
                Some(target) if delivered >= target => {
                    sync.awaiting = None;
                    sync.asked_at = Some(now);
                    sync.delivered_when_asked = delivered;
                    ready.push(*peer);
                    false
                }
                Some(_) => true,
                None => false,
            }
        });
        ready
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

/// Events of one author's missing run read at a time ([`missing_for`]).
const RUN_CHUNK: usize = 32;

/// The events in `history` that a peer with vector `theirs` lacks, in
/// canonical order, at most `limit` of them and `max_bytes` of tokens (but
/// at least one); and whether there were more. Read as entries (place and
/// token length): the events themselves are not needed to send them.
pub fn missing_for(
    history: &History,
    theirs: &VersionVector,
    limit: usize,
    max_bytes: usize,
) -> (Vec<Entry>, bool) {
    let mine = history.shared_vector();
    // k-way merge by order key of each author's missing run, each read a
    // few events at a time (older ones come from the store, and a round
    // usually ends at its byte budget long before `limit`).
    let chunk = limit.saturating_add(1).min(RUN_CHUNK);
    let mut runs: Vec<(PeerId, std::collections::VecDeque<Entry>)> = Vec::new();
    let mut heap = BinaryHeap::new();
    for (author, from, _) in theirs.lacking_from(mine) {
        let run: std::collections::VecDeque<Entry> =
            history.entries_from(&author, from, chunk).into();
        if let Some(first) = run.front() {
            heap.push(Reverse((first.key, runs.len())));
            runs.push((author, run));
        }
    }
    let mut out: Vec<Entry> = Vec::new();
    let mut bytes = 0usize;
    while let Some(Reverse((_, i))) = heap.pop() {
        let (author, run) = &mut runs[i];
        let Some(entry) = run.pop_front() else {
            continue;
        };
        bytes = bytes.saturating_add(entry.token_len);
        if out.len() >= limit || (!out.is_empty() && bytes > max_bytes) {
            return (out, true);
        }
        if run.is_empty() {
            run.extend(history.entries_from(author, entry.key.seq.saturating_add(1), chunk));
        }
        if let Some(next) = run.front() {
            heap.push(Reverse((next.key, i)));
        }
        out.push(entry);
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
            send_summary(history, link, now, from.addr, Ask, out);
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
    answer(
        repl,
        history,
        link,
        now,
        from,
        summary.vv,
        summary.reply,
        out,
    );
    if !summary.reply {
        let delivered = history.len() as u64;
        if repl.is_behind(&sender, history.shared_vector())
            && repl.on_answer(now, sender, summary.pushed, delivered)
        {
            send_summary(history, link, now, addr, Ask, out);
        }
    }
    check_caught_up(repl, history, room, out);
}

/// Events were delivered: ask again whoever answered before its events
/// arrived, now that they have.
pub(crate) fn on_delivered(
    repl: &mut Replication,
    history: &History,
    members: &Members,
    link: &Link,
    now: UnixMillis,
    out: &mut Outbox<'_>,
) {
    let delivered = history.len() as u64;
    for peer in repl.take_arrived(now, delivered) {
        let addr = members.get(&peer).and_then(|m| m.addr);
        if let Some(addr) = addr.filter(|_| repl.is_behind(&peer, history.shared_vector())) {
            send_summary(history, link, now, addr, Ask, out);
        }
    }
}

/// Pushes what a summary `theirs` from `from` lacks and replies if it
/// asked, now or, if the budget cannot pay yet, when it can.
#[allow(clippy::too_many_arguments)]
fn answer(
    repl: &mut Replication,
    history: &History,
    link: &Link,
    now: UnixMillis,
    from: Sender,
    theirs: VersionVector,
    reply: bool,
    out: &mut Outbox<'_>,
) {
    let Sender { peer, addr } = from;
    match repl.on_summary(now, peer, addr, theirs, reply, history) {
        Answer::Later => out.counters().rate_limited += 1,
        Answer::Now(push) => {
            if push.rate_limited {
                out.counters().rate_limited += 1;
            }
            for id in &push.events {
                // Delivered events are kept without their tokens: read
                // from the store, then sent.
                out.read(addr, *id);
            }
            if reply {
                let pushed = u32::try_from(push.events.len()).unwrap_or(u32::MAX);
                let ask = repl.is_behind(&peer, history.shared_vector())
                    && repl.ask_back(now, peer, history.len() as u64);
                send_summary(history, link, now, addr, Reply { pushed, ask }, out);
            }
        }
    }
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
            send_summary(history, link, now, addr, Ask, out);
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
    for (peer, addr, theirs, reply) in repl.take_due(now) {
        answer(
            repl,
            history,
            link,
            now,
            Sender { peer, addr },
            theirs,
            reply,
            out,
        );
    }
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
        send_summary(history, link, now, addr, Ask, out);
    }
}

/// Why a summary is sent.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Purpose {
    /// A question: the receiver pushes what we lack and answers.
    Ask,
    /// The answer to a question, after `pushed` events; `ask` makes it a
    /// question too.
    Reply { pushed: u32, ask: bool },
}
use Purpose::{Ask, Reply};

/// Sends our version vector to `to`, as a question or an answer. It goes
/// ahead of the batch being stored, unless something for `to` is queued
/// before it (see [`crate::output`]): an asker catching up asks for the
/// next round while the last one is being stored.
pub(crate) fn send_summary(
    history: &History,
    link: &Link,
    now: UnixMillis,
    to: SocketAddr,
    purpose: Purpose,
    out: &mut Outbox<'_>,
) {
    let stamp = out.stamp(now);
    let vv = history.shared_vector().clone();
    let heads = equivocation::heads(history, stamp);
    let (reply, pushed) = match purpose {
        Ask => (true, 0),
        Reply { pushed, ask } => (ask, pushed),
    };
    let summary = Summary {
        stamp,
        vv,
        reply,
        heads,
        pushed,
    };
    // It names events, it carries none: it need not wait for the store.
    let datagrams = link.control_datagrams(now, Control::Summary(summary), out);
    out.transmit_ahead(to, datagrams);
}
