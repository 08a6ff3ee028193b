//! `control`: control messages, and a whole node fed a sequence of
//! datagrams.

use p2pchat_core::clock::{EventId, VersionVector};
use p2pchat_core::history::Body;
use p2pchat_core::membership::{Beat, Bye, Hint};
use p2pchat_core::replication::Summary;
use p2pchat_core::room::MembershipProof;
use p2pchat_core::signaling::{
    Arrived, Entry, Lookup, Message, Peers, Query, Registered, RejectReason, Rejected,
};
use p2pchat_core::wire::{self, Control, EventWire, RoomKind, Sealed};
use p2pchat_core::RendezvousTag;

use crate::fixtures::{self, any_addr, server, source_addr, user_name, PEERS, T0};
use crate::input::{Input, Writer};
use crate::node::{Harness, Via};
use crate::sealed::check_payload;

/// Most ops per run.
const MAX_OPS: usize = 48;

/// A control stamp.
#[derive(Clone, Copy, Debug)]
pub enum Stamp {
    /// Above the sealer's last one by `1 + n`.
    Next(u16),
    /// This value.
    Raw(u64),
    /// The sealer's last one again (a replay).
    Same,
}

/// One step of a run of [`control`]. Peers, names and addresses are
/// indices into [`crate::fixtures`].
#[derive(Clone, Debug)]
pub enum Op {
    /// A heartbeat sealed by `peer`, claimed to come from `claim` (0: the
    /// sealer; else `peer_id(claim - 1)`).
    Beat {
        peer: u8,
        claim: u8,
        stamp: Stamp,
        name: u8,
        digest: u64,
        /// (peer, address) picks.
        hints: Vec<(u8, u8)>,
        /// Says hello, and challenges the node.
        hello: bool,
        /// Answers the last challenge the node sent to `via`'s address.
        answer: bool,
        via: Via,
    },
    /// A replication summary.
    Summary {
        peer: u8,
        claim: u8,
        stamp: Stamp,
        /// (author pick, sequence number).
        vv: Vec<(u8, u64)>,
        reply: bool,
        via: Via,
    },
    /// A goodbye.
    Bye {
        peer: u8,
        claim: u8,
        stamp: Stamp,
        via: Via,
    },
    /// An event sealed by `author`. With `auto`, its sequence number,
    /// dependencies and Lamport time are the ones the node's history
    /// expects next from that author (so it is delivered); otherwise the
    /// given ones. An empty text is a body of a kind this version does not
    /// know.
    Event {
        author: u8,
        claim: u8,
        auto: bool,
        seq: u64,
        lamport: u64,
        /// (author pick, sequence number).
        deps: Vec<(u8, u64)>,
        name: u8,
        text: Vec<u8>,
        via: Via,
    },
    /// Any payload, sealed by `peer`, as an event (`ev`) or a control
    /// message.
    Payload {
        peer: u8,
        claim: u8,
        ev: bool,
        payload: Vec<u8>,
        via: Via,
    },
    /// Any bytes, from a source address.
    Raw { from: u8, bytes: Vec<u8> },
    /// A signaling message (bits 0–2 of `what`: peers, arrived,
    /// registered, rejected, a lookup; bit 3: about another room; bit 7:
    /// bound to the node's latest request, with valid membership proofs),
    /// from the server (`from` 0) or another source.
    Signal {
        what: u8,
        /// (peer, observed address, addresses) picks.
        entries: Vec<(u8, u8, Vec<u8>)>,
        from: u8,
    },
    /// Time passes.
    Wait { ms: u16 },
    /// The user says something.
    Say { text: Vec<u8> },
    /// A datagram fed earlier, again.
    Replay { index: u8 },
    /// A datagram the node sent, fed back to it.
    Echo { index: u8, from: u8 },
    /// The next batch of records fails to store.
    FailStore,
    /// The node leaves the room and joins it again.
    Rejoin,
}

const OPS: u8 = 13;

