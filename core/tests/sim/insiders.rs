//! Insiders: a member who turns hostile holds the Chat ID and seals
//! whatever it likes with its own key. It must not be able to turn the
//! other members against third parties, nor hurt the room.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;
use p2pchat_core::clock::{EventId, VersionVector};
use p2pchat_core::equivocation::{wire_digest, Digest};
use p2pchat_core::history::Body;
use p2pchat_core::membership::{Beat, Hint, Status, MAX_HINTS, MAX_MEMBERS};
use p2pchat_core::replication::Summary;
use p2pchat_core::wire::{self, Control, EventWire, RoomKind, Sealed};
use p2pchat_core::{
    addr as addrs, AppEvent, ChatId, Config, DropReason, Identity, MemoryStore, Node, PeerId,
    RoomCipher, Store,
};
use p2pchat_sim::{settle, user_name, Check, Settled, T0};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::{for_fewer_seeds, for_seeds};

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 5000))
}

const ALICE: usize = 0;
const BOB: usize = 1;
const MALLORY: usize = 2;

/// Alice, Bob and Mallory in one room over a perfect network (Carol may
/// join later); Mallory runs an honest node and, on top of it, seals
/// messages of her own making.
struct Room {
    now: u64,
    nodes: Vec<Node>,
    disks: Vec<MemoryStore>,
    /// Which nodes run (a node that is down neither runs nor receives).
    up: Vec<bool>,
    chat: ChatId,
    mallory: Identity,
    /// Datagrams Mallory sent each node (honest and crafted).
    from_mallory: Vec<u64>,
    /// Datagrams each node sent to an address that is none of the nodes',
    /// by destination.
    elsewhere: Vec<BTreeMap<SocketAddr, u64>>,
    rng: ChaCha20Rng,
    stamp: u64,
    /// The quota of the rooms the nodes create.
    quota: p2pchat_core::quota::Quota,
    /// Per node, the equivocations it told its user about.
    accused: Vec<Vec<(PeerId, u64)>>,
    /// The digests of the events Mallory made by hand, by id (the last
    /// one of each).
    crafted: std::collections::HashMap<EventId, Digest>,
}

impl Room {
    fn new(seed: u64) -> Self {
        Self::with_quota(seed, p2pchat_core::quota::Quota::default())
    }

