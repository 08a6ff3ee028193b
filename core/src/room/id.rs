//! A room's identifiers: what a group chat is, cryptographically.
//!
//! A room is identified by a random 128-bit [`RoomId`] and protected by a
//! random Fernet [`RoomKey`] (128-bit HMAC-SHA256 key + 128-bit AES key).
//! Whoever holds the key is a member; there is no other access control. The
//! key travels only inside a Chat ID (see [`crate::chat_id`]).
//!
//! A room also has a human [`RoomName`], chosen by its creator. Names are
//! what people type (`/send_chat general hi`), so they are short, printable
//! and contain no whitespace. Names are not unique: two rooms may share one.
//!
//! The signaling server must be able to match up the members of a room
//! without learning anything about it. Members therefore present a
//! [`RendezvousTag`]: a SHA-256 hash of the room key under a fixed domain
//! label. Knowing the tag gives neither the key nor the room id, and it
//! cannot be turned back into either.

use std::fmt;
use std::str::FromStr;

use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Length of a room id in bytes.
pub const ROOM_ID_LEN: usize = 16;
/// Length of a room key in bytes (Fernet: 16 signing + 16 encryption).
pub const ROOM_KEY_LEN: usize = 32;
/// Length of a rendezvous tag in bytes.
pub const RENDEZVOUS_TAG_LEN: usize = 32;
/// Longest room name, in bytes of UTF-8.
pub const MAX_ROOM_NAME_LEN: usize = 64;

const RENDEZVOUS_DOMAIN: &[u8] = b"p2pchat/v1/rendezvous-tag\0";
const PROOF_KEY_DOMAIN: &[u8] = b"p2pchat/v1/membership-proof-key\0";
/// Length of a membership proof in bytes.
pub const PROOF_LEN: usize = 16;

/// A room's random identifier. Displayed as 32 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId([u8; ROOM_ID_LEN]);

impl RoomId {
    /// A fresh random room id.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; ROOM_ID_LEN];
        rng.fill_bytes(&mut bytes);
        RoomId(bytes)
    }

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; ROOM_ID_LEN]) -> Self {
        RoomId(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; ROOM_ID_LEN] {
        &self.0
    }
}

crate::hex_serde::impl_hex_serde!(RoomId, ROOM_ID_LEN);

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomId({self})")
    }
}

/// A room's secret Fernet key. Wiped from memory on drop; `Debug` never
/// prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomKey(Zeroizing<[u8; ROOM_KEY_LEN]>);

impl RoomKey {
    /// A fresh random room key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; ROOM_KEY_LEN]);
        rng.fill_bytes(bytes.as_mut());
        RoomKey(bytes)
    }

    /// Wraps raw key bytes (as read from a Chat ID or from storage).
    pub fn from_bytes(bytes: [u8; ROOM_KEY_LEN]) -> Self {
        RoomKey(Zeroizing::new(bytes))
    }

    /// The raw key bytes, for the host to persist.
    pub fn as_bytes(&self) -> &[u8; ROOM_KEY_LEN] {
        &self.0
    }

    /// The tag under which members of this room meet at the signaling
    /// server. One-way: it reveals neither the key nor the room id.
    pub fn rendezvous_tag(&self) -> RendezvousTag {
        let mut hasher = Sha256::new();
        hasher.update(RENDEZVOUS_DOMAIN);
        hasher.update(self.0.as_ref());
        RendezvousTag(hasher.finalize().into())
    }

    /// The key members prove membership with at the signaling server,
    /// derived one-way from the room key (and distinct from the tag).
    pub fn proof_key(&self) -> ProofKey {
        let mut hasher = Sha256::new();
        hasher.update(PROOF_KEY_DOMAIN);
        hasher.update(self.0.as_ref());
        ProofKey(Zeroizing::new(hasher.finalize().into()))
    }
}

/// The key of a room's membership proofs (see [`RoomKey::proof_key`]).
///
/// A member registers at a signaling server with a [`MembershipProof`]:
/// `HMAC-SHA256(proof key, peer id)`, cut to [`PROOF_LEN`] bytes. The
/// server cannot check it (it has no key) and hands it out with the entry;
/// members check it, so an entry made by someone without the room key is
/// never used, and a proof copied from another member's entry does not
/// fit a different peer id.
#[derive(Clone)]
pub struct ProofKey(Zeroizing<[u8; 32]>);

