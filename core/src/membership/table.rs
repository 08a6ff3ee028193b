//! The member table of one room: who is known, at which addresses, how
//! alive, and when each is due a heartbeat or a probe (the rules are in
//! [`super`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::Hint;
use crate::addr;
use crate::identity::PeerId;
use crate::path::{Due, Paths};
use crate::UnixMillis;

/// Most members tracked per room.
pub const MAX_MEMBERS: usize = 1024;
/// Most candidate addresses kept per member.
pub const MAX_CANDIDATES: usize = 4;
/// Most probes of addresses a member hinted that it may have earned and
/// not spent (one per control message it sent us, see [`super`]).
pub const MAX_HINT_CREDIT: u32 = 16;
/// How long a hinted address is kept without being hinted again.
pub const HINT_TTL_MS: u64 = 60_000;

/// Liveness timings, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Interval between heartbeats to live members.
    pub heartbeat: u64,
    /// Silence after which a member is suspect.
    pub suspect_after: u64,
    /// Silence after which a member is offline.
    pub offline_after: u64,
    /// Interval between probes of offline or unconfirmed members.
    pub probe: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            heartbeat: 1_000,
            suspect_after: 4_000,
            offline_after: 12_000,
            probe: 5_000,
        }
    }
}

/// A member's liveness as this peer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Heard from recently.
    Online,
    /// Silent for a while.
    Suspect,
    /// Silent for long, or never heard from.
    Offline,
}

impl Status {
    /// Lowercase word for people.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Suspect => "suspect",
            Status::Offline => "offline",
        }
    }
}

/// One member of a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's identity.
    pub peer: PeerId,
    /// Display name, once known.
    pub name: Option<String>,
    /// The address it was last heard from, proved (see [`crate::path`]).
    pub addr: Option<SocketAddr>,
    /// Addresses suggested by others, by signaling or by the store, not
    /// proved yet (each probed on its own schedule, see [`crate::path`]).
    pub candidates: Vec<Candidate>,
    /// Liveness.
    pub status: Status,
    /// When it was last heard from.
    pub last_heard: Option<UnixMillis>,
    /// Highest control stamp accepted from it.
    pub last_stamp: u64,
    /// Digest of its version vector from its last heartbeat.
    pub digest: Option<u64>,
    /// When its last proved address is next probed, while it is offline.
    next_probe: UnixMillis,
    /// The last challenge it sent us, echoed in every heartbeat we send it
    /// until it stops challenging (our answer may have been lost).
    owed: Option<u64>,
    /// Probes of addresses it hinted that it has earned and we have not
    /// sent yet.
    hint_credit: u32,
}

/// An address a member is said to be at, not proved yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The address.
    pub addr: SocketAddr,
    /// The member whose hint named it last, if only members did; `None`
    /// when a signaling server, the store or a Chat ID named it.
    pub hinted_by: Option<PeerId>,
    /// When it was last named.
    pub named: UnixMillis,
}

impl Candidate {
    fn new(addr: SocketAddr, hinted_by: Option<PeerId>, now: UnixMillis) -> Self {
        Candidate {
            addr,
            hinted_by,
            named: now,
        }
    }

    /// A member's hint not repeated for [`HINT_TTL_MS`].
    fn expired(&self, now: UnixMillis) -> bool {
        self.hinted_by.is_some() && now.saturating_sub(self.named) > HINT_TTL_MS
    }
}

/// A member's status changed (or it was seen for the first time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    /// The member.
    pub peer: PeerId,
    /// Its name, if known.
    pub name: Option<String>,
    /// Status before; `None` the first time this member is heard from.
    pub from: Option<Status>,
    /// Status now.
    pub to: Status,
}

/// Why an authenticated control message was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// Taken; maybe with a status change.
    Fresh,
    /// Stamp not above the last accepted one: a replay.
    Replay,
    /// The room is full of live members.
    Full,
}

/// A room's member table.
#[derive(Clone, Debug)]
pub struct Members {
    me: PeerId,
    timeouts: Timeouts,
    members: BTreeMap<PeerId, Member>,
    next_beat: UnixMillis,
    /// Bumped whenever a member's status or address changes, so whoever
    /// derives something from the live members knows when to derive again.
    generation: u64,
    /// Addresses being proved (a member's `addr` is always a proved one).
    paths: Paths,
}

