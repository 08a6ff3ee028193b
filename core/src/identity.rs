//! Identity: who wrote a message.
//!
//! Every peer owns an Ed25519 key pair. The public half *is* the peer's
//! identity, its [`PeerId`]: there is no registry and no account, and a
//! username is only a display name. Two people may both call themselves
//! "alice"; their peer ids tell them apart, which is why the UI shows a short
//! form of the id ([`PeerId::short`]) next to clashing names.
//!
//! The secret half never leaves the device that created it. A node stores it
//! (see [`Identity::secret_bytes`]) and restores it on restart, so a peer
//! keeps its identity across sessions.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// Length of a peer id in bytes (an Ed25519 public key).
pub const PEER_ID_LEN: usize = 32;
/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// Number of hex characters in the short, human-facing form of a peer id.
pub const SHORT_ID_LEN: usize = 8;
/// Longest display name, in bytes of UTF-8 (a name travels in every
/// heartbeat and every event).
pub const MAX_NAME_LEN: usize = 32;

/// A peer's long-term signing key. Its public key is the peer's [`PeerId`].
///
/// `Debug` never prints the secret.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
}

impl Identity {
    /// Creates a fresh identity from the host's cryptographic RNG.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_secret_bytes(&seed)
    }

    /// Restores an identity from the 32 secret bytes returned by
    /// [`Identity::secret_bytes`]. Every 32-byte string is a valid Ed25519
    /// secret key, so this cannot fail.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Identity {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The secret key, for the host to persist. Wiped from memory on drop.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// This identity's public id.
    pub fn peer_id(&self) -> PeerId {
        PeerId(self.signing.verifying_key().to_bytes())
    }

    /// Signs `message`; anyone holding the [`PeerId`] can check the result
    /// with [`PeerId::verify`].
    #[cfg(not(fuzzing))]
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        use ed25519_dalek::Signer;
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

/// A peer's public identity: its Ed25519 public key.
///
/// Displayed as 64 lowercase hex characters; [`PeerId::short`] gives the
/// 8-character form shown to people.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; PEER_ID_LEN]);

/// Why a peer id could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerIdError {
    /// The text is not 64 hex characters.
    #[error("a peer id is {expected} hex characters, got {got} characters")]
    Length { expected: usize, got: usize },
    /// The text has a character outside `0-9a-f`.
    #[error("a peer id is written in hex (0-9, a-f)")]
    NotHex,
    /// The bytes are not a valid Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    NotAKey,
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The peer id is not a valid public key.
    #[error(transparent)]
    PeerId(#[from] PeerIdError),
    /// The signature does not match the message and key.
    #[error("signature does not match")]
    BadSignature,
}

impl PeerId {
    /// Wraps raw public-key bytes. The bytes are checked when they are used
    /// to verify (see [`PeerId::verify`]), so a hostile id fails there.
    pub const fn from_bytes(bytes: [u8; PEER_ID_LEN]) -> Self {
        PeerId(bytes)
    }

    /// The raw public-key bytes.
    pub const fn as_bytes(&self) -> &[u8; PEER_ID_LEN] {
        &self.0
    }

    /// The first 8 hex characters: enough for a person to tell two
    /// same-named peers apart, not an identifier to trust.
    pub fn short(&self) -> String {
        let mut s = hex::encode(&self.0[..SHORT_ID_LEN / 2]);
        s.truncate(SHORT_ID_LEN);
        s
    }

    /// Checks that `signature` is this peer's signature of `message`.
    ///
    /// Uses strict verification (rejects small-order keys and
    /// non-canonical signatures), so a signature can't be malleated into a
    /// second valid one.
    pub fn verify(
        &self,
        message: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> Result<(), VerifyError> {
        verify_with(&self.verifying_key()?, message, signature)
    }

    /// The Ed25519 public key this id names. Decompressing it is a good
    /// part of a verification, so whoever verifies one author often keeps
    /// it (see [`verify_with`]).
    pub fn verifying_key(&self) -> Result<VerifyingKey, PeerIdError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| PeerIdError::NotAKey)
    }
}

/// [`PeerId::verify`] with the key already decompressed.
#[cfg(not(fuzzing))]
pub fn verify_with(
    key: &VerifyingKey,
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), VerifyError> {
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(message, &signature)
        .map_err(|_| VerifyError::BadSignature)
}

/// The fuzzing hook: in builds made by `cargo fuzz` (which passes
/// `--cfg fuzzing`; no other build of this project sets it) a "signature"
/// is SHA-512 of the public key and the message. Fuzz targets then sign the
/// requests and payloads they build at the cost of a hash instead of
/// ~70 µs of Ed25519, so they reach what lies behind a signature check
/// (signaling registrations, control messages, events) millions of times;
/// a wrong or altered "signature" is still refused, so the refusal paths
/// stay reachable too. Every key check (`verifying_key`, strict parsing of
/// peer ids) is unchanged. This module is not compiled anywhere else.
#[cfg(fuzzing)]
mod fuzzing_hook {
    use sha2::{Digest, Sha512};

    use super::*;

    /// The "signature" of `message` by `key` in fuzzing builds.
    pub(crate) fn hook_signature(key: &[u8; PEER_ID_LEN], message: &[u8]) -> [u8; SIGNATURE_LEN] {
        Sha512::new()
            .chain_update(key)
            .chain_update(message)
            .finalize()
            .into()
    }

