//! Discovery: how a member finds the room's other members.
//!
//! Three sources, each unverified until a member answers for itself at an
//! address (see [`crate::membership`]):
//!
//! - **Bootstrap addresses** from the Chat ID the member joined with. A
//!   joiner greets them at once and, while nobody is online, on the
//!   schedule of any address that has not answered (see [`crate::path`]):
//!   six tries in the first ten seconds, so a few lost hellos do not keep
//!   it out of the room, then ever more rarely, and not at all after half
//!   an hour. An address stops being greeted as soon as anyone answers
//!   from it.
//! - **Signaling servers.** The room registers the node's own addresses
//!   under the room's rendezvous tag, refreshing at a third of the
//!   registration's lifetime — and every probe interval until every server
//!   has acknowledged the latest registration, so one lost datagram does
//!   not leave the node unlisted for a third of the lifetime — and looks
//!   the tag up: every probe interval
//!   while nobody is online, every `lookup_interval_ms` otherwise. The
//!   server answers with the members registered (and tells them about the
//!   newcomer); each is hinted to the member table and greeted, on its
//!   address's schedule, unless it is online already. Leaving unregisters.
//!
//!   Nothing from a server is taken on its word. An answer counts only if
//!   it comes from a configured server's address, carries the signature of
//!   the server's key if the node pins one (`bad_server_signature`
//!   otherwise), and echoes the nonce of a request of ours still
//!   remembered (the last few lookups, and the last few registrations for
//!   arrival notices): a forged answer, even one sent from the server's
//!   address, is dropped. Every entry must carry a
//!   membership proof that holds for its peer id under the room's proof
//!   key; an entry that does not is dropped and counted, and no datagram
//!   ever goes to its addresses. A lookup's answer says how many pages of
//!   entries the server holds; when the first page arrives, every other
//!   page is asked for at once (a lost page is asked for again at the next
//!   lookup), so a room's members are found however many fake entries
//!   share the tag.
//! - **Other members' hints**, carried in heartbeats (handled by
//!   [`crate::membership`]).

use std::net::SocketAddr;

use std::collections::VecDeque;

use crate::addr;
use crate::counters::DropReason;
use crate::identity::PeerId;
use crate::membership::{self, Greeting, Members, Status};
use crate::node::Config;
use crate::path::Due;
use crate::room::{Link, MembershipProof, Outbox, ProofKey, RendezvousTag, RoomKey};
use crate::signaling::{self, Entry, Lookup, Message, Query, Register, Registration, Unregister};
use crate::wire::{self, SigPacket};
use crate::UnixMillis;

/// Lookups remembered while their answers may come: a first page and all
/// the others it announces.
const PENDING_LOOKUPS: usize = signaling::MAX_PAGES as usize + 1;
/// Registrations whose nonce an arrival notice may echo.
const REMEMBERED_REGISTRATIONS: usize = 3;

/// A signaling answer for a room, bound to one of our requests by its nonce.
#[derive(Debug)]
pub(crate) enum Answer {
    /// One page of a lookup's answer, from `server`.
    Peers {
        server: SocketAddr,
        nonce: u64,
        page: u8,
        pages: u8,
        entries: Vec<Entry>,
    },
    /// Someone looked the room up, and the server tells us.
    Arrived { nonce: u64, entry: Entry },
    /// `server` keeps our registration.
    Registered { server: SocketAddr, nonce: u64 },
}

/// A lookup waiting for its answer.
#[derive(Debug, Clone, Copy)]
struct PendingLookup {
    nonce: u64,
    page: u8,
    /// The other pages were asked for already (first pages only).
    followed: bool,
}

/// A room's discovery state: the bootstrap addresses still to greet, and
/// the signaling timers.
#[derive(Debug)]
pub struct Discovery {
    /// Greeted on their own schedules (in [`Members::paths`]) while nobody
    /// is online, until they answer or are given up on.
    bootstrap: Vec<SocketAddr>,
    next_register: UnixMillis,
    /// When the latest registration is due its refresh, once every server
    /// acknowledged it.
    refresh_at: UnixMillis,
    /// The servers that acknowledged the latest registration.
    acks: Vec<SocketAddr>,
    next_lookup: UnixMillis,
    /// Checks others' membership proofs.
    proofs: ProofKey,
    /// Ours.
    my_proof: MembershipProof,
    /// Nonces of our latest registrations, newest last.
    registrations: VecDeque<u64>,
    /// Lookups waiting for answers, newest last.
    lookups: VecDeque<PendingLookup>,
}

