//! `p2pchat-node`: the peer a person runs.
//!
//! It drives the protocol engine of `p2pchat-core` over one UDP socket and
//! talks to the user through a line-based REPL. Protocol decisions live in
//! core; this binary only moves bytes, time and commands in and out.

mod cli;
mod repl;
mod shutdown;
mod udp;

use std::io::IsTerminal;

use anyhow::{Context, Result};
use clap::Parser;
use p2pchat_core::Identity;
use rand_core::OsRng;

use crate::cli::Args;

fn main() -> Result<()> {
    let args = Args::parse();
    args.validate()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let outcome = runtime.block_on(run(args));
    // Don't wait on anything still parked in the runtime at exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    outcome
}

async fn run(args: Args) -> Result<()> {
    let mut shutdown = shutdown::Shutdown::install()?;
    let socket = udp::bind(args.host, args.port).await?;
    let local = socket
        .local_addr()
        .context("reading the UDP socket's local address")?;
    // The identity is per process until the durable store exists.
    let identity = Identity::generate(&mut OsRng);

    println!("p2pchat node {}", env!("CARGO_PKG_VERSION"));
    println!(
        "  user    {} (peer {})",
        args.username,
        identity.peer_id().short()
    );
    println!("  udp     {local}");
    for server in &args.signal {
        println!("  signal  {server}");
    }
    println!("Type /help for commands.");
    tracing::info!(%local, username = %args.username, "node started");

    let outcome = tokio::select! {
        r = repl::run() => r,
        r = shutdown.requested() => r,
    };
    tracing::info!("node stopped");
    println!("bye");
    outcome
}
