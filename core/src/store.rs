//! Store: what a host does with the records the node asks it to keep.
//!
//! The node never touches a disk. It hands its host [`Record`]s, in
//! batches, through [`crate::Output::Persist`], and holds back everything
//! that depends on them until the host confirms the batch is stored. At
//! start the host gives the records back and [`crate::Node::restore`]
//! rebuilds the node from them. Every store — SQLite in the native node,
//! browser storage in the web peer, [`MemoryStore`] in tests and the
//! simulator — implements [`Store`] and keeps the rules below, and
//! `conformance` (feature `conformance`) checks each of them against any
//! implementation:
//!
//! 1. **Whole batches.** [`Store::apply`] stores a batch entirely or not at
//!    all, and returns only once it survives a crash of the host (a power
//!    cut, for a store on disk).
//! 2. **Idempotent records.** Applying a record twice is applying it once:
//!    - `Room`: stored; a room stored again keeps its place in the join
//!      order and takes the new Chat ID and `created` flag.
//!    - `Event`: the first copy of a `(room, author, seq)` wins; another
//!      event under the same id is ignored (an author who signs two events
//!      under one number does not get to rewrite what a member stored).
//!    - `Version`: the first copy of a `(room, digest)` wins (the digest
//!      of [`crate::equivocation::digest`], which a store computes).
//!    - `Member`: stored or updated; the address is replaced, and a `None`
//!      name keeps the name stored before.
//!    - `Left`: the room, its events, versions and members are deleted. A
//!      room joined again later comes at the end of the join order.
//! 3. **Load order.** [`Store::load`] gives back the rooms in the order they
//!    were joined, then each room's events in the room's canonical order
//!    `(lamport, author, seq)`, then each room's versions by `(author, seq,
//!    digest)`, then each room's members. (Events in canonical order are
//!    events in causal order, so a restore delivers each at once instead of
//!    buffering the history.) Events load without their tokens (`token`
//!    empty, `token_len` its length; see [`Loaded::without_token`]): the
//!    node does not keep them, and reads them back with
//!    [`Store::tokens`] when it sends an event on. Versions load whole.
//! 4. **Lenient loading.** What a store cannot decode (a damaged row, an
//!    entry another program wrote) it skips and counts in
//!    [`Loaded::skipped`]; it never refuses to load because of one entry.
//!    The node is lenient in the same way: [`crate::Node::restore`] skips
//!    and counts any record it cannot use — a Chat ID that does not parse or
//!    names another room, an event or member of a room it does not have, an
//!    event its history refuses — so one bad record never keeps a node from
//!    starting, and stores need not check Chat IDs themselves.
//! 5. **Tokens read back.** [`Store::tokens`] gives the token of the event
//!    stored under each id asked for (the first copy, by rule 2), or
//!    `None` for an id it does not hold (never stored, its room left, a
//!    row lost); the node keeps delivered events without their tokens and
//!    reads them back to send them on ([`crate::Output::Read`]).
//! 6. **Ranges read back.** [`Store::chain`] gives an author's events in
//!    a room by sequence number, from a number on, stopping before the
//!    first number it does not hold; [`Store::page`] gives a room's events
//!    next to an [`Anchor`] in canonical order, oldest first. Each reads at
//!    most `limit` events, as [`Store::load`] gives them (without their
//!    tokens), each with the `floor` it was stored with, so that the
//!    event shows the same time read back as when it was delivered: what a
//!    node, or a UI, reads instead of keeping a long history in memory.
//!    Pages are of the main chains as stored; which of their events a
//!    node shows (an equivocator's are hidden from its fork on) is the
//!    node's business. [`Store::entries`] reads the same as `chain` but
//!    only each event's place and token length ([`Entry`]): what a node
//!    needs to serve a catch-up, without decoding the events (a store
//!    that has no cheaper read may keep the default, which reads `chain`).
//! 7. **Checkpoints** ([`crate::checkpoint`]). A `Checkpoint` replaces the
//!    room's previous one, and goes with the room when it is left.
//!    [`Store::load`] gives it back right before the room's events, and
//!    then only the events it does not cover (an author's numbered above
//!    what `covers` says), still in canonical order — but only if the
//!    store holds every event it covers. If it lost one, it leaves the
//!    checkpoint out and gives all the room's events, so the node finds
//!    the hole as it would without checkpoints. A store may always leave
//!    checkpoints out (the browser's do: its node keeps whole histories
//!    and writes none); it then gives every event.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::clock::{EventId, OrderKey};
use crate::equivocation::{digest, Digest};
use crate::history::{Anchor, Event};
use crate::identity::PeerId;
use crate::room::RoomId;

