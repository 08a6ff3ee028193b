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
//! **Equivocation.** In a room whose events carry the hash chain, an
//! event names the exact versions it follows, and is placed only on top
//! of them; an author proven to have signed two versions of one event is
//! frozen at that number: its events from there on are not shown, and
//! kept beside its main chain only so that events naming them can be
//! placed ([`crate::equivocation`]).
//!
//! **Quotas.** On delivery each event is also charged against its
//! author's budgets in the room ([`crate::quota`]), at its shown time: an
//! event over quota is refused everywhere alike, like one that breaks the
//! Lamport rule, and the author's later events can then never be
//! delivered. This node's own next event is checked against the same
//! budgets before it is sealed.
//!
//! **Window.** A history given the store's read side
//! ([`History::keep_window`], [`crate::store::Archive`]) keeps in memory
//! only the newest events in canonical order (the window) and each
//! author's newest (what heads, the hash chain and the author's next event
//! need); an event leaves memory once the host confirmed the batch that
//! stores it, so the store holds every event memory let go. Whatever
//! reads an event — a dependency named long after, the Lamport rule and
//! the shown time of an event built on old ones, a page the user scrolls
//! to, a catch-up served to a member — reads it from memory or, outside
//! the window, from the store, the same event either way: a windowed
//! member reaches every verdict a whole one does (the simulator runs
//! both side by side). Lateness keeps what its rule needs of every event
//! in 16 bytes ([`crate::lateness`]). Only the versions kept off the main
//! chains stay in memory whole (bounded by [`MAX_OTHER_BYTES`]), and
//! [`History::version`] finds a main-chain version by digest only in the
//! window.
//!
//! Limits: the pending buffer holds at most [`MAX_PENDING`] events and
//! [`MAX_PENDING_BYTES`] bytes of tokens; an event further than
//! [`MAX_AHEAD`] past its author's delivered sequence number, or naming
//! dependencies that far ahead, is refused outright; at most
//! [`MAX_AUTHORS`] authors per room.

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
#[cfg(test)]
use crate::store::Loaded;
use crate::store::{Archive, Entry, Record};
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
    /// they can check the author's signature themselves. Kept in records
    /// (the store holds it) and while the event waits for its
    /// dependencies; a history does not keep it once the event is
    /// delivered, and reads it back from the store to send it on
    /// ([`crate::Output::Read`]). Left out of the serialized form when
    /// empty (a store may keep the token apart from the rest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// The token's length in bytes, set when the event is offered to a
    /// history (what quotas and repair budgets count).
    #[serde(skip)]
    pub token_len: usize,
    /// The latest shown time in the event's causal past (the author's
    /// previous event and the dependencies), set on delivery; 0 before.
    /// Kept in the stored form, so that an event read back from a store
    /// shows the same time without its causal past at hand.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub floor: UnixMillis,
    /// The digest of the author's previous event: the hash chain. None
    /// for the first, and in events written before the chain existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Digest>,
    /// The digest of each dependency, in the order of `deps`: the exact
    /// versions the author had seen. Empty in events written before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<Digest>,
    /// This event's digest ([`crate::equivocation::digest`]), set when it
    /// is offered to a history.
    #[serde(skip)]
    pub digest: Digest,
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
            && self.prev == other.prev
            && self.refs == other.refs
    }

    /// The author's time is well before the event's causal past: it was
    /// set back, by a wrong clock or on purpose.
    pub fn backdated(&self) -> bool {
        self.time.saturating_add(BACKDATE_TOLERANCE_MS) < self.floor
    }
}

/// Where a page of the shown history sits ([`History::page`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The newest events.
    Newest,
    /// The events just before this key (older ones).
    Before(OrderKey),
    /// The events just after this key (newer ones).
    After(OrderKey),
}

/// An event that was just delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The event, as the history keeps it (without its token).
    pub event: Arc<Event>,
    /// Its token, for the store.
    pub token: String,
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
    /// Versions of an id this history already held another version of
    /// (each kept as proof, see [`crate::equivocation`]).
    pub equivocations: u64,
}

/// What a waiting event needs before it can be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Need {
    /// The exact version with this digest (chained events).
    Version(Digest),
    /// The main version of this id (events without a chain).
    Id(EventId),
}

/// A room's events: delivered ones in canonical order, the versions kept
/// off the main chains, and the pending buffer.
#[derive(Debug, Default)]
pub struct History {
    /// Whether every event must carry the hash chain (rooms whose Chat ID
    /// is version 3 or later; see [`crate::chat_id`]).
    chained: bool,
    /// Per author, the main chain held in memory: the versions delivered
    /// (shown or hidden), from some number on to the newest.
    by_author: HashMap<PeerId, Chain>,
    /// The main chains' events held in memory, in canonical order.
    order: BTreeMap<OrderKey, Arc<Event>>,
    /// Main-chain events delivered.
    delivered: usize,
    /// The store's read side, when the history keeps only a window.
    archive: Option<Window>,
    vv: VersionVector,
    /// `vv` with each equivocator cut below its fork: what replication
    /// compares and offers.
    shared: VersionVector,
    heads: BTreeSet<(u64, EventId)>,
    /// Every version held, on a main chain or not, by digest.
    versions: HashMap<Digest, Arc<Event>>,
    /// Versions off the main chains (other branches of an equivocator),
    /// held because events that depend on them need them.
    others: HashMap<EventId, Vec<Arc<Event>>>,
    others_bytes: usize,
    pending: BTreeMap<(EventId, Digest), (Event, UnixMillis)>,
    pending_bytes: usize,
    /// Pending events by the first thing they wait for.
    waiting: HashMap<Need, Vec<(EventId, Digest)>>,
    /// Main-chain events hidden as an equivocator's after its fork.
    hidden: usize,
    stats: HistoryStats,
    budgets: Budgets,
    forks: Forks,
    lateness: Lateness,
    /// The shown history changed other than by new events (a fork hid an
    /// equivocator's events, marks were recomputed).
    reshown: bool,
    /// Versions kept off the main chains, to be stored.
    to_store: Vec<Arc<Event>>,
    /// The names each author wrote under, at most [`MAX_NAMES`] pairs:
    /// what a chat needs to tell two people of one name apart, without
    /// reading the history back.
    names: HashMap<PeerId, BTreeSet<String>>,
    names_len: usize,
    /// While events are restored into a windowed history: those whose
    /// stored floor differs from the one their causal past gives (stored
    /// before floors were), with the right one.
    refloored: Vec<(EventId, UnixMillis)>,
    noting_floors: bool,
}

/// An author's main chain held in memory: the events numbered `first` on.
#[derive(Debug)]
struct Chain {
    first: u64,
    events: std::collections::VecDeque<Arc<Event>>,
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            first: 1,
            events: std::collections::VecDeque::new(),
        }
    }
}

impl Chain {
    fn get(&self, seq: u64) -> Option<&Arc<Event>> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.events.get(i)
    }
}

/// What a history that keeps a window needs: where older events are read
/// back, and which of its events are not stored yet.
#[derive(Debug)]
struct Window {
    room: RoomId,
    archive: Arc<dyn Archive>,
    /// Most main-chain events kept in `order`.
    size: usize,
    /// Delivered and not yet confirmed stored: never evicted.
    unstored: BTreeSet<OrderKey>,
    /// Delivered since the last batch was handed to the host.
    fresh: Vec<OrderKey>,
    /// In the batch the host is storing.
    handed: Vec<OrderKey>,
    /// Reads the archive failed.
    errors: std::sync::atomic::AtomicU64,
}

