#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use serde_json::{json, Value};

use p2pchat_core::room::MembershipProof;
use p2pchat_core::signaling::{
    stamp_is_fresh, Arrived, Entry, Lookup, Message, Peers, Query, Register, Registered,
    Registration, RejectReason, Rejected, SignalError, Unregister, DEFAULT_TTL_SECS, MAX_ADDRS,
    MAX_ENTRIES_PER_REPLY, MAX_TTL_SECS,
};
use p2pchat_core::{Identity, PeerId, RendezvousTag, RoomKey};

use crate::rng;

const STAMP: u64 = 1_795_000_000_123; // ms, 2026-11
/// Any membership proof (the server cannot check them; members do).
const PROOF: MembershipProof = MembershipProof::from_bytes([0x5a; 16]);
/// The nonce of every request here.
const NONCE: u64 = 0x0123_4567_89ab_cdef;

/// A registration, signed.
fn reg(
    id: &Identity,
    tag: RendezvousTag,
    addrs: Vec<SocketAddr>,
    ttl_secs: u32,
    stamp: u64,
) -> Result<Register, SignalError> {
    let r = Registration {
        tag,
        addrs,
        ttl_secs,
        stamp,
        nonce: NONCE,
        proof: PROOF,
    };
    Register::new(id, r)
}

/// A lookup of page 0, signed.
fn look(id: &Identity, tag: RendezvousTag, stamp: u64) -> Lookup {
    let q = Query {
        tag,
        stamp,
        nonce: NONCE,
        page: 0,
        proof: PROOF,
    };
    Lookup::new(id, q)
}

/// A unicast IPv6 address with the longest text form (`ff…` is multicast).
const LONGEST_V6: [u16; 8] = [
    0x2fff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
];

fn identity(seed: u64) -> Identity {
    Identity::generate(&mut rng(seed))
}

fn tag(seed: u64) -> RendezvousTag {
    RoomKey::generate(&mut rng(seed)).rendezvous_tag()
}

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

fn v6(segments: [u16; 8], port: u16) -> SocketAddr {
    let [a, b, c, d, e, f, g, h] = segments;
    SocketAddr::new(IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)), port)
}

fn some_addrs() -> Vec<SocketAddr> {
    vec![
        v4(192, 168, 1, 20, 5000),
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42], 5001),
    ]
}

/// The documented signed encoding, written out independently of the crate.
fn signed_bytes(domain: &str, tag: &RendezvousTag, peer: &PeerId, stamp: u64) -> Vec<u8> {
    let mut out = format!("p2pchat/v2/signal/{domain}\0").into_bytes();
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(peer.as_bytes());
    out.extend_from_slice(&stamp.to_be_bytes());
    out
}

fn register_bytes(
    tag: &RendezvousTag,
    peer: &PeerId,
    addrs: &[SocketAddr],
    ttl_secs: u32,
    stamp: u64,
) -> Vec<u8> {
    let mut out = signed_bytes("register", tag, peer, stamp);
    out.extend_from_slice(&ttl_secs.to_be_bytes());
    out.extend_from_slice(&NONCE.to_be_bytes());
    out.extend_from_slice(PROOF.as_bytes());
    out.push(addrs.len() as u8);
    for addr in addrs {
        match addr.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&addr.port().to_be_bytes());
    }
    out
}

/// A registration signed over whatever it holds, limits or not: what a
/// hostile client with its own key can send.
fn hostile_register(
    id: &Identity,
    tag: RendezvousTag,
    addrs: Vec<SocketAddr>,
    ttl_secs: u32,
) -> Register {
    let peer = id.peer_id();
    let sig = id.sign(&register_bytes(&tag, &peer, &addrs, ttl_secs, STAMP));
    Register {
        tag,
        peer,
        addrs,
        ttl_secs,
        stamp: STAMP,
        nonce: NONCE,
        proof: PROOF,
        sig,
    }
}

fn register(seed: u64) -> Register {
    reg(
        &identity(seed),
        tag(seed),
        some_addrs(),
        DEFAULT_TTL_SECS,
        STAMP,
    )
    .expect("valid registration")
}

fn entry(seed: u64) -> Entry {
    Entry {
        peer: identity(seed).peer_id(),
        observed: v4(203, 0, 113, 7, 40000 + seed as u16),
        addrs: some_addrs(),
        proof: PROOF,
    }
}

