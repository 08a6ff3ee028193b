//! Seal: sign-then-encrypt, decrypt-then-verify.
//!
//! Everything a member says in a room is first **signed** by the author's
//! identity key and then **encrypted** as a Fernet token under the room key:
//!
//! ```text
//! Fernet_roomkey( version u8 | author peer id (32) | signature (64) | payload )
//! signature = Ed25519_author( "p2pchat/v<version>/seal\0" | room id (16) | payload )
//! ```
//!
//! Encryption keeps outsiders (the signaling server, relays, anyone on the
//! path) from reading or altering anything. The signature keeps *members*
//! honest: a member holds the room key and could mint valid tokens, but
//! cannot make one that verifies as another member's words. Signing the room
//! id as well stops a member of two rooms from replaying a message from one
//! room into the other. Since the signature is inside the token, events stay
//! verifiable when they are relayed or replicated by third parties.
//!
//! **Versions.** The version says which rule judges the signature (see
//! [`crate::verification`]): version 2, what this code seals, is judged
//! by ZIP 215, under which members may verify many tokens in one batch and
//! still agree with members verifying one at a time; version 1, sealed by
//! earlier releases, by RFC 8032 strict verification, as it always was.
//! Both open. The version is part of the signed domain, so relabelling a
//! token only makes its signature fail. An author key of small order is
//! refused under either version (it is nobody's: every message verifies
//! under it). Migration: a room's history keeps
//! its version 1 tokens (they are forwarded unchanged and keep their
//! verdicts); what members write from now on is version 2, which earlier
//! releases refuse as an unknown version, so everyone in a room upgrades.
//!
//! **Opening in two steps.** [`RoomCipher::unseal`] decrypts and parses and
//! hands back the signature still to check, so the engine can verify the
//! signatures of many tokens together ([`crate::verification::Batch`]);
//! [`RoomCipher::open`] does both steps for one token.
//!
//! Time is passed in: the token's Fernet timestamp is the host's `now`. On
//! opening, tokens are accepted whatever their timestamp. Fernet's own TTL
//! and 60-second clock-skew checks would drop messages from any member
//! whose clock is off, and could not stop replays anyway; duplicate and
//! replay detection belong to the event layer (author + sequence number).
//! The timestamp is returned as [`Opened::sealed_at_secs`] for whoever
//! wants it.

use std::cell::RefCell;
use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use crate::identity::{Identity, PeerId, PEER_ID_LEN, SIGNATURE_LEN};
use crate::room::{RoomId, RoomKey};
use crate::verification::{Check, Rule};
use crate::UnixMillis;

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// Largest payload that can be sealed.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;

/// The seal versions (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealVersion {
    /// Sealed by earlier releases; signatures judged by RFC 8032 strict
    /// verification.
    V1Strict = 1,
    /// What this code seals; signatures judged by ZIP 215.
    V2Zip215 = 2,
}

impl SealVersion {
    /// The version this code seals.
    pub const CURRENT: SealVersion = SealVersion::V2Zip215;

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(SealVersion::V1Strict),
            2 => Some(SealVersion::V2Zip215),
            _ => None,
        }
    }

    /// What the signature covers before the room id and payload.
    fn domain(self) -> &'static [u8] {
        match self {
            SealVersion::V1Strict => b"p2pchat/v1/seal\0",
            SealVersion::V2Zip215 => b"p2pchat/v2/seal\0",
        }
    }
}

const SIGN_DOMAIN_LEN: usize = 16;
const HEADER_LEN: usize = 1 + PEER_ID_LEN + SIGNATURE_LEN;
/// Fernet token bytes: version, timestamp, IV, ciphertext (padded), HMAC.
const MAX_TOKEN_BYTES: usize = 1 + 8 + 16 + (HEADER_LEN + MAX_PAYLOAD_LEN + 16) + 32;
/// Longest token text worth decoding.
pub const MAX_TOKEN_LEN: usize = MAX_TOKEN_BYTES.div_ceil(3) * 4;

