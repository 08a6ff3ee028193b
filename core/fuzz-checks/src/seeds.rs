//! The initial corpus, made with the real encoders: datagrams the engine
//! sends, fragments of real tokens, real tokens and payloads, signaling
//! requests and answers, relay frames and Chat IDs, and op sequences that
//! walk a node and a registry through their usual paths.

use std::net::SocketAddr;

use p2pchat_core::clock::{EventId, VersionVector};
use p2pchat_core::history::Body;
use p2pchat_core::membership::{Beat, Bye, Hint};
use p2pchat_core::relay::Frame;
use p2pchat_core::replication::Summary;
use p2pchat_core::signaling::{
    Arrived, Entry, Lookup, Message, Peers, Query, Register, Registered, Registration,
    RejectReason, Rejected, Unregister,
};
use p2pchat_core::wire::{self, Control, EventWire, Frag, RoomKind, Sealed, DEFAULT_MTU};
use p2pchat_core::{ChatId, RoomId, RoomKey, RoomName};

use crate::control::{self, Stamp};
use crate::fixtures::{self, usable_addrs, T0};
use crate::input::Writer;
use crate::node::Via;
use crate::reassembly;
use crate::signaling;

/// One seed input.
#[derive(Clone, Debug)]
pub struct Seed {
    /// The target it is for.
    pub target: &'static str,
    /// A file name (`seed-<name>`).
    pub name: String,
    /// The input.
    pub bytes: Vec<u8>,
}

/// Every seed of every target.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push(Seed {
            target,
            name: name.to_owned(),
            bytes,
        })
    };
    for (name, bytes) in datagrams() {
        add("datagram", &name, bytes);
    }
    for (name, bytes) in reassembly_runs() {
        add("reassembly", &name, bytes);
    }
    for (name, bytes) in sealed_inputs() {
        add("sealed", &name, bytes);
    }
    for (name, bytes) in control_runs() {
        add("control", &name, bytes);
    }
    for (name, bytes) in signaling_runs() {
        add("signaling", &name, bytes);
    }
    for (name, bytes) in relay_frames() {
        add("relay_frame", &name, bytes);
    }
    for (name, bytes) in chat_ids() {
        add("chat_id", &name, bytes);
    }
    out
}

fn beat(stamp: u64) -> Beat {
    let fx = fixtures::get();
    Beat {
        stamp,
        name: "alice".into(),
        digest: 0x1234_5678,
        hints: vec![Hint {
            peer: fx.peer_id(1),
            addr: usable_addrs()[1],
        }],
        hello: true,
        challenge: Some(7),
        response: None,
    }
}

fn summary(stamp: u64) -> Summary {
    let fx = fixtures::get();
    let mut vv = VersionVector::new();
    vv.set(fx.peer_id(0), 3);
    vv.set(fx.peer_id(1), 1);
    Summary {
        stamp,
        vv,
        reply: true,
        heads: vec![0, 1],
        pushed: 0,
    }
}

fn event(seq: u64, text: &str) -> EventWire {
    let fx = fixtures::get();
    let deps = if seq > 1 {
        vec![EventId::new(fx.peer_id(0), seq - 1)]
    } else {
        Vec::new()
    };
    let digest = p2pchat_core::equivocation::Digest::from_bytes([seq as u8; 32]);
    EventWire {
        seq,
        lamport: seq,
        refs: vec![digest; deps.len()],
        deps,
        time: T0,
        name: "alice".into(),
        body: Body::Text { text: text.into() },
        prev: (seq > 1).then_some(digest),
    }
}

/// Payloads as tokens hold them.
fn payloads() -> Vec<(&'static str, Vec<u8>)> {
    let json = |s: &Sealed| serde_json::to_vec(s).unwrap();
    vec![
        ("beat", json(&Sealed::Ctl(Control::Beat(beat(T0 * 1000 + 1))))),
        (
            "summary",
            json(&Sealed::Ctl(Control::Summary(summary(T0 * 1000 + 2)))),
        ),
        (
            "bye",
            json(&Sealed::Ctl(Control::Bye(Bye {
                stamp: T0 * 1000 + 3,
            }))),
        ),
        ("event", json(&Sealed::Ev(event(1, "hello, world")))),
        ("event-2", json(&Sealed::Ev(event(2, "¿qué tal?\n\tok")))),
        (
            "event-unsupported",
            br#"{"p":"ev","seq":1,"lamport":1,"deps":[],"time":1,"name":"bob","body":{"type":"image","url":"x"}}"#
                .to_vec(),
        ),
    ]
}

