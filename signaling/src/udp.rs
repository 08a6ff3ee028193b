//! The UDP driver: moves datagrams between the socket and the registry,
//! applies the per-source rate limit, expires entries and prints stats.
//! No protocol decision is made here.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::UdpSocket;

use crate::rate::RateLimiter;
use p2pchat_core::rendezvous::{Drop, Registry};

use p2pchat_host::shutdown::Shutdown;

/// Receive buffer: the largest UDP payload, so an oversized datagram is
/// seen whole and counted as such instead of being silently truncated.
const RECV_BUF: usize = 65_536;

/// Serves until a stop is requested or the socket fails for good.
pub async fn serve(
    socket: UdpSocket,
    mut registry: Registry,
    mut limiter: RateLimiter,
    stats_every: Duration,
    shutdown: &mut Shutdown,
) -> Result<()> {
    let start = Instant::now();
    let now_ms = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut buf = vec![0u8; RECV_BUF];
    let mut expire = tokio::time::interval(Duration::from_secs(1));
    expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stats =
        tokio::time::interval_at(tokio::time::Instant::now() + stats_every, stats_every);
    stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((len, from)) => {
                    let now = now_ms();
                    if !limiter.allow(now, from) {
                        registry.stats_mut().received += 1;
                        registry.stats_mut().drop(Drop::RateLimited);
                        continue;
                    }
                    let replies = registry.handle(now, from, &buf[..len]);
                    tracing::trace!(%from, len, replies = replies.len(), "datagram");
                    for (to, bytes) in replies {
                        if let Err(e) = socket.send_to(&bytes, to).await {
                            tracing::debug!(%to, error = %e, "send failed");
                        }
                    }
                }
                // A peer's ICMP "port unreachable" surfaces here: keep serving.
                Err(e) if is_transient(&e) => tracing::debug!(error = %e, "recv failed"),
                // Anything else would fail again at once: stop rather than spin.
                Err(e) => break Err(e).context("receiving on the UDP socket"),
            },
            _ = expire.tick() => registry.expire(now_ms()),
            _ = stats.tick() => log_stats(&registry, &limiter),
            r = shutdown.requested() => break r,
        }
    };
    log_stats(&registry, &limiter);
    outcome
}

fn log_stats(registry: &Registry, limiter: &RateLimiter) {
    tracing::info!(
        entries = registry.entries(),
        tags = registry.tags(),
        sources = limiter.sources(),
        "stats {}",
        registry.stats()
    );
}

/// Receive errors that concern one datagram or peer, not the socket.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, Interrupted};
    matches!(e.kind(), ConnectionRefused | ConnectionReset | Interrupted)
}
