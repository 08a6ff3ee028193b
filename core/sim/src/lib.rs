//! The deterministic simulator: many [`Node`]s in one process, virtual
//! time, a lossy network and a signaling server, all driven by one seeded
//! RNG. The same seed gives the same trace.
//!
//! The signaling server is core's own rendezvous registry, the one the
//! `p2pchat-signaling` binary runs.
//!
//! Each node's disk is a [`MemoryStore`], the reference store of
//! `p2pchat_core::store`: the harness stores every batch the node hands
//! out and confirms it at once, so a crash loses only what is in memory,
//! and a restart rebuilds the node from what the store loads.
//!
//! Natively, every other node (odd indexes) keeps only a small window of each
//! history in memory ([`SIM_WINDOW`] events), reading older ones back from
//! its disk ([`Node::set_archive`]); the others keep their histories whole.
//! Every scenario thus compares the two: members must show the same
//! history whatever they keep in memory.
//!
//! [`settle`] drains a node the same way, for tests that drive nodes by
//! hand.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use p2pchat_core::clock::{EventId, OrderKey};
use p2pchat_core::history::{Anchor, MAX_PENDING, MAX_PENDING_BYTES};
use p2pchat_core::membership::Timeouts;
use p2pchat_core::rendezvous::{Limits, Registry};
use p2pchat_core::wire::{self, Datagram, MAX_REASSEMBLY_BYTES};
use p2pchat_core::{
    AppEvent, ChatId, Config, Identity, MemoryStore, Node, Output, PeerId, Persist, Record, RoomId,
    Store, Transmit, UserName,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Events a windowed node keeps in memory per room (tiny, so that rules,
/// pages and catch-ups read the disk all the time).
pub const SIM_WINDOW: usize = 8;

/// Fewest events between two checkpoints of a windowed node (a real node
/// waits for [`p2pchat_core::checkpoint::MIN_EVENTS`]).
pub const SIM_CHECKPOINT_EVERY: usize = 8;

/// Virtual time starts here (a plausible wall clock, in ms).
pub const T0: u64 = 1_750_000_000_000;

/// Network behaviour.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice.
    pub dup: f64,
    /// Minimum one-way delay, ms.
    pub min_delay: u64,
    /// Maximum one-way delay, ms (jitter reorders datagrams).
    pub max_delay: u64,
}

impl NetConfig {
    pub fn lossy(loss: f64) -> Self {
        NetConfig {
            loss,
            dup: 0.02,
            min_delay: 1,
            max_delay: 40,
        }
    }
}

/// One simulated peer.
pub struct SimNode {
    pub name: String,
    pub addr: SocketAddr,
    pub secret: [u8; 32],
    pub node: Option<Node>,
    /// What the node stored: its disk, which survives its crashes (shared
    /// with the node when it reads back what left its window).
    pub store: Arc<Mutex<MemoryStore>>,
    /// Every event the node ever delivered, across restarts.
    pub delivered: HashMap<RoomId, HashSet<EventId>>,
    pub restarts: u32,
    /// Datagrams this node handed to the network, by kind (counted before
    /// loss), across restarts.
    pub sent: Sent,
    /// How long its disk takes to store a batch (0: at once). A slow
    /// store holds the batch out, as IndexedDB or an fsync does.
    pub store_ms: u64,
    /// The batch being written and when it will be stored; lost if the
    /// node crashes first.
    writing: Option<(u64, Persist)>,
    /// The node's own deadline (its timer is the earlier of this and the
    /// batch being written).
    deadline: Option<u64>,
}

/// Datagrams sent, by wire kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// Control messages (heartbeats, summaries, goodbyes), and anything
    /// that does not decode (the engine sends nothing of the kind).
    pub ctl: u64,
    /// Event datagrams (pushes and repairs; fragments count one each).
    pub ev: u64,
    /// Signaling requests.
    pub sig: u64,
    /// Bytes of all of them.
    pub bytes: u64,
}

impl SimNode {
    /// The node's disk.
    pub fn disk(&self) -> MutexGuard<'_, MemoryStore> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A node's disk as a host reaches it while draining the node: a store of
/// its own, or one shared with the node's archive (locked for each
/// operation only, never while the node runs).
pub trait Disk {
    /// Stores a batch.
    fn apply(&mut self, records: &[Record]);
    /// Reads tokens back.
    fn tokens(&mut self, room: &RoomId, events: &[EventId]) -> Vec<Option<String>>;
}

impl Disk for MemoryStore {
    fn apply(&mut self, records: &[Record]) {
        let Ok(()) = Store::apply(self, records);
    }

