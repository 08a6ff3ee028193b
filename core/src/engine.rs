//! Engine: one peer, as a sans-IO state machine.
//!
//! A [`Node`] is fed three kinds of input, each with the host's current
//! time:
//!
//! - [`Node::handle_datagram`]: a UDP datagram arrived from an address;
//! - [`Node::handle_timeout`]: the deadline from [`Node::poll_timeout`]
//!   has passed;
//! - commands: [`Node::create_room`], [`Node::join_room`],
//!   [`Node::send_text`], [`Node::leave_room`], [`Node::shutdown`].
//!
//! After any input the host drains the outputs, **in this order**:
//!
//! 1. [`Node::poll_record`]: records to persist. They must be stored before
//!    anything else is done with the outputs, so that nothing is shown as
//!    sent, and no event leaves the node, before it is durable. Feeding the
//!    records back to [`Node::restore`] rebuilds the node.
//! 2. [`Node::poll_transmit`]: datagrams to send.
//! 3. [`Node::poll_event`]: what happened, for the user.
//!
//! and then sleeps until [`Node::poll_timeout`] or the next input. The
//! engine never reads a clock, touches a socket or draws from the OS: time
//! comes with every call and randomness from the seed given at creation.
//!
//! Every datagram is checked before it is used. Anything that fails a
//! check is dropped and counted in [`Counters`]; none of it panics,
//! changes history, or holds memory beyond the limits of [`crate::wire`],
//! [`crate::history`] and [`crate::membership`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::chat_id::{ChatId, ChatIdError, MAX_BOOTSTRAP};
use crate::clock::{EventId, VersionVector};
use crate::history::{Body, Event, History, Refused};
use crate::identity::{Identity, PeerId};
use crate::membership::{Heard, Members, Status, StatusChange, Timeouts};
use crate::replication::{push_targets, Replication, ReplicationConfig};
use crate::room::{RendezvousTag, RoomId, RoomKey, RoomName, RoomNameError};
use crate::seal::{RoomCipher, SealError};
use crate::signaling::{self, Lookup, Message, Register, Unregister};
use crate::wire::{
    self, Control, Datagram, EventWire, FragDrop, Reassembled, Reassembler, RoomKind, Sealed,
    TextError, WireError, MAX_HINTS,
};
use crate::UnixMillis;

/// Member hints carried by each heartbeat.
const HINTS_PER_BEAT: usize = 3;

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
    /// Lifetime of a signaling registration, in seconds; refreshed at a
    /// third of it.
    pub signal_ttl_secs: u32,
    /// Interval between signaling lookups while some member is online
    /// (lookups happen every probe interval while nobody is).
    pub lookup_interval_ms: u64,
    /// This node's own addresses, reported to signaling servers and put in
    /// Chat IDs as bootstrap addresses.
    pub local_addrs: Vec<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mtu: wire::DEFAULT_MTU,
            timeouts: Timeouts::default(),
            replication: ReplicationConfig::default(),
            signaling: Vec::new(),
            signal_ttl_secs: signaling::DEFAULT_TTL_SECS,
            lookup_interval_ms: 30_000,
            local_addrs: Vec::new(),
        }
    }
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Payload, at most the configured MTU.
    pub bytes: Vec<u8>,
}

/// Something the user should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppEvent {
    /// A room was created or joined (also on restore).
    RoomJoined {
        /// The room.
        room: RoomId,
        /// Its name.
        name: RoomName,
        /// The Chat ID to share (with this node as bootstrap).
        chat_id: String,
        /// Whether this node created it.
        created: bool,
    },
    /// A room was left.
    RoomLeft {
        /// The room.
        room: RoomId,
    },
    /// An event was delivered, in causal order.
    Message {
        /// The room.
        room: RoomId,
        /// The event.
        event: Arc<Event>,
        /// It sorts before an event delivered earlier.
        late: bool,
        /// Written by this node.
        own: bool,
    },
    /// A member was heard for the first time or changed status.
    Member {
        /// The room.
        room: RoomId,
        /// What changed.
        change: StatusChange,
    },
    /// This node had been behind a member and now holds everything that
    /// member had announced.
    CaughtUp {
        /// The room.
        room: RoomId,
        /// Events in the room's history now.
        events: usize,
    },
}

/// Something to persist. Records are plain data (serde), for any store.
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
    /// A room left: forget it and its history.
    Left {
        /// The room.
        room: RoomId,
    },
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
}

/// Why persisted records could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// A room record with an unreadable Chat ID.
    #[error("stored chat {room} has an invalid Chat ID: {source}")]
    ChatId {
        /// The room.
        room: RoomId,
        /// Why.
        source: ChatIdError,
    },
    /// A room record whose Chat ID names another room.
    #[error("stored chat {0} has the Chat ID of another chat")]
    Mismatch(RoomId),
}