impl Window {
    fn failed(&self) {
        self.errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Events read a page at a time when walking a whole history.
const WALK_PAGE: usize = 256;

/// What [`History::main_page`] read: the delivered events among the
/// entries it looked at, and the key to go on from when the range may hold
/// more.
struct Span {
    events: Vec<Arc<Event>>,
    more: Option<OrderKey>,
}

/// An event read back from the store, as the history holds it.
fn archived(mut event: Event) -> Arc<Event> {
    event.digest = equivocation::digest(&event);
    Arc::new(event)
}

/// Most (author, name) pairs a history remembers ([`History::names`]).
pub const MAX_NAMES: usize = 4_096;

/// Most token bytes of versions kept off the main chains, per room.
pub const MAX_OTHER_BYTES: usize = 32 * 1024 * 1024;

impl History {
    /// An empty history, under the default quota, for events without
    /// the hash chain (a room from before it).
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

    /// An empty history whose authors are held to `quota`; with
    /// `chained`, every event must carry the hash chain and name the
    /// exact versions it depends on.
    pub fn with_rules(quota: Quota, chained: bool) -> Self {
        History {
            budgets: Budgets::new(quota),
            chained,
            ..Self::default()
        }
    }

    /// Whether events must carry the hash chain.
    pub fn chained(&self) -> bool {
        self.chained
    }

    /// The authors' budgets.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// What is delivered on the main chains, per author.
    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    /// What is delivered and shared: the main chains, each equivocator's
    /// cut below its fork (members hold different versions past it).
    pub fn shared_vector(&self) -> &VersionVector {
        &self.shared
    }

    /// Whether the delivered event `id` is late ([`crate::lateness`]).
    pub fn is_late(&self, id: &EventId) -> bool {
        self.lateness.is_late(id)
    }

    /// Events marked late after their delivery, since the last call.
    pub(crate) fn take_marked_late(&mut self) -> Vec<EventId> {
        self.lateness.take_marked()
    }

    /// Versions kept off the main chains since the last call (proofs and
    /// other branches), for the store.
    pub(crate) fn take_to_store(&mut self) -> Vec<Arc<Event>> {
        std::mem::take(&mut self.to_store)
    }

    /// Whether the shown history changed other than by new events since
    /// the last call.
    pub(crate) fn take_reshown(&mut self) -> bool {
        std::mem::take(&mut self.reshown)
    }

    /// Keeps at most `size` events of the main chains in memory (and each
    /// author's newest), reading older ones back from `archive`, the store
    /// of `room`: an event leaves memory once the host confirmed it stored.
    /// Events held when the window is set count as not stored until the
    /// next batch is.
    pub fn keep_window(&mut self, room: RoomId, archive: Arc<dyn Archive>, size: usize) {
        let held: Vec<OrderKey> = self.order.keys().copied().collect();
        self.archive = Some(Window {
            room,
            archive,
            size,
            unstored: held.iter().copied().collect(),
            fresh: held,
            handed: Vec::new(),
            errors: Default::default(),
        });
    }

    /// The history's state for a checkpoint ([`crate::checkpoint`]): what
    /// it covers and its bytes. `None` unless it keeps a window (reads its
    /// store), holds no fork and no version off the main chains, and has
    /// delivered something.
    pub fn checkpoint(&self) -> Option<(VersionVector, Vec<u8>)> {
        use crate::checkpoint::{encode, Author, State, FORMAT};
        if self.archive.is_none()
            || self.delivered == 0
            || self.hidden > 0
            || self.forks.iter().next().is_some()
            || !self.others.is_empty()
        {
            return None;
        }
        let mut authors = Vec::with_capacity(self.vv.authors());
        for (peer, seq) in self.vv.iter() {
            let newest = self.by_author.get(peer)?.events.back()?;
            if newest.id.seq != seq {
                return None;
            }
            let mut names: Vec<String> = self
                .names
                .get(peer)
                .map(|n| n.iter().cloned().collect())
                .unwrap_or_default();
            names.sort();
            authors.push(Author {
                peer: *peer.as_bytes(),
                seq,
                newest: *newest.digest.as_bytes(),
                budget: self.budgets.export(peer),
                names,
            });
        }
        let state = State {
            format: FORMAT,
            delivered: self.delivered as u64,
            heads: self
                .heads
                .iter()
                .map(|(l, id)| (*l, *id.author.as_bytes(), id.seq))
                .collect(),
            authors,
            lateness: self.lateness.export(),
        };
        Some((self.vv.clone(), encode(&state)?))
    }

    /// Takes the state of a checkpoint covering `covers`
    /// ([`crate::checkpoint`]): only an empty history that reads its store,
    /// which gives back each author's newest event. Changes nothing when
    /// it refuses it.
    pub fn restore_checkpoint(
        &mut self,
        covers: &VersionVector,
        data: &[u8],
    ) -> Result<(), crate::checkpoint::CheckpointError> {
        use crate::checkpoint::{decode, CheckpointError};
        let Some(w) = &self.archive else {
            return Err(CheckpointError::NotEmpty);
        };
        if self.delivered > 0 || !self.pending.is_empty() || !self.others.is_empty() {
            return Err(CheckpointError::NotEmpty);
        }
        let state = decode(data)?;
        let mut vv = VersionVector::new();
        for a in &state.authors {
            if a.seq == 0 {
                return Err(CheckpointError::Inconsistent("an author with no events"));
            }
            vv.set(PeerId::from_bytes(a.peer), a.seq);
        }
        if vv != *covers || vv.authors() != state.authors.len() {
            return Err(CheckpointError::Inconsistent("not what the record covers"));
        }
        let total = state
            .authors
            .iter()
            .try_fold(0u64, |n, a| n.checked_add(a.seq));
        if total != Some(state.delivered) {
            return Err(CheckpointError::Inconsistent(
                "a count that is not its authors'",
            ));
        }
        let delivered = usize::try_from(state.delivered)
            .map_err(|_| CheckpointError::Inconsistent("too many events"))?;
        let lateness = Lateness::import(state.lateness, &vv)
            .ok_or(CheckpointError::Inconsistent("lateness chains"))?;
        let mut heads = BTreeSet::new();
        for (lamport, author, seq) in state.heads {
            let id = EventId::new(PeerId::from_bytes(author), seq);
            if seq == 0 || seq > vv.get(&id.author) {
                return Err(CheckpointError::Inconsistent("a head not covered"));
            }
            heads.insert((lamport, id));
        }
        let mut newest = Vec::with_capacity(state.authors.len());
        for a in &state.authors {
            let peer = PeerId::from_bytes(a.peer);
            let read = w.archive.chain(&w.room, &peer, a.seq, 1).map_err(|_| {
                w.failed();
                CheckpointError::Newest
            })?;
            let Some(event) = read.into_iter().next() else {
                return Err(CheckpointError::Newest);
            };
            let event = archived(event);
            if event.id != EventId::new(peer, a.seq) || *event.digest.as_bytes() != a.newest {
                return Err(CheckpointError::Newest);
            }
            newest.push(event);
        }
        // Taken: nothing below can fail.
        for (a, event) in state.authors.into_iter().zip(newest) {
            let peer = event.id.author;
            if let Some(budget) = a.budget {
                self.budgets.import(peer, budget);
            }
            self.names_len += a.names.len();
            self.names.insert(peer, a.names.into_iter().collect());
            self.by_author.insert(
                peer,
                Chain {
                    first: event.id.seq,
                    events: std::iter::once(Arc::clone(&event)).collect(),
                },
            );
            self.versions.insert(event.digest, Arc::clone(&event));
            self.order.insert(event.key(), event);
        }
        self.lateness = lateness;
        self.heads = heads;
        self.delivered = delivered;
        self.shared = vv.clone();
        self.vv = vv;
        Ok(())
    }

    /// At most `limit` of the store's events after `after`, as it gives
    /// them (without checking that this history delivered them): what a
    /// room that could not take its checkpoint delivers again.
    pub(crate) fn stored_after(&self, after: OrderKey, limit: usize) -> Vec<Event> {
        let Some(w) = &self.archive else {
            return Vec::new();
        };
        w.archive
            .page(&w.room, Anchor::After(after), limit)
            .unwrap_or_else(|_| {
                w.failed();
                Vec::new()
            })
    }

    /// Reads of the store that failed (each treated as a missing event).
    pub fn archive_errors(&self) -> u64 {
        self.archive
            .as_ref()
            .map_or(0, |w| w.errors.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Events held in memory on the main chains.
    pub fn in_memory(&self) -> usize {
        self.by_author.values().map(|c| c.events.len()).sum()
    }

    /// The host was handed a batch holding every event delivered so far.
    pub(crate) fn batch_handed(&mut self) {
        if let Some(w) = &mut self.archive {
            let fresh = std::mem::take(&mut w.fresh);
            w.handed.extend(fresh);
        }
    }

    /// The host stored the batch it was handed: its events may leave
    /// memory.
    pub(crate) fn batch_stored(&mut self) {
        if let Some(w) = &mut self.archive {
            for key in std::mem::take(&mut w.handed) {
                w.unstored.remove(&key);
            }
        }
        self.evict();
    }

    /// The host could not store the batch: its events stay in memory.
    pub(crate) fn batch_failed(&mut self) {
        if let Some(w) = &mut self.archive {
            w.handed.clear();
        }
    }

    /// Starts or stops noting restored events whose stored floor is not
    /// the one their causal past gives ([`History::take_refloored`]): only
    /// a windowed history reads events back, so only it notes them.
    pub(crate) fn note_floors(&mut self, on: bool) {
        self.noting_floors = on && self.archive.is_some();
    }

    /// How many wrong floors are noted and not taken yet.
    pub(crate) fn refloored_len(&self) -> usize {
        self.refloored.len()
    }

    /// Restored events whose stored floor was wrong (written before floors
    /// were stored), with the right one: for the host to write back, so
    /// that the event shows the same time when it is read back from the
    /// store.
    pub(crate) fn take_refloored(&mut self) -> Vec<(EventId, UnixMillis)> {
        std::mem::take(&mut self.refloored)
    }

    /// Everything delivered so far is stored (it was read from the store).
    pub(crate) fn all_stored(&mut self) {
        if let Some(w) = &mut self.archive {
            w.unstored.clear();
            w.fresh.clear();
            w.handed.clear();
        }
        self.evict();
    }

    /// Moves the oldest stored events out of memory while more than the
    /// window is held, keeping each author's newest (the heads, and what
    /// its next event names).
    fn evict(&mut self) {
        let Some(w) = &self.archive else {
            return;
        };
        while self.order.len() > w.size {
            let Some((key, _)) = self.order.first_key_value() else {
                break;
            };
            if w.unstored.contains(key) {
                break;
            }
            let Some((_, event)) = self.order.pop_first() else {
                break;
            };
            let id = event.id;
            let newest = self.vv.get(&id.author);
            if let Some(chain) = self.by_author.get_mut(&id.author) {
                while let Some(front) = chain.events.front() {
                    if front.id.seq > id.seq || front.id.seq >= newest {
                        break;
                    }
                    if let Some(gone) = chain.events.pop_front() {
                        self.versions.remove(&gone.digest);
                    }
                    chain.first += 1;
                }
            }
        }
    }

    /// The forks proven so far ([`crate::equivocation`]).
    pub fn forks(&self) -> &Forks {
        &self.forks
    }

    pub(crate) fn forks_mut(&mut self) -> &mut Forks {
        &mut self.forks
    }

    /// The number from which `author`'s events are hidden: it was proven
    /// to equivocate there.
    pub fn frozen_from(&self, author: &PeerId) -> Option<u64> {
        if !self.chained {
            return None;
        }
        self.forks.get(author).map(Fork::seq)
    }

    fn is_frozen(&self, id: &EventId) -> bool {
        self.frozen_from(&id.author).is_some_and(|f| id.seq >= f)
    }

    /// The digest of `author`'s newest shared event, if any.
    pub fn head_digest(&self, author: &PeerId) -> Option<Digest> {
        let seq = self.shared.get(author);
        self.get(&EventId::new(*author, seq)).map(|e| e.digest)
    }

    /// The version with digest `digest`, off the main chains or on them
    /// in memory (with a window, older main-chain versions are found by id,
    /// [`History::get`]).
    pub fn version(&self, digest: &Digest) -> Option<&Arc<Event>> {
        self.versions.get(digest)
    }

    /// A short digest of what is shared: per author, how many events and
    /// the digest of the newest. Members holding different versions of
    /// an author's events have different state digests, so their
    /// heartbeats start a summary exchange that finds the fork.
    pub fn state_digest(&self) -> u64 {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        h.update(b"p2pchat/v1/state\0");
        for (author, seq) in self.shared.iter() {
            h.update(author.as_bytes());
            h.update(seq.to_be_bytes());
            h.update(self.head_digest(author).unwrap_or_default().as_bytes());
        }
        let out = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_be_bytes(first)
    }

    /// Every (name, author) pair the delivered events were written under
    /// (shown or hidden), the first [`MAX_NAMES`] of them.
    pub fn names(&self) -> impl Iterator<Item = (&str, PeerId)> + '_ {
        self.names
            .iter()
            .flat_map(|(peer, names)| names.iter().map(|n| (n.as_str(), *peer)))
    }

    /// Main-chain events delivered, shown or hidden.
    pub fn delivered(&self) -> usize {
        self.delivered
    }

    /// Number of events shown.
    pub fn len(&self) -> usize {
        self.delivered - self.hidden
    }

    /// Whether nothing is shown.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// Shown events in canonical order: the main chains, without an
    /// equivocator's events from its fork on (read a page at a time, from
    /// the store for those outside the window).
    pub fn iter(&self) -> impl Iterator<Item = Arc<Event>> + '_ {
        self.walk(true)
    }

    /// Every main-chain event in canonical order, from the oldest; with
    /// `shown`, without the hidden ones.
    fn walk(&self, shown: bool) -> impl Iterator<Item = Arc<Event>> + '_ {
        let mut next = Some(OrderKey::MIN);
        let mut page = std::collections::VecDeque::new();
        std::iter::from_fn(move || loop {
            if let Some(e) = page.pop_front() {
                return Some(e);
            }
            let after = next.take()?;
            let span = self.main_page(Anchor::After(after), WALK_PAGE);
            next = span.more;
            page.extend(
                span.events
                    .into_iter()
                    .filter(|e| !shown || !self.is_frozen(&e.id)),
            );
        })
    }

    /// A page of the shown history, in canonical order (oldest first): at
    /// most `limit` shown events next to `anchor`, each with its late
    /// mark. What a UI asks for instead of walking the whole history, so
    /// its cost follows the page, not the history's length.
    pub fn page(&self, anchor: Anchor, limit: usize) -> Vec<(Arc<Event>, bool)> {
        let backwards = !matches!(anchor, Anchor::After(_));
        let mut out: Vec<Arc<Event>> = Vec::new();
        let mut at = anchor;
        while out.len() < limit {
            let span = self.main_page(at, limit - out.len());
            let kept = span.events.into_iter().filter(|e| !self.is_frozen(&e.id));
            if backwards {
                let mut older: Vec<Arc<Event>> = kept.collect();
                older.append(&mut out);
                out = older;
            } else {
                out.extend(kept);
            }
            let Some(boundary) = span.more else {
                break;
            };
            at = if backwards {
                Anchor::Before(boundary)
            } else {
                Anchor::After(boundary)
            };
        }
        out.into_iter()
            .map(|e| {
                let late = self.is_late(&e.id);
                (e, late)
            })
            .collect()
    }

    /// The main-chain events (shown or hidden) among the `limit` entries
    /// next to `anchor` in canonical order: those in memory and, with a
    /// window, those in the store. A store may hold rows this history
    /// never delivered (its restore refused them, or one came after a
    /// lost row); they count towards `limit` and are left out after, so
    /// [`Span::more`] says whether the range goes on even when a page
    /// came back short.
    fn main_page(&self, anchor: Anchor, limit: usize) -> Span {
        use std::ops::Bound::{Excluded, Unbounded};
        let range = match anchor {
            Anchor::Newest => (Unbounded, Unbounded),
            Anchor::Before(key) => (Unbounded, Excluded(key)),
            Anchor::After(key) => (Excluded(key), Unbounded),
        };
        let backwards = !matches!(anchor, Anchor::After(_));
        // `None` marks a stored row this history did not deliver.
        let mut found: BTreeMap<OrderKey, Option<Arc<Event>>> = BTreeMap::new();
        let memory = self.order.range(range);
        if backwards {
            found.extend(
                memory
                    .rev()
                    .take(limit)
                    .map(|(k, e)| (*k, Some(Arc::clone(e)))),
            );
        } else {
            found.extend(memory.take(limit).map(|(k, e)| (*k, Some(Arc::clone(e)))));
        }
        if let Some(w) = &self.archive {
            match w.archive.page(&w.room, anchor, limit) {
                Ok(events) => {
                    for e in events {
                        let delivered = e.id.seq > 0 && e.id.seq <= self.vv.get(&e.id.author);
                        found
                            .entry(e.key())
                            .or_insert_with(|| delivered.then(|| archived(e)));
                    }
                }
                Err(_) => w.failed(),
            }
        }
        let more = found.len() >= limit && limit > 0;
        let mut entries: Vec<(OrderKey, Option<Arc<Event>>)> = found.into_iter().collect();
        if entries.len() > limit {
            if backwards {
                entries.drain(..entries.len() - limit);
            } else {
                entries.truncate(limit);
            }
        }
        let boundary = if backwards {
            entries.first()
        } else {
            entries.last()
        };
        Span {
            more: boundary.map(|(k, _)| *k).filter(|_| more),
            events: entries.into_iter().filter_map(|(_, e)| e).collect(),
        }
    }

    /// The main-chain event `id` (shown or hidden), from memory or, when
    /// it left the window, from the store.
    pub fn get(&self, id: &EventId) -> Option<Arc<Event>> {
        if id.seq == 0 || id.seq > self.vv.get(&id.author) {
            return None;
        }
        let chain = self.by_author.get(&id.author)?;
        if id.seq >= chain.first {
            return chain.get(id.seq).cloned();
        }
        self.chain_from(&id.author, id.seq, 1)
            .into_iter()
            .next()
            .filter(|e| e.id == *id)
    }

    /// `author`'s main-chain events from `from_seq` on, in sequence order,
    /// at most `limit`.
    pub fn chain_from(&self, author: &PeerId, from_seq: u64, limit: usize) -> Vec<Arc<Event>> {
        self.run_from(
            author,
            from_seq,
            limit,
            |w, from, n| {
                let read = w.archive.chain(&w.room, author, from, n)?;
                Ok(read.into_iter().map(archived).collect())
            },
            |e| e.id,
            Arc::clone,
        )
    }

    /// [`History::chain_from`], each event's place and token length only:
    /// those that left the window read as entries, without decoding them
    /// ([`crate::store::Store::entries`]). What a catch-up is served from.
    pub fn entries_from(&self, author: &PeerId, from_seq: u64, limit: usize) -> Vec<Entry> {
        self.run_from(
            author,
            from_seq,
            limit,
            |w, from, n| w.archive.entries(&w.room, author, from, n),
            |e| e.key.id(),
            |e| Entry::of(e),
        )
    }

    /// `author`'s run from `from_seq` on, at most `limit`: what left the
    /// window by `read` from the store (stopping at a hole), the rest from
    /// memory by `held`.
    fn run_from<T>(
        &self,
        author: &PeerId,
        from_seq: u64,
        limit: usize,
        read: impl FnOnce(&Window, u64, usize) -> Result<Vec<T>, crate::store::ArchiveError>,
        id_of: impl Fn(&T) -> EventId,
        held: impl Fn(&Arc<Event>) -> T,
    ) -> Vec<T> {
        let Some(chain) = self.by_author.get(author) else {
            return Vec::new();
        };
        let from = from_seq.max(1);
        let mut out = Vec::new();
        if from < chain.first {
            let Some(w) = &self.archive else {
                return out;
            };
            let n = usize::try_from(chain.first - from).map_or(limit, |n| n.min(limit));
            match read(w, from, n) {
                Ok(items) => out.extend(
                    items
                        .into_iter()
                        .zip(from..)
                        .take_while(|(item, seq)| id_of(item) == EventId::new(*author, *seq))
                        .map(|(item, _)| item),
                ),
                Err(_) => w.failed(),
            }
            if out.len() < n {
                // A hole in the store: what follows is not contiguous.
                return out;
            }
        }
        let start = from.max(chain.first);
        let rest = limit - out.len();
        if let Some(i) = start
            .checked_sub(chain.first)
            .and_then(|i| usize::try_from(i).ok())
        {
            out.extend(chain.events.iter().skip(i).take(rest).map(held));
        }
        out
    }

    /// The floor of an event by `author` with sequence number `seq` and
    /// dependencies `deps`, on the main chains: the latest shown time
    /// among its previous event and its dependencies.
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

    /// The hash chain an event by `author` numbered `seq` with `deps`
    /// carries, from the main chains: the digest of the author's previous
    /// event and of each dependency. `None` if one is not delivered.
    pub fn commitments(
        &self,
        author: &PeerId,
        seq: u64,
        deps: &[EventId],
    ) -> Option<(Option<Digest>, Vec<Digest>)> {
        let prev = match seq {
            0 => return None,
            1 => None,
            s => Some(self.get(&EventId::new(*author, s - 1))?.digest),
        };
        let refs = deps
            .iter()
            .map(|d| self.get(d).map(|e| e.digest))
            .collect::<Option<Vec<_>>>()?;
        Some((prev, refs))
    }

    /// Versions that waiting events need and nobody has sent yet, at most
    /// `limit`: to ask the members for ([`crate::equivocation`]).
    pub fn wanted(&self, limit: usize) -> Vec<Digest> {
        let pending: BTreeSet<Digest> = self.pending.keys().map(|(_, d)| *d).collect();
        let mut out: Vec<Digest> = self
            .waiting
            .keys()
            .filter_map(|n| match n {
                Need::Version(d) => Some(*d),
                Need::Id(_) => None,
            })
            .filter(|d| !self.versions.contains_key(d) && !pending.contains(d))
            .collect();
        out.sort();
        out.truncate(limit);
        out
    }

    /// Offers an event (already decrypted and signature-checked) at time
    /// `now`. Returns the events delivered as a result, in delivery order:
    /// empty when the event waits in the pending buffer or is kept off
    /// the main chains.
    pub fn offer(&mut self, mut event: Event, now: UnixMillis) -> Result<Vec<Delivered>, Refused> {
        event.digest = equivocation::digest(&event);
        // A stored event comes back without its token, its length kept.
        if !event.token.is_empty() {
            event.token_len = event.token.len();
        }
        let id = event.id;
        let key = (id, event.digest);
        if id.seq == 0 {
            return Err(Refused::SeqOutOfRange);
        }
        if self.versions.contains_key(&event.digest) || self.pending.contains_key(&key) {
            return Err(Refused::Duplicate);
        }
        let delivered_seq = self.vv.get(&id.author);
        if id.seq > delivered_seq && id.seq - delivered_seq > MAX_AHEAD {
            return Err(Refused::SeqOutOfRange);
        }
        self.check_deps(&event)?;
        if self.chained && !has_chain(&event) {
            return Err(Refused::BadDeps);
        }
        // Another version of this id, delivered or waiting, both well
        // formed: the pair is a proof. Without the chain, the first stays
        // and this one goes; with it, this one is kept too if it can be
        // placed, since events of others may depend on it.
        let held = self.get(&id).filter(|held| held.id == id).or_else(|| {
            self.pending
                .range((id, Digest::default())..)
                .take_while(|((i, _), _)| *i == id)
                .map(|(_, (e, _))| Arc::new(e.clone()))
                .next()
        });
        let held = held.or_else(|| self.others.get(&id).and_then(|v| v.first().cloned()));
        if held.is_none() && id.seq <= delivered_seq {
            // Delivered, but the store could not give it back to compare
            // (counted in `archive_errors`): taken for a copy, never for a
            // new version of it.
            return Err(Refused::Duplicate);
        }
        if let Some(held) = held {
            if held.same_words(&event) {
                return Err(Refused::Duplicate);
            }
            self.record_fork(held, Arc::new(event.clone()));
            if !self.chained {
                return Err(Refused::Equivocation);
            }
            self.stats.equivocations += 1;
        }
        if delivered_seq == 0
            && !self.by_author.contains_key(&id.author)
            && self.by_author.len() >= MAX_AUTHORS
        {
            return Err(Refused::TooManyAuthors);
        }
        self.make_room_for(&event)?;
        self.pending_bytes += event.token.len();
        self.pending.insert(key, (event, now));
        Ok(self.settle(vec![key]))
    }

    /// Keeps `other` as proof against `held` and hides what the fork
    /// hides.
    fn record_fork(&mut self, held: Arc<Event>, other: Arc<Event>) {
        let author = held.id.author;
        let before = self.frozen_from(&author);
        // Both versions are stored (the one on the main chain is already),
        // so a restart proves the fork again.
        for version in [&held, &other] {
            let on_main = self
                .get(&version.id)
                .is_some_and(|e| e.digest == version.digest);
            if !on_main {
                self.to_store.push(Arc::clone(version));
            }
        }
        self.forks.record(Fork { held, other });
        if self.frozen_from(&author) != before {
            self.refreeze();
        }
    }

    /// Recomputes what the forks hide: the hidden count, the shared
    /// vector and the late marks (a hidden event counts as unknown).
    fn refreeze(&mut self) {
        let mut hidden = 0;
        let mut shared = self.vv.clone();
        for (author, seq) in self.vv.iter() {
            if let Some(f) = self.frozen_from(author) {
                let kept = seq.min(f - 1);
                hidden += usize::try_from(seq - kept).unwrap_or(usize::MAX);
                shared.set(*author, kept);
            }
        }
        self.hidden = hidden;
        self.shared = shared;
        let mut lateness = Lateness::default();
        let (forks, chained) = (&self.forks, self.chained);
        let frozen =
            |id: &EventId| chained && forks.get(&id.author).is_some_and(|f| id.seq >= f.seq());
        for event in self.walk(false) {
            if frozen(&event.id) {
                lateness.note_chain(&event);
            } else {
                lateness.deliver(&event, &self.shared, &frozen);
            }
        }
        lateness.take_marked();
        self.lateness = lateness;
        self.reshown = true;
    }

    /// Evicts pending events older than [`PENDING_TTL_MS`].
    pub fn expire(&mut self, now: UnixMillis) {
        let stale: Vec<(EventId, Digest)> = self
            .pending
            .iter()
            .filter(|(_, (_, at))| now.saturating_sub(*at) > PENDING_TTL_MS)
            .map(|(key, _)| *key)
            .collect();
        for key in stale {
            self.remove_pending(&key);
            self.stats.evicted += 1;
        }
        self.prune_waiting();
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
                .max_by_key(|(id, d)| (distance(self, id), id.seq, *d))
                .copied()
            else {
                return Err(Refused::BufferFull);
            };
            if distance(self, &victim.0) <= distance(self, &event.id) {
                return Err(Refused::BufferFull);
            }
            self.remove_pending(&victim);
            self.stats.evicted += 1;
        }
        Ok(())
    }

