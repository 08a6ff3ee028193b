//! History: a room's events, delivered in causal order and shown in one
//! canonical order.
//!
//! An event arriving from the network is **delivered** (handed to the
//! application and kept for good) only when everything it causally depends
//! on is already delivered: the author's previous event and every event in
//! its `deps`. Until then it waits in a bounded **pending buffer**. Missing
//! events are fetched by replication; a pending event that waits too long
//! is evicted and will simply be fetched again later.
//!
//! On delivery the Lamport rule of [`crate::clock`] is checked against the
//! delivered dependencies. The check uses only the event and its causal
//! past, so every member reaches the same verdict, and an event that breaks
//! the rule is refused everywhere.
//!
//! Delivered events are kept in the room's **canonical order**, by
//! [`OrderKey`] `(lamport, author)`. That order extends causality, so once
//! two members hold the same events they show the same history in the same
//! order, whatever order the events arrived in. An event that sorts before
//! messages written well after it without knowing it is marked **late**
//! ([`crate::lateness`]), the same on every member and for a late joiner;
//! a UI places it where it sorts and can say so.
//!
//! **Times.** An event's `time` is its author's word: it is shown, never
//! used to order. What is shown is clamped to the event's causal past: an
//! event is never shown as written before the author's previous event or
//! any of its dependencies ([`Event::shown_time`]). An event whose own time
//! is more than [`BACKDATE_TOLERANCE_MS`] before that is marked
//! **backdated** ([`Event::backdated`]). Both follow from the event and its
//! causal past alone, so every member, a late joiner and a restarted node
//! alike, shows the same times and marks. An honest author writes
//! `max(now, that floor)` and is never marked, whatever its clock. An
//! event stamped more than [`MAX_FUTURE_MS`] after the receiver's clock is
//! not taken yet (dropped and counted as `from_the_future`; replication
//! offers it again later, and it is taken once its time has come), so a
//! member cannot drag everyone's shown times into the future either.
//!
//! **Quotas.** On delivery each event is also charged against its
//! author's budgets in the room ([`crate::quota`]), at its shown time: an
//! event over quota is refused everywhere alike, like one that breaks the
//! Lamport rule, and the author's later events can then never be
//! delivered. This node's own next event is checked against the same
//! budgets before it is sealed.
//!
//! Limits: the pending buffer holds at most [`MAX_PENDING`] events and
//! [`MAX_PENDING_BYTES`] bytes of tokens; an event further than
//! [`MAX_AHEAD`] past its author's delivered sequence number, or naming
//! dependencies that far ahead, is refused outright; at most
//! [`MAX_AUTHORS`] authors per room.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{next_lamport, EventId, OrderKey, VersionVector, MAX_DEPS};
use crate::equivocation::{self, Digest, Fork, Forks};
use crate::identity::{PeerId, UserName};
use crate::lateness::Lateness;
use crate::node::CommandError;
use crate::output::AppEvent;
use crate::quota::{Budgets, Quota};
use crate::room::{Link, Outbox, RoomId};
use crate::store::Record;
use crate::wire::{self, EventWire, Sealed};
use crate::UnixMillis;

/// Most events waiting for their dependencies, per room.
pub const MAX_PENDING: usize = 4096;
/// Most token bytes waiting for their dependencies, per room.
pub const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;
/// How far past an author's delivered sequence number an event may be.
pub const MAX_AHEAD: u64 = MAX_PENDING as u64;
/// Most distinct authors in one room. A replication summary names every
/// author, and must fit one sealed payload (64 KiB): 512 authors at the
/// largest sequence numbers take about 45 KiB.
pub const MAX_AUTHORS: usize = 512;
/// How long an event may wait for its dependencies before it is evicted.
pub const PENDING_TTL_MS: u64 = 120_000;
/// How far before its causal past an event's own time may be before it is
/// marked backdated (clocks of honest members disagree a little).
pub const BACKDATE_TOLERANCE_MS: u64 = 60_000;
/// How far past the receiver's clock an event's time may be.
pub const MAX_FUTURE_MS: u64 = 5 * 60_000;