/// Datagrams and events dropped, by reason. Nothing is dropped silently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Datagrams received.
    pub datagrams: u64,
    /// Larger than any datagram accepted.
    pub oversized: u64,
    /// Not JSON or not a known shape.
    pub malformed: u64,
    /// Unknown wire version.
    pub bad_version: u64,
    /// Bad fragment header.
    pub bad_fragment: u64,
    /// Token longer than any token we make.
    pub token_too_large: u64,
    /// Fragment received twice.
    pub frag_duplicate: u64,
    /// Fragment disagreeing with its siblings.
    pub frag_inconsistent: u64,
    /// Partial tokens dropped on timeout or to stay within bounds.
    pub frag_evicted: u64,
    /// For a room this node is not in.
    pub unknown_room: u64,
    /// Does not decrypt with the room key.
    pub decrypt_failed: u64,
    /// Decrypts, but the author's signature does not verify.
    pub bad_signature: u64,
    /// Decrypts, but the sealed contents are malformed.
    pub bad_payload: u64,
    /// A control message sealed by someone other than its sender.
    pub forged_sender: u64,
    /// A control message replayed (stamp not fresh).
    pub replayed: u64,
    /// A new member while the member table is full of live members.
    pub members_full: u64,
    /// An event already delivered or waiting.
    pub duplicate_events: u64,
    /// A different event under an id already delivered.
    pub equivocations: u64,
    /// An event with sequence number 0 or far ahead.
    pub seq_out_of_range: u64,
    /// An event with malformed dependencies.
    pub bad_deps: u64,
    /// An event from an author beyond the room's author limit.
    pub too_many_authors: u64,
    /// An event refused because the pending buffer was full.
    pub buffer_full: u64,
    /// A pending event refused on delivery for breaking the Lamport rule.
    pub bad_lamport: u64,
    /// Pending events evicted (too old, or to make room).
    pub pending_evicted: u64,
    /// Repair pushes cut short by the per-peer rate budget.
    pub rate_limited: u64,
    /// Signaling messages from an address that is not a configured server,
    /// or that fail their checks.
    pub bad_signal: u64,
    /// Requests a signaling server refused.
    pub signal_rejected: u64,
}

impl Counters {
    /// Datagrams and events dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.oversized
            + self.malformed
            + self.bad_version
            + self.bad_fragment
            + self.token_too_large
            + self.frag_duplicate
            + self.frag_inconsistent
            + self.frag_evicted
            + self.unknown_room
            + self.decrypt_failed
            + self.bad_signature
            + self.bad_payload
            + self.forged_sender
            + self.replayed
            + self.members_full
            + self.duplicate_events
            + self.equivocations
            + self.seq_out_of_range
            + self.bad_deps
            + self.too_many_authors
            + self.buffer_full
            + self.bad_lamport
            + self.pending_evicted
            + self.bad_signal
    }
}

/// One room this node is in.
#[derive(Debug)]
struct Room {
    id: RoomId,
    name: RoomName,
    key: RoomKey,
    tag: RendezvousTag,
    cipher: RoomCipher,
    history: History,
    members: Members,
    repl: Replication,
    bootstrap: Vec<SocketAddr>,
    next_bootstrap: UnixMillis,
    /// Wait before the next bootstrap attempt: one heartbeat, doubling up
    /// to the probe interval while nobody answers; back to one heartbeat
    /// once a member is online.
    bootstrap_backoff: u64,
    next_register: UnixMillis,
    next_lookup: UnixMillis,
    /// Counted into the node's counters already.
    history_stats_seen: (u64, u64),
    was_behind: bool,
}

/// A p2pchat peer: rooms, their histories and members, and the protocol.
#[derive(Debug)]
pub struct Node {
    identity: Identity,
    me: PeerId,
    name: String,
    config: Config,
    rng: ChaCha20Rng,
    rooms: BTreeMap<RoomId, Room>,
    by_tag: HashMap<RendezvousTag, RoomId>,
    reassembler: Reassembler,
    reassembler_evicted_seen: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<AppEvent>,
    records: VecDeque<Record>,
    counters: Counters,
    stamp: u64,
}

impl Node {
    /// A fresh node for `identity`, shown to others as `name`, with the
    /// RNG seeded by `seed` (the host draws it from the OS).
    pub fn new(identity: Identity, name: &str, config: Config, seed: [u8; 32]) -> Self {
        let mut config = config;
        config.mtu = config.mtu.max(wire::MIN_MTU);
        let mut name: String = name
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .collect();
        while name.len() > wire::MAX_NAME_LEN {
            name.pop();
        }
        if name.is_empty() {
            name = identity.peer_id().short();
        }
        Node {
            me: identity.peer_id(),
            identity,
            name,
            config,
            rng: ChaCha20Rng::from_seed(seed),
            rooms: BTreeMap::new(),
            by_tag: HashMap::new(),
            reassembler: Reassembler::new(),
            reassembler_evicted_seen: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            records: VecDeque::new(),
            counters: Counters::default(),
            stamp: 0,
        }
    }