    fn tokens(&mut self, room: &RoomId, events: &[EventId]) -> Vec<Option<String>> {
        let Ok(tokens) = Store::tokens(self, room, events);
        tokens
    }
}

impl Disk for Arc<Mutex<MemoryStore>> {
    fn apply(&mut self, records: &[Record]) {
        Disk::apply(
            &mut *self.lock().unwrap_or_else(PoisonError::into_inner),
            records,
        );
    }

    fn tokens(&mut self, room: &RoomId, events: &[EventId]) -> Vec<Option<String>> {
        Disk::tokens(
            &mut *self.lock().unwrap_or_else(PoisonError::into_inner),
            room,
            events,
        )
    }
}

impl Sent {
    /// Counts one datagram the engine produced, by its wire kind.
    fn count(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        match wire::decode(bytes) {
            Ok(Datagram::Ev(_)) => self.ev += 1,
            Ok(Datagram::Sig(_)) => self.sig += 1,
            Ok(Datagram::Ctl(_)) | Err(_) => self.ctl += 1,
        }
    }
}

struct InFlight {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// The signaling server: core's own rendezvous registry, switchable off.
struct SimSignal {
    up: bool,
    registry: Registry,
}

pub const SIGNAL_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 254)), 5555);

/// Node `i`'s address: 10.0.0.1 to 10.0.0.253 for the first 253 nodes
/// (10.0.0.254 is the signaling server), then 10.1.0.0 onwards.
fn node_addr(i: usize) -> SocketAddr {
    let ip = match u8::try_from(i) {
        Ok(b) if b < 253 => Ipv4Addr::new(10, 0, 0, b + 1),
        _ => {
            let [_, hi, mid, lo] = u32::try_from(i - 253).unwrap_or(u32::MAX).to_be_bytes();
            Ipv4Addr::new(10, 1 + hi, mid, lo)
        }
    };
    SocketAddr::new(IpAddr::V4(ip), 5000)
}

/// The signaling server's secret, from the scenario's seed (drawn apart
/// from the network's RNG, so it does not change the network's draws).
fn registry_seed(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    ChaCha20Rng::seed_from_u64(seed ^ 0x7265_6e64_657a_766f).fill_bytes(&mut bytes);
    bytes
}

/// A violated invariant or a failed expectation.
pub type Check = Result<(), String>;

pub struct Sim {
    pub now: u64,
    pub rng: ChaCha20Rng,
    pub net: NetConfig,
    pub nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    packets: HashMap<u64, InFlight>,
    next_packet: u64,
    /// Groups that can talk; `None` means everyone can.
    partition: Option<Vec<BTreeSet<usize>>>,
    signal: SimSignal,
    /// Every event any node ever sent successfully, per room.
    pub sent: HashMap<RoomId, HashSet<EventId>>,
    /// Trace of everything users saw, for determinism checks.
    pub trace: Vec<String>,
    pub violations: Vec<String>,
    pub max_pending: usize,
    pub max_pending_bytes: usize,
    pub max_reassembly_bytes: usize,
    pub datagrams: u64,
    /// Datagrams handed to the network, by destination (before loss):
    /// what a victim address would receive.
    pub sent_to: HashMap<SocketAddr, (u64, u64)>,
    /// The sender whose datagrams an eavesdropper copies (see
    /// [`Sim::tap`]), and the copies not taken yet.
    tap: Option<SocketAddr>,
    tapped: Vec<(SocketAddr, Vec<u8>)>,
    pub config: Config,
    /// Node index by address.
    index: HashMap<SocketAddr, usize>,
    /// Each node's deadline (its `poll_timeout`, refreshed after every
    /// input), and the same as a heap with stale entries skipped lazily:
    /// the next timer without asking every node.
    timer_at: Vec<Option<u64>>,
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    /// Rows a node's disk was made to lose ([`Sim::lose_event`]).
    lost: HashSet<(usize, RoomId, EventId)>,
    /// The most events a windowed node held outside its window (on its
    /// disk only) in one room: that the window was really used.
    pub beyond_window: usize,
    /// Checkpoints restarted nodes took.
    pub checkpoints_taken: usize,
}