/// Signaling messages of every kind.
fn messages() -> Vec<(&'static str, Message)> {
    let fx = fixtures::get();
    let tag = fx.chat.key().rendezvous_tag();
    let proofs = fx.chat.key().proof_key();
    let v6: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
    let entry = Entry {
        peer: fx.peer_id(1),
        observed: usable_addrs()[1],
        addrs: vec![usable_addrs()[2], v6],
        proof: proofs.proof(&fx.peer_id(1)),
    };
    let registration = Registration {
        tag,
        addrs: vec![usable_addrs()[0], v6],
        ttl_secs: 60,
        stamp: 7,
        nonce: 11,
        proof: proofs.proof(&fx.peer_id(0)),
    };
    let query = Query {
        tag,
        stamp: 9,
        nonce: 12,
        page: 0,
        proof: proofs.proof(&fx.peer_id(0)),
    };
    vec![
        (
            "register",
            Register::new(fx.peer(0), registration).unwrap().into(),
        ),
        ("unregister", Unregister::new(fx.peer(0), tag, 8).into()),
        ("lookup", Lookup::new(fx.peer(0), query).into()),
        (
            "registered",
            Registered {
                tag,
                ttl_secs: 60,
                nonce: 11,
            }
            .into(),
        ),
        (
            "peers",
            Peers {
                tag,
                nonce: 12,
                page: 0,
                pages: 2,
                entries: vec![
                    entry.clone(),
                    Entry {
                        peer: fx.peer_id(2),
                        observed: v6,
                        addrs: Vec::new(),
                        proof: proofs.proof(&fx.peer_id(2)),
                    },
                ],
            }
            .into(),
        ),
        (
            "arrived",
            Arrived {
                tag,
                nonce: 11,
                entry,
            }
            .into(),
        ),
        (
            "rejected",
            Rejected {
                reason: RejectReason::StaleStamp,
            }
            .into(),
        ),
    ]
}

fn datagrams() -> Vec<(String, Vec<u8>)> {
    let fx = fixtures::get();
    let tag = fx.chat.key().rendezvous_tag();
    let mut out = Vec::new();
    for (name, payload) in payloads() {
        let token = fx.cipher.seal(fx.peer(0), &payload, T0).unwrap();
        let kind = if name.starts_with("event") {
            RoomKind::Ev
        } else {
            RoomKind::Ctl
        };
        let whole = wire::encode_room(kind, tag, fx.peer_id(0), &token, DEFAULT_MTU, 1).unwrap();
        out.push((format!("{name}-whole"), whole[0].clone()));
    }
    let long = Sealed::Ev(event(3, &"long message ".repeat(200)));
    let token = fx
        .cipher
        .seal(fx.peer(0), &serde_json::to_vec(&long).unwrap(), T0)
        .unwrap();
    let frags = wire::encode_room(RoomKind::Ev, tag, fx.peer_id(0), &token, 600, 42).unwrap();
    assert!(frags.len() > 2);
    out.push(("fragment-first".into(), frags[0].clone()));
    out.push(("fragment-last".into(), frags[frags.len() - 1].clone()));
    for (name, msg) in messages() {
        out.push((format!("sig-{name}"), wire::encode_sig(msg)));
    }
    out
}