fn every_message() -> Vec<Message> {
    let alice = identity(1);
    let t = tag(2);
    let mut messages: Vec<Message> = vec![
        reg(&alice, t, some_addrs(), DEFAULT_TTL_SECS, STAMP)
            .expect("valid")
            .into(),
        reg(&alice, t, vec![], MAX_TTL_SECS, STAMP + 1)
            .expect("valid")
            .into(),
        Unregister::new(&alice, t, STAMP + 2).into(),
        look(&alice, t, STAMP + 3).into(),
        Registered {
            tag: t,
            ttl_secs: DEFAULT_TTL_SECS,
            nonce: NONCE,
        }
        .into(),
        Peers {
            tag: t,
            nonce: NONCE,
            page: 0,
            pages: 1,
            entries: vec![],
        }
        .into(),
        Peers {
            tag: t,
            nonce: NONCE,
            page: 0,
            pages: 1,
            entries: vec![entry(3), entry(4)],
        }
        .into(),
        Arrived {
            tag: t,
            nonce: NONCE,
            entry: entry(5),
        }
        .into(),
    ];
    for (reason, _) in all_reasons() {
        messages.push(Rejected { reason }.into());
    }
    messages
}

fn all_reasons() -> [(RejectReason, &'static str); 8] {
    [
        (RejectReason::BadSignature, "bad_signature"),
        (RejectReason::StaleStamp, "stale_stamp"),
        (RejectReason::BadTtl, "bad_ttl"),
        (RejectReason::TooManyAddrs, "too_many_addrs"),
        (RejectReason::BadAddr, "bad_addr"),
        (RejectReason::RoomFull, "room_full"),
        (RejectReason::ServerFull, "server_full"),
        (RejectReason::RateLimited, "rate_limited"),
    ]
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Register(_) => "register",
        Message::Unregister(_) => "unregister",
        Message::Lookup(_) => "lookup",
        Message::Registered(_) => "registered",
        Message::Peers(_) => "peers",
        Message::Arrived(_) => "arrived",
        Message::Rejected(_) => "rejected",
    }
}

fn parse(json: &str) -> Result<Message, serde_json::Error> {
    serde_json::from_str(json)
}

#[test]
fn every_kind_round_trips_through_json_with_its_t() {
    let messages = every_message();
    let mut kinds: Vec<_> = messages.iter().map(kind).collect();
    kinds.dedup();
    assert_eq!(kinds.len(), 7, "every kind is covered: {kinds:?}");
    for m in messages {
        let text = serde_json::to_string(&m).expect("serializes");
        let value: Value = serde_json::from_str(&text).expect("is JSON");
        assert_eq!(value["t"], kind(&m), "{text}");
        assert_eq!(parse(&text).expect("parses back"), m, "{text}");
        assert_eq!(m.verify(), Ok(()), "{text}");
    }
}