impl Sim {
    pub fn new(seed: u64, net: NetConfig) -> Self {
        let config = Config {
            timeouts: Timeouts {
                heartbeat: 1_000,
                suspect_after: 3_000,
                offline_after: 8_000,
                probe: 3_000,
            },
            signaling: vec![SIGNAL_ADDR],
            lookup_interval_ms: 20_000,
            // Windowed nodes write checkpoints often, so that restarts
            // take them.
            checkpoint_min_events: SIM_CHECKPOINT_EVERY,
            ..Config::default()
        };
        Sim {
            now: T0,
            rng: ChaCha20Rng::seed_from_u64(seed),
            net,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            packets: HashMap::new(),
            next_packet: 0,
            partition: None,
            signal: SimSignal {
                up: true,
                registry: Registry::new(Limits::default(), registry_seed(seed)),
            },
            sent: HashMap::new(),
            trace: Vec::new(),
            violations: Vec::new(),
            max_pending: 0,
            max_pending_bytes: 0,
            max_reassembly_bytes: 0,
            datagrams: 0,
            sent_to: HashMap::new(),
            tap: None,
            tapped: Vec::new(),
            config,
            index: HashMap::new(),
            timer_at: Vec::new(),
            timers: BinaryHeap::new(),
            lost: HashSet::new(),
            beyond_window: 0,
            checkpoints_taken: 0,
        }
    }

    fn seed32(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.rng.fill_bytes(&mut s);
        s
    }