/// What an event says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// A chat message.
    Text {
        /// The message text (see [`crate::wire::validate_text`]).
        text: String,
    },
    /// A kind of event a newer version of p2pchat wrote. It is kept and
    /// replicated like any other, so the author's later events still flow,
    /// but there is nothing to show.
    #[serde(other)]
    Unsupported,
}

impl Body {
    /// What a person is shown: the text, or a placeholder for a kind of
    /// event this version cannot show.
    pub fn shown(&self) -> &str {
        match self {
            Body::Text { text } => text,
            Body::Unsupported => "(a kind of message this version cannot show)",
        }
    }
}

/// One event of a room, as delivered and stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Author and sequence number.
    pub id: EventId,
    /// Lamport time.
    pub lamport: u64,
    /// Causal dependencies: the heads the author had seen.
    pub deps: Vec<EventId>,
    /// The author's wall clock when writing, for display only.
    pub time: UnixMillis,
    /// The author's display name when writing.
    pub name: String,
    /// What the event says.
    pub body: Body,
    /// The author's sealed token, forwarded unchanged to other members so
    /// they can check the author's signature themselves.
    pub token: String,
    /// The latest shown time in the event's causal past (the author's
    /// previous event and the dependencies), set on delivery; 0 before.
    #[serde(skip)]
    pub floor: UnixMillis,
}

impl Event {
    /// The event's place in the canonical order.
    pub fn key(&self) -> OrderKey {
        OrderKey::new(self.lamport, self.id)
    }

    /// The time to show: the author's, but never before the causal past.
    pub fn shown_time(&self) -> UnixMillis {
        self.time.max(self.floor)
    }

    /// Whether `other` says exactly what this event says. Two tokens of
    /// one event may differ (any member can encrypt the author's signed
    /// words again), so this compares the signed contents, not tokens.
    pub fn same_words(&self, other: &Event) -> bool {
        self.id == other.id
            && self.lamport == other.lamport
            && self.deps == other.deps
            && self.time == other.time
            && self.name == other.name
            && self.body == other.body
    }

    /// The author's time is well before the event's causal past: it was
    /// set back, by a wrong clock or on purpose.
    pub fn backdated(&self) -> bool {
        self.time.saturating_add(BACKDATE_TOLERANCE_MS) < self.floor
    }
}

/// An event that was just delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The event.
    pub event: Arc<Event>,
    /// Late ([`crate::lateness`]): a message already here sorts after it,
    /// was written well after it and did not know it.
    pub late: bool,
}

/// Why an offered event was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Already delivered or already waiting.
    #[error("duplicate event")]
    Duplicate,
    /// Already delivered or waiting with different contents (not just
    /// another token of the same signed words): its author signed two
    /// different events with one sequence number. The first one stays;
    /// the pair is kept as proof ([`crate::equivocation`]).
    #[error("conflicting event for a held id (equivocation)")]
    Equivocation,
    /// Sequence number 0, or too far past what is delivered.
    #[error("sequence number out of range")]
    SeqOutOfRange,
    /// Too many, repeated, self-referencing or out-of-range dependencies.
    #[error("malformed dependencies")]
    BadDeps,
    /// The room already has [`MAX_AUTHORS`] authors.
    #[error("too many authors in this room")]
    TooManyAuthors,
    /// The pending buffer is full of events closer to delivery.
    #[error("pending buffer full")]
    BufferFull,
}

/// Drops and evictions inside the history, for the engine's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Pending events refused on delivery for breaking the Lamport rule.
    pub bad_lamport: u64,
    /// Pending events refused on delivery for being over their author's
    /// quota.
    pub over_quota: u64,
    /// Pending events evicted after [`PENDING_TTL_MS`] or to make room.
    pub evicted: u64,
}

