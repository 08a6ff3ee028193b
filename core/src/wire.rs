//! Wire: what a datagram looks like.
//!
//! Every datagram is one JSON object with a version `v` and a kind `k`.
//! Only routing data travels in clear:
//!
//! ```text
//! {"k":"ctl","v":1,"tag":"<rendezvous tag>","from":"<sender peer id>","body":"<Fernet token>"}
//! {"k":"ev", "v":1,"tag":"<rendezvous tag>","from":"<sender peer id>","body":"<Fernet token>"}
//! {"k":"sig","v":1,"msg":{...}}                                      (signaling, see crate::signaling)
//! ```
//!
//! - `ctl`: a control message ([`Control`]) sealed by the sender itself.
//! - `ev`: one chat event ([`EventWire`]) sealed by its *author*. The token
//!   is forwarded unchanged, so `from` (whoever sends the datagram) may
//!   differ from the author, and the author's signature still holds.
//!
//! The rendezvous tag tells the receiver which room key to try; everything
//! else — room id, names, texts, member lists, clocks — is inside the token.
//! Inside, the sealed JSON carries its own kind again ([`Sealed`]), so a
//! token cannot be passed off as the other kind by relabelling `k`.
//!
//! **Size.** No datagram is larger than the MTU (default
//! [`DEFAULT_MTU`] = 1200 bytes). A token that does not fit is cut into
//! fragments, each a datagram with `"frag":{"id":…,"i":…,"n":…}` and a
//! slice of the token as `body`, and the receiver's [`Reassembler`] puts it
//! back together. Reassembly is bounded: at most [`MAX_FRAGMENTS`]
//! fragments per token, [`MAX_PARTIALS_PER_SENDER`] tokens in progress per
//! claimed sender, [`MAX_PARTIALS`] and [`MAX_REASSEMBLY_BYTES`] overall, and
//! [`REASSEMBLY_TIMEOUT_MS`] to complete; beyond that, the oldest partial
//! token is dropped and counted. A sender that retransmits an event uses
//! the same fragment id again, so a partial copy fills up across
//! retransmissions: under heavy loss a large event still gets through. Texts are limited to [`MAX_TEXT_LEN`]
//! bytes ([`validate_text`]), which keeps every event far below the
//! sealing limit.
//!
//! Every datagram is hostile until checked: anything that fails to parse,
//! has the wrong version, an unknown kind, a malformed identifier or an
//! oversized field is refused with a [`WireError`], never a panic.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::clock::EventId;
use crate::history::Body;
use crate::identity::{Identity, PeerId, SIGNATURE_LEN};
use crate::membership::{self, Beat, Bye};
use crate::replication::{self, Summary};
use crate::room::RendezvousTag;
use crate::room::{Incoming, Outbox};
use crate::seal::MAX_TOKEN_LEN;
use crate::signaling;
use crate::UnixMillis;

/// Wire version spoken by this code.
pub const VERSION: u8 = 1;
/// Default largest datagram, in bytes: fits the IPv6 minimum MTU with room
/// for tunnels.
pub const DEFAULT_MTU: usize = 1200;
/// Smallest MTU the engine accepts.
pub const MIN_MTU: usize = 512;
/// Largest datagram accepted from the network (the UDP maximum).
pub const MAX_DATAGRAM_LEN: usize = 65_507;
/// Longest chat message, in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 16 * 1024;
/// Most fragments one token may be cut into.
pub const MAX_FRAGMENTS: u16 = 128;
/// Most tokens being reassembled per claimed sender.
pub const MAX_PARTIALS_PER_SENDER: usize = 8;
/// Most tokens being reassembled in all.
pub const MAX_PARTIALS: usize = 256;
/// Most bytes held by partial tokens in all.
pub const MAX_REASSEMBLY_BYTES: usize = 8 * 1024 * 1024;
/// How long a fragmented token has to arrive whole.
pub const REASSEMBLY_TIMEOUT_MS: u64 = 10_000;