impl Op {
    /// Appends the op in the form [`control`] reads.
    pub fn write(&self, w: &mut Writer) {
        fn stamp(w: &mut Writer, s: Stamp) {
            match s {
                Stamp::Next(n) => w.u8(0).u64(u64::from(n)),
                Stamp::Raw(v) => w.u8(1).u64(v),
                Stamp::Same => w.u8(2).u64(0),
            };
        }
        fn via(w: &mut Writer, v: Via) {
            w.u8(v.addr).u8(v.how);
        }
        match self {
            Op::Beat {
                peer,
                claim,
                stamp: s,
                name,
                digest,
                hints,
                hello,
                answer,
                via: v,
            } => {
                w.u8(0).u8(*peer).u8(*claim);
                stamp(w, *s);
                w.u8(*name).u64(*digest).u8(hints.len() as u8);
                for (p, a) in hints {
                    w.u8(*p).u8(*a);
                }
                w.bool(*hello).bool(*answer);
                via(w, *v);
            }
            Op::Summary {
                peer,
                claim,
                stamp: s,
                vv,
                reply,
                via: v,
            } => {
                w.u8(1).u8(*peer).u8(*claim);
                stamp(w, *s);
                w.u8(vv.len() as u8);
                for (a, seq) in vv {
                    w.u8(*a).u64(*seq);
                }
                w.bool(*reply);
                via(w, *v);
            }
            Op::Bye {
                peer,
                claim,
                stamp: s,
                via: v,
            } => {
                w.u8(2).u8(*peer).u8(*claim);
                stamp(w, *s);
                via(w, *v);
            }
            Op::Event {
                author,
                claim,
                auto,
                seq,
                lamport,
                deps,
                name,
                text,
                via: v,
            } => {
                w.u8(3)
                    .u8(*author)
                    .u8(*claim)
                    .bool(*auto)
                    .u64(*seq)
                    .u64(*lamport)
                    .u8(deps.len() as u8);
                for (a, seq) in deps {
                    w.u8(*a).u64(*seq);
                }
                w.u8(*name).bytes(text);
                via(w, *v);
            }
            Op::Payload {
                peer,
                claim,
                ev,
                payload,
                via: v,
            } => {
                w.u8(4).u8(*peer).u8(*claim).bool(*ev).bytes(payload);
                via(w, *v);
            }
            Op::Raw { from, bytes } => {
                w.u8(5).u8(*from).bytes(bytes);
            }
            Op::Signal {
                what,
                entries,
                from,
            } => {
                w.u8(6).u8(*what).u8(entries.len() as u8);
                for (p, o, addrs) in entries {
                    w.u8(*p).u8(*o).bytes(addrs);
                }
                w.u8(*from);
            }
            Op::Wait { ms } => {
                w.u8(7).u16(*ms);
            }
            Op::Say { text } => {
                w.u8(8).bytes(text);
            }
            Op::Replay { index } => {
                w.u8(9).u8(*index);
            }
            Op::Echo { index, from } => {
                w.u8(10).u8(*index).u8(*from);
            }
            Op::FailStore => {
                w.u8(11);
            }
            Op::Rejoin => {
                w.u8(12);
            }
        }
    }

