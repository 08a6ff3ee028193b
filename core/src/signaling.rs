//! Signaling: the messages peers and the rendezvous server exchange.
//!
//! A small UDP signaling server helps the members of a room find each other,
//! and does nothing else. This module defines what both sides say; the
//! server and the peer engine both use it, and neither reads a clock or
//! opens a socket here: stamps are passed in.
//!
//! # Who sends what
//!
//! A peer (client) sends three requests, each about one room, named by its
//! [`RendezvousTag`]:
//!
//! - [`Register`]: "I, `peer`, am in room `tag`, reachable at these
//!   addresses, for the next `ttl_secs` seconds". The server keeps the entry
//!   as soft state and answers [`Registered`]. Peers refresh before the TTL
//!   runs out (at most [`MAX_TTL_SECS`], by default [`DEFAULT_TTL_SECS`]);
//!   an entry that is not refreshed simply expires.
//! - [`Unregister`]: "forget my entry for `tag`" (a polite leave; expiry
//!   does the same, later).
//! - [`Lookup`]: "who else is in `tag`? (page `page`)". The server answers
//!   [`Peers`] with one page of the live entries, never including the
//!   asker: at most [`MAX_ENTRIES_PER_REPLY`] per page, in an order keyed by
//!   a secret of the server (so nobody can grind peer ids that sort first
//!   and hide the others), with the number of pages, so that a client can
//!   page through them all. It sends [`Arrived`] to each entry listed, so
//!   that both sides start sending to each other at once (which is also
//!   what opens NAT mappings in both directions).
//!
//! Any request may instead be answered with [`Rejected`] and a
//! [`RejectReason`].
//!
//! Each [`Entry`] carries two kinds of address: `observed`, where the server
//! saw the datagram come from (the address a NAT shows to the world), and
//! `addrs`, up to [`MAX_ADDRS`] addresses the peer reports itself (its LAN
//! addresses, say). Self-reported addresses must be plain unicast addresses
//! someone could send to: not unspecified, not multicast or broadcast, not
//! port 0, and, for IPv6, without flow info or a scope id (both mean
//! something only on the sender's host, and neither is covered by the
//! signature).
//!
//! # Answers bound to requests, entries bound to the room
//!
//! An answer is taken only if it echoes an unpredictable `nonce` of the
//! client's own request: [`Peers`] the nonce of the [`Lookup`] it answers,
//! [`Registered`] and [`Arrived`] the nonce of the client's latest
//! [`Register`] (which the server keeps with the entry). Someone who does not
//! see the client's traffic cannot forge an answer that is taken, even from
//! the server's address.
//!
//! Every entry carries the peer's [`MembershipProof`]: an HMAC of its peer
//! id under a key derived from the room key. The server cannot check it;
//! members do, and never use an entry whose proof does not hold — so fake
//! entries, made by anyone without the room key, never make a member send
//! a datagram anywhere.
//!
//! # What is signed, and why
//!
//! Every request is signed with the peer's identity key (Ed25519), and the
//! server checks the signature against the `peer` id in the request before
//! acting on it. Without this, anyone could remove or overwrite another
//! peer's entry, or register under someone else's id. [`Lookup`] is signed
//! too, because a lookup makes the server announce the asker to the room's
//! existing entries ([`Arrived`]): nobody may announce a forged peer id.
//!
//! The signature covers a fixed binary encoding, not the JSON (so it does
//! not depend on how a JSON library orders or escapes anything):
//!
//! ```text
//! register   = "p2pchat/v2/signal/register\0"   | tag (32) | peer (32) | stamp u64 BE
//!              | ttl_secs u32 BE | nonce u64 BE | proof (16) | address count u8 | addresses
//! unregister = "p2pchat/v2/signal/unregister\0" | tag (32) | peer (32) | stamp u64 BE
//! lookup     = "p2pchat/v2/signal/lookup\0"     | tag (32) | peer (32) | stamp u64 BE
//!              | nonce u64 BE | page u8 | proof (16)
//! address    = 4 | IPv4 octets (4)  | port u16 BE
//!            | 6 | IPv6 octets (16) | port u16 BE
//! ```
//!
//! The domain string names the kind of request, so a signature on one kind
//! can never be passed off as another.
//!
//! **Answers, signed where configured.** A server started with a key signs
//! every answer it sends ([`answer_bytes`], in the datagram's envelope, see
//! [`crate::wire::SigPacket`]); a node that pins that key for the server's
//! address ([`ServerSpec`]) takes no answer from that address without a
//! valid signature, so a process squatting the server's port, or anyone
//! on the path, cannot answer in its place — not even with a real answer
//! whose nonce or entries it changed. Unpinned servers' answers are taken
//! unsigned (bound by their nonces only). Either way the server is trusted
//! for availability only: a lying server can hide peers or hand out wrong
//! addresses, but it cannot join a room or speak in one, because
//! everything said inside a room is sealed with the room key and signed by
//! its author (see [`crate::seal`]), and an entry it makes up fails its
//! membership proof.
//!
//! ```text
//! registered = "p2pchat/v2/signal/registered\0" | tag (32) | ttl_secs u32 BE | nonce u64 BE
//! peers      = "p2pchat/v2/signal/peers\0"      | tag (32) | nonce u64 BE | page u8 | pages u8
//!              | entry count u8 | entries
//! arrived    = "p2pchat/v2/signal/arrived\0"    | tag (32) | nonce u64 BE | entry
//! rejected   = "p2pchat/v2/signal/rejected\0"   | reason u8
//! entry      = peer (32) | observed address | proof (16) | address count u8 | addresses
//! ```
//!
//! # Replay protection: the stamp
//!
//! Each request carries a `stamp`, a number the peer makes strictly
//! increasing across all the signed requests it sends (the engine uses
//! wall-clock milliseconds times 1,000, bumped by one when that has not
//! moved on).
//! The server remembers the last stamp it accepted for each `(tag, peer)`
//! and refuses ([`RejectReason::StaleStamp`]) a [`Register`] or
//! [`Unregister`] whose stamp is not greater ([`stamp_is_fresh`]). So a
//! captured request replayed later, from any address, can neither undo a
//! newer registration nor remove an entry nor move it to the replayer's
//! address. A server applies the same rule to a [`Lookup`] when it has a
//! last stamp for that `(tag, peer)`; since the peer's stamps increase
//! across all kinds of request, this never refuses an honest peer.
//!
//! A server forgets a `(tag, peer)` some time after its entry expires
//! (memory is bounded). A request captured before that could then be
//! replayed once; the worst it does is announce the real peer, with its own
//! signed addresses, at the replayer's observed address until the TTL runs
//! out. Peers authenticate each other inside the room, so this wastes a few
//! datagrams and grants nothing.
//!
//! # What the server learns, and what it never learns
//!
//! The server learns, for each tag: which peer ids are present, from which
//! addresses, when and how often. It never learns a room's key, id or name
//! (a tag is a one-way hash of the key), a username, or anything anyone
//! says: none of those is in any message here, and knowing a tag is not
//! enough to join or read a room.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::identity::{Identity, PeerId, VerifyError, SIGNATURE_LEN};
use crate::room::{MembershipProof, RendezvousTag};

