//! The rendezvous registry (the signaling server's state), fed real
//! datagrams: introductions, TTLs, unregister and replays, signatures,
//! caps, MTU packing, garbage, and what it stores.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use p2pchat_core::{Config, Identity, MemoryStore, Node, RoomKey};
use p2pchat_sim::{settle, user_name, Settled};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use p2pchat_core::rendezvous::{Limits, Registry, Reply, MAX_REPLY_LEN, MAX_REQUEST_LEN};
use p2pchat_core::room::MembershipProof;
use p2pchat_core::signaling::{
    self, Entry, Lookup, Message, Query, Register, Registration, RejectReason, Rejected, Unregister,
};
use p2pchat_core::wire::{self, Datagram};
use p2pchat_core::{PeerId, RendezvousTag};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

fn identity(seed: u64) -> Identity {
    Identity::generate(&mut ChaCha20Rng::seed_from_u64(seed))
}

fn tag(n: u8) -> RendezvousTag {
    RoomKey::from_bytes([n; 32]).rendezvous_tag()
}

/// The proof each registration here carries (the server cannot check it).
const PROOF: MembershipProof = MembershipProof::from_bytes([9; 16]);

fn registration(tag: RendezvousTag, addrs: Vec<SocketAddr>, ttl: u32, stamp: u64) -> Registration {
    Registration {
        tag,
        addrs,
        ttl_secs: ttl,
        stamp,
        nonce: stamp + 1_000,
        proof: PROOF,
    }
}

fn register(id: &Identity, tag: RendezvousTag, ttl: u32, stamp: u64) -> Vec<u8> {
    let r = Register::new(id, registration(tag, vec![addr(9000)], ttl, stamp)).expect("valid");
    wire::encode_sig(Message::Register(r))
}

fn lookup_page(id: &Identity, tag: RendezvousTag, stamp: u64, page: u8) -> Vec<u8> {
    let q = Query {
        tag,
        stamp,
        nonce: stamp + 2_000,
        page,
        proof: PROOF,
    };
    wire::encode_sig(Message::Lookup(Lookup::new(id, q)))
}

fn lookup(id: &Identity, tag: RendezvousTag, stamp: u64) -> Vec<u8> {
    lookup_page(id, tag, stamp, 0)
}

/// A registry with these limits and a fixed secret.
fn registry(limits: Limits) -> Registry {
    Registry::new(limits, [7; 32])
}

fn unregister(id: &Identity, tag: RendezvousTag, stamp: u64) -> Vec<u8> {
    wire::encode_sig(Message::Unregister(Unregister::new(id, tag, stamp)))
}

fn decode(bytes: &[u8]) -> Message {
    match wire::decode(bytes) {
        Ok(Datagram::Sig(p)) => p.msg,
        other => panic!("not a signaling datagram: {other:?}"),
    }
}

/// The peers listed in the replies to `to`.
fn listed(replies: &[Reply], to: SocketAddr) -> Vec<PeerId> {
    replies
        .iter()
        .filter(|(a, _)| *a == to)
        .filter_map(|(_, b)| match decode(b) {
            Message::Peers(p) => Some(p.entries.into_iter().map(|e| e.peer)),
            _ => None,
        })
        .flatten()
        .collect()
}

fn rejected(replies: &[Reply]) -> Option<RejectReason> {
    replies.iter().find_map(|(_, b)| match decode(b) {
        Message::Rejected(r) => Some(r.reason),
        _ => None,
    })
}

#[test]
fn two_peers_learn_each_other_and_the_old_one_hears_of_the_new() {
    let mut reg = registry(Limits::default());
    let (a, b) = (identity(1), identity(2));
    let t = tag(1);
    reg.handle(0, addr(1), &register(&a, t, 60, 1));
    let replies = reg.handle(0, addr(1), &lookup(&a, t, 2));
    assert!(listed(&replies, addr(1)).is_empty(), "alone so far");
    reg.handle(10, addr(2), &register(&b, t, 60, 1));
    let replies = reg.handle(10, addr(2), &lookup(&b, t, 2));
    assert_eq!(listed(&replies, addr(2)), vec![a.peer_id()]);
    let notice = replies
        .iter()
        .find(|(to, _)| *to == addr(1))
        .map(|(_, b)| decode(b));
    match notice {
        Some(Message::Arrived(n)) => {
            assert_eq!(n.entry.peer, b.peer_id());
            assert_eq!(n.entry.observed, addr(2), "what the server saw");
            assert_eq!(n.entry.addrs, vec![addr(9000)], "what b reported");
        }
        other => panic!("alice was not told about bob: {other:?}"),
    }
}

