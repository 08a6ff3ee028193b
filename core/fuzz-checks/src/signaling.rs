//! `signaling`: signaling messages (`signaling::Message` decoding and
//! `verify`), and the server's registry (`rendezvous::Registry::handle`),
//! which decodes every datagram it is sent.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use p2pchat_core::rendezvous::{Limits, Registry, MAX_REPLY_LEN, MAX_REQUEST_LEN};
use p2pchat_core::room::MembershipProof;
use p2pchat_core::signaling::{
    Entry, Lookup, Message, Query, Register, Registration, Unregister, MAX_ENTRIES_PER_REPLY,
};
use p2pchat_core::wire::{self, Datagram, WireError};
use p2pchat_core::{PeerId, RendezvousTag};

use crate::control::Stamp;
use crate::fixtures::{self, any_addr, source_addr, PEERS, T0};
use crate::input::{Input, Writer};

/// Most ops per run.
const MAX_OPS: usize = 32;

/// One step of a run of [`signaling`]. Peers (who sign), tags and
/// addresses are indices into small fixed sets.
#[derive(Clone, Debug)]
pub enum Op {
    /// A registration (`tamper`: 0 as signed; 1 a signature byte changed;
    /// 2 the stamp changed after signing; 3 another peer id).
    Register {
        peer: u8,
        tag: u8,
        addrs: Vec<u8>,
        ttl: u16,
        stamp: Stamp,
        from: u8,
        tamper: u8,
    },
    /// An unregistration.
    Unregister {
        peer: u8,
        tag: u8,
        stamp: Stamp,
        from: u8,
        tamper: u8,
    },
    /// A lookup.
    Lookup {
        peer: u8,
        tag: u8,
        stamp: Stamp,
        from: u8,
        tamper: u8,
    },
    /// Any bytes.
    Raw { from: u8, bytes: Vec<u8> },
    /// Time passes, then `Registry::expire`.
    Wait { ms: u16 },
}

