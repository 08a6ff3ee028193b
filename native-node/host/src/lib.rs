//! # p2pchat-host
//!
//! What every p2pchat process on a host does the same way with the
//! operating system: stop cleanly when asked ([`shutdown`]) and log to
//! standard error ([`init_logging`]). The node and the signaling server
//! both use it; protocol and application rules stay in `p2pchat-core`.

pub mod shutdown;

use std::io::IsTerminal;

/// Logs through `tracing` to standard error, filtered by `RUST_LOG` (or
/// `default_filter` when it is not set), coloured only on a terminal.
pub fn init_logging(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