#[test]
fn entries_expire_after_their_ttl_and_refresh_extends_it() {
    let mut reg = registry(Limits::default());
    let (a, b) = (identity(1), identity(2));
    let t = tag(1);
    reg.handle(0, addr(1), &register(&a, t, 2, 1));
    assert_eq!(
        listed(&reg.handle(1_000, addr(2), &lookup(&b, t, 1)), addr(2)).len(),
        1
    );
    // Refreshed at 1.5 s for 2 s more: alive at 3 s, gone at 3.6 s.
    reg.handle(1_500, addr(1), &register(&a, t, 2, 2));
    reg.expire(3_000);
    assert_eq!(
        listed(&reg.handle(3_000, addr(2), &lookup(&b, t, 2)), addr(2)).len(),
        1
    );
    reg.expire(3_600);
    assert!(listed(&reg.handle(3_600, addr(2), &lookup(&b, t, 3)), addr(2)).is_empty());
    assert_eq!((reg.entries(), reg.tags()), (0, 0), "memory given back");
    assert_eq!(reg.stats().expired, 1);
}

#[test]
fn unregister_removes_at_once_and_cannot_be_replayed_back() {
    let mut reg = registry(Limits::default());
    let (a, b) = (identity(1), identity(2));
    let t = tag(1);
    let old_register = register(&a, t, 60, 1);
    reg.handle(0, addr(1), &old_register);
    reg.handle(5, addr(1), &unregister(&a, t, 2));
    assert!(listed(&reg.handle(6, addr(2), &lookup(&b, t, 1)), addr(2)).is_empty());
    // A captured registration replayed, from anywhere: stale.
    let replies = reg.handle(7, addr(66), &old_register);
    assert_eq!(rejected(&replies), Some(RejectReason::StaleStamp));
    assert!(listed(&reg.handle(8, addr(2), &lookup(&b, t, 2)), addr(2)).is_empty());
}

#[test]
fn nobody_can_touch_another_peers_entry() {
    let mut reg = registry(Limits::default());
    let (a, mallory) = (identity(1), identity(3));
    let t = tag(1);
    reg.handle(0, addr(1), &register(&a, t, 60, 1));
    // Mallory signs an unregister for alice's id: bad signature.
    let mut forged = Unregister::new(&mallory, t, 99);
    forged.peer = a.peer_id();
    let replies = reg.handle(1, addr(66), &wire::encode_sig(Message::Unregister(forged)));
    assert_eq!(rejected(&replies), Some(RejectReason::BadSignature));
    // Nor move it to her address.
    let mut moved =
        Register::new(&mallory, registration(t, vec![addr(66)], 60, 99)).expect("valid");
    moved.peer = a.peer_id();
    let replies = reg.handle(1, addr(66), &wire::encode_sig(Message::Register(moved)));
    assert_eq!(rejected(&replies), Some(RejectReason::BadSignature));
    // Alice's entry is untouched.
    let b = identity(2);
    let replies = reg.handle(2, addr(2), &lookup(&b, t, 1));
    let entries: Vec<Entry> = replies
        .iter()
        .filter_map(|(_, m)| match decode(m) {
            Message::Peers(p) => Some(p.entries),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].observed, addr(1));
    assert_eq!(reg.stats().bad_signature, 2);
}

#[test]
fn caps_on_tags_entries_per_tag_and_total_hold() {
    let limits = Limits {
        max_tags: 2,
        max_per_tag: 3,
        max_entries: 5,
        ..Limits::default()
    };
    let mut reg = registry(limits);
    let ids: Vec<Identity> = (0..10).map(identity).collect();
    for (i, id) in ids.iter().take(4).enumerate() {
        let replies = reg.handle(0, addr(i as u16), &register(id, tag(1), 60, 1));
        if i < 3 {
            assert_eq!(rejected(&replies), None);
        } else {
            assert_eq!(rejected(&replies), Some(RejectReason::RoomFull));
        }
    }
    reg.handle(0, addr(10), &register(&ids[4], tag(2), 60, 1));
    let third_tag = reg.handle(0, addr(11), &register(&ids[5], tag(3), 60, 1));
    assert_eq!(rejected(&third_tag), Some(RejectReason::ServerFull));
    reg.handle(0, addr(12), &register(&ids[6], tag(2), 60, 1));
    let over_total = reg.handle(0, addr(13), &register(&ids[7], tag(2), 60, 1));
    assert_eq!(rejected(&over_total), Some(RejectReason::ServerFull));
    assert_eq!((reg.entries(), reg.tags()), (5, 2));
    // A refresh of an existing entry is always accepted.
    let refresh = reg.handle(1, addr(0), &register(&ids[0], tag(1), 60, 2));
    assert_eq!(rejected(&refresh), None);
}

