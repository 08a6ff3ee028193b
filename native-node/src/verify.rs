//! Signature batches on every core.
//!
//! The engine checks the signatures of what arrives together in one batch
//! (`p2pchat_core::verification`); a batch is a plain value, so the node
//! hands large ones to rayon's pool, cut in one piece per thread. The
//! verdicts are the same however a batch is cut: that is the verification
//! rule's promise, not this file's.

use p2pchat_core::verification::Batch;
use rayon::prelude::*;

/// Below this many signatures a batch runs on the engine's thread: the
/// hand-off would cost more than it saves.
const SPREAD_FROM: usize = 16;

/// The node's [`p2pchat_core::verification::Verifier`].
pub fn on_all_cores(batch: Batch) -> Vec<bool> {
    let threads = rayon::current_num_threads();
    if batch.len() < SPREAD_FROM || threads < 2 {
        return batch.verdicts();
    }
    batch
        .split(threads)
        .par_iter()
        .map(Batch::verdicts)
        .collect::<Vec<_>>()
        .concat()
}
