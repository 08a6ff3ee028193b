//! The protocol simulator: many nodes in one process, virtual time, a
//! seeded RNG driving a network with loss, duplication, reordering, delay
//! and partitions, crashes and restarts. Each scenario runs over many seeds
//! and checks the invariants of `harness::Sim::check` after each.
//!
//! Seeds per scenario: 200 natively, 8 in the browser (a tenth, at least
//! one, for the scenarios that simulate hours);
//! `P2PCHAT_SIM_SEEDS=10000` for a soak, `P2PCHAT_SIM_SEED=n` to replay one.

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod hostile;
mod insiders;
mod outsiders;
mod probes;
mod rendezvous;
mod scenarios;

/// Runs `scenario` over the configured seeds; fails with every failing
/// seed listed (and how to replay one).
pub fn for_seeds(name: &str, scenario: fn(u64) -> p2pchat_sim::Check) {
    for_seeds_and(name, scenario, &[]);
}

/// Like [`for_seeds`], over one seed in `divisor` of the configured
/// count (at least one): for scenarios that simulate hours, where the seed
/// only moves the network's loss and timing.
pub fn for_fewer_seeds(name: &str, divisor: u64, scenario: fn(u64) -> p2pchat_sim::Check) {
    let seeds: Vec<u64> = match single_seed() {
        Some(s) => vec![s],
        None => (0..(seed_count() / divisor).max(1)).collect(),
    };
    run_seeds(name, scenario, &seeds);
}

/// Like [`for_seeds`], and also over `regressions`: seeds that once failed
/// (found by a soak), run in every normal run.
pub fn for_seeds_and(name: &str, scenario: fn(u64) -> p2pchat_sim::Check, regressions: &[u64]) {
    let seeds: Vec<u64> = match single_seed() {
        Some(s) => vec![s],
        None => {
            let n = seed_count();
            let extra = regressions.iter().copied().filter(|s| *s >= n);
            (0..n).chain(extra).collect()
        }
    };
    run_seeds(name, scenario, &seeds);
}

fn run_seeds(name: &str, scenario: fn(u64) -> p2pchat_sim::Check, seeds: &[u64]) {
    let mut failures = Vec::new();
    for seed in seeds {
        if let Err(e) = scenario(*seed) {
            failures.push(format!("seed {seed}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} seeds failed (replay with P2PCHAT_SIM_SEED=<seed>):\n{}",
        failures.len(),
        seeds.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[cfg(not(target_arch = "wasm32"))]
fn seed_count() -> u64 {
    std::env::var("P2PCHAT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

#[cfg(target_arch = "wasm32")]
fn seed_count() -> u64 {
    // The browser runs the tests one after the other without yielding to
    // the page, and ChromeDriver gives up on a page busy for 20 s: the
    // whole browser run must stay well under that (natively: 200 seeds).
    4
}

#[cfg(not(target_arch = "wasm32"))]
fn single_seed() -> Option<u64> {
    std::env::var("P2PCHAT_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
}

#[cfg(target_arch = "wasm32")]
fn single_seed() -> Option<u64> {
    None
}