fn reassembly_runs() -> Vec<(String, Vec<u8>)> {
    use reassembly::{Body, Op};
    let fx = fixtures::get();
    let tag = fx.chat.key().rendezvous_tag();
    let long = Sealed::Ev(event(3, &"long message ".repeat(300)));
    let token = fx
        .cipher
        .seal(fx.peer(0), &serde_json::to_vec(&long).unwrap(), T0)
        .unwrap();
    let frags = wire::encode_room(RoomKind::Ev, tag, fx.peer_id(0), &token, 700, 9).unwrap();
    let pushes: Vec<Op> = frags
        .iter()
        .map(|d| {
            let wire::Datagram::Ev(p) = wire::decode(d).unwrap() else {
                unreachable!()
            };
            Op::Push {
                kind: RoomKind::Ev,
                sender: 1,
                tag: 0,
                frag: p.frag,
                body: Body::Bytes(p.body.into_bytes()),
            }
        })
        .collect();
    let write = |ops: &[Op]| {
        let mut w = Writer::new();
        for op in ops {
            op.write(&mut w);
        }
        w.finish()
    };
    let mut out = vec![("in-order".to_owned(), write(&pushes))];
    let mut reversed = pushes.clone();
    reversed.reverse();
    reversed.insert(1, Op::Wait { ms: 1000 });
    out.push(("reversed-with-waits".into(), write(&reversed)));
    let mut twice: Vec<Op> = pushes.iter().flat_map(|p| [p.clone(), p.clone()]).collect();
    twice.push(Op::Push {
        kind: RoomKind::Ctl,
        sender: 2,
        tag: 1,
        frag: None,
        body: Body::Bytes(b"whole-token".to_vec()),
    });
    out.push(("duplicates-and-whole".into(), write(&twice)));
    let mut timed_out = pushes[..1].to_vec();
    timed_out.push(Op::Wait { ms: 3000 });
    timed_out.extend(pushes[1..].iter().cloned());
    out.push(("timed-out".into(), write(&timed_out)));
    // Nine tokens in progress from one sender (the limit is eight), then
    // the first one's last fragment.
    let mut per_sender: Vec<Op> = (0..9)
        .map(|id| Op::Push {
            kind: RoomKind::Ctl,
            sender: 3,
            tag: 0,
            frag: Some(Frag { id, i: 0, n: 2 }),
            body: Body::Bytes(format!("part-{id}").into_bytes()),
        })
        .collect();
    per_sender.push(Op::Push {
        kind: RoomKind::Ctl,
        sender: 3,
        tag: 0,
        frag: Some(Frag { id: 0, i: 1, n: 2 }),
        body: Body::Bytes(b"end".to_vec()),
    });
    out.push(("per-sender-limit".into(), write(&per_sender)));
    // Large fragments up to the byte limit.
    let big: Vec<Op> = (0..110u32)
        .map(|id| Op::Push {
            kind: RoomKind::Ev,
            sender: id as u8,
            tag: 0,
            frag: Some(Frag { id, i: 0, n: 2 }),
            body: Body::Repeat {
                letter: id as u8,
                len: 80_000,
            },
        })
        .collect();
    out.push(("byte-limit".into(), write(&big)));
    out
}

fn sealed_inputs() -> Vec<(String, Vec<u8>)> {
    let fx = fixtures::get();
    let mut out = Vec::new();
    for (name, payload) in payloads() {
        let token = fx.cipher.seal(fx.peer(0), &payload, T0).unwrap();
        out.push((
            format!("open-{name}"),
            Writer::new().u8(0).raw(token.as_bytes()).finish(),
        ));
        let ev = name.starts_with("event");
        out.push((
            format!("room-{name}"),
            Writer::new()
                .u8(1)
                .u8(0)
                .bool(ev)
                .u8(0)
                .u8(0)
                .u8(172)
                .raw(&payload)
                .finish(),
        ));
        out.push((
            format!("room-{name}-fragments"),
            Writer::new()
                .u8(1)
                .u8(1)
                .bool(ev)
                .u8(1)
                .u8(1)
                .u8(0)
                .raw(&payload)
                .finish(),
        ));
        out.push((
            format!("reseal-{name}"),
            Writer::new()
                .u8(2)
                .u8(2)
                .u64(T0)
                .u16(40)
                .u8(1)
                .raw(&payload)
                .finish(),
        ));
    }
    out.push((
        "open-garbage".into(),
        Writer::new()
            .u8(0)
            .raw(b"gAAAAABhello-not-a-token==")
            .finish(),
    ));
    out
}