    impl Identity {
        /// Fuzzing builds: see the module docs.
        pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
            hook_signature(self.peer_id().as_bytes(), message)
        }
    }

    /// Fuzzing builds: see the module docs.
    pub fn verify_with(
        key: &VerifyingKey,
        message: &[u8],
        signature_bytes: &[u8; SIGNATURE_LEN],
    ) -> Result<(), VerifyError> {
        if hook_signature(key.as_bytes(), message) == *signature_bytes {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }
}

#[cfg(fuzzing)]
pub(crate) use fuzzing_hook::hook_signature;
#[cfg(fuzzing)]
pub use fuzzing_hook::verify_with;

crate::hex_serde::impl_hex_serde!(PeerId, PEER_ID_LEN);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

impl FromStr for PeerId {
    type Err = PeerIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let got = s.chars().count();
        if got != PEER_ID_LEN * 2 {
            return Err(PeerIdError::Length {
                expected: PEER_ID_LEN * 2,
                got,
            });
        }
        if !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(PeerIdError::NotHex);
        }
        let mut bytes = [0u8; PEER_ID_LEN];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| PeerIdError::NotHex)?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| PeerIdError::NotAKey)?;
        Ok(PeerId(bytes))
    }
}

/// A person's display name: 1 to [`MAX_NAME_LEN`] bytes of UTF-8, with no
/// whitespace and no control characters.
///
/// This is the one rule for names: a front end checks the name its user
/// picks with [`UserName::new`], and every member checks the names in
/// others' heartbeats and events with [`UserName::is_valid`]. The limit is
/// in bytes because that is what a datagram pays for; letters outside
/// ASCII take 2 to 4 bytes each, and the error says so.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

/// Why a display name was refused; every message is written for the person
/// who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserNameError {
    /// Nothing but whitespace.
    #[error("a name cannot be empty")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`] bytes.
    #[error(
        "a name is at most {max} bytes and this one is {len} \
         (letters outside ASCII take 2 to 4 bytes each)"
    )]
    TooLong {
        /// Bytes in the name.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Contains whitespace.
    #[error("a name cannot contain spaces (try {suggestion:?})")]
    Whitespace {
        /// The name with its words joined by dashes.
        suggestion: String,
    },
    /// Contains a control character.
    #[error("a name cannot contain control characters")]
    ControlCharacter,
}

impl UserName {
    /// Checks a name. Leading and trailing whitespace counts: front ends
    /// trim what the user typed before asking.
    pub fn new(name: &str) -> Result<Self, UserNameError> {
        if name.trim().is_empty() {
            return Err(UserNameError::Empty);
        }
        if name.chars().any(char::is_whitespace) {
            let suggestion = name.split_whitespace().collect::<Vec<_>>().join("-");
            return Err(UserNameError::Whitespace { suggestion });
        }
        if name.chars().any(char::is_control) {
            return Err(UserNameError::ControlCharacter);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(UserNameError::TooLong {
                len: name.len(),
                max: MAX_NAME_LEN,
            });
        }
        Ok(UserName(name.to_owned()))
    }

    /// The longest name that keeps the rule made of `name`'s characters:
    /// whitespace and control characters left out, cut at a character
    /// boundary to [`MAX_NAME_LEN`] bytes. `None` if nothing is left. For
    /// names saved before the rule was in bytes (a front end keeps the
    /// user's identity and says the name was shortened).
    pub fn shortened(name: &str) -> Option<Self> {
        let mut kept = String::new();
        for c in name
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
        {
            if kept.len() + c.len_utf8() > MAX_NAME_LEN {
                break;
            }
            kept.push(c);
        }
        UserName::new(&kept).ok()
    }

    /// Whether someone else's name, read from the network, keeps the rule.
    pub fn is_valid(name: &str) -> bool {
        UserName::new(name).is_ok()
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names_are_checked_in_bytes_with_a_clear_error() {
        assert_eq!(UserName::new("alice").unwrap().as_str(), "alice");
        assert!(UserName::new(&"a".repeat(MAX_NAME_LEN)).is_ok());
        // 16 Cyrillic letters are 32 bytes; 17 are 34.
        assert!(UserName::new(&"ж".repeat(16)).is_ok());
        let err = UserName::new(&"ж".repeat(17)).unwrap_err();
        assert_eq!(err, UserNameError::TooLong { len: 34, max: 32 });
        assert!(err.to_string().contains("2 to 4 bytes"), "{err}");
    }

    #[test]
    fn empty_spaced_and_control_names_are_refused() {
        assert_eq!(UserName::new(""), Err(UserNameError::Empty));
        assert_eq!(UserName::new("  "), Err(UserNameError::Empty));
        assert!(UserName::new("two words")
            .unwrap_err()
            .to_string()
            .contains("two-words"));
        assert_eq!(
            UserName::new("bell\u{7}"),
            Err(UserNameError::ControlCharacter)
        );
        assert!(!UserName::is_valid("tab\tname"));
        assert!(UserName::is_valid("bob"));
    }

    #[test]
    fn an_old_long_name_is_shortened_at_a_character_boundary() {
        let long = "ж".repeat(20);
        let short = UserName::shortened(&long).unwrap();
        assert_eq!(short.as_str(), "ж".repeat(16));
        assert_eq!(
            UserName::shortened("two words\t!").unwrap().as_str(),
            "twowords!"
        );
        assert_eq!(UserName::shortened(" \n "), None);
    }
}
