//! Hostile input: every kind of bad datagram is dropped and counted, the
//! history stays as it was, and memory stays bounded.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;
use p2pchat_core::clock::EventId;
use p2pchat_core::history::Body;
use p2pchat_core::membership::Bye;
use p2pchat_core::replication::Summary;
use p2pchat_core::wire::{
    self, Control, EventWire, RoomKind, Sealed, MAX_REASSEMBLY_BYTES, MAX_TEXT_LEN,
};
use p2pchat_core::{
    ChatId, Config, Counters, DropReason, Identity, MemoryStore, Node, PeerId, RoomCipher, RoomId,
    SealVersion, Store,
};
use p2pchat_sim::{settle, user_name, Settled, T0};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 5000))
}

/// Alice and Bob in one room, chatting directly, plus Mallory who holds
/// the Chat ID (a member turned hostile) and can seal whatever she likes.
struct Bench {
    now: u64,
    alice: Node,
    bob: Node,
    /// Alice's and Bob's stores.
    disks: [MemoryStore; 2],
    chat: ChatId,
    mallory: Identity,
    /// Every datagram Alice sent Bob, for replays.
    captured: Vec<Vec<u8>>,
}

impl Bench {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let mut node = |name: &str, i: u8| {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            let config = Config {
                local_addrs: vec![addr(i)],
                ..Config::default()
            };
            Node::new(Identity::generate(&mut rng), user_name(name), config, seed)
        };
        let mut alice = node("alice", 1);
        let mut bob = node("bob", 2);
        let mallory = Identity::generate(&mut rng);
        let chat = alice.create_room(T0, "general").expect("valid name");
        bob.join_room(T0, &chat).expect("join");
        let mut bench = Bench {
            now: T0,
            alice,
            bob,
            disks: [MemoryStore::new(), MemoryStore::new()],
            chat,
            mallory,
            captured: Vec::new(),
        };
        bench.settle(5_000);
        bench.alice_says("hello");
        bench.settle(3_000);
        bench
    }

    fn room(&self) -> RoomId {
        *self.chat.room_id()
    }

    /// Runs both nodes for `ms`, delivering everything at once.
    fn settle(&mut self, ms: u64) {
        let end = self.now + ms;
        loop {
            let [alice_disk, bob_disk] = &mut self.disks;
            let (from_alice, alice_next) = settle(&mut self.alice, alice_disk);
            let (from_bob, bob_next) = settle(&mut self.bob, bob_disk);
            let mut moved = false;
            for out in from_alice {
                if let Settled::Transmit(t) = out {
                    if t.to == addr(2) {
                        self.captured.push(t.bytes.clone());
                        self.bob.handle_datagram(self.now, addr(1), &t.bytes);
                        moved = true;
                    }
                }
            }
            for out in from_bob {
                if let Settled::Transmit(t) = out {
                    if t.to == addr(1) {
                        self.alice.handle_datagram(self.now, addr(2), &t.bytes);
                        moved = true;
                    }
                }
            }
            if moved {
                continue;
            }
            let next = [alice_next, bob_next].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.alice.handle_timeout(self.now);
                    self.bob.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn alice_says(&mut self, text: &str) {
        let room = self.room();
        self.alice.send_text(self.now, &room, text).expect("send");
    }

    fn bob_history(&self) -> Vec<EventId> {
        self.bob
            .history(&self.room())
            .expect("bob is in the room")
            .iter()
            .map(|e| e.id)
            .collect()
    }

    fn inject(&mut self, bytes: &[u8]) {
        self.bob.handle_datagram(self.now, addr(3), bytes);
    }

    fn cipher(&self) -> RoomCipher {
        RoomCipher::new(self.room(), self.chat.key())
    }

    /// A datagram carrying a token sealed by Mallory.
    fn mallory_datagram(&self, kind: RoomKind, from: PeerId, sealed: &Sealed) -> Vec<Vec<u8>> {
        let payload = serde_json::to_vec(sealed).expect("serialisable");
        let token = self
            .cipher()
            .seal(&self.mallory, &payload, self.now)
            .expect("seal");
        wire::encode_room(
            kind,
            self.chat.key().rendezvous_tag(),
            from,
            &token,
            1200,
            7,
        )
        .expect("fits")
    }

    /// An event of Mallory's, chained to what Bob holds.
    fn mallory_event(&self, seq: u64, lamport: u64, deps: Vec<EventId>) -> Vec<Vec<u8>> {
        let ev = self.mallory_wire(seq, lamport, deps);
        self.mallory_datagram(RoomKind::Ev, self.mallory.peer_id(), &Sealed::Ev(ev))
    }

    fn mallory_wire(&self, seq: u64, lamport: u64, deps: Vec<EventId>) -> EventWire {
        let ev = EventWire {
            seq,
            lamport,
            deps,
            time: self.now,
            name: "mallory".into(),
            body: Body::Text {
                text: "evil".into(),
            },
            prev: None,
            refs: Vec::new(),
        };
        p2pchat_sim::chained(ev, self.mallory.peer_id(), self.bob.history(&self.room()))
    }
}

fn counters(node: &Node) -> Counters {
    *node.counters()
}

#[test]
fn the_bench_works() {
    let b = Bench::new();
    assert_eq!(b.bob_history().len(), 1, "bob received alice's hello");
    assert_eq!(
        counters(&b.bob).dropped(),
        0,
        "nothing dropped in normal traffic"
    );
}

#[test]
fn malformed_and_oversized_datagrams_are_dropped_and_counted() {
    let mut b = Bench::new();
    let before = b.bob_history();
    let tag = b.chat.key().rendezvous_tag().to_string();
    let me = b.alice.peer_id().to_string();
    let deep = "[".repeat(60_000);
    let cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\xff\xfe\x00garbage".to_vec(),
        b"null".to_vec(),
        b"{}".to_vec(),
        b"{\"k\":\"nope\",\"v\":1}".to_vec(),
        deep.into_bytes(),
        vec![b' '; 70_000],
        format!("{{\"k\":\"ctl\",\"v\":2,\"tag\":\"{tag}\",\"from\":\"{me}\",\"body\":\"x\"}}").into_bytes(),
        format!("{{\"k\":\"ctl\",\"v\":1,\"tag\":\"{}\",\"from\":\"{me}\",\"body\":\"x\"}}", tag.to_uppercase()).into_bytes(),
        format!("{{\"k\":\"ctl\",\"v\":1,\"tag\":\"{tag}\",\"from\":\"{me}\",\"body\":5}}").into_bytes(),
        format!("{{\"k\":\"ctl\",\"v\":1,\"tag\":\"{tag}\",\"from\":\"{me}\",\"body\":\"x\",\"extra\":1}}").into_bytes(),
        format!("{{\"k\":\"ev\",\"v\":1,\"tag\":\"{tag}\",\"from\":\"{me}\",\"frag\":{{\"id\":1,\"i\":5,\"n\":3}},\"body\":\"x\"}}").into_bytes(),
        format!("{{\"k\":\"ev\",\"v\":1,\"tag\":\"{tag}\",\"from\":\"{me}\",\"frag\":{{\"id\":1,\"i\":0,\"n\":60000}},\"body\":\"x\"}}").into_bytes(),
        format!("{{\"k\":\"ev\",\"v\":1,\"tag\":\"{tag}\",\"from\":\"{me}\",\"body\":\"{}\"}}", "A".repeat(60_000)).into_bytes(),
        format!("{{\"k\":\"ev\",\"v\":1,\"tag\":\"{}\",\"from\":\"{me}\",\"body\":\"x\"}}", "ab".repeat(32)).into_bytes(),
        format!("{{\"k\":\"ctl\",\"v\":1,\"tag\":\"{tag}\",\"from\":\"{me}\",\"body\":\"not a token\"}}").into_bytes(),
        b"{\"k\":\"sig\",\"v\":1,\"msg\":{\"t\":\"peers\"}}".to_vec(),
    ];
    for case in &cases {
        b.inject(case);
    }
    let c = counters(&b.bob);
    assert_eq!(
        c.dropped(),
        cases.len() as u64,
        "every bad datagram counted once: {c:?}"
    );
    assert_eq!(c.get(DropReason::Oversized), 1, "{c:?}");
    assert_eq!(c.get(DropReason::BadVersion), 1, "{c:?}");
    assert_eq!(c.get(DropReason::BadFragment), 2, "{c:?}");
    assert_eq!(c.get(DropReason::UnknownRoom), 1, "{c:?}");
    assert_eq!(c.get(DropReason::DecryptFailed), 2, "{c:?}");
    assert_eq!(b.bob_history(), before, "history unchanged");
}

