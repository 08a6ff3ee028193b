//! Writes the seed corpus made by the real encoders
//! (`p2pchat_fuzz_checks::seeds`) into `fuzz/corpus/<target>/seed-<name>`,
//! or under the directory given as the only argument.
//!
//! `cargo run -p p2pchat-fuzz-checks --bin fuzz-seeds`

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus"),
    };
    let seeds = p2pchat_fuzz_checks::seeds::seeds();
    for seed in &seeds {
        let dir = root.join(seed.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{}", seed.name)), &seed.bytes)?;
    }
    let root = root.canonicalize().unwrap_or(root);
    println!("{} seeds written under {}", seeds.len(), root.display());
    Ok(())
}
