//! Node: one peer, as a sans-IO state machine.
//!
//! A [`Node`] is fed, each with the host's current time:
//!
//! - datagrams ([`Node::handle_datagram`], or [`Node::handle_datagrams`]
//!   for what arrived together: their signatures are then checked in one
//!   batch, see [`crate::verification`]);
//! - the passing of time ([`Node::handle_timeout`], at the deadline of the
//!   last [`Output::Timeout`]);
//! - the user's commands: [`Node::create_room`], [`Node::join_room`],
//!   [`Node::send_text`], [`Node::leave_room`], [`Node::shutdown`].
//!
//! After any input the host drains [`Node::poll_output`] until it says
//! [`Output::Timeout`]: records to store (confirmed with [`Node::stored`]),
//! datagrams to send and events to show, in the order of
//! [`crate::output`], which guarantees that nothing is sent or shown before
//! the records it depends on are stored. The node never reads a clock,
//! touches a socket or draws from the OS: time comes with every call and
//! randomness from the seed given at creation.
//!
//! The node itself decides little. It holds the rooms, routes each datagram
//! to its room by rendezvous tag (and signaling answers by the tag they
//! name), puts fragmented tokens back together, and turns commands into
//! calls on a [`Room`](crate::room) — where the protocol lives. Every
//! datagram is checked before it is used; whatever fails a check is dropped
//! and counted in [`Counters`], never a panic, and nothing holds memory
//! beyond the limits of [`crate::wire`], [`crate::history`] and
//! [`crate::membership`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::chat_id::{ChatId, ChatIdError};
use crate::clock::EventId;
use crate::counters::{Counters, DropReason};
use crate::discovery;
use crate::history::{History, Refused};
use crate::identity::{Identity, PeerId, UserName};
use crate::membership::{Members, Timeouts};
use crate::output::{AppEvent, BatchId, Output, OutputQueue, ReadFor, ReadId, Transmit};
use crate::replication::ReplicationConfig;
use crate::room::{Arrived, Input, Outbox, Room, RoomId, RoomKey, RoomName, RoomNameError};
use crate::seal::{SealError, Unsealed};
use crate::signaling;
use crate::store::Record;
use crate::verification::{Batch, Check, Verifier};
use crate::wire::{self, Datagram, Reassembled, Reassembler, RoomKind, TextError};
use crate::UnixMillis;

/// How a node behaves; the defaults suit a chat on the Internet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest datagram to send, in bytes (at least [`wire::MIN_MTU`]).
    pub mtu: usize,
    /// Heartbeat and failure-detection timings.
    pub timeouts: Timeouts,
    /// Anti-entropy tuning.
    pub replication: ReplicationConfig,
    /// Signaling servers to register with and look rooms up at.
    pub signaling: Vec<SocketAddr>,
    /// Keys pinned for some of those servers: their answers are taken only
    /// signed by that key (see [`crate::signaling`]).
    pub signaling_keys: Vec<(SocketAddr, PeerId)>,
    /// Lifetime of a signaling registration, in seconds; refreshed at a
    /// third of it.
    pub signal_ttl_secs: u32,
    /// Interval between signaling lookups while some member is online
    /// (lookups happen every probe interval while nobody is).
    pub lookup_interval_ms: u64,
    /// This node's own addresses, reported to signaling servers and put in
    /// Chat IDs as bootstrap addresses.
    pub local_addrs: Vec<SocketAddr>,
    /// The per-author quota of rooms this node creates (a room joined has
    /// the quota its Chat ID says, see [`crate::quota`]).
    pub room_quota: crate::quota::Quota,
    /// Fewest events a room delivers between two checkpoints
    /// ([`crate::checkpoint::MIN_EVENTS`]; the simulator's rooms are
    /// shorter).
    pub checkpoint_min_events: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mtu: wire::DEFAULT_MTU,
            timeouts: Timeouts::default(),
            replication: ReplicationConfig::default(),
            signaling: Vec::new(),
            signaling_keys: Vec::new(),
            signal_ttl_secs: signaling::DEFAULT_TTL_SECS,
            lookup_interval_ms: 30_000,
            local_addrs: Vec::new(),
            room_quota: crate::quota::Quota::default(),
            checkpoint_min_events: crate::checkpoint::MIN_EVENTS,
        }
    }
}