impl Discovery {
    /// Discovery for a room joined (or restored) at `now` with these
    /// bootstrap addresses (unusable ones are left out), for the member
    /// `me` of the room with `key`.
    pub fn new(now: UnixMillis, bootstrap: &[SocketAddr], key: &RoomKey, me: &PeerId) -> Self {
        let proofs = key.proof_key();
        Discovery {
            bootstrap: bootstrap.iter().copied().filter(addr::usable).collect(),
            next_register: now,
            refresh_at: now,
            acks: Vec::new(),
            next_lookup: now,
            my_proof: proofs.proof(me),
            proofs,
            registrations: VecDeque::new(),
            lookups: VecDeque::new(),
        }
    }

    /// Remembers a lookup of ours.
    fn asked(&mut self, nonce: u64, page: u8) {
        if self.lookups.len() >= PENDING_LOOKUPS {
            self.lookups.pop_front();
        }
        self.lookups.push_back(PendingLookup {
            nonce,
            page,
            followed: false,
        });
    }

    /// Remembers a registration of ours.
    fn registered(&mut self, nonce: u64) {
        if self.registrations.len() >= REMEMBERED_REGISTRATIONS {
            self.registrations.pop_front();
        }
        self.registrations.push_back(nonce);
    }

    /// A member answered from `addr`: no need to greet it as a bootstrap
    /// address any more.
    pub fn heard_from(&mut self, addr: SocketAddr) {
        self.bootstrap.retain(|a| *a != addr);
    }

