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
//! **Probing unproved addresses.** Addresses a member is only said to be
//! at (hinted by another member, listed by a signaling server, or written
//! in a Chat ID) are probed on a schedule of their own, per address however
//! many members are said to be there: at once and every heartbeat for four
//! more tries, then the wait doubles every second try (2, 2, 4, 4, 8 …
//! heartbeats) up to [`MAX_PROBE_WAIT_MS`]: at 0, 1, 2, 3, 4, 6, 8, 12,
//! 16, 24 … s. An address that has not
//! answered [`GIVE_UP_MS`] after its first probe is forgotten, and being
//! named again within as long does not start it over: whoever names
//! addresses, and however often, an address that never answers gets
//! 29 probes in half an hour (1 heartbeat = 1 s), then nothing for as
//! long again. Under independent loss `p` each probe is a round trip that
//! fails with `q = 1 - (1 - p)^2`; the schedule tries six times in its
//! first six seconds (0.19^6 < 5·10^-5 at 10 % loss), which is what a
//! joiner holding a live member's address needs (a schedule doubling from
//! the start, four tries in six seconds, left 18 of 5,000 eight-member
//! rooms not fully connected after six seconds without a server), and
//! rarely after that, which is what a dead or foreign address deserves. (A member's last proved address is another matter: it keeps
//! being probed every probe interval while the member is offline, see
//! [`crate::membership`].)
//!
//! Bounded: at most [`MAX_PATHS`] addresses are tracked (the least recently
//! used go first), each for at most [`PATH_TTL_MS`] without traffic, or
//! twice [`GIVE_UP_MS`] once probed.

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
/// Longest wait between two probes of an address that has not answered.
pub const MAX_PROBE_WAIT_MS: u64 = 120_000;
/// How long an address that has not answered is probed.
pub const GIVE_UP_MS: u64 = 30 * 60_000;
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
    /// Our probes of it, if we have been told to reach someone there.
    probe: Option<Probe>,
}

/// The probe schedule of one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probe {
    /// When it was first probed.
    since: UnixMillis,
    /// Probes sent.
    tries: u32,
    /// When the next one is due.
    next: UnixMillis,
}

impl Probe {
    fn given_up(&self, now: UnixMillis) -> bool {
        now.saturating_sub(self.since) >= GIVE_UP_MS
    }
}

/// Whether an unproved address is due a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Now (counted as sent).
    Now,
    /// Not before then.
    At(UnixMillis),
    /// Never: it did not answer in time, forget it.
    GivenUp,
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

    /// Whether the unproved `addr` is due a probe at `now`, starting its
    /// schedule if it has none; a `Now` counts as the probe sent.
    /// `heartbeat` is the first wait, doubled every second try.
    pub fn probe_due(&mut self, now: UnixMillis, addr: SocketAddr, heartbeat: u64) -> Due {
        let path = self.entry(now, addr);
        let probe = path.probe.get_or_insert(Probe {
            since: now,
            tries: 0,
            next: now,
        });
        if probe.given_up(now) {
            return Due::GivenUp;
        }
        if now < probe.next {
            return Due::At(probe.next);
        }
        let doublings = match probe.tries {
            0..=3 => 0,
            n => ((n - 4) / 2 + 1).min(20),
        };
        let wait = heartbeat
            .max(1)
            .saturating_mul(1 << doublings)
            .min(MAX_PROBE_WAIT_MS.max(heartbeat));
        probe.tries += 1;
        probe.next = now.saturating_add(wait);
        Due::Now
    }

    /// When the unproved `addr` is next due a probe, or given up on;
    /// `None` if it has no schedule yet (it would be due at once).
    pub fn next_probe(&self, addr: &SocketAddr) -> Option<UnixMillis> {
        let probe = self.by_addr.get(addr)?.probe?;
        Some(probe.next.min(probe.since.saturating_add(GIVE_UP_MS)))
    }

    /// Whether `addr` was probed for [`GIVE_UP_MS`] without an answer (and
    /// is not to be probed again yet).
    pub fn given_up(&self, now: UnixMillis, addr: &SocketAddr) -> bool {
        self.by_addr
            .get(addr)
            .and_then(|p| p.probe)
            .is_some_and(|p| p.given_up(now))
    }

    /// `addr` is proved: nothing more to track.
    pub fn proved(&mut self, addr: &SocketAddr) {
        self.by_addr.remove(addr);
    }

    /// Forgets addresses without traffic for [`PATH_TTL_MS`], and probed
    /// ones twice [`GIVE_UP_MS`] after their first probe.
    pub fn expire(&mut self, now: UnixMillis) {
        self.by_addr.retain(|_, p| match p.probe {
            Some(probe) => now.saturating_sub(probe.since) < 2 * GIVE_UP_MS,
            None => now.saturating_sub(p.last_used) < PATH_TTL_MS,
        });
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
        assert!(
            !p.may_answer(0, addr(1), 1),
            "nothing received, nothing sent"
        );
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

    #[test]
    fn an_unanswered_address_is_probed_ever_more_rarely_then_forgotten() {
        let mut p = Paths::new();
        let a = addr(1);
        let mut probes = Vec::new();
        let mut now = 0;
        while now < 3 * GIVE_UP_MS {
            match p.probe_due(now, a, 1_000) {
                Due::Now => probes.push(now),
                Due::At(at) => assert!(at > now),
                Due::GivenUp => break,
            }
            assert!(p.next_probe(&a).is_none_or(|at| at > now) || p.given_up(now, &a));
            now += 500;
        }
        let first: Vec<u64> = probes
            .iter()
            .copied()
            .take_while(|&t| t <= 62_000)
            .collect();
        assert_eq!(
            first,
            [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48].map(|s| s * 1_000)
        );
        assert!(probes.windows(2).all(|w| w[1] - w[0] <= MAX_PROBE_WAIT_MS));
        assert_eq!(probes.len(), 29);
        assert_eq!(now, GIVE_UP_MS, "given up after {GIVE_UP_MS} ms");
        assert!(p.given_up(now, &a));
        // Named again, it is not probed again before as long has passed.
        assert_eq!(p.probe_due(now + 1_000, a, 1_000), Due::GivenUp);
        p.expire(2 * GIVE_UP_MS - 1);
        assert!(p.given_up(2 * GIVE_UP_MS - 1, &a));
        p.expire(2 * GIVE_UP_MS);
        assert!(!p.given_up(2 * GIVE_UP_MS, &a));
        assert_eq!(
            p.probe_due(2 * GIVE_UP_MS, a, 1_000),
            Due::Now,
            "starts over"
        );
    }

    #[test]
    fn a_probed_address_outlives_the_idle_timeout_and_a_proved_one_is_dropped() {
        let mut p = Paths::new();
        assert_eq!(p.probe_due(0, addr(1), 1_000), Due::Now);
        p.expire(PATH_TTL_MS * 2);
        assert!(p.next_probe(&addr(1)).is_some());
        p.proved(&addr(1));
        assert!(p.is_empty());
    }
}
