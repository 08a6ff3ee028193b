//! Discovery: how a member finds the room's other members.
//!
//! Three sources, each unverified until a member answers for itself at an
//! address (see [`crate::membership`]):
//!
//! - **Bootstrap addresses** from the Chat ID the member joined with. A
//!   joiner greets them at once and, while nobody is online, like any
//!   address that has not answered yet (see [`crate::membership`]): every
//!   heartbeat for `offline_after`, then every probe interval. A few lost
//!   hellos must not keep it out of the room for whole probe intervals. An
//!   address stops being greeted as soon as anyone answers from it; the
//!   schedule starts over once a member is online.
//! - **Signaling servers.** The room registers the node's own addresses
//!   under the room's rendezvous tag, refreshing at a third of the
//!   registration's lifetime, and looks the tag up: every probe interval
//!   while nobody is online, every `lookup_interval_ms` otherwise. The
//!   server answers with the members registered (and tells them about the
//!   newcomer); each is hinted to the member table and greeted unless it is
//!   online already. Answers are taken only from a configured server, and
//!   only when their signatures hold. Leaving unregisters.
//! - **Other members' hints**, carried in heartbeats (handled by
//!   [`crate::membership`]).

use std::net::SocketAddr;

use crate::addr;
use crate::counters::DropReason;
use crate::membership::{self, Members, Status};
use crate::node::Config;
use crate::room::{Link, Outbox, RendezvousTag};
use crate::signaling::{self, Entry, Lookup, Message, Register, Unregister};
use crate::wire;
use crate::UnixMillis;

/// A room's discovery state: the bootstrap addresses still to greet, and
/// the signaling timers.
#[derive(Debug)]
pub struct Discovery {
    bootstrap: Vec<SocketAddr>,
    next_bootstrap: UnixMillis,
    /// While nobody answers, bootstrap attempts go out every heartbeat
    /// until then (`offline_after` after the first unanswered attempt),
    /// then every probe interval; `None` while a member is online.
    fast_until: Option<UnixMillis>,
    next_register: UnixMillis,
    next_lookup: UnixMillis,
}

impl Discovery {
    /// Discovery for a room joined (or restored) at `now` with these
    /// bootstrap addresses (unusable ones are left out).
    pub fn new(now: UnixMillis, bootstrap: &[SocketAddr]) -> Self {
        Discovery {
            bootstrap: bootstrap.iter().copied().filter(addr::usable).collect(),
            next_bootstrap: now,
            fast_until: None,
            next_register: now,
            next_lookup: now,
        }
    }

    /// A member answered from `addr`: no need to greet it as a bootstrap
    /// address any more.
    pub fn heard_from(&mut self, addr: SocketAddr) {
        self.bootstrap.retain(|a| *a != addr);
    }

    /// The next time the discovery timers have work.
    pub fn deadline(&self, members: &Members, signaling: bool) -> UnixMillis {
        let mut next = UnixMillis::MAX;
        if !self.bootstrap.is_empty() && !members.any_online() {
            next = next.min(self.next_bootstrap);
        }
        if signaling {
            next = next.min(self.next_register).min(self.next_lookup);
        }
        next
    }
}

/// Time passed: greet the bootstrap addresses if it is time to.
pub(crate) fn on_bootstrap_timeout(
    d: &mut Discovery,
    members: &Members,
    link: &Link,
    digest: u64,
    now: UnixMillis,
    out: &mut Outbox<'_>,
) {
    let timeouts = out.local.config.timeouts;
    let greet = if d.bootstrap.is_empty() || members.any_online() {
        d.fast_until = None;
        Vec::new()
    } else if now >= d.next_bootstrap {
        let fast_until = *d
            .fast_until
            .get_or_insert(now.saturating_add(timeouts.offline_after));
        let wait = if now < fast_until {
            timeouts.heartbeat.min(timeouts.probe)
        } else {
            timeouts.probe.max(timeouts.heartbeat)
        };
        d.next_bootstrap = now.saturating_add(wait);
        d.bootstrap.clone()
    } else {
        Vec::new()
    };
    for addr in greet {
        membership::send_beat(members, link, digest, now, addr, true, out);
    }
}

