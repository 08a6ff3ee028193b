//! `p2pchat-signaling`: the rendezvous server.
//!
//! Peers of a room find each other here by an opaque rendezvous tag derived
//! one-way from the room key; the server never sees a room id, key, name,
//! username or message. This first version binds its UDP socket and counts
//! what arrives; the registration protocol comes with its own issue.

// Stop-signal handling is identical for every p2pchat daemon; the layout
// has no room for a helper crate and core stays free of IO, so the node's
// module is compiled here too: one place to get the readiness race right.
#[path = "../../native-node/src/shutdown.rs"]
mod shutdown;

use std::io::IsTerminal;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Parser;
use tokio::net::UdpSocket;

/// Largest datagram the server reads; anything longer is truncated by the
/// kernel and dropped.
const MAX_DATAGRAM: usize = 2048;

/// Rendezvous server for p2pchat peers.
#[derive(Debug, Parser)]
#[command(name = "p2pchat-signaling", version, about)]
struct Args {
    /// UDP address to listen on.
    #[arg(long, default_value = "0.0.0.0:5555")]
    listen: SocketAddr,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let mut shutdown = shutdown::Shutdown::install()?;
    let socket = UdpSocket::bind(args.listen)
        .await
        .with_context(|| format!("cannot bind UDP {} (try --listen)", args.listen))?;
    let local = socket.local_addr().context("reading the local address")?;
    // Printed on stdout so scripts and tests can learn a port picked with :0.
    println!("p2pchat-signaling listening on {local}");
    tracing::info!(%local, "listening");

    let mut dropped: u64 = 0;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let outcome = loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((len, from)) => {
                    dropped += 1;
                    tracing::debug!(%from, len, "dropped datagram: no protocol handler yet");
                }
                // A peer's ICMP "port unreachable" surfaces here: keep serving.
                Err(e) if is_transient(&e) => tracing::debug!(error = %e, "recv failed"),
                // Anything else would fail again at once: stop rather than spin.
                Err(e) => break Err(e).context("receiving on the UDP socket"),
            },
            r = shutdown.requested() => break r,
        }
    };
    tracing::info!(dropped, "stopped");
    outcome
}

/// Receive errors that concern one datagram or peer, not the socket.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, Interrupted};
    matches!(e.kind(), ConnectionRefused | ConnectionReset | Interrupted)
}
