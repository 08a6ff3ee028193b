//! A node under test, driven like a host drives one, with the checks that
//! must hold after every input (used by the `sealed` and `control`
//! targets).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use p2pchat_core::addr;
use p2pchat_core::history::{MAX_AUTHORS, MAX_PENDING, MAX_PENDING_BYTES};
use p2pchat_core::membership::MAX_MEMBERS;
use p2pchat_core::signaling::Message;
use p2pchat_core::wire::{
    self, Control, Datagram, RoomKind, Sealed, MAX_DATAGRAM_LEN, MAX_PARTIALS,
    MAX_REASSEMBLY_BYTES, MIN_MTU,
};
use p2pchat_core::{
    AppEvent, Config, Identity, MemoryStore, Node, Output, PeerId, RendezvousTag, Store,
};

use crate::datagram::check_decoded;
use crate::fixtures::{self, node_name, server, usable_addrs, T0};

/// Most datagrams kept for replays and echoes.
const KEEP: usize = 64;

/// How a sealed message is put on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Via {
    /// Source address, picked by [`fixtures::source_addr`].
    pub addr: u8,
    /// Bits 0–1: whole, fragments in order, fragments in reverse, every
    /// fragment twice. Bit 2: under another room's rendezvous tag.
    pub how: u8,
}

/// A node in the fixtures' room, its store, and what it was fed.
pub struct Harness {
    pub node: Node,
    pub now: u64,
    config: Config,
    store: MemoryStore,
    /// The next batch handed out fails to store.
    pub fail_next: bool,
    failed_any: bool,
    /// Datagrams fed so far.
    fed: u64,
    /// The last datagrams fed, with their source.
    pub inputs: Vec<(SocketAddr, Vec<u8>)>,
    /// The last datagrams the node sent.
    pub sent: Vec<Vec<u8>>,
    /// The last challenge the node sent to each address.
    pub challenges: BTreeMap<SocketAddr, u64>,
    /// The nonce of the node's latest signaling lookup, and registration.
    pub lookup_nonce: u64,
    pub register_nonce: u64,
    /// Kinds of signaling request whose signature was checked.
    verified: std::cell::Cell<u8>,
    next_frag_id: u32,
}

impl Harness {
    /// A node with this MTU (raised to `MIN_MTU` by the node) that has
    /// joined the fixtures' room and drained its first outputs; `pinned`:
    /// it pins the server's key ([`fixtures::Fixtures::server`]).
    pub fn new(mtu: usize, pinned: bool) -> Self {
        let fx = fixtures::get();
        let config = Config {
            mtu,
            signaling: vec![server()],
            signaling_keys: if pinned {
                vec![(server(), fx.server.peer_id())]
            } else {
                Vec::new()
            },
            local_addrs: vec![usable_addrs()[2]],
            ..Config::default()
        };
        let node = Node::new(fx.node.clone(), node_name(), config.clone(), [0; 32]);
        let mut h = Harness {
            node,
            now: T0,
            config,
            store: MemoryStore::new(),
            fail_next: false,
            failed_any: false,
            fed: 0,
            inputs: Vec::new(),
            sent: Vec::new(),
            challenges: BTreeMap::new(),
            lookup_nonce: 0,
            register_nonce: 0,
            verified: std::cell::Cell::new(0),
            next_frag_id: 0,
        };
        h.join();
        h
    }

    /// Whether the node pins the server's key.
    pub fn pinned(&self) -> bool {
        !self.config.signaling_keys.is_empty()
    }

    /// Joins the fixtures' room (again).
    pub fn join(&mut self) {
        let _ = self.node.join_room(self.now, &fixtures::get().chat);
        self.drain(false);
    }

    /// The room's rendezvous tag.
    pub fn tag() -> RendezvousTag {
        fixtures::get().chat.key().rendezvous_tag()
    }