    /// The room, created by Alice with `quota`.
    fn with_quota(seed: u64, quota: p2pchat_core::quota::Quota) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mallory = Identity::generate(&mut rng);
        let mut room = Room {
            now: T0,
            nodes: Vec::new(),
            disks: Vec::new(),
            up: Vec::new(),
            chat: ChatId::without_bootstrap(
                p2pchat_core::RoomId::generate(&mut rng),
                p2pchat_core::RoomKey::generate(&mut rng),
                p2pchat_core::RoomName::new("general").expect("valid name"),
            ),
            mallory: mallory.clone(),
            from_mallory: Vec::new(),
            elsewhere: Vec::new(),
            rng,
            stamp: T0 * 1000,
            quota,
            accused: Vec::new(),
            crafted: std::collections::HashMap::new(),
        };
        for name in ["alice", "bob", "mallory"] {
            let identity = if name == "mallory" {
                Some(mallory.clone())
            } else {
                None
            };
            room.add_node(name, identity);
        }
        room.chat = room.nodes[ALICE]
            .create_room(T0, "general")
            .expect("valid name");
        let chat = room.chat.clone();
        for n in &mut room.nodes[1..] {
            n.join_room(T0, &chat).expect("join");
        }
        room
    }

    /// The room come together, and Alice's "hello" delivered everywhere;
    /// with the room's id.
    fn after_hello(seed: u64) -> Result<(Self, p2pchat_core::RoomId), String> {
        Room::new(seed).hello()
    }

    /// This room come together, and Alice's "hello" delivered everywhere.
    fn hello(mut self) -> Result<(Self, p2pchat_core::RoomId), String> {
        let room = &mut self;
        room.run_until(T0 + 5_000);
        let id = *room.chat.room_id();
        room.nodes[ALICE]
            .send_text(room.now, &id, "hello")
            .map_err(|e| e.to_string())?;
        room.run_until(room.now + 2_000);
        Ok((self, id))
    }

    /// A node (not in the room yet); returns its index.
    fn add_node(&mut self, name: &str, identity: Option<Identity>) -> usize {
        let i = self.nodes.len();
        let mut secret = [0u8; 32];
        self.rng.fill_bytes(&mut secret);
        let identity = identity.unwrap_or_else(|| Identity::generate(&mut self.rng));
        let config = Config {
            local_addrs: vec![addr(i as u8 + 1)],
            room_quota: self.quota,
            ..Config::default()
        };
        self.nodes
            .push(Node::new(identity, user_name(name), config, secret));
        self.disks.push(MemoryStore::new());
        self.up.push(true);
        self.from_mallory.push(0);
        self.elsewhere.push(BTreeMap::new());
        self.accused.push(Vec::new());
        i
    }

    fn index_of(&self, to: SocketAddr) -> Option<usize> {
        (0..self.nodes.len()).find(|&j| addr(j as u8 + 1) == to)
    }

    /// Runs the nodes that are up until `until`, delivering every datagram
    /// between them at once.
    fn run_until(&mut self, until: u64) {
        let n = self.nodes.len();
        loop {
            let mut moved = false;
            for i in (0..n).filter(|&i| self.up[i]) {
                let (out, _) = settle(&mut self.nodes[i], &mut self.disks[i]);
                for o in out {
                    let t = match o {
                        Settled::Transmit(t) => t,
                        Settled::Event(AppEvent::Equivocation { author, seq, .. }) => {
                            self.accused[i].push((author, seq));
                            continue;
                        }
                        Settled::Event(_) => continue,
                    };
                    match self.index_of(t.to) {
                        Some(j) if !self.up[j] => {}
                        Some(j) => {
                            if i == MALLORY {
                                self.from_mallory[j] += 1;
                            }
                            self.nodes[j].handle_datagram(self.now, addr(i as u8 + 1), &t.bytes);
                            moved = true;
                        }
                        None if i != MALLORY => {
                            *self.elsewhere[i].entry(t.to).or_default() += 1;
                        }
                        None => {}
                    }
                }
            }
            if moved {
                continue;
            }
            let next = (0..n)
                .filter(|&i| self.up[i])
                .filter_map(|i| {
                    let (out, next) = settle(&mut self.nodes[i], &mut self.disks[i]);
                    assert!(out.is_empty(), "drained above");
                    next
                })
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for i in (0..n).filter(|&i| self.up[i]) {
                        self.nodes[i].handle_timeout(self.now);
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
        for i in (0..n).filter(|&i| self.up[i]) {
            self.nodes[i].handle_timeout(self.now);
        }
    }

    /// Mallory sends `to` a heartbeat of her own making, from her own
    /// (proved) address, hinting `hints`.
    fn mallory_beats(&mut self, to: usize, hints: Vec<Hint>) {
        let beat = Beat {
            stamp: self.next_stamp(),
            name: "mallory".into(),
            digest: 0,
            hints,
            hello: false,
            challenge: None,
            response: None,
        };
        self.mallory_controls(to, Control::Beat(beat));
    }

    /// A control stamp above any Mallory's node used.
    fn next_stamp(&mut self) -> u64 {
        self.stamp = self.stamp.max(self.now * 1000 + 500) + 1;
        self.stamp
    }

    /// Mallory sends `to` a control message of her own making, from her
    /// own (proved) address.
    fn mallory_controls(&mut self, to: usize, control: Control) {
        self.mallory_sends(&[to], Sealed::Ctl(control));
    }

    /// Mallory seals `sealed` and sends it to `to` from her own (proved)
    /// address.
    fn mallory_sends(&mut self, to: &[usize], sealed: Sealed) {
        let kind = match sealed {
            Sealed::Ev(_) => RoomKind::Ev,
            Sealed::Ctl(_) => RoomKind::Ctl,
        };
        let payload = serde_json::to_vec(&sealed).expect("json");
        let cipher = RoomCipher::new(*self.chat.room_id(), self.chat.key());
        let token = cipher
            .seal(&self.mallory, &payload, self.now)
            .expect("seal");
        self.mallory_forwards(to, kind, &token);
    }

    /// Mallory sends `to` a token (hers, or anyone's) from her address.
    fn mallory_forwards(&mut self, to: &[usize], kind: RoomKind, token: &str) {
        let datagrams = wire::encode_room(
            kind,
            self.chat.key().rendezvous_tag(),
            self.mallory.peer_id(),
            token,
            1200,
            self.rng.next_u32(),
        )
        .expect("fits");
        for &i in to {
            for d in &datagrams {
                self.from_mallory[i] += 1;
                self.nodes[i].handle_datagram(self.now, addr(3), d);
            }
        }
    }

    fn fake_hints(&mut self) -> Vec<Hint> {
        let unusable = [
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4000),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 251)), 5353),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::BROADCAST), 9),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)), 5353),
        ];
        (0..MAX_HINTS)
            .map(|i| {
                let mut id = [0u8; 32];
                self.rng.fill_bytes(&mut id);
                let addr = if i < unusable.len() {
                    unusable[i]
                } else {
                    // Third parties: anywhere in 198.51.100.0/24.
                    let host = (self.rng.next_u32() % 254 + 1) as u8;
                    let port = (self.rng.next_u32() % 60_000 + 1024) as u16;
                    SocketAddr::from(([198, 51, 100, host], port))
                };
                Hint {
                    peer: PeerId::from_bytes(id),
                    addr,
                }
            })
            .collect()
    }

    fn online(&self, i: usize, peer: PeerId) -> bool {
        self.nodes[i]
            .members(self.chat.room_id())
            .and_then(|m| m.get(&peer))
            .is_some_and(|m| m.status == Status::Online)
    }
}

