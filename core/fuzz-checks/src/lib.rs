//! What each fuzz target checks, in one place for two callers:
//!
//! - the cargo-fuzz targets in `fuzz/` (libFuzzer, a crate outside the
//!   workspace), each of which is one line calling a function here;
//! - `tests/corpus.rs`, which replays every file of `fuzz/corpus/<target>/`
//!   through the same function in `cargo test --workspace`, so an input
//!   that once found a bug, or reached new code, fails CI if it regresses.
//!
//! Every function takes the fuzzer's bytes, feeds one decoder (or a whole
//! [`p2pchat_core::Node`] or [`p2pchat_core::rendezvous::Registry`]) and
//! **panics** when something is wrong: a panic inside the decoder, or an
//! invariant that does not hold (a round trip that changes a value, a
//! limit exceeded, a datagram the node sends but would itself refuse).
//! Panicking is how a check reports to libFuzzer, so this crate unwraps and
//! asserts freely; it is never linked into a program.
//!
//! | target | decoder |
//! |---|---|
//! | [`datagram`] | `wire::decode`, the JSON envelope |
//! | [`reassembly`] | `wire::Reassembler::push` over a sequence of fragments |
//! | [`sealed`] | `RoomCipher::open` on any token; `wire::Sealed` parsing and what a room does with it |
//! | [`control`] | `wire::Control` and its `is_valid`; a whole node fed a sequence of datagrams |
//! | [`signaling`] | `signaling::Message` decoding and `verify`; `rendezvous::Registry::handle` |
//! | [`relay_frame`] | `relay::Frame::decode` |
//! | [`chat_id`] | `ChatId` parsing |
//!
//! Targets whose decoders sit behind a Fernet HMAC or an Ed25519
//! signature build their inputs from structure (an op code, a peer, a
//! stamp, a payload: see [`input`]) and seal or sign them with fixed keys,
//! so the fuzzer's bytes reach the code behind the check. In fuzzing builds
//! signing costs a hash instead of Ed25519 (the hook at the end of
//! `core/src/identity.rs`); in `cargo test` the same inputs are signed for
//! real, so a replayed input takes the same path.
//!
//! [`seeds`] builds the initial corpus from the real encoders; the
//! `fuzz-seeds` binary writes it to `fuzz/corpus/`.

pub mod chat_id;
pub mod control;
pub mod datagram;
pub mod fixtures;
pub mod input;
mod node;
pub mod reassembly;
pub mod relay_frame;
pub mod sealed;
pub mod seeds;
pub mod signaling;

pub use chat_id::chat_id;
pub use control::control;
pub use datagram::datagram;
pub use reassembly::reassembly;
pub use relay_frame::relay_frame;
pub use sealed::sealed;
pub use signaling::signaling;

/// A target's check: panics on what is wrong.
pub type Check = fn(&[u8]);

/// Every fuzz target: its name (a file `fuzz/fuzz_targets/<name>.rs` and a
/// directory `fuzz/corpus/<name>/`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("datagram", datagram),
    ("reassembly", reassembly),
    ("sealed", sealed),
    ("control", control),
    ("signaling", signaling),
    ("relay_frame", relay_frame),
    ("chat_id", chat_id),
];