    fn remove_pending(&mut self, key: &(EventId, Digest)) -> Option<Event> {
        let (event, _) = self.pending.remove(key)?;
        self.pending_bytes -= event.token.len();
        Some(event)
    }

    /// Forgets what evicted events were waiting for, once that list has
    /// grown well past the buffer.
    fn prune_waiting(&mut self) {
        let listed: usize = self.waiting.values().map(Vec::len).sum();
        if listed > 2 * MAX_PENDING {
            let pending = &self.pending;
            self.waiting.retain(|_, keys| {
                keys.retain(|k| pending.contains_key(k));
                !keys.is_empty()
            });
        }
    }

    /// The version `digest` of event `id`, if held (in memory, or on the
    /// main chain in the store).
    fn resolve(&self, id: &EventId, digest: &Digest) -> Option<Arc<Event>> {
        match self.versions.get(digest) {
            Some(e) => (e.id == *id).then(|| Arc::clone(e)),
            None => self.get(id).filter(|e| e.digest == *digest),
        }
    }

    /// The author's previous event and the dependencies of `event`, as
    /// the versions it names (with the chain) or the main ones (without).
    /// `Err` with the first thing missing.
    fn past_of(&self, event: &Event) -> Result<Vec<Arc<Event>>, Need> {
        let mut past = Vec::with_capacity(event.deps.len() + 1);
        // Without the chain (a room from before it), by id on the main
        // chains, as events were always placed there.
        let chained = self.chained;
        if event.id.seq > 1 {
            let prev = EventId::new(event.id.author, event.id.seq - 1);
            match (chained, event.prev) {
                (true, Some(d)) => past.push(self.resolve(&prev, &d).ok_or(Need::Version(d))?),
                _ => past.push(self.get(&prev).ok_or(Need::Id(prev))?),
            }
        }
        for (i, dep) in event.deps.iter().enumerate() {
            match (chained, event.refs.get(i)) {
                (true, Some(d)) => past.push(self.resolve(dep, d).ok_or(Need::Version(*d))?),
                _ => past.push(self.get(dep).ok_or(Need::Id(*dep))?),
            }
        }
        Ok(past)
    }