/// Most self-reported addresses in a [`Register`] (and in an [`Entry`]).
pub const MAX_ADDRS: usize = 4;
/// Longest registration the server keeps without a refresh, in seconds.
pub const MAX_TTL_SECS: u32 = 300;
/// The TTL peers ask for unless configured otherwise, in seconds.
pub const DEFAULT_TTL_SECS: u32 = 60;
/// Most entries in one page of a [`Peers`] answer.
pub const MAX_ENTRIES_PER_REPLY: usize = 16;
/// Most pages a [`Peers`] answer may announce (1,024 entries).
pub const MAX_PAGES: u8 = 64;

const REGISTER_DOMAIN: &[u8] = b"p2pchat/v2/signal/register\0";
const UNREGISTER_DOMAIN: &[u8] = b"p2pchat/v2/signal/unregister\0";
const LOOKUP_DOMAIN: &[u8] = b"p2pchat/v2/signal/lookup\0";
const REGISTERED_DOMAIN: &[u8] = b"p2pchat/v2/signal/registered\0";
const PEERS_DOMAIN: &[u8] = b"p2pchat/v2/signal/peers\0";
const ARRIVED_DOMAIN: &[u8] = b"p2pchat/v2/signal/arrived\0";
const REJECTED_DOMAIN: &[u8] = b"p2pchat/v2/signal/rejected\0";