#[test]
fn random_mutations_of_real_datagrams_never_get_through() {
    let mut b = Bench::new();
    let before = b.bob_history();
    let captured = b.captured.clone();
    assert!(!captured.is_empty());
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut sent = 0u64;
    for round in 0..3_000 {
        let mut bytes = captured[round % captured.len()].clone();
        let flips = 1 + rng.next_u32() % 4;
        for _ in 0..flips {
            let i = rng.next_u32() as usize % bytes.len();
            bytes[i] = (rng.next_u32() % 256) as u8;
        }
        if rng.next_u32() % 5 == 0 {
            let cut = rng.next_u32() as usize % bytes.len();
            bytes.truncate(cut);
        }
        if captured.contains(&bytes) {
            continue;
        }
        b.inject(&bytes);
        sent += 1;
    }
    let c = counters(&b.bob);
    assert_eq!(b.bob_history(), before, "history unchanged");
    // A mutation in the (unauthenticated) fragment id or sender of an
    // unfragmented datagram leaves a valid token: those are duplicates or
    // replays, also counted. Nothing may pass uncounted.
    assert!(
        c.dropped() >= sent,
        "{} dropped of {sent}: {c:?}",
        c.dropped()
    );
}

#[test]
fn tampered_tokens_and_wrong_keys_are_refused() {
    let mut b = Bench::new();
    let before = b.bob_history();
    // Tampered: one character of a real token changed.
    let ev = b
        .alice
        .history(&b.room())
        .and_then(|h| h.iter().next())
        .expect("alice's hello");
    // The history keeps no tokens; Alice's store has it.
    let Ok(tokens) = b.disks[0].tokens(&b.room(), &[ev.id]);
    let mut token = tokens
        .into_iter()
        .flatten()
        .next()
        .expect("alice stored her hello")
        .into_bytes();
    let mid = token.len() / 2;
    token[mid] = if token[mid] == b'A' { b'B' } else { b'A' };
    let token = String::from_utf8(token).expect("ascii");
    let tag = b.chat.key().rendezvous_tag();
    for d in wire::encode_room(RoomKind::Ev, tag, b.alice.peer_id(), &token, 1200, 1).expect("fits")
    {
        b.inject(&d);
    }
    assert_eq!(counters(&b.bob).get(DropReason::DecryptFailed), 1);
    // Wrong key, right tag: sealed with another room's key.
    let other = RoomCipher::new(b.room(), &p2pchat_core::RoomKey::from_bytes([7; 32]));
    let payload =
        serde_json::to_vec(&Sealed::Ctl(Control::Bye(Bye { stamp: u64::MAX }))).expect("json");
    let token = other.seal(&b.mallory, &payload, b.now).expect("seal");
    for d in
        wire::encode_room(RoomKind::Ctl, tag, b.mallory.peer_id(), &token, 1200, 1).expect("fits")
    {
        b.inject(&d);
    }
    assert_eq!(counters(&b.bob).get(DropReason::DecryptFailed), 2);
    // Right key, other room id: the signature covers the room id.
    let other_room = RoomCipher::new(RoomId::from_bytes([9; 16]), b.chat.key());
    let token = other_room.seal(&b.mallory, &payload, b.now).expect("seal");
    for d in
        wire::encode_room(RoomKind::Ctl, tag, b.mallory.peer_id(), &token, 1200, 1).expect("fits")
    {
        b.inject(&d);
    }
    assert_eq!(counters(&b.bob).get(DropReason::BadSignature), 1);
    assert_eq!(b.bob_history(), before);
}