#[test]
fn a_long_lookup_answer_is_packed_into_datagrams_within_the_mtu() {
    let mut reg = registry(Limits::default());
    let t = tag(1);
    let wide = |i: u16| {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, i),
            65535,
            0,
            0,
        ))
    };
    for i in 0..40u16 {
        let id = identity(100 + u64::from(i));
        let addrs = (0..4).map(|k| wide(i * 4 + k)).collect();
        let r = Register::new(&id, registration(t, addrs, 60, 1)).expect("valid");
        reg.handle(0, wide(1000 + i), &wire::encode_sig(Message::Register(r)));
    }
    let asker = identity(1);
    let replies = reg.handle(1, addr(1), &lookup(&asker, t, 1));
    let to_asker: Vec<&Reply> = replies.iter().filter(|(a, _)| *a == addr(1)).collect();
    assert!(to_asker.len() > 1, "split over several datagrams");
    assert!(to_asker.iter().all(|(_, b)| b.len() <= MAX_REPLY_LEN));
    assert_eq!(
        listed(&replies, addr(1)).len(),
        signaling::MAX_ENTRIES_PER_REPLY
    );
}

#[test]
fn a_server_with_a_key_signs_every_answer_and_still_fits_the_mtu() {
    let mut reg = registry(Limits::default());
    let server = identity(999);
    reg.sign_answers(Identity::from_secret_bytes(&server.secret_bytes()));
    assert_eq!(reg.server_key(), Some(server.peer_id()));
    let t = tag(1);
    let wide = |i: u16| {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, i),
            65535,
            0,
            0,
        ))
    };
    let mut replies = Vec::new();
    for i in 0..40u16 {
        let id = identity(100 + u64::from(i));
        let addrs = (0..4).map(|k| wide(i * 4 + k)).collect();
        let r = Register::new(&id, registration(t, addrs, 60, 1)).expect("valid");
        replies.extend(reg.handle(0, wide(1000 + i), &wire::encode_sig(Message::Register(r))));
    }
    let asker = identity(1);
    replies.extend(reg.handle(1, addr(1), &lookup(&asker, t, 1)));
    replies.extend(reg.handle(1, addr(2), &register(&asker, t, 60, 5)));
    // A stale stamp: refused, and the refusal is signed too.
    replies.extend(reg.handle(1, addr(2), &register(&asker, t, 60, 3)));
    let kinds: std::collections::BTreeSet<&str> = replies
        .iter()
        .map(|(_, bytes)| {
            assert!(bytes.len() <= MAX_REPLY_LEN, "{} bytes", bytes.len());
            let Ok(Datagram::Sig(p)) = wire::decode(bytes) else {
                panic!("a signaling datagram");
            };
            assert_eq!(
                p.msg.verify_answer(p.sig.as_ref(), &server.peer_id()),
                Ok(())
            );
            match p.msg {
                Message::Registered(_) => "registered",
                Message::Peers(_) => "peers",
                Message::Arrived(_) => "arrived",
                Message::Rejected(_) => "rejected",
                _ => "request",
            }
        })
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["arrived", "peers", "registered", "rejected"]
    );
    assert_eq!(
        listed(&replies, addr(1)).len(),
        signaling::MAX_ENTRIES_PER_REPLY
    );
}

#[test]
fn garbage_is_dropped_and_counted_by_reason() {
    let mut reg = registry(Limits::default());
    let a = identity(1);
    let room_datagram = br#"{"k":"ctl","v":1,"tag":"00000000000000000000000000000000000000000000000000000000000000ff","from":"00000000000000000000000000000000000000000000000000000000000000ff","body":"x"}"#;
    let cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\x00\x01\x02".to_vec(),
        b"{\"k\":\"sig\",\"v\":1,\"msg\":{\"t\":\"lookup\"}}".to_vec(),
        vec![b'x'; MAX_REQUEST_LEN + 1],
        room_datagram.to_vec(),
        wire::encode_sig(Message::Rejected(Rejected {
            reason: RejectReason::RoomFull,
        })),
    ];
    for case in &cases {
        let replies = reg.handle(0, addr(1), case);
        assert!(replies.is_empty(), "no answer to garbage");
    }
    let s = *reg.stats();
    assert_eq!(
        (s.malformed, s.oversized, s.not_signaling, s.unexpected),
        (3, 1, 1, 1),
        "{s:?}"
    );
    assert_eq!(s.dropped(), cases.len() as u64);
    // Still serving.
    let replies = reg.handle(1, addr(1), &register(&a, tag(1), 60, 1));
    assert!(matches!(decode(&replies[0].1), Message::Registered(_)));
}