#[test]
fn wire_form_is_hex_and_plain_socket_addresses() {
    let r = register(1);
    let value = serde_json::to_value(Message::from(r.clone())).expect("serializes");
    assert_eq!(value["tag"], r.tag.to_string());
    assert_eq!(value["peer"], r.peer.to_string());
    let sig = value["sig"].as_str().expect("sig is a string");
    assert_eq!(sig.len(), 128);
    assert!(sig.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    assert_eq!(sig, hex::encode(r.sig));
    assert_eq!(
        value["addrs"],
        json!(["192.168.1.20:5000", "[2001:db8::42]:5001"])
    );
    assert_eq!(value["ttl_secs"], DEFAULT_TTL_SECS);
    assert_eq!(value["stamp"], STAMP);
    for (reason, text) in all_reasons() {
        let value = serde_json::to_value(Message::from(Rejected { reason })).expect("serializes");
        assert_eq!(value, json!({"t": "rejected", "reason": text}));
    }
}

#[test]
fn signatures_cover_the_documented_binary_encoding() {
    let alice = identity(1);
    let peer = alice.peer_id();
    let t = tag(2);
    let addrs = some_addrs();
    let r = reg(&alice, t, addrs.clone(), 77, STAMP).expect("valid");
    assert_eq!(
        peer.verify(&register_bytes(&t, &peer, &addrs, 77, STAMP), &r.sig),
        Ok(())
    );
    let u = Unregister::new(&alice, t, STAMP);
    assert_eq!(
        peer.verify(&signed_bytes("unregister", &t, &peer, STAMP), &u.sig),
        Ok(())
    );
    let l = look(&alice, t, STAMP);
    let mut lookup_bytes = signed_bytes("lookup", &t, &peer, STAMP);
    lookup_bytes.extend_from_slice(&NONCE.to_be_bytes());
    lookup_bytes.push(0);
    lookup_bytes.extend_from_slice(PROOF.as_bytes());
    assert_eq!(peer.verify(&lookup_bytes, &l.sig), Ok(()));
}

#[test]
fn valid_signatures_verify() {
    let alice = identity(1);
    let t = tag(2);
    let r = register(1);
    assert_eq!(r.verify(), Ok(()));
    let empty = reg(&alice, t, vec![], 1, 0).expect("valid");
    assert_eq!(empty.verify(), Ok(()));
    let four = vec![v6(LONGEST_V6, 65535); MAX_ADDRS];
    let full = reg(&alice, t, four, MAX_TTL_SECS, u64::MAX).expect("valid");
    assert_eq!(full.verify(), Ok(()));
    assert_eq!(Unregister::new(&alice, t, STAMP).verify(), Ok(()));
    assert_eq!(look(&alice, t, STAMP).verify(), Ok(()));
    assert_eq!(Message::from(full).verify(), Ok(()));
}

#[test]
fn altering_any_signed_field_of_a_register_breaks_it() {
    let r = register(1);
    let mut cases: Vec<(&str, Register)> = Vec::new();
    let mut m = r.clone();
    m.tag = tag(99);
    cases.push(("tag", m));
    let mut m = r.clone();
    m.peer = identity(99).peer_id();
    cases.push(("peer", m));
    let mut m = r.clone();
    m.stamp += 1;
    cases.push(("stamp", m));
    let mut m = r.clone();
    m.ttl_secs = MAX_TTL_SECS;
    cases.push(("ttl", m));
    let mut m = r.clone();
    m.addrs[0] = v4(192, 168, 1, 21, 5000);
    cases.push(("ipv4 octet", m));
    let mut m = r.clone();
    m.addrs[0].set_port(5002);
    cases.push(("ipv4 port", m));
    let mut m = r.clone();
    m.addrs[1] = v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x43], 5001);
    cases.push(("ipv6 octet", m));
    let mut m = r.clone();
    m.addrs[1].set_port(5000);
    cases.push(("ipv6 port", m));
    let mut m = r.clone();
    m.addrs.reverse();
    cases.push(("address order", m));
    let mut m = r.clone();
    m.addrs.pop();
    cases.push(("address removed", m));
    let mut m = r.clone();
    m.addrs.push(v4(10, 0, 0, 1, 9));
    cases.push(("address added", m));
    let mut m = r.clone();
    m.addrs[0] = "[::ffff:192.168.1.20]:5000".parse().expect("addr");
    cases.push(("ipv4 as mapped ipv6", m));
    let mut m = r.clone();
    m.sig[17] ^= 0x10;
    cases.push(("signature", m));
    for (what, m) in cases {
        assert_eq!(m.verify(), Err(SignalError::BadSignature), "altered {what}");
        assert_eq!(
            Message::from(m).verify(),
            Err(SignalError::BadSignature),
            "altered {what}"
        );
    }
}

#[test]
fn altering_any_signed_field_of_an_unregister_or_lookup_breaks_it() {
    let alice = identity(1);
    let t = tag(2);
    let u = Unregister::new(&alice, t, STAMP);
    let l = look(&alice, t, STAMP);
    for field in ["tag", "peer", "stamp", "sig"] {
        let mut bad_u = u.clone();
        let mut bad_l = l.clone();
        match field {
            "tag" => (bad_u.tag, bad_l.tag) = (tag(3), tag(3)),
            "peer" => (bad_u.peer, bad_l.peer) = (identity(3).peer_id(), identity(3).peer_id()),
            "stamp" => (bad_u.stamp, bad_l.stamp) = (STAMP - 1, STAMP + 1),
            _ => {
                bad_u.sig[63] ^= 1;
                bad_l.sig[0] ^= 1;
            }
        }
        assert_eq!(bad_u.verify(), Err(SignalError::BadSignature), "{field}");
        assert_eq!(bad_l.verify(), Err(SignalError::BadSignature), "{field}");
    }
}