impl Members {
    /// An empty table for the local peer `me`.
    pub fn new(me: PeerId, timeouts: Timeouts) -> Self {
        Members {
            me,
            timeouts,
            members: BTreeMap::new(),
            next_beat: 0,
            generation: 0,
            paths: Paths::new(),
        }
    }

    /// The addresses being proved.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The addresses being proved, to change.
    pub fn paths_mut(&mut self) -> &mut Paths {
        &mut self.paths
    }

    /// Whether `addr` is where `peer` proved it is.
    pub fn is_proved(&self, peer: &PeerId, addr: &SocketAddr) -> bool {
        self.members
            .get(peer)
            .is_some_and(|m| m.addr.as_ref() == Some(addr))
    }

    /// Changes so far to any member's status or address.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// All members, by peer id.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// One member.
    pub fn get(&self, peer: &PeerId) -> Option<&Member> {
        self.members.get(peer)
    }

    /// Number of members (not counting the local peer).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no other member is known.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members believed online or suspect, with the address to reach them.
    pub fn live(&self) -> impl Iterator<Item = (PeerId, SocketAddr)> + '_ {
        self.members
            .values()
            .filter_map(|m| match (m.status, m.addr) {
                (Status::Online | Status::Suspect, Some(addr)) => Some((m.peer, addr)),
                _ => None,
            })
    }

    /// Whether any member is online.
    pub fn any_online(&self) -> bool {
        self.members.values().any(|m| m.status == Status::Online)
    }

    /// An authenticated control message with `stamp` came from `peer` at
    /// `addr`. Returns whether it is fresh, and any status change.
    pub fn heard(
        &mut self,
        now: UnixMillis,
        peer: PeerId,
        addr: SocketAddr,
        stamp: u64,
    ) -> (Heard, Option<StatusChange>) {
        if peer == self.me {
            return (Heard::Replay, None);
        }
        if !self.members.contains_key(&peer) && !self.make_room() {
            return (Heard::Full, None);
        }
        let probe = self.timeouts.probe;
        let member = self.members.entry(peer).or_insert_with(|| new_member(peer));
        if stamp <= member.last_stamp {
            return (Heard::Replay, None);
        }
        let first = member.last_heard.is_none();
        if member.addr != Some(addr) || member.status != Status::Online {
            self.generation += 1;
        }
        member.last_stamp = stamp;
        member.last_heard = Some(now);
        member.addr = Some(addr);
        member.hint_credit = (member.hint_credit + 1).min(MAX_HINT_CREDIT);
        member.candidates.retain(|c| c.addr != addr);
        member.next_probe = now.saturating_add(probe);
        let before = member.status;
        member.status = Status::Online;
        let change = (before != Status::Online || first).then(|| StatusChange {
            peer,
            name: member.name.clone(),
            from: (!first).then_some(before),
            to: Status::Online,
        });
        (Heard::Fresh, change)
    }

    /// Records `peer`'s display name (from its own signed words).
    pub fn set_name(&mut self, peer: PeerId, name: &str) {
        if peer == self.me {
            return;
        }
        if !self.members.contains_key(&peer) && !self.make_room() {
            return;
        }
        let member = self.members.entry(peer).or_insert_with(|| new_member(peer));
        if member.name.as_deref() != Some(name) {
            member.name = Some(name.to_owned());
        }
    }

    /// Records the challenge (or its absence) in `peer`'s last heartbeat.
    pub fn set_owed(&mut self, peer: &PeerId, challenge: Option<u64>) {
        if let Some(m) = self.members.get_mut(peer) {
            m.owed = challenge;
        }
    }

    /// The challenge `peer` last sent us, still to be echoed.
    pub fn owed(&self, peer: &PeerId) -> Option<u64> {
        self.members.get(peer).and_then(|m| m.owed)
    }

    /// Records its last known digest.
    pub fn set_digest(&mut self, peer: &PeerId, digest: u64) {
        if let Some(m) = self.members.get_mut(peer) {
            m.digest = Some(digest);
        }
    }

    /// A member was said to be at `addr` by a signaling server, the store
    /// or a Chat ID: unverified, so only a candidate to probe. Addresses
    /// that are not [`addr::usable`] are never taken, nor those given up
    /// on lately (see [`crate::path`]).
    pub fn hint(&mut self, now: UnixMillis, peer: PeerId, addr: SocketAddr) {
        self.add_candidate(now, peer, addr, None);
    }

    /// The member `by` said `peer` is at `addr`: a candidate like those of
    /// [`Members::hint`], probed only as `by` earns it (one probe per
    /// control message `by` sent us), and dropped unless `by` or another
    /// member names it again within [`HINT_TTL_MS`]. It never displaces an
    /// address named otherwise.
    pub fn hint_from(&mut self, now: UnixMillis, by: PeerId, peer: PeerId, addr: SocketAddr) {
        if by == peer {
            return;
        }
        self.add_candidate(now, peer, addr, Some(by));
    }

    fn add_candidate(
        &mut self,
        now: UnixMillis,
        peer: PeerId,
        addr: SocketAddr,
        by: Option<PeerId>,
    ) {
        if peer == self.me || !addr::usable(&addr) || self.paths.given_up(now, &addr) {
            return;
        }
        if by.is_some() && self.is_live(&peer) {
            // Reached already: nothing to probe.
            return;
        }
        if !self.members.contains_key(&peer) && !self.make_room() {
            return;
        }
        let member = self.members.entry(peer).or_insert_with(|| new_member(peer));
        if member.addr == Some(addr) {
            return;
        }
        if let Some(c) = member.candidates.iter_mut().find(|c| c.addr == addr) {
            c.named = now;
            // Named otherwise at least once: no longer a member's word only.
            c.hinted_by = c.hinted_by.and(by);
            return;
        }
        if member.candidates.len() >= MAX_CANDIDATES {
            // The oldest member's hint goes first; an address named
            // otherwise gives way only to another named otherwise.
            let victim = member
                .candidates
                .iter()
                .position(|c| c.hinted_by.is_some())
                .or(if by.is_none() { Some(0) } else { None });
            match victim {
                Some(i) => {
                    member.candidates.remove(i);
                }
                None => return,
            }
        }
        member.candidates.push(Candidate::new(addr, by, now));
    }

    fn is_live(&self, peer: &PeerId) -> bool {
        self.members.get(peer).is_some_and(|m| {
            m.addr.is_some() && matches!(m.status, Status::Online | Status::Suspect)
        })
    }

    /// The member said goodbye: it is offline at once.
    pub fn bye(&mut self, peer: &PeerId) -> Option<StatusChange> {
        let member = self.members.get_mut(peer)?;
        let before = member.status;
        member.status = Status::Offline;
        if before != Status::Offline {
            self.generation += 1;
        }
        (before != Status::Offline).then(|| StatusChange {
            peer: *peer,
            name: member.name.clone(),
            from: Some(before),
            to: Status::Offline,
        })
    }

    /// Up to `n` live members to tell others about, starting at `offset`
    /// (modulo their number) and wrapping around.
    pub fn hints(&self, offset: usize, n: usize) -> Vec<Hint> {
        let live = self.live().count();
        if live == 0 {
            return Vec::new();
        }
        self.live()
            .chain(self.live())
            .skip(offset % live)
            .take(n.min(live))
            .map(|(peer, addr)| Hint { peer, addr })
            .collect()
    }

    /// Applies silence timeouts at `now`.
    pub fn tick(&mut self, now: UnixMillis) -> Vec<StatusChange> {
        let t = self.timeouts;
        let mut changes = Vec::new();
        for member in self.members.values_mut() {
            let Some(heard) = member.last_heard else {
                continue;
            };
            let silent = now.saturating_sub(heard);
            let to = if silent >= t.offline_after {
                Status::Offline
            } else if silent >= t.suspect_after {
                Status::Suspect
            } else {
                Status::Online
            };
            // Only ever degrade here; `heard` and `bye` move the others.
            if to > member.status {
                self.generation += 1;
                changes.push(StatusChange {
                    peer: member.peer,
                    name: member.name.clone(),
                    from: Some(member.status),
                    to,
                });
                member.status = to;
            }
        }
        changes
    }

    /// Where to send a heartbeat at `now`: every live member when a
    /// heartbeat is due; offline members at their last proved address
    /// every probe interval; and their candidate addresses when each is
    /// due on its own schedule (one probe per address however many members
    /// are said to be there; an address given up on is forgotten), those
    /// only a member hinted while that member has credit for them (an
    /// expired hint is forgotten). A member never heard from that is left
    /// with no address to try is forgotten too.
    pub fn beat_targets(&mut self, now: UnixMillis) -> Vec<(PeerId, SocketAddr)> {
        let mut out = Vec::new();
        let beat_due = now >= self.next_beat;
        if beat_due {
            self.next_beat = now.saturating_add(self.timeouts.heartbeat);
        }
        let t = self.timeouts;
        let paths = &mut self.paths;
        // Each hinter's credit, spent below and given back after.
        let mut credit: BTreeMap<PeerId, u32> = self
            .members
            .values_mut()
            .filter(|m| m.hint_credit > 0)
            .map(|m| (m.peer, std::mem::take(&mut m.hint_credit)))
            .collect();
        for member in self.members.values_mut() {
            let live = matches!(member.status, Status::Online | Status::Suspect);
            match (live, member.addr) {
                (true, Some(addr)) if beat_due => out.push((member.peer, addr)),
                (true, Some(_)) => {}
                (_, addr) => {
                    if let Some(addr) = addr.filter(|_| now >= member.next_probe) {
                        member.next_probe = now.saturating_add(t.probe);
                        out.push((member.peer, addr));
                    }
                    let peer = member.peer;
                    member.candidates.retain(|c| {
                        if Some(c.addr) == member.addr || c.expired(now) {
                            return false;
                        }
                        let credit = match c.hinted_by {
                            Some(by) => match credit.get_mut(&by) {
                                Some(n) if *n > 0 => Some(n),
                                _ => return true,
                            },
                            None => None,
                        };
                        match paths.probe_due(now, c.addr, t.heartbeat) {
                            Due::Now => {
                                if let Some(n) = credit {
                                    *n -= 1;
                                }
                                out.push((peer, c.addr));
                            }
                            Due::At(_) => {}
                            Due::GivenUp => return false,
                        }
                        true
                    });
                }
            }
        }
        for (peer, n) in credit {
            if let Some(m) = self.members.get_mut(&peer) {
                m.hint_credit = n;
            }
        }
        // A member nobody ever heard from, whose every candidate address
        // was forgotten or given up on, is only a name someone said: it
        // goes, so that hints cannot fill the member list with phantoms.
        let before = self.members.len();
        self.members.retain(|_, m| {
            m.last_heard.is_some()
                || m.addr.is_some()
                || !m.candidates.is_empty()
                || m.name.is_some()
        });
        if self.members.len() != before {
            self.generation += 1;
        }
        out
    }

    /// The next time [`Members::tick`] or [`Members::beat_targets`] has
    /// work.
    pub fn next_deadline(&self) -> UnixMillis {
        let t = self.timeouts;
        let mut next = if self.members.is_empty() {
            UnixMillis::MAX
        } else {
            self.next_beat
        };
        for m in self.members.values() {
            let live = matches!(m.status, Status::Online | Status::Suspect);
            if !(live && m.addr.is_some()) {
                if m.addr.is_some() {
                    next = next.min(m.next_probe);
                }
                for c in &m.candidates {
                    let earned = c
                        .hinted_by
                        .is_none_or(|by| self.members.get(&by).is_some_and(|h| h.hint_credit > 0));
                    let at = if earned {
                        self.paths.next_probe(&c.addr).unwrap_or(0)
                    } else {
                        // Waits for credit (which comes with a datagram,
                        // and so with a wake-up), or expires.
                        UnixMillis::MAX
                    };
                    let expiry = match c.hinted_by {
                        Some(_) => c.named.saturating_add(HINT_TTL_MS + 1),
                        None => UnixMillis::MAX,
                    };
                    next = next.min(at).min(expiry);
                }
            }
            if let Some(heard) = m.last_heard {
                let at = match m.status {
                    Status::Online => heard.saturating_add(t.suspect_after),
                    Status::Suspect => heard.saturating_add(t.offline_after),
                    Status::Offline => UnixMillis::MAX,
                };
                next = next.min(at);
            }
        }
        next
    }

    /// Makes room for one more member, forgetting the longest-silent
    /// offline one. `false` if every member is live.
    fn make_room(&mut self) -> bool {
        if self.members.len() < MAX_MEMBERS {
            return true;
        }
        let victim = self
            .members
            .values()
            .filter(|m| m.status == Status::Offline)
            .min_by_key(|m| m.last_heard.unwrap_or(0))
            .map(|m| m.peer);
        match victim {
            Some(peer) => {
                self.members.remove(&peer);
                self.generation += 1;
                true
            }
            None => false,
        }
    }

    /// Restores a member known from a persisted record.
    pub fn restore(&mut self, peer: PeerId, name: Option<String>, addr: Option<SocketAddr>) {
        if peer == self.me || (!self.members.contains_key(&peer) && !self.make_room()) {
            return;
        }
        let member = self.members.entry(peer).or_insert_with(|| new_member(peer));
        if name.is_some() {
            member.name = name;
        }
        if let Some(addr) = addr.filter(addr::usable) {
            if !member.candidates.iter().any(|c| c.addr == addr) {
                if member.candidates.len() >= MAX_CANDIDATES {
                    member.candidates.remove(0);
                }
                member.candidates.push(Candidate::new(addr, None, 0));
            }
        }
    }
}