/// Why a signaling message is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// More than [`MAX_ADDRS`] self-reported addresses.
    #[error("{count} self-reported addresses, at most {max} are allowed")]
    TooManyAddrs { count: usize, max: usize },
    /// A self-reported address nobody could send to, or one carrying
    /// host-local IPv6 details (flow info, scope id).
    #[error("{addr} is not a plain unicast address with a port")]
    BadAddr { addr: SocketAddr },
    /// A TTL outside `1..=`[`MAX_TTL_SECS`].
    #[error("a TTL of {ttl_secs} s is outside 1..={max} s")]
    BadTtl { ttl_secs: u32, max: u32 },
    /// More than [`MAX_ENTRIES_PER_REPLY`] entries in a reply.
    #[error("{count} entries in one reply, at most {max} are allowed")]
    TooManyEntries { count: usize, max: usize },
    /// A page number outside the pages announced, or too many pages.
    #[error("page {page} of {pages} is not a page there can be")]
    BadPage { page: u8, pages: u8 },
    /// The peer id is not a valid Ed25519 public key.
    #[error("the peer id is not a valid public key")]
    BadPeerId,
    /// The signature is not the peer's signature of this request.
    #[error("the signature does not match the request and peer id")]
    BadSignature,
    /// An answer from a server whose key is pinned carries no signature,
    /// or not that key's, or the message is not an answer.
    #[error("the answer is not signed by the server's pinned key")]
    BadServerSignature,
}

impl From<VerifyError> for SignalError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::PeerId(_) => SignalError::BadPeerId,
            VerifyError::BadSignature => SignalError::BadSignature,
        }
    }
}

/// Whether a request with `stamp` is newer than the last one accepted from
/// the same `(tag, peer)` (`None`: none accepted, or forgotten). Stamps must
/// strictly increase, so an equal stamp is a replay.
pub fn stamp_is_fresh(last: Option<u64>, stamp: u64) -> bool {
    match last {
        None => true,
        Some(last) => stamp > last,
    }
}

/// Every signaling datagram, either way. JSON with a `"t"` field naming the
/// kind: `{"t":"register", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Message {
    /// Client → server: add or refresh my entry.
    Register(Register),
    /// Client → server: remove my entry.
    Unregister(Unregister),
    /// Client → server: who is there?
    Lookup(Lookup),
    /// Server → client: registration accepted.
    Registered(Registered),
    /// Server → client: the answer to a lookup.
    Peers(Peers),
    /// Server → client: someone looked up a tag you are registered under.
    Arrived(Arrived),
    /// Server → client: a request was refused.
    Rejected(Rejected),
}

impl Message {
    /// The rendezvous tag the message is about; `None` for [`Rejected`].
    pub fn tag(&self) -> Option<&RendezvousTag> {
        match self {
            Message::Register(m) => Some(&m.tag),
            Message::Unregister(m) => Some(&m.tag),
            Message::Lookup(m) => Some(&m.tag),
            Message::Registered(m) => Some(&m.tag),
            Message::Peers(m) => Some(&m.tag),
            Message::Arrived(m) => Some(&m.tag),
            Message::Rejected(_) => None,
        }
    }

