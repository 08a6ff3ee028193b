//! Chat ID: the capability that lets someone into a room.
//!
//! `/create_chat` prints one copyable string; whoever holds it can join the
//! room, nobody else can. It is the *only* form in which a room key ever
//! leaves a device, so it is made to survive being copied by people:
//!
//! ```text
//! p2pchat:<base58 of the bytes below>
//!
//! version   u8        = 1
//! room id   16 bytes
//! room key  32 bytes
//! name      u8 length (1..=64) + UTF-8 bytes
//! bootstrap u8 count (0..=8) + per address:
//!             family u8 (4 or 6), IP (4 or 16 bytes), port u16 big-endian
//! quota     (versions 2 and 3) the room's per-author quota, big-endian:
//!             events/s u32, burst events u32, bytes/s u32,
//!             burst bytes u32, total bytes u64 (each at least 1)
//! checksum  first 4 bytes of SHA-256 over everything above
//! ```
//!
//! **Version 3** is a room whose events carry the hash chain: each names
//! the digest of its author's previous event and of every dependency, so
//! an equivocation is healed by one rule (see [`crate::equivocation`]).
//! Every room created from this version on is one; its Chat IDs are always
//! version 3 and always carry the quota. Rooms created before keep their
//! version 1 or 2 Chat IDs and their rules: events without the chain are
//! still taken there, and an equivocation is found and shown but not
//! healed.
//!
//! A room whose quota is the default ([`Quota::default`]) has a version 1
//! Chat ID, as every room had before quotas; a room created with another
//! quota has a version 2 one. Every member must hold the same quota (it
//! decides which events are taken, see [`crate::quota`]): it is fixed when
//! the room is created and travels in every Chat ID of the room. Whoever
//! hands out a Chat ID is trusted for all of it, the key first; an inviter
//! who changed the quota could as well have given another key.
//!
//! Base58 leaves out the characters people confuse (`0 O I l`) and the
//! punctuation that breaks double-click selection. The checksum turns a
//! mistyped or truncated Chat ID into a clear error instead of a room nobody
//! else is in. Every future version keeps the frame "version byte first,
//! 4-byte SHA-256 checksum last", so an old program can tell "this Chat ID
//! is newer than me" from "this Chat ID is damaged".
//!
//! The room name is carried so that the joiner can address the room by the
//! same name as everyone else from the first second; bootstrap addresses are
//! members' UDP addresses to try before the signaling server answers, or
//! when there is none.
//!
//! Parsing is strict and bounded: the text length is checked before any
//! decoding work, every field is validated, and trailing bytes are refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::quota::Quota;
use crate::room::{
    RoomId, RoomKey, RoomName, RoomNameError, MAX_ROOM_NAME_LEN, ROOM_ID_LEN, ROOM_KEY_LEN,
};

/// The text every Chat ID starts with.
pub const PREFIX: &str = "p2pchat:";
/// The newest format version this code writes and reads (it reads every
/// older one too).
pub const VERSION: u8 = 3;
/// A room from before the hash chain, with a quota other than the default.
const VERSION_QUOTA: u8 = 2;
/// A room from before the hash chain, on the default quota.
const VERSION_DEFAULT_QUOTA: u8 = 1;
/// Bytes of the quota section.
const QUOTA_LEN: usize = 4 * 4 + 8;
/// Most bootstrap addresses a Chat ID may carry.
pub const MAX_BOOTSTRAP: usize = 8;

const CHECKSUM_LEN: usize = 4;
const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;
/// Largest binary form: version, id, key, longest name, most IPv6 addresses.
const MAX_BINARY_LEN: usize = 1
    + ROOM_ID_LEN
    + ROOM_KEY_LEN
    + 1
    + MAX_ROOM_NAME_LEN
    + 1
    + MAX_BOOTSTRAP * (1 + 16 + 2)
    + QUOTA_LEN
    + CHECKSUM_LEN;
/// Longest text accepted: base58 needs at most ~1.37 characters per byte.
pub const MAX_TEXT_LEN: usize = PREFIX.len() + MAX_BINARY_LEN * 138 / 100 + 1;

/// A room capability: room id, room key, room name and bootstrap addresses.
///
/// `Display` writes the shareable string; `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ChatId {
    room_id: RoomId,
    key: RoomKey,
    name: RoomName,
    bootstrap: Vec<SocketAddr>,
    quota: Quota,
    /// Events carry the hash chain (version 3).
    chained: bool,
}