    /// A datagram from `from`.
    pub fn feed(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.node.handle_datagram(self.now, from, bytes);
        self.fed += 1;
        if self.inputs.len() < KEEP {
            self.inputs.push((from, bytes.to_vec()));
        }
        self.drain(false);
    }

    /// Time passes by `ms`; the node's timers run.
    pub fn wait(&mut self, ms: u64) {
        self.now += ms;
        self.node.handle_timeout(self.now);
        self.drain(true);
    }

    /// Seals `payload` as `author` with the room's key.
    pub fn seal(&self, author: &Identity, payload: &[u8]) -> String {
        fixtures::get()
            .cipher
            .seal(author, payload, self.now)
            .expect("payloads here are far below the sealing limit")
    }

    /// Puts `token` on the wire as `kind`, claimed to be sent by `sender`.
    /// Returns whether it fitted the fragments a token may take.
    pub fn deliver(&mut self, kind: RoomKind, sender: PeerId, token: &str, via: Via) -> bool {
        let tag = if via.how & 4 != 0 {
            RendezvousTag::from_bytes([0x5a; 32])
        } else {
            Harness::tag()
        };
        let mtu = if via.how & 3 == 0 {
            MAX_DATAGRAM_LEN
        } else {
            MIN_MTU
        };
        self.next_frag_id += 1;
        let Some(mut datagrams) =
            wire::encode_room(kind, tag, sender, token, mtu, self.next_frag_id)
        else {
            return false;
        };
        match via.how & 3 {
            2 => datagrams.reverse(),
            3 => datagrams = datagrams.into_iter().flat_map(|d| [d.clone(), d]).collect(),
            _ => {}
        }
        let from = fixtures::source_addr(usize::from(via.addr));
        for d in datagrams {
            self.feed(from, &d);
        }
        true
    }

    /// Drains the node's outputs the way a host does, storing each batch
    /// (or failing it, when asked) and checking every datagram and event.
    pub fn drain(&mut self, after_timeout: bool) {
        for _ in 0..1_000_000 {
            match self.node.poll_output() {
                Output::Persist(p) => {
                    if std::mem::take(&mut self.fail_next) {
                        self.failed_any = true;
                        self.node.store_failed(p.batch);
                    } else {
                        self.store.apply(&p.records).unwrap();
                        self.node.stored(p.batch);
                    }
                }
                Output::Read(r) => {
                    let Ok(tokens) = self.store.tokens(&r.room, &r.events);
                    assert_eq!(tokens.len(), r.events.len());
                    self.node.read_done(r.id, tokens);
                }
                Output::Transmit(t) => {
                    if let Some(nonce) = self.check_sent(t.to, &t.bytes) {
                        if self.challenges.len() < KEEP || self.challenges.contains_key(&t.to) {
                            self.challenges.insert(t.to, nonce);
                        }
                    }
                    if let Ok(Datagram::Sig(s)) = wire::decode(&t.bytes) {
                        match s.msg {
                            Message::Lookup(l) => self.lookup_nonce = l.nonce,
                            Message::Register(r) => self.register_nonce = r.nonce,
                            _ => {}
                        }
                    }
                    if self.sent.len() < KEEP {
                        self.sent.push(t.bytes);
                    }
                }
                Output::Event(e) => self.check_event(&e),
                Output::Timeout(deadline) => {
                    if let (true, Some(at)) = (after_timeout, deadline) {
                        assert!(at > self.now, "deadline {at} is not after now {}", self.now);
                    }
                    self.check();
                    return;
                }
            }
        }
        panic!("poll_output never came to Timeout");
    }