    /// Places every waiting event that can be placed, starting with
    /// `work`: on its author's main chain if it extends it (delivered and
    /// shown), or else, with the chain, among the versions kept off it.
    fn settle(&mut self, mut work: Vec<(EventId, Digest)>) -> Vec<Delivered> {
        let mut out = Vec::new();
        while let Some(key) = work.pop() {
            let Some((event, _)) = self.pending.get(&key) else {
                continue;
            };
            let (lamports, floor, prev_lamport) = match self.past_of(event) {
                Err(need) => {
                    self.waiting.entry(need).or_default().push(key);
                    continue;
                }
                Ok(past) => {
                    let has_prev = usize::from(event.id.seq > 1);
                    let prev_lamport = past
                        .first()
                        .filter(|_| has_prev == 1)
                        .map_or(0, |p| p.lamport);
                    let lamports: Vec<u64> = past[has_prev..].iter().map(|d| d.lamport).collect();
                    let floor = past.iter().map(|e| e.shown_time()).max().unwrap_or(0);
                    (lamports, floor, prev_lamport)
                }
            };
            let Some(mut event) = self.remove_pending(&key) else {
                continue;
            };
            if next_lamport(lamports) != Some(event.lamport) || event.lamport <= prev_lamport {
                // Refused everywhere alike: the verdict depends on the
                // event and the exact versions it names.
                self.stats.bad_lamport += 1;
                continue;
            }
            if self.noting_floors && event.floor != floor {
                self.refloored.push((event.id, floor));
            }
            event.floor = floor;
            let id = event.id;
            if self.extends_main(&event) {
                if self
                    .budgets
                    .charge(id.author, event.shown_time(), event.token_len)
                    .is_err()
                {
                    // Likewise; the author's later events can never be
                    // placed and will age out.
                    self.stats.over_quota += 1;
                    continue;
                }
                let digest = event.digest;
                out.push(self.deliver(event));
                self.wake(Need::Version(digest), &mut work);
                self.wake(Need::Id(id), &mut work);
            } else if self.chained {
                self.keep_off_main(event, &mut work);
            }
        }
        out
    }