/// Why a string is not a usable Chat ID. Every message is written for the
/// person who pasted it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatIdError {
    #[error("the Chat ID is empty")]
    Empty,
    #[error("this is not a Chat ID: a Chat ID starts with \"{PREFIX}\"")]
    MissingPrefix,
    #[error(
        "the Chat ID is too long ({len} characters, at most {max}): was something pasted twice?"
    )]
    TooLong { len: usize, max: usize },
    #[error("the Chat ID has an invalid character {character:?} at position {position}")]
    InvalidCharacter { character: char, position: usize },
    #[error("the Chat ID is incomplete: was it cut off when copied?")]
    Truncated,
    #[error("the Chat ID is mistyped or incomplete (its checksum does not match)")]
    Checksum,
    #[error("the Chat ID has format version {0}, this program reads versions up to {VERSION}: please update p2pchat")]
    UnsupportedVersion(u8),
    #[error("the Chat ID's quota is invalid: every figure must be at least 1")]
    BadQuota,
    #[error("the Chat ID's chat name is invalid: {0}")]
    Name(#[from] RoomNameError),
    #[error("the Chat ID's chat name is not valid UTF-8")]
    NameNotUtf8,
    #[error("a Chat ID carries at most {max} bootstrap addresses, not {count}")]
    TooManyAddresses { count: usize, max: usize },
    #[error("the Chat ID has an invalid bootstrap address: {0}")]
    BadAddress(&'static str),
    #[error("the Chat ID has {0} unexpected bytes at its end")]
    TrailingBytes(usize),
}

impl ChatId {
    /// Builds a Chat ID. Bootstrap addresses must be usable (see
    /// [`crate::addr`]) and at most
    /// [`MAX_BOOTSTRAP`]; duplicates are dropped.
    pub fn new(
        room_id: RoomId,
        key: RoomKey,
        name: RoomName,
        bootstrap: Vec<SocketAddr>,
    ) -> Result<Self, ChatIdError> {
        let mut unique: Vec<SocketAddr> = Vec::with_capacity(bootstrap.len());
        for addr in bootstrap {
            check_address(&addr)?;
            if !unique.contains(&addr) {
                unique.push(addr);
            }
        }
        if unique.len() > MAX_BOOTSTRAP {
            return Err(ChatIdError::TooManyAddresses {
                count: unique.len(),
                max: MAX_BOOTSTRAP,
            });
        }
        Ok(ChatId {
            room_id,
            key,
            name,
            bootstrap: unique,
            quota: Quota::default(),
            chained: true,
        })
    }

    /// The same Chat ID for a room with `quota` (see [`crate::quota`]).
    /// Fails if a figure is 0.
    pub fn with_quota(mut self, quota: Quota) -> Result<Self, ChatIdError> {
        if !quota.is_valid() {
            return Err(ChatIdError::BadQuota);
        }
        self.quota = quota;
        Ok(self)
    }

    /// A Chat ID with no bootstrap addresses (cannot fail: only addresses
    /// are ever refused by [`ChatId::new`]).
    pub fn without_bootstrap(room_id: RoomId, key: RoomKey, name: RoomName) -> Self {
        ChatId {
            room_id,
            key,
            name,
            bootstrap: Vec::new(),
            quota: Quota::default(),
            chained: true,
        }
    }

    pub fn room_id(&self) -> &RoomId {
        &self.room_id
    }

    pub fn key(&self) -> &RoomKey {
        &self.key
    }

    pub fn name(&self) -> &RoomName {
        &self.name
    }

    pub fn bootstrap(&self) -> &[SocketAddr] {
        &self.bootstrap
    }

    /// The room's per-author quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Whether the room's events carry the hash chain (see the module
    /// docs): every room created from version 3 on.
    pub fn chained(&self) -> bool {
        self.chained
    }

    /// The same Chat ID for a room from before the hash chain (version 1
    /// or 2): its events need not carry it.
    pub fn unchained(mut self) -> Self {
        self.chained = false;
        self
    }

    /// The binary form, checksum included.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_BINARY_LEN);
        let default_quota = self.quota == Quota::default();
        let version = match (self.chained, default_quota) {
            (true, _) => VERSION,
            (false, true) => VERSION_DEFAULT_QUOTA,
            (false, false) => VERSION_QUOTA,
        };
        out.push(version);
        out.extend_from_slice(self.room_id.as_bytes());
        out.extend_from_slice(self.key.as_bytes());
        let name = self.name.as_str().as_bytes();
        // RoomName guarantees 1..=64 bytes, so this fits a u8.
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.push(self.bootstrap.len() as u8);
        for addr in &self.bootstrap {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    out.push(FAMILY_V4);
                    out.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    out.push(FAMILY_V6);
                    out.extend_from_slice(&ip.octets());
                }
            }
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
        if version != VERSION_DEFAULT_QUOTA {
            let q = &self.quota;
            for small in [q.events_per_s, q.burst_events, q.bytes_per_s, q.burst_bytes] {
                // Written from a valid quota: each fits (checked on the way in).
                out.extend_from_slice(&u32::try_from(small).unwrap_or(u32::MAX).to_be_bytes());
            }
            out.extend_from_slice(&q.total_bytes.to_be_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, ChatIdError> {
        if bytes.len() <= CHECKSUM_LEN {
            return Err(ChatIdError::Truncated);
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if checksum(body) != sum {
            return Err(ChatIdError::Checksum);
        }
        let mut r = Reader(body);
        let version = r.u8()?;
        if !matches!(version, VERSION | VERSION_QUOTA | VERSION_DEFAULT_QUOTA) {
            return Err(ChatIdError::UnsupportedVersion(version));
        }
        let room_id = RoomId::from_bytes(r.array::<ROOM_ID_LEN>()?);
        let key = RoomKey::from_bytes(r.array::<ROOM_KEY_LEN>()?);
        let name_len = usize::from(r.u8()?);
        let name = std::str::from_utf8(r.take(name_len)?).map_err(|_| ChatIdError::NameNotUtf8)?;
        let name = RoomName::new(name)?;
        let count = usize::from(r.u8()?);
        if count > MAX_BOOTSTRAP {
            return Err(ChatIdError::TooManyAddresses {
                count,
                max: MAX_BOOTSTRAP,
            });
        }
        let mut bootstrap = Vec::with_capacity(count);
        for _ in 0..count {
            let ip = match r.u8()? {
                FAMILY_V4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
                FAMILY_V6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
                _ => return Err(ChatIdError::BadAddress("unknown address family")),
            };
            let port = u16::from_be_bytes(r.array::<2>()?);
            let addr = SocketAddr::new(ip, port);
            check_address(&addr)?;
            if bootstrap.contains(&addr) {
                return Err(ChatIdError::BadAddress("the same address appears twice"));
            }
            bootstrap.push(addr);
        }
        let quota = if version != VERSION_DEFAULT_QUOTA {
            let mut small = || -> Result<u64, ChatIdError> {
                Ok(u64::from(u32::from_be_bytes(r.array::<4>()?)))
            };
            let quota = Quota {
                events_per_s: small()?,
                burst_events: small()?,
                bytes_per_s: small()?,
                burst_bytes: small()?,
                total_bytes: u64::from_be_bytes(r.array::<8>()?),
            };
            // One quota, one form: before the chain, the default one is
            // written as version 1.
            if !quota.is_valid() || (version == VERSION_QUOTA && quota == Quota::default()) {
                return Err(ChatIdError::BadQuota);
            }
            quota
        } else {
            Quota::default()
        };
        if !r.0.is_empty() {
            return Err(ChatIdError::TrailingBytes(r.0.len()));
        }
        Ok(ChatId {
            room_id,
            key,
            name,
            bootstrap,
            quota,
            chained: version == VERSION,
        })
    }
}

fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::digest(body);
    let mut sum = [0u8; CHECKSUM_LEN];
    sum.copy_from_slice(&digest[..CHECKSUM_LEN]);
    sum
}

fn check_address(addr: &SocketAddr) -> Result<(), ChatIdError> {
    crate::addr::check(addr).map_err(|why| ChatIdError::BadAddress(why.reason()))
}

/// A cursor over untrusted bytes: every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ChatIdError> {
        if self.0.len() < n {
            return Err(ChatIdError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ChatIdError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ChatIdError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        f.write_str(&bs58::encode(self.to_bytes()).into_string())
    }
}

impl fmt::Debug for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatId")
            .field("room_id", &self.room_id)
            .field("name", &self.name)
            .field("bootstrap", &self.bootstrap)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

impl FromStr for ChatId {
    type Err = ChatIdError;

    /// Parses a Chat ID as pasted by a person: surrounding whitespace is
    /// ignored, the prefix may be in any case, anything else must be exact.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ChatIdError::Empty);
        }
        if text.len() > MAX_TEXT_LEN {
            return Err(ChatIdError::TooLong {
                len: text.chars().count(),
                max: MAX_TEXT_LEN,
            });
        }
        let payload = match text.get(..PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(PREFIX) => &text[PREFIX.len()..],
            _ => return Err(ChatIdError::MissingPrefix),
        };
        if payload.is_empty() {
            return Err(ChatIdError::Truncated);
        }
        let bytes = bs58::decode(payload).into_vec().map_err(|e| {
            let index = match e {
                bs58::decode::Error::InvalidCharacter { index, .. } => index,
                bs58::decode::Error::NonAsciiCharacter { index } => index,
                // Decoding into a Vec cannot run out of room; any other
                // failure is reported at the start of the payload.
                _ => 0,
            };
            // `get` keeps this panic-free even if the index were not on a
            // character boundary.
            let character = payload
                .get(index..)
                .and_then(|rest| rest.chars().next())
                .unwrap_or('?');
            let before = payload.get(..index).map_or(0, |head| head.chars().count());
            ChatIdError::InvalidCharacter {
                character,
                position: PREFIX.len() + before + 1,
            }
        })?;
        ChatId::from_bytes(&bytes)
    }
}