/// A room's events: delivered ones in canonical order, and the pending
/// buffer.
#[derive(Debug, Default)]
pub struct History {
    by_author: HashMap<PeerId, Vec<Arc<Event>>>,
    order: BTreeMap<OrderKey, Arc<Event>>,
    vv: VersionVector,
    heads: BTreeSet<(u64, EventId)>,
    pending: BTreeMap<EventId, (Event, UnixMillis)>,
    pending_bytes: usize,
    stats: HistoryStats,
    budgets: Budgets,
    forks: Forks,
    lateness: Lateness,
    /// Per author, the digest of its newest delivered event, and that
    /// event's number (computed when first asked for).
    head_digests: RefCell<HashMap<PeerId, (u64, Digest)>>,
}

impl History {
    /// An empty history, under the default quota.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty history whose authors are held to `quota`.
    pub fn with_quota(quota: Quota) -> Self {
        History {
            budgets: Budgets::new(quota),
            ..Self::default()
        }
    }

    /// The authors' budgets.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// What is delivered, per author.
    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    /// Whether the delivered event `id` is late ([`crate::lateness`]).
    pub fn is_late(&self, id: &EventId) -> bool {
        self.lateness.is_late(id)
    }

    /// Events marked late after their delivery, since the last call.
    pub(crate) fn take_marked_late(&mut self) -> Vec<EventId> {
        self.lateness.take_marked()
    }

    /// The forks proven so far ([`crate::equivocation`]).
    pub fn forks(&self) -> &Forks {
        &self.forks
    }

    pub(crate) fn forks_mut(&mut self) -> &mut Forks {
        &mut self.forks
    }

    /// The digest of `author`'s newest delivered event, if any.
    pub fn head_digest(&self, author: &PeerId) -> Option<Digest> {
        let seq = self.vv.get(author);
        if let Some((at, d)) = self.head_digests.borrow().get(author) {
            if *at == seq {
                return Some(*d);
            }
        }
        let d = equivocation::digest(self.get(&EventId::new(*author, seq))?);
        self.head_digests.borrow_mut().insert(*author, (seq, d));
        Some(d)
    }

    /// A short digest of what is delivered: per author, how many events
    /// and the digest of the newest. Members holding different versions
    /// of an author's events have different state digests, so their
    /// heartbeats start a summary exchange that finds the fork.
    pub fn state_digest(&self) -> u64 {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        h.update(b"p2pchat/v1/state\0");
        for (author, seq) in self.vv.iter() {
            h.update(author.as_bytes());
            h.update(seq.to_be_bytes());
            h.update(self.head_digest(author).unwrap_or_default());
        }
        let out = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_be_bytes(first)
    }

    /// Number of delivered events.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is delivered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Number of events waiting for their dependencies.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Token bytes waiting for their dependencies.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Drops and evictions so far.
    pub fn stats(&self) -> HistoryStats {
        self.stats
    }

