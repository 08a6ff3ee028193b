//! `reassembly`: a sequence of fragments fed to `wire::Reassembler::push`.

use std::collections::HashMap;

use p2pchat_core::seal::MAX_TOKEN_LEN;
use p2pchat_core::wire::{
    Frag, FragDrop, Reassembled, Reassembler, RoomKind, RoomPacket, MAX_PARTIALS,
    MAX_REASSEMBLY_BYTES, REASSEMBLY_TIMEOUT_MS, VERSION,
};
use p2pchat_core::{PeerId, RendezvousTag};

use crate::fixtures::T0;
use crate::input::{Input, Writer};

/// Most ops per run.
const MAX_OPS: usize = 4096;

/// One op of the input, as [`reassembly`] reads it (and [`Op::write`]
/// writes it, for seeds).
#[derive(Clone, Debug)]
pub enum Op {
    /// Time passes by `ms`, then `Reassembler::expire`.
    Wait { ms: u16 },
    /// A fragment (or a whole token when `frag` is `None`).
    Push {
        kind: RoomKind,
        sender: u8,
        tag: u8,
        frag: Option<Frag>,
        body: Body,
    },
}

/// A fragment's slice of token.
#[derive(Clone, Debug)]
pub enum Body {
    /// These bytes (as text).
    Bytes(Vec<u8>),
    /// `len` copies of one letter: a cheap way to big fragments.
    Repeat { letter: u8, len: u32 },
}

impl Op {
    /// Appends the op in the form [`reassembly`] reads.
    pub fn write(&self, w: &mut Writer) {
        match self {
            Op::Wait { ms } => {
                w.u8(7).u16(*ms);
            }
            Op::Push {
                kind,
                sender,
                tag,
                frag,
                body,
            } => {
                let mut code = 0u8;
                if *kind == RoomKind::Ev {
                    code |= 8;
                }
                if frag.is_some() {
                    code |= 16;
                }
                if matches!(body, Body::Repeat { .. }) {
                    code |= 32;
                }
                w.u8(code).u8(*sender).u8(*tag);
                if let Some(f) = frag {
                    w.u32(f.id).u16(f.i).u16(f.n);
                }
                match body {
                    Body::Bytes(b) => w.bytes(b),
                    Body::Repeat { letter, len } => w.u8(*letter).u32(*len),
                };
            }
        }
    }
}

fn read_op(input: &mut Input<'_>) -> Op {
    let code = input.u8();
    if code % 8 == 7 {
        return Op::Wait { ms: input.u16() };
    }
    let kind = if code & 8 != 0 {
        RoomKind::Ev
    } else {
        RoomKind::Ctl
    };
    let sender = input.u8();
    let tag = input.u8();
    let frag = (code & 16 != 0).then(|| Frag {
        id: input.u32(),
        i: input.u16(),
        n: input.u16(),
    });
    let body = if code & 32 != 0 {
        Body::Repeat {
            letter: input.u8(),
            len: input.u32(),
        }
    } else {
        Body::Bytes(input.bytes().to_vec())
    };
    Op::Push {
        kind,
        sender,
        tag,
        frag,
        body,
    }
}