/// A datagram, as parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Datagram {
    /// A control message sealed by its sender.
    Ctl(RoomPacket),
    /// An event sealed by its author.
    Ev(RoomPacket),
    /// A signaling message.
    Sig(SigPacket),
}

/// A room datagram: routing data and (a fragment of) a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomPacket {
    /// Wire version.
    pub v: u8,
    /// The room's rendezvous tag.
    pub tag: RendezvousTag,
    /// The peer sending this datagram (unauthenticated here; control
    /// messages are checked against their sealer).
    pub from: PeerId,
    /// Fragment position, when the token did not fit one datagram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frag: Option<Frag>,
    /// The token, or this fragment's slice of it.
    pub body: String,
}

/// Where a fragment belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frag {
    /// The sender's id for the fragmented token.
    pub id: u32,
    /// This fragment's index, from 0.
    pub i: u16,
    /// Number of fragments.
    pub n: u16,
}

/// A signaling datagram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigPacket {
    /// Wire version.
    pub v: u8,
    /// The message.
    pub msg: signaling::Message,
    /// A server's signature of the answer in `msg`, by a server that has a
    /// key (see [`signaling::Message::answer_bytes`]).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_sig_hex")]
    pub sig: Option<[u8; SIGNATURE_LEN]>,
}

/// What a token holds once opened: the kind is repeated inside, under the
/// author's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "p", rename_all = "snake_case")]
pub enum Sealed {
    /// A chat event.
    Ev(EventWire),
    /// A control message.
    Ctl(Control),
}

/// A chat event as its author seals it. Its author is the token's signer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventWire {
    /// Author's sequence number.
    pub seq: u64,
    /// Lamport time.
    pub lamport: u64,
    /// Causal dependencies.
    pub deps: Vec<EventId>,
    /// Author's wall clock, for display.
    pub time: UnixMillis,
    /// Author's display name.
    pub name: String,
    /// Contents.
    pub body: Body,
    /// The digest of the author's previous event (none for its first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<crate::equivocation::Digest>,
    /// The digest of each dependency, in the order of `deps`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<crate::equivocation::Digest>,
}

/// Control messages between members of a room, sealed by the sender.
///
/// Each kind is defined, and handled, by the module it belongs to; this
/// enum only names them on the wire (`"c": "beat"` and so on) and routes
/// each to its handler (`Control::handle`). Adding a control message is
/// its module (its struct, its limits, its handler) and a variant here.
///
/// Every one carries `stamp`, the sender's strictly increasing control
/// counter: a receiver drops any control message whose stamp is not above
/// the last one it accepted from that sender, so a captured datagram cannot
/// be replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "c", rename_all = "snake_case")]
pub enum Control {
    /// Heartbeat ([`crate::membership`]).
    Beat(Beat),
    /// Anti-entropy summary ([`crate::replication`]).
    Summary(Summary),
    /// Goodbye ([`crate::membership`]).
    Bye(Bye),
    /// A request for exact versions ([`crate::equivocation`]).
    Want(crate::equivocation::Want),
}

impl Control {
    /// The replay guard of any control message.
    pub fn stamp(&self) -> u64 {
        match self {
            Control::Beat(m) => m.stamp,
            Control::Summary(m) => m.stamp,
            Control::Bye(m) => m.stamp,
            Control::Want(m) => m.stamp,
        }
    }

    /// Whether the contents keep their limits (checked before anything is
    /// taken from the message).
    pub fn is_valid(&self) -> bool {
        match self {
            Control::Beat(m) => m.is_valid(),
            Control::Summary(m) => m.is_valid(),
            Control::Bye(_) => true,
            Control::Want(m) => m.is_valid(),
        }
    }

    /// Hands an authenticated message to its module's handler.
    pub(crate) fn handle(self, at: Incoming<'_>, out: &mut Outbox<'_>) {
        match self {
            Control::Beat(m) => membership::on_beat(m, at, out),
            Control::Summary(m) => replication::on_summary(m, at, out),
            Control::Bye(m) => membership::on_bye(m, at, out),
            Control::Want(m) => crate::equivocation::on_want(m, at, out),
        }
    }
}