    /// Rebuilds a node from the records it emitted, in the order it emitted
    /// them (events may also come in canonical order). Rooms are rejoined:
    /// members are probed and signaling is asked at the first timeout, and
    /// anything missed is caught up. Emits a [`AppEvent::RoomJoined`] per
    /// room, and no records (they are stored already).
    pub fn restore(
        identity: Identity,
        name: &str,
        config: Config,
        seed: [u8; 32],
        now: UnixMillis,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<Self, RestoreError> {
        let mut node = Node::new(identity, name, config, seed);
        for record in records {
            match record {
                Record::Room {
                    room,
                    chat_id,
                    created,
                } => {
                    let parsed: ChatId = chat_id
                        .parse()
                        .map_err(|source| RestoreError::ChatId { room, source })?;
                    if *parsed.room_id() != room {
                        return Err(RestoreError::Mismatch(room));
                    }
                    if !node.rooms.contains_key(&room) {
                        node.add_room(now, &parsed, created);
                    }
                }
                Record::Event { room, event } => {
                    if let Some(r) = node.rooms.get_mut(&room) {
                        // Our own store: trusted, but checked like any
                        // event, so a damaged store cannot break order.
                        let _ = r.history.offer(event, now);
                    }
                }
                Record::Member {
                    room,
                    peer,
                    name,
                    addr,
                } => {
                    if let Some(r) = node.rooms.get_mut(&room) {
                        r.members.restore(peer, name, Some(addr));
                    }
                }
                Record::Left { room } => node.remove_room(&room),
            }
        }
        node.records.clear();
        Ok(node)
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.me
    }

    /// This node's display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drop counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Sets the addresses reported to signaling and put in Chat IDs.
    pub fn set_local_addrs(&mut self, addrs: Vec<SocketAddr>) {
        self.config.local_addrs = addrs;
    }

    /// Rooms this node is in.
    pub fn rooms(&self) -> impl Iterator<Item = (RoomId, &RoomName)> {
        self.rooms.values().map(|r| (r.id, &r.name))
    }

    /// A room's history.
    pub fn history(&self, room: &RoomId) -> Option<&History> {
        self.rooms.get(room).map(|r| &r.history)
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
    /// of members online as bootstrap addresses.
    pub fn invite(&self, room: &RoomId) -> Option<ChatId> {
        let r = self.rooms.get(room)?;
        Some(self.chat_id_for(r, true))
    }

    fn chat_id_for(&self, r: &Room, with_members: bool) -> ChatId {
        let mut bootstrap: Vec<SocketAddr> = self
            .config
            .local_addrs
            .iter()
            .copied()
            .filter(usable_addr)
            .collect();
        if with_members {
            bootstrap.extend(r.members.live().map(|(_, a)| a).filter(usable_addr));
        }
        bootstrap.dedup();
        bootstrap.truncate(MAX_BOOTSTRAP);
        // Addresses are filtered to usable ones and capped, so this only
        // fails on an impossible input; fall back to no bootstrap.
        ChatId::new(r.id, r.key.clone(), r.name.clone(), bootstrap)
            .unwrap_or_else(|_| ChatId::without_bootstrap(r.id, r.key.clone(), r.name.clone()))
    }

    // ----- commands -------------------------------------------------------

    /// Creates a room named `name`; returns its Chat ID.
    pub fn create_room(&mut self, now: UnixMillis, name: &str) -> Result<ChatId, CommandError> {
        let name = RoomName::new(name)?;
        let room_id = RoomId::generate(&mut self.rng);
        let key = RoomKey::generate(&mut self.rng);
        let chat_id = ChatId::without_bootstrap(room_id, key, name);
        self.add_room(now, &chat_id, true);
        self.records.push_back(Record::Room {
            room: room_id,
            chat_id: chat_id.to_string(),
            created: true,
        });
        let room = self.rooms.get(&room_id).ok_or(CommandError::NoSuchRoom)?;
        Ok(self.chat_id_for(room, false))
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
        );
        self.add_room(now, chat_id, false);
        self.records.push_back(Record::Room {
            room: *chat_id.room_id(),
            chat_id: bare.to_string(),
            created: false,
        });
        Ok(*chat_id.room_id())
    }

    /// Says `text` in `room`. The event is delivered locally, recorded and
    /// pushed to every member believed online.
    pub fn send_text(
        &mut self,
        now: UnixMillis,
        room: &RoomId,
        text: &str,
    ) -> Result<EventId, CommandError> {
        wire::validate_text(text)?;
        let me = self.me;
        let name = self.name.clone();
        let r = self.rooms.get_mut(room).ok_or(CommandError::NoSuchRoom)?;
        let (seq, deps, lamport) = r
            .history
            .next_for(&me)
            .ok_or(CommandError::History(Refused::SeqOutOfRange))?;
        let wire_event = EventWire {
            seq,
            lamport,
            deps: deps.clone(),
            time: now,
            name: name.clone(),
            body: Body::Text {
                text: text.to_owned(),
            },
        };
        let payload = serde_json::to_vec(&Sealed::Ev(wire_event)).unwrap_or_default();
        let token = r.cipher.seal(&self.identity, &payload, now)?;
        let frag_id = event_frag_id(&token);
        let datagrams =
            wire::encode_room(RoomKind::Ev, r.tag, me, &token, self.config.mtu, frag_id)
                .ok_or(CommandError::TooManyFragments)?;
        let event = Event {
            id: EventId::new(me, seq),
            lamport,
            deps,
            time: now,
            name,
            body: Body::Text {
                text: text.to_owned(),
            },
            token,
        };
        let delivered = r.history.offer(event, now)?;
        for d in delivered {
            self.records.push_back(Record::Event {
                room: *room,
                event: (*d.event).clone(),
            });
            self.events.push_back(AppEvent::Message {
                room: *room,
                event: d.event,
                late: d.late,
                own: true,
            });
        }
        for (_, addr) in push_targets(r.members.live()) {
            for bytes in &datagrams {
                self.transmits.push_back(Transmit {
                    to: addr,
                    bytes: bytes.clone(),
                });
            }
        }
        Ok(EventId::new(me, seq))
    }

    /// Leaves `room`: says goodbye, unregisters, forgets it.
    pub fn leave_room(&mut self, now: UnixMillis, room: &RoomId) -> Result<(), CommandError> {
        if !self.rooms.contains_key(room) {
            return Err(CommandError::NoSuchRoom);
        }
        self.say_goodbye(now, room);
        self.remove_room(room);
        self.records.push_back(Record::Left { room: *room });
        self.events.push_back(AppEvent::RoomLeft { room: *room });
        Ok(())
    }

    /// Before the host stops: says goodbye in every room and unregisters
    /// from signaling. Rooms stay (they are rejoined on restore).
    pub fn shutdown(&mut self, now: UnixMillis) {
        let rooms: Vec<RoomId> = self.rooms.keys().copied().collect();
        for room in rooms {
            self.say_goodbye(now, &room);
        }
    }

    // ----- outputs --------------------------------------------------------

    /// Next record to persist (drain before sending transmits).
    pub fn poll_record(&mut self) -> Option<Record> {
        self.records.pop_front()
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the user.
    pub fn poll_event(&mut self) -> Option<AppEvent> {
        self.events.pop_front()
    }

    /// When to call [`Node::handle_timeout`] next, if ever.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        let mut next = self.reassembler.next_expiry().unwrap_or(UnixMillis::MAX);
        let signaling = !self.config.signaling.is_empty();
        for r in self.rooms.values() {
            next = next.min(r.members.next_deadline());
            if let Some(t) = r.history.next_expiry() {
                next = next.min(t);
            }
            if let Some(t) = r.repl.next_retry(r.history.version_vector()) {
                next = next.min(t);
            }
            if !r.bootstrap.is_empty() && !r.members.any_online() {
                next = next.min(r.next_bootstrap);
            }
            if signaling {
                next = next.min(r.next_register).min(r.next_lookup);
            }
        }
        (next != UnixMillis::MAX).then_some(next)
    }

    // ----- inputs ---------------------------------------------------------

    /// Time passed: heartbeats, failure detection, retries, signaling.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        self.reassembler.expire(now);
        self.sync_reassembler_counter();
        let rooms: Vec<RoomId> = self.rooms.keys().copied().collect();
        for room in rooms {
            self.room_timeout(now, &room);
        }
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: UnixMillis, from: SocketAddr, bytes: &[u8]) {
        self.counters.datagrams += 1;
        let datagram = match wire::decode(bytes) {
            Ok(d) => d,
            Err(e) => {
                let c = &mut self.counters;
                match e {
                    WireError::TooLarge => c.oversized += 1,
                    WireError::Malformed => c.malformed += 1,
                    WireError::Version => c.bad_version += 1,
                    WireError::BadFragment => c.bad_fragment += 1,
                    WireError::TokenTooLarge => c.token_too_large += 1,
                }
                return;
            }
        };
        let (kind, packet) = match datagram {
            Datagram::Sig(s) => return self.handle_signal(now, from, s.msg),
            Datagram::Ctl(p) => (RoomKind::Ctl, p),
            Datagram::Ev(p) => (RoomKind::Ev, p),
        };
        let Some(room_id) = self.by_tag.get(&packet.tag).copied() else {
            self.counters.unknown_room += 1;
            return;
        };
        let sender = packet.from;
        let token = match self.reassembler.push(now, kind, packet) {
            Reassembled::Complete { token, .. } => token,
            Reassembled::Incomplete => {
                self.sync_reassembler_counter();
                return;
            }
            Reassembled::Dropped(why) => {
                match why {
                    FragDrop::Duplicate => self.counters.frag_duplicate += 1,
                    FragDrop::Inconsistent => self.counters.frag_inconsistent += 1,
                    FragDrop::TooLarge => self.counters.token_too_large += 1,
                }
                self.sync_reassembler_counter();
                return;
            }
        };
        let Some(room) = self.rooms.get(&room_id) else {
            return;
        };
        let opened = match room.cipher.open(&token) {
            Ok(o) => o,
            Err(SealError::BadSignature) => {
                self.counters.bad_signature += 1;
                return;
            }
            Err(SealError::TokenTooLarge { .. }) => {
                self.counters.token_too_large += 1;
                return;
            }
            Err(SealError::Decrypt | SealError::PayloadTooLarge { .. }) => {
                self.counters.decrypt_failed += 1;
                return;
            }
            Err(SealError::Malformed(_)) => {
                self.counters.bad_payload += 1;
                return;
            }
        };
        let sealed: Sealed = match serde_json::from_slice(&opened.payload) {
            Ok(s) => s,
            Err(_) => {
                self.counters.bad_payload += 1;
                return;
            }
        };
        match (kind, sealed) {
            (RoomKind::Ctl, Sealed::Ctl(control)) => {
                if opened.author != sender {
                    self.counters.forged_sender += 1;
                    return;
                }
                self.handle_control(now, room_id, from, sender, control);
            }
            (RoomKind::Ev, Sealed::Ev(ev)) => {
                self.handle_event(now, room_id, sender, opened.author, ev, token);
            }
            _ => self.counters.bad_payload += 1,
        }
    }