    /// Whether `event` is the next on its author's main chain.
    fn extends_main(&self, event: &Event) -> bool {
        let id = event.id;
        if self.vv.get(&id.author) + 1 != id.seq || self.is_frozen(&id) {
            return false;
        }
        if !self.chained {
            return true;
        }
        match (id.seq, event.prev) {
            (1, _) | (_, None) => true,
            (s, Some(prev)) => self
                .get(&EventId::new(id.author, s - 1))
                .is_some_and(|p| p.digest == prev),
        }
    }

    /// Keeps a version of another branch (it was placed: its own past is
    /// held and its Lamport time is right), so events that depend on it
    /// can be placed; proves the fork against the main chain.
    fn keep_off_main(&mut self, event: Event, work: &mut Vec<(EventId, Digest)>) {
        if self.others_bytes + event.token.len() > MAX_OTHER_BYTES {
            self.stats.evicted += 1;
            return;
        }
        let event = Arc::new(event);
        if let Some(main) = self.get(&event.id) {
            if main.digest != event.digest {
                self.record_fork(main, Arc::clone(&event));
            }
        }
        self.others_bytes += event.token.len();
        self.to_store.push(Arc::clone(&event));
        self.versions.insert(event.digest, Arc::clone(&event));
        self.others
            .entry(event.id)
            .or_default()
            .push(Arc::clone(&event));
        self.wake(Need::Version(event.digest), work);
    }