/// Feeds the fragments the input describes to one reassembler, with time
/// passing in between, and checks after every step:
///
/// - tokens in progress and bytes held never exceed [`MAX_PARTIALS`] and
///   [`MAX_REASSEMBLY_BYTES`];
/// - a complete token is exactly its fragments' slices in index order,
///   each the last one accepted for that place, no longer than
///   [`MAX_TOKEN_LEN`], with the kind, tag and sender of its fragments;
/// - after `expire(now)`, nothing left times out before `now`.
///
/// Packets that `wire::decode` would refuse (`RoomPacket::check`) are not
/// offered: `push` takes only decoded packets.
pub fn reassembly(data: &[u8]) {
    let mut input = Input::new(data);
    let mut r = Reassembler::new();
    let mut now = T0;
    // (sender, frag id, index) -> the slice last accepted there.
    let mut accepted: HashMap<(PeerId, u32, u16), Piece> = HashMap::new();
    // Bytes of repeated letters left to push: enough to go past the byte
    // limit, not so many that every run spends its time in page faults.
    let mut budget = MAX_REASSEMBLY_BYTES + 2 * MAX_TOKEN_LEN;
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        match read_op(&mut input) {
            Op::Wait { ms } => {
                now += u64::from(ms) * 4;
                r.expire(now);
                if let Some(at) = r.next_expiry() {
                    assert!(at > now, "expired at {at}, now {now}");
                    assert!(at <= now + REASSEMBLY_TIMEOUT_MS + 1);
                }
            }
            Op::Push {
                kind,
                sender,
                tag,
                frag,
                body,
            } => {
                let piece = match body {
                    Body::Bytes(b) => Piece::Text(String::from_utf8_lossy(&b).into_owned()),
                    Body::Repeat { letter, len } => {
                        let mut len = (len as usize) % (MAX_TOKEN_LEN + 2);
                        if len > budget {
                            len = (len % 64).min(budget);
                        }
                        budget -= len;
                        Piece::Repeat(b'A' + letter % 26, len)
                    }
                };
                let body = piece.body();
                let from = PeerId::from_bytes([sender % 12; 32]);
                let tag = RendezvousTag::from_bytes([tag % 2; 32]);
                let packet = RoomPacket {
                    v: VERSION,
                    tag,
                    from,
                    frag,
                    body,
                };
                if packet.check().is_err() {
                    continue;
                }
                let before = r.bytes();
                let result = r.push(now, kind, packet);
                match (&result, frag) {
                    (Reassembled::Complete { token, .. }, None) => assert!(piece.is(token)),
                    (
                        Reassembled::Complete {
                            kind: k,
                            tag: t,
                            from: f,
                            token,
                        },
                        Some(frag),
                    ) => {
                        assert_eq!((*k, *t, *f), (kind, tag, from));
                        accepted.insert((from, frag.id, frag.i), piece);
                        let mut rest = token.as_str();
                        for i in 0..frag.n {
                            let part = accepted
                                .remove(&(from, frag.id, i))
                                .expect("a complete token's fragments were all accepted");
                            let (head, tail) =
                                rest.split_at_checked(part.len()).unwrap_or_else(|| {
                                    panic!("fragment {i} is missing from the token")
                                });
                            assert!(part.is(head), "fragments put together wrongly");
                            rest = tail;
                        }
                        assert!(
                            rest.is_empty(),
                            "a complete token is longer than its fragments"
                        );
                        assert!(token.len() <= MAX_TOKEN_LEN);
                        assert!(r.bytes() <= before, "a complete token left bytes behind");
                    }
                    (Reassembled::Incomplete, Some(frag)) => {
                        accepted.insert((from, frag.id, frag.i), piece);
                    }
                    (Reassembled::Incomplete, None) => panic!("a whole token is never incomplete"),
                    (Reassembled::Dropped(why), frag) => {
                        assert!(frag.is_some(), "a whole token is never dropped");
                        if *why == FragDrop::TooLarge {
                            assert!(piece.len() <= MAX_TOKEN_LEN);
                        }
                    }
                }
                assert!(r.len() <= MAX_PARTIALS, "{} partial tokens", r.len());
                assert!(
                    r.bytes() <= MAX_REASSEMBLY_BYTES,
                    "{} bytes held",
                    r.bytes()
                );
                if r.is_empty() {
                    assert_eq!(r.bytes(), 0);
                }
            }
        }
    }
}

/// A fragment's slice as the check remembers it: a copy, or (for the big
/// ones) the letter and the count.
enum Piece {
    Text(String),
    Repeat(u8, usize),
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Text(t) => t.len(),
            Piece::Repeat(_, n) => *n,
        }
    }

    fn body(&self) -> String {
        match self {
            Piece::Text(t) => t.clone(),
            Piece::Repeat(letter, n) => char::from(*letter).to_string().repeat(*n),
        }
    }

    fn is(&self, s: &str) -> bool {
        match self {
            Piece::Text(t) => t == s,
            // Length and the letter at both ends and in the middle: enough
            // to tell pieces apart, without a loop over every byte.
            Piece::Repeat(letter, n) => {
                let b = s.as_bytes();
                b.len() == *n && (*n == 0 || [b[0], b[n / 2], b[n - 1]] == [*letter; 3])
            }
        }
    }
}
