//! Path: which addresses a member has proved it is at, and how much may be
//! sent to an address that has not.
//!
//! A datagram's source address is not signed: anyone who sees a member's
//! sealed control datagram can send it again from elsewhere. So an address
//! is used for a member only once it has passed a **challenge–response**:
//! we send a heartbeat carrying a random `challenge` to the address; the
//! member's answer, sealed with the room key and signed by the member's
//! identity key, must come back **from that address** and echo the nonce.
//! That proves, at that address, both the room key and the member's key.
//! Until then, a control message from the address is used for nothing but
//! the handshake: we answer its challenge and send ours. Nobody is moved to
//! an address by a replay.
//!
//! **Anti-amplification.** Before an address is proved, what we send it in
//! answer to what it sent us is held to [`AMPLIFICATION`] times the bytes
//! received from it (QUIC's rule): a forged or replayed datagram from a
//! spoofed source can make us send its victim at most three times what the
//! attacker sent. (Probes we start ourselves, to addresses a member or the
//! user named, are bounded by their schedule instead; see
//! [`crate::membership`].)
//!
//! Bounded: at most [`MAX_PATHS`] addresses are tracked (the least recently
//! used go first), each for at most [`PATH_TTL_MS`] without traffic.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::counters::DropReason;
use crate::membership::{self, Greeting, Members};
use crate::room::{Link, Outbox, Sender};
use crate::wire::Control;
use crate::UnixMillis;

/// Most bytes sent to an unproved address per byte received from it.
pub const AMPLIFICATION: u64 = 3;
/// Most addresses tracked.
pub const MAX_PATHS: usize = 4096;
/// How long an address is tracked without traffic.
pub const PATH_TTL_MS: u64 = 120_000;
/// Challenges remembered per address (a newer one does not void an
/// answer to the previous one still on its way).
const NONCES: usize = 2;

/// One address being proved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Path {
    /// The last challenges sent to it, newest last.
    nonces: Vec<u64>,
    bytes_in: u64,
    bytes_out: u64,
    last_used: UnixMillis,
}

/// The addresses being proved in one room.
#[derive(Clone, Debug, Default)]
pub struct Paths {
    by_addr: BTreeMap<SocketAddr, Path>,
}

impl Paths {
    /// Nothing tracked.
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, now: UnixMillis, addr: SocketAddr) -> &mut Path {
        if !self.by_addr.contains_key(&addr) && self.by_addr.len() >= MAX_PATHS {
            let oldest = self
                .by_addr
                .iter()
                .min_by_key(|(a, p)| (p.last_used, **a))
                .map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                self.by_addr.remove(&oldest);
            }
        }
        let path = self.by_addr.entry(addr).or_default();
        path.last_used = now;
        path
    }

    /// `bytes` arrived from `addr`, which is not proved.
    pub fn received(&mut self, now: UnixMillis, addr: SocketAddr, bytes: usize) {
        let path = self.entry(now, addr);
        path.bytes_in = path.bytes_in.saturating_add(bytes as u64);
    }

    /// We challenge `addr` with `nonce`.
    pub fn challenged(&mut self, now: UnixMillis, addr: SocketAddr, nonce: u64) {
        let path = self.entry(now, addr);
        if path.nonces.len() >= NONCES {
            path.nonces.remove(0);
        }
        path.nonces.push(nonce);
    }

    /// Whether `nonce` answers a challenge we sent to `addr`.
    pub fn answers(&self, addr: &SocketAddr, nonce: u64) -> bool {
        self.by_addr
            .get(addr)
            .is_some_and(|p| p.nonces.contains(&nonce))
    }

    /// Whether `bytes` more may be sent to the unproved `addr` in answer to
    /// what it sent; if so they are counted as sent.
    pub fn may_answer(&mut self, now: UnixMillis, addr: SocketAddr, bytes: usize) -> bool {
        let path = self.entry(now, addr);
        let after = path.bytes_out.saturating_add(bytes as u64);
        if after > path.bytes_in.saturating_mul(AMPLIFICATION) {
            return false;
        }
        path.bytes_out = after;
        true
    }

    /// `addr` is proved: nothing more to track.
    pub fn proved(&mut self, addr: &SocketAddr) {
        self.by_addr.remove(addr);
    }

    /// Forgets addresses without traffic for [`PATH_TTL_MS`].
    pub fn expire(&mut self, now: UnixMillis) {
        self.by_addr
            .retain(|_, p| now.saturating_sub(p.last_used) < PATH_TTL_MS);
    }

    /// Addresses tracked.
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Whether none is tracked.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }
}