impl Op {
    /// Appends the op in the form [`signaling`] reads.
    pub fn write(&self, w: &mut Writer) {
        fn stamp(w: &mut Writer, s: Stamp) {
            match s {
                Stamp::Next(n) => w.u8(0).u64(u64::from(n)),
                Stamp::Raw(v) => w.u8(1).u64(v),
                Stamp::Same => w.u8(2).u64(0),
            };
        }
        match self {
            Op::Register {
                peer,
                tag,
                addrs,
                ttl,
                stamp: s,
                from,
                tamper,
            } => {
                w.u8(0).u8(*peer).u8(*tag).bytes(addrs).u16(*ttl);
                stamp(w, *s);
                w.u8(*from).u8(*tamper);
            }
            Op::Unregister {
                peer,
                tag,
                stamp: s,
                from,
                tamper,
            }
            | Op::Lookup {
                peer,
                tag,
                stamp: s,
                from,
                tamper,
            } => {
                let code = if matches!(self, Op::Unregister { .. }) {
                    1
                } else {
                    2
                };
                w.u8(code).u8(*peer).u8(*tag);
                stamp(w, *s);
                w.u8(*from).u8(*tamper);
            }
            Op::Raw { from, bytes } => {
                w.u8(3).u8(*from).bytes(bytes);
            }
            Op::Wait { ms } => {
                w.u8(4).u16(*ms);
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
        match input.u8() % 5 {
            0 => Op::Register {
                peer: input.u8(),
                tag: input.u8(),
                addrs: input.bytes().to_vec(),
                ttl: input.u16(),
                stamp: stamp(input),
                from: input.u8(),
                tamper: input.u8(),
            },
            code @ (1 | 2) => {
                let (peer, tag, stamp, from, tamper) =
                    (input.u8(), input.u8(), stamp(input), input.u8(), input.u8());
                if code == 1 {
                    Op::Unregister {
                        peer,
                        tag,
                        stamp,
                        from,
                        tamper,
                    }
                } else {
                    Op::Lookup {
                        peer,
                        tag,
                        stamp,
                        from,
                        tamper,
                    }
                }
            }
            3 => Op::Raw {
                from: input.u8(),
                bytes: input.bytes().to_vec(),
            },
            _ => Op::Wait { ms: input.u16() },
        }
    }
}

fn tag(i: u8) -> RendezvousTag {
    RendezvousTag::from_bytes([i % 3; 32])
}

/// The membership proof peer `i` registers with (any 16 bytes do: the
/// server cannot check proofs, it only hands them out).
fn proof(i: u8) -> MembershipProof {
    MembershipProof::from_bytes([i; 16])
}

/// What the registry should hold: every `(tag, peer)` it acknowledged and
/// did not remove, as its replies tell (and as its eviction count says,
/// when it made room for a newcomer).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    observed: SocketAddr,
    addrs: Vec<SocketAddr>,
    expires: u64,
    nonce: u64,
    proof: MembershipProof,
}

/// A run: a registry with small limits (from the first byte) takes the
/// requests the input describes, signed by fixed identities or tampered
/// with, and any bytes. After every datagram:
///
/// - the fuzzer's own bytes, as a datagram or a bare message: a `Message`
///   that parses serialises back to the same value, and `verify` never
///   panics;
/// - every reply fits [`MAX_REPLY_LEN`], decodes, passes the client's
///   checks (`Message::verify`), is a server-to-client message, and is
///   signed with the server's key if it has one (bit 7 of the second
///   byte), not signed otherwise;
/// - a register is answered once, to its sender: `registered` (then the
///   entry is held, with the observed address, the addresses and the TTL
///   it asked for) or `rejected` (nothing changes); an unregister removes
///   the entry unless rejected;
/// - a lookup lists exactly the live entries of its tag other than the
///   asker (at most [`MAX_ENTRIES_PER_REPLY`], then a subset of them), and
///   each listed entry is told about the asker, at its observed address;
/// - the registry holds exactly the entries acknowledged and not removed
///   or expired, and never more than its limits.
pub fn signaling(data: &[u8]) {
    let mut input = Input::new(data);
    let b = input.u8();
    let c = input.u8();
    let limits = Limits {
        max_tags: 1 + usize::from(b % 4),
        max_per_tag: 1 + usize::from((b >> 2) % 4),
        max_entries: 1 + usize::from((b >> 4) % 8),
        max_per_source: 1 + usize::from(c % 8),
        max_per_source_per_tag: 1 + usize::from((c >> 3) % 4),
    };
    let mut registry = Registry::new(limits, [c; 32]);
    let key = (c & 0x80 != 0).then(|| fixtures::get().server.peer_id());
    if key.is_some() {
        let server = &fixtures::get().server;
        registry.sign_answers(server.clone());
    }
    let mut run = Run {
        registry,
        key,
        limits,
        now: T0,
        model: BTreeMap::new(),
        stamps: [T0 * 1000; PEERS + 1],
        handled: 0,
    };
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = Op::read(&mut input);
        run.apply(op);
    }
}

struct Run {
    registry: Registry,
    /// The key the registry signs its answers with, if any.
    key: Option<PeerId>,
    limits: Limits,
    now: u64,
    model: BTreeMap<(RendezvousTag, PeerId), Slot>,
    stamps: [u64; PEERS + 1],
    handled: u64,
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

