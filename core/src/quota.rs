//! Quota: how much each author may write in a room.
//!
//! A member can seal as many events as it likes; every other member would
//! store, show and forward them all. So each author's events are charged,
//! in the order of the author's own sequence numbers, against three
//! budgets:
//!
//! - **events**: a bucket of [`Quota::burst_events`] that refills at
//!   [`Quota::events_per_s`];
//! - **bytes** (of sealed tokens): a bucket of [`Quota::burst_bytes`] that
//!   refills at [`Quota::bytes_per_s`];
//! - **storage**: at most [`Quota::total_bytes`] in all, ever.
//!
//! Time is the **author's own**: each event's shown time (see
//! [`crate::history`]), which never goes back along an author's events
//! and cannot run more than a few minutes ahead of the members' clocks
//! (an event from further ahead is not taken yet). So the verdict on an
//! event depends on that event and the author's earlier events alone —
//! its causal past — and every member reaches the same one, whatever
//! arrived when. An event over quota is refused everywhere alike, and
//! since an author's events are delivered in order, nothing it writes
//! after that is delivered either. An honest node checks its own next
//! event against the same budgets before sealing it and tells its user
//! how long to wait ([`OverQuota::retry_after_ms`]).
//!
//! Arithmetic is in integers (thousandths of an event, bytes times
//! milliseconds), so every platform computes the same verdicts.

use std::collections::HashMap;

use crate::identity::PeerId;
use crate::UnixMillis;

/// The budgets of every author in a room. Every member of a room must use
/// the same ones: they are the room's, fixed when it is created and carried
/// in its Chat ID (see [`crate::chat_id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Events per second, sustained.
    pub events_per_s: u64,
    /// Events at once.
    pub burst_events: u64,
    /// Sealed bytes per second, sustained.
    pub bytes_per_s: u64,
    /// Sealed bytes at once.
    pub burst_bytes: u64,
    /// Sealed bytes per author, in all.
    pub total_bytes: u64,
}

impl Default for Quota {
    /// What a chat needs: 20 messages a second with bursts of 200; 64 KiB a
    /// second with bursts of 2 MiB (128 messages of the largest size at
    /// once); 256 MiB per author in all.
    fn default() -> Self {
        Quota {
            events_per_s: 20,
            burst_events: 200,
            bytes_per_s: 64 * 1024,
            burst_bytes: 2 * 1024 * 1024,
            total_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why a written quota is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a quota is EVENTS_PER_S:BURST_EVENTS:BYTES_PER_S:BURST_BYTES:TOTAL_BYTES, \
     five whole numbers of at least 1 (the first four below 2^32), e.g. {}",
    Quota::default()
)]
pub struct QuotaParseError;

impl Quota {
    /// Every figure at least 1, and the first four below 2^32 (what a
    /// Chat ID carries).
    pub fn is_valid(&self) -> bool {
        let small = [
            self.events_per_s,
            self.burst_events,
            self.bytes_per_s,
            self.burst_bytes,
        ];
        small.iter().all(|&v| v >= 1 && v <= u64::from(u32::MAX)) && self.total_bytes >= 1
    }
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}:{}",
            self.events_per_s,
            self.burst_events,
            self.bytes_per_s,
            self.burst_bytes,
            self.total_bytes
        )
    }
}

impl std::str::FromStr for Quota {
    type Err = QuotaParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let figures: Vec<u64> = s
            .split(':')
            .map(|f| f.trim().parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| QuotaParseError)?;
        let [events_per_s, burst_events, bytes_per_s, burst_bytes, total_bytes] = figures[..]
        else {
            return Err(QuotaParseError);
        };
        let quota = Quota {
            events_per_s,
            burst_events,
            bytes_per_s,
            burst_bytes,
            total_bytes,
        };
        quota.is_valid().then_some(quota).ok_or(QuotaParseError)
    }
}

/// Why an event is over quota, and when the author may write again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("over quota ({what}): wait {} s", retry_after_ms.div_ceil(1000))]
pub struct OverQuota {
    /// The budget that ran out: `events`, `bytes` or `storage`.
    pub what: &'static str,
    /// How long until it would be taken (`u64::MAX`: never, storage).
    pub retry_after_ms: u64,
}

