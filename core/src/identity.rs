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

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// Length of a peer id in bytes (an Ed25519 public key).
pub const PEER_ID_LEN: usize = 32;
/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// Number of hex characters in the short, human-facing form of a peer id.
pub const SHORT_ID_LEN: usize = 8;

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
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
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
pub fn verify_with(
    key: &VerifyingKey,
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), VerifyError> {
    let signature = Signature::from_bytes(signature);
    key.verify_strict(message, &signature)
        .map_err(|_| VerifyError::BadSignature)
}

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