    fn apply(&mut self, op: Op) {
        let fx = fixtures::get();
        let (from, msg) = match op {
            Op::Register {
                peer,
                tag: t,
                addrs,
                ttl,
                stamp,
                from,
                tamper,
            } => {
                let identity = fx.sealer(usize::from(peer));
                let addrs: Vec<SocketAddr> =
                    addrs.iter().map(|a| any_addr(usize::from(*a))).collect();
                let stamp = self.stamp(peer, stamp);
                let ttl = u32::from(ttl);
                let registration = Registration {
                    tag: tag(t),
                    addrs: addrs.clone(),
                    ttl_secs: ttl,
                    stamp,
                    nonce: stamp ^ 0x6e6f6e6365,
                    proof: proof(peer),
                };
                let mut r = Register::new(identity, registration).unwrap_or(Register {
                    tag: tag(t),
                    peer: identity.peer_id(),
                    addrs,
                    ttl_secs: ttl,
                    stamp,
                    nonce: 0,
                    proof: proof(peer),
                    sig: [0; 64],
                });
                tamper_with(tamper, &mut r.sig, &mut r.stamp, &mut r.peer);
                (from, Message::Register(r))
            }
            Op::Unregister {
                peer,
                tag: t,
                stamp,
                from,
                tamper,
            } => {
                let identity = fx.sealer(usize::from(peer));
                let mut u = Unregister::new(identity, tag(t), self.stamp(peer, stamp));
                tamper_with(tamper, &mut u.sig, &mut u.stamp, &mut u.peer);
                (from, Message::Unregister(u))
            }
            Op::Lookup {
                peer,
                tag: t,
                stamp,
                from,
                tamper,
            } => {
                let identity = fx.sealer(usize::from(peer));
                let query = Query {
                    tag: tag(t),
                    stamp: self.stamp(peer, stamp),
                    nonce: u64::from(tamper),
                    page: (tamper >> 2) % 4,
                    proof: proof(peer),
                };
                let mut l = Lookup::new(identity, query);
                tamper_with(tamper, &mut l.sig, &mut l.stamp, &mut l.peer);
                (from, Message::Lookup(l))
            }
            Op::Raw { from, bytes } => {
                self.handle(source_addr(usize::from(from)), &bytes, true);
                return;
            }
            Op::Wait { ms } => {
                self.now += u64::from(ms) * 8;
                self.registry.expire(self.now);
                let now = self.now;
                self.model.retain(|_, slot| slot.expires > now);
                self.check_size();
                return;
            }
        };
        self.handle(
            source_addr(usize::from(from)),
            &wire::encode_sig(msg),
            false,
        );
    }