    fn read(input: &mut Input<'_>) -> Op {
        fn stamp(input: &mut Input<'_>) -> Stamp {
            let mode = input.u8();
            let value = input.u64();
            match mode % 3 {
                0 => Stamp::Next(value as u16),
                1 => Stamp::Raw(value),
                _ => Stamp::Same,
            }
        }
        fn via(input: &mut Input<'_>) -> Via {
            Via {
                addr: input.u8(),
                how: input.u8(),
            }
        }
        match input.u8() % OPS {
            0 => Op::Beat {
                peer: input.u8(),
                claim: input.u8(),
                stamp: stamp(input),
                name: input.u8(),
                digest: input.u64(),
                hints: {
                    let n = input.below(40);
                    (0..n).map(|_| (input.u8(), input.u8())).collect()
                },
                hello: input.bool(),
                answer: input.bool(),
                via: via(input),
            },
            1 => Op::Summary {
                peer: input.u8(),
                claim: input.u8(),
                stamp: stamp(input),
                vv: {
                    let n = input.u8();
                    (0..n).map(|_| (input.u8(), input.u64())).collect()
                },
                reply: input.bool(),
                via: via(input),
            },
            2 => Op::Bye {
                peer: input.u8(),
                claim: input.u8(),
                stamp: stamp(input),
                via: via(input),
            },
            3 => Op::Event {
                author: input.u8(),
                claim: input.u8(),
                auto: input.bool(),
                seq: input.u64(),
                lamport: input.u64(),
                deps: {
                    let n = input.below(40);
                    (0..n).map(|_| (input.u8(), input.u64())).collect()
                },
                name: input.u8(),
                text: input.bytes().to_vec(),
                via: via(input),
            },
            4 => Op::Payload {
                peer: input.u8(),
                claim: input.u8(),
                ev: input.bool(),
                payload: input.bytes().to_vec(),
                via: via(input),
            },
            5 => Op::Raw {
                from: input.u8(),
                bytes: input.bytes().to_vec(),
            },
            6 => Op::Signal {
                what: input.u8(),
                entries: {
                    let n = input.below(20);
                    (0..n)
                        .map(|_| (input.u8(), input.u8(), input.bytes().to_vec()))
                        .collect()
                },
                from: input.u8(),
            },
            7 => Op::Wait { ms: input.u16() },
            8 => Op::Say {
                text: input.bytes().to_vec(),
            },
            9 => Op::Replay { index: input.u8() },
            10 => Op::Echo {
                index: input.u8(),
                from: input.u8(),
            },
            11 => Op::FailStore,
            _ => Op::Rejoin,
        }
    }
}

/// A run: a node joins the fixtures' room (its MTU from the first byte),
/// then takes the ops the input describes, drained like a host drains it.
/// Every check of the node harness holds after every op (datagrams it
/// sends fit its MTU, go to usable addresses, decode, open and verify;
/// reassembly, history and members stay bounded; the history stays in
/// canonical order); at the end the node is rebuilt from its store and
/// shows the same history. Every payload is also parsed on its own as
/// `wire::Sealed` and `wire::Control` (see [`check_payload`]).
pub fn control(data: &[u8]) {
    let mut input = Input::new(data);
    let first = input.u8();
    let mtu = 512 + usize::from(first) * 4;
    // An odd first byte: the node pins the server's key.
    let pinned = first & 1 == 1;
    let mut run = Run {
        h: Harness::new(mtu, pinned),
        stamps: [T0 * 1000; PEERS + 1],
    };
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = Op::read(&mut input);
        run.apply(op);
    }
    run.h.finish();
}

struct Run {
    h: Harness,
    /// Each sealer's last control stamp.
    stamps: [u64; PEERS + 1],
}

impl Run {
    fn stamp(&mut self, peer: u8, stamp: Stamp) -> u64 {
        let last = &mut self.stamps[usize::from(peer) % (PEERS + 1)];
        match stamp {
            Stamp::Next(n) => *last = last.saturating_add(1 + u64::from(n)),
            Stamp::Raw(v) => *last = v,
            Stamp::Same => {}
        }
        *last
    }

    /// Seals `payload` as `peer` and delivers it as `kind`.
    fn send(&mut self, peer: u8, claim: u8, kind: RoomKind, payload: &[u8], via: Via) {
        let fx = fixtures::get();
        let sealer = fx.sealer(usize::from(peer));
        let sender = match claim {
            0 => sealer.peer_id(),
            c => fx.peer_id(usize::from(c - 1)),
        };
        let token = self.h.seal(sealer, payload);
        self.h.deliver(kind, sender, &token, via);
    }

    fn control(&mut self, peer: u8, claim: u8, control: Control, via: Via) {
        let payload = serde_json::to_vec(&Sealed::Ctl(control)).unwrap();
        self.send(peer, claim, RoomKind::Ctl, &payload, via);
    }