    /// Adds a running node; returns its index.
    pub fn add_node(&mut self, name: &str) -> usize {
        let i = self.nodes.len();
        let addr = node_addr(i);
        let secret = self.seed32();
        let mut config = self.config.clone();
        config.local_addrs = vec![addr];
        let seed = self.seed32();
        let mut node = Node::new(
            Identity::from_secret_bytes(&secret),
            user_name(name),
            config,
            seed,
        );
        let store = Arc::new(Mutex::new(MemoryStore::new()));
        if let Some(window) = window_of(i) {
            node.set_archive(store.clone(), window);
        }
        self.nodes.push(SimNode {
            name: name.to_owned(),
            addr,
            secret,
            node: Some(node),
            store,
            delivered: HashMap::new(),
            restarts: 0,
            sent: Sent::default(),
            store_ms: 0,
            writing: None,
            deadline: None,
        });
        self.index.entry(addr).or_insert(i);
        self.timer_at.push(None);
        self.drain(i);
        i
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].node.as_ref().expect("node is running")
    }

    pub fn peer_id(&self, i: usize) -> PeerId {
        Identity::from_secret_bytes(&self.nodes[i].secret).peer_id()
    }

    /// Node `i` creates a room; returns the Chat ID text.
    pub fn create(&mut self, i: usize, name: &str) -> ChatId {
        let now = self.now;
        let node = self.nodes[i].node.as_mut().expect("node is running");
        let chat = node.create_room(now, name).expect("room name is valid");
        self.drain(i);
        chat
    }

    pub fn join(&mut self, i: usize, chat: &ChatId) {
        let now = self.now;
        let node = self.nodes[i].node.as_mut().expect("node is running");
        node.join_room(now, chat).expect("can join");
        self.drain(i);
    }

    pub fn leave(&mut self, i: usize, room: &RoomId) {
        let now = self.now;
        let node = self.nodes[i].node.as_mut().expect("node is running");
        node.leave_room(now, room).expect("member of the room");
        self.drain(i);
    }

    /// Node `i` says `text` in `room`.
    pub fn say(&mut self, i: usize, room: &RoomId, text: &str) -> EventId {
        let now = self.now;
        let node = self.nodes[i].node.as_mut().expect("node is running");
        let id = node.send_text(now, room, text).expect("send succeeds");
        self.sent.entry(*room).or_default().insert(id);
        self.drain(i);
        id
    }

    /// Node `i`'s store loses the row of event `id` (a damaged disk): the
    /// node still holds it in memory, but cannot read its token back.
    pub fn lose_event(&mut self, i: usize, room: &RoomId, id: &EventId) -> bool {
        self.lost.insert((i, *room, *id));
        self.nodes[i].disk().lose_event(room, id)
    }

    /// Node `i`'s disk takes `ms` to store each batch from now on.
    pub fn slow_store(&mut self, i: usize, ms: u64) {
        self.nodes[i].store_ms = ms;
    }

    /// Whether node `i`'s slow store is writing a batch now.
    pub fn is_writing(&self, i: usize) -> bool {
        self.nodes[i].writing.is_some()
    }

    /// Kills node `i`: its memory is gone, its records stay, except a
    /// batch its slow store had not finished writing.
    pub fn crash(&mut self, i: usize) {
        // Stored before shown: whatever the user saw is on the disk that
        // survives (unless the disk lost it, see [`Sim::lose_event`]).
        let loaded = Ok::<_, std::convert::Infallible>(self.nodes[i].disk().load_with(false));
        if let (Some(node), Ok(loaded)) = (&self.nodes[i].node, loaded) {
            let stored: HashSet<(RoomId, EventId)> = loaded
                .records
                .iter()
                .filter_map(|r| match r {
                    Record::Event { room, event } => Some((*room, event.id)),
                    _ => None,
                })
                .collect();
            for (room, _) in node.rooms() {
                let shown = self.nodes[i].delivered.get(&room).into_iter().flatten();
                let lost = shown
                    .filter(|id| !stored.contains(&(room, **id)))
                    .filter(|id| !self.lost.contains(&(i, room, **id)))
                    .count();
                if lost > 0 {
                    self.violations.push(format!(
                        "node {i} crashed with {lost} events shown in {room} and not stored"
                    ));
                }
            }
        }
        self.nodes[i].node = None;
        self.nodes[i].writing = None;
        self.nodes[i].deadline = None;
        self.set_timer(i, None);
        self.trace.push(format!("{} crash {}", self.now, i));
    }

    /// Restarts node `i` from its records. A windowed node takes its
    /// checkpoints; it is then compared with a node rebuilt from every
    /// stored event, which must hold the same history.
    pub fn restart(&mut self, i: usize) {
        let secret = self.nodes[i].secret;
        let mut config = self.config.clone();
        config.local_addrs = vec![self.nodes[i].addr];
        let seed = self.seed32();
        let Ok(loaded) = self.nodes[i].disk().load();
        let every = self.nodes[i].disk().load_with(false);
        let rebuild = |records: Vec<Record>, seed: [u8; 32]| {
            let mut node = Node::new(
                Identity::from_secret_bytes(&secret),
                user_name(&self.nodes[i].name),
                config.clone(),
                seed,
            );
            if let Some(window) = window_of(i) {
                node.set_archive(self.nodes[i].store.clone(), window);
            }
            let (mut skipped, mut checkpoints) = (0, 0);
            for record in records {
                let checkpoint = matches!(record, Record::Checkpoint { .. });
                if !node.restore_record(self.now, record) {
                    skipped += 1;
                } else if checkpoint {
                    checkpoints += 1;
                }
            }
            node.restored();
            (node, skipped, checkpoints)
        };
        let (mut node, skipped, checkpoints) = rebuild(loaded.records, seed);
        self.checkpoints_taken += checkpoints;
        if checkpoints > 0 {
            let (replayed, _, _) = rebuild(every.records.clone(), [0; 32]);
            for (room, _) in node.rooms() {
                if let Err(e) = same_history(&node, &replayed, &room) {
                    self.violations.push(format!(
                        "node {i} restored from a checkpoint differs from its events replayed in {room}: {e}"
                    ));
                }
            }
        }
        // Floors are stored with events: none is found wrong.
        let refloored = node.take_refloored();
        if !refloored.is_empty() {
            self.violations.push(format!(
                "node {i} restored {} events whose stored floor was wrong, first {:?}",
                refloored.len(),
                refloored[0]
            ));
        }
        if skipped > 0 {
            self.violations
                .push(format!("node {i} skipped {skipped} of its own records"));
        }
        // What the restored node holds counts as delivered (it was, before
        // the crash); check nothing persisted was lost.
        for (room, _) in node.rooms() {
            let history = node.history(&room).expect("room exists");
            let have: HashSet<EventId> = history.iter().map(|e| e.id).collect();
            let persisted: HashSet<EventId> = every
                .records
                .iter()
                .filter_map(|r| match r {
                    Record::Event { room: r, event } if *r == room => Some(event.id),
                    _ => None,
                })
                .collect();
            if have != persisted {
                self.violations.push(format!(
                    "node {i} restored {} of {} persisted events in {room}",
                    have.len(),
                    persisted.len()
                ));
            }
        }
        self.nodes[i].node = Some(node);
        self.nodes[i].restarts += 1;
        self.trace.push(format!("{} restart {}", self.now, i));
        self.drain(i);
    }

    pub fn partition(&mut self, groups: Vec<Vec<usize>>) {
        self.partition = Some(
            groups
                .into_iter()
                .map(|g| g.into_iter().collect())
                .collect(),
        );
    }

    pub fn heal(&mut self) {
        self.partition = None;
    }

    pub fn signaling_up(&mut self, up: bool) {
        self.signal.up = up;
    }

    fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.index.get(&addr).copied()
    }

    /// Node `i`'s deadline is `at` now.
    fn set_timer(&mut self, i: usize, at: Option<u64>) {
        if at != self.timer_at[i] {
            self.timer_at[i] = at;
            if let Some(t) = at {
                self.timers.push(Reverse((t, i)));
            }
        }
    }

    /// The earliest node deadline, ties to the lowest index.
    fn next_timer(&mut self) -> Option<(u64, usize)> {
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if self.timer_at[i] == Some(t) {
                return Some((t, i));
            }
            self.timers.pop();
        }
        None
    }

    fn connected(&self, a: SocketAddr, b: SocketAddr) -> bool {
        let Some(groups) = &self.partition else {
            return true;
        };
        // The signaling server sits with the first group.
        let group = |addr: SocketAddr| match self.index_of(addr) {
            Some(i) => groups.iter().position(|g| g.contains(&i)),
            None => Some(0),
        };
        group(a) == group(b)
    }

    /// The signaling server signs its answers with `key`, and nodes added
    /// from now on pin its public key (see `p2pchat_core::signaling`).
    pub fn pin_server_key(&mut self, key: Identity) {
        self.config.signaling_keys = vec![(SIGNAL_ADDR, key.peer_id())];
        self.signal.registry.sign_answers(key);
    }

    /// Puts a datagram on the network as if `from` sent it (an attacker,
    /// or anyone spoofing `from`), subject to the network's loss and delay.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.send(from, to, bytes);
    }

    /// From now on an eavesdropper copies every datagram `from` sends
    /// (as it leaves, before loss or partitions).
    pub fn tap(&mut self, from: SocketAddr) {
        self.tap = Some(from);
    }

    /// The datagrams copied since the last call, with their destinations.
    pub fn take_tapped(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.tapped)
    }

    /// Datagrams and bytes handed to the network for `to` so far.
    pub fn sent_to(&self, to: SocketAddr) -> (u64, u64) {
        self.sent_to.get(&to).copied().unwrap_or((0, 0))
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let counted = self.sent_to.entry(to).or_insert((0, 0));
        counted.0 += 1;
        counted.1 += bytes.len() as u64;
        if self.tap == Some(from) {
            self.tapped.push((to, bytes.clone()));
        }
        if bytes.len() > self.config.mtu {
            self.violations
                .push(format!("datagram of {} bytes exceeds the MTU", bytes.len()));
        }
        if !self.connected(from, to) {
            return;
        }
        let copies = if self.rng.next_u32() as f64 / u32::MAX as f64 <= self.net.dup {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if (self.rng.next_u32() as f64 / u32::MAX as f64) < self.net.loss {
                continue;
            }
            let span = self.net.max_delay - self.net.min_delay + 1;
            let delay = self.net.min_delay + self.rng.next_u64() % span;
            let id = self.next_packet;
            self.next_packet += 1;
            self.packets.insert(
                id,
                InFlight {
                    from,
                    to,
                    bytes: bytes.clone(),
                },
            );
            self.queue.push(Reverse((self.now + delay, id)));
        }
    }

    /// Drains node `i`'s outputs: batches stored (and confirmed) on its
    /// disk, datagrams onto the network, events checked.
    /// The next packet in flight if it arrives at `t` at `to` too.
    fn next_together(&mut self, t: u64, to: SocketAddr) -> Option<InFlight> {
        loop {
            let Reverse((at, id)) = *self.queue.peek()?;
            if at != t {
                return None;
            }
            match self.packets.get(&id) {
                None => {
                    // Dropped in flight: skip its slot.
                    self.queue.pop();
                }
                Some(p) if p.to == to => {
                    self.queue.pop();
                    return self.packets.remove(&id);
                }
                Some(_) => return None,
            }
        }
    }

    fn drain(&mut self, i: usize) {
        let now = self.now;
        let SimNode {
            node,
            store,
            store_ms,
            writing,
            deadline: own,
            ..
        } = &mut self.nodes[i];
        let Some(node) = node.as_mut() else {
            return;
        };
        let (outputs, deadline) = if *store_ms == 0 {
            settle(node, store)
        } else {
            let mut out = Vec::new();
            let deadline = loop {
                match node.poll_output() {
                    // The queue hands out one batch at a time.
                    Output::Persist(p) => *writing = Some((now + *store_ms, p)),
                    Output::Read(r) => {
                        let tokens = Disk::tokens(store, &r.room, &r.events);
                        node.read_done(r.id, tokens);
                    }
                    Output::Transmit(t) => out.push(Settled::Transmit(t)),
                    Output::Event(e) => out.push(Settled::Event(e)),
                    Output::Timeout(deadline) => break deadline,
                }
            };
            (out, deadline)
        };
        *own = deadline;
        let deadline = match (deadline, writing.as_ref().map(|(due, _)| *due)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let idle_disk = writing.is_none();
        for (room, _) in node.rooms() {
            if let Some(h) = node.history(&room) {
                self.max_pending = self.max_pending.max(h.pending_len());
                self.max_pending_bytes = self.max_pending_bytes.max(h.pending_bytes());
                // A windowed node with everything stored holds the window
                // and each author's newest, whatever the history's length.
                let bound = SIM_WINDOW + h.version_vector().authors();
                if window_of(i).is_some() && idle_disk && h.in_memory() > bound {
                    self.violations.push(format!(
                        "node {i} holds {} events of {room} in memory, more than {bound}",
                        h.in_memory()
                    ));
                }
                if window_of(i).is_some() {
                    self.beyond_window =
                        self.beyond_window.max(h.len() - h.in_memory().min(h.len()));
                }
                if h.archive_errors() > 0 {
                    self.violations
                        .push(format!("node {i} could not read its disk in {room}"));
                }
            }
        }
        self.max_reassembly_bytes = self.max_reassembly_bytes.max(node.reassembly_load().1);
        self.set_timer(i, deadline);
        let from = self.nodes[i].addr;
        for output in outputs {
            match output {
                Settled::Transmit(t) => {
                    self.nodes[i].sent.count(&t.bytes);
                    self.send(from, t.to, t.bytes);
                }
                Settled::Event(e) => self.observe(i, e),
            }
        }
    }

    fn observe(&mut self, i: usize, event: AppEvent) {
        match event {
            AppEvent::Message { room, event, .. } => {
                self.trace
                    .push(format!("{} {} msg {} {}", self.now, i, room, event.id));
                // Causal delivery: deps and the author's previous event
                // came first.
                let delivered = self.nodes[i].delivered.entry(room).or_default();
                let prev_ok = event.id.seq == 1
                    || delivered.contains(&EventId::new(event.id.author, event.id.seq - 1));
                let deps_ok = event.deps.iter().all(|d| delivered.contains(d));
                if !(prev_ok && deps_ok) {
                    self.violations
                        .push(format!("node {i} delivered {} before its causes", event.id));
                }
                if !delivered.insert(event.id) {
                    self.violations
                        .push(format!("node {i} delivered {} twice", event.id));
                }
            }
            AppEvent::Late { room, events } => {
                for id in events {
                    self.trace
                        .push(format!("{} {} late {} {}", self.now, i, room, id));
                }
            }
            AppEvent::Reshown { room } => {
                // Only a fork hides messages: with honest authors, a bug.
                self.violations
                    .push(format!("node {i} hid messages in {room} with no fork"));
            }
            AppEvent::Equivocation { room, author, seq } => {
                // Every author in the simulator is honest: an accusation
                // is a bug.
                self.violations.push(format!(
                    "node {i} accused {} of equivocating at {seq} in {room}",
                    author.short()
                ));
            }
            AppEvent::Member { room, change } => {
                self.trace.push(format!(
                    "{} {} member {} {} {:?}",
                    self.now,
                    i,
                    room,
                    change.peer.short(),
                    change.to
                ));
            }
            AppEvent::RoomJoined { room, .. } => {
                self.trace
                    .push(format!("{} {} joined {}", self.now, i, room));
                // A restored node's history counts as delivered.
                if let Some(node) = self.nodes[i].node.as_ref() {
                    if let Some(h) = node.history(&room) {
                        let ids: Vec<EventId> = h.iter().map(|e| e.id).collect();
                        self.nodes[i].delivered.entry(room).or_default().extend(ids);
                    }
                }
            }
            AppEvent::RoomLeft { room } => {
                self.trace.push(format!("{} {} left {}", self.now, i, room));
            }
            AppEvent::Invite { room, .. } => {
                self.trace
                    .push(format!("{} {} new invite {}", self.now, i, room));
            }
            AppEvent::CaughtUp { room, events } => {
                self.trace
                    .push(format!("{} {} caught up {} {}", self.now, i, room, events));
            }
        }
    }

    fn signal_handle(&mut self, from: SocketAddr, bytes: &[u8]) {
        if !self.signal.up {
            return;
        }
        self.signal.registry.expire(self.now);
        for (to, reply) in self.signal.registry.handle(self.now, from, bytes) {
            self.send(SIGNAL_ADDR, to, reply);
        }
    }

    /// Runs the simulation for `ms` of virtual time.
    pub fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        let mut last_wake: Option<(usize, u64)> = None;
        let mut same_instant = 0u32;
        loop {
            let next_packet = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_timer = self.next_timer();
            let packet_first = match (next_packet, next_timer) {
                (Some(p), Some((t, _))) => p <= t,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if packet_first {
                let Some(Reverse((t, id))) = self.queue.pop() else {
                    break;
                };
                if t > end {
                    self.queue.push(Reverse((t, id)));
                    break;
                }
                self.now = self.now.max(t);
                let Some(p) = self.packets.remove(&id) else {
                    continue;
                };
                self.datagrams += 1;
                if p.to == SIGNAL_ADDR {
                    self.signal_handle(p.from, &p.bytes);
                } else if let Some(i) = self.index_of(p.to) {
                    // What reaches a node at the same instant arrives
                    // together, as a host's socket hands over what it
                    // holds: its signatures are checked in one batch.
                    let mut together = vec![p];
                    while let Some(next) = self.next_together(t, together[0].to) {
                        self.datagrams += 1;
                        together.push(next);
                    }
                    let now = self.now;
                    if let Some(node) = self.nodes[i].node.as_mut() {
                        node.handle_datagrams(
                            now,
                            together.iter().map(|p| (p.from, p.bytes.as_slice())),
                        );
                        self.drain(i);
                    }
                }
            } else if let Some((t, i)) = next_timer {
                if t > end {
                    break;
                }
                // A node asking to be woken again and again at the same
                // instant would spin a real host's CPU.
                if t <= self.now && last_wake == Some((i, self.now)) {
                    same_instant += 1;
                    if same_instant > 100 {
                        self.violations
                            .push(format!("node {i} busy-loops on its timer at {t}"));
                        break;
                    }
                } else {
                    same_instant = 0;
                }
                last_wake = Some((i, self.now.max(t)));
                self.now = self.now.max(t);
                let now = self.now;
                let sim_node = &mut self.nodes[i];
                if let Some(node) = sim_node.node.as_mut() {
                    // A slow store finished its batch, or the node's own
                    // deadline came (or both).
                    if let Some((_, p)) = sim_node.writing.take_if(|(due, _)| *due <= now) {
                        Disk::apply(&mut sim_node.store, &p.records);
                        node.stored(p.batch);
                    }
                    if sim_node.deadline.is_some_and(|d| d <= now) {
                        node.handle_timeout(now);
                    }
                    self.drain(i);
                }
            }
        }
        self.now = end;
    }

    /// Checks the invariants on the members `members` of `room` (all
    /// running): identical history in identical order, containing every
    /// event anyone sent or delivered; no violation recorded on the way;
    /// buffers within bounds.
    pub fn check(&self, room: &RoomId, members: &[usize]) -> Check {
        if let Some(v) = self.violations.first() {
            return Err(format!("{} violations, first: {v}", self.violations.len()));
        }
        // Everything the members ever sent or delivered (events that only
        // ever reached a node that is gone for good cannot be expected).
        let mut expected: HashSet<EventId> = HashSet::new();
        for &i in members {
            if let Some(sent) = self.sent.get(room) {
                let me = self.peer_id(i);
                expected.extend(sent.iter().filter(|id| id.author == me));
            }
            if let Some(d) = self.nodes[i].delivered.get(room) {
                expected.extend(d.iter().copied());
            }
        }
        // The order, the shown times and the marks.
        type Shown = Vec<(OrderKey, u64, bool, bool)>;
        let mut reference: Option<(usize, Shown)> = None;
        for &i in members {
            let node = self.nodes[i]
                .node
                .as_ref()
                .ok_or_else(|| format!("node {i} is not running"))?;
            if node.history(room).is_none() {
                return Err(format!("node {i} is not in the room"));
            }
            // What a UI shows, read the way UIs read it.
            let keys: Shown = node
                .page(room, Anchor::Newest, usize::MAX)
                .iter()
                .map(|(e, late)| (e.key(), e.shown_time(), e.backdated(), *late))
                .collect();
            let ids: HashSet<EventId> = keys.iter().map(|k| k.0.id()).collect();
            if ids != expected {
                let missing = expected.difference(&ids).count();
                let extra = ids.difference(&expected).count();
                return Err(format!(
                    "node {i} holds {} events; {missing} missing, {extra} unexpected (of {})",
                    ids.len(),
                    expected.len()
                ));
            }
            match &reference {
                None => reference = Some((i, keys)),
                Some((r, rk)) if *rk != keys => {
                    let at = rk.iter().zip(&keys).position(|(a, b)| a != b);
                    return Err(format!(
                        "node {i} and node {r} show the history differently (order, times or \
                         marks), first at {at:?}: {:?} / {:?}",
                        at.and_then(|p| keys.get(p)),
                        at.and_then(|p| rk.get(p)),
                    ));
                }
                Some(_) => {}
            }
            // Persisted events are all still there.
            let stored = self.nodes[i].disk().load_with(false);
            for rec in &stored.records {
                if let Record::Event { room: r, event } = rec {
                    if r == room && !ids.contains(&event.id) {
                        return Err(format!("node {i} lost persisted event {}", event.id));
                    }
                }
            }
        }
        if self.max_pending > MAX_PENDING || self.max_pending_bytes > MAX_PENDING_BYTES {
            return Err(format!("pending buffer reached {}", self.max_pending));
        }
        if self.max_reassembly_bytes > MAX_REASSEMBLY_BYTES {
            return Err(format!(
                "reassembly reached {} bytes",
                self.max_reassembly_bytes
            ));
        }
        Ok(())
    }

    /// A digest of the trace, for determinism checks.
    pub fn trace_digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.trace.hash(&mut h);
        h.finish()
    }
}