    /// Checks a received message: the limits and signature of a request,
    /// the limits of a reply. Stamp freshness needs the receiver's state
    /// and is checked separately ([`stamp_is_fresh`]).
    pub fn verify(&self) -> Result<(), SignalError> {
        match self {
            Message::Register(m) => m.verify(),
            Message::Unregister(m) => m.verify(),
            Message::Lookup(m) => m.verify(),
            Message::Registered(m) => check_ttl(m.ttl_secs),
            Message::Peers(m) => m.verify(),
            Message::Arrived(m) => m.entry.verify(),
            Message::Rejected(_) => Ok(()),
        }
    }

    /// The bytes a server's signature of this answer covers (see the module
    /// docs); `None` for a request. Entries and addresses must be within
    /// their limits ([`Message::verify`]) for the counts to fit a byte.
    pub fn answer_bytes(&self) -> Option<Vec<u8>> {
        let mut out;
        match self {
            Message::Registered(m) => {
                out = REGISTERED_DOMAIN.to_vec();
                out.extend_from_slice(m.tag.as_bytes());
                out.extend_from_slice(&m.ttl_secs.to_be_bytes());
                out.extend_from_slice(&m.nonce.to_be_bytes());
            }
            Message::Peers(m) => {
                out = PEERS_DOMAIN.to_vec();
                out.extend_from_slice(m.tag.as_bytes());
                out.extend_from_slice(&m.nonce.to_be_bytes());
                out.push(m.page);
                out.push(m.pages);
                out.push(u8::try_from(m.entries.len()).unwrap_or(u8::MAX));
                for entry in &m.entries {
                    entry.push_bytes(&mut out);
                }
            }
            Message::Arrived(m) => {
                out = ARRIVED_DOMAIN.to_vec();
                out.extend_from_slice(m.tag.as_bytes());
                out.extend_from_slice(&m.nonce.to_be_bytes());
                m.entry.push_bytes(&mut out);
            }
            Message::Rejected(m) => {
                out = REJECTED_DOMAIN.to_vec();
                out.push(m.reason as u8);
            }
            Message::Register(_) | Message::Unregister(_) | Message::Lookup(_) => return None,
        }
        Some(out)
    }

    /// A server's signature of this answer; `None` for a request.
    pub fn sign_answer(&self, server: &Identity) -> Option<[u8; SIGNATURE_LEN]> {
        self.answer_bytes().map(|bytes| server.sign(&bytes))
    }

    /// Checks that this is an answer and `sig` is `server`'s signature of
    /// it.
    pub fn verify_answer(
        &self,
        sig: Option<&[u8; SIGNATURE_LEN]>,
        server: &PeerId,
    ) -> Result<(), SignalError> {
        let (Some(bytes), Some(sig)) = (self.answer_bytes(), sig) else {
            return Err(SignalError::BadServerSignature);
        };
        server
            .verify(&bytes, sig)
            .map_err(|_| SignalError::BadServerSignature)
    }
}

/// A signaling server as configured: its address, and the key its answers
/// must be signed with, if pinned. Written `host:port` or `host:port=KEY`
/// (the key as 64 hex digits, what the server prints when it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSpec {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The key its answers are signed with, if pinned.
    pub key: Option<PeerId>,
}

/// Why a [`ServerSpec`] does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerSpecError {
    /// The address part is not `ip:port`.
    #[error("`{0}` is not an address of the form ip:port")]
    Addr(String),
    /// The key part is not a public key.
    #[error("`{0}` is not a server key (64 hex digits)")]
    Key(String),
}

impl FromStr for ServerSpec {
    type Err = ServerSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, key) = match s.split_once('=') {
            Some((addr, key)) => (addr, Some(key)),
            None => (s, None),
        };
        let addr = addr
            .trim()
            .parse()
            .map_err(|_| ServerSpecError::Addr(addr.to_owned()))?;
        let key = key
            .map(|k| {
                k.trim()
                    .parse::<PeerId>()
                    .map_err(|_| ServerSpecError::Key(k.to_owned()))
            })
            .transpose()?;
        Ok(ServerSpec { addr, key })
    }
}