/// Why a datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Larger than [`MAX_DATAGRAM_LEN`].
    #[error("datagram too large")]
    TooLarge,
    /// Not JSON, or not one of the known shapes.
    #[error("malformed datagram")]
    Malformed,
    /// A version this code does not speak.
    #[error("unsupported wire version")]
    Version,
    /// A fragment header out of range (index, count, empty slice).
    #[error("malformed fragment")]
    BadFragment,
    /// A token, or a reassembled one, longer than any token we make.
    #[error("token too large")]
    TokenTooLarge,
}

/// Parses a datagram, checking size and version.
pub fn decode(bytes: &[u8]) -> Result<Datagram, WireError> {
    if bytes.len() > MAX_DATAGRAM_LEN {
        return Err(WireError::TooLarge);
    }
    let datagram: Datagram = serde_json::from_slice(bytes).map_err(|_| WireError::Malformed)?;
    let v = match &datagram {
        Datagram::Ctl(p) | Datagram::Ev(p) => p.v,
        Datagram::Sig(s) => s.v,
    };
    if v != VERSION {
        return Err(WireError::Version);
    }
    if let Datagram::Ctl(p) | Datagram::Ev(p) = &datagram {
        p.check()?;
    }
    Ok(datagram)
}

impl RoomPacket {
    /// The limits [`decode`] holds a room datagram to: a token no longer
    /// than any token we make, and a fragment header in range (2 to
    /// [`MAX_FRAGMENTS`] fragments, an index below the count, a non-empty
    /// slice). The [`Reassembler`] relies on them.
    pub fn check(&self) -> Result<(), WireError> {
        if self.body.len() > MAX_TOKEN_LEN {
            return Err(WireError::TokenTooLarge);
        }
        if let Some(f) = self.frag {
            if f.n < 2 || f.n > MAX_FRAGMENTS || f.i >= f.n || self.body.is_empty() {
                return Err(WireError::BadFragment);
            }
        }
        Ok(())
    }
}

/// Serialises a signaling message as a datagram.
pub fn encode_sig(msg: signaling::Message) -> Vec<u8> {
    encode_sig_packet(SigPacket {
        v: VERSION,
        msg,
        sig: None,
    })
}

/// Encodes an answer signed by `server` (a request is encoded unsigned).
pub fn encode_signed_answer(msg: signaling::Message, server: &Identity) -> Vec<u8> {
    let sig = msg.sign_answer(server);
    encode_sig_packet(SigPacket {
        v: VERSION,
        msg,
        sig,
    })
}

/// Encodes a signaling datagram as it is.
pub fn encode_sig_packet(packet: SigPacket) -> Vec<u8> {
    // Serialising plain data with string keys cannot fail.
    serde_json::to_vec(&Datagram::Sig(packet)).unwrap_or_default()
}

/// Serde for an optional signature as lowercase hex (see
/// [`crate::hex_serde`]).
mod opt_sig_hex {
    use serde::{Deserializer, Serializer};

    use crate::identity::SIGNATURE_LEN;