    // ----- room traffic ---------------------------------------------------

    fn handle_control(
        &mut self,
        now: UnixMillis,
        room_id: RoomId,
        addr: SocketAddr,
        sender: PeerId,
        control: Control,
    ) {
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        // Check the contents before anything is taken from the message.
        let valid = match &control {
            Control::Beat { name, hints, .. } => {
                wire::validate_name(name) && hints.len() <= MAX_HINTS
            }
            Control::Summary { vv, .. } => vv.authors() <= crate::history::MAX_AUTHORS,
            Control::Bye { .. } => true,
        };
        if !valid {
            self.counters.bad_payload += 1;
            return;
        }
        if let Control::Beat { name, .. } = &control {
            room.members.set_name(sender, name);
        }
        let (heard, change) = room.members.heard(now, sender, addr, control.stamp());
        match heard {
            Heard::Replay => {
                self.counters.replayed += 1;
                return;
            }
            Heard::Full => {
                self.counters.members_full += 1;
                return;
            }
            Heard::Fresh => {}
        }
        room.bootstrap.retain(|a| *a != addr);
        if let Some(change) = change {
            self.records.push_back(Record::Member {
                room: room_id,
                peer: sender,
                name: change.name.clone(),
                addr,
            });
            self.events.push_back(AppEvent::Member {
                room: room_id,
                change,
            });
        }
        match control {
            Control::Beat {
                digest,
                hints,
                hello,
                ..
            } => {
                let room = self.rooms.get_mut(&room_id);
                let Some(room) = room else { return };
                room.members.set_digest(&sender, digest);
                for hint in hints {
                    room.members.hint(now, hint.peer, hint.addr);
                }
                if hello {
                    self.send_beat(now, &room_id, addr, false);
                }
                let Some(room) = self.rooms.get_mut(&room_id) else {
                    return;
                };
                if digest != room.history.version_vector().digest() {
                    let delivered = room.history.len() as u64;
                    if room.repl.should_ask(now, sender, false, delivered) {
                        self.send_summary(now, &room_id, addr, true);
                    }
                }
            }
            Control::Summary { vv, reply, .. } => {
                let Some(room) = self.rooms.get_mut(&room_id) else {
                    return;
                };
                let push = room.repl.on_summary(now, sender, vv, &room.history);
                self.counters.rate_limited =
                    self.rooms.values().map(|r| r.repl.rate_limited()).sum();
                let Some(room) = self.rooms.get(&room_id) else {
                    return;
                };
                let tag = room.tag;
                for event in &push.events {
                    self.send_event_token(tag, addr, &event.token);
                }
                if reply {
                    self.send_summary(now, &room_id, addr, false);
                } else {
                    let Some(room) = self.rooms.get_mut(&room_id) else {
                        return;
                    };
                    let delivered = room.history.len() as u64;
                    if room.repl.is_behind(&sender, room.history.version_vector())
                        && room.repl.should_ask(now, sender, true, delivered)
                    {
                        self.send_summary(now, &room_id, addr, true);
                    }
                }
                self.check_caught_up(&room_id);
            }
            Control::Bye { .. } => {
                let Some(room) = self.rooms.get_mut(&room_id) else {
                    return;
                };
                if let Some(change) = room.members.bye(&sender) {
                    self.events.push_back(AppEvent::Member {
                        room: room_id,
                        change,
                    });
                }
            }
        }
    }