fn new_member(peer: PeerId) -> Member {
    Member {
        peer,
        name: None,
        addr: None,
        candidates: Vec::new(),
        status: Status::Offline,
        last_heard: None,
        last_stamp: 0,
        digest: None,
        next_probe: 0,
        owed: None,
        hint_credit: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn peer(i: u8) -> PeerId {
        PeerId::from_bytes([i; 32])
    }

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 5000)
    }

    /// A table with `n` members heard from (online), and one only hinted.
    fn table(n: u8) -> Members {
        let mut m = Members::new(peer(0), Timeouts::default());
        for i in 1..=n {
            m.heard(1_000, peer(i), addr(i), 1);
        }
        m.hint(1_000, peer(200), addr(200));
        m
    }

    #[test]
    fn hints_are_a_window_of_live_members_that_wraps_around() {
        let m = table(5);
        let ids = |offset| -> Vec<PeerId> { m.hints(offset, 3).iter().map(|h| h.peer).collect() };
        assert_eq!(ids(0), vec![peer(1), peer(2), peer(3)]);
        assert_eq!(ids(4), vec![peer(5), peer(1), peer(2)]);
        // The offset is taken modulo the number of live members.
        assert_eq!(ids(9), ids(4));
        // Only confirmed, live members are passed on, each once.
        let all: BTreeSet<PeerId> = m.hints(2, 50).iter().map(|h| h.peer).collect();
        assert_eq!(all, (1..=5).map(peer).collect());
    }

    #[test]
    fn a_hinted_address_is_probed_ever_more_rarely_then_forgotten() {
        let t = Timeouts::default();
        let mut m = Members::new(peer(0), t);
        m.hint(0, peer(1), addr(1));
        // Another member said to be at the same address: one probe for both.
        m.hint(0, peer(2), addr(1));
        let mut probed = Vec::new();
        let mut now = 0;
        while now <= crate::path::GIVE_UP_MS + 10_000 {
            let targets = m.beat_targets(now);
            assert!(targets.len() <= 1, "{targets:?} at {now}");
            if !targets.is_empty() {
                probed.push(now);
            }
            assert!(
                m.next_deadline() > now,
                "deadline {} at {now}",
                m.next_deadline()
            );
            now += 100;
        }
        assert_eq!(
            probed[..8],
            [0, 1_000, 2_000, 3_000, 4_000, 6_000, 8_000, 12_000]
        );
        assert!(probed.len() < 30, "{} probes", probed.len());
        // Never heard from at any address: forgotten altogether.
        assert!(m.get(&peer(1)).is_none(), "forgotten");
        assert!(m.next_deadline() > now);
        // Named again soon after, it is not taken.
        m.hint(now, peer(1), addr(1));
        assert!(m.get(&peer(1)).is_none());
    }

    #[test]
    fn an_answer_ends_the_probing_and_an_offline_member_is_probed_at_its_proved_address() {
        let t = Timeouts::default();
        let mut m = Members::new(peer(0), t);
        m.hint(0, peer(1), addr(1));
        assert_eq!(m.beat_targets(0), vec![(peer(1), addr(1))]);
        m.heard(50, peer(1), addr(1), 1);
        assert!(m.beat_targets(500).is_empty());
        assert_eq!(m.beat_targets(1_000), vec![(peer(1), addr(1))]);
        // Silent: offline after `offline_after`, then probed every probe
        // interval, for as long as it stays offline.
        m.tick(50 + t.offline_after);
        let start = 50 + t.offline_after;
        let probed: Vec<u64> = (start..start + 600_000)
            .step_by(100)
            .filter(|&now| m.beat_targets(now).contains(&(peer(1), addr(1))))
            .collect();
        assert!(
            probed.windows(2).all(|w| w[1] - w[0] == t.probe),
            "{probed:?}"
        );
        assert!(probed.len() as u64 >= 600_000 / t.probe - 1);
    }

    #[test]
    fn a_members_hints_are_probed_only_as_it_earns_them() {
        let t = Timeouts::default();
        let mut m = Members::new(peer(0), t);
        let hinted = |i: u8| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)), 9);
        for i in 1..=40 {
            m.hint_from(0, peer(1), peer(100 + i), hinted(i));
        }
        assert!(m.beat_targets(0).is_empty(), "peer 1 has sent nothing yet");
        assert_eq!(m.next_deadline(), t.heartbeat, "no wake-up for them");
        // Three control messages from peer 1: three probes, no more.
        for stamp in 1..=3 {
            m.heard(10, peer(1), addr(1), stamp);
        }
        let probes = |targets: Vec<(PeerId, SocketAddr)>| {
            targets
                .into_iter()
                .filter(|(_, a)| a.ip() != addr(1).ip())
                .count()
        };
        assert_eq!(probes(m.beat_targets(10)), 3);
        assert_eq!(probes(m.beat_targets(20)), 0);
        // The credit saved up is bounded.
        for stamp in 4..100 {
            m.heard(30, peer(1), addr(1), stamp);
        }
        let mut sent = 0;
        let mut now = 30;
        while now < HINT_TTL_MS {
            sent += probes(m.beat_targets(now));
            now += 100;
        }
        assert_eq!(sent, MAX_HINT_CREDIT as usize);
        // Hints not repeated are forgotten, and so are the members nobody
        // ever heard from that only they named: no phantom is left in
        // the member list.
        m.beat_targets(HINT_TTL_MS + 2);
        let left: Vec<PeerId> = m.iter().map(|x| x.peer).collect();
        assert_eq!(left, vec![peer(1)]);
    }

    #[test]
    fn a_members_hints_never_displace_an_address_named_otherwise() {
        let mut m = Members::new(peer(0), Timeouts::default());
        m.hint(0, peer(2), addr(2));
        for i in 10..20 {
            m.hint_from(0, peer(1), peer(2), addr(i));
        }
        let candidates = &m
            .get(&peer(2))
            .map(|p| p.candidates.clone())
            .unwrap_or_default();
        assert_eq!(candidates.len(), MAX_CANDIDATES);
        assert!(candidates
            .iter()
            .any(|c| c.addr == addr(2) && c.hinted_by.is_none()));
        // Named by the server too: no longer only a member's word.
        m.hint(5, peer(2), addr(19));
        let c = m
            .get(&peer(2))
            .and_then(|p| p.candidates.iter().find(|c| c.addr == addr(19)).copied());
        assert_eq!(c.map(|c| c.hinted_by), Some(None));
        // A member is never hinted at its own address, nor a live one.
        m.hint_from(0, peer(3), peer(3), addr(30));
        m.heard(0, peer(4), addr(4), 1);
        m.hint_from(0, peer(3), peer(4), addr(31));
        assert!(m.get(&peer(3)).is_none());
        assert!(m.get(&peer(4)).is_some_and(|p| p.candidates.is_empty()));
    }

    #[test]
    fn a_table_with_no_live_member_has_no_hints() {
        let m = Members::new(peer(0), Timeouts::default());
        assert!(m.hints(7, 3).is_empty());
        let mut m = table(0);
        assert!(m.hints(7, 3).is_empty());
        m.bye(&peer(200));
        assert!(m.hints(0, 3).is_empty());
    }
}
