//! Rate: a token bucket per source address.
//!
//! Each source (IP and port) may send `rate` datagrams per second on
//! average and `burst` at once; beyond that its datagrams are dropped and
//! counted before they are even parsed, so a flood from one source costs
//! the server almost nothing and everyone else is still answered. At most
//! `max_sources` buckets are kept: a bucket that has refilled completely
//! is the same as no bucket and is forgotten when room is needed; if every
//! tracked source is busy, new sources wait (that is a flood from many
//! addresses, and the cap is what keeps memory bounded).

use std::collections::HashMap;
use std::net::SocketAddr;

use p2pchat_core::rate::TokenBucket;

/// Rate-limit settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateConfig {
    /// Sustained datagrams per second per source.
    pub rate: u64,
    /// Datagrams a source may send at once.
    pub burst: u64,
    /// Most sources tracked.
    pub max_sources: usize,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            rate: 20,
            burst: 40,
            max_sources: 10_000,
        }
    }
}

/// Per-source token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateConfig,
    buckets: HashMap<SocketAddr, TokenBucket>,
    last_prune_ms: u64,
}

impl RateLimiter {
    /// A limiter with these settings.
    pub fn new(config: RateConfig) -> Self {
        RateLimiter {
            config,
            buckets: HashMap::new(),
            last_prune_ms: 0,
        }
    }

    /// Sources currently tracked.
    pub fn sources(&self) -> usize {
        self.buckets.len()
    }

    /// Whether `source` may send one more datagram at `now_ms`.
    pub fn allow(&mut self, now_ms: u64, source: SocketAddr) -> bool {
        if !self.buckets.contains_key(&source) && self.buckets.len() >= self.config.max_sources {
            self.prune(now_ms);
            if self.buckets.len() >= self.config.max_sources {
                return false;
            }
        }
        let RateConfig { rate, burst, .. } = self.config;
        self.buckets
            .entry(source)
            .or_insert_with(|| TokenBucket::full(burst, now_ms))
            .try_take(now_ms, rate, burst)
    }

    /// Forgets buckets that have refilled completely (at most once a
    /// second, so a many-source flood cannot make every datagram scan).
    fn prune(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.last_prune_ms) < 1000 && self.last_prune_ms != 0 {
            return;
        }
        self.last_prune_ms = now_ms;
        let RateConfig { rate, burst, .. } = self.config;
        self.buckets
            .retain(|_, b| !b.is_full_at(now_ms, rate, burst));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let mut rl = RateLimiter::new(RateConfig {
            rate: 10,
            burst: 5,
            max_sources: 100,
        });
        let allowed = (0..20).filter(|_| rl.allow(0, src(1))).count();
        assert_eq!(allowed, 5, "the burst");
        assert!(!rl.allow(50, src(1)), "half a token is not a token");
        assert!(rl.allow(100, src(1)), "one token per 100 ms at 10/s");
        assert!(rl.allow(100, src(2)), "another source has its own bucket");
    }

    #[test]
    fn the_number_of_sources_tracked_is_bounded() {
        let mut rl = RateLimiter::new(RateConfig {
            rate: 1,
            burst: 2,
            max_sources: 10,
        });
        for port in 0..1000 {
            rl.allow(0, src(port));
        }
        assert_eq!(rl.sources(), 10);
        // Once the busy ones have refilled, newcomers get in again.
        assert!(rl.allow(10_000, src(5000)));
        assert!(rl.sources() <= 10);
    }
}