#[test]
fn a_signature_for_one_kind_is_not_valid_for_another() {
    let alice = identity(1);
    let t = tag(2);
    let l = look(&alice, t, STAMP);
    let u = Unregister::new(&alice, t, STAMP);
    assert_ne!(l.sig, u.sig);
    let forged_unregister = Unregister {
        sig: l.sig,
        ..u.clone()
    };
    assert_eq!(forged_unregister.verify(), Err(SignalError::BadSignature));
    let forged_lookup = Lookup { sig: u.sig, ..l };
    assert_eq!(forged_lookup.verify(), Err(SignalError::BadSignature));
}

#[test]
fn a_request_signed_by_one_identity_for_another_peer_id_fails() {
    let mallory = identity(1);
    let bob = identity(2).peer_id();
    let t = tag(3);
    let addrs = some_addrs();

    let mut r = reg(&mallory, t, addrs.clone(), DEFAULT_TTL_SECS, STAMP).expect("valid");
    r.peer = bob;
    assert_eq!(r.verify(), Err(SignalError::BadSignature));

    // Even signing the bytes that name bob does not help: only bob can.
    let sig = mallory.sign(&register_bytes(&t, &bob, &addrs, DEFAULT_TTL_SECS, STAMP));
    let forged = Register {
        tag: t,
        peer: bob,
        addrs,
        ttl_secs: DEFAULT_TTL_SECS,
        stamp: STAMP,
        nonce: NONCE,
        proof: PROOF,
        sig,
    };
    assert_eq!(forged.verify(), Err(SignalError::BadSignature));

    let mut u = Unregister::new(&mallory, t, STAMP);
    u.peer = bob;
    assert_eq!(u.verify(), Err(SignalError::BadSignature));
    let mut l = look(&mallory, t, STAMP);
    l.peer = bob;
    assert_eq!(l.verify(), Err(SignalError::BadSignature));
}

#[test]
fn a_peer_id_that_is_not_a_key_is_refused_not_panicked_on() {
    let mut off_curve = None;
    for first in 0u8..=255 {
        let mut bytes = [0u8; 32];
        bytes[0] = first;
        bytes[1] = 0x55;
        if hex::encode(bytes).parse::<PeerId>().is_err() {
            off_curve = Some(PeerId::from_bytes(bytes));
            break;
        }
    }
    let peer = off_curve.expect("some candidate is off the curve");
    let mut l = look(&identity(1), tag(2), STAMP);
    l.peer = peer;
    // Hex parsing does not check the curve; verification does.
    let text = serde_json::to_string(&Message::from(l)).expect("serializes");
    let parsed = parse(&text).expect("well-formed JSON");
    assert_eq!(parsed.verify(), Err(SignalError::BadPeerId));
}

#[test]
fn limits_are_enforced_when_constructing() {
    let alice = identity(1);
    let t = tag(2);
    let five = vec![v4(10, 0, 0, 1, 5000); 5];
    assert_eq!(
        reg(&alice, t, five, DEFAULT_TTL_SECS, STAMP),
        Err(SignalError::TooManyAddrs { count: 5, max: 4 })
    );
    for ttl_secs in [0, MAX_TTL_SECS + 1, u32::MAX] {
        assert_eq!(
            reg(&alice, t, some_addrs(), ttl_secs, STAMP),
            Err(SignalError::BadTtl {
                ttl_secs,
                max: MAX_TTL_SECS
            })
        );
    }
    for ttl_secs in [1, DEFAULT_TTL_SECS, MAX_TTL_SECS] {
        assert!(reg(&alice, t, some_addrs(), ttl_secs, STAMP).is_ok());
    }
    let four = vec![v4(10, 0, 0, 1, 5000); MAX_ADDRS];
    assert!(reg(&alice, t, four, DEFAULT_TTL_SECS, STAMP).is_ok());
}