    /// The next time the discovery timers have work.
    pub fn deadline(&self, members: &Members, signaling: bool) -> UnixMillis {
        let mut next = UnixMillis::MAX;
        if !members.any_online() {
            for addr in &self.bootstrap {
                next = next.min(members.paths().next_probe(addr).unwrap_or(0));
            }
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
    members: &mut Members,
    link: &Link,
    digest: u64,
    now: UnixMillis,
    out: &mut Outbox<'_>,
) {
    if members.any_online() {
        return;
    }
    let heartbeat = out.local.config.timeouts.heartbeat;
    let mut greet = Vec::new();
    d.bootstrap.retain(
        |&addr| match members.paths_mut().probe_due(now, addr, heartbeat) {
            Due::Now => {
                greet.push(addr);
                true
            }
            Due::At(_) => true,
            Due::GivenUp => false,
        },
    );
    for addr in greet {
        membership::send_beat(members, link, digest, now, addr, Greeting::probe(), out);
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
        // Again soon unless every server acknowledges it (see `on_answer`).
        d.refresh_at = now.saturating_add(u64::from(ttl) * 1000 / 3);
        d.next_register = now.saturating_add(config.timeouts.probe).min(d.refresh_at);
        d.acks.clear();
        let registration = Registration {
            tag,
            addrs,
            ttl_secs: ttl,
            stamp: out.stamp(now),
            nonce: out.random_u64(),
            proof: d.my_proof,
        };
        let nonce = registration.nonce;
        if let Ok(reg) = Register::new(&out.local.identity, registration) {
            d.registered(nonce);
            out.transmit_to_servers(&wire::encode_sig(Message::Register(reg)));
        }
    }
    if now >= d.next_lookup {
        d.next_lookup = now.saturating_add(lookup_every);
        let bytes = lookup(d, tag, now, 0, out);
        out.transmit_to_servers(&bytes);
    }
}

/// A signed lookup of page `page`, remembered as asked.
fn lookup(
    d: &mut Discovery,
    tag: RendezvousTag,
    now: UnixMillis,
    page: u8,
    out: &mut Outbox<'_>,
) -> Vec<u8> {
    let query = Query {
        tag,
        stamp: out.stamp(now),
        nonce: out.random_u64(),
        page,
        proof: d.my_proof,
    };
    d.asked(query.nonce, page);
    wire::encode_sig(Message::Lookup(Lookup::new(&out.local.identity, query)))
}

/// A signaling server answered: if the answer is bound to a request of
/// ours, its entries whose membership proofs hold are hinted and greeted,
/// and the next page of a lookup is asked for.
pub(crate) fn on_answer(
    d: &mut Discovery,
    members: &mut Members,
    link: &Link,
    digest: u64,
    now: UnixMillis,
    answer: Answer,
    out: &mut Outbox<'_>,
) {
    let entries = match answer {
        Answer::Peers {
            server,
            nonce,
            page,
            pages,
            entries,
        } => {
            let Some(pending) = d
                .lookups
                .iter_mut()
                .find(|p| p.nonce == nonce && p.page == page)
            else {
                return out.count(DropReason::UnboundAnswer);
            };
            if page == 0 && !pending.followed {
                pending.followed = true;
                for next in 1..pages {
                    let bytes = lookup(d, link.tag, now, next, out);
                    out.transmit(server, bytes);
                }
            }
            entries
        }
        Answer::Arrived { nonce, entry } => {
            if !d.registrations.contains(&nonce) {
                return out.count(DropReason::UnboundAnswer);
            }
            vec![entry]
        }
        Answer::Registered { server, nonce } => {
            // Any registration of ours still remembered will do: the
            // server holds an entry for us.
            if !d.registrations.contains(&nonce) {
                return out.count(DropReason::UnboundAnswer);
            }
            if !d.acks.contains(&server) {
                d.acks.push(server);
            }
            let servers = &out.local.config.signaling;
            if servers.iter().all(|s| d.acks.contains(s)) {
                d.next_register = d.refresh_at;
            }
            return;
        }
    };
    let mut proven = Vec::with_capacity(entries.len());
    for entry in entries {
        if d.proofs.verify(&entry.peer, &entry.proof) {
            proven.push(entry);
        } else {
            out.count(DropReason::FakeEntry);
        }
    }
    on_found(members, link, digest, now, proven, out);
}

/// A signaling server listed these members of the room (their proofs
/// hold): each is a hint, and each address of a member not online yet is
/// greeted if its schedule says so.
fn on_found(
    members: &mut Members,
    link: &Link,
    digest: u64,
    now: UnixMillis,
    entries: Vec<Entry>,
    out: &mut Outbox<'_>,
) {
    let me = out.local.me;
    let heartbeat = out.local.config.timeouts.heartbeat;
    let mut greet = Vec::new();
    for entry in entries {
        if entry.peer == me {
            continue;
        }
        let known_live = members
            .get(&entry.peer)
            .is_some_and(|m| m.status == Status::Online);
        for addr in std::iter::once(entry.observed).chain(entry.addrs) {
            if !addr::usable(&addr) || members.paths().given_up(now, &addr) {
                continue;
            }
            members.hint(now, entry.peer, addr);
            if !known_live
                && !greet.contains(&addr)
                && members.paths_mut().probe_due(now, addr, heartbeat) == Due::Now
            {
                greet.push(addr);
            }
        }
    }
    for addr in greet {
        membership::send_beat(members, link, digest, now, addr, Greeting::probe(), out);
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

/// Which room a signaling datagram from `from` is for, and what it says,
/// if it is an answer worth routing: from a configured server, within the
/// limits, signed by the server's key if one is pinned, listing members.
/// (Its nonce and entries are checked by the room, which knows its
/// requests and its proof key.) Anything else is counted here.
pub(crate) fn route_answer(
    config: &Config,
    counters: &mut crate::Counters,
    from: SocketAddr,
    packet: SigPacket,
) -> Option<(RendezvousTag, Answer)> {
    let msg = packet.msg;
    if !config.signaling.contains(&from) || msg.verify().is_err() {
        counters.count(DropReason::BadSignal);
        return None;
    }
    let pinned = config.signaling_keys.iter().find(|(addr, _)| *addr == from);
    if let Some((_, key)) = pinned {
        if msg.verify_answer(packet.sig.as_ref(), key).is_err() {
            counters.count(DropReason::BadServerSignature);
            return None;
        }
    }
    match msg {
        Message::Peers(p) => Some((
            p.tag,
            Answer::Peers {
                server: from,
                nonce: p.nonce,
                page: p.page,
                pages: p.pages,
                entries: p.entries,
            },
        )),
        Message::Arrived(a) => Some((
            a.tag,
            Answer::Arrived {
                nonce: a.nonce,
                entry: a.entry,
            },
        )),
        Message::Registered(r) => Some((
            r.tag,
            Answer::Registered {
                server: from,
                nonce: r.nonce,
            },
        )),
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
