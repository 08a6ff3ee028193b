//! The fuzz corpus as ordinary tests: every file under
//! `fuzz/corpus/<target>/` goes through the target's check, so an input
//! that once crashed a decoder, or reached new code, fails `cargo test
//! --workspace` (and CI) if it regresses. Also: the seeds, made anew by
//! today's encoders, pass the checks, and the targets listed here are the
//! ones in `fuzz/`.
//!
//! Native only: the corpus is read from the file system.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use p2pchat_fuzz_checks::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn check_of(target: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .unwrap_or_else(|| panic!("no target {target}"))
}

/// Runs every file of `fuzz/corpus/<target>/`; fails naming each file
/// whose check panicked. A missing or empty corpus is a failure too.
fn replay(target: &str) {
    let check = check_of(target);
    let dir = fuzz_dir().join("corpus").join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} cannot be read: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    let mut failed = Vec::new();
    for file in &files {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            // Gone since the listing: a fuzzer running on this corpus
            // replaced it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", file.display()),
        };
        if catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} corpus files of `{target}` fail (replay one with `cargo fuzz run \
         {target} --sanitizer none <file>` in fuzz/):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn corpus_datagram() {
    replay("datagram");
}

#[test]
fn corpus_reassembly() {
    replay("reassembly");
}

#[test]
fn corpus_sealed() {
    replay("sealed");
}

#[test]
fn corpus_control() {
    replay("control");
}

#[test]
fn corpus_signaling() {
    replay("signaling");
}

#[test]
fn corpus_relay_frame() {
    replay("relay_frame");
}

#[test]
fn corpus_chat_id() {
    replay("chat_id");
}

#[test]
fn fresh_seeds_pass_the_checks() {
    let seeds = p2pchat_fuzz_checks::seeds::seeds();
    for (target, _) in TARGETS {
        assert!(
            seeds.iter().any(|s| s.target == *target),
            "no seed for {target}"
        );
    }
    for seed in &seeds {
        let check = check_of(seed.target);
        if catch_unwind(AssertUnwindSafe(|| check(&seed.bytes))).is_err() {
            panic!("seed {}/{} fails its check", seed.target, seed.name);
        }
    }
}

#[test]
fn every_fuzz_target_is_checked_and_has_a_corpus() {
    let names = |dir: &str, strip: &str| -> BTreeSet<String> {
        std::fs::read_dir(fuzz_dir().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .map(|n| n.trim_end_matches(strip).to_owned())
            .collect()
    };
    let listed: BTreeSet<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(names("fuzz_targets", ".rs"), listed);
    assert_eq!(names("corpus", ""), listed);
}