fn unusable_addrs() -> Vec<SocketAddr> {
    let mut scoped = SocketAddrV6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 5000, 0, 2);
    let scoped_addr = SocketAddr::V6(scoped);
    scoped.set_scope_id(0);
    scoped.set_flowinfo(7);
    vec![
        v4(10, 0, 0, 1, 0),
        v4(0, 0, 0, 0, 5000),
        v4(255, 255, 255, 255, 5000),
        v4(224, 0, 0, 1, 5000),
        v6([0; 8], 5000),
        v6([0xff02, 0, 0, 0, 0, 0, 0, 1], 5000),
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 0),
        scoped_addr,
        SocketAddr::V6(scoped),
    ]
}

#[test]
fn addresses_nobody_can_be_reached_at_are_refused() {
    let alice = identity(1);
    let t = tag(2);
    for bad in unusable_addrs() {
        let addrs = vec![v4(10, 0, 0, 1, 5000), bad];
        assert_eq!(
            reg(&alice, t, addrs, DEFAULT_TTL_SECS, STAMP),
            Err(SignalError::BadAddr { addr: bad }),
            "{bad:?}"
        );
    }
    // Loopback and private addresses are fine (local networks, tests).
    let fine = vec![
        v4(127, 0, 0, 1, 5000),
        v6([0, 0, 0, 0, 0, 0, 0, 1], 5000),
        v4(10, 1, 2, 3, 1),
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 1], 5000),
    ];
    assert!(reg(&alice, t, fine, DEFAULT_TTL_SECS, STAMP).is_ok());
}

#[test]
fn limits_are_enforced_on_hostile_messages_even_when_signed() {
    let mallory = identity(1);
    let t = tag(2);
    let five = vec![v4(10, 0, 0, 1, 5000); 5];
    let cases = [
        (
            hostile_register(&mallory, t, five, DEFAULT_TTL_SECS),
            SignalError::TooManyAddrs { count: 5, max: 4 },
        ),
        (
            hostile_register(&mallory, t, some_addrs(), 0),
            SignalError::BadTtl {
                ttl_secs: 0,
                max: MAX_TTL_SECS,
            },
        ),
        (
            hostile_register(&mallory, t, some_addrs(), MAX_TTL_SECS + 1),
            SignalError::BadTtl {
                ttl_secs: 301,
                max: MAX_TTL_SECS,
            },
        ),
    ];
    for (hostile, expected) in cases {
        // Arrives as JSON from the network: parses, then fails to verify.
        let text = serde_json::to_string(&Message::from(hostile)).expect("serializes");
        let parsed = parse(&text).expect("well-formed JSON");
        assert_eq!(parsed.verify(), Err(expected.clone()), "{text}");
        let Message::Register(r) = parsed else {
            panic!("not a register: {text}")
        };
        assert_eq!(r.verify(), Err(expected), "{text}");
    }

    // A scoped IPv6 address arrives as text; the scope id is not signed.
    let good = serde_json::to_value(Message::from(register(3))).expect("serializes");
    let mut hostile = good.clone();
    hostile["addrs"] = json!(["[fe80::1%2]:5000"]);
    let parsed: Message = serde_json::from_value(hostile).expect("well-formed JSON");
    let addr: SocketAddr = "[fe80::1%2]:5000".parse().expect("addr");
    assert_eq!(parsed.verify(), Err(SignalError::BadAddr { addr }));
}

#[test]
fn limits_are_enforced_on_server_replies() {
    let t = tag(1);
    let full = Peers {
        tag: t,
        nonce: NONCE,
        page: 0,
        pages: 1,
        entries: (0..MAX_ENTRIES_PER_REPLY as u64).map(entry).collect(),
    };
    assert_eq!(full.verify(), Ok(()));
    let mut over = full.clone();
    over.entries.push(entry(100));
    assert_eq!(
        Message::from(over).verify(),
        Err(SignalError::TooManyEntries { count: 17, max: 16 })
    );
    let mut fat = entry(1);
    fat.addrs = vec![v4(10, 0, 0, 1, 5000); 5];
    let too_many = Err(SignalError::TooManyAddrs { count: 5, max: 4 });
    let peers = Peers {
        tag: t,
        nonce: NONCE,
        page: 0,
        pages: 1,
        entries: vec![entry(2), fat.clone()],
    };
    assert_eq!(Message::from(peers).verify(), too_many);
    let arrived = Arrived {
        tag: t,
        nonce: NONCE,
        entry: fat,
    };
    assert_eq!(Message::from(arrived).verify(), too_many);
    for ttl_secs in [0, MAX_TTL_SECS + 1] {
        let registered = Registered {
            tag: t,
            ttl_secs,
            nonce: NONCE,
        };
        assert!(Message::from(registered).verify().is_err(), "{ttl_secs}");
    }
}