/// Something to keep. Records are plain data (serde), for any store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// A room joined: its Chat ID (id, key and name; without bootstrap
    /// addresses). Secret: whoever reads it can join the room.
    Room {
        /// The room.
        room: RoomId,
        /// Its Chat ID.
        chat_id: String,
        /// Whether this node created it.
        created: bool,
    },
    /// An event delivered in a room.
    Event {
        /// The room.
        room: RoomId,
        /// The event.
        event: Event,
    },
    /// A version of an event kept off its author's main chain: one of the
    /// two versions that prove an equivocation, or a version of its other
    /// branch that events of others name ([`crate::equivocation`]).
    Version {
        /// The room.
        room: RoomId,
        /// The version.
        event: Event,
    },
    /// A member and where it was last heard from.
    Member {
        /// The room.
        room: RoomId,
        /// The member.
        peer: PeerId,
        /// Its display name, if known.
        name: Option<String>,
        /// Its address.
        addr: SocketAddr,
    },
    /// A room's history state as of `covers` ([`crate::checkpoint`]):
    /// what a restart takes instead of delivering those events again.
    Checkpoint {
        /// The room.
        room: RoomId,
        /// The events it covers: each author's numbered 1 to this.
        covers: crate::clock::VersionVector,
        /// The state ([`crate::history::History::checkpoint`]).
        data: Vec<u8>,
    },
    /// A room left: forget it and its history.
    Left {
        /// The room.
        room: RoomId,
    },
}

impl Record {
    /// The room the record is about.
    pub fn room(&self) -> &RoomId {
        match self {
            Record::Room { room, .. }
            | Record::Event { room, .. }
            | Record::Version { room, .. }
            | Record::Member { room, .. }
            | Record::Checkpoint { room, .. }
            | Record::Left { room } => room,
        }
    }
}

/// What [`Store::load`] read back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The records, in the load order of this module's rules.
    pub records: Vec<Record>,
    /// Entries that could not be decoded, left out.
    pub skipped: usize,
}

impl Loaded {
    /// `event` as [`Store::load`] gives it back: without its token, the
    /// token's length kept.
    pub fn without_token(mut event: Event) -> Event {
        event.token_len = event.token.len();
        event.token = String::new();
        event
    }

    /// Rooms among the records.
    pub fn rooms(&self) -> usize {
        self.count(|r| matches!(r, Record::Room { .. }))
    }

    /// Events among the records.
    pub fn events(&self) -> usize {
        self.count(|r| matches!(r, Record::Event { .. }))
    }

    fn count(&self, f: impl Fn(&Record) -> bool) -> usize {
        self.records.iter().filter(|r| f(r)).count()
    }
}

/// Where a stored event stands and how long its token is: what a node
/// reads to serve a catch-up ([`Store::entries`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its place in the canonical order (and its id).
    pub key: OrderKey,
    /// Its token's length in bytes.
    pub token_len: usize,
}

impl Entry {
    /// The entry of an event as loaded ([`Loaded::without_token`]).
    pub fn of(event: &Event) -> Self {
        Entry {
            key: event.key(),
            token_len: event.token_len,
        }
    }
}

/// A host's store of records, keeping the rules of this module.
pub trait Store {
    /// Why the store failed.
    type Error: std::error::Error + 'static;

    /// Stores a batch, all or nothing, durably.
    fn apply(&mut self, batch: &[Record]) -> Result<(), Self::Error>;

    /// Everything stored, in load order.
    fn load(&self) -> Result<Loaded, Self::Error>;

    /// The tokens of the events stored under `events` in `room`, in the
    /// order asked, `None` where it holds none.
    fn tokens(&self, room: &RoomId, events: &[EventId])
        -> Result<Vec<Option<String>>, Self::Error>;

    /// `author`'s events in `room` numbered `from` on, in order, at most
    /// `limit`, stopping before the first number not held.
    fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Self::Error>;