    fn wake(&mut self, need: Need, work: &mut Vec<(EventId, Digest)>) {
        if let Some(keys) = self.waiting.remove(&need) {
            // Popped from the end: the first to wait is placed first.
            work.extend(
                keys.into_iter()
                    .rev()
                    .filter(|k| self.pending.contains_key(k)),
            );
        }
    }

    fn note_name(&mut self, event: &Event) {
        let names = self.names.entry(event.id.author).or_default();
        if self.names_len < MAX_NAMES && !names.contains(event.name.as_str()) {
            names.insert(event.name.clone());
            self.names_len += 1;
        }
    }

    /// Delivers `event` to its author's main chain, its `floor` set; its
    /// token goes to the store, not into the history.
    fn deliver(&mut self, mut event: Event) -> Delivered {
        let token = std::mem::take(&mut event.token);
        let key = event.key();
        let (forks, chained) = (&self.forks, self.chained);
        let frozen =
            |id: &EventId| chained && forks.get(&id.author).is_some_and(|f| id.seq >= f.seq());
        let late = self.lateness.deliver(&event, &self.shared, &frozen);
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
        self.note_name(&event);
        self.by_author
            .entry(event.id.author)
            .or_default()
            .events
            .push_back(Arc::clone(&event));
        self.delivered += 1;
        if let Some(w) = &mut self.archive {
            w.unstored.insert(key);
            w.fresh.push(key);
        }
        self.vv.set(event.id.author, event.id.seq);
        self.shared.set(event.id.author, event.id.seq);
        self.versions.insert(event.digest, Arc::clone(&event));
        self.order.insert(key, Arc::clone(&event));
        Delivered { event, token, late }
    }
}

/// For serde: a floor of 0 (not delivered yet, or nothing before it) is
/// left out of the stored form.
fn is_zero(n: &UnixMillis) -> bool {
    *n == 0
}