/// The server stores a tag, a peer id, addresses, an expiry and a
/// stamp — never the room's id, key or name, nor a username. Fed the
/// real engine's signaling traffic, its whole state (Debug) mentions
/// none of them.
#[test]
fn what_the_server_stores_reveals_no_room_key_name_or_user() {
    let server = addr(5555);
    let config = Config {
        signaling: vec![server],
        local_addrs: vec![addr(7000)],
        ..Config::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mut node = Node::new(
        Identity::generate(&mut rng),
        user_name("alice-the-secret-user"),
        config,
        [4; 32],
    );
    let chat = node
        .create_room(1_000, "secret-garden")
        .expect("valid name");
    node.handle_timeout(1_000);
    let mut reg = registry(Limits::default());
    let mut seen = 0;
    let (outputs, _) = settle(&mut node, &mut MemoryStore::new());
    for out in outputs {
        if let Settled::Transmit(t) = out {
            if t.to == server {
                reg.handle(0, addr(7000), &t.bytes);
                seen += 1;
            }
        }
    }
    assert!(seen >= 2, "the node registered and looked up");
    assert_eq!(reg.entries(), 1);
    let state = format!("{reg:?}").to_lowercase();
    let key = chat.key().as_bytes();
    let secrets = [
        chat.room_id().to_string(),
        hex::encode(key),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, key),
        "secret-garden".into(),
        "alice-the-secret-user".into(),
    ];
    for secret in secrets {
        assert!(
            !state.contains(&secret.to_lowercase()),
            "the server's state contains {secret}"
        );
    }
    // What it does hold: the one-way tag.
    assert!(state.contains(&chat.key().rendezvous_tag().to_string()));
}

// ----- a rendezvous nobody can hide or fill --------------------------------

/// Source `i`'s address: an IP of its own.
fn source(i: u32) -> SocketAddr {
    let [_, b, c, d] = i.to_be_bytes();
    SocketAddr::from(([100, 64 + b, c, d], 7000))
}

/// Every peer listed across the pages of `tag`, for an asker at `from`,
/// paging as a client does; and the number of pages announced.
fn page_through(
    reg: &mut Registry,
    asker: &Identity,
    tag: RendezvousTag,
    from: SocketAddr,
) -> (Vec<PeerId>, u8) {
    let mut all = Vec::new();
    let mut page = 0u8;
    let mut pages = 1u8;
    while page < pages {
        let replies = reg.handle(
            1,
            from,
            &lookup_page(asker, tag, 100 + u64::from(page), page),
        );
        for (to, bytes) in &replies {
            if let (true, Message::Peers(p)) = (*to == from, decode(bytes)) {
                assert_eq!(p.page, page);
                pages = p.pages;
                all.extend(p.entries.iter().map(|e| e.peer));
            }
        }
        page += 1;
    }
    (all, pages)
}

/// Sixteen identities ground so that their peer ids sort first no longer
/// hide anyone: lookups go in an order keyed by the server's secret, and a
/// client pages through every entry.
#[test]
fn ground_ids_cannot_hide_the_members() {
    let mut reg = registry(Limits::default());
    let t = tag(1);
    // "Grinding": of 200 identities, the 16 with the lowest peer ids.
    let mut candidates: Vec<Identity> = (1_000..1_200).map(identity).collect();
    candidates.sort_by_key(Identity::peer_id);
    let fakes: Vec<Identity> = candidates.into_iter().take(16).collect();
    let members = [identity(1), identity(2)];
    for (i, id) in members.iter().chain(&fakes).enumerate() {
        let replies = reg.handle(0, source(i as u32), &register(id, t, 60, 1));
        assert_eq!(rejected(&replies), None);
    }
    let lowest: Vec<PeerId> = fakes.iter().map(Identity::peer_id).collect();
    assert!(members
        .iter()
        .all(|m| lowest.iter().all(|f| *f < m.peer_id())));
    let asker = identity(3);
    let (listed, pages) = page_through(&mut reg, &asker, t, source(999));
    assert_eq!(pages, 2, "18 entries, 16 per page");
    assert_eq!(listed.len(), 18, "every entry exactly once: {listed:?}");
    for m in &members {
        assert!(listed.contains(&m.peer_id()), "a member was hidden");
    }
    // The first page is not simply the lowest ids.
    let first: Vec<PeerId> = listed.iter().take(16).copied().collect();
    assert_ne!(first, lowest, "the order is keyed, not by peer id");
}