    pub(super) fn serialize<S: Serializer>(
        sig: &Option<[u8; SIGNATURE_LEN]>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match sig {
            Some(sig) => crate::hex_serde::serialize(sig, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<[u8; SIGNATURE_LEN]>, D::Error> {
        crate::hex_serde::deserialize::<D, SIGNATURE_LEN>(deserializer).map(Some)
    }
}

/// Kind of a room datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomKind {
    /// Control message.
    Ctl,
    /// Event.
    Ev,
}

/// Builds the datagrams that carry `token`: one if it fits `mtu`, else
/// fragments with id `frag_id`. Returns `None` if the token would need more
/// than [`MAX_FRAGMENTS`] fragments at this MTU.
pub fn encode_room(
    kind: RoomKind,
    tag: RendezvousTag,
    from: PeerId,
    token: &str,
    mtu: usize,
    frag_id: u32,
) -> Option<Vec<Vec<u8>>> {
    let packet = |frag: Option<Frag>, body: &str| {
        let p = RoomPacket {
            v: VERSION,
            tag,
            from,
            frag,
            body: body.to_owned(),
        };
        let d = match kind {
            RoomKind::Ctl => Datagram::Ctl(p),
            RoomKind::Ev => Datagram::Ev(p),
        };
        serde_json::to_vec(&d).unwrap_or_default()
    };
    let whole = packet(None, token);
    if whole.len() <= mtu {
        return Some(vec![whole]);
    }
    // Tokens are base64 text: no JSON escaping, so a slice of n characters
    // adds exactly n bytes to the empty packet.
    let widest = Frag {
        id: u32::MAX,
        i: MAX_FRAGMENTS,
        n: MAX_FRAGMENTS,
    };
    let overhead = packet(Some(widest), "").len();
    let chunk = mtu.checked_sub(overhead).filter(|c| *c > 0)?;
    let n = token.len().div_ceil(chunk);
    let n = u16::try_from(n).ok().filter(|n| *n <= MAX_FRAGMENTS)?;
    let bytes = token.as_bytes();
    Some(
        bytes
            .chunks(chunk)
            .enumerate()
            .map(|(i, slice)| {
                let frag = Frag {
                    id: frag_id,
                    i: i as u16,
                    n,
                };
                // Base64 is ASCII, so every byte slice is valid UTF-8.
                packet(Some(frag), std::str::from_utf8(slice).unwrap_or_default())
            })
            .collect(),
    )
}

/// Why a message text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing to send.
    #[error("the message is empty")]
    Empty,
    /// Longer than [`MAX_TEXT_LEN`].
    #[error("the message is {len} bytes; the limit is {max} bytes (16 KiB)")]
    TooLong { len: usize, max: usize },
    /// Holds a control character other than newline or tab.
    #[error("the message contains a control character (U+{0:04X})")]
    ControlChar(u32),
}

/// Checks a chat message: 1 to [`MAX_TEXT_LEN`] bytes, no control
/// characters but newline and tab.
pub fn validate_text(text: &str) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::Empty);
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(TextError::TooLong {
            len: text.len(),
            max: MAX_TEXT_LEN,
        });
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        return Err(TextError::ControlChar(c as u32));
    }
    Ok(())
}

/// Why a fragment was dropped by the [`Reassembler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragDrop {
    /// Same fragment twice.
    Duplicate,
    /// Disagrees with earlier fragments of the same token (count, room or
    /// kind).
    Inconsistent,
    /// The reassembled token would be longer than any token we make.
    TooLarge,
}

/// Result of offering a fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reassembled {
    /// Waiting for more fragments.
    Incomplete,
    /// The whole token.
    Complete {
        /// Kind of the token.
        kind: RoomKind,
        /// Room.
        tag: RendezvousTag,
        /// Claimed sender.
        from: PeerId,
        /// The token.
        token: String,
    },
    /// Dropped.
    Dropped(FragDrop),
}

#[derive(Debug)]
struct Partial {
    kind: RoomKind,
    tag: RendezvousTag,
    started: UnixMillis,
    parts: Vec<Option<String>>,
    have: usize,
    bytes: usize,
}

/// Puts fragmented tokens back together, within bounds.
#[derive(Debug, Default)]
pub struct Reassembler {
    partials: BTreeMap<(PeerId, u32), Partial>,
    /// Arrival order, for evicting the oldest.
    arrivals: VecDeque<(PeerId, u32)>,
    bytes: usize,
    evicted: u64,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Partial tokens dropped so far (timeouts and evictions).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Tokens in progress.
    pub fn len(&self) -> usize {
        self.partials.len()
    }

    /// Whether nothing is in progress.
    pub fn is_empty(&self) -> bool {
        self.partials.is_empty()
    }

