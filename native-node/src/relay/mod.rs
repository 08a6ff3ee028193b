//! The browser relay: a WebSocket endpoint on loopback through which a
//! browser peer reaches UDP — for p2pchat and nothing else.
//!
//! A browser cannot open a UDP socket, so the browser peer (the same protocol
//! core, compiled to wasm) connects to this relay in the user's local native
//! node. Each WebSocket connection gets **one UDP socket of its own**, bound
//! on `udp_host` port 0 when the connection opens and closed with it: the
//! browser is a peer with its own UDP address, never a tenant of the node's
//! socket, and nothing one connection sends is seen by another.
//!
//! Every WebSocket binary message is exactly one frame; the frame format is
//! documented in `p2pchat_core::relay`. In short: a `datagram` frame carries
//! a remote address and a payload (browser → relay: send it from this
//! connection's socket; relay → browser: it arrived from that address), and
//! the relay sends one `bound` frame first, holding the socket's own address.
//! The relay holds no key and moves ciphertext only.
//!
//! What it will not do, whoever asks:
//!
//! - **Serve another site** ([`origin`]): only the page the node serves
//!   (or an origin given with `--relay-origin`) and local programs without
//!   an `Origin` get in; any other page, on any other host or port, gets
//!   HTTP 403.
//! - **Carry anything but p2pchat** ([`connection`]): a datagram leaves
//!   only if it is within the MTU and parses as a p2pchat datagram, to an
//!   address core's address rule calls usable; only p2pchat datagrams are
//!   passed back to the page.
//! - **Exceed its budgets**: a token bucket per connection and direction
//!   (`rate` datagrams per second, `burst` at once), and one shared by all
//!   connections of an origin (`origin_rate`, `origin_burst`).
//! - **Be locked by idle sockets** ([`slots`]): handshakes and open
//!   connections are separate pools; a handshake must finish within
//!   [`connection::HANDSHAKE_TIMEOUT`], and the oldest is pushed out when
//!   the handshake pool is full; when the open pool is full, a page gets in
//!   by closing a local program's connection.
//!
//! Frames the relay cannot use are dropped and counted without closing the
//! connection; a message larger than `MAX_FRAME` closes that connection.
//! The relay listens on loopback only.

mod connection;
mod origin;
mod slots;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use p2pchat_core::wire;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::warn;

use connection::{connection, OriginBudgets, Shared, CLOSE_TIMEOUT};
pub use origin::DEFAULT_ORIGINS;
use slots::Slots;

/// Relay settings.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Where the WebSocket listener binds; must be a loopback address.
    pub listen: SocketAddr,
    /// The address each connection's UDP socket binds (on port 0).
    pub udp_host: IpAddr,
    /// `Origin` values allowed, compared exactly (default: the page the
    /// node serves, [`DEFAULT_ORIGINS`]).
    pub allowed_origins: Vec<String>,
    /// Most connections open at once (default 32).
    pub max_connections: usize,
    /// Most handshakes in progress at once (default 16).
    pub max_pending: usize,
    /// Datagrams per second per connection, in each direction (default 5000).
    pub rate: u32,
    /// Datagrams a connection may send or receive at once (default 1000).
    pub burst: u32,
    /// Datagrams per second sent by all connections of one origin
    /// together (default 10,000).
    pub origin_rate: u32,
    /// Datagrams all connections of one origin may send at once (default
    /// 2,000).
    pub origin_burst: u32,
    /// Largest datagram sent (default: p2pchat's MTU, 1,200 bytes).
    pub mtu: usize,
}

impl RelayConfig {
    /// Settings with the default bounds and origins.
    pub fn new(listen: SocketAddr, udp_host: IpAddr) -> Self {
        RelayConfig {
            listen,
            udp_host,
            allowed_origins: DEFAULT_ORIGINS.iter().map(|o| (*o).to_owned()).collect(),
            max_connections: 32,
            max_pending: 16,
            rate: 5000,
            burst: 1000,
            origin_rate: 10_000,
            origin_burst: 2_000,
            mtu: wire::DEFAULT_MTU,
        }
    }
}

/// A bound relay, ready to [`run`](Relay::run).
pub struct Relay {
    listener: TcpListener,
    local: SocketAddr,
    config: RelayConfig,
}

impl Relay {
    /// Binds the listener (TCP) now, so the caller can print the address
    /// before serving. Refuses a listen address that is not loopback.
    pub async fn bind(config: RelayConfig) -> anyhow::Result<Relay> {
        if !config.listen.ip().is_loopback() {
            bail!(
                "the browser relay listens on loopback only, not {} (use 127.0.0.1 or [::1])",
                config.listen
            );
        }
        let zero = [
            config.max_connections,
            config.max_pending,
            config.rate as usize,
            config.burst as usize,
            config.origin_rate as usize,
            config.origin_burst as usize,
        ];
        if zero.contains(&0) {
            bail!("the browser relay needs every connection limit and budget to be at least 1");
        }
        if config.mtu < wire::MIN_MTU {
            bail!(
                "the browser relay's MTU is at least {} bytes",
                wire::MIN_MTU
            );
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot bind the browser relay on {}", config.listen))?;
        let local = listener
            .local_addr()
            .context("reading the browser relay's local address")?;
        Ok(Relay {
            listener,
            local,
            config,
        })
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `shutdown` changes to true (or its sender is dropped);
    /// then stops accepting, closes every connection with a WebSocket Close
    /// frame (1001, going away), and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let Relay {
            listener, config, ..
        } = self;
        let config = Arc::new(config);
        let slots = Slots::new(config.max_pending, config.max_connections);
        let budgets = Arc::new(OriginBudgets::new(config.origin_rate, config.origin_burst));
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped(&mut shutdown) => break,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = joined {
                        warn!(error = %e, "relay connection task failed");
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let ticket = slots.arrive();
                        let shared = Shared {
                            config: Arc::clone(&config),
                            slots: Arc::clone(&slots),
                            budgets: Arc::clone(&budgets),
                        };
                        tasks.spawn(connection(stream, peer, shared, shutdown.clone(), ticket));
                    }
                    Err(e) => {
                        // E.g. out of file descriptors: back off, keep serving.
                        warn!(error = %e, "relay accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(listener);
        tracing::info!(evicted = slots.evicted(), "relay stopping");
        let drained = timeout(CLOSE_TIMEOUT + Duration::from_millis(500), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!("relay connections did not close in time; aborting them");
            tasks.shutdown().await;
        }
        Ok(())
    }
}

/// Resolves once the flag turns true or can no longer change.
async fn stopped(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests;
