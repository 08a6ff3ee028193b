//! Tests of core's cryptographic vocabulary: identity, room, Chat ID, seal.
//!
//! They run natively (`cargo test`) and in headless Chromium (`wasm-pack
//! test --headless --chrome core`): on wasm32 each submodule swaps the
//! `#[test]` attribute for `wasm_bindgen_test`.

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod chat_id;
mod identity;
mod room;
mod seal;
mod signaling;
mod verification;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// A deterministic RNG for reproducible tests.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}