    /// A datagram the node sends: within its MTU, to an address anyone may
    /// send to, and something the node itself (or a server) would accept.
    /// Returns the challenge it carries, if it is a heartbeat with one.
    fn check_sent(&self, to: SocketAddr, bytes: &[u8]) -> Option<u64> {
        let fx = fixtures::get();
        let mtu = self.config.mtu.max(MIN_MTU);
        assert!(bytes.len() <= mtu, "{} bytes sent, MTU {mtu}", bytes.len());
        assert!(addr::usable(&to), "sent to {to}");
        let datagram = wire::decode(bytes).expect("the node sends only datagrams it can decode");
        check_decoded(&datagram);
        match datagram {
            Datagram::Sig(s) => {
                assert_eq!(to, server(), "signaling goes to servers only");
                // The first request of each kind in a run: they are all
                // signed alike, and each check costs a key decompression.
                let kind = match s.msg {
                    Message::Register(_) => 1,
                    Message::Unregister(_) => 2,
                    Message::Lookup(_) => 4,
                    _ => 8,
                };
                if self.verified.get() & kind == 0 {
                    self.verified.set(self.verified.get() | kind);
                    s.msg.verify().expect("the node's own requests verify");
                }
            }
            Datagram::Ctl(p) | Datagram::Ev(p) => {
                assert_eq!(p.tag, Harness::tag());
                assert_eq!(p.from, fx.node.peer_id());
                if p.frag.is_none() {
                    let opened = fx.cipher.open(&p.body).expect("the node's tokens open");
                    let sealed: Sealed = serde_json::from_slice(&opened.payload)
                        .expect("the node seals only what it can parse");
                    match sealed {
                        Sealed::Ctl(c) => {
                            assert_eq!(opened.author, fx.node.peer_id());
                            assert!(c.is_valid(), "the node sent an invalid {c:?}");
                            if let Control::Beat(beat) = c {
                                return beat.challenge;
                            }
                        }
                        Sealed::Ev(_) => {}
                    }
                }
            }
        }
        None
    }

    fn check_event(&self, event: &AppEvent) {
        let fx = fixtures::get();
        if let AppEvent::Message {
            room, event, own, ..
        } = event
        {
            assert_eq!(*room, fx.room());
            // (An event of this node's identity can also come back from
            // the network — after a lost batch, say — and is then not
            // "own": it was not written just now.)
            if *own {
                assert_eq!(event.id.author, fx.node.peer_id());
            }
        }
    }

    /// What holds after every input: bounded reassembly, history and
    /// member table, a history in canonical order, every datagram counted.
    pub fn check(&self) {
        let fx = fixtures::get();
        let (partials, bytes) = self.node.reassembly_load();
        assert!(partials <= MAX_PARTIALS && bytes <= MAX_REASSEMBLY_BYTES);
        assert_eq!(self.node.counters().datagrams, self.fed);
        if let Some(history) = self.node.history(&fx.room()) {
            assert!(history.pending_len() <= MAX_PENDING);
            assert!(history.pending_bytes() <= MAX_PENDING_BYTES);
            assert!(history.version_vector().authors() <= MAX_AUTHORS);
            let keys: Vec<_> = history.iter().map(|e| e.key()).collect();
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "history out of canonical order"
            );
            assert_eq!(keys.len(), history.len());
        }
        if let Some(members) = self.node.members(&fx.room()) {
            assert!(members.len() <= MAX_MEMBERS);
            assert!(members.iter().all(|m| m.peer != fx.node.peer_id()));
        }
    }

    /// The end of a run: the node is rebuilt from its store, which must
    /// take every record the node wrote, and (if no batch failed) shows
    /// the same history.
    pub fn finish(self) {
        let fx = fixtures::get();
        let loaded = self.store.load().unwrap();
        assert_eq!(loaded.skipped, 0);
        let (restored, skipped) = Node::restore(
            fx.node.clone(),
            node_name(),
            self.config.clone(),
            [0; 32],
            self.now,
            loaded.records,
        );
        assert_eq!(skipped, 0, "the node refused records it wrote itself");
        if !self.failed_any {
            let ids = |n: &Node| {
                n.history(&fx.room())
                    .map(|h| h.iter().map(|e| e.id).collect::<Vec<_>>())
            };
            assert_eq!(ids(&restored), ids(&self.node), "restored history differs");
        }
    }
}