    /// Feeds `bytes` to the registry; `raw`: the fuzzer's own bytes
    /// (requests built here are the encoder's, whose round trip the other
    /// targets check).
    fn handle(&mut self, from: SocketAddr, bytes: &[u8], raw: bool) {
        // Decoded once here (what the registry decodes is its own affair).
        let decoded = wire::decode(bytes);
        if raw {
            check_message(bytes, &decoded);
        }
        let evicted = self.registry.stats().evicted;
        let replies = self.registry.handle(self.now, from, bytes);
        // Entries the registry gave up to make room: they are no longer
        // held, and exactly as many as it counted.
        let gone: Vec<(RendezvousTag, PeerId)> = self
            .model
            .keys()
            .filter(|(tag, peer)| !self.registry.holds(tag, peer))
            .copied()
            .collect();
        // The entry the request itself names: re-registered (moved), or
        // removed by an unregister; neither is an eviction.
        let named_now = match &decoded {
            Ok(Datagram::Sig(s)) => match &s.msg {
                Message::Register(r) => Some((r.tag, r.peer)),
                Message::Unregister(u) => Some((u.tag, u.peer)),
                _ => None,
            },
            _ => None,
        };
        let evicted_now = self.registry.stats().evicted - evicted;
        let gone_count = gone.iter().filter(|key| Some(**key) != named_now).count() as u64;
        assert!(gone_count <= evicted_now, "entries vanished: {gone:?}");
        for key in gone {
            if Some(key) != named_now {
                self.model.remove(&key);
            }
        }
        self.handled += 1;
        assert_eq!(self.registry.stats().received, self.handled);
        let mut answers = Vec::new();
        for (to, reply) in &replies {
            assert!(
                reply.len() <= MAX_REPLY_LEN,
                "a reply of {} bytes",
                reply.len()
            );
            let Ok(Datagram::Sig(s)) = wire::decode(reply) else {
                panic!("the server sent something that is not signaling");
            };
            s.msg
                .verify()
                .expect("the server's replies pass the client's checks");
            match &self.key {
                Some(key) => s
                    .msg
                    .verify_answer(s.sig.as_ref(), key)
                    .expect("a server with a key signs every answer"),
                None => assert_eq!(s.sig, None, "a server without a key signs nothing"),
            }
            assert!(matches!(
                s.msg,
                Message::Registered(_)
                    | Message::Peers(_)
                    | Message::Arrived(_)
                    | Message::Rejected(_)
            ));
            answers.push((*to, s.msg));
        }
        let request = match decoded {
            Ok(Datagram::Sig(s)) if bytes.len() <= MAX_REQUEST_LEN => s.msg,
            _ => {
                assert!(replies.is_empty(), "answered a datagram that is no request");
                return self.check_size();
            }
        };
        let rejected = answers.iter().any(|(to, m)| {
            let r = matches!(m, Message::Rejected(_));
            if r {
                assert_eq!(*to, from, "a rejection goes to the sender");
            }
            r
        });
        if rejected {
            assert_eq!(answers.len(), 1, "a rejection comes alone");
        }
        match request {
            Message::Register(r) => {
                assert_eq!(answers.len(), 1, "a register gets one answer");
                if !rejected {
                    let (to, Message::Registered(ack)) = &answers[0] else {
                        panic!("a register answered with {:?}", answers[0]);
                    };
                    assert_eq!(*to, from);
                    assert_eq!(
                        (ack.tag, ack.ttl_secs, ack.nonce),
                        (r.tag, r.ttl_secs, r.nonce)
                    );
                    assert!(
                        r.verify().is_ok(),
                        "registered a request that does not verify"
                    );
                    let slot = Slot {
                        observed: from,
                        addrs: r.addrs,
                        expires: self.now + u64::from(r.ttl_secs) * 1000,
                        nonce: r.nonce,
                        proof: r.proof,
                    };
                    self.model.insert((r.tag, r.peer), slot);
                }
            }
            Message::Unregister(u) => {
                if !rejected {
                    assert!(answers.is_empty(), "an unregister is not answered");
                    assert!(
                        u.verify().is_ok(),
                        "unregistered on a request that does not verify"
                    );
                    self.model.remove(&(u.tag, u.peer));
                }
            }
            Message::Lookup(l) => {
                if !rejected {
                    assert!(l.verify().is_ok(), "answered a lookup that does not verify");
                    self.check_lookup(&l, from, &answers);
                }
            }
            _ => assert!(replies.is_empty(), "answered a server-to-client message"),
        }
        self.check_size();
    }

