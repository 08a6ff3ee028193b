//! Token buckets: how often something may happen on average, and how much
//! of it at once.
//!
//! A bucket holds at most `burst` tokens and earns `rate` tokens per
//! second; each action spends one. Tokens are counted in thousandths, so
//! calls less than a token's worth of time apart still earn their share.
//! Time is the host's (milliseconds), as everywhere in core; a clock that
//! goes backwards earns nothing, never a negative amount. The same bucket
//! paces replication pushes per peer, signaling requests per source, and
//! relayed datagrams per browser connection.

use crate::UnixMillis;

/// One token bucket. Rate and burst are passed in on each call: they live
/// in the caller's configuration, not in every bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens, in thousandths.
    milli: u64,
    /// When `milli` was last brought up to date.
    at: UnixMillis,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(burst: u64, now: UnixMillis) -> Self {
        TokenBucket {
            milli: burst.saturating_mul(1000),
            at: now,
        }
    }

    fn refill(&mut self, now: UnixMillis, rate: u64, burst: u64) {
        let earned = now.saturating_sub(self.at).saturating_mul(rate);
        self.milli = self
            .milli
            .saturating_add(earned)
            .min(burst.saturating_mul(1000));
        self.at = self.at.max(now);
    }

    /// Whole tokens available at `now`.
    pub fn available(&mut self, now: UnixMillis, rate: u64, burst: u64) -> u64 {
        self.refill(now, rate, burst);
        self.milli / 1000
    }

    /// Spends `n` tokens (at most what is there).
    pub fn spend(&mut self, n: u64) {
        self.milli = self.milli.saturating_sub(n.saturating_mul(1000));
    }

    /// Spends one token if there is one at `now`.
    pub fn try_take(&mut self, now: UnixMillis, rate: u64, burst: u64) -> bool {
        if self.available(now, rate, burst) >= 1 {
            self.spend(1);
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again at `now`: then it is the same as a
    /// new one, and a caller keeping many may forget it.
    pub fn is_full_at(&self, now: UnixMillis, rate: u64, burst: u64) -> bool {
        let mut b = *self;
        b.refill(now, rate, burst);
        b.milli >= burst.saturating_mul(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = TokenBucket::full(3, 1_000);
        assert!((0..3).all(|_| b.try_take(1_000, 10, 3)));
        assert!(!b.try_take(1_000, 10, 3));
        // 10 per second: one token per 100 ms, earned in part-steps too.
        assert!(!b.try_take(1_050, 10, 3));
        assert!(b.try_take(1_100, 10, 3));
        assert!(!b.try_take(1_100, 10, 3));
        // Never more than the burst.
        assert_eq!(b.available(60_000, 10, 3), 3);
        assert!(b.is_full_at(60_000, 10, 3));
    }

    #[test]
    fn time_going_backwards_earns_nothing() {
        let mut b = TokenBucket::full(1, 5_000);
        assert!(b.try_take(5_000, 1, 1));
        assert!(!b.try_take(1_000, 1, 1));
        assert!(!b.try_take(5_500, 1, 1));
        assert!(b.try_take(6_000, 1, 1));
        assert!(!b.is_full_at(0, 1, 1));
    }

    #[test]
    fn spending_many_at_once() {
        let mut b = TokenBucket::full(1_024, 0);
        assert_eq!(b.available(0, 20_000, 1_024), 1_024);
        b.spend(1_000);
        assert_eq!(b.available(0, 20_000, 1_024), 24);
        b.spend(u64::MAX);
        assert_eq!(b.available(0, 20_000, 1_024), 0);
        assert_eq!(b.available(1, 20_000, 1_024), 20);
    }
}