    /// Delivered events in canonical order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<Event>> {
        self.order.values()
    }

    /// The delivered event `id`.
    pub fn get(&self, id: &EventId) -> Option<&Arc<Event>> {
        let idx = usize::try_from(id.seq.checked_sub(1)?).ok()?;
        self.by_author.get(&id.author)?.get(idx)
    }

    /// `author`'s delivered events from `from_seq` on, in sequence order.
    pub fn range_of(&self, author: &PeerId, from_seq: u64) -> &[Arc<Event>] {
        let Some(events) = self.by_author.get(author) else {
            return &[];
        };
        let start = usize::try_from(from_seq.saturating_sub(1)).unwrap_or(usize::MAX);
        events.get(start..).unwrap_or(&[])
    }

    /// The floor of an event by `author` with sequence number `seq` and
    /// dependencies `deps`: the latest shown time among the delivered ones
    /// of its previous event and its dependencies.
    pub fn floor_of(&self, author: &PeerId, seq: u64, deps: &[EventId]) -> UnixMillis {
        let prev = seq
            .checked_sub(1)
            .filter(|s| *s > 0)
            .map(|s| EventId::new(*author, s));
        prev.iter()
            .chain(deps)
            .filter_map(|id| self.get(id))
            .map(|e| e.shown_time())
            .max()
            .unwrap_or(0)
    }

    /// What `author`'s next event must carry: its sequence number, its
    /// dependencies (the current heads, highest time first, at most
    /// [`MAX_DEPS`]) and its Lamport time.
    pub fn next_for(&self, author: &PeerId) -> Option<(u64, Vec<EventId>, u64)> {
        let seq = self.vv.get(author).checked_add(1)?;
        let deps: Vec<EventId> = self
            .heads
            .iter()
            .rev()
            .take(MAX_DEPS)
            .map(|(_, id)| *id)
            .collect();
        let lamport = next_lamport(self.heads.iter().rev().take(1).map(|(l, _)| *l))?;
        Some((seq, deps, lamport))
    }

    /// Offers an event (already decrypted and signature-checked) at time
    /// `now`. Returns the events delivered as a result, in delivery order:
    /// empty when the event waits in the pending buffer.
    pub fn offer(&mut self, event: Event, now: UnixMillis) -> Result<Vec<Delivered>, Refused> {
        let id = event.id;
        let delivered_seq = self.vv.get(&id.author);
        if id.seq == 0 {
            return Err(Refused::SeqOutOfRange);
        }
        if id.seq <= delivered_seq {
            return match self.get(&id) {
                Some(held) if !held.same_words(&event) => {
                    let held = Arc::clone(held);
                    Err(self.conflict(held, event))
                }
                _ => Err(Refused::Duplicate),
            };
        }
        if id.seq - delivered_seq > MAX_AHEAD {
            return Err(Refused::SeqOutOfRange);
        }
        self.check_deps(&event)?;
        if let Some((waiting, _)) = self.pending.get(&id) {
            if waiting.same_words(&event) {
                return Err(Refused::Duplicate);
            }
            let held = Arc::new(waiting.clone());
            return Err(self.conflict(held, event));
        }
        if delivered_seq == 0
            && !self.by_author.contains_key(&id.author)
            && self.by_author.len() >= MAX_AUTHORS
        {
            return Err(Refused::TooManyAuthors);
        }
        self.make_room_for(&event)?;
        self.pending_bytes += event.token.len();
        self.pending.insert(id, (event, now));
        Ok(self.deliver_ready(id.author))
    }

    /// `other` claims the id of `held` with other words: keeps the pair as
    /// proof of its author's equivocation.
    fn conflict(&mut self, held: Arc<Event>, other: Event) -> Refused {
        self.forks.record(Fork {
            held,
            other: Arc::new(other),
        });
        Refused::Equivocation
    }

    /// Evicts pending events older than [`PENDING_TTL_MS`].
    pub fn expire(&mut self, now: UnixMillis) {
        let stale: Vec<EventId> = self
            .pending
            .iter()
            .filter(|(_, (_, at))| now.saturating_sub(*at) > PENDING_TTL_MS)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.remove_pending(&id);
            self.stats.evicted += 1;
        }
    }

    /// When the oldest pending event expires, if any.
    pub fn next_expiry(&self) -> Option<UnixMillis> {
        self.pending
            .values()
            .map(|(_, at)| at.saturating_add(PENDING_TTL_MS + 1))
            .min()
    }

    fn check_deps(&self, event: &Event) -> Result<(), Refused> {
        if event.deps.len() > MAX_DEPS {
            return Err(Refused::BadDeps);
        }
        let mut seen = BTreeSet::new();
        for dep in &event.deps {
            let ahead = dep.seq.saturating_sub(self.vv.get(&dep.author));
            if dep.seq == 0
                || (dep.author == event.id.author && dep.seq >= event.id.seq)
                || ahead > MAX_AHEAD
                || !seen.insert(*dep)
            {
                return Err(Refused::BadDeps);
            }
        }
        Ok(())
    }

    /// Makes space in the pending buffer for `event`, evicting the waiting
    /// event furthest from delivery if it is further than `event`.
    fn make_room_for(&mut self, event: &Event) -> Result<(), Refused> {
        let distance = |h: &Self, id: &EventId| id.seq.saturating_sub(h.vv.get(&id.author));
        while self.pending.len() >= MAX_PENDING
            || self.pending_bytes + event.token.len() > MAX_PENDING_BYTES
        {
            let Some(victim) = self
                .pending
                .keys()
                .max_by_key(|id| (distance(self, id), id.seq))
                .copied()
            else {
                return Err(Refused::BufferFull);
            };
            if distance(self, &victim) <= distance(self, &event.id) {
                return Err(Refused::BufferFull);
            }
            self.remove_pending(&victim);
            self.stats.evicted += 1;
        }
        Ok(())
    }

    fn remove_pending(&mut self, id: &EventId) -> Option<Event> {
        let (event, _) = self.pending.remove(id)?;
        self.pending_bytes -= event.token.len();
        Some(event)
    }

    /// Delivers every pending event that has become deliverable, starting
    /// with `author`'s next one.
    fn deliver_ready(&mut self, first: PeerId) -> Vec<Delivered> {
        let mut out = Vec::new();
        let mut queue = vec![first];
        while let Some(author) = queue.pop() {
            loop {
                let next = EventId::new(author, self.vv.get(&author) + 1);
                let Some((event, _)) = self.pending.get(&next) else {
                    break;
                };
                if !event.deps.iter().all(|d| self.vv.contains(d)) {
                    break;
                }
                let Some(event) = self.remove_pending(&next) else {
                    break;
                };
                if !self.lamport_is_valid(&event) {
                    // Refused everywhere alike; the author's later events
                    // can never be delivered and will age out.
                    self.stats.bad_lamport += 1;
                    break;
                }
                let mut event = event;
                event.floor = self.floor_of(&event.id.author, event.id.seq, &event.deps);
                if self
                    .budgets
                    .charge(event.id.author, event.shown_time(), event.token.len())
                    .is_err()
                {
                    // Likewise.
                    self.stats.over_quota += 1;
                    break;
                }
                out.push(self.deliver(event));
                // Events of other authors may have waited for this one.
                for waiting in self.pending.keys() {
                    if waiting.author != author
                        && !queue.contains(&waiting.author)
                        && waiting.seq == self.vv.get(&waiting.author) + 1
                    {
                        queue.push(waiting.author);
                    }
                }
            }
        }
        out
    }

    fn lamport_is_valid(&self, event: &Event) -> bool {
        let mut dep_lamports = Vec::with_capacity(event.deps.len());
        for dep in &event.deps {
            match self.get(dep) {
                Some(d) => dep_lamports.push(d.lamport),
                None => return false,
            }
        }
        let prev = match event.id.seq {
            1 => 0,
            seq => match self.get(&EventId::new(event.id.author, seq - 1)) {
                Some(p) => p.lamport,
                None => return false,
            },
        };
        next_lamport(dep_lamports) == Some(event.lamport) && event.lamport > prev
    }

    /// Delivers `event`, its `floor` set.
    fn deliver(&mut self, event: Event) -> Delivered {
        let key = event.key();
        let late = self
            .lateness
            .deliver(&event, &self.by_author, &self.order, &self.vv);
        let event = Arc::new(event);
        for dep in &event.deps {
            if let Some(d) = self.get(dep) {
                let lamport = d.lamport;
                self.heads.remove(&(lamport, *dep));
            }
        }
        if event.id.seq > 1 {
            let prev = EventId::new(event.id.author, event.id.seq - 1);
            if let Some(p) = self.get(&prev) {
                let lamport = p.lamport;
                self.heads.remove(&(lamport, prev));
            }
        }
        self.heads.insert((event.lamport, event.id));
        self.by_author
            .entry(event.id.author)
            .or_default()
            .push(Arc::clone(&event));
        self.vv.set(event.id.author, event.id.seq);
        self.order.insert(key, Arc::clone(&event));
        Delivered { event, late }
    }
}