    /// Bytes held by partial tokens.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Offers a fragment (already checked by [`decode`], i.e.
    /// [`RoomPacket::check`]).
    pub fn push(&mut self, now: UnixMillis, kind: RoomKind, packet: RoomPacket) -> Reassembled {
        let Some(frag) = packet.frag else {
            return Reassembled::Complete {
                kind,
                tag: packet.tag,
                from: packet.from,
                token: packet.body,
            };
        };
        let key = (packet.from, frag.id);
        if !self.partials.contains_key(&key) {
            self.make_room(packet.from);
            self.partials.insert(
                key,
                Partial {
                    kind,
                    tag: packet.tag,
                    started: now,
                    parts: vec![None; usize::from(frag.n)],
                    have: 0,
                    bytes: 0,
                },
            );
            self.arrivals.push_back(key);
        }
        let Some(partial) = self.partials.get_mut(&key) else {
            return Reassembled::Dropped(FragDrop::Inconsistent);
        };
        if partial.kind != kind
            || partial.tag != packet.tag
            || partial.parts.len() != usize::from(frag.n)
        {
            return Reassembled::Dropped(FragDrop::Inconsistent);
        }
        let Some(slot) = partial.parts.get_mut(usize::from(frag.i)) else {
            return Reassembled::Dropped(FragDrop::Inconsistent);
        };
        if slot.is_some() {
            return Reassembled::Dropped(FragDrop::Duplicate);
        }
        if partial.bytes + packet.body.len() > MAX_TOKEN_LEN {
            self.remove(&key);
            return Reassembled::Dropped(FragDrop::TooLarge);
        }
        partial.bytes += packet.body.len();
        self.bytes += packet.body.len();
        *slot = Some(packet.body);
        partial.have += 1;
        if partial.have < partial.parts.len() {
            self.enforce_byte_limit();
            return Reassembled::Incomplete;
        }
        let Some(partial) = self.remove(&key) else {
            return Reassembled::Dropped(FragDrop::Inconsistent);
        };
        let token: String = partial.parts.into_iter().flatten().collect();
        Reassembled::Complete {
            kind: partial.kind,
            tag: partial.tag,
            from: packet.from,
            token,
        }
    }

    /// Drops partial tokens older than [`REASSEMBLY_TIMEOUT_MS`].
    pub fn expire(&mut self, now: UnixMillis) {
        while let Some(key) = self.arrivals.front().copied() {
            match self.partials.get(&key) {
                Some(p) if now.saturating_sub(p.started) <= REASSEMBLY_TIMEOUT_MS => break,
                Some(_) => {
                    self.remove(&key);
                    self.evicted += 1;
                }
                None => {
                    self.arrivals.pop_front();
                }
            }
        }
    }

    /// When the oldest partial token times out.
    pub fn next_expiry(&self) -> Option<UnixMillis> {
        self.arrivals
            .iter()
            .find_map(|k| self.partials.get(k))
            .map(|p| p.started.saturating_add(REASSEMBLY_TIMEOUT_MS + 1))
    }

    fn remove(&mut self, key: &(PeerId, u32)) -> Option<Partial> {
        let partial = self.partials.remove(key)?;
        self.bytes -= partial.bytes;
        if let Some(pos) = self.arrivals.iter().position(|k| k == key) {
            self.arrivals.remove(pos);
        }
        Some(partial)
    }

    /// Makes room for one more partial token from `from`.
    fn make_room(&mut self, from: PeerId) {
        let of_sender: Vec<(PeerId, u32)> = self
            .arrivals
            .iter()
            .filter(|(p, _)| *p == from)
            .copied()
            .collect();
        if of_sender.len() >= MAX_PARTIALS_PER_SENDER {
            self.remove(&of_sender[0]);
            self.evicted += 1;
        }
        while self.partials.len() >= MAX_PARTIALS {
            let Some(oldest) = self.arrivals.front().copied() else {
                break;
            };
            self.remove(&oldest);
            self.evicted += 1;
        }
    }

    fn enforce_byte_limit(&mut self) {
        while self.bytes > MAX_REASSEMBLY_BYTES {
            let Some(oldest) = self.arrivals.front().copied() else {
                break;
            };
            self.remove(&oldest);
            self.evicted += 1;
        }
    }
}