#[test]
fn a_forged_author_is_refused() {
    let mut b = Bench::new();
    let before = b.bob_history();
    // Mallory's control message, sent as if from Alice.
    let beat = Sealed::Ctl(Control::Bye(Bye { stamp: u64::MAX }));
    for d in b.mallory_datagram(RoomKind::Ctl, b.alice.peer_id(), &beat) {
        b.inject(&d);
    }
    assert_eq!(counters(&b.bob).get(DropReason::ForgedSender), 1);
    // A token claiming Alice as author, signed by Mallory: built by hand
    // with the room key, as a member could.
    let forged = forged_token(&b, b.alice.peer_id(), 1, &alice_owes_mallory(&b, 2));
    b.inject(&forged);
    assert_eq!(counters(&b.bob).get(DropReason::BadSignature), 1);
    // The alice still online, not said goodbye.
    assert_eq!(b.bob_history(), before);
    // An event passed off as a control message by relabelling `k`.
    let ev_dgrams = b.mallory_event(1, 1, vec![]);
    let relabelled = String::from_utf8(ev_dgrams[0].clone())
        .expect("json")
        .replacen("\"k\":\"ev\"", "\"k\":\"ctl\"", 1);
    b.inject(relabelled.as_bytes());
    assert_eq!(counters(&b.bob).get(DropReason::BadPayload), 1);
    assert_eq!(b.bob_history(), before);
}