    /// At most `limit` of `room`'s events next to `anchor`, in canonical
    /// order (oldest first).
    fn page(&self, room: &RoomId, anchor: Anchor, limit: usize) -> Result<Vec<Event>, Self::Error>;

    /// [`Store::chain`], each event's [`Entry`] only.
    fn entries(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Entry>, Self::Error> {
        Ok(self
            .chain(room, author, from, limit)?
            .iter()
            .map(Entry::of)
            .collect())
    }
}

/// A store whose operations complete later, keeping the same rules: the
/// browser's IndexedDB. The node needs nothing more of it (its output
/// queue already waits for batches to be confirmed and reads to be
/// answered), and `conformance` checks it with the same suite. Every
/// [`Store`] is one, its operations complete at once.
// Used by single-threaded hosts (the browser): no `Send` bound is promised.
#[allow(async_fn_in_trait)]
pub trait AsyncStore {
    /// Why the store failed.
    type Error: std::error::Error + 'static;

    /// Stores a batch, all or nothing, durably.
    async fn apply(&mut self, batch: &[Record]) -> Result<(), Self::Error>;

    /// Everything stored, in load order.
    async fn load(&self) -> Result<Loaded, Self::Error>;

    /// The tokens of the events stored under `events` in `room`, in the
    /// order asked, `None` where it holds none.
    async fn tokens(
        &self,
        room: &RoomId,
        events: &[EventId],
    ) -> Result<Vec<Option<String>>, Self::Error>;

    /// `author`'s events in `room` numbered `from` on, in order, at most
    /// `limit`, stopping before the first number not held.
    async fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Self::Error>;

    /// At most `limit` of `room`'s events next to `anchor`, in canonical
    /// order (oldest first).
    async fn page(
        &self,
        room: &RoomId,
        anchor: Anchor,
        limit: usize,
    ) -> Result<Vec<Event>, Self::Error>;
}

impl<S: Store> AsyncStore for S {
    type Error = S::Error;

    async fn apply(&mut self, batch: &[Record]) -> Result<(), Self::Error> {
        Store::apply(self, batch)
    }

    async fn load(&self) -> Result<Loaded, Self::Error> {
        Store::load(self)
    }

    async fn tokens(
        &self,
        room: &RoomId,
        events: &[EventId],
    ) -> Result<Vec<Option<String>>, Self::Error> {
        Store::tokens(self, room, events)
    }

    async fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Self::Error> {
        Store::chain(self, room, author, from, limit)
    }

    async fn page(
        &self,
        room: &RoomId,
        anchor: Anchor,
        limit: usize,
    ) -> Result<Vec<Event>, Self::Error> {
        Store::page(self, room, anchor, limit)
    }
}

/// A store's history read back while the node runs, for a node that keeps
/// only a window of each room's history in memory
/// ([`crate::history`]): the ranges of rule 6, called by the core when it
/// needs an older event (a dependency named long after, a page the user
/// scrolls to, a catch-up of a long history). The core asks only for
/// events whose batch the host confirmed stored, so a store that keeps
/// its rules holds every one of them; one it cannot read is counted and
/// treated as missing.
///
/// A synchronous read the core calls, not an output: the reads are few
/// and local (an index lookup), and an answer that arrived later would
/// have to be waited for everywhere a rule reads the past. A host whose
/// store reads only asynchronously (the browser's IndexedDB) gives the
/// node no archive, and its history stays whole in memory.
pub trait Archive: Send + Sync + std::fmt::Debug {
    /// [`Store::chain`].
    fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, ArchiveError>;

    /// [`Store::page`].
    fn page(&self, room: &RoomId, anchor: Anchor, limit: usize)
        -> Result<Vec<Event>, ArchiveError>;