/// One author's budgets after its last charged event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Budget {
    /// The author's time at its last charged event.
    at: UnixMillis,
    /// Thousandths of an event left.
    events_milli: u64,
    /// Bytes left, times 1,000 (refill is `bytes_per_s` per 1,000 ms).
    bytes_milli: u64,
    /// Bytes charged in all.
    total: u64,
}

/// The budgets of a room's authors.
#[derive(Clone, Debug, Default)]
pub struct Budgets {
    quota: Quota,
    by_author: HashMap<PeerId, Budget>,
}

impl Budgets {
    /// No author charged yet, under `quota`.
    pub fn new(quota: Quota) -> Self {
        Budgets {
            quota,
            by_author: HashMap::new(),
        }
    }

    /// The quota in force.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// `author`'s budgets after its last charged event, as plain numbers
    /// (time, events and bytes left in thousandths, bytes in all): for a
    /// checkpoint ([`crate::checkpoint`]).
    pub(crate) fn export(&self, author: &PeerId) -> Option<[u64; 4]> {
        self.by_author
            .get(author)
            .map(|b| [b.at, b.events_milli, b.bytes_milli, b.total])
    }

    /// Sets `author`'s budgets back from [`Budgets::export`].
    pub(crate) fn import(
        &mut self,
        author: PeerId,
        [at, events_milli, bytes_milli, total]: [u64; 4],
    ) {
        self.by_author.insert(
            author,
            Budget {
                at,
                events_milli,
                bytes_milli,
                total,
            },
        );
    }

    /// What `author`'s budgets would be at `time` (its next event's), not
    /// below what they were at its last event.
    fn refilled(&self, author: &PeerId, time: UnixMillis) -> Budget {
        let q = self.quota;
        let full = Budget {
            at: time,
            events_milli: q.burst_events.saturating_mul(1000),
            bytes_milli: q.burst_bytes.saturating_mul(1000),
            total: 0,
        };
        let Some(b) = self.by_author.get(author) else {
            return full;
        };
        let elapsed = time.saturating_sub(b.at);
        Budget {
            at: time.max(b.at),
            events_milli: b
                .events_milli
                .saturating_add(elapsed.saturating_mul(q.events_per_s))
                .min(full.events_milli),
            bytes_milli: b
                .bytes_milli
                .saturating_add(elapsed.saturating_mul(q.bytes_per_s))
                .min(full.bytes_milli),
            total: b.total,
        }
    }

    /// Whether `author` may write an event of `bytes` at its time `time`;
    /// changes nothing.
    pub fn check(&self, author: &PeerId, time: UnixMillis, bytes: usize) -> Result<(), OverQuota> {
        self.charged(author, time, bytes).map(|_| ())
    }

    /// Charges `author`'s event of `bytes` at its time `time`, or refuses
    /// it (and charges nothing).
    pub fn charge(
        &mut self,
        author: PeerId,
        time: UnixMillis,
        bytes: usize,
    ) -> Result<(), OverQuota> {
        let after = self.charged(&author, time, bytes)?;
        self.by_author.insert(author, after);
        Ok(())
    }

    fn charged(
        &self,
        author: &PeerId,
        time: UnixMillis,
        bytes: usize,
    ) -> Result<Budget, OverQuota> {
        let q = self.quota;
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        let mut b = self.refilled(author, time);
        let total = b.total.saturating_add(bytes);
        if total > q.total_bytes {
            return Err(OverQuota {
                what: "storage",
                retry_after_ms: u64::MAX,
            });
        }
        // Whole events and bytes, in thousandths; the wait is rounded up.
        let wait =
            |have: u64, need: u64, per_s: u64| need.saturating_sub(have).div_ceil(per_s.max(1));
        if b.events_milli < 1000 {
            return Err(OverQuota {
                what: "events",
                retry_after_ms: wait(b.events_milli, 1000, q.events_per_s),
            });
        }
        let need = bytes.saturating_mul(1000);
        if b.bytes_milli < need {
            let retry_after_ms = if bytes > q.burst_bytes {
                u64::MAX
            } else {
                wait(b.bytes_milli, need, q.bytes_per_s)
            };
            return Err(OverQuota {
                what: "bytes",
                retry_after_ms,
            });
        }
        b.events_milli -= 1000;
        b.bytes_milli -= need;
        b.total = total;
        Ok(b)
    }