impl fmt::Display for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}={key}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// Client → server: register (or refresh) `peer` under `tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub tag: RendezvousTag,
    pub peer: PeerId,
    /// Self-reported addresses, at most [`MAX_ADDRS`].
    pub addrs: Vec<SocketAddr>,
    /// Seconds to keep the entry without a refresh, `1..=`[`MAX_TTL_SECS`].
    pub ttl_secs: u32,
    /// Strictly increasing per peer; see the module docs.
    pub stamp: u64,
    /// Unpredictable; echoed in [`Registered`] and in every [`Arrived`]
    /// sent to this peer while this registration lasts.
    pub nonce: u64,
    /// The peer's membership proof, handed out with its entry.
    pub proof: MembershipProof,
    #[serde(with = "sig_hex")]
    pub sig: [u8; SIGNATURE_LEN],
}

/// What a [`Register`] says, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The room's tag.
    pub tag: RendezvousTag,
    /// Self-reported addresses, at most [`MAX_ADDRS`].
    pub addrs: Vec<SocketAddr>,
    /// Seconds to keep the entry.
    pub ttl_secs: u32,
    /// The request's stamp.
    pub stamp: u64,
    /// The request's nonce.
    pub nonce: u64,
    /// The peer's membership proof.
    pub proof: MembershipProof,
}

impl Register {
    /// Builds and signs a registration, refusing one that breaks a limit.
    pub fn new(identity: &Identity, r: Registration) -> Result<Register, SignalError> {
        check_addrs(&r.addrs)?;
        check_ttl(r.ttl_secs)?;
        let peer = identity.peer_id();
        let mut register = Register {
            tag: r.tag,
            peer,
            addrs: r.addrs,
            ttl_secs: r.ttl_secs,
            stamp: r.stamp,
            nonce: r.nonce,
            proof: r.proof,
            sig: [0; SIGNATURE_LEN],
        };
        register.sig = identity.sign(&register.signed_bytes());
        Ok(register)
    }

    /// Checks the limits and that `sig` is `peer`'s signature.
    pub fn verify(&self) -> Result<(), SignalError> {
        check_addrs(&self.addrs)?;
        check_ttl(self.ttl_secs)?;
        Ok(self.peer.verify(&self.signed_bytes(), &self.sig)?)
    }

    /// The bytes the signature covers. `addrs` has been checked to hold at
    /// most [`MAX_ADDRS`] addresses, so its length fits the count byte.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut out = plain_bytes(REGISTER_DOMAIN, &self.tag, &self.peer, self.stamp);
        out.extend_from_slice(&self.ttl_secs.to_be_bytes());
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(self.proof.as_bytes());
        out.push(u8::try_from(self.addrs.len()).unwrap_or(u8::MAX));
        for addr in &self.addrs {
            push_addr(&mut out, addr);
        }
        out
    }
}

/// Client → server: remove `peer`'s entry under `tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unregister {
    pub tag: RendezvousTag,
    pub peer: PeerId,
    /// Strictly increasing per peer; see the module docs.
    pub stamp: u64,
    #[serde(with = "sig_hex")]
    pub sig: [u8; SIGNATURE_LEN],
}

impl Unregister {
    /// Builds and signs a request to remove this identity's entry.
    pub fn new(identity: &Identity, tag: RendezvousTag, stamp: u64) -> Unregister {
        let peer = identity.peer_id();
        let sig = identity.sign(&plain_bytes(UNREGISTER_DOMAIN, &tag, &peer, stamp));
        Unregister {
            tag,
            peer,
            stamp,
            sig,
        }
    }

