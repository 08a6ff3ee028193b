//! # p2pchat-core
//!
//! The protocol engine of p2pchat, written sans-IO: nothing in this crate
//! opens a socket, reads a clock, spawns a thread or sleeps. Time is passed
//! in by the host (milliseconds since the Unix epoch) and randomness comes
//! from an RNG the host hands over, so the same code runs in a tokio node, in
//! the browser (compiled to wasm32) and in a deterministic simulator.
//!
//! The cryptographic vocabulary every layer speaks:
//!
//! - [`identity`]: a peer's Ed25519 key pair; its public key is its [`PeerId`].
//! - [`room`]: a room's random [`RoomId`], its Fernet [`RoomKey`], its display
//!   [`RoomName`] and the one-way [`RendezvousTag`] the signaling server sees.
//! - [`chat_id`]: the [`ChatId`] capability string that carries a room's key
//!   from one person to another, and strict parsing of it.
//! - [`seal`]: sign-then-encrypt and decrypt-then-verify of room payloads.
//!
//! The protocol, one concept per module:
//!
//! - [`clock`]: Lamport time, per-author sequence numbers, causal
//!   dependencies and version vectors.
//! - [`history`]: causal delivery through a bounded buffer, and the
//!   canonical `(lamport, author)` order every member shows.
//! - [`replication`]: anti-entropy — summaries, pushes in bounded batches,
//!   a per-peer rate budget.
//! - [`membership`]: member lists, heartbeats, online → suspect → offline.
//! - [`wire`]: the versioned JSON envelope, fragmentation and reassembly,
//!   size limits.
//! - [`signaling`]: the messages spoken with a rendezvous server.
//! - [`rendezvous`]: the rendezvous server's registry, sans-IO too (the
//!   `p2pchat-signaling` binary drives it; so does the simulator).
//! - [`rate`]: token buckets, for every rate limit in the system.
//! - [`relay`]: the frames a browser peer and the native node's relay
//!   exchange over a WebSocket (datagram plus remote address).
//! - [`engine`]: the [`Node`] that ties them together, fed datagrams,
//!   timeouts and commands, polled for records, transmits and events.

pub mod chat_id;
pub mod clock;
pub mod engine;
mod hex_serde;
pub mod history;
pub mod identity;
pub mod membership;
pub mod rate;
pub mod relay;
pub mod rendezvous;
pub mod replication;
pub mod room;
pub mod seal;
pub mod signaling;
pub mod wire;

pub use chat_id::{ChatId, ChatIdError};
pub use engine::{AppEvent, CommandError, Config, Counters, Node, Record, RestoreError, Transmit};
pub use identity::{Identity, PeerId, PeerIdError};
pub use room::{RendezvousTag, RoomId, RoomKey, RoomName, RoomNameError};
pub use seal::{Opened, RoomCipher, SealError};

/// Time as the host passes it in: milliseconds since the Unix epoch.
pub type UnixMillis = u64;