/// Whether `event` carries the hash chain: the digest of its author's
/// previous event (unless it is the first) and of each dependency.
fn has_chain(event: &Event) -> bool {
    event.prev.is_some() == (event.id.seq > 1) && event.refs.len() == event.deps.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory store holding room `room`, shared as a history's archive.
    fn disk_of(room: RoomId) -> Arc<std::sync::Mutex<crate::store::MemoryStore>> {
        use crate::store::Store;
        let disk = Arc::new(std::sync::Mutex::new(crate::store::MemoryStore::new()));
        let record = Record::Room {
            room,
            chat_id: String::new(),
            created: true,
        };
        let Ok(()) = disk.lock().unwrap().apply(&[record]);
        disk
    }

    /// Stores what `history` delivered (and `extra` events) as a host
    /// would: the batch handed out, applied, confirmed.
    fn store(
        history: &mut History,
        disk: &std::sync::Mutex<crate::store::MemoryStore>,
        room: RoomId,
        delivered: Vec<Delivered>,
        extra: Vec<Event>,
    ) {
        use crate::store::Store;
        let events = delivered.into_iter().map(|d| (*d.event).clone());
        let records: Vec<Record> = events
            .chain(extra)
            .map(|event| Record::Event { room, event })
            .collect();
        history.batch_handed();
        let Ok(()) = disk.lock().unwrap().apply(&records);
        history.batch_stored();
    }

    /// Every page of 1, 3 and 7, from the newest back and from the oldest
    /// on, is the same in both histories.
    fn same_pages(windowed: &History, whole: &History, seed: u64) {
        for size in [1, 3, 7] {
            for anchor in [Anchor::Newest, Anchor::After(OrderKey::MIN)] {
                let (mut a, mut b) = (windowed.page(anchor, size), whole.page(anchor, size));
                while !b.is_empty() {
                    assert_eq!(a, b, "seed {seed}, pages of {size}");
                    let next = match anchor {
                        Anchor::After(_) => Anchor::After(b[b.len() - 1].0.key()),
                        _ => Anchor::Before(b[0].0.key()),
                    };
                    (a, b) = (windowed.page(next, size), whole.page(next, size));
                }
                assert!(a.is_empty(), "seed {seed}");
            }
        }
    }

    /// Every page, walked back from the newest or forward from the
    /// oldest, in any page size, gives the shown history and its marks.
    #[test]
    fn pages_walk_the_shown_history_both_ways() {
        let mut marked = 0;
        for seed in 0..16 {
            let mut history = History::new();
            for e in crate::lateness::tests::random_room(seed) {
                history.offer(e, 0).expect("valid");
            }
            let whole: Vec<(EventId, bool)> = history
                .iter()
                .map(|e| (e.id, history.is_late(&e.id)))
                .collect();
            marked += whole.iter().filter(|(_, late)| *late).count();
            for size in [1, 3, 7, 100] {
                let ids = |page: &[(Arc<Event>, bool)]| -> Vec<(EventId, bool)> {
                    page.iter().map(|(e, late)| (e.id, *late)).collect()
                };
                let mut back = Vec::new();
                let mut page = history.page(Anchor::Newest, size);
                while let Some((first, _)) = page.first() {
                    assert!(page.len() <= size);
                    let key = first.key();
                    let mut older = ids(&page);
                    older.extend(back);
                    back = older;
                    page = history.page(Anchor::Before(key), size);
                }
                assert_eq!(back, whole, "seed {seed}, pages of {size}, backwards");
                let mut forth = Vec::new();
                let mut page = history.page(Anchor::After(OrderKey::MIN), size);
                while let Some((last, _)) = page.last() {
                    let key = last.key();
                    forth.extend(ids(&page));
                    page = history.page(Anchor::After(key), size);
                }
                assert_eq!(forth, whole, "seed {seed}, pages of {size}, forwards");
            }
        }
        assert!(
            marked > 0,
            "the rooms have late messages, so pages carry marks"
        );
    }

    /// A window set on a history that already holds events lets none of
    /// them go before a batch handed out after it is stored: they may not
    /// be on disk yet.
    #[test]
    fn events_held_before_the_window_leave_only_once_stored() {
        use crate::store::MemoryStore;
        let disk = Arc::new(std::sync::Mutex::new(MemoryStore::new()));
        let mut h = History::new();
        for e in crate::lateness::tests::random_room(1) {
            h.offer(e, 0).expect("valid");
        }
        let held = h.in_memory();
        h.keep_window(RoomId::from_bytes([7; 16]), disk, 2);
        h.batch_stored();
        assert_eq!(h.in_memory(), held, "a batch handed out before the window");
        h.batch_handed();
        h.batch_stored();
        assert!(h.in_memory() <= 2 + h.version_vector().authors());
    }

    /// A history that keeps a window of 4 events, its delivered events
    /// stored as a host would, shows what a whole one shows (every page,
    /// every mark) and finds every event, while holding only the window
    /// and each author's newest in memory.
    #[test]
    fn a_windowed_history_shows_what_a_whole_one_shows() {
        let room = RoomId::from_bytes([7; 16]);
        let mut beyond = 0;
        for seed in 0..16 {
            let disk = disk_of(room);
            let mut whole = History::new();
            let mut windowed = History::new();
            windowed.keep_window(room, disk.clone(), 4);
            for e in crate::lateness::tests::random_room(seed) {
                whole.offer(e.clone(), 0).expect("valid");
                let delivered = windowed.offer(e, 0).expect("valid");
                store(&mut windowed, &disk, room, delivered, Vec::new());
            }
            let authors = windowed.version_vector().authors();
            assert!(windowed.in_memory() <= 4 + authors, "seed {seed}");
            beyond += windowed.len() - windowed.in_memory();
            let shown = |h: &History| -> Vec<(OrderKey, u64, bool)> {
                h.iter()
                    .map(|e| (e.key(), e.shown_time(), h.is_late(&e.id)))
                    .collect()
            };
            assert_eq!(shown(&windowed), shown(&whole), "seed {seed}");
            same_pages(&windowed, &whole, seed);
            for e in whole.iter() {
                assert_eq!(windowed.get(&e.id).as_deref(), Some(&*e), "seed {seed}");
                let run = whole.chain_from(&e.id.author, e.id.seq, 3);
                assert_eq!(windowed.chain_from(&e.id.author, e.id.seq, 3), run);
                let entries: Vec<Entry> = run.iter().map(|e| Entry::of(e)).collect();
                assert_eq!(windowed.entries_from(&e.id.author, e.id.seq, 3), entries);
                let (ws, wd) = (
                    windowed.next_for(&e.id.author),
                    whole.next_for(&e.id.author),
                );
                assert_eq!(ws, wd);
            }
            assert_eq!(windowed.state_digest(), whole.state_digest());
            assert_eq!(windowed.archive_errors(), 0);
        }
        assert!(
            beyond > 16 * 20,
            "the window was used: {beyond} events on disk only"
        );
    }

    /// A windowed history restored from a checkpoint taken at any point,
    /// then given the events after it, is the history that delivering
    /// every event builds: the same pages, marks, names, digest, and the
    /// same state to the byte (budgets, lateness records, heads).
    #[test]
    fn a_history_restored_from_a_checkpoint_is_the_one_replaying_builds() {
        let room = RoomId::from_bytes([7; 16]);
        let mut restored_any = 0;
        for seed in 0..16 {
            let disk = disk_of(room);
            let events = crate::lateness::tests::random_room(seed);
            let cut = 5 + (seed as usize * 7) % 30;
            let mut live = History::new();
            live.keep_window(room, disk.clone(), 4);
            let mut taken = None;
            for (i, e) in events.iter().enumerate() {
                let delivered = live.offer(e.clone(), 0).expect("valid");
                store(&mut live, &disk, room, delivered, Vec::new());
                if i == cut {
                    taken = live.checkpoint();
                }
            }
            let (covers, data) = taken.expect("a plain windowed history checkpoints");
            let mut restored = History::new();
            restored.keep_window(room, disk.clone(), 4);
            restored.restore_checkpoint(&covers, &data).expect("taken");
            assert!(restored.in_memory() <= covers.authors());
            for e in events
                .iter()
                .filter(|e| e.id.seq > covers.get(&e.id.author))
            {
                let e = Loaded::without_token(e.clone());
                restored.offer(e, 0).expect("valid");
            }
            restored.all_stored();
            restored_any += covers.iter().map(|(_, n)| n).sum::<u64>();
            let mut replayed = History::new();
            replayed.keep_window(room, disk.clone(), 4);
            for e in events.iter() {
                replayed
                    .offer(Loaded::without_token(e.clone()), 0)
                    .expect("valid");
            }
            replayed.all_stored();
            let shown = |h: &History| -> Vec<(OrderKey, u64, bool)> {
                h.iter()
                    .map(|e| (e.key(), e.shown_time(), h.is_late(&e.id)))
                    .collect()
            };
            assert_eq!(shown(&restored), shown(&replayed), "seed {seed}");
            assert_eq!(restored.len(), replayed.len());
            assert_eq!(restored.state_digest(), replayed.state_digest());
            let names = |h: &History| -> BTreeSet<(String, PeerId)> {
                h.names().map(|(n, p)| (n.to_owned(), p)).collect()
            };
            assert_eq!(names(&restored), names(&replayed));
            assert_eq!(restored.checkpoint(), replayed.checkpoint(), "seed {seed}");
            assert_eq!(restored.archive_errors(), 0);
        }
        assert!(restored_any > 16 * 5);
    }

    /// A checkpoint is taken whole or not at all: one that names another
    /// newest event, covers something else, or is damaged leaves the
    /// history empty, to be rebuilt event by event.
    #[test]
    fn a_checkpoint_that_does_not_match_the_store_is_refused() {
        use crate::checkpoint::CheckpointError;
        use crate::store::Store;
        let room = RoomId::from_bytes([7; 16]);
        let disk = disk_of(room);
        let mut live = History::new();
        live.keep_window(room, disk.clone(), 4);
        for e in crate::lateness::tests::random_room(1) {
            let records: Vec<Record> = live
                .offer(e, 0)
                .expect("valid")
                .into_iter()
                .map(|d| Record::Event {
                    room,
                    event: (*d.event).clone(),
                })
                .collect();
            let Ok(()) = disk.lock().unwrap().apply(&records);
        }
        live.all_stored();
        let (covers, data) = live.checkpoint().expect("plain");
        let fresh = || {
            let mut h = History::new();
            h.keep_window(room, disk.clone(), 4);
            h
        };
        let mut other = covers.clone();
        let (author, seq) = other
            .iter()
            .next()
            .map(|(a, n)| (*a, n))
            .expect("an author");
        other.set(author, seq - 1);
        let mut h = fresh();
        assert!(matches!(
            h.restore_checkpoint(&other, &data),
            Err(CheckpointError::Inconsistent(_))
        ));
        assert!(h.is_empty() && h.version_vector().authors() == 0);
        let mut damaged = data.clone();
        damaged.truncate(data.len() / 2);
        assert!(fresh().restore_checkpoint(&covers, &damaged).is_err());
        // The store holds another newest event than the one it names.
        let mut h = fresh();
        let mut state = crate::checkpoint::decode(&data).expect("decodes");
        state.authors[0].newest[0] ^= 1;
        let wrong = crate::checkpoint::encode(&state).expect("encodes");
        assert_eq!(
            h.restore_checkpoint(&covers, &wrong),
            Err(CheckpointError::Newest)
        );
        assert!(h.is_empty() && h.in_memory() == 0);
        // Without a store to read from, none is taken.
        assert_eq!(
            History::new().restore_checkpoint(&covers, &data),
            Err(CheckpointError::NotEmpty)
        );
        assert!(fresh().restore_checkpoint(&covers, &data).is_ok());
    }

    /// The names authors wrote under are known without reading the
    /// history back, each (name, author) pair once, at most
    /// [`MAX_NAMES`] of them.
    #[test]
    fn names_are_kept_once_each_and_bounded() {
        let mut history = History::new();
        let mut events = crate::lateness::tests::random_room(3);
        for (i, e) in events.iter_mut().enumerate() {
            e.name = format!("name{}", i % 3);
        }
        let mut want: BTreeSet<(String, PeerId)> = BTreeSet::new();
        for e in events {
            want.insert((e.name.clone(), e.id.author));
            history.offer(e, 0).expect("valid");
        }
        let got: Vec<(String, PeerId)> = history.names().map(|(n, p)| (n.to_owned(), p)).collect();
        assert_eq!(got.len(), want.len());
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
        assert!(want.len() > 3, "authors used several names");

        let big = 4_000_000_000;
        let mut history = History::with_quota(Quota {
            events_per_s: big,
            burst_events: big,
            bytes_per_s: big,
            burst_bytes: big,
            total_bytes: big,
        });
        let author = PeerId::from_bytes([1; 32]);
        for seq in 1..=(MAX_NAMES as u64 + 10) {
            let mut e = crate::lateness::tests::random_room(0).remove(0);
            e.id = EventId::new(author, seq);
            e.lamport = seq;
            e.deps = if seq > 1 {
                vec![EventId::new(author, seq - 1)]
            } else {
                Vec::new()
            };
            e.name = format!("n{seq}");
            history.offer(e, 0).expect("valid");
        }
        assert_eq!(history.names().count(), MAX_NAMES);
    }

    /// A store may hold rows its history never delivered: rows past a lost
    /// one (the restore stopped at the hole) or rows the restore refused.
    /// Pages and walks of a windowed history step over them and still show
    /// everything a whole history shows, even when a full page of the
    /// store's rows is undelivered.
    #[test]
    fn a_windowed_history_pages_past_stored_rows_it_never_delivered() {
        let room = RoomId::from_bytes([7; 16]);
        let mut skipped = 0;
        for seed in 0..16 {
            let disk = disk_of(room);
            let events = crate::lateness::tests::random_room(seed);
            // The lost row: everything after it in its author's chain, and
            // whatever depends on those, waits for it.
            let lost = events[8].id;
            let mut whole = History::new();
            let mut windowed = History::new();
            windowed.keep_window(room, disk.clone(), 4);
            for e in events.iter().filter(|e| e.id != lost) {
                whole.offer(e.clone(), 0).expect("valid");
                let delivered = windowed.offer(e.clone(), 0).expect("valid");
                let mut extra = Vec::new();
                if delivered.iter().all(|d| d.event.id != e.id) && windowed.get(&e.id).is_none() {
                    // Stored anyway, as a restore finds it on disk.
                    extra.push(e.clone());
                    skipped += 1;
                }
                store(&mut windowed, &disk, room, delivered, extra);
            }
            let shown = |h: &History| -> Vec<OrderKey> { h.iter().map(|e| e.key()).collect() };
            assert_eq!(shown(&windowed), shown(&whole), "seed {seed}");
            same_pages(&windowed, &whole, seed);
            assert_eq!(windowed.archive_errors(), 0);
        }
        assert!(skipped > 16 * 8, "undelivered rows were stored: {skipped}");
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
        token_len: 0,
        prev: ev.prev,
        refs: ev.refs,
        digest: Digest::default(),
    };
    let name = event.name.clone();
    let received = match history.offer(event, now) {
        Ok(delivered) if delivered.is_empty() => Received::Waiting,
        Ok(delivered) => {
            announce(room, delivered, false, out);
            Received::Delivered { name }
        }
        Err(refused) => {
            out.count(refused.into());
            Received::Dropped
        }
    };
    announce_changes(history, room, out);
    received
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
    // The hash chain: the exact versions it follows.
    let (prev, refs) = history
        .commitments(&me, seq, &deps)
        .ok_or(CommandError::History(Refused::BadDeps))?;
    let sealed = Sealed::Ev(EventWire {
        seq,
        lamport,
        deps: deps.clone(),
        time,
        name: name.clone(),
        body: body.clone(),
        prev,
        refs: refs.clone(),
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
        token_len: 0,
        prev,
        refs,
        digest: Digest::default(),
    };
    let delivered = history.offer(event, now)?;
    announce(room, delivered, true, out);
    announce_changes(history, room, out);
    Ok((EventId::new(me, seq), datagrams))
}

/// Tells the UIs about events that became late after their delivery, and
/// that the shown history must be read again when a fork hid events.
pub(crate) fn announce_changes(history: &mut History, room: RoomId, out: &mut Outbox<'_>) {
    for event in history.take_to_store() {
        out.persist(Record::Version {
            room,
            event: (*event).clone(),
        });
    }
    let events = history.take_marked_late();
    if !events.is_empty() {
        out.event(AppEvent::Late { room, events });
    }
    if history.take_reshown() {
        out.event(AppEvent::Reshown { room });
    }
}

/// Stores, then announces, events just delivered; `own` when this node
/// just wrote the first of them (others' events that waited for it are
/// delivered with it, and are not its own).
fn announce(room: RoomId, delivered: Vec<Delivered>, own: bool, out: &mut Outbox<'_>) {
    let me = out.local.me;
    for d in delivered {
        let own = own && d.event.id.author == me;
        let mut stored = (*d.event).clone();
        stored.token = d.token;
        out.persist(Record::Event {
            room,
            event: stored,
        });
        out.event(AppEvent::Message {
            room,
            event: d.event,
            late: d.late,
            own,
        });
    }
}