/// Words Mallory would like Alice to have said, as event `seq`.
fn alice_owes_mallory(b: &Bench, seq: u64) -> Sealed {
    Sealed::Ev(EventWire {
        seq,
        lamport: 2,
        deps: vec![],
        time: b.now,
        name: "alice".into(),
        body: Body::Text {
            text: "I owe mallory money".into(),
        },
        prev: None,
        refs: Vec::new(),
    })
}

/// A token whose signature is Mallory's but which names `claimed` as its
/// author, sealed as `version`: what a member holding the room key can mint.
fn forged_token(b: &Bench, claimed: PeerId, version: u8, sealed: &Sealed) -> Vec<u8> {
    let payload = serde_json::to_vec(sealed).expect("json");
    let mut signed = format!("p2pchat/v{version}/seal\0").into_bytes();
    signed.extend_from_slice(b.room().as_bytes());
    signed.extend_from_slice(&payload);
    let mut plain = vec![version];
    plain.extend_from_slice(claimed.as_bytes());
    plain.extend_from_slice(&b.mallory.sign(&signed));
    plain.extend_from_slice(&payload);
    let fernet = fernet::Fernet::new(&URL_SAFE.encode(b.chat.key().as_bytes())).expect("key");
    let token = fernet.encrypt_at_time(&plain, b.now / 1000);
    let tag = b.chat.key().rendezvous_tag();
    let mut d =
        wire::encode_room(RoomKind::Ev, tag, b.mallory.peer_id(), &token, 1200, 1).expect("fits");
    assert_eq!(d.len(), 1, "one datagram");
    d.remove(0)
}

#[test]
fn forgeries_arriving_with_good_events_are_refused_alone() {
    // Bob's socket hands him a burst: Mallory's own events (one sealed
    // the way earlier releases sealed, as a member who has not upgraded
    // would), and between them two tokens naming Alice as author but
    // signed by Mallory, one of each seal version. The burst's signatures
    // are checked in one batch; the batch fails, and each forgery is
    // refused on its own while every good event is taken.
    let mut b = Bench::new();
    let before = b.bob_history();
    let alice = b.alice.peer_id();
    let forged_v1 = forged_token(&b, alice, 1, &alice_owes_mallory(&b, 2));
    let forged_v2 = forged_token(&b, alice, 2, &alice_owes_mallory(&b, 3));
    let first_wire = b.mallory_wire(1, 1, vec![]);
    let first = b
        .mallory_datagram(
            RoomKind::Ev,
            b.mallory.peer_id(),
            &Sealed::Ev(first_wire.clone()),
        )
        .remove(0);
    let mut second_wire = b.mallory_wire(2, 2, vec![EventId::new(b.mallory.peer_id(), 1)]);
    // Chained to her first event, which Bob does not hold yet.
    let first_digest = p2pchat_core::equivocation::wire_digest(b.mallory.peer_id(), &first_wire);
    second_wire.prev = Some(first_digest);
    second_wire.refs = vec![first_digest];
    let payload = serde_json::to_vec(&Sealed::Ev(second_wire)).expect("json");
    let old_token = b
        .cipher()
        .seal_as(SealVersion::V1Strict, &b.mallory, &payload, b.now)
        .expect("seal v1");
    let tag = b.chat.key().rendezvous_tag();
    let second = wire::encode_room(RoomKind::Ev, tag, b.mallory.peer_id(), &old_token, 1200, 2)
        .expect("fits")
        .remove(0);
    let burst = [&first, &forged_v1, &second, &forged_v2];
    b.bob
        .handle_datagrams(b.now, burst.iter().map(|d| (addr(3), d.as_slice())));
    assert_eq!(counters(&b.bob).get(DropReason::BadSignature), 2);
    let mut expected = before.clone();
    expected.push(EventId::new(b.mallory.peer_id(), 1));
    expected.push(EventId::new(b.mallory.peer_id(), 2));
    let mut got = b.bob_history();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "Mallory's two events taken, no forgery");

    // The same burst to a node that takes it one datagram at a time
    // reaches the same verdicts.
    let mut single = Bench::new();
    for d in burst {
        single.inject(d);
    }
    assert_eq!(counters(&single.bob).get(DropReason::BadSignature), 2);
    let mut got_single = single.bob_history();
    got_single.sort();
    assert_eq!(got_single, got);
}