    /// [`Store::entries`].
    fn entries(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Entry>, ArchiveError>;
}

/// A store read that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("could not read the stored history: {0}")]
pub struct ArchiveError(pub String);

/// Any store behind a lock is an archive (what a host shares between the
/// node and its writer).
impl<S> Archive for std::sync::Mutex<S>
where
    S: Store + Send + std::fmt::Debug,
{
    fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, ArchiveError> {
        read(self, |s| s.chain(room, author, from, limit))
    }

    fn page(
        &self,
        room: &RoomId,
        anchor: Anchor,
        limit: usize,
    ) -> Result<Vec<Event>, ArchiveError> {
        read(self, |s| s.page(room, anchor, limit))
    }

    fn entries(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Entry>, ArchiveError> {
        read(self, |s| s.entries(room, author, from, limit))
    }
}

/// One read of a store behind a lock, its error as an [`ArchiveError`].
fn read<S: Store, T>(
    store: &std::sync::Mutex<S>,
    f: impl FnOnce(&S) -> Result<T, S::Error>,
) -> Result<T, ArchiveError> {
    let store = store.lock().map_err(|e| ArchiveError(e.to_string()))?;
    f(&store).map_err(|e| ArchiveError(e.to_string()))
}

/// The rules of this module over plain maps, in memory: the reference every
/// other store is compared with, and the store of the simulator's nodes
/// (whose "disk" survives their crashes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStore {
    /// Join order → room record.
    rooms: BTreeMap<u64, Record>,
    next_order: u64,
    events: BTreeMap<(RoomId, OrderKey), Event>,
    event_ids: BTreeMap<(RoomId, EventId), OrderKey>,
    versions: BTreeMap<(RoomId, EventId, Digest), Event>,
    members: BTreeMap<(RoomId, PeerId), (u64, Option<String>, SocketAddr)>,
    next_member: u64,
    checkpoints: BTreeMap<RoomId, (crate::clock::VersionVector, Vec<u8>)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// [`Store::load`], with the checkpoints (rule 7) or, without, every
    /// event: what a store that leaves checkpoints out gives, to compare
    /// a node restored from them with one rebuilt event by event.
    pub fn load_with(&self, checkpoints: bool) -> Loaded {
        let mut records: Vec<Record> = self.rooms.values().cloned().collect();
        let rooms: Vec<RoomId> = records.iter().map(|r| *r.room()).collect();
        for room in &rooms {
            let checkpoint = self
                .checkpoints
                .get(room)
                .filter(|_| checkpoints)
                .filter(|(covers, _)| self.holds_all(room, covers));
            let covered = |e: &Event| {
                checkpoint.is_some_and(|(covers, _)| e.id.seq <= covers.get(&e.id.author))
            };
            if let Some((covers, data)) = checkpoint {
                records.push(Record::Checkpoint {
                    room: *room,
                    covers: covers.clone(),
                    data: data.clone(),
                });
            }
            records.extend(
                self.events
                    .range((*room, OrderKey::MIN)..=(*room, OrderKey::MAX))
                    .filter(|(_, event)| !covered(event))
                    .map(|(_, event)| Record::Event {
                        room: *room,
                        event: Loaded::without_token(event.clone()),
                    }),
            );
        }
        for room in &rooms {
            records.extend(self.versions.iter().filter(|((r, _, _), _)| r == room).map(
                |(_, event)| Record::Version {
                    room: *room,
                    event: event.clone(),
                },
            ));
        }
        for room in &rooms {
            let mut members: Vec<_> = self
                .members
                .iter()
                .filter(|((r, _), _)| r == room)
                .collect();
            members.sort_by_key(|(_, (n, _, _))| *n);
            records.extend(members.into_iter().map(|((room, peer), (_, name, addr))| {
                Record::Member {
                    room: *room,
                    peer: *peer,
                    name: name.clone(),
                    addr: *addr,
                }
            }));
        }
        Loaded {
            records,
            skipped: 0,
        }
    }

    /// Whether every event `covers` names is held in `room`.
    fn holds_all(&self, room: &RoomId, covers: &crate::clock::VersionVector) -> bool {
        covers.iter().all(|(author, n)| {
            let first = (*room, EventId::new(*author, 1));
            let last = (*room, EventId::new(*author, n));
            u64::try_from(self.event_ids.range(first..=last).count()).ok() == Some(n)
        })
    }

    /// Loses the row of event `id` in `room`, as a damaged disk would:
    /// for tests of a node whose store cannot give back what it stored.
    /// Returns whether there was one.
    pub fn lose_event(&mut self, room: &RoomId, id: &EventId) -> bool {
        match self.event_ids.remove(&(*room, *id)) {
            Some(key) => self.events.remove(&(*room, key)).is_some(),
            None => false,
        }
    }

    fn order_of(&self, room: &RoomId) -> Option<u64> {
        self.rooms
            .iter()
            .find(|(_, r)| r.room() == room)
            .map(|(order, _)| *order)
    }

    fn apply_one(&mut self, record: &Record) {
        match record {
            Record::Room { room, .. } => {
                let order = self.order_of(room).unwrap_or_else(|| {
                    self.next_order += 1;
                    self.next_order
                });
                self.rooms.insert(order, record.clone());
            }
            Record::Event { room, event } => {
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    self.event_ids.entry((*room, event.id))
                {
                    slot.insert(event.key());
                    self.events.insert((*room, event.key()), event.clone());
                }
            }
            Record::Version { room, event } => {
                self.versions
                    .entry((*room, event.id, digest(event)))
                    .or_insert_with(|| event.clone());
            }
            Record::Member {
                room,
                peer,
                name,
                addr,
            } => {
                let next = self.next_member + 1;
                let entry = self
                    .members
                    .entry((*room, *peer))
                    .or_insert((next, None, *addr));
                if entry.0 == next {
                    self.next_member = next;
                }
                entry.2 = *addr;
                if name.is_some() {
                    entry.1.clone_from(name);
                }
            }
            Record::Checkpoint { room, covers, data } => {
                self.checkpoints
                    .insert(*room, (covers.clone(), data.clone()));
            }
            Record::Left { room } => {
                self.checkpoints.remove(room);
                if let Some(order) = self.order_of(room) {
                    self.rooms.remove(&order);
                }
                self.events.retain(|(r, _), _| r != room);
                self.event_ids.retain(|(r, _), _| r != room);
                self.versions.retain(|(r, _, _), _| r != room);
                self.members.retain(|(r, _), _| r != room);
            }
        }
    }
}

impl Store for MemoryStore {
    type Error = std::convert::Infallible;

