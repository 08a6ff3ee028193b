//! Stats: what the rendezvous server did and what it dropped, by reason.
//!
//! Every datagram the server does not act on is counted under exactly one
//! reason, and the driver prints the whole set periodically as one
//! structured log line, so an operator can see floods, scanners and broken
//! clients without the server ever logging what they sent.

use std::fmt;

use crate::signaling::RejectReason;

/// Why a datagram was not acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Larger than any request.
    Oversized,
    /// Not JSON or not a known message.
    Malformed,
    /// A p2pchat room datagram, not a signaling one.
    NotSignaling,
    /// A server-to-client message sent to the server.
    Unexpected,
    /// Over the per-source rate limit.
    RateLimited,
    /// A request refused with this reason.
    Rejected(RejectReason),
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received.
    pub received: u64,
    /// Registrations accepted (new or refreshed).
    pub registered: u64,
    /// Entries removed by unregister.
    pub unregistered: u64,
    /// Entries removed by expiry.
    pub expired: u64,
    /// Lookups answered.
    pub lookups: u64,
    pub oversized: u64,
    pub malformed: u64,
    pub not_signaling: u64,
    pub unexpected: u64,
    pub rate_limited: u64,
    pub bad_signature: u64,
    pub stale_stamp: u64,
    pub bad_request: u64,
    pub room_full: u64,
    pub server_full: u64,
    pub source_full: u64,
    /// Entries removed to make room for a source holding fewer.
    pub evicted: u64,
}

impl Stats {
    /// Counts one dropped datagram.
    pub fn drop(&mut self, why: Drop) {
        let counter = match why {
            Drop::Oversized => &mut self.oversized,
            Drop::Malformed => &mut self.malformed,
            Drop::NotSignaling => &mut self.not_signaling,
            Drop::Unexpected => &mut self.unexpected,
            Drop::RateLimited => &mut self.rate_limited,
            Drop::Rejected(reason) => match reason {
                RejectReason::BadSignature => &mut self.bad_signature,
                RejectReason::StaleStamp => &mut self.stale_stamp,
                RejectReason::BadTtl | RejectReason::TooManyAddrs | RejectReason::BadAddr => {
                    &mut self.bad_request
                }
                RejectReason::RoomFull => &mut self.room_full,
                RejectReason::ServerFull => &mut self.server_full,
                RejectReason::SourceFull => &mut self.source_full,
                RejectReason::RateLimited => &mut self.rate_limited,
            },
        };
        *counter += 1;
    }

    /// Datagrams dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.oversized
            + self.malformed
            + self.not_signaling
            + self.unexpected
            + self.rate_limited
            + self.bad_signature
            + self.stale_stamp
            + self.bad_request
            + self.room_full
            + self.server_full
            + self.source_full
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received={} registered={} unregistered={} expired={} lookups={} dropped={} \
             [oversized={} malformed={} not_signaling={} unexpected={} rate_limited={} \
             bad_signature={} stale_stamp={} bad_request={} room_full={} server_full={} \
             source_full={}] evicted={}",
            self.received,
            self.registered,
            self.unregistered,
            self.expired,
            self.lookups,
            self.dropped(),
            self.oversized,
            self.malformed,
            self.not_signaling,
            self.unexpected,
            self.rate_limited,
            self.bad_signature,
            self.stale_stamp,
            self.bad_request,
            self.room_full,
            self.server_full,
            self.source_full,
            self.evicted,
        )
    }
}