#[test]
fn replayed_datagrams_change_nothing() {
    let mut b = Bench::new();
    let before = b.bob_history();
    let before_counters = counters(&b.bob);
    let captured = b.captured.clone();
    for d in &captured {
        b.inject(d);
    }
    let c = counters(&b.bob);
    assert!(
        c.get(DropReason::Replayed) > before_counters.get(DropReason::Replayed),
        "control replays counted: {c:?}"
    );
    assert!(
        c.get(DropReason::DuplicateEvent) > before_counters.get(DropReason::DuplicateEvent),
        "event replays counted: {c:?}"
    );
    assert_eq!(b.bob_history(), before, "history unchanged");
}

#[test]
fn absurd_sequence_numbers_and_clocks_are_refused() {
    let mut b = Bench::new();
    let before = b.bob_history();
    let alice = b.alice.peer_id();
    let cases = [
        (b.mallory_event(0, 1, vec![]), "seq 0"),
        (b.mallory_event(u64::MAX, 1, vec![]), "seq u64::MAX"),
        (b.mallory_event(1_000_000, 1, vec![]), "seq far ahead"),
        (
            b.mallory_event(1, 2, vec![EventId::new(alice, u64::MAX)]),
            "absurd dep",
        ),
        (
            b.mallory_event(1, 2, vec![EventId::new(alice, 1); 2]),
            "repeated dep",
        ),
        (
            b.mallory_event(2, 3, vec![EventId::new(b.mallory.peer_id(), 2)]),
            "depends on itself",
        ),
    ];
    for (dgrams, _) in &cases {
        for d in dgrams {
            b.inject(d);
        }
    }
    let c = counters(&b.bob);
    assert_eq!(c.get(DropReason::SeqOutOfRange), 3, "{c:?}");
    assert_eq!(c.get(DropReason::BadDeps), 3, "{c:?}");
    // A Lamport time that does not follow from the deps: refused on
    // delivery, everywhere alike.
    for d in b.mallory_event(1, u64::MAX, vec![EventId::new(alice, 1)]) {
        b.inject(&d);
    }
    assert_eq!(counters(&b.bob).get(DropReason::BadLamport), 1);
    assert_eq!(b.bob_history(), before, "history unchanged");
    // Two different events under one id: the first stays.
    for d in b.mallory_event(1, 2, vec![EventId::new(alice, 1)]) {
        b.inject(&d);
    }
    assert_eq!(
        b.bob_history().len(),
        before.len() + 1,
        "an honest event is taken"
    );
    let kept = b.bob_history();
    // The same words sealed again (another token) are a copy; the same id
    // with another time is a second, different event.
    let mut other = b.mallory_event(1, 2, vec![EventId::new(alice, 1)]);
    b.now += 1000;
    other.extend(b.mallory_event(1, 2, vec![EventId::new(alice, 1)]));
    let duplicates = counters(&b.bob).get(DropReason::DuplicateEvent);
    for d in &other {
        b.inject(d);
    }
    assert_eq!(counters(&b.bob).get(DropReason::Equivocation), 1);
    assert_eq!(
        counters(&b.bob).get(DropReason::DuplicateEvent),
        duplicates + 1
    );
    // Two signed versions of her event 1: Mallory is frozen from 1, and
    // her events from there on are hidden, on every member alike.
    let m = b.mallory.peer_id();
    let history = b.bob.history(&b.room()).expect("bob is in the room");
    assert_eq!(history.frozen_from(&m), Some(1));
    assert_eq!(b.bob_history(), before);
    assert_eq!(kept.len(), before.len() + 1);
}