    fn apply(&mut self, op: Op) {
        let fx = fixtures::get();
        match op {
            Op::Beat {
                peer,
                claim,
                stamp,
                name,
                digest,
                hints,
                hello,
                answer,
                via,
            } => {
                let source = source_addr(usize::from(via.addr));
                let response = if answer {
                    self.h.challenges.get(&source).copied()
                } else {
                    None
                };
                let beat = Beat {
                    stamp: self.stamp(peer, stamp),
                    name: user_name(usize::from(name)),
                    digest,
                    hints: hints
                        .iter()
                        .map(|(p, a)| Hint {
                            peer: fx.peer_id(usize::from(*p)),
                            addr: any_addr(usize::from(*a)),
                        })
                        .collect(),
                    hello,
                    challenge: hello.then_some(digest.rotate_left(17)),
                    response,
                };
                self.control(peer, claim, Control::Beat(beat), via);
            }
            Op::Summary {
                peer,
                claim,
                stamp,
                vv,
                reply,
                via,
            } => {
                let mut v = VersionVector::new();
                for (a, seq) in vv {
                    v.set(fx.peer_id(usize::from(a)), seq);
                }
                // Heads that match nothing: every author the checker holds
                // at that number answers with its version.
                let heads = v.iter().map(|(_, seq)| seq.rotate_left(7)).collect();
                // An answer's count of events pushed before it, any value
                // (a liar's too), from the numbers the input chose.
                let pushed = v.iter().fold(0u64, |acc, (_, seq)| acc ^ seq) as u32;
                let summary = Summary {
                    stamp: self.stamp(peer, stamp),
                    vv: v,
                    reply,
                    heads,
                    pushed: if reply { 0 } else { pushed },
                };
                self.control(peer, claim, Control::Summary(summary), via);
            }
            Op::Bye {
                peer,
                claim,
                stamp,
                via,
            } => {
                let bye = Bye {
                    stamp: self.stamp(peer, stamp),
                };
                self.control(peer, claim, Control::Bye(bye), via);
            }
            Op::Event {
                author,
                claim,
                auto,
                seq,
                lamport,
                deps,
                name,
                text,
                via,
            } => {
                let author_id = fx.sealer(usize::from(author)).peer_id();
                let mut deps: Vec<EventId> = deps
                    .iter()
                    .map(|(a, s)| EventId::new(fx.peer_id(usize::from(*a)), *s))
                    .collect();
                let (mut seq, mut lamport) = (seq, lamport);
                if auto {
                    if let Some((s, d, l)) = self
                        .h
                        .node
                        .history(&fx.room())
                        .and_then(|h| h.next_for(&author_id))
                    {
                        (seq, deps, lamport) = (s, d, l);
                    }
                }
                let body = if text.is_empty() {
                    Body::Unsupported
                } else {
                    Body::Text {
                        text: String::from_utf8_lossy(&text).into_owned(),
                    }
                };
                // The hash chain to the versions the node holds (zeros
                // where it holds none, as a careless author would write).
                let (prev, refs) = self
                    .h
                    .node
                    .history(&fx.room())
                    .and_then(|h| h.commitments(&author_id, seq, &deps))
                    .unwrap_or_else(|| {
                        let zero = p2pchat_core::equivocation::Digest::default();
                        ((seq > 1).then_some(zero), vec![zero; deps.len()])
                    });
                let ev = EventWire {
                    seq,
                    lamport,
                    deps,
                    time: self.h.now,
                    name: user_name(usize::from(name)),
                    body,
                    prev,
                    refs,
                };
                let payload = serde_json::to_vec(&Sealed::Ev(ev)).unwrap();
                self.send(author, claim, RoomKind::Ev, &payload, via);
            }
            Op::Payload {
                peer,
                claim,
                ev,
                payload,
                via,
            } => {
                check_payload(&payload);
                let kind = if ev { RoomKind::Ev } else { RoomKind::Ctl };
                self.send(peer, claim, kind, &payload, via);
            }
            Op::Raw { from, bytes } => self.h.feed(source_addr(usize::from(from)), &bytes),
            Op::Signal {
                what,
                entries,
                from,
            } => {
                let tag = if what & 8 == 0 {
                    Harness::tag()
                } else {
                    RendezvousTag::from_bytes([0x5a; 32])
                };
                // Bit 7: an answer bound to the node's own request, as its
                // server sends it: the nonce of the node's latest lookup
                // (peers) or registration (the others), entries with valid
                // membership proofs, signed with the server's key.
                // Otherwise nonces and proofs are made up and there is no
                // signature: a fuzzed answer cannot echo the node's random
                // numbers, and must be dropped as unbound (or, when the
                // node pins the server's key, as unsigned).
                let bound = what & 0x80 != 0;
                let proof_key = fx.chat.key().proof_key();
                let proof = |p: u8| {
                    if bound {
                        proof_key.proof(&fx.peer_id(usize::from(p)))
                    } else {
                        MembershipProof::from_bytes([p; 16])
                    }
                };
                let mut entries: Vec<Entry> = entries
                    .iter()
                    .map(|(p, o, addrs)| Entry {
                        peer: fx.peer_id(usize::from(*p)),
                        observed: any_addr(usize::from(*o)),
                        addrs: addrs.iter().map(|a| any_addr(usize::from(*a))).collect(),
                        proof: proof(*p),
                    })
                    .collect();
                let nonce = match (bound, what % 8) {
                    (true, 0 | 5) => self.h.lookup_nonce,
                    (true, _) => self.h.register_nonce,
                    (false, _) => u64::from(what),
                };
                let msg = match what % 8 {
                    0 | 5 => Message::Peers(Peers {
                        tag,
                        nonce,
                        page: 0,
                        pages: 1,
                        entries,
                    }),
                    1 | 6 => Message::Arrived(Arrived {
                        tag,
                        nonce,
                        entry: if entries.is_empty() {
                            Entry {
                                peer: fx.peer_id(0),
                                observed: any_addr(0),
                                addrs: Vec::new(),
                                proof: proof(0),
                            }
                        } else {
                            entries.swap_remove(0)
                        },
                    }),
                    2 => Message::Registered(Registered {
                        tag,
                        ttl_secs: u32::from(what & 0x7f),
                        nonce,
                    }),
                    3 => Message::Rejected(Rejected {
                        reason: [
                            RejectReason::BadSignature,
                            RejectReason::StaleStamp,
                            RejectReason::BadTtl,
                            RejectReason::TooManyAddrs,
                            RejectReason::BadAddr,
                            RejectReason::RoomFull,
                            RejectReason::ServerFull,
                            RejectReason::RateLimited,
                            RejectReason::SourceFull,
                        ][usize::from(what >> 4) % 9],
                    }),
                    _ => Message::Lookup(Lookup::new(
                        fx.peer(0),
                        Query {
                            tag,
                            stamp: self.h.now,
                            nonce,
                            page: 0,
                            proof: MembershipProof::from_bytes([0; 16]),
                        },
                    )),
                };
                let from = if from == 0 {
                    server()
                } else {
                    source_addr(usize::from(from))
                };
                let bytes = if bound {
                    wire::encode_signed_answer(msg, &fx.server)
                } else {
                    wire::encode_sig(msg)
                };
                // Refused for its signature, or before that (too large a
                // datagram, say): dropped and counted either way.
                let refused = |h: &Harness| h.node.counters().dropped();
                let before = refused(&self.h);
                self.h.feed(from, &bytes);
                if self.h.pinned() && !bound && from == server() {
                    assert_eq!(
                        refused(&self.h),
                        before + 1,
                        "an unsigned answer from a pinned server was not refused"
                    );
                }
            }
            Op::Wait { ms } => self.h.wait(u64::from(ms)),
            Op::Say { text } => {
                let text = String::from_utf8_lossy(&text);
                let _ = self.h.node.send_text(self.h.now, &fx.room(), &text);
                self.h.drain(false);
            }
            Op::Replay { index } => {
                if !self.h.inputs.is_empty() {
                    let (from, bytes) =
                        self.h.inputs[usize::from(index) % self.h.inputs.len()].clone();
                    self.h.feed(from, &bytes);
                }
            }
            Op::Echo { index, from } => {
                if !self.h.sent.is_empty() {
                    let bytes = self.h.sent[usize::from(index) % self.h.sent.len()].clone();
                    self.h.feed(source_addr(usize::from(from)), &bytes);
                }
            }
            Op::FailStore => self.h.fail_next = true,
            Op::Rejoin => {
                let _ = self.h.node.leave_room(self.h.now, &fx.room());
                self.h.drain(false);
                self.h.join();
            }
        }
    }
}
