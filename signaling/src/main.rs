//! `p2pchat-signaling`: the rendezvous server.
//!
//! Peers of a room find each other here by an opaque rendezvous tag derived
//! one-way from the room key; the server never sees a room id, key, name,
//! username or message. The rules are core's `rendezvous` module; `rate.rs` for the
//! per-source limit, `key.rs` for the key answers are signed with, and
//! `udp.rs` for the driver.

mod cli;
mod key;
mod rate;
mod udp;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use rand_core::RngCore;
use tokio::net::UdpSocket;

use crate::cli::Args;
use crate::rate::{RateConfig, RateLimiter};
use p2pchat_core::rendezvous::{Limits, Registry};
use p2pchat_host::shutdown::Shutdown;

fn main() -> Result<()> {
    let args = Args::parse();
    p2pchat_host::init_logging("info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let mut shutdown = Shutdown::install()?;
    let socket = UdpSocket::bind(args.listen)
        .await
        .with_context(|| format!("cannot bind UDP {} (try --listen)", args.listen))?;
    let local = socket.local_addr().context("reading the local address")?;
    let limits = Limits {
        max_tags: to_usize(args.max_tags),
        max_per_tag: to_usize(args.max_per_tag),
        max_entries: to_usize(args.max_entries),
        max_per_source: to_usize(args.max_per_source),
        max_per_source_per_tag: to_usize(args.max_per_source_per_tag),
    };
    // The secret of the order of lookups: nobody may predict who comes
    // first.
    let mut seed = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut seed);
    let rate = RateConfig {
        rate: args.rate,
        burst: args.burst,
        ..RateConfig::default()
    };
    let mut registry = Registry::new(limits, seed);
    let key = match &args.key_file {
        Some(path) => Some(key::load_or_create(path)?),
        None => None,
    };
    // Printed on stdout so scripts and tests can learn a port picked with
    // :0, and operators the key to pin.
    println!("p2pchat-signaling listening on {local}");
    match key {
        Some(key) => {
            let public = key.peer_id();
            println!("p2pchat-signaling answers signed with key {public}");
            println!("  pin it with: p2pchat-node --signal <this server's address>={public}");
            tracing::info!(%public, "answers signed");
            registry.sign_answers(key);
        }
        None => tracing::info!("answers not signed (no --key-file)"),
    }
    tracing::info!(%local, ?limits, ?rate, "listening");
    let outcome = udp::serve(
        socket,
        registry,
        RateLimiter::new(rate),
        Duration::from_secs(args.stats_every),
        &mut shutdown,
    )
    .await;
    tracing::info!("stopped");
    outcome
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