#[test]
fn malformed_json_is_an_error_not_a_panic() {
    let good = serde_json::to_value(Message::from(register(1))).expect("serializes");
    let sig = good["sig"].as_str().expect("sig").to_owned();
    let tag_hex = good["tag"].as_str().expect("tag").to_owned();
    assert!(serde_json::from_value::<Message>(good.clone()).is_ok());

    let mut hostile: Vec<(&str, Value)> = Vec::new();
    let with = |field: &str, value: Value| {
        let mut v = good.clone();
        v[field] = value;
        v
    };
    let without = |field: &str| {
        let mut v = good.clone();
        v.as_object_mut().expect("object").remove(field);
        v
    };
    hostile.push(("unknown field", with("extra", json!(1))));
    hostile.push(("unknown kind", with("t", json!("registr"))));
    hostile.push(("kind in wrong case", with("t", json!("Register"))));
    hostile.push(("kind not a string", with("t", json!(1))));
    hostile.push(("no kind", without("t")));
    hostile.push(("no sig", without("sig")));
    hostile.push(("no stamp", without("stamp")));
    hostile.push(("sig too short", with("sig", json!(sig[..126]))));
    hostile.push(("sig too long", with("sig", json!(format!("{sig}00")))));
    hostile.push(("sig odd length", with("sig", json!(sig[..127]))));
    hostile.push(("sig uppercase", with("sig", json!(sig.to_uppercase()))));
    hostile.push((
        "sig not hex",
        with("sig", json!(format!("zz{}", &sig[2..]))),
    ));
    hostile.push(("sig as bytes", with("sig", json!(vec![0u8; 64]))));
    hostile.push(("sig multibyte", with("sig", json!("é".repeat(64)))));
    hostile.push(("tag too short", with("tag", json!(tag_hex[..62]))));
    hostile.push(("tag uppercase", with("tag", json!(tag_hex.to_uppercase()))));
    hostile.push(("peer too long", with("peer", json!(format!("{tag_hex}ab")))));
    hostile.push(("negative ttl", with("ttl_secs", json!(-1))));
    hostile.push(("ttl beyond u32", with("ttl_secs", json!(1u64 << 32))));
    hostile.push(("ttl as string", with("ttl_secs", json!("60"))));
    hostile.push(("stamp negative", with("stamp", json!(-5))));
    hostile.push(("stamp fractional", with("stamp", json!(1.5))));
    hostile.push(("stamp as string", with("stamp", json!(STAMP.to_string()))));
    hostile.push(("addr without port", with("addrs", json!(["10.0.0.1"]))));
    hostile.push(("addr not an addr", with("addrs", json!(["example.com:80"]))));
    hostile.push(("addrs not a list", with("addrs", json!("10.0.0.1:1"))));
    hostile.push(("not an object", json!([1, 2, 3])));
    hostile.push(("null", Value::Null));
    hostile.push((
        "unknown reason",
        json!({"t": "rejected", "reason": "because"}),
    ));
    hostile.push((
        "unknown field in entry",
        json!({"t": "arrived", "tag": tag_hex, "entry": {
            "peer": tag_hex, "observed": "10.0.0.1:1", "addrs": [], "extra": 0,
        }}),
    ));
    hostile.push((
        "unknown field in lookup",
        json!({"t": "lookup", "tag": tag_hex, "peer": tag_hex, "stamp": 1,
               "sig": sig, "addrs": []}),
    ));
    for (what, value) in hostile {
        let text = value.to_string();
        assert!(parse(&text).is_err(), "{what} accepted: {text}");
    }

    let text = serde_json::to_string(&good).expect("serializes");
    for cut in [0, 1, text.len() / 2, text.len() - 1] {
        assert!(parse(&text[..cut]).is_err(), "truncated at {cut}");
    }
    for junk in ["", "{}", "\"register\"", "{\"t\":\"register\"}", "\u{0}"] {
        assert!(parse(junk).is_err(), "{junk:?}");
    }
}