fn control_runs() -> Vec<(String, Vec<u8>)> {
    use control::Op;
    let whole = Via { addr: 0, how: 0 };
    let frags = Via { addr: 0, how: 1 };
    let write = |mtu: u8, ops: &[Op]| {
        let mut w = Writer::new();
        w.u8(mtu);
        for op in ops {
            op.write(&mut w);
        }
        w.finish()
    };
    let event = |author: u8, text: &str, via: Via| Op::Event {
        author,
        claim: 0,
        auto: true,
        seq: 1,
        lamport: 1,
        deps: Vec::new(),
        name: author,
        text: text.as_bytes().to_vec(),
        via,
    };
    let hello = |peer: u8| Op::Beat {
        peer,
        claim: 0,
        stamp: Stamp::Next(0),
        name: peer,
        digest: 0,
        hints: vec![(1, 1), (2, 2)],
        hello: true,
        answer: false,
        via: Via { addr: peer, how: 0 },
    };
    // The beat that answers the node's challenge, proving the address.
    let answer = |peer: u8| Op::Beat {
        peer,
        claim: 0,
        stamp: Stamp::Next(0),
        name: peer,
        digest: 0,
        hints: vec![(2, 2)],
        hello: false,
        answer: true,
        via: Via { addr: peer, how: 0 },
    };
    let mut out = vec![(
        "chat".to_owned(),
        write(
            172,
            &[
                hello(0),
                answer(0),
                hello(1),
                answer(1),
                event(0, "hello", whole),
                Op::Wait { ms: 1_100 },
                Op::Say {
                    text: b"hi alice".to_vec(),
                },
                event(0, &"a long message ".repeat(100), frags),
                Op::Summary {
                    peer: 1,
                    claim: 0,
                    stamp: Stamp::Next(5),
                    vv: vec![(0, 2), (1, 0)],
                    reply: true,
                    via: Via { addr: 1, how: 0 },
                },
                Op::Wait { ms: 5_000 },
                Op::Bye {
                    peer: 0,
                    claim: 0,
                    stamp: Stamp::Next(1),
                    via: whole,
                },
                Op::Wait { ms: 20_000 },
            ],
        ),
    )];
    out.push((
        "out-of-order".into(),
        write(
            0,
            &[
                Op::Event {
                    author: 1,
                    claim: 2,
                    auto: false,
                    seq: 2,
                    lamport: 2,
                    deps: vec![(1, 1)],
                    name: 1,
                    text: b"second".to_vec(),
                    via: Via { addr: 2, how: 2 },
                },
                event(1, "first", Via { addr: 2, how: 3 }),
                hello(1),
                answer(1),
                Op::Replay { index: 0 },
                Op::Wait { ms: 60_000 },
            ],
        ),
    ));
    let signaling = [
        Op::Signal {
            what: 0,
            entries: vec![(0, 0, vec![1, 2]), (1, 1, vec![]), (2, 7, vec![])],
            from: 0,
        },
        Op::Wait { ms: 1_000 },
        Op::Signal {
            what: 1,
            entries: vec![(3, 4, vec![5])],
            from: 0,
        },
        Op::Signal {
            what: 3 | (1 << 4),
            entries: Vec::new(),
            from: 0,
        },
        // Answers bound to the node's requests, as its server
        // sends them.
        Op::Signal {
            what: 0x80,
            entries: vec![(0, 0, vec![1]), (1, 1, vec![]), (2, 7, vec![])],
            from: 0,
        },
        Op::Signal {
            what: 0x82,
            entries: Vec::new(),
            from: 0,
        },
        Op::Signal {
            what: 0x81,
            entries: vec![(3, 2, vec![4])],
            from: 0,
        },
        Op::Echo { index: 0, from: 1 },
        Op::Wait { ms: 31_000 },
    ];
    out.push(("signaling".into(), write(50, &signaling)));
    // The same with the server's key pinned (an odd first byte): the
    // bound answers are signed, the others refused.
    out.push(("signaling-pinned".into(), write(51, &signaling)));
    out.push((
        "store-failure-and-rejoin".into(),
        write(
            100,
            &[
                hello(2),
                Op::FailStore,
                Op::Say {
                    text: b"lost?".to_vec(),
                },
                event(2, "after", whole),
                Op::Rejoin,
                Op::Wait { ms: 2_000 },
            ],
        ),
    ));
    let mut payload_ops = Vec::new();
    for (i, (name, payload)) in payloads().into_iter().enumerate() {
        payload_ops.push(Op::Payload {
            peer: i as u8,
            claim: 0,
            ev: name.starts_with("event"),
            payload,
            via: whole,
        });
    }
    out.push(("payloads".into(), write(200, &payload_ops)));
    out.push((
        "raw".into(),
        write(
            0,
            &[Op::Raw {
                from: 3,
                bytes: wire::encode_sig(messages().remove(4).1),
            }],
        ),
    ));
    out
}