    /// `author`'s bytes charged in all.
    pub fn total(&self, author: &PeerId) -> u64 {
        self.by_author.get(author).map_or(0, |b| b.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author() -> PeerId {
        PeerId::from_bytes([7; 32])
    }

    fn small() -> Quota {
        Quota {
            events_per_s: 2,
            burst_events: 3,
            bytes_per_s: 100,
            burst_bytes: 1_000,
            total_bytes: 2_500,
        }
    }

    #[test]
    fn a_burst_exactly_at_the_limit_is_taken_and_one_more_is_not() {
        let mut b = Budgets::new(small());
        for _ in 0..3 {
            assert_eq!(b.charge(author(), 0, 10), Ok(()));
        }
        let over = b.charge(author(), 0, 10).unwrap_err();
        assert_eq!(over.what, "events");
        // 2 events a second: one more after 500 ms, not at 499.
        assert_eq!(over.retry_after_ms, 500);
        assert!(b.charge(author(), 499, 10).is_err());
        assert_eq!(b.charge(author(), 500, 10), Ok(()));
    }

    #[test]
    fn bytes_exactly_at_the_limit_are_taken_and_one_byte_more_is_not() {
        let mut b = Budgets::new(small());
        assert_eq!(b.charge(author(), 0, 1_000), Ok(()));
        let over = b.charge(author(), 0, 1).unwrap_err();
        assert_eq!((over.what, over.retry_after_ms), ("bytes", 10));
        // 100 bytes a second: 100 bytes after a second, not 101.
        assert!(b.check(&author(), 1_000, 101).is_err());
        assert_eq!(b.charge(author(), 1_000, 100), Ok(()));
        // More than a burst can never be taken.
        let never = Budgets::new(small())
            .check(&author(), 0, 1_001)
            .unwrap_err();
        assert_eq!(never.retry_after_ms, u64::MAX);
    }

    #[test]
    fn storage_is_a_total_that_never_refills() {
        let mut b = Budgets::new(small());
        let mut t = 0;
        while b.charge(author(), t, 500).is_ok() {
            t += 10_000;
        }
        assert_eq!(b.total(&author()), 2_500, "exactly the total");
        let over = b.check(&author(), t + 1_000_000, 1).unwrap_err();
        assert_eq!(over.what, "storage");
    }

    #[test]
    fn a_quota_is_written_as_five_figures() {
        let d = Quota::default();
        assert_eq!(d.to_string(), "20:200:65536:2097152:268435456");
        assert_eq!(d.to_string().parse::<Quota>(), Ok(d));
        assert_eq!("1:2:3:4:5".parse::<Quota>().map(|q| q.total_bytes), Ok(5));
        for bad in [
            "",
            "1:2:3:4",
            "1:2:3:4:5:6",
            "0:2:3:4:5",
            "1:2:3:4:0",
            "a:2:3:4:5",
            "4294967296:1:1:1:1",
        ] {
            assert_eq!(bad.parse::<Quota>(), Err(QuotaParseError), "{bad}");
        }
    }

    #[test]
    fn time_going_back_refills_nothing_and_a_refusal_charges_nothing() {
        let mut b = Budgets::new(small());
        for _ in 0..3 {
            b.charge(author(), 10_000, 1).unwrap();
        }
        assert!(b.charge(author(), 0, 1).is_err(), "no refill from the past");
        let before = b.clone();
        assert!(b.charge(author(), 10_000, 1).is_err());
        assert_eq!(b.by_author, before.by_author);
        // Another author has budgets of its own.
        assert_eq!(b.charge(PeerId::from_bytes([8; 32]), 0, 1), Ok(()));
    }
}