#[test]
fn stamps_must_strictly_increase() {
    assert!(stamp_is_fresh(None, 0));
    assert!(stamp_is_fresh(None, u64::MAX));
    assert!(stamp_is_fresh(Some(STAMP), STAMP + 1));
    assert!(!stamp_is_fresh(Some(STAMP), STAMP), "a replay");
    assert!(!stamp_is_fresh(Some(STAMP), STAMP - 1), "older");
    assert!(!stamp_is_fresh(Some(STAMP), 0));
    assert!(!stamp_is_fresh(Some(u64::MAX), u64::MAX));
    assert!(stamp_is_fresh(Some(0), 1));
}

#[test]
fn tag_names_what_the_message_is_about() {
    let t = tag(2);
    for m in every_message() {
        match m {
            Message::Rejected(_) => assert_eq!(m.tag(), None),
            _ => assert_eq!(m.tag(), Some(&t), "{}", kind(&m)),
        }
    }
}

/// The largest messages, in bytes of JSON.
///
/// - A maximal `Peers` page (16 entries, each with an IPv6 observed address,
///   4 IPv6 addresses, all written at their longest, and a membership
///   proof) is 6,383 bytes: well under 64 KiB, but more than a 1200-byte
///   datagram holds, so the server splits a page over several datagrams (2
///   maximal entries fit in 1,200 bytes).
/// - A maximal `Register` (4 longest IPv6 addresses) is 623 bytes.
#[test]
fn the_largest_messages_are_small() {
    let longest = v6(LONGEST_V6, 65535);
    assert_eq!(longest.to_string().len(), 47);
    let big_entry = |seed: u64| Entry {
        peer: identity(seed).peer_id(),
        observed: longest,
        addrs: vec![longest; MAX_ADDRS],
        proof: PROOF,
    };
    let t = tag(1);
    let size = |entries: usize| {
        let peers = Peers {
            tag: t,
            nonce: NONCE,
            page: 0,
            pages: 1,
            entries: (0..entries as u64).map(big_entry).collect(),
        };
        let m = Message::from(peers);
        assert_eq!(m.verify(), Ok(()));
        serde_json::to_string(&m).expect("serializes").len()
    };
    let max = size(MAX_ENTRIES_PER_REPLY);
    assert_eq!(max, 6_383);
    assert!(max < 64 * 1024);
    let fit = (1..=MAX_ENTRIES_PER_REPLY)
        .take_while(|n| size(*n) <= 1200)
        .count();
    assert_eq!(fit, 2, "{} {}", size(2), size(3));

    let r = reg(
        &identity(2),
        t,
        vec![longest; MAX_ADDRS],
        MAX_TTL_SECS,
        u64::MAX,
    )
    .expect("valid");
    let len = serde_json::to_string(&Message::from(r))
        .expect("serializes")
        .len();
    assert_eq!(len, 623);
}

// ----- answers signed by a server whose key is pinned ------------------------

/// The answers among [`every_message`].
fn every_answer() -> Vec<Message> {
    every_message()
        .into_iter()
        .filter(|m| m.answer_bytes().is_some())
        .collect()
}

#[test]
fn a_servers_signature_holds_for_its_answers_and_nothing_else() {
    let server = identity(40);
    let other = identity(41);
    let answers = every_answer();
    assert_eq!(answers.len(), 4 + all_reasons().len());
    for m in &answers {
        let sig = m.sign_answer(&server).expect("an answer");
        assert_eq!(m.verify_answer(Some(&sig), &server.peer_id()), Ok(()));
        assert_eq!(
            m.verify_answer(Some(&sig), &other.peer_id()),
            Err(SignalError::BadServerSignature),
            "another server's key"
        );
        assert_eq!(
            m.verify_answer(None, &server.peer_id()),
            Err(SignalError::BadServerSignature),
            "unsigned"
        );
        // The signature of one answer holds for no other.
        for n in &answers {
            if n != m {
                assert!(n.verify_answer(Some(&sig), &server.peer_id()).is_err());
            }
        }
    }
    // Requests are not answers: nothing to sign, nothing that verifies.
    for m in every_message()
        .iter()
        .filter(|m| m.answer_bytes().is_none())
    {
        assert_eq!(m.sign_answer(&server), None);
        let sig = server.sign(b"anything");
        assert!(m.verify_answer(Some(&sig), &server.peer_id()).is_err());
    }
}