    fn handle_event(
        &mut self,
        now: UnixMillis,
        room_id: RoomId,
        sender: PeerId,
        author: PeerId,
        ev: EventWire,
        token: String,
    ) {
        let text_ok = match &ev.body {
            Body::Text { text } => wire::validate_text(text).is_ok(),
            Body::Unsupported => true,
        };
        if !text_ok || !wire::validate_name(&ev.name) {
            self.counters.bad_payload += 1;
            return;
        }
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        let event = Event {
            id: EventId::new(author, ev.seq),
            lamport: ev.lamport,
            deps: ev.deps,
            time: ev.time,
            name: ev.name,
            body: ev.body,
            token,
        };
        let name = event.name.clone();
        match room.history.offer(event, now) {
            Ok(delivered) => {
                let waiting = delivered.is_empty();
                if !delivered.is_empty() {
                    room.members.set_name(author, &name);
                }
                for d in delivered {
                    self.records.push_back(Record::Event {
                        room: room_id,
                        event: (*d.event).clone(),
                    });
                    self.events.push_back(AppEvent::Message {
                        room: room_id,
                        event: d.event,
                        late: d.late,
                        own: false,
                    });
                }
                self.sync_history_counters(&room_id);
                if waiting {
                    // Something it depends on is missing: ask whoever sent
                    // it for what it has.
                    let Some(room) = self.rooms.get_mut(&room_id) else {
                        return;
                    };
                    let addr = room.members.get(&sender).and_then(|m| m.addr);
                    let delivered = room.history.len() as u64;
                    if let Some(addr) = addr {
                        if room.repl.should_ask(now, sender, false, delivered) {
                            self.send_summary(now, &room_id, addr, true);
                        }
                    }
                } else {
                    self.check_caught_up(&room_id);
                }
            }
            Err(refused) => {
                let c = &mut self.counters;
                match refused {
                    Refused::Duplicate => c.duplicate_events += 1,
                    Refused::Equivocation => c.equivocations += 1,
                    Refused::SeqOutOfRange => c.seq_out_of_range += 1,
                    Refused::BadDeps => c.bad_deps += 1,
                    Refused::TooManyAuthors => c.too_many_authors += 1,
                    Refused::BufferFull => c.buffer_full += 1,
                }
                self.sync_history_counters(&room_id);
            }
        }
    }

