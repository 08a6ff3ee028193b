//! Signature batches on every core.
//!
//! The engine checks the signatures of what arrives together in one batch
//! (`p2pchat_core::verification`); a batch is a plain value, so the node
//! cuts a large one in one piece per core: the engine's thread checks the
//! first itself while rayon's pool checks the others (the engine's thread
//! neither sleeps through the batch nor wakes more threads than there are
//! pieces for). The verdicts are the same however a batch is cut: that is
//! the verification rule's promise, not this file's.

use p2pchat_core::verification::Batch;

/// Below this many signatures a batch runs on the engine's thread: the
/// hand-off would cost more than it saves.
const SPREAD_FROM: usize = 16;

/// The node's [`p2pchat_core::verification::Verifier`].
pub fn on_all_cores(batch: Batch) -> Vec<bool> {
    let threads = rayon::current_num_threads();
    if batch.len() < SPREAD_FROM || threads < 2 {
        return batch.verdicts();
    }
    let pieces = batch.split(threads);
    let mut verdicts: Vec<Vec<bool>> = vec![Vec::new(); pieces.len()];
    let (Some((here, others)), Some((mine, theirs))) =
        (pieces.split_first(), verdicts.split_first_mut())
    else {
        return Vec::new();
    };
    rayon::in_place_scope(|scope| {
        for (piece, out) in others.iter().zip(theirs.iter_mut()) {
            scope.spawn(move |_| *out = piece.verdicts());
        }
        *mine = here.verdicts();
    });
    verdicts.concat()
}

#[cfg(test)]
mod tests {
    use p2pchat_core::verification::{Batch, Check, Rule};
    use p2pchat_core::Identity;

    use super::*;

    #[test]
    fn a_batch_spread_over_the_cores_gives_each_signature_its_own_verdict() {
        // Enough signatures to be spread, a forged one among them: every
        // verdict, in order, is the one the signature gets alone.
        let signers: Vec<Identity> = (0..4u8)
            .map(|i| Identity::from_secret_bytes(&[i + 1; 32]))
            .collect();
        let mut checks = Vec::new();
        for i in 0..(4 * SPREAD_FROM) {
            let message = format!("message {i}").into_bytes();
            let signer = &signers[i % signers.len()];
            let mut signature = signer.sign(&message);
            if i % 13 == 5 {
                signature[40] ^= 1;
            }
            checks.push(Check::new(
                Rule::Zip215,
                signer.peer_id(),
                message,
                signature,
            ));
        }
        let alone: Vec<bool> = checks.iter().map(Check::verify).collect();
        assert!(alone.iter().any(|ok| !ok) && alone.iter().filter(|ok| **ok).count() > 50);
        assert_eq!(on_all_cores(Batch::new(checks.clone(), [1; 32])), alone);
        // And a small batch, run in place.
        let few: Vec<Check> = checks.into_iter().take(3).collect();
        let alone: Vec<bool> = few.iter().map(Check::verify).collect();
        assert_eq!(on_all_cores(Batch::new(few, [2; 32])), alone);
    }
}