/// Fernet refuses tokens stamped more than this many seconds after the
/// "current time" it is given (its `MAX_CLOCK_SKEW`).
const FERNET_MAX_CLOCK_SKEW: u64 = 60;

/// A room's cipher: its id and key, ready to seal and open.
#[derive(Clone)]
pub struct RoomCipher {
    room_id: RoomId,
    fernet: fernet::Fernet,
    /// Authors' decompressed public keys: decompressing one is about a
    /// tenth of a verification, and a room has few authors.
    keys: RefCell<HashMap<PeerId, VerifyingKey>>,
}

/// Authors' keys kept per room (a room has at most 512 authors and 1,024
/// members; past this the cache starts over, so it stays bounded).
const MAX_CACHED_KEYS: usize = 2_048;

/// A token that opened and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Who signed the payload.
    pub author: PeerId,
    /// The payload, exactly as sealed.
    pub payload: Vec<u8>,
    /// The token's Fernet timestamp (seconds since the Unix epoch): the
    /// sealer's clock, not authenticated by the author's signature.
    pub sealed_at_secs: u64,
}

/// A token decrypted and parsed, its signature not yet checked: open it
/// by checking [`Unsealed::check`] (alone or in a batch).
#[derive(Debug, Clone)]
pub struct Unsealed {
    /// What the token says, if the signature holds.
    pub opened: Opened,
    /// The author's signature over the payload, to check.
    pub check: Check,
}

/// Why a payload could not be sealed or a token could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The payload is larger than [`MAX_PAYLOAD_LEN`].
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge { len: usize, max: usize },
    /// The token text is larger than any token this code produces.
    #[error("token of {len} characters exceeds the limit of {max}")]
    TokenTooLarge { len: usize, max: usize },
    /// Not a Fernet token under this room's key: wrong key, tampered,
    /// truncated or not a token at all.
    #[error("token does not decrypt with this room's key (wrong room, tampered or malformed)")]
    Decrypt,
    /// Decrypted, but the contents are not a sealed payload of a version we
    /// know.
    #[error("decrypted token is malformed: {0}")]
    Malformed(&'static str),
    /// Decrypted, but the author's signature does not verify.
    #[error("author signature does not verify")]
    BadSignature,
}

impl RoomCipher {
    /// The cipher of the room `room_id` with key `key`.
    pub fn new(room_id: RoomId, key: &RoomKey) -> Self {
        let encoded = URL_SAFE.encode(key.as_bytes());
        // A Fernet key is exactly 32 bytes of URL-safe base64; RoomKey always
        // holds 32 bytes, so `Fernet::new` cannot refuse it.
        let fernet = fernet::Fernet::new(&encoded).expect("a 32-byte key is a valid Fernet key");
        RoomCipher {
            room_id,
            fernet,
            keys: RefCell::new(HashMap::new()),
        }
    }

    /// The room this cipher belongs to.
    pub fn room_id(&self) -> &RoomId {
        &self.room_id
    }

    /// Signs `payload` as `author` and encrypts it for this room at time
    /// `now`. Returns the Fernet token (URL-safe base64 text).
    pub fn seal(
        &self,
        author: &Identity,
        payload: &[u8],
        now: UnixMillis,
    ) -> Result<String, SealError> {
        self.seal_as(SealVersion::CURRENT, author, payload, now)
    }

    /// [`RoomCipher::seal`] as `version`: tests of the migration seal
    /// version 1 tokens the way earlier releases did.
    pub fn seal_as(
        &self,
        version: SealVersion,
        author: &Identity,
        payload: &[u8],
        now: UnixMillis,
    ) -> Result<String, SealError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(SealError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        let signature = author.sign(&self.signed_message(version, payload));
        let mut plain = Vec::with_capacity(HEADER_LEN + payload.len());
        plain.push(version as u8);
        plain.extend_from_slice(author.peer_id().as_bytes());
        plain.extend_from_slice(&signature);
        plain.extend_from_slice(payload);
        Ok(self.fernet.encrypt_at_time(&plain, now / 1000))
    }