    fn apply(&mut self, batch: &[Record]) -> Result<(), Self::Error> {
        for record in batch {
            self.apply_one(record);
        }
        Ok(())
    }

    fn load(&self) -> Result<Loaded, Self::Error> {
        Ok(self.load_with(true))
    }
    fn tokens(
        &self,
        room: &RoomId,
        events: &[EventId],
    ) -> Result<Vec<Option<String>>, Self::Error> {
        Ok(events
            .iter()
            .map(|id| {
                let key = self.event_ids.get(&(*room, *id))?;
                self.events.get(&(*room, *key)).map(|e| e.token.clone())
            })
            .collect())
    }

    fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Self::Error> {
        let mut out = Vec::new();
        let mut seq = from.max(1);
        while out.len() < limit {
            let Some(key) = self.event_ids.get(&(*room, EventId::new(*author, seq))) else {
                break;
            };
            if let Some(event) = self.events.get(&(*room, *key)) {
                out.push(Loaded::without_token(event.clone()));
            }
            let Some(next) = seq.checked_add(1) else {
                break;
            };
            seq = next;
        }
        Ok(out)
    }

    fn page(&self, room: &RoomId, anchor: Anchor, limit: usize) -> Result<Vec<Event>, Self::Error> {
        use std::ops::Bound::{Excluded, Included};
        let all = (
            Included((*room, OrderKey::MIN)),
            Included((*room, OrderKey::MAX)),
        );
        let taken = |(_, e): (_, &Event)| Loaded::without_token(e.clone());
        Ok(match anchor {
            Anchor::Newest => {
                let mut page: Vec<Event> = self
                    .events
                    .range(all)
                    .rev()
                    .take(limit)
                    .map(taken)
                    .collect();
                page.reverse();
                page
            }
            Anchor::Before(key) => {
                let range = (all.0, Excluded((*room, key)));
                let mut page: Vec<Event> = self
                    .events
                    .range(range)
                    .rev()
                    .take(limit)
                    .map(taken)
                    .collect();
                page.reverse();
                page
            }
            Anchor::After(key) => {
                let range = (Excluded((*room, key)), all.1);
                self.events.range(range).take(limit).map(taken).collect()
            }
        })
    }
}

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

#[cfg(test)]
mod tests {
    #[test]
    fn the_memory_store_keeps_the_rules() {
        super::conformance::check_all(super::MemoryStore::new);
    }
}