    fn check_caught_up(&mut self, room_id: &RoomId) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let behind = room
            .repl
            .ahead_of(room.history.version_vector())
            .next()
            .is_some();
        if room.was_behind && !behind {
            self.events.push_back(AppEvent::CaughtUp {
                room: *room_id,
                events: room.history.len(),
            });
        }
        room.was_behind = behind;
    }

    fn room_timeout(&mut self, now: UnixMillis, room_id: &RoomId) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        room.history.expire(now);
        // Replication state only for members still in the table (which is
        // bounded): a forgotten member's state goes with it.
        let members = &room.members;
        room.repl.retain_peers(|p| members.get(p).is_some());
        let changes = room.members.tick(now);
        for change in changes {
            self.events.push_back(AppEvent::Member {
                room: *room_id,
                change,
            });
        }
        self.sync_history_counters(room_id);
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let targets = room.members.beat_targets(now);
        let confirmed: Vec<bool> = targets
            .iter()
            .map(|(p, a)| {
                room.members
                    .get(p)
                    .is_some_and(|m| m.addr == Some(*a) && m.status != Status::Offline)
            })
            .collect();
        // A joiner (or a member whose room went quiet) retries the Chat
        // ID's addresses soon, then less often: one lost hello must not
        // cost a whole probe interval.
        let timeouts = self.config.timeouts;
        let bootstrap = if room.bootstrap.is_empty() || room.members.any_online() {
            room.bootstrap_backoff = timeouts.heartbeat;
            Vec::new()
        } else if now >= room.next_bootstrap {
            room.next_bootstrap = now.saturating_add(room.bootstrap_backoff);
            room.bootstrap_backoff = room
                .bootstrap_backoff
                .saturating_mul(2)
                .min(timeouts.probe.max(timeouts.heartbeat));
            room.bootstrap.clone()
        } else {
            Vec::new()
        };
        for ((_, addr), live) in targets.into_iter().zip(confirmed) {
            // Probes of unconfirmed addresses ask for an answer at once.
            self.send_beat(now, room_id, addr, !live);
        }
        for addr in bootstrap {
            self.send_beat(now, room_id, addr, true);
        }
        // Retry questions that went unanswered.
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let delivered = room.history.len() as u64;
        let ahead: Vec<PeerId> = room.repl.ahead_of(room.history.version_vector()).collect();
        let mut ask = Vec::new();
        for peer in ahead {
            let addr = room
                .members
                .get(&peer)
                .filter(|m| m.status != Status::Offline)
                .and_then(|m| m.addr);
            match addr {
                Some(addr) => {
                    if room.repl.should_ask(now, peer, false, delivered) {
                        ask.push(addr);
                    }
                }
                // Unreachable: stop counting on it (and stop the retry
                // timer) until it speaks again.
                None => room.repl.forget_vv(&peer),
            }
        }
        for addr in ask {
            self.send_summary(now, room_id, addr, true);
        }
        self.signal_timeout(now, room_id);
    }

    // ----- signaling ------------------------------------------------------

    fn signal_timeout(&mut self, now: UnixMillis, room_id: &RoomId) {
        if self.config.signaling.is_empty() {
            return;
        }
        let ttl = self
            .config
            .signal_ttl_secs
            .clamp(1, signaling::MAX_TTL_SECS);
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let tag = room.tag;
        let register_due = now >= room.next_register;
        let lookup_due = now >= room.next_lookup;
        let online = room.members.any_online();
        let mut out = Vec::new();
        if register_due {
            let stamp = self.next_stamp(now);
            let addrs: Vec<SocketAddr> = self
                .config
                .local_addrs
                .iter()
                .copied()
                .filter(usable_addr)
                .take(signaling::MAX_ADDRS)
                .collect();
            if let Ok(reg) = Register::new(&self.identity, tag, addrs, ttl, stamp) {
                out.push(wire::encode_sig(Message::Register(reg)));
            }
        }
        if lookup_due {
            let stamp = self.next_stamp(now);
            out.push(wire::encode_sig(Message::Lookup(Lookup::new(
                &self.identity,
                tag,
                stamp,
            ))));
        }
        let lookup_every = if online {
            self.config.lookup_interval_ms
        } else {
            self.config.timeouts.probe
        };
        if let Some(room) = self.rooms.get_mut(room_id) {
            if register_due {
                room.next_register = now.saturating_add(u64::from(ttl) * 1000 / 3);
            }
            if lookup_due {
                room.next_lookup = now.saturating_add(lookup_every);
            }
        }
        for bytes in out {
            for server in &self.config.signaling {
                self.transmits.push_back(Transmit {
                    to: *server,
                    bytes: bytes.clone(),
                });
            }
        }
    }

    fn handle_signal(&mut self, now: UnixMillis, from: SocketAddr, msg: Message) {
        if !self.config.signaling.contains(&from) || msg.verify().is_err() {
            self.counters.bad_signal += 1;
            return;
        }
        let (tag, entries) = match msg {
            Message::Peers(p) => (p.tag, p.entries),
            Message::Arrived(a) => (a.tag, vec![a.entry]),
            Message::Registered(_) => return,
            Message::Rejected(_) => {
                self.counters.signal_rejected += 1;
                return;
            }
            Message::Register(_) | Message::Unregister(_) | Message::Lookup(_) => {
                self.counters.bad_signal += 1;
                return;
            }
        };
        let Some(room_id) = self.by_tag.get(&tag).copied() else {
            self.counters.unknown_room += 1;
            return;
        };
        let mut greet = Vec::new();
        if let Some(room) = self.rooms.get_mut(&room_id) {
            for entry in entries {
                if entry.peer == self.me {
                    continue;
                }
                let known_live = room
                    .members
                    .get(&entry.peer)
                    .is_some_and(|m| m.status == Status::Online);
                for addr in std::iter::once(entry.observed).chain(entry.addrs) {
                    if !usable_addr(&addr) {
                        continue;
                    }
                    room.members.hint(now, entry.peer, addr);
                    if !known_live && !greet.contains(&addr) {
                        greet.push(addr);
                    }
                }
            }
        }
        for addr in greet {
            self.send_beat(now, &room_id, addr, true);
        }
    }

    // ----- sending --------------------------------------------------------

    fn say_goodbye(&mut self, now: UnixMillis, room_id: &RoomId) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let live: Vec<SocketAddr> = room.members.live().map(|(_, a)| a).collect();
        let tag = room.tag;
        for addr in live {
            let stamp = self.next_stamp(now);
            self.send_control(now, room_id, addr, Control::Bye { stamp });
        }
        if !self.config.signaling.is_empty() {
            let stamp = self.next_stamp(now);
            let bytes = wire::encode_sig(Message::Unregister(Unregister::new(
                &self.identity,
                tag,
                stamp,
            )));
            for server in &self.config.signaling {
                self.transmits.push_back(Transmit {
                    to: *server,
                    bytes: bytes.clone(),
                });
            }
        }
    }

    fn send_beat(&mut self, now: UnixMillis, room_id: &RoomId, to: SocketAddr, hello: bool) {
        let stamp = self.next_stamp(now);
        // A random window of the member list: a fixed rotation aliases with
        // the number of beats per round (a member would hear of the same
        // few others from everyone, every round, and large rooms stopped
        // discovering each other at ~200 members in the scale simulation).
        let offset = self.rng.next_u32() as usize;
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let hints: Vec<_> = room
            .members
            .hints(offset, HINTS_PER_BEAT)
            .into_iter()
            .filter(|h| h.addr != to)
            .collect();
        let control = Control::Beat {
            stamp,
            name: self.name.clone(),
            digest: room.history.version_vector().digest(),
            hints,
            hello,
        };
        self.send_control(now, room_id, to, control);
    }

    fn send_summary(&mut self, now: UnixMillis, room_id: &RoomId, to: SocketAddr, reply: bool) {
        let stamp = self.next_stamp(now);
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let vv: VersionVector = room.history.version_vector().clone();
        self.send_control(now, room_id, to, Control::Summary { stamp, vv, reply });
    }

    fn send_control(
        &mut self,
        now: UnixMillis,
        room_id: &RoomId,
        to: SocketAddr,
        control: Control,
    ) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let payload = serde_json::to_vec(&Sealed::Ctl(control)).unwrap_or_default();
        let Ok(token) = room.cipher.seal(&self.identity, &payload, now) else {
            return;
        };
        let tag = room.tag;
        let frag_id = self.rng.next_u32();
        if let Some(datagrams) = wire::encode_room(
            RoomKind::Ctl,
            tag,
            self.me,
            &token,
            self.config.mtu,
            frag_id,
        ) {
            for bytes in datagrams {
                self.transmits.push_back(Transmit { to, bytes });
            }
        }
    }

    fn send_event_token(&mut self, tag: RendezvousTag, to: SocketAddr, token: &str) {
        let frag_id = event_frag_id(token);
        if let Some(datagrams) =
            wire::encode_room(RoomKind::Ev, tag, self.me, token, self.config.mtu, frag_id)
        {
            for bytes in datagrams {
                self.transmits.push_back(Transmit { to, bytes });
            }
        }
    }

    // ----- bookkeeping ----------------------------------------------------

    /// A strictly increasing stamp, near `now` in microseconds-ish units so
    /// that it keeps increasing across restarts.
    fn next_stamp(&mut self, now: UnixMillis) -> u64 {
        self.stamp = (self.stamp + 1).max(now.saturating_mul(1000));
        self.stamp
    }

    fn add_room(&mut self, now: UnixMillis, chat_id: &ChatId, created: bool) {
        let id = *chat_id.room_id();
        let key = chat_id.key().clone();
        let tag = key.rendezvous_tag();
        let room = Room {
            id,
            name: chat_id.name().clone(),
            cipher: RoomCipher::new(id, &key),
            key,
            tag,
            history: History::new(),
            members: Members::new(self.me, self.config.timeouts),
            repl: Replication::new(self.config.replication),
            bootstrap: chat_id
                .bootstrap()
                .iter()
                .copied()
                .filter(usable_addr)
                .collect(),
            next_bootstrap: now,
            bootstrap_backoff: self.config.timeouts.heartbeat,
            next_register: now,
            next_lookup: now,
            history_stats_seen: (0, 0),
            was_behind: false,
        };
        self.by_tag.insert(tag, id);
        self.rooms.insert(id, room);
        let invite = self
            .rooms
            .get(&id)
            .map(|r| self.chat_id_for(r, false).to_string())
            .unwrap_or_default();
        self.events.push_back(AppEvent::RoomJoined {
            room: id,
            name: chat_id.name().clone(),
            chat_id: invite,
            created,
        });
    }

    fn remove_room(&mut self, room_id: &RoomId) {
        if let Some(room) = self.rooms.remove(room_id) {
            self.by_tag.remove(&room.tag);
        }
    }

    fn sync_history_counters(&mut self, room_id: &RoomId) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let stats = room.history.stats();
        let (bad, evicted) = room.history_stats_seen;
        self.counters.bad_lamport += stats.bad_lamport - bad;
        self.counters.pending_evicted += stats.evicted - evicted;
        room.history_stats_seen = (stats.bad_lamport, stats.evicted);
    }

    fn sync_reassembler_counter(&mut self) {
        let total = self.reassembler.evicted();
        self.counters.frag_evicted += total - self.reassembler_evicted_seen;
        self.reassembler_evicted_seen = total;
    }
}

/// The fragment id of an event token: derived from the token, so every
/// retransmission of the same event by the same sender uses the same id,
/// and the receiver's partial copy fills up across retransmissions instead
/// of starting over (a 16 KiB event is ~20 fragments; under 30 % loss it
/// would almost never arrive whole in one go).
fn event_frag_id(token: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(token.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Whether an address can be sent to and signed (not unspecified, not
/// multicast, not port 0, no IPv6 scope id or flow info).
fn usable_addr(addr: &SocketAddr) -> bool {
    let scoped = match addr {
        SocketAddr::V6(v6) => v6.scope_id() != 0 || v6.flowinfo() != 0,
        SocketAddr::V4(_) => false,
    };
    addr.port() != 0 && !addr.ip().is_unspecified() && !addr.ip().is_multicast() && !scoped
}