impl ProofKey {
    /// The proof that `peer` holds the room key.
    pub fn proof(&self, peer: &crate::identity::PeerId) -> MembershipProof {
        use hmac::{Hmac, Mac};
        // HMAC takes keys of any length; 32 bytes cannot be refused.
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.0.as_ref()) {
            Ok(mac) => mac,
            Err(_) => return MembershipProof([0; PROOF_LEN]),
        };
        mac.update(peer.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut proof = [0u8; PROOF_LEN];
        proof.copy_from_slice(&full[..PROOF_LEN]);
        MembershipProof(proof)
    }

    /// Whether `proof` is `peer`'s proof (compared in constant time).
    pub fn verify(&self, peer: &crate::identity::PeerId, proof: &MembershipProof) -> bool {
        let expected = self.proof(peer);
        expected
            .0
            .iter()
            .zip(proof.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProofKey(<secret>)")
    }
}

/// A member's proof, at a signaling server, that it holds the room key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MembershipProof([u8; PROOF_LEN]);

impl MembershipProof {
    /// Wraps raw bytes (for tests and decoders).
    pub const fn from_bytes(bytes: [u8; PROOF_LEN]) -> Self {
        MembershipProof(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; PROOF_LEN] {
        &self.0
    }
}

crate::hex_serde::impl_hex_serde!(MembershipProof, PROOF_LEN);

impl fmt::Debug for MembershipProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MembershipProof({})", hex::encode(self.0))
    }
}

impl fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomKey(<secret>)")
    }
}

/// The public, one-way tag of a room, the only thing about a room that the
/// signaling server ever sees. Displayed as 64 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RendezvousTag([u8; RENDEZVOUS_TAG_LEN]);

impl RendezvousTag {
    /// Wraps raw bytes (as received from the network).
    pub const fn from_bytes(bytes: [u8; RENDEZVOUS_TAG_LEN]) -> Self {
        RendezvousTag(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; RENDEZVOUS_TAG_LEN] {
        &self.0
    }
}

crate::hex_serde::impl_hex_serde!(RendezvousTag, RENDEZVOUS_TAG_LEN);

impl fmt::Display for RendezvousTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RendezvousTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RendezvousTag({self})")
    }
}

/// A room's display name: 1 to 64 bytes of printable UTF-8 without
/// whitespace, so it can be typed as the first word of a command.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

/// Why a room name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    /// The name is empty.
    #[error("a chat name cannot be empty")]
    Empty,
    /// The name is longer than [`MAX_ROOM_NAME_LEN`] bytes.
    #[error("a chat name is at most {max} bytes, this one is {len}")]
    TooLong { len: usize, max: usize },
    /// The name contains whitespace.
    #[error("a chat name cannot contain spaces (try {suggestion:?})")]
    Whitespace { suggestion: String },
    /// The name contains a control or other invisible character.
    #[error("a chat name cannot contain control characters")]
    ControlCharacter,
}

impl RoomName {
    /// Validates a name. Leading and trailing whitespace is not trimmed
    /// here: callers decide what the user meant.
    pub fn new(name: &str) -> Result<Self, RoomNameError> {
        if name.is_empty() {
            return Err(RoomNameError::Empty);
        }
        if name.len() > MAX_ROOM_NAME_LEN {
            return Err(RoomNameError::TooLong {
                len: name.len(),
                max: MAX_ROOM_NAME_LEN,
            });
        }
        if name.chars().any(char::is_whitespace) {
            let suggestion = name.split_whitespace().collect::<Vec<_>>().join("-");
            return Err(RoomNameError::Whitespace { suggestion });
        }
        if name.chars().any(is_invisible) {
            return Err(RoomNameError::ControlCharacter);
        }
        Ok(RoomName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Control characters, and the format characters that can make one name
/// look like another (zero-width spaces and joiners, bidi overrides, BOM).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}')
}

impl FromStr for RoomName {
    type Err = RoomNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoomName::new(s)
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomName({:?})", self.0)
    }
}
