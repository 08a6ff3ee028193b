//! Membership: who is in a room, where they are, and whether they are alive.
//!
//! Members are learned from several sources, all but the first unverified
//! until the member speaks for itself:
//!
//! - a control message sealed by the member (authenticated: its peer id,
//!   name and the address it came from are taken as true);
//! - hints inside other members' control messages (member lists travel
//!   inside encrypted room traffic, so a room keeps learning members while
//!   the signaling server is down);
//! - the signaling server's lookups and arrival notices;
//! - the authors of the room's history (names, no addresses).
//!
//! **Liveness.** Every member with an address is sent a heartbeat every
//! `heartbeat` interval. A member heard from (any authenticated control
//! message) is **online**; after `suspect_after` of silence it is
//! **suspect**; after `offline_after` it is **offline**; the next valid
//! message brings it back online at once. A member's address is the one
//! it proved it is at (see [`crate::path`]).
//!
//! **Unanswered addresses.** An address a member is only said to be at
//! (a hint, a signaling entry, a stored address after a restart, a Chat
//! ID's bootstrap address) is a candidate: it is probed on its own
//! schedule, at once and then ever more rarely, and forgotten if it does
//! not answer within half an hour (the schedule and its figures are in
//! [`crate::path`]). A probe is a heartbeat that asks for an answer at once
//! and carries a challenge; the member's answer, from that address, echoing
//! the challenge, proves it (one and a half round trips when the answer
//! also challenges back). A challenge a member sent us is echoed in every
//! heartbeat we send it until it stops challenging, so a lost answer costs
//! one heartbeat, not a new handshake. From then on the pair beat each
//! other every heartbeat. An offline member's last proved address is probed every
//! probe interval for as long as it is offline, so partitions heal and
//! restarted peers are found again without any server.
//!
//! **Hints are a member's word.** A member may hint any address at all,
//! so what we send because of its hints is paid for by that member: each
//! authenticated control message it sends us earns it one probe of an
//! address it hinted (at most [`MAX_HINT_CREDIT`] saved up). A member that
//! floods us with hints gets at most one datagram sent to third parties
//! per datagram it sends, and nothing once it goes silent. A hinted
//! address is forgotten unless some member names it again within
//! [`HINT_TTL_MS`]; it never displaces an address a signaling server, the
//! store or a Chat ID named, and a member already reached is not probed
//! elsewhere because someone says so. Unspecified, multicast and broadcast
//! addresses are never taken from anyone ([`crate::addr`]).
//!
//! **Replays.** Each control message carries the sender's strictly
//! increasing stamp; one that is not above the last accepted stamp from
//! that member is dropped. Stamps are the sender's wall clock in
//! milliseconds times 1,000 plus a counter, so they keep increasing across
//! restarts; a member whose clock was set back by more than its downtime
//! is ignored until its clock catches up (its events still flow through
//! the others).
//!
//! Bounded: at most [`MAX_MEMBERS`] members per room (offline ones are
//! forgotten first) and [`MAX_CANDIDATES`] candidate addresses per member.
//!
//! The member table is in `table.rs` (re-exported here); this module holds the
//! messages members exchange about each other and their handlers.

mod table;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::counters::DropReason;
use crate::identity::{PeerId, UserName};
use crate::output::AppEvent;
use crate::replication;
use crate::room::{Incoming, Link, Outbox, RoomId, Sender};
use crate::store::Record;
use crate::wire::Control;
use crate::UnixMillis;

pub use table::{
    Candidate, Heard, Member, Members, Status, StatusChange, Timeouts, HINT_TTL_MS, MAX_CANDIDATES,
    MAX_HINT_CREDIT, MAX_MEMBERS,
};

/// Most member hints in one heartbeat.
pub const MAX_HINTS: usize = 32;
/// Member hints carried by each heartbeat.
pub const HINTS_PER_BEAT: usize = 3;

/// Heartbeat: "I am here, this is what I have, these are others".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Beat {
    /// Replay guard.
    pub stamp: u64,
    /// Sender's display name.
    pub name: String,
    /// Digest of the sender's version vector (see [`crate::replication`]).
    pub digest: u64,
    /// Some members the sender hears from.
    pub hints: Vec<Hint>,
    /// The sender just arrived and asks for a beat back at once.
    pub hello: bool,
    /// A nonce to echo in a beat back at once, from the address this one
    /// was sent to (see [`crate::path`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<u64>,
    /// The nonce of a challenge the receiver sent to the address this beat
    /// comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<u64>,
}

impl Beat {
    /// Whether the contents keep the limits (checked before anything is
    /// taken from it).
    pub fn is_valid(&self) -> bool {
        UserName::is_valid(&self.name) && self.hints.len() <= MAX_HINTS
    }
}

/// The sender leaves the room (or shuts down).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bye {
    /// Replay guard.
    pub stamp: u64,
}

/// A peer another member may want to contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hint {
    /// The member.
    pub peer: PeerId,
    /// Where it was last heard from.
    pub addr: SocketAddr,
}

// ----- the room's membership traffic ----------------------------------------