    /// Checks that `sig` is `peer`'s signature.
    pub fn verify(&self) -> Result<(), SignalError> {
        let bytes = plain_bytes(UNREGISTER_DOMAIN, &self.tag, &self.peer, self.stamp);
        Ok(self.peer.verify(&bytes, &self.sig)?)
    }
}

/// Client → server: list page `page` of the entries under `tag`, and
/// announce `peer` to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    pub tag: RendezvousTag,
    pub peer: PeerId,
    /// Strictly increasing per peer; see the module docs.
    pub stamp: u64,
    /// Unpredictable; echoed in the [`Peers`] answer.
    pub nonce: u64,
    /// Which page of the entries, from 0.
    pub page: u8,
    /// The asker's membership proof, handed to the entries it is announced
    /// to.
    pub proof: MembershipProof,
    #[serde(with = "sig_hex")]
    pub sig: [u8; SIGNATURE_LEN],
}

/// What a [`Lookup`] asks, before it is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// The room's tag.
    pub tag: RendezvousTag,
    /// The request's stamp.
    pub stamp: u64,
    /// The request's nonce.
    pub nonce: u64,
    /// Which page.
    pub page: u8,
    /// The asker's membership proof.
    pub proof: MembershipProof,
}

impl Lookup {
    /// Builds and signs a lookup.
    pub fn new(identity: &Identity, q: Query) -> Lookup {
        let mut lookup = Lookup {
            tag: q.tag,
            peer: identity.peer_id(),
            stamp: q.stamp,
            nonce: q.nonce,
            page: q.page,
            proof: q.proof,
            sig: [0; SIGNATURE_LEN],
        };
        lookup.sig = identity.sign(&lookup.signed_bytes());
        lookup
    }

    /// Checks that `sig` is `peer`'s signature.
    pub fn verify(&self) -> Result<(), SignalError> {
        Ok(self.peer.verify(&self.signed_bytes(), &self.sig)?)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut out = plain_bytes(LOOKUP_DOMAIN, &self.tag, &self.peer, self.stamp);
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.push(self.page);
        out.extend_from_slice(self.proof.as_bytes());
        out
    }
}

/// Server → client: the registration under `tag` is kept for `ttl_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registered {
    pub tag: RendezvousTag,
    pub ttl_secs: u32,
    /// The registration's nonce.
    pub nonce: u64,
}

/// Server → client: one page of the live entries under `tag`, without the
/// asker. A page may come in several datagrams, each a `Peers` with the
/// same nonce and page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peers {
    pub tag: RendezvousTag,
    /// The lookup's nonce.
    pub nonce: u64,
    /// This page, from 0.
    pub page: u8,
    /// How many pages there are now (at least 1).
    pub pages: u8,
    /// At most [`MAX_ENTRIES_PER_REPLY`].
    pub entries: Vec<Entry>,
}

impl Peers {
    /// Checks the limits on pages, entries and their addresses.
    pub fn verify(&self) -> Result<(), SignalError> {
        if self.pages == 0 || self.pages > MAX_PAGES || self.page >= self.pages {
            return Err(SignalError::BadPage {
                page: self.page,
                pages: self.pages,
            });
        }
        if self.entries.len() > MAX_ENTRIES_PER_REPLY {
            return Err(SignalError::TooManyEntries {
                count: self.entries.len(),
                max: MAX_ENTRIES_PER_REPLY,
            });
        }
        self.entries.iter().try_for_each(Entry::verify)
    }
}

/// Server → client: `entry` just looked up `tag`, under which you are
/// registered; send to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrived {
    pub tag: RendezvousTag,
    /// The nonce of the recipient's registration.
    pub nonce: u64,
    pub entry: Entry,
}

/// Server → client: a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejected {
    pub reason: RejectReason,
}