    fn check_lookup(&self, l: &Lookup, from: SocketAddr, answers: &[(SocketAddr, Message)]) {
        let mut listed: Vec<Entry> = Vec::new();
        let mut notices: Vec<(SocketAddr, u64, Entry)> = Vec::new();
        let mut pages = Vec::new();
        for (to, m) in answers {
            match m {
                Message::Peers(p) => {
                    assert_eq!(*to, from);
                    assert_eq!((p.tag, p.nonce), (l.tag, l.nonce));
                    pages.push((p.page, p.pages));
                    listed.extend(p.entries.iter().cloned());
                }
                Message::Arrived(a) => {
                    assert_eq!(a.tag, l.tag);
                    notices.push((*to, a.nonce, a.entry.clone()));
                }
                other => panic!("a lookup answered with {other:?}"),
            }
        }
        assert!(!pages.is_empty(), "a lookup is always answered with peers");
        pages.dedup();
        assert_eq!(pages.len(), 1, "one page per lookup: {pages:?}");
        let (page, count) = pages[0];
        let live: Vec<(Entry, u64)> = self
            .model
            .iter()
            .filter(|((tag, peer), slot)| {
                *tag == l.tag && *peer != l.peer && slot.expires > self.now
            })
            .map(|((_, peer), slot)| {
                let entry = Entry {
                    peer: *peer,
                    observed: slot.observed,
                    addrs: slot.addrs.clone(),
                    proof: slot.proof,
                };
                (entry, slot.nonce)
            })
            .collect();
        let per_page = MAX_ENTRIES_PER_REPLY;
        let expected_pages = live.len().div_ceil(per_page).max(1);
        assert_eq!(usize::from(count), expected_pages, "pages announced");
        assert_eq!(
            usize::from(page),
            usize::from(l.page).min(expected_pages - 1),
            "the page asked for, or the last one"
        );
        assert!(
            listed.iter().all(|e| e.peer != l.peer),
            "the asker was listed"
        );
        assert!(
            listed
                .iter()
                .all(|e| live.iter().any(|(held, _)| held == e)),
            "listed an entry not held"
        );
        let on_page = live
            .len()
            .saturating_sub(usize::from(page) * per_page)
            .min(per_page);
        assert_eq!(listed.len(), on_page);
        let asker = Entry {
            peer: l.peer,
            observed: from,
            addrs: self
                .model
                .get(&(l.tag, l.peer))
                .map(|s| s.addrs.clone())
                .unwrap_or_default(),
            proof: l.proof,
        };
        let mut told: Vec<(SocketAddr, u64)> = notices.iter().map(|(to, n, _)| (*to, *n)).collect();
        let mut expected: Vec<(SocketAddr, u64)> = listed
            .iter()
            .map(|e| {
                let nonce = live
                    .iter()
                    .find(|(held, _)| held == e)
                    .map_or(0, |(_, n)| *n);
                (e.observed, nonce)
            })
            .collect();
        told.sort();
        expected.sort();
        assert_eq!(
            told, expected,
            "every listed entry is told of the asker, with its own registration's nonce"
        );
        assert!(notices.iter().all(|(_, _, e)| *e == asker));
    }

    fn check_size(&self) {
        assert_eq!(self.registry.entries(), self.model.len());
        for (_, slot) in self.model.iter() {
            let source = slot.observed.ip().to_canonical();
            assert!(self.registry.entries_of(source) <= self.limits.max_per_source);
        }
        let mut tags: Vec<RendezvousTag> = self.model.keys().map(|(t, _)| *t).collect();
        tags.dedup();
        assert_eq!(self.registry.tags(), tags.len());
        assert!(self.registry.entries() <= self.limits.max_entries);
        assert!(self.registry.tags() <= self.limits.max_tags);
    }
}

/// A signaling message, inside a datagram (`decoded`, from
/// `wire::decode(bytes)`) or, when `bytes` is not a datagram, alone: what
/// parses serialises back to the same value, and checking it (limits,
/// signature) never panics.
pub fn check_message(bytes: &[u8], decoded: &Result<Datagram, WireError>) {
    let parsed;
    let msg = match decoded {
        Ok(Datagram::Sig(s)) => &s.msg,
        Ok(_) => return,
        Err(_) => match serde_json::from_slice::<Message>(bytes) {
            Ok(m) => {
                parsed = m;
                &parsed
            }
            Err(_) => return,
        },
    };
    let again = serde_json::to_vec(msg).unwrap();
    assert_eq!(&serde_json::from_slice::<Message>(&again).unwrap(), msg);
    let _ = (msg.verify(), msg.tag());
}

/// What `tamper` does to a signed request: nothing (0), flip a bit of its
/// signature (1), bump its stamp (2) or swap its peer id (3), so that the
/// signature no longer holds.
fn tamper_with(tamper: u8, sig: &mut [u8; 64], stamp: &mut u64, peer: &mut PeerId) {
    match tamper % 4 {
        1 => sig[usize::from(tamper >> 2) % 64] ^= 1,
        2 => *stamp = stamp.wrapping_add(1),
        3 => *peer = fixtures::get().peer_id(usize::from(tamper >> 2)),
        _ => {}
    }
}