/// A transmit or an event a node handed out.
#[derive(Debug)]
pub enum Settled {
    /// A datagram to send.
    Transmit(Transmit),
    /// Something for the user.
    Event(AppEvent),
}

/// Drains `node` as a host whose store never fails: every batch is applied
/// to `store` and confirmed at once, every read answered from it. Returns the transmits and events in
/// the order the node handed them out, and its next deadline.
pub fn settle<D: Disk>(node: &mut Node, store: &mut D) -> (Vec<Settled>, Option<u64>) {
    let mut out = Vec::new();
    loop {
        match node.poll_output() {
            Output::Persist(p) => {
                store.apply(&p.records);
                node.stored(p.batch);
            }
            Output::Read(r) => {
                let tokens = store.tokens(&r.room, &r.events);
                node.read_done(r.id, tokens);
            }
            Output::Transmit(t) => out.push(Settled::Transmit(t)),
            Output::Event(e) => out.push(Settled::Event(e)),
            Output::Timeout(deadline) => return (out, deadline),
        }
    }
}

/// Whether two nodes hold room `room`'s history alike: shown events in the
/// same order with the same times and marks, the same count, digest and
/// names, and the same state to the byte (a checkpoint of each).
fn same_history(a: &Node, b: &Node, room: &RoomId) -> Result<(), String> {
    let (Some(ha), Some(hb)) = (a.history(room), b.history(room)) else {
        return Err("a room only one of them has".into());
    };
    let shown = |h: &p2pchat_core::history::History| -> Vec<(OrderKey, u64, bool)> {
        h.iter()
            .map(|e| (e.key(), e.shown_time(), h.is_late(&e.id)))
            .collect()
    };
    if shown(ha) != shown(hb) {
        return Err(format!(
            "shown {} / {} events differently",
            ha.len(),
            hb.len()
        ));
    }
    if ha.version_vector() != hb.version_vector() || ha.state_digest() != hb.state_digest() {
        return Err("other versions".into());
    }
    let names = |h: &p2pchat_core::history::History| -> BTreeSet<(String, PeerId)> {
        h.names().map(|(n, p)| (n.to_owned(), p)).collect()
    };
    if names(ha) != names(hb) {
        return Err("other names".into());
    }
    if ha.checkpoint() != hb.checkpoint() {
        return Err("another state (budgets, lateness records or heads)".into());
    }
    Ok(())
}