/// Why the server refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The signature (or peer id) did not verify.
    BadSignature,
    /// The stamp was not greater than the last one accepted.
    StaleStamp,
    /// The TTL was outside `1..=`[`MAX_TTL_SECS`].
    BadTtl,
    /// More than [`MAX_ADDRS`] self-reported addresses.
    TooManyAddrs,
    /// A self-reported address is not a plain unicast address.
    BadAddr,
    /// The tag already holds as many entries as the server keeps per tag.
    RoomFull,
    /// The server holds as many entries as it keeps in all.
    ServerFull,
    /// The source address already holds as many entries as the server
    /// keeps for one source (per tag or in all).
    SourceFull,
    /// Too many requests from this source; try again later.
    RateLimited,
}

/// One peer under a tag, as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub peer: PeerId,
    /// Where the server saw the peer's datagram come from.
    pub observed: SocketAddr,
    /// What the peer reported itself, at most [`MAX_ADDRS`].
    pub addrs: Vec<SocketAddr>,
    /// The peer's membership proof, as it registered it.
    pub proof: MembershipProof,
}

impl Entry {
    /// Checks the limit on self-reported addresses.
    pub fn verify(&self) -> Result<(), SignalError> {
        check_addrs(&self.addrs)
    }

    /// Appends the bytes a server's signature covers for this entry.
    fn push_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.peer.as_bytes());
        push_addr(out, &self.observed);
        out.extend_from_slice(self.proof.as_bytes());
        out.push(u8::try_from(self.addrs.len()).unwrap_or(u8::MAX));
        for addr in &self.addrs {
            push_addr(out, addr);
        }
    }
}

/// Appends an address as the signed encodings hold it (see the module
/// docs).
fn push_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
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

impl From<Register> for Message {
    fn from(m: Register) -> Self {
        Message::Register(m)
    }
}
impl From<Unregister> for Message {
    fn from(m: Unregister) -> Self {
        Message::Unregister(m)
    }
}
impl From<Lookup> for Message {
    fn from(m: Lookup) -> Self {
        Message::Lookup(m)
    }
}
impl From<Registered> for Message {
    fn from(m: Registered) -> Self {
        Message::Registered(m)
    }
}
impl From<Peers> for Message {
    fn from(m: Peers) -> Self {
        Message::Peers(m)
    }
}
impl From<Arrived> for Message {
    fn from(m: Arrived) -> Self {
        Message::Arrived(m)
    }
}
impl From<Rejected> for Message {
    fn from(m: Rejected) -> Self {
        Message::Rejected(m)
    }
}

fn check_ttl(ttl_secs: u32) -> Result<(), SignalError> {
    if (1..=MAX_TTL_SECS).contains(&ttl_secs) {
        Ok(())
    } else {
        Err(SignalError::BadTtl {
            ttl_secs,
            max: MAX_TTL_SECS,
        })
    }
}

fn check_addrs(addrs: &[SocketAddr]) -> Result<(), SignalError> {
    if addrs.len() > MAX_ADDRS {
        return Err(SignalError::TooManyAddrs {
            count: addrs.len(),
            max: MAX_ADDRS,
        });
    }
    match addrs.iter().find(|a| !crate::addr::usable(a)) {
        Some(&addr) => Err(SignalError::BadAddr { addr }),
        None => Ok(()),
    }
}

/// The signed bytes of a request without addresses.
fn plain_bytes(domain: &[u8], tag: &RendezvousTag, peer: &PeerId, stamp: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(domain.len() + 32 + 32 + 8);
    out.extend_from_slice(domain);
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(peer.as_bytes());
    out.extend_from_slice(&stamp.to_be_bytes());
    out
}

/// Signatures as 128 lowercase hex characters.
mod sig_hex {
    use serde::{Deserializer, Serializer};

    use crate::identity::SIGNATURE_LEN;

    pub(super) fn serialize<S: Serializer>(
        sig: &[u8; SIGNATURE_LEN],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        crate::hex_serde::serialize(sig, serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<[u8; SIGNATURE_LEN], D::Error> {
        crate::hex_serde::deserialize::<D, SIGNATURE_LEN>(deserializer)
    }
}