fn expect(cond: bool, what: &str) -> Check {
    if cond {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

/// Mallory hints 32 made-up members per heartbeat, ten heartbeats a
/// second to each of Alice and Bob for a minute (third parties' addresses,
/// and unspecified, multicast and broadcast ones), then goes silent.
/// Alice and Bob never send to an unusable address, send the hinted
/// addresses at most one datagram per datagram Mallory sent them, and
/// stop when she does; they keep chatting with each other throughout.
fn hints_reflect_nothing(seed: u64) -> Check {
    let mut room = Room::new(seed);
    room.run_until(T0 + 5_000);
    let ids: Vec<PeerId> = room.nodes.iter().map(Node::peer_id).collect();
    expect(
        room.online(ALICE, ids[BOB]) && room.online(ALICE, ids[MALLORY]),
        "the room did not come together",
    )?;
    let start = room.now;
    while room.now < start + 60_000 {
        for to in [ALICE, BOB] {
            let hints = room.fake_hints();
            room.mallory_beats(to, hints);
        }
        let next = room.now + 100;
        room.run_until(next);
    }
    let during: Vec<u64> = (0..2).map(|i| room.elsewhere[i].values().sum()).collect();
    let sent = room.from_mallory.clone();
    room.up[MALLORY] = false;
    room.run_until(room.now + 20_000);
    let after: Vec<u64> = (0..2)
        .map(|i| room.elsewhere[i].values().sum::<u64>())
        .collect();
    for i in [ALICE, BOB] {
        let unusable: Vec<_> = room.elsewhere[i]
            .keys()
            .filter(|a| !addrs::usable(a))
            .collect();
        expect(
            unusable.is_empty(),
            &format!("node {i} sent to unusable addresses {unusable:?}"),
        )?;
        expect(
            during[i] <= sent[i],
            &format!(
                "node {i} sent {} datagrams to hinted addresses for {} datagrams from Mallory",
                during[i], sent[i]
            ),
        )?;
        expect(
            after[i] - during[i] <= 32,
            &format!(
                "node {i} sent {} more datagrams to hinted addresses in the 20 s after Mallory went silent",
                after[i] - during[i]
            ),
        )?;
        let members = room.nodes[i]
            .members(room.chat.room_id())
            .map_or(0, |m| m.len());
        expect(members <= MAX_MEMBERS, "member table bounded")?;
    }
    // A minute on, the made-up members are gone from the member lists.
    room.run_until(room.now + 61_000);
    for i in [ALICE, BOB] {
        let members = room.nodes[i]
            .members(room.chat.room_id())
            .map_or(0, |m| m.len());
        expect(
            members <= 2,
            &format!("node {i} still lists {members} members a minute after the hints stopped"),
        )?;
    }
    expect(
        room.online(ALICE, ids[BOB]) && room.online(BOB, ids[ALICE]),
        "Alice and Bob lost each other",
    )
}

#[test]
fn a_members_hints_make_nobody_send_more_than_it_sent() {
    for_fewer_seeds(
        "a_members_hints_make_nobody_send_more_than_it_sent",
        10,
        hints_reflect_nothing,
    );
}

impl Room {
    /// Mallory seals an event of her own making and sends it to Alice and
    /// Bob.
    fn mallory_writes(&mut self, ev: EventWire) {
        self.mallory_writes_to(&[ALICE, BOB], ev);
    }

    /// Mallory seals an event of her own making and sends it to `to`;
    /// unless it names them already, with the hash chain to her last
    /// event of the number before and to the versions Alice holds.
    fn mallory_writes_to(&mut self, to: &[usize], ev: EventWire) {
        let m = self.mallory.peer_id();
        let mut ev = ev;
        if ev.prev.is_none() && ev.refs.is_empty() {
            let room = *self.chat.room_id();
            let lookup = |id: &EventId| {
                self.crafted.get(id).copied().unwrap_or_else(|| {
                    self.nodes[ALICE]
                        .history(&room)
                        .and_then(|h| h.get(id))
                        .map_or(Digest::default(), |e| e.digest)
                })
            };
            ev.prev = (ev.seq > 1).then(|| lookup(&EventId::new(m, ev.seq - 1)));
            ev.refs = ev.deps.iter().map(lookup).collect();
        }
        self.crafted
            .insert(EventId::new(m, ev.seq), wire_digest(m, &ev));
        self.mallory_sends(to, Sealed::Ev(ev));
    }

    /// What node `i` shows: each message's id, shown time and mark.
    fn shown(&self, i: usize) -> Vec<(EventId, u64, bool)> {
        self.nodes[i]
            .history(self.chat.room_id())
            .map(|h| {
                h.iter()
                    .map(|e| (e.id, e.shown_time(), e.backdated()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// An event of Mallory's making, without its hash chain (which
/// [`Room::mallory_writes_to`] adds unless a test sets it).
fn mallory_event(seq: u64, lamport: u64, deps: Vec<EventId>, time: u64, text: &str) -> EventWire {
    EventWire {
        seq,
        lamport,
        deps,
        time,
        name: "mallory".into(),
        body: Body::Text { text: text.into() },
        prev: None,
        refs: Vec::new(),
    }
}

/// 2000-01-01, in ms since the Unix epoch.
const YEAR_2000: u64 = 946_684_800_000;

/// Mallory writes a message stamped in the year 2000 on top of Alice's,
/// and one stamped a day ahead; Bob answers; Carol joins later. Every
/// member, Carol too, shows the backdated message at Alice's time, marked
/// backdated, and nobody takes the one from the future until its day
/// comes; Bob's answer is not marked.
fn backdated_messages_are_clamped_and_marked_everywhere(seed: u64) -> Check {
    let (mut room, id) = Room::after_hello(seed)?;
    let m = room.mallory.peer_id();
    let (seq, deps, lamport) = room.nodes[MALLORY]
        .history(&id)
        .and_then(|h| h.next_for(&m))
        .ok_or("mallory cannot write")?;
    let ev = mallory_event;
    room.mallory_writes(ev(seq, lamport, deps, YEAR_2000, "I was here first"));
    let future = room.now + 24 * 3_600_000;
    room.mallory_writes(ev(seq + 1, lamport + 1, vec![], future, "from tomorrow"));
    room.run_until(room.now + 2_000);
    room.nodes[BOB]
        .send_text(room.now, &id, "an answer")
        .map_err(|e| e.to_string())?;
    room.run_until(room.now + 2_000);
    let carol = room.add_node("carol", None);
    let chat = room.chat.clone();
    room.nodes[carol]
        .join_room(room.now, &chat)
        .map_err(|e| e.to_string())?;
    room.run_until(room.now + 20_000);

    let alice = room.shown(ALICE);
    expect(alice.len() == 3, &format!("alice shows {alice:?}"))?;
    for i in [BOB, carol] {
        let shown = room.shown(i);
        expect(
            shown == alice,
            &format!("node {i} shows {shown:?}, alice {alice:?}"),
        )?;
    }
    let hello = alice[0];
    let backdated = alice
        .iter()
        .find(|(e, _, _)| *e == EventId::new(m, seq))
        .ok_or("the backdated message is not shown")?;
    expect(
        backdated.1 == hello.1 && backdated.2,
        &format!("the backdated message shows {backdated:?}, after {hello:?}"),
    )?;
    expect(
        alice.iter().filter(|s| s.2).count() == 1,
        "only Mallory's message is marked",
    )?;
    for i in [ALICE, BOB] {
        let c = room.nodes[i].counters();
        expect(
            c.get(DropReason::FromTheFuture) >= 1,
            &format!("node {i} took the message from the future: {c:?}"),
        )?;
    }
    Ok(())
}

/// The backdated message: Mallory's first, with no dependencies,
/// Lamport time 1 and a time in the year 2000, sent after Alice and Bob
/// have talked. It sorts before Bob's answer everywhere; nothing in its causal past can
/// refute its time, but the messages written after it did not know it, so
/// every member marks it late — Carol too, who joins afterwards and gets
/// everything in canonical order. Honest messages are not marked.
fn a_first_message_from_the_past_is_late_everywhere(seed: u64) -> Check {
    let (mut room, id) = Room::after_hello(seed)?;
    room.nodes[BOB]
        .send_text(room.now, &id, "hi")
        .map_err(|e| e.to_string())?;
    room.run_until(room.now + 2_000);
    room.up[MALLORY] = false;
    let m = room.mallory.peer_id();
    room.mallory_writes(mallory_event(1, 1, vec![], YEAR_2000, "I was here first"));
    room.run_until(room.now + 2_000);
    let carol = room.add_node("carol", None);
    let chat = room.chat.clone();
    room.nodes[carol]
        .join_room(room.now, &chat)
        .map_err(|e| e.to_string())?;
    room.run_until(room.now + 20_000);
    let marks = |i: usize| -> Vec<(EventId, bool)> {
        room.nodes[i]
            .history(&id)
            .map(|h| h.iter().map(|e| (e.id, h.is_late(&e.id))).collect())
            .unwrap_or_default()
    };
    let alice = marks(ALICE);
    expect(alice.len() == 3, &format!("alice shows {alice:?}"))?;
    // Before Bob's answer (Lamport time 2), by Lamport time 1.
    let at = alice.iter().position(|(e, _)| e.author == m);
    expect(
        at.is_some_and(|p| p < 2 && alice[p].1),
        &format!("alice shows {alice:?}"),
    )?;
    expect(
        alice.iter().filter(|(_, late)| *late).count() == 1,
        "only Mallory's message is late",
    )?;
    for i in [BOB, carol] {
        let shown = marks(i);
        expect(
            shown == alice,
            &format!("node {i} shows {shown:?}, alice {alice:?}"),
        )?;
    }
    Ok(())
}

#[test]
fn a_first_message_from_the_year_2000_is_late_on_every_member() {
    for_seeds(
        "a_first_message_from_the_year_2000_is_late_on_every_member",
        a_first_message_from_the_past_is_late_everywhere,
    );
}

#[test]
fn backdated_messages_are_clamped_and_marked_on_every_member() {
    for_seeds(
        "backdated_messages_are_clamped_and_marked_on_every_member",
        backdated_messages_are_clamped_and_marked_everywhere,
    );
}

/// Found by the `control` fuzz target: a summary claiming an author's
/// last possible sequence number overflowed an addition in replication
/// (a panic in debug builds). Bob goes on as before.
fn absurd_summaries_change_nothing(seed: u64) -> Check {
    let (mut room, id) = Room::after_hello(seed)?;
    let alice = room.nodes[ALICE].peer_id();
    for seq in [u64::MAX, u64::MAX - 1, 0] {
        let mut vv = VersionVector::new();
        vv.set(alice, seq);
        let summary = Summary {
            stamp: room.next_stamp(),
            vv,
            reply: true,
            heads: vec![u64::MAX],
            pushed: 0,
        };
        room.mallory_controls(BOB, Control::Summary(summary));
        room.run_until(room.now + 1_000);
    }
    room.nodes[ALICE]
        .send_text(room.now, &id, "still here")
        .map_err(|e| e.to_string())?;
    room.run_until(room.now + 2_000);
    let shown = room.shown(BOB);
    expect(shown.len() == 2, &format!("bob shows {shown:?}"))
}

#[test]
fn absurd_summaries_from_a_member_change_nothing() {
    for_fewer_seeds(
        "absurd_summaries_from_a_member_change_nothing",
        10,
        absurd_summaries_change_nothing,
    );
}

/// Mallory opens Alice's token (she holds the room key) and encrypts the
/// same signed words again: a different token, Alice's valid signature.
/// That is a copy of Alice's message, not Alice signing two different
/// messages under one number: nobody may count it as her equivocation.
fn re_encrypted_copies_are_not_equivocation(seed: u64) -> Check {
    let (mut room, id) = Room::after_hello(seed)?;
    let first = room.nodes[BOB]
        .history(&id)
        .and_then(|h| h.iter().next().map(|e| e.id))
        .ok_or("bob has no message")?;
    // The history keeps no tokens; Bob's store has it.
    let Ok(tokens) = room.disks[BOB].tokens(&id, &[first]);
    let token = tokens
        .into_iter()
        .flatten()
        .next()
        .ok_or("bob stored no token")?;
    let key = URL_SAFE.encode(room.chat.key().as_bytes());
    let fernet = fernet::Fernet::new(&key).ok_or("room key")?;
    // With the simulator's clock (`decrypt` reads the system's, which
    // wasm has not).
    let plain = fernet
        .decrypt_at_time(&token, None, room.now / 1000 + 1)
        .map_err(|e| format!("{e:?}"))?;
    let copy = fernet.encrypt_at_time(&plain, room.now / 1000 + 1);
    expect(copy != token, "the copy is a different token")?;
    room.mallory_forwards(&[BOB], RoomKind::Ev, &copy);
    room.run_until(room.now + 1_000);
    let c = room.nodes[BOB].counters();
    expect(
        c.get(DropReason::Equivocation) == 0 && c.get(DropReason::DuplicateEvent) >= 1,
        &format!("the copy was counted as {c:?}"),
    )
}

#[test]
fn a_re_encrypted_copy_of_a_message_is_not_its_authors_equivocation() {
    for_fewer_seeds(
        "a_re_encrypted_copy_of_a_message_is_not_its_authors_equivocation",
        10,
        re_encrypted_copies_are_not_equivocation,
    );
}

/// A room whose quota takes 3 events at once and 2 a second after that.
fn small_quota() -> p2pchat_core::quota::Quota {
    p2pchat_core::quota::Quota {
        events_per_s: 2,
        burst_events: 3,
        ..Default::default()
    }
}

/// Mallory writes 10 events at one instant of her clock, each on top of
/// the last, to Alice while Bob is cut off; after the heal she sends them
/// to Bob as well. Exactly the first 3 are taken (the quota's burst), on
/// both, and nothing of hers after the refused 4th; both show the same
/// history. Alice's own client refuses her 4th message at once and says
/// how long to wait.
fn a_flood_is_refused_alike_across_a_partition(seed: u64) -> Check {
    let mut room = Room::with_quota(seed, small_quota());
    room.run_until(T0 + 5_000);
    let id = *room.chat.room_id();
    expect(
        room.chat.quota() == small_quota(),
        "the Chat ID carries the quota",
    )?;
    room.nodes[ALICE]
        .send_text(room.now, &id, "hello")
        .map_err(|e| e.to_string())?;
    room.run_until(room.now + 2_000);
    room.up[BOB] = false;
    room.up[MALLORY] = false;
    let m = room.mallory.peer_id();
    let (seq, deps, lamport) = room.nodes[MALLORY]
        .history(&id)
        .and_then(|h| h.next_for(&m))
        .ok_or("mallory cannot write")?;
    let mut events = Vec::new();
    let mut deps = deps;
    for k in 0..10u64 {
        events.push(mallory_event(
            seq + k,
            lamport + k,
            deps.clone(),
            room.now,
            &format!("flood {k}"),
        ));
        deps = vec![EventId::new(m, seq + k)];
    }
    for ev in &events {
        room.mallory_writes_to(&[ALICE], ev.clone());
    }
    room.run_until(room.now + 2_000);
    room.up[BOB] = true;
    for ev in &events {
        room.mallory_writes_to(&[BOB], ev.clone());
    }
    room.run_until(room.now + 20_000);
    let alice = room.shown(ALICE);
    let bob = room.shown(BOB);
    expect(alice == bob, &format!("alice shows {alice:?}, bob {bob:?}"))?;
    let hers = alice.iter().filter(|(e, _, _)| e.author == m).count();
    expect(hers == 3, &format!("{hers} of Mallory's 10 taken"))?;
    for i in [ALICE, BOB] {
        let refused = room.nodes[i].counters().get(DropReason::OverQuota);
        expect(refused >= 1, &format!("node {i} refused none over quota"))?;
    }
    // Alice's own client: three at once, then a clear refusal.
    let now = room.now;
    for k in 0..3 {
        room.nodes[ALICE]
            .send_text(now, &id, &format!("burst {k}"))
            .map_err(|e| e.to_string())?;
    }
    match room.nodes[ALICE].send_text(now, &id, "one too many") {
        Err(p2pchat_core::CommandError::OverQuota(q)) => {
            expect(q.retry_after_ms == 500, &format!("told to wait {q:?}"))
        }
        other => Err(format!("the 4th message at once gave {other:?}")),
    }
}

#[test]
fn a_flood_is_refused_alike_on_both_sides_of_a_partition() {
    for_seeds(
        "a_flood_is_refused_alike_on_both_sides_of_a_partition",
        a_flood_is_refused_alike_across_a_partition,
    );
}

/// The equivocation: Mallory signs two different events under one
/// sequence number, one sent to Alice and Bob, the other to Carol, and
/// goes on writing on each branch; then Alice and Carol talk, each
/// answering the branch it saw. Every honest member finds the fork, holds
/// the proof (both signed versions) and marks Mallory as equivocating
/// from that number; and all show one history: Mallory's events from the
/// fork on hidden, both answers shown.
fn forks_are_found_and_proven_everywhere(seed: u64) -> Check {
    let mut room = Room::new(seed);
    let carol = room.add_node("carol", None);
    let chat = room.chat.clone();
    room.nodes[carol]
        .join_room(room.now, &chat)
        .map_err(|e| e.to_string())?;
    let (mut room, id) = room.hello()?;
    let m = room.mallory.peer_id();
    let (seq, deps, lamport) = room.nodes[MALLORY]
        .history(&id)
        .and_then(|h| h.next_for(&m))
        .ok_or("mallory cannot write")?;
    let ev = |seq, lamport, deps, text: &str, time| mallory_event(seq, lamport, deps, time, text);
    // Her own node would find the fork too (it hears both versions) and
    // tell everyone: she keeps it quiet.
    room.up[MALLORY] = false;
    let now = room.now;
    let after = vec![EventId::new(m, seq)];
    // Each branch chained to its own first event.
    room.mallory_writes_to(&[ALICE, BOB], ev(seq, lamport, deps.clone(), "yes", now));
    room.mallory_writes_to(
        &[ALICE, BOB],
        ev(seq + 1, lamport + 1, after.clone(), "I said yes", now),
    );
    room.mallory_writes_to(&[carol], ev(seq, lamport, deps, "no", now));
    room.mallory_writes_to(&[carol], ev(seq + 1, lamport + 1, after, "I said no", now));
    room.run_until(room.now + 2_000);
    room.nodes[ALICE]
        .send_text(room.now, &id, "did you?")
        .map_err(|e| e.to_string())?;
    room.nodes[carol]
        .send_text(room.now, &id, "she did")
        .map_err(|e| e.to_string())?;
    room.run_until(room.now + 30_000);
    for i in [ALICE, BOB, carol] {
        let forks: Vec<(PeerId, u64)> = room.nodes[i]
            .history(&id)
            .map(|h| h.forks().iter().map(|f| (f.author(), f.seq())).collect())
            .unwrap_or_default();
        expect(
            forks == vec![(m, seq)],
            &format!("node {i} holds the forks {forks:?}"),
        )?;
        let proven = room.nodes[i]
            .history(&id)
            .and_then(|h| h.forks().iter().next().map(|f| f.is_proof()))
            .unwrap_or(false);
        expect(proven, &format!("node {i} holds no proof"))?;
        let told = &room.accused[i];
        expect(
            told.len() == 1 && told[0].0 == m,
            &format!("node {i} told its user {told:?}"),
        )?;
    }
    // One history: Mallory's events from the fork on are hidden on every
    // member, whichever branch it saw, and the others' answers, which
    // name one branch or the other, are shown everywhere.
    let alice = room.shown(ALICE);
    let texts = |i: usize| -> Vec<String> {
        room.nodes[i]
            .history(&id)
            .map(|h| h.iter().map(|e| e.body.shown().to_owned()).collect())
            .unwrap_or_default()
    };
    expect(
        texts(ALICE) == ["hello", "did you?", "she did"]
            || texts(ALICE) == ["hello", "she did", "did you?"],
        &format!("alice shows {:?}", texts(ALICE)),
    )?;
    for i in [BOB, carol] {
        let shown = room.shown(i);
        expect(
            shown == alice,
            &format!("node {i} shows {shown:?}, alice {alice:?}"),
        )?;
    }
    Ok(())
}

#[test]
fn an_equivocating_member_is_found_out_by_every_member() {
    for_seeds(
        "an_equivocating_member_is_found_out_by_every_member",
        forks_are_found_and_proven_everywhere,
    );
}