/// One source sends 1,000 registrations under 10 tags: it keeps at most
/// 16 per tag and 64 in all, and others still register.
#[test]
fn one_source_cannot_fill_a_tag_or_the_server() {
    let mut reg = registry(Limits::default());
    let flooder = source(1);
    let mut refused = 0;
    for i in 0..1_000u64 {
        let id = identity(10_000 + i);
        let replies = reg.handle(0, flooder, &register(&id, tag((i % 10) as u8), 60, 1));
        if rejected(&replies) == Some(RejectReason::SourceFull) {
            refused += 1;
        }
    }
    assert_eq!(reg.entries_of(flooder.ip()), 64);
    assert_eq!(refused, 1_000 - 64);
    assert_eq!(reg.stats().source_full, refused);
    let replies = reg.handle(0, source(2), &register(&identity(1), tag(3), 60, 1));
    assert_eq!(rejected(&replies), None, "another source still registers");
    // Under one tag, at most 16 from one source.
    let (listed, _) = page_through(&mut reg, &identity(2), tag(3), source(3));
    assert!(listed.len() <= 16 + 1, "{}", listed.len());
}

/// A tag full of two sources' entries makes room for a newcomer from a
/// third source: the fullest source gives up an entry.
#[test]
fn a_full_tag_makes_room_for_a_newcomer_from_another_source() {
    let limits = Limits {
        max_per_tag: 8,
        max_per_source_per_tag: 5,
        ..Limits::default()
    };
    let mut reg = registry(limits);
    let t = tag(1);
    for i in 0..5u64 {
        let replies = reg.handle(0, source(1), &register(&identity(100 + i), t, 60, 1));
        assert_eq!(rejected(&replies), None);
    }
    for i in 0..3u64 {
        let replies = reg.handle(0, source(2), &register(&identity(200 + i), t, 60, 1));
        assert_eq!(rejected(&replies), None);
    }
    // Full (8): the newcomer from source 3 takes one of source 1's places.
    let replies = reg.handle(1, source(3), &register(&identity(300), t, 60, 1));
    assert_eq!(rejected(&replies), None);
    assert_eq!(reg.stats().evicted, 1);
    assert_eq!(reg.entries_of(source(1).ip()), 4);
    // Source 2 (3 entries) cannot push source 1 (4) out: fair shares.
    let replies = reg.handle(1, source(2), &register(&identity(203), t, 60, 1));
    assert_eq!(rejected(&replies), Some(RejectReason::RoomFull));
    assert_eq!(reg.entries(), 8);
}

/// A server full of one source's entries makes room for another source.
#[test]
fn a_full_server_makes_room_for_another_source() {
    let limits = Limits {
        max_entries: 10,
        max_per_source: 10,
        ..Limits::default()
    };
    let mut reg = registry(limits);
    for i in 0..10u64 {
        let replies = reg.handle(
            0,
            source(1),
            &register(&identity(100 + i), tag(i as u8), 60, 1),
        );
        assert_eq!(rejected(&replies), None);
    }
    let replies = reg.handle(1, source(2), &register(&identity(1), tag(50), 60, 1));
    assert_eq!(rejected(&replies), None);
    assert_eq!((reg.entries(), reg.stats().evicted), (10, 1));
    assert_eq!(reg.entries_of(source(1).ip()), 9);
}

/// Pages cover every entry once; a page past the end is the last one.
#[test]
fn lookups_page_through_every_entry() {
    let mut reg = registry(Limits::default());
    let t = tag(1);
    for i in 0..40u32 {
        reg.handle(
            0,
            source(i),
            &register(&identity(500 + u64::from(i)), t, 60, 1),
        );
    }
    let asker = identity(1);
    let (listed, pages) = page_through(&mut reg, &asker, t, source(999));
    assert_eq!(pages, 3);
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((listed.len(), unique.len()), (40, 40));
    let replies = reg.handle(2, source(999), &lookup_page(&asker, t, 500, 9));
    let last = replies.iter().find_map(|(_, b)| match decode(b) {
        Message::Peers(p) => Some((p.page, p.pages)),
        _ => None,
    });
    assert_eq!(last, Some((2, 3)));
}