/// This node as its rooms see it: who it is and how it is set up.
#[derive(Debug)]
pub(crate) struct Local {
    pub identity: Identity,
    pub me: PeerId,
    pub name: UserName,
    pub config: Config,
    /// Where histories read back what left their window, and its size.
    pub archive: Option<(Arc<dyn crate::store::Archive>, usize)>,
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Bad room name.
    #[error("invalid chat name: {0}")]
    RoomName(#[from] RoomNameError),
    /// Bad Chat ID.
    #[error(transparent)]
    ChatId(#[from] ChatIdError),
    /// Bad message text.
    #[error(transparent)]
    Text(#[from] TextError),
    /// No such room here.
    #[error("not a member of that chat")]
    NoSuchRoom,
    /// Joined already.
    #[error("already a member of the chat {0}")]
    AlreadyJoined(RoomName),
    /// The event could not be sealed.
    #[error("could not seal the message: {0}")]
    Seal(#[from] SealError),
    /// The event does not fit [`wire::MAX_FRAGMENTS`] datagrams at this MTU.
    #[error("the message does not fit in {max} datagrams at this MTU", max = wire::MAX_FRAGMENTS)]
    TooManyFragments,
    /// The room's history cannot take more events of ours.
    #[error("the chat's history refused the event: {0}")]
    History(#[from] Refused),
    /// This node is writing faster than every member would take (the
    /// room's quota, see [`crate::quota`]).
    #[error("you are writing faster than the chat takes: {0}")]
    OverQuota(#[from] crate::quota::OverQuota),
}

/// A p2pchat peer: its rooms, and the routing between them and the network.
#[derive(Debug)]
pub struct Node {
    local: Local,
    rng: ChaCha20Rng,
    stamp: u64,
    rooms: BTreeMap<RoomId, Room>,
    by_tag: HashMap<crate::room::RendezvousTag, RoomId>,
    reassembler: Reassembler,
    reassembler_evicted_seen: u64,
    queue: OutputQueue,
    counters: Counters,
    /// Draws the coefficients of signature batches: its own stream, so
    /// checking signatures never shifts the protocol's random choices.
    verify_rng: ChaCha20Rng,
    /// Runs signature batches (the host may spread them over threads).
    verifier: Verifier,
}

/// A datagram on its way in: decoded and reassembled, its token opened
/// but its signature not yet checked.
enum Arrival {
    Found(crate::room::RendezvousTag, crate::discovery::Answer),
    /// A token for the room of `tag`, and the index of its signature in
    /// the batch (its `opened` is refused if the signature fails).
    Token {
        tag: crate::room::RendezvousTag,
        arrived: Arrived,
        check: Option<usize>,
    },
}

impl Node {
    /// A fresh node for `identity`, shown to others as `name`, with the
    /// RNG seeded by `seed` (the host draws it from the OS).
    pub fn new(identity: Identity, name: UserName, config: Config, seed: [u8; 32]) -> Self {
        let mut config = config;
        config.mtu = config.mtu.max(wire::MIN_MTU);
        let mut verify_rng = ChaCha20Rng::from_seed(seed);
        verify_rng.set_stream(1);
        Node {
            local: Local {
                me: identity.peer_id(),
                identity,
                name,
                config,
                archive: None,
            },
            rng: ChaCha20Rng::from_seed(seed),
            stamp: 0,
            rooms: BTreeMap::new(),
            by_tag: HashMap::new(),
            reassembler: Reassembler::new(),
            reassembler_evicted_seen: 0,
            queue: OutputQueue::new(),
            counters: Counters::default(),
            verify_rng,
            verifier: |batch| batch.verdicts(),
        }
    }

    /// Has signature batches run by `verifier` instead of on the calling
    /// thread: the native node spreads a large batch over its cores.
    pub fn set_verifier(&mut self, verifier: Verifier) {
        self.verifier = verifier;
    }

    /// Has every room keep at most `window` events of its history in
    /// memory (and each author's newest), reading older ones back from
    /// `archive` when a rule, a page or a catch-up needs them
    /// ([`crate::store::Archive`]). Set it before restoring, so that a long
    /// history never is whole in memory. Without it a history is kept
    /// whole.
    pub fn set_archive(&mut self, archive: Arc<dyn crate::store::Archive>, window: usize) {
        for room in self.rooms.values_mut() {
            room.history
                .keep_window(room.id, Arc::clone(&archive), window);
        }
        self.local.archive = Some((archive, window));
    }

    /// Rebuilds a node from the records a store gave back (in the load
    /// order of [`crate::store`]); returns it and how many records it could
    /// not use and skipped: a room whose Chat ID does not parse or names
    /// another room, an event or member of a room it does not have, an event
    /// its history refuses. Rooms are rejoined — members are probed and
    /// signaling asked at the first timeout, and anything missed is caught
    /// up — and each is announced with [`AppEvent::RoomJoined`]
    /// (`restored`). Nothing is asked to be stored: it is stored already.
    pub fn restore(
        identity: Identity,
        name: UserName,
        config: Config,
        seed: [u8; 32],
        now: UnixMillis,
        records: impl IntoIterator<Item = Record>,
    ) -> (Self, usize) {
        let mut node = Node::new(identity, name, config, seed);
        let mut skipped = 0;
        for record in records {
            if !node.restore_record(now, record) {
                skipped += 1;
            }
        }
        node.restored();
        (node, skipped)
    }

    /// [`Node::restore`] one record at a time, for a host that reads its
    /// store as it goes (and so never holds all of it at once): each
    /// record of [`crate::Store::load`], in its order, then
    /// [`Node::restored`] once, before anything else. Returns whether the
    /// record was used (see [`Node::restore`] for what is skipped).
    pub fn restore_record(&mut self, now: UnixMillis, record: Record) -> bool {
        match record {
            Record::Room {
                room,
                chat_id,
                created,
            } => match chat_id.parse::<ChatId>() {
                Ok(parsed) if *parsed.room_id() == room => {
                    if !self.rooms.contains_key(&room) {
                        self.add_room(now, &parsed, created, true, None);
                    }
                    true
                }
                _ => false,
            },
            Record::Event { room, event } => self
                .rooms
                .get_mut(&room)
                .is_some_and(|r| r.restore_event(event, now)),
            Record::Version { room, event } => self
                .rooms
                .get_mut(&room)
                .is_some_and(|r| r.restore_version(event, now)),
            Record::Checkpoint { room, covers, data } => self
                .rooms
                .get_mut(&room)
                .is_some_and(|r| r.restore_checkpoint(&covers, &data, now)),
            Record::Member {
                room,
                peer,
                name,
                addr,
            } => match self.rooms.get_mut(&room) {
                Some(r) => {
                    r.members.restore(peer, name, Some(addr));
                    true
                }
                None => false,
            },
            Record::Left { room } => {
                self.remove_room(&room);
                true
            }
        }
    }

    /// Ends a restore made with [`Node::restore_record`]: the records it
    /// wrote while taking the stored ones back are already stored.
    pub fn restored(&mut self) {
        self.queue.forget_records();
        for room in self.rooms.values_mut() {
            room.history.all_stored();
            room.history.note_floors(false);
        }
    }

    /// How many wrong floors are noted and not taken yet
    /// ([`Node::take_refloored`]).
    pub fn refloored_waiting(&self) -> usize {
        self.rooms.values().map(|r| r.history.refloored_len()).sum()
    }

    /// Restored events whose stored floor (the time their causal past
    /// shows, [`crate::history::Event::floor`]) was not the right one,
    /// with the right one: rows written before floors were stored. A host
    /// whose node reads its store back ([`Node::set_archive`]; only such a
    /// node notes them) writes them back during or after the restore, so
    /// that events read back show the times they were shown with.
    pub fn take_refloored(&mut self) -> Vec<(RoomId, EventId, UnixMillis)> {
        let mut out = Vec::new();
        for room in self.rooms.values_mut() {
            let id = room.id;
            out.extend(
                room.history
                    .take_refloored()
                    .into_iter()
                    .map(|(event, floor)| (id, event, floor)),
            );
        }
        out
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.local.me
    }

    /// This node's display name.
    pub fn name(&self) -> &str {
        self.local.name.as_str()
    }

    /// What was taken in and dropped so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Sets the addresses reported to signaling and put in Chat IDs; the
    /// rooms announce their new Chat IDs ([`AppEvent::Invite`]).
    pub fn set_local_addrs(&mut self, addrs: Vec<SocketAddr>) {
        self.local.config.local_addrs = addrs;
        let ids: Vec<RoomId> = self.rooms.keys().copied().collect();
        for id in ids {
            if let Some((room, mut out)) = self.room_and_outbox(&id) {
                room.refresh_invite(&mut out, true);
            }
        }
    }

    /// Rooms this node is in, in room id order.
    pub fn rooms(&self) -> impl Iterator<Item = (RoomId, &RoomName)> {
        self.rooms.values().map(|r| (r.id, &r.name))
    }

    /// A room's history.
    pub fn history(&self, room: &RoomId) -> Option<&History> {
        self.rooms.get(room).map(|r| &r.history)
    }

    /// A page of a room's shown history, each event with its late mark
    /// ([`History::page`]): what UIs show, a page at a time.
    pub fn page(
        &self,
        room: &RoomId,
        anchor: crate::history::Anchor,
        limit: usize,
    ) -> Vec<(Arc<crate::history::Event>, bool)> {
        self.history(room)
            .map(|h| h.page(anchor, limit))
            .unwrap_or_default()
    }

    /// A room's members (not counting this node).
    pub fn members(&self, room: &RoomId) -> Option<&Members> {
        self.rooms.get(room).map(|r| &r.members)
    }

    /// Bytes and tokens held for reassembly.
    pub fn reassembly_load(&self) -> (usize, usize) {
        (self.reassembler.len(), self.reassembler.bytes())
    }

    /// A Chat ID for `room` to share, with this node's addresses and those
    /// of members online as bootstrap addresses (the one last announced
    /// with [`AppEvent::Invite`]).
    pub fn invite(&self, room: &RoomId) -> Option<ChatId> {
        Some(self.rooms.get(room)?.invite(&self.local, true))
    }

    // ----- commands -------------------------------------------------------

    /// Creates a room named `name`; returns its Chat ID.
    pub fn create_room(&mut self, now: UnixMillis, name: &str) -> Result<ChatId, CommandError> {
        let name = RoomName::new(name)?;
        let room_id = RoomId::generate(&mut self.rng);
        let key = RoomKey::generate(&mut self.rng);
        let chat_id = ChatId::without_bootstrap(room_id, key, name)
            .with_quota(self.local.config.room_quota)?;
        self.queue.persist(Record::Room {
            room: room_id,
            chat_id: chat_id.to_string(),
            created: true,
        });
        self.add_room(now, &chat_id, true, false, None);
        let room = self.rooms.get(&room_id).ok_or(CommandError::NoSuchRoom)?;
        Ok(room.invite(&self.local, false))
    }

    /// Joins the room of `chat_id`; returns its id.
    pub fn join_room(&mut self, now: UnixMillis, chat_id: &ChatId) -> Result<RoomId, CommandError> {
        if let Some(r) = self.rooms.get(chat_id.room_id()) {
            return Err(CommandError::AlreadyJoined(r.name.clone()));
        }
        let bare = ChatId::without_bootstrap(
            *chat_id.room_id(),
            chat_id.key().clone(),
            chat_id.name().clone(),
        )
        .with_quota(chat_id.quota())?;
        self.queue.persist(Record::Room {
            room: *chat_id.room_id(),
            chat_id: bare.to_string(),
            created: false,
        });
        self.add_room(now, chat_id, false, false, Some(chat_id.to_string()));
        Ok(*chat_id.room_id())
    }

    /// Says `text` in `room`. The event is delivered locally, stored and
    /// pushed to every member believed online.
    pub fn send_text(
        &mut self,
        now: UnixMillis,
        room: &RoomId,
        text: &str,
    ) -> Result<EventId, CommandError> {
        let (room, mut out) = self.room_and_outbox(room).ok_or(CommandError::NoSuchRoom)?;
        room.say(now, text, &mut out)
    }

    /// Leaves `room`: says goodbye, unregisters, forgets it; the store is
    /// asked to forget it too.
    pub fn leave_room(&mut self, now: UnixMillis, room: &RoomId) -> Result<(), CommandError> {
        let (r, mut out) = self.room_and_outbox(room).ok_or(CommandError::NoSuchRoom)?;
        r.leave(now, &mut out);
        self.remove_room(room);
        self.queue.persist(Record::Left { room: *room });
        self.queue.event(AppEvent::RoomLeft { room: *room });
        Ok(())
    }

    /// Before the host stops: says goodbye in every room and unregisters
    /// from signaling, and writes a checkpoint of every room that has
    /// delivered anything since its last ([`Node::checkpoint`]). Rooms
    /// stay (they come back on restore).
    pub fn shutdown(&mut self, now: UnixMillis) {
        let ids: Vec<RoomId> = self.rooms.keys().copied().collect();
        for id in ids {
            if let Some((room, mut out)) = self.room_and_outbox(&id) {
                room.leave(now, &mut out);
            }
        }
        // The next start then delivers no stored event again.
        self.checkpoint();
    }

    // ----- outputs --------------------------------------------------------

    /// The next thing for the host to do (see [`crate::output`]). Returns
    /// [`Output::Timeout`] when there is nothing more for now.
    pub fn poll_output(&mut self) -> Output {
        // At the end of the batch: every event a checkpoint covers is in
        // it or an earlier one.
        let min = self.local.config.checkpoint_min_events;
        for room in self.rooms.values_mut() {
            if let Some(record) = room.checkpoint(Some(min)) {
                self.queue.persist(record);
            }
        }
        match self.queue.poll() {
            Some(output) => {
                if matches!(output, Output::Persist(_)) {
                    // The batch holds every event delivered so far.
                    for room in self.rooms.values_mut() {
                        room.history.batch_handed();
                    }
                }
                output
            }
            None => Output::Timeout(self.deadline()),
        }
    }

    /// Writes a checkpoint of every room that delivered anything since its
    /// last ([`crate::checkpoint`]; only rooms whose history reads its
    /// store have them), handed out with the next batch: for a host about
    /// to stop, so that its next start delivers no stored event again.
    pub fn checkpoint(&mut self) {
        for room in self.rooms.values_mut() {
            if let Some(record) = room.checkpoint(None) {
                self.queue.persist(record);
            }
        }
    }

    /// The host stored the batch: what waited for it may go, and its
    /// events may leave memory.
    pub fn stored(&mut self, batch: BatchId) {
        if self.queue.stored(batch) {
            for room in self.rooms.values_mut() {
                room.history.batch_stored();
            }
        }
    }

    /// The host read the tokens [`Output::Read`] `id` asked for: one per
    /// event, in the order asked (`None` for one its store does not hold,
    /// counted as [`Counters::missing_tokens`]). Each is sent on to
    /// whoever it was read for.
    pub fn read_done(&mut self, id: ReadId, tokens: Vec<Option<String>>) {
        let Some(ReadFor {
            room,
            events,
            sends,
        }) = self.queue.read_done(id)
        else {
            return;
        };
        let read: HashMap<EventId, String> = events
            .into_iter()
            .zip(tokens)
            .filter_map(|(e, t)| Some((e, t?)))
            .collect();
        let (me, mtu) = (self.local.me, self.local.config.mtu);
        let mut datagrams = Vec::new();
        if let Some(room) = self.rooms.get(&room) {
            for (to, event) in sends {
                match read.get(&event) {
                    Some(token) => datagrams.extend(
                        room.link
                            .event_datagrams(me, token, mtu)
                            .into_iter()
                            .flatten()
                            .map(|bytes| Transmit { to, bytes }),
                    ),
                    None => self.counters.missing_tokens += 1,
                }
            }
        }
        self.queue.resume(datagrams);
    }

    /// The host could not store the batch: what waited for it is neither
    /// sent nor shown. Returns how many outputs were dropped. (The rooms'
    /// memory still holds what the batch described; it is offered to
    /// members by later repairs, and stored with the next batch that
    /// succeeds only if it is delivered again, e.g. after a restart.)
    pub fn store_failed(&mut self, batch: BatchId) -> usize {
        for room in self.rooms.values_mut() {
            room.history.batch_failed();
        }
        self.queue.failed(batch)
    }

    fn deadline(&self) -> Option<UnixMillis> {
        let mut next = self.reassembler.next_expiry().unwrap_or(UnixMillis::MAX);
        let signaling = !self.local.config.signaling.is_empty();
        for r in self.rooms.values() {
            next = next.min(r.deadline(signaling));
        }
        (next != UnixMillis::MAX).then_some(next)
    }

    // ----- inputs ---------------------------------------------------------

    /// Time passed: heartbeats, failure detection, retries, signaling.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        self.reassembler.expire(now);
        self.sync_reassembler_counter();
        let ids: Vec<RoomId> = self.rooms.keys().copied().collect();
        for id in ids {
            if let Some((room, mut out)) = self.room_and_outbox(&id) {
                room.handle(now, Input::Timeout, &mut out);
            }
        }
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: UnixMillis, from: SocketAddr, bytes: &[u8]) {
        self.handle_datagrams(now, [(from, bytes)]);
    }

    /// Datagrams arrived together (what the host's socket had ready),
    /// each from its address: the same as handing them in one by one, in
    /// order, but the signatures of the tokens they complete are checked
    /// in one batch ([`crate::verification`]), several times cheaper per
    /// signature during a catch-up.
    pub fn handle_datagrams<'a>(
        &mut self,
        now: UnixMillis,
        datagrams: impl IntoIterator<Item = (SocketAddr, &'a [u8])>,
    ) {
        let mut checks = Vec::new();
        let arrivals: Vec<Arrival> = datagrams
            .into_iter()
            .filter_map(|(from, bytes)| self.arrive(now, from, bytes, &mut checks))
            .collect();
        let verdicts = if checks.is_empty() {
            Vec::new()
        } else {
            let mut seed = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut self.verify_rng, &mut seed);
            (self.verifier)(Batch::new(checks, seed))
        };
        for arrival in arrivals {
            match arrival {
                Arrival::Found(tag, entries) => self.route(now, &tag, Input::Found(entries)),
                Arrival::Token {
                    tag,
                    mut arrived,
                    check,
                } => {
                    if check.is_some_and(|i| verdicts.get(i) != Some(&true)) {
                        arrived.opened = Err(SealError::BadSignature);
                    }
                    self.route(now, &tag, Input::Token(arrived));
                }
            }
        }
    }

    /// Decodes one datagram and, once its token is whole, opens it and
    /// adds its signature to `checks`; `None` when there is nothing (yet)
    /// for a room.
    fn arrive(
        &mut self,
        now: UnixMillis,
        from: SocketAddr,
        bytes: &[u8],
        checks: &mut Vec<Check>,
    ) -> Option<Arrival> {
        self.counters.datagrams += 1;
        let datagram = match wire::decode(bytes) {
            Ok(d) => d,
            Err(e) => {
                self.counters.count(e.into());
                return None;
            }
        };
        let (kind, packet) = match datagram {
            Datagram::Sig(s) => {
                let answer =
                    discovery::route_answer(&self.local.config, &mut self.counters, from, s);
                return answer.map(|(tag, entries)| Arrival::Found(tag, entries));
            }
            Datagram::Ctl(p) => (RoomKind::Ctl, p),
            Datagram::Ev(p) => (RoomKind::Ev, p),
        };
        let Some(room) = self.by_tag.get(&packet.tag).copied() else {
            self.counters.count(DropReason::UnknownRoom);
            return None;
        };
        let sender = packet.from;
        let tag = packet.tag;
        let token = match self.reassembler.push(now, kind, packet) {
            Reassembled::Complete { token, .. } => token,
            Reassembled::Incomplete => {
                self.sync_reassembler_counter();
                return None;
            }
            Reassembled::Dropped(why) => {
                self.counters.count(why.into());
                self.sync_reassembler_counter();
                return None;
            }
        };
        let unsealed = self.rooms.get(&room)?.unseal(&token);
        let (opened, check) = match unsealed {
            Ok(Unsealed { opened, check }) => {
                checks.push(check);
                (Ok(opened), Some(checks.len() - 1))
            }
            Err(e) => (Err(e), None),
        };
        let arrived = Arrived {
            kind,
            addr: from,
            sender,
            token,
            opened,
        };
        Some(Arrival::Token {
            tag,
            arrived,
            check,
        })
    }

    /// Hands `input` to the room of `tag`.
    fn route(&mut self, now: UnixMillis, tag: &crate::room::RendezvousTag, input: Input) {
        let Some(id) = self.by_tag.get(tag).copied() else {
            return self.counters.count(DropReason::UnknownRoom);
        };
        if let Some((room, mut out)) = self.room_and_outbox(&id) {
            room.handle(now, input, &mut out);
        }
    }

    // ----- bookkeeping ----------------------------------------------------

    /// A room and an outbox to the rest of the node, borrowed together.
    fn room_and_outbox(&mut self, id: &RoomId) -> Option<(&mut Room, Outbox<'_>)> {
        let room = self.rooms.get_mut(id)?;
        let out = Outbox::new(
            &self.local,
            *id,
            &mut self.rng,
            &mut self.stamp,
            &mut self.queue,
            &mut self.counters,
        );
        Some((room, out))
    }

    fn add_room(
        &mut self,
        now: UnixMillis,
        chat_id: &ChatId,
        created: bool,
        restored: bool,
        joined_with: Option<String>,
    ) {
        let room = Room::new(now, chat_id, &self.local);
        let (id, tag) = (room.id, room.link.tag);
        self.queue.event(AppEvent::RoomJoined {
            room: id,
            name: room.name.clone(),
            chat_id: room.announced_invite().to_owned(),
            created,
            restored,
            joined_with,
        });
        self.by_tag.insert(tag, id);
        self.rooms.insert(id, room);
    }

    fn remove_room(&mut self, id: &RoomId) {
        if let Some(room) = self.rooms.remove(id) {
            self.by_tag.remove(&room.link.tag);
        }
    }

    fn sync_reassembler_counter(&mut self) {
        let total = self.reassembler.evicted();
        self.counters.add(
            DropReason::FragEvicted,
            total - self.reassembler_evicted_seen,
        );
        self.reassembler_evicted_seen = total;
    }
}