fn signaling_runs() -> Vec<(String, Vec<u8>)> {
    use signaling::Op;
    // Two bytes of limits (bit 7 of the second: the server signs its
    // answers), then the ops.
    let write = |limits: u8, more: u8, ops: &[Op]| {
        let mut w = Writer::new();
        w.u8(limits);
        w.u8(more);
        for op in ops {
            op.write(&mut w);
        }
        w.finish()
    };
    let register = |peer: u8, tag: u8| Op::Register {
        peer,
        tag,
        addrs: vec![peer, 4],
        ttl: 60,
        stamp: Stamp::Next(0),
        from: peer,
        tamper: 0,
    };
    let lookup = |peer: u8, tag: u8| Op::Lookup {
        peer,
        tag,
        stamp: Stamp::Next(0),
        from: peer,
        tamper: 0,
    };
    let usual = [
        register(0, 0),
        register(1, 0),
        lookup(2, 0),
        Op::Unregister {
            peer: 0,
            tag: 0,
            stamp: Stamp::Next(0),
            from: 0,
            tamper: 0,
        },
        lookup(2, 0),
        Op::Wait { ms: 8_000 },
        lookup(2, 0),
    ];
    let mut out = vec![
        (
            "register-lookup-unregister".to_owned(),
            write(0xff, 0x7f, &usual),
        ),
        (
            "register-lookup-unregister-signed".to_owned(),
            write(0xff, 0xff, &usual),
        ),
    ];
    out.push((
        "refusals".into(),
        write(
            0,
            0x80,
            &[
                register(0, 0),
                register(1, 1),
                register(2, 0),
                Op::Register {
                    peer: 3,
                    tag: 2,
                    addrs: vec![6, 7, 8, 9, 10],
                    ttl: 0,
                    stamp: Stamp::Same,
                    from: 3,
                    tamper: 1,
                },
                Op::Register {
                    peer: 0,
                    tag: 0,
                    addrs: vec![],
                    ttl: 600,
                    stamp: Stamp::Same,
                    from: 0,
                    tamper: 0,
                },
                Op::Lookup {
                    peer: 1,
                    tag: 0,
                    stamp: Stamp::Same,
                    from: 1,
                    tamper: 3,
                },
            ],
        ),
    ));
    let mut raw = Vec::new();
    for (_, msg) in messages() {
        raw.push(Op::Raw {
            from: 1,
            bytes: wire::encode_sig(msg),
        });
    }
    out.push(("raw-messages".into(), write(0x55, 0x55, &raw)));
    out
}

fn relay_frames() -> Vec<(String, Vec<u8>)> {
    let datagram = wire::encode_sig(messages().remove(2).1);
    let v6: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
    let frames = [
        (
            "datagram-v4",
            Frame::Datagram {
                addr: usable_addrs()[0],
                payload: datagram.clone(),
            },
        ),
        (
            "datagram-v6",
            Frame::Datagram {
                addr: v6,
                payload: datagram,
            },
        ),
        (
            "datagram-empty",
            Frame::Datagram {
                addr: usable_addrs()[3],
                payload: Vec::new(),
            },
        ),
        (
            "bound-v4",
            Frame::Bound {
                addr: usable_addrs()[2],
            },
        ),
        ("bound-v6", Frame::Bound { addr: v6 }),
    ];
    frames
        .into_iter()
        .map(|(name, f)| (name.to_owned(), f.encode().unwrap()))
        .collect()
}

fn chat_ids() -> Vec<(String, Vec<u8>)> {
    let fx = fixtures::get();
    let room = RoomId::from_bytes([3; 16]);
    let key = RoomKey::from_bytes([4; 32]);
    let v6: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
    let mut eight: Vec<SocketAddr> = usable_addrs().to_vec();
    eight.push(v6);
    eight.push("8.8.8.8:53".parse().unwrap());
    let ids = [
        ("fixture", fx.chat.clone()),
        (
            "bare",
            ChatId::without_bootstrap(room, key.clone(), RoomName::new("general").unwrap()),
        ),
        (
            "eight-addresses",
            ChatId::new(
                room,
                key.clone(),
                RoomName::new("ж-комната").unwrap(),
                eight,
            )
            .unwrap(),
        ),
        (
            "long-name",
            ChatId::new(
                room,
                key.clone(),
                RoomName::new(&"n".repeat(64)).unwrap(),
                vec![v6],
            )
            .unwrap(),
        ),
        (
            "quota",
            ChatId::without_bootstrap(room, key, RoomName::new("bench").unwrap())
                .with_quota(p2pchat_core::quota::Quota {
                    events_per_s: 100_000,
                    burst_events: 1_000_000,
                    bytes_per_s: 1 << 30,
                    burst_bytes: 1 << 30,
                    total_bytes: 1 << 40,
                })
                .unwrap(),
        ),
    ];
    let mut out = Vec::new();
    for (name, id) in ids {
        let text = id.to_string();
        out.push((
            format!("text-{name}"),
            Writer::new().u8(0).raw(text.as_bytes()).finish(),
        ));
        let bytes = bs58::decode(&text["p2pchat:".len()..]).into_vec().unwrap();
        let body = &bytes[..bytes.len() - 4];
        out.push((
            format!("body-{name}"),
            Writer::new().u8(1).raw(body).finish(),
        ));
    }
    out.push((
        "text-pasted".into(),
        Writer::new()
            .u8(0)
            .raw(format!("  P2PCHAT:{}\n", &fx.chat.to_string()["p2pchat:".len()..]).as_bytes())
            .finish(),
    ));
    out
}
