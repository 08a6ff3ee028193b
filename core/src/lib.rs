//! # p2pchat-core
//!
//! The protocol engine of p2pchat, written sans-IO: nothing in this crate
//! opens a socket, reads a clock, spawns a thread or sleeps. Time is passed
//! in by the host (milliseconds since the Unix epoch) and randomness comes
//! from an RNG the host hands over, so the same code runs in a tokio node, in
//! the browser (compiled to wasm32) and in a deterministic simulator.
//!
//! The modules so far hold the cryptographic vocabulary every later layer
//! speaks:
//!
//! - [`identity`]: a peer's Ed25519 key pair; its public key is its [`PeerId`].
//! - [`room`]: a room's random [`RoomId`], its Fernet [`RoomKey`], its display
//!   [`RoomName`] and the one-way [`RendezvousTag`] the signaling server sees.
//! - [`chat_id`]: the [`ChatId`] capability string that carries a room's key
//!   from one person to another, and strict parsing of it.
//! - [`seal`]: sign-then-encrypt and decrypt-then-verify of room payloads.

pub mod chat_id;
mod hex_serde;
pub mod identity;
pub mod room;
pub mod seal;
pub mod signaling;

pub use chat_id::{ChatId, ChatIdError};
pub use identity::{Identity, PeerId, PeerIdError};
pub use room::{RendezvousTag, RoomId, RoomKey, RoomName, RoomNameError};
pub use seal::{Opened, RoomCipher, SealError};

/// Time as the host passes it in: milliseconds since the Unix epoch.
pub type UnixMillis = u64;