/// Time passed: register and look up at the signaling servers when due.
pub(crate) fn on_signal_timeout(
    d: &mut Discovery,
    members: &Members,
    tag: RendezvousTag,
    now: UnixMillis,
    out: &mut Outbox<'_>,
) {
    let config: &Config = &out.local.config;
    if config.signaling.is_empty() {
        return;
    }
    let ttl = config.signal_ttl_secs.clamp(1, signaling::MAX_TTL_SECS);
    let lookup_every = if members.any_online() {
        config.lookup_interval_ms
    } else {
        config.timeouts.probe
    };
    let addrs: Vec<SocketAddr> = config
        .local_addrs
        .iter()
        .copied()
        .filter(addr::usable)
        .take(signaling::MAX_ADDRS)
        .collect();
    if now >= d.next_register {
        d.next_register = now.saturating_add(u64::from(ttl) * 1000 / 3);
        let stamp = out.stamp(now);
        if let Ok(reg) = Register::new(&out.local.identity, tag, addrs, ttl, stamp) {
            out.transmit_to_servers(&wire::encode_sig(Message::Register(reg)));
        }
    }
    if now >= d.next_lookup {
        d.next_lookup = now.saturating_add(lookup_every);
        let stamp = out.stamp(now);
        let lookup = Lookup::new(&out.local.identity, tag, stamp);
        out.transmit_to_servers(&wire::encode_sig(Message::Lookup(lookup)));
    }
}

/// A signaling server listed these members of the room: each is a hint,
/// and each address of a member not online yet is greeted.
pub(crate) fn on_found(
    members: &mut Members,
    link: &Link,
    digest: u64,
    now: UnixMillis,
    entries: Vec<Entry>,
    out: &mut Outbox<'_>,
) {
    let me = out.local.me;
    let mut greet = Vec::new();
    for entry in entries {
        if entry.peer == me {
            continue;
        }
        let known_live = members
            .get(&entry.peer)
            .is_some_and(|m| m.status == Status::Online);
        for addr in std::iter::once(entry.observed).chain(entry.addrs) {
            if !addr::usable(&addr) {
                continue;
            }
            members.hint(now, entry.peer, addr);
            if !known_live && !greet.contains(&addr) {
                greet.push(addr);
            }
        }
    }
    for addr in greet {
        membership::send_beat(members, link, digest, now, addr, true, out);
    }
}

/// Leaving: unregister from every signaling server.
pub(crate) fn unregister(tag: RendezvousTag, now: UnixMillis, out: &mut Outbox<'_>) {
    if out.local.config.signaling.is_empty() {
        return;
    }
    let stamp = out.stamp(now);
    let bytes = wire::encode_sig(Message::Unregister(Unregister::new(
        &out.local.identity,
        tag,
        stamp,
    )));
    out.transmit_to_servers(&bytes);
}

/// What a signaling datagram from `from` says about which room, if it is
/// an answer worth taking: from a configured server, with valid
/// signatures, listing members. Anything else is counted here.
pub(crate) fn route_answer(
    config: &Config,
    counters: &mut crate::Counters,
    from: SocketAddr,
    msg: Message,
) -> Option<(RendezvousTag, Vec<Entry>)> {
    if !config.signaling.contains(&from) || msg.verify().is_err() {
        counters.count(DropReason::BadSignal);
        return None;
    }
    match msg {
        Message::Peers(p) => Some((p.tag, p.entries)),
        Message::Arrived(a) => Some((a.tag, vec![a.entry])),
        Message::Registered(_) => None,
        Message::Rejected(_) => {
            counters.signal_rejected += 1;
            None
        }
        Message::Register(_) | Message::Unregister(_) | Message::Lookup(_) => {
            counters.count(DropReason::BadSignal);
            None
        }
    }
}