/// An authenticated control message with `stamp` came from `sender` at
/// `addr` (a heartbeat brings the sender's `name` too). Takes it for
/// liveness, stores and announces any change of status. Returns false if
/// the message must go no further (a replay, or no room in the table).
pub(crate) fn heard(
    members: &mut Members,
    room: RoomId,
    now: UnixMillis,
    from: Sender,
    name: Option<&str>,
    stamp: u64,
    out: &mut Outbox<'_>,
) -> bool {
    let Sender { peer: sender, addr } = from;
    if let Some(name) = name {
        members.set_name(sender, name);
    }
    match members.heard(now, sender, addr, stamp) {
        (Heard::Replay, _) => {
            out.count(DropReason::Replayed);
            false
        }
        (Heard::Full, _) => {
            out.count(DropReason::MembersFull);
            false
        }
        (Heard::Fresh, change) => {
            if let Some(change) = change {
                out.persist(Record::Member {
                    room,
                    peer: sender,
                    name: change.name.clone(),
                    addr,
                });
                out.event(AppEvent::Member { room, change });
            }
            true
        }
    }
}

/// A heartbeat: its hints are taken, a beat goes back if it says hello,
/// and its digest goes to replication.
pub(crate) fn on_beat(beat: Beat, at: Incoming<'_>, out: &mut Outbox<'_>) {
    let Incoming {
        now,
        from,
        history,
        members,
        repl,
        link,
        ..
    } = at;
    members.set_digest(&from.peer, beat.digest);
    members.set_owed(&from.peer, beat.challenge);
    for hint in beat.hints {
        members.hint_from(now, from.peer, hint.peer, hint.addr);
    }
    if beat.hello || beat.challenge.is_some() {
        let digest = history.state_digest();
        let answer = Greeting {
            response: beat.challenge,
            ..Greeting::default()
        };
        send_beat(members, link, digest, now, from.addr, answer, out);
    }
    replication::on_digest(repl, history, link, now, from, beat.digest, out);
}

/// A goodbye: the sender is offline at once.
pub(crate) fn on_bye(_bye: Bye, at: Incoming<'_>, out: &mut Outbox<'_>) {
    if let Some(change) = at.members.bye(&at.from.peer) {
        out.event(AppEvent::Member {
            room: at.room,
            change,
        });
    }
}

/// Time passed: silence makes members suspect, then offline; live members
/// get their heartbeat, and offline or unconfirmed ones a probe that asks
/// for an answer at once.
pub(crate) fn on_timeout(
    members: &mut Members,
    room: RoomId,
    link: &Link,
    digest: u64,
    now: UnixMillis,
    out: &mut Outbox<'_>,
) {
    members.paths_mut().expire(now);
    for change in members.tick(now) {
        out.event(AppEvent::Member { room, change });
    }
    let targets = members.beat_targets(now);
    for (peer, addr) in targets {
        let live = members
            .get(&peer)
            .is_some_and(|m| m.addr == Some(addr) && m.status != Status::Offline);
        // A challenge the member sent us is echoed until it stops
        // challenging: our first answer may have been lost, and it cannot
        // take our address before it has one.
        let response = members.owed(&peer);
        let greeting = if live {
            Greeting {
                response,
                ..Greeting::default()
            }
        } else {
            Greeting {
                response,
                ..Greeting::probe()
            }
        };
        send_beat(members, link, digest, now, addr, greeting, out);
    }
}

/// Says goodbye to every live member.
pub(crate) fn say_bye(members: &Members, link: &Link, now: UnixMillis, out: &mut Outbox<'_>) {
    let live: Vec<SocketAddr> = members.live().map(|(_, a)| a).collect();
    for addr in live {
        let stamp = out.stamp(now);
        link.control(now, addr, Control::Bye(Bye { stamp }), out);
    }
}

/// What a heartbeat asks of, or answers to, its receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Greeting {
    /// Ask for a beat back at once.
    pub hello: bool,
    /// Challenge the address it goes to (see [`crate::path`]).
    pub challenge: bool,
    /// Answer a challenge the receiver sent.
    pub response: Option<u64>,
    /// Leave out the member hints (an answer to an address not proved,
    /// kept small).
    pub bare: bool,
}

impl Greeting {
    /// A probe of an address not proved yet: answer at once, and prove it.
    pub fn probe() -> Self {
        Greeting {
            hello: true,
            challenge: true,
            ..Greeting::default()
        }
    }
}

/// Sends a heartbeat to `to`, with this node's `digest` and a few members
/// as hints, asking or answering what `greeting` says.
pub(crate) fn send_beat(
    members: &mut Members,
    link: &Link,
    digest: u64,
    now: UnixMillis,
    to: SocketAddr,
    greeting: Greeting,
    out: &mut Outbox<'_>,
) {
    let beat = beat(members, digest, now, to, greeting, out);
    link.control(now, to, Control::Beat(beat), out);
}

/// The heartbeat [`send_beat`] sends (its challenge, if any, recorded as
/// sent to `to`).
pub(crate) fn beat(
    members: &mut Members,
    digest: u64,
    now: UnixMillis,
    to: SocketAddr,
    greeting: Greeting,
    out: &mut Outbox<'_>,
) -> Beat {
    let stamp = out.stamp(now);
    // A random window of the member list: a fixed rotation aliases with
    // the number of beats per round (a member would hear of the same few
    // others from everyone, every round, and large rooms stopped
    // discovering each other at ~200 members in the scale simulation).
    let hints: Vec<Hint> = if greeting.bare {
        Vec::new()
    } else {
        let offset = out.random_u32() as usize;
        members
            .hints(offset, HINTS_PER_BEAT)
            .into_iter()
            .filter(|h| h.addr != to)
            .collect()
    };
    let challenge = greeting.challenge.then(|| {
        let nonce = out.random_u64();
        members.paths_mut().challenged(now, to, nonce);
        nonce
    });
    Beat {
        stamp,
        name: out.local.name.as_str().to_owned(),
        digest,
        hints,
        hello: greeting.hello,
        challenge,
        response: greeting.response,
    }
}