/// The window node `i` keeps, if it keeps one (every other node). Not in
/// the browser: its host gives the node no archive (IndexedDB reads only
/// asynchronously), and the browser run checks the core as it runs there.
pub fn window_of(i: usize) -> Option<usize> {
    (cfg!(not(target_arch = "wasm32")) && i % 2 == 1).then_some(SIM_WINDOW)
}

/// A simulated user's name (the harness names them itself).
pub fn user_name(name: &str) -> UserName {
    UserName::new(name).expect("simulated users have valid names")
}

/// `ev`, written by `author`, with the hash chain a room's events carry:
/// the digest of the author's previous event and of each dependency, as
/// `history` holds them on its main chains (zeros for what it does not
/// hold, as a careless or hostile author would write). A test that writes
/// on another branch sets `prev` and `refs` itself
/// ([`p2pchat_core::equivocation::wire_digest`]).
pub fn chained(
    mut ev: p2pchat_core::wire::EventWire,
    author: PeerId,
    history: Option<&p2pchat_core::history::History>,
) -> p2pchat_core::wire::EventWire {
    use p2pchat_core::equivocation::Digest;
    let digest_of = |id: &EventId| {
        history
            .and_then(|h| h.get(id))
            .map_or(Digest::default(), |e| e.digest)
    };
    ev.prev = (ev.seq > 1).then(|| digest_of(&EventId::new(author, ev.seq - 1)));
    ev.refs = ev.deps.iter().map(digest_of).collect();
    ev
}
