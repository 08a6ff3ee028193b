//! Verification: one verdict per signature, however it is checked.
//!
//! Everything a member says is signed with its Ed25519 key (see
//! [`crate::seal`]), and whether a signature counts must be decided the
//! same way by every member: a signature some members accept and others
//! refuse would part their histories. Ed25519 implementations disagree
//! exactly on crafted signatures (keys and `R` values of small order,
//! non-canonical encodings, whether the equation is multiplied by the
//! cofactor), and batch verification — one multi-scalar multiplication for
//! many signatures, several times cheaper per signature — agrees with
//! verifying one at a time only under the cofactored equation. So the rule
//! is fixed by the token's seal version, and each rule gives one verdict
//! whichever way it is computed:
//!
//! - [`Rule::Zip215`], seal version 2 (everything sealed by this code):
//!   the rule of [ZIP 215]: `A` and `R` any encodings of curve points,
//!   `s` canonical, and `[8][s]B = [8]R + [8][k]A`. Under it a batch
//!   passes exactly when every signature in it passes alone, so members
//!   may check a catch-up in batches of any size and order, or one by one,
//!   and reach the same verdicts.
//! - [`Rule::Strict`], seal version 1 (tokens sealed before version 2):
//!   RFC 8032 strict verification (`ed25519-dalek`'s `verify_strict`: no
//!   small-order key or `R`, canonical encodings, the cofactorless
//!   equation), one signature at a time, as members checked them when they
//!   were sealed. Stored histories keep their verdicts, and members that
//!   have not upgraded agree on every version 1 token.
//!
//! The version is signed with the payload (its own signing domain), so no
//! one can relabel a token to have its signature judged by the other rule.
//!
//! A [`Batch`] is a plain value: [`Batch::verdicts`] needs nothing but the
//! batch, so a host may run batches on other threads (the native node
//! splits a large one across its cores, see [`Verifier`]); the engine
//! itself never spawns. When a batch fails as a whole, each of its
//! signatures is checked alone to find the bad ones; that costs a hostile
//! member's batch-mates time, never a different verdict.
//!
//! [ZIP 215]: https://zips.z.cash/zip-0215

use ed25519_dalek::VerifyingKey;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::identity::{PeerId, SIGNATURE_LEN};

/// Which signatures count (fixed by the seal version, see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// RFC 8032 strict, one at a time (seal version 1); carries the
    /// author's key, already decompressed.
    Strict(VerifyingKey),
    /// ZIP 215, batch or single (seal version 2).
    Zip215,
}

/// One signature to check: `author` signed `message` with `signature`.
#[derive(Clone, Debug)]
pub struct Check {
    rule: Rule,
    author: PeerId,
    message: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
}

impl Check {
    /// A check of `signature` by `author` over `message` under `rule`.
    pub fn new(
        rule: Rule,
        author: PeerId,
        message: Vec<u8>,
        signature: [u8; SIGNATURE_LEN],
    ) -> Self {
        Check {
            rule,
            author,
            message,
            signature,
        }
    }

    /// Checks this one signature alone.
    pub fn verify(&self) -> bool {
        match &self.rule {
            Rule::Strict(key) => {
                crate::identity::verify_with(key, &self.message, &self.signature).is_ok()
            }
            Rule::Zip215 => zip215_single(&self.author, &self.message, &self.signature),
        }
    }
}

/// Signatures checked together: the verdict of each is the verdict it
/// would get alone (see the module docs).
#[derive(Clone, Debug)]
pub struct Batch {
    checks: Vec<Check>,
    /// Seeds the batch equation's random coefficients. They need only be
    /// unpredictable to whoever made the signatures; the engine draws
    /// them from its RNG, which the host seeds from the OS.
    seed: [u8; 32],
}

/// Runs batches for the engine: [`Batch::verdicts`] on the engine's thread
/// (the default), or spread over threads by the host
/// ([`crate::node::Node::set_verifier`]). Whatever it does, it returns one
/// verdict per check, in order.
pub type Verifier = fn(Batch) -> Vec<bool>;

impl Batch {
    /// A batch of `checks`, its coefficients drawn from `seed`.
    pub fn new(checks: Vec<Check>, seed: [u8; 32]) -> Self {
        Batch { checks, seed }
    }

    /// Number of signatures.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Cuts the batch into at most `parts` batches of about equal size, in
    /// order, each with its own coefficients: their verdicts, concatenated,
    /// are this batch's.
    pub fn split(self, parts: usize) -> Vec<Batch> {
        let parts = parts.clamp(1, self.checks.len().max(1));
        let size = self.checks.len().div_ceil(parts).max(1);
        let mut rng = ChaCha20Rng::from_seed(self.seed);
        let mut out = Vec::with_capacity(parts);
        let mut checks = self.checks.into_iter().peekable();
        while checks.peek().is_some() {
            let chunk: Vec<Check> = checks.by_ref().take(size).collect();
            let mut seed = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rng, &mut seed);
            out.push(Batch::new(chunk, seed));
        }
        out
    }

    /// One verdict per signature, in order: version 2 signatures in one
    /// batch equation (each alone if the batch fails), version 1 ones
    /// alone.
    pub fn verdicts(&self) -> Vec<bool> {
        let mut verdicts = vec![false; self.checks.len()];
        let mut batched = Vec::new();
        for (i, check) in self.checks.iter().enumerate() {
            match check.rule {
                Rule::Strict(_) => verdicts[i] = check.verify(),
                Rule::Zip215 => batched.push(i),
            }
        }
        let all_pass = batched.len() > 1 && self.zip215_together(&batched);
        for i in batched {
            verdicts[i] = all_pass || self.checks[i].verify();
        }
        verdicts
    }

    /// Whether the version 2 signatures of the batch pass the batch
    /// equation together: what [`Batch::verdicts`] tries first. Under ZIP
    /// 215 this holds exactly when each passes alone.
    pub fn passes_together(&self) -> bool {
        let batched: Vec<usize> = (0..self.checks.len())
            .filter(|&i| self.checks[i].rule == Rule::Zip215)
            .collect();
        self.zip215_together(&batched)
    }

    /// Whether every signature at `indices` passes, in one equation.
    #[cfg(not(fuzzing))]
    fn zip215_together(&self, indices: &[usize]) -> bool {
        let mut batch = ed25519_zebra::batch::Verifier::new();
        for &i in indices {
            let check = &self.checks[i];
            let key = ed25519_zebra::VerificationKeyBytes::from(*check.author.as_bytes());
            let signature = ed25519_zebra::Signature::from_bytes(&check.signature);
            batch.queue((key, signature, &check.message));
        }
        batch.verify(ChaCha20Rng::from_seed(self.seed)).is_ok()
    }

    /// Fuzzing builds: signatures are the hash of `crate::identity`'s
    /// hook, checked one by one.
    #[cfg(fuzzing)]
    fn zip215_together(&self, indices: &[usize]) -> bool {
        indices.iter().all(|&i| self.checks[i].verify())
    }
}

#[cfg(not(fuzzing))]
fn zip215_single(author: &PeerId, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
    let Ok(key) = ed25519_zebra::VerificationKey::try_from(*author.as_bytes()) else {
        return false;
    };
    key.verify(&ed25519_zebra::Signature::from_bytes(signature), message)
        .is_ok()
}

/// Fuzzing builds: the signature hook of [`crate::identity`] (a hash, so
/// the fuzzer reaches what lies behind a signature).
#[cfg(fuzzing)]
fn zip215_single(author: &PeerId, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
    crate::identity::hook_signature(author.as_bytes(), message) == *signature
}