// ----- the room's events ------------------------------------------------------

/// What became of an event received from the network.
#[derive(Debug)]
pub(crate) enum Received {
    /// Delivered, with whatever had waited for it; the author called
    /// itself `name`.
    Delivered {
        /// The author's display name in the event.
        name: String,
    },
    /// Waiting in the pending buffer for something it depends on.
    Waiting,
    /// Dropped and counted.
    Dropped,
}

/// An event sealed by `author` arrived (`token` is its sealed form, kept
/// to forward). Checks its contents, offers it to the history, and stores
/// and announces everything delivered as a result.
pub(crate) fn receive(
    history: &mut History,
    room: RoomId,
    now: UnixMillis,
    author: PeerId,
    ev: EventWire,
    token: String,
    out: &mut Outbox<'_>,
) -> Received {
    let text_ok = match &ev.body {
        Body::Text { text } => wire::validate_text(text).is_ok(),
        Body::Unsupported => true,
    };
    if !text_ok || !UserName::is_valid(&ev.name) {
        out.count(crate::counters::DropReason::BadPayload);
        return Received::Dropped;
    }
    if ev.time > now.saturating_add(MAX_FUTURE_MS) {
        // Not refused: offered again by replication, taken in its time.
        out.count(crate::counters::DropReason::FromTheFuture);
        return Received::Dropped;
    }
    let event = Event {
        id: EventId::new(author, ev.seq),
        lamport: ev.lamport,
        deps: ev.deps,
        time: ev.time,
        name: ev.name,
        body: ev.body,
        token,
        floor: 0,
    };
    let name = event.name.clone();
    match history.offer(event, now) {
        Ok(delivered) if delivered.is_empty() => Received::Waiting,
        Ok(delivered) => {
            announce(room, delivered, false, out);
            announce_marks(history, room, out);
            Received::Delivered { name }
        }
        Err(refused) => {
            out.count(refused.into());
            Received::Dropped
        }
    }
}