/// A control message sealed by `from.peer` came from `from.addr` (`bytes`
/// long), an address that member has not proved and that does not answer
/// a challenge of ours: it is used for the handshake only. Its stamp is
/// checked but not taken (a replay that races the member's own datagram
/// does not void it); a heartbeat is answered with a bare heartbeat that
/// echoes its challenge and carries one of ours, if that stays within the
/// address's budget. Nothing else in the message is taken.
#[allow(clippy::too_many_arguments)]
pub(crate) fn on_unproved(
    members: &mut Members,
    link: &Link,
    digest: u64,
    now: UnixMillis,
    from: Sender,
    control: &Control,
    bytes: usize,
    out: &mut Outbox<'_>,
) {
    let stale = members
        .get(&from.peer)
        .is_some_and(|m| control.stamp() <= m.last_stamp);
    if stale {
        return out.count(DropReason::Replayed);
    }
    members.paths_mut().received(now, from.addr, bytes);
    out.count(DropReason::Unproved);
    let Control::Beat(beat) = control else {
        return;
    };
    let greeting = Greeting {
        response: beat.challenge,
        bare: true,
        ..Greeting::default()
    };
    let mut answer = membership::beat(members, digest, now, from.addr, greeting, out);
    let nonce = out.random_u64();
    answer.challenge = Some(nonce);
    let datagrams = link.control_datagrams(now, Control::Beat(answer), out);
    let size = datagrams.iter().map(Vec::len).sum();
    if !members.paths_mut().may_answer(now, from.addr, size) {
        return out.count(DropReason::AmplificationLimit);
    }
    members.paths_mut().challenged(now, from.addr, nonce);
    for datagram in datagrams {
        out.transmit(from.addr, datagram);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), port)
    }

    #[test]
    fn an_unproved_address_gets_at_most_three_times_what_it_sent() {
        let mut p = Paths::new();
        assert!(!p.may_answer(0, addr(1), 1), "nothing received, nothing sent");
        p.received(0, addr(1), 400);
        assert!(p.may_answer(0, addr(1), 700));
        assert!(p.may_answer(0, addr(1), 500));
        assert!(!p.may_answer(0, addr(1), 1), "1,200 bytes for 400");
        p.received(1, addr(1), 100);
        assert!(p.may_answer(1, addr(1), 300));
        assert!(!p.may_answer(1, addr(1), 1));
    }

    #[test]
    fn only_the_last_challenges_sent_to_an_address_are_answers() {
        let mut p = Paths::new();
        p.challenged(0, addr(1), 7);
        assert!(p.answers(&addr(1), 7));
        assert!(!p.answers(&addr(2), 7), "another address");
        p.challenged(0, addr(1), 8);
        p.challenged(0, addr(1), 9);
        assert!(!p.answers(&addr(1), 7), "only the last two");
        assert!(p.answers(&addr(1), 8) && p.answers(&addr(1), 9));
        p.proved(&addr(1));
        assert!(!p.answers(&addr(1), 9));
    }

    #[test]
    fn tracking_is_bounded_in_number_and_time() {
        let mut p = Paths::new();
        for i in 0..(MAX_PATHS as u16 + 10) {
            p.received(u64::from(i), addr(i), 1);
        }
        assert_eq!(p.len(), MAX_PATHS);
        assert!(!p.answers(&addr(0), 0));
        p.expire(u64::from(MAX_PATHS as u16 + 10) + PATH_TTL_MS);
        assert!(p.is_empty());
    }
}
