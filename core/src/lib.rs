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
//! - [`identity`]: a peer's Ed25519 key pair; its public key is its
//!   [`PeerId`]; a person's display name, [`UserName`].
//! - [`room::id`]: a room's random [`RoomId`], its Fernet [`RoomKey`], its
//!   display [`RoomName`] and the one-way [`RendezvousTag`] the signaling
//!   server sees.
//! - [`chat_id`]: the [`ChatId`] capability string that carries a room's key
//!   from one person to another, and strict parsing of it.
//! - [`seal`]: sign-then-encrypt and decrypt-then-verify of room payloads.
//! - [`addr`]: which addresses are ever sent to or passed on.
//!
//! The engine is a [`Node`] holding [`room`]s; each room is a state machine
//! whose protocol is one concept per module, each handling its own messages
//! and timers:
//!
//! - [`clock`]: Lamport time, per-author sequence numbers, causal
//!   dependencies and version vectors.
//! - [`history`]: causal delivery through a bounded buffer, the canonical
//!   `(lamport, author)` order every member shows, and this node's own
//!   events.
//! - [`membership`]: member tables, heartbeats and hints, online → suspect
//!   → offline, goodbyes.
//! - [`path`]: which addresses a member proved it is at (challenge and
//!   response), and the 3× budget for answering addresses that did not.
//! - [`lateness`]: which messages are late, the same for every member.
//! - [`equivocation`]: event digests; forks of an author's events found
//!   through summaries, kept as proof, shown and passed on.
//! - [`replication`]: anti-entropy — digests, summaries, pushes in bounded
//!   batches, a per-peer rate budget.
//! - [`discovery`]: bootstrap addresses and signaling registrations and
//!   lookups.
//!
//! Around them:
//!
//! - [`node`]: the [`Node`]: routes datagrams to rooms by rendezvous tag,
//!   reassembles fragments, takes commands.
//! - [`output`]: the one queue of outputs, and its "stored before sent or
//!   shown" rule.
//! - [`store`]: what a host store must do with records, and a conformance
//!   suite for any store.
//! - [`chats`]: the user's chats as every front end shows them — names,
//!   current chat, invites, unread counts, delivery state.
//! - [`counters`]: every drop, by reason.
//! - [`wire`]: the versioned JSON envelope, fragmentation and reassembly,
//!   size limits.
//! - [`signaling`]: the messages spoken with a rendezvous server;
//!   [`rendezvous`]: the server's registry, sans-IO too (the
//!   `p2pchat-signaling` binary drives it; so does the simulator).
//! - [`rate`]: token buckets, for every rate limit in the system.
//! - [`relay`]: the frames a browser peer and the native node's relay
//!   exchange over a WebSocket (datagram plus remote address).

pub mod addr;
pub mod chat_id;
pub mod chats;
pub mod checkpoint;
pub mod clock;
pub mod counters;
pub mod discovery;
pub mod equivocation;
mod hex_serde;
pub mod history;
pub mod identity;
pub mod lateness;
pub mod membership;
pub mod node;
pub mod output;
pub mod path;
pub mod quota;
pub mod rate;
pub mod relay;
pub mod rendezvous;
pub mod replication;
pub mod room;
pub mod seal;
pub mod signaling;
pub mod store;
pub mod verification;
pub mod wire;

pub use chat_id::{ChatId, ChatIdError};
pub use counters::{Counters, DropReason};
pub use identity::{Identity, PeerId, PeerIdError, UserName, UserNameError};
pub use node::{CommandError, Config, Node};
pub use output::{AppEvent, BatchId, Output, Persist, Read, ReadId, Transmit};
pub use room::{RendezvousTag, RoomId, RoomKey, RoomName, RoomNameError};
pub use seal::{Opened, RoomCipher, SealError, SealVersion};
pub use store::{AsyncStore, Loaded, MemoryStore, Record, Store};

/// Time as the host passes it in: milliseconds since the Unix epoch.
pub type UnixMillis = u64;