    /// Decrypts `token` with this room's key and verifies its author's
    /// signature. Any failure means the token must be dropped.
    pub fn open(&self, token: &str) -> Result<Opened, SealError> {
        let unsealed = self.unseal(token)?;
        if unsealed.check.verify() {
            Ok(unsealed.opened)
        } else {
            Err(SealError::BadSignature)
        }
    }

    /// Decrypts `token` and parses it, leaving its signature to be checked
    /// (see the module docs). An error means the token must be dropped.
    pub fn unseal(&self, token: &str) -> Result<Unsealed, SealError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SealError::TokenTooLarge {
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        let sealed_at_secs = token_timestamp(token).ok_or(SealError::Decrypt)?;
        // Present the token's own timestamp as "now": no TTL, and the skew
        // check passes (see the module docs). `min` keeps fernet's
        // `now + 60` from overflowing on a hostile timestamp.
        let now = sealed_at_secs.min(u64::MAX - FERNET_MAX_CLOCK_SKEW);
        let plain = self
            .fernet
            .decrypt_at_time(token, None, now)
            .map_err(|_| SealError::Decrypt)?;
        if plain.len() < HEADER_LEN {
            return Err(SealError::Malformed("shorter than its header"));
        }
        let (header, payload) = plain.split_at(HEADER_LEN);
        let version = SealVersion::from_byte(header[0])
            .ok_or(SealError::Malformed("unknown seal version"))?;
        let mut author = [0u8; PEER_ID_LEN];
        author.copy_from_slice(&header[1..1 + PEER_ID_LEN]);
        let author = PeerId::from_bytes(author);
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(&header[1 + PEER_ID_LEN..]);
        let key = self.key_of(&author)?;
        let rule = match version {
            SealVersion::V1Strict => Rule::Strict(key),
            // A key of small order is nobody's: under ZIP 215 anyone can
            // sign as it. Version 1 refuses it at verification.
            SealVersion::V2Zip215 if key.is_weak() => return Err(SealError::BadSignature),
            SealVersion::V2Zip215 => Rule::Zip215,
        };
        let check = Check::new(
            rule,
            author,
            self.signed_message(version, payload),
            signature,
        );
        Ok(Unsealed {
            opened: Opened {
                author,
                payload: payload.to_vec(),
                sealed_at_secs,
            },
            check,
        })
    }

    fn key_of(&self, author: &PeerId) -> Result<VerifyingKey, SealError> {
        if let Some(key) = self.keys.borrow().get(author) {
            return Ok(*key);
        }
        let key = author
            .verifying_key()
            .map_err(|_| SealError::BadSignature)?;
        let mut keys = self.keys.borrow_mut();
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(*author, key);
        Ok(key)
    }

    fn signed_message(&self, version: SealVersion, payload: &[u8]) -> Vec<u8> {
        let mut msg = Vec::with_capacity(SIGN_DOMAIN_LEN + 16 + payload.len());
        msg.extend_from_slice(version.domain());
        msg.extend_from_slice(self.room_id.as_bytes());
        msg.extend_from_slice(payload);
        msg
    }
}

impl std::fmt::Debug for RoomCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomCipher")
            .field("room_id", &self.room_id)
            .finish_non_exhaustive()
    }
}

/// Reads the (unauthenticated) timestamp of a Fernet token: bytes 1..9 of
/// its base64 body. `None` if the text is not even shaped like a token.
fn token_timestamp(token: &str) -> Option<u64> {
    // 12 base64 characters decode to the 9 bytes we need. Fernet tokens are
    // padded base64, but any prefix of 12 characters decodes without padding.
    let head = token.get(..12)?;
    let bytes = URL_SAFE_NO_PAD.decode(head).ok()?;
    if bytes.first() != Some(&0x80) {
        return None;
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(bytes.get(1..9)?);
    Some(u64::from_be_bytes(ts))
}