/// This node says `text`: the event is sealed, delivered here, stored and
/// announced. Returns its id and the datagrams that carry it, for the
/// push to the members.
pub(crate) fn author(
    history: &mut History,
    room: RoomId,
    link: &Link,
    now: UnixMillis,
    text: &str,
    out: &mut Outbox<'_>,
) -> Result<(EventId, Vec<Vec<u8>>), CommandError> {
    wire::validate_text(text)?;
    let me = out.local.me;
    let name = out.local.name.as_str().to_owned();
    let (seq, deps, lamport) = history
        .next_for(&me)
        .ok_or(CommandError::History(Refused::SeqOutOfRange))?;
    let body = Body::Text {
        text: text.to_owned(),
    };
    // Never before what it answers, whatever this machine's clock says.
    let time = now.max(history.floor_of(&me, seq, &deps));
    let sealed = Sealed::Ev(EventWire {
        seq,
        lamport,
        deps: deps.clone(),
        time,
        name: name.clone(),
        body: body.clone(),
    });
    let payload = serde_json::to_vec(&sealed).unwrap_or_default();
    let token = link.seal(&out.local.identity, &payload, now)?;
    // The members would refuse it: say so here instead.
    history.budgets.check(&me, time, token.len())?;
    let datagrams = link
        .event_datagrams(me, &token, out.local.config.mtu)
        .ok_or(CommandError::TooManyFragments)?;
    let event = Event {
        id: EventId::new(me, seq),
        lamport,
        deps,
        time,
        name,
        body,
        token,
        floor: 0,
    };
    let delivered = history.offer(event, now)?;
    announce(room, delivered, true, out);
    announce_marks(history, room, out);
    Ok((EventId::new(me, seq), datagrams))
}

/// Tells the UIs about events that became late after their delivery.
fn announce_marks(history: &mut History, room: RoomId, out: &mut Outbox<'_>) {
    let events = history.take_marked_late();
    if !events.is_empty() {
        out.event(AppEvent::Late { room, events });
    }
}

/// Stores, then announces, events just delivered; `own` when this node
/// just wrote the first of them (others' events that waited for it are
/// delivered with it, and are not its own).
fn announce(room: RoomId, delivered: Vec<Delivered>, own: bool, out: &mut Outbox<'_>) {
    let me = out.local.me;
    for d in delivered {
        let own = own && d.event.id.author == me;
        out.persist(Record::Event {
            room,
            event: (*d.event).clone(),
        });
        out.event(AppEvent::Message {
            room,
            event: d.event,
            late: d.late,
            own,
        });
    }
}