/// Found by the `control` fuzz target: an event of Mallory's that waits
/// for Bob's next message is delivered with it, and must not be shown as
/// Bob's own.
#[test]
fn an_event_delivered_with_ones_own_is_not_shown_as_ones_own() {
    let mut b = Bench::new();
    let room = b.room();
    let bob = b.bob.peer_id();
    let history = b.bob.history(&room).expect("bob is in the room");
    let (seq, deps, lamport) = history.next_for(&bob).expect("bob can write");
    // Bob's next words are predictable, and so is their digest, which
    // Mallory's event names.
    let (prev, refs) = history.commitments(&bob, seq, &deps).expect("held");
    let time = b.now.max(history.floor_of(&bob, seq, &deps));
    let bobs = EventWire {
        seq,
        lamport,
        deps,
        time,
        name: "bob".into(),
        body: Body::Text {
            text: "bob's words".into(),
        },
        prev,
        refs,
    };
    let mut ev = b.mallory_wire(1, lamport + 1, vec![EventId::new(bob, seq)]);
    ev.refs = vec![p2pchat_core::equivocation::wire_digest(bob, &bobs)];
    let m = b.mallory.peer_id();
    for d in b.mallory_datagram(RoomKind::Ev, m, &Sealed::Ev(ev)) {
        b.inject(&d);
    }
    b.bob.send_text(b.now, &room, "bob's words").expect("send");
    let (out, _) = settle(&mut b.bob, &mut b.disks[1]);
    let shown: Vec<(PeerId, bool)> = out
        .iter()
        .filter_map(|o| match o {
            Settled::Event(p2pchat_core::AppEvent::Message { event, own, .. }) => {
                Some((event.id.author, *own))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        shown,
        vec![(bob, true), (b.mallory.peer_id(), false)],
        "bob's message, then mallory's that waited for it"
    );
}

#[test]
fn fragment_floods_stay_bounded_and_real_messages_still_arrive() {
    let mut b = Bench::new();
    let tag = b.chat.key().rendezvous_tag().to_string();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let chunk = "A".repeat(1000);
    let mut peak = 0;
    for k in 0..20_000u32 {
        // Many claimed senders, many ids, never complete.
        let mut from = [0u8; 32];
        rng.fill_bytes(&mut from);
        let from = PeerId::from_bytes(from);
        let d = format!(
            "{{\"k\":\"ev\",\"v\":1,\"tag\":\"{tag}\",\"from\":\"{from}\",\"frag\":{{\"id\":{k},\"i\":0,\"n\":128}},\"body\":\"{chunk}\"}}"
        );
        b.inject(d.as_bytes());
        peak = peak.max(b.bob.reassembly_load().1);
    }
    assert!(
        peak <= MAX_REASSEMBLY_BYTES,
        "reassembly peaked at {peak} bytes"
    );
    assert!(counters(&b.bob).get(DropReason::FragEvicted) > 0);
    // A real 16 KiB message still arrives whole.
    let text = "z".repeat(MAX_TEXT_LEN);
    b.alice_says(&text);
    b.settle(3_000);
    let history = b.bob.history(&b.room()).expect("room");
    let last = history.iter().last().expect("an event");
    assert_eq!(last.body, Body::Text { text });
    // And a longer one is refused with a clear error.
    let room = b.room();
    let err = b
        .alice
        .send_text(b.now, &room, &"z".repeat(MAX_TEXT_LEN + 1))
        .expect_err("too long");
    assert!(err.to_string().contains("16 KiB"), "{err}");
}

/// Two different events under one number while both wait for the
/// author's earlier event: the pair is a proof all the same, kept once.
/// When the gap is filled both are kept beside Mallory's main chain (for
/// events that may name them) and her events from the fork on are
/// hidden.
#[test]
fn two_versions_waiting_in_the_buffer_prove_a_fork() {
    let mut b = Bench::new();
    let alice = b.alice.peer_id();
    let m = b.mallory.peer_id();
    let one = b.mallory_wire(1, 2, vec![EventId::new(alice, 1)]);
    let d1 = p2pchat_core::equivocation::wire_digest(m, &one);
    let two = |b: &Bench| {
        let mut ev = b.mallory_wire(2, 3, vec![EventId::new(m, 1)]);
        ev.prev = Some(d1);
        ev.refs = vec![d1];
        b.mallory_datagram(RoomKind::Ev, m, &Sealed::Ev(ev))
    };
    let first = two(&b);
    b.now += 1000;
    let second = two(&b);
    for d in first.iter().chain(&second) {
        b.inject(d);
    }
    assert_eq!(counters(&b.bob).get(DropReason::Equivocation), 1);
    let history = b.bob.history(&b.room()).expect("bob is in the room");
    let fork = history.forks().get(&m).expect("the fork is kept").clone();
    assert!(fork.is_proof());
    assert_eq!((fork.seq(), history.pending_len()), (2, 2));
    let shown = history.len();
    for d in b.mallory_datagram(RoomKind::Ev, m, &Sealed::Ev(one)) {
        b.inject(&d);
    }
    let history = b.bob.history(&b.room()).expect("bob is in the room");
    assert_eq!(history.pending_len(), 0);
    // Frozen from 2: neither version joins her main chain, both are kept.
    assert!(history.get(&EventId::new(m, 2)).is_none());
    for version in [&fork.held, &fork.other] {
        assert!(history.version(&version.digest).is_some(), "kept");
    }
    assert_eq!(
        history.len(),
        shown + 1,
        "only Mallory's first event is shown"
    );
    assert_eq!(history.frozen_from(&m), Some(2));
    // Bob restarts from what he stored: the proof was stored with the
    // rest, so the same history is shown, the fork proven again.
    let _ = settle(&mut b.bob, &mut b.disks[1]);
    let Ok(loaded) = p2pchat_core::Store::load(&b.disks[1]);
    let config = Config {
        local_addrs: vec![addr(2)],
        ..Config::default()
    };
    let (restored, skipped) = Node::restore(
        Identity::generate(&mut ChaCha20Rng::seed_from_u64(5)),
        user_name("bob"),
        config,
        [7; 32],
        b.now,
        loaded.records,
    );
    assert_eq!(skipped, 0);
    let before = b.bob.history(&b.room()).expect("bob is in the room");
    let after = restored.history(&b.room()).expect("restored");
    assert_eq!(after.frozen_from(&m), Some(2));
    let ids = |h: &p2pchat_core::history::History| h.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(after), ids(before));
    for version in [&fork.held, &fork.other] {
        assert!(after.version(&version.digest).is_some(), "kept");
    }
}

#[test]
fn a_summary_of_the_largest_room_still_fits_one_sealed_payload() {
    use p2pchat_core::clock::VersionVector;
    use p2pchat_core::history::MAX_AUTHORS;
    let b = Bench::new();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut vv = VersionVector::new();
    for _ in 0..MAX_AUTHORS {
        let mut author = [0u8; 32];
        rng.fill_bytes(&mut author);
        vv.set(PeerId::from_bytes(author), u64::MAX);
    }
    let heads = vec![u64::MAX; MAX_AUTHORS];
    let summary = Sealed::Ctl(Control::Summary(Summary {
        stamp: u64::MAX,
        vv,
        reply: true,
        heads,
        pushed: u32::MAX,
    }));
    let payload = serde_json::to_vec(&summary).expect("json");
    assert!(
        payload.len() <= p2pchat_core::seal::MAX_PAYLOAD_LEN,
        "{} bytes",
        payload.len()
    );
    let token = b.cipher().seal(&b.mallory, &payload, b.now).expect("seals");
    let datagrams = wire::encode_room(
        RoomKind::Ctl,
        b.chat.key().rendezvous_tag(),
        b.mallory.peer_id(),
        &token,
        wire::DEFAULT_MTU,
        1,
    );
    assert!(
        datagrams.is_some(),
        "fits in MAX_FRAGMENTS datagrams at the default MTU"
    );
}