#[test]
fn a_signed_answer_changed_in_any_field_no_longer_verifies() {
    let server = identity(40);
    let key = server.peer_id();
    let peers = Peers {
        tag: tag(2),
        nonce: NONCE,
        page: 0,
        pages: 2,
        entries: vec![entry(3), entry(4)],
    };
    let sig = Message::from(peers.clone())
        .sign_answer(&server)
        .expect("an answer");
    let changes: [fn(&mut Peers); 11] = [
        |p| p.tag = tag(9),
        |p| p.nonce ^= 1,
        |p| p.page = 1,
        |p| p.pages = 3,
        |p| p.entries.truncate(1),
        |p| p.entries.swap(0, 1),
        |p| p.entries[0].observed = v4(192, 0, 2, 77, 9),
        |p| p.entries[1].addrs.push(v4(192, 0, 2, 77, 9)),
        |p| p.entries[1].addrs.clear(),
        |p| p.entries[0].proof = MembershipProof::from_bytes([1; 16]),
        |p| p.entries[0].peer = identity(77).peer_id(),
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut changed = peers.clone();
        change(&mut changed);
        assert_eq!(
            Message::from(changed).verify_answer(Some(&sig), &key),
            Err(SignalError::BadServerSignature),
            "change {i}"
        );
    }
    let arrived = Arrived {
        tag: tag(2),
        nonce: NONCE,
        entry: entry(5),
    };
    let sig = Message::from(arrived.clone())
        .sign_answer(&server)
        .expect("an answer");
    let mut moved = arrived;
    moved.entry.observed = v4(192, 0, 2, 77, 9);
    assert!(Message::from(moved)
        .verify_answer(Some(&sig), &key)
        .is_err());
}

#[test]
fn a_signed_answer_survives_the_wire_and_an_unsigned_one_carries_no_signature() {
    use p2pchat_core::wire::{self, Datagram};
    let server = identity(40);
    for m in every_answer() {
        let signed = wire::encode_signed_answer(m.clone(), &server);
        let Ok(Datagram::Sig(p)) = wire::decode(&signed) else {
            panic!("a signaling datagram");
        };
        assert_eq!(p.msg, m);
        assert_eq!(
            p.msg.verify_answer(p.sig.as_ref(), &server.peer_id()),
            Ok(())
        );
        let plain = wire::encode_sig(m.clone());
        let Ok(Datagram::Sig(p)) = wire::decode(&plain) else {
            panic!("a signaling datagram");
        };
        assert_eq!(p.sig, None);
        assert!(!String::from_utf8_lossy(&plain).contains("\"sig\":"));
    }
    // A signature that is not 64 bytes of lowercase hex does not parse.
    let signed = String::from_utf8(wire::encode_signed_answer(
        every_answer()[0].clone(),
        &server,
    ))
    .expect("JSON is text");
    let mut value: Value = serde_json::from_str(&signed).expect("JSON");
    for bad in [json!("00"), json!(hex_upper(&[0xab; 64])), json!(42)] {
        value["sig"] = bad;
        assert!(wire::decode(value.to_string().as_bytes()).is_err());
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[test]
fn a_server_is_written_as_its_address_and_maybe_its_key() {
    use p2pchat_core::signaling::{ServerSpec, ServerSpecError};
    let key = identity(40).peer_id();
    let plain: ServerSpec = "203.0.113.5:5555".parse().expect("an address");
    assert_eq!(plain.addr, v4(203, 0, 113, 5, 5555));
    assert_eq!(plain.key, None);
    assert_eq!(plain.to_string(), "203.0.113.5:5555");
    let pinned: ServerSpec = format!("[2001:db8::1]:5555={key}").parse().expect("pinned");
    assert_eq!(pinned.key, Some(key));
    assert_eq!(pinned.to_string().parse::<ServerSpec>(), Ok(pinned));
    assert!(matches!(
        "nowhere=".parse::<ServerSpec>(),
        Err(ServerSpecError::Addr(_))
    ));
    assert!(matches!(
        "203.0.113.5:5555=abc".parse::<ServerSpec>(),
        Err(ServerSpecError::Key(_))
    ));
    let text = ServerSpecError::Key("abc".into()).to_string();
    assert!(text.contains("abc") && text.contains("64 hex"), "{text}");
}
