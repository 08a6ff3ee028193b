//! Rendezvous: the signaling server's side of [`crate::signaling`], the
//! soft state of who is under which rendezvous tag.
//!
//! This is the server's whole protocol, written sans-IO like the peer
//! engine: [`Registry::handle`] takes the time, the source address and the
//! datagram, and returns the datagrams to send; [`Registry::expire`] drops
//! what has outlived its TTL. The `p2pchat-signaling` binary only moves
//! bytes (and rate-limits sources), and the simulator runs this very
//! registry as its signaling server.
//!
//! Rules:
//!
//! - A **register** adds or refreshes the entry `(tag, peer)` with the
//!   address the datagram came from (`observed`), the peer's self-reported
//!   addresses and an expiry `now + ttl`. It must be signed by `peer` and
//!   carry a stamp above the last one accepted for `(tag, peer)`: nobody can
//!   create, move or refresh another peer's entry, and a replayed request
//!   changes nothing.
//! - An **unregister** (same checks) removes the entry at once. The stamp
//!   is remembered for [`signaling::MAX_TTL_SECS`] after, so the removed
//!   registration cannot be replayed back.
//! - A **lookup** (signed too) is answered with the tag's live entries, the
//!   asker excluded, at most [`signaling::MAX_ENTRIES_PER_REPLY`], packed
//!   into as many `peers` datagrams as needed to keep each within
//!   [`MAX_REPLY_LEN`]. Each entry listed also receives an `arrived` notice
//!   naming the asker, so both sides can send to each other at once.
//! - Everything else is dropped and counted by reason: oversized,
//!   malformed, not a request, bad signature, stale stamp, bad TTL or
//!   address, room full, server full.
//!
//! Bounded: at most `max_tags` tags, `max_per_tag` entries per tag and
//! `max_entries` in all; remembered stamps of removed entries are capped
//! at `max_entries` too. What is stored is exactly a tag, a peer id, two
//! kinds of address, an expiry and a stamp: nothing about a room beyond its
//! one-way tag.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

mod stats;

pub use stats::{Drop, Stats};

use crate::identity::PeerId;
use crate::room::RendezvousTag;
use crate::signaling::{
    self, Arrived, Entry, Lookup, Message, Peers, Register, Registered, RejectReason, Rejected,
    SignalError, Unregister,
};
use crate::wire::{self, Datagram, WireError};

/// Largest datagram the server accepts or sends (the p2pchat MTU).
pub const MAX_REPLY_LEN: usize = wire::DEFAULT_MTU;
/// Largest request accepted; a register with four IPv6 addresses is about
/// 600 bytes.
pub const MAX_REQUEST_LEN: usize = wire::DEFAULT_MTU;

/// Capacity limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most distinct tags.
    pub max_tags: usize,
    /// Most entries under one tag.
    pub max_per_tag: usize,
    /// Most entries in all.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tags: 10_000,
            max_per_tag: 256,
            max_entries: 50_000,
        }
    }
}

/// One registration.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    observed: SocketAddr,
    addrs: Vec<SocketAddr>,
    expires_ms: u64,
    stamp: u64,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Registry {
    limits: Limits,
    tags: HashMap<RendezvousTag, BTreeMap<PeerId, Slot>>,
    entries: usize,
    /// Stamps of removed entries, with when to forget them, oldest first.
    tombstones: HashMap<(RendezvousTag, PeerId), (u64, u64)>,
    tombstone_order: VecDeque<((RendezvousTag, PeerId), u64)>,
    stats: Stats,
}

/// A datagram to send.
pub type Reply = (SocketAddr, Vec<u8>);

impl Registry {
    /// An empty registry with these limits.
    pub fn new(limits: Limits) -> Self {
        Registry {
            limits,
            ..Registry::default()
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Mutable counters, for the driver's own drops (rate limiting).
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Number of live entries.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Number of tags with at least one entry.
    pub fn tags(&self) -> usize {
        self.tags.len()
    }

    /// Handles one datagram from `from` at `now_ms`.
    pub fn handle(&mut self, now_ms: u64, from: SocketAddr, bytes: &[u8]) -> Vec<Reply> {
        self.stats.received += 1;
        if bytes.len() > MAX_REQUEST_LEN {
            self.stats.drop(Drop::Oversized);
            return Vec::new();
        }
        let msg = match wire::decode(bytes) {
            Ok(Datagram::Sig(packet)) => packet.msg,
            Ok(_) => {
                self.stats.drop(Drop::NotSignaling);
                return Vec::new();
            }
            Err(WireError::TooLarge) => {
                self.stats.drop(Drop::Oversized);
                return Vec::new();
            }
            Err(_) => {
                self.stats.drop(Drop::Malformed);
                return Vec::new();
            }
        };
        let result = match msg {
            Message::Register(r) => self.register(now_ms, from, r),
            Message::Unregister(u) => self.unregister(now_ms, u),
            Message::Lookup(l) => self.lookup(now_ms, from, l),
            Message::Registered(_)
            | Message::Peers(_)
            | Message::Arrived(_)
            | Message::Rejected(_) => {
                // Server-to-client messages sent to the server: never
                // answered, so two servers cannot be made to talk in a loop.
                self.stats.drop(Drop::Unexpected);
                return Vec::new();
            }
        };
        match result {
            Ok(replies) => replies,
            Err(reason) => {
                self.stats.drop(Drop::Rejected(reason));
                vec![(
                    from,
                    wire::encode_sig(Message::Rejected(Rejected { reason })),
                )]
            }
        }
    }

    /// Drops entries and remembered stamps that have expired.
    pub fn expire(&mut self, now_ms: u64) {
        let mut expired = 0;
        self.tags.retain(|_, peers| {
            let before = peers.len();
            peers.retain(|_, slot| slot.expires_ms > now_ms);
            expired += before - peers.len();
            !peers.is_empty()
        });
        self.entries -= expired;
        self.stats.expired += expired as u64;
        while let Some((key, forget_at)) = self.tombstone_order.front().copied() {
            if forget_at > now_ms {
                break;
            }
            self.tombstone_order.pop_front();
            if self
                .tombstones
                .get(&key)
                .is_some_and(|(_, at)| *at == forget_at)
            {
                self.tombstones.remove(&key);
            }
        }
    }

    fn last_stamp(&self, tag: &RendezvousTag, peer: &PeerId) -> Option<u64> {
        self.tags
            .get(tag)
            .and_then(|peers| peers.get(peer))
            .map(|slot| slot.stamp)
            .or_else(|| self.tombstones.get(&(*tag, *peer)).map(|(stamp, _)| *stamp))
    }

    fn register(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        r: Register,
    ) -> Result<Vec<Reply>, RejectReason> {
        r.verify().map_err(reject_reason)?;
        if !signaling::stamp_is_fresh(self.last_stamp(&r.tag, &r.peer), r.stamp) {
            return Err(RejectReason::StaleStamp);
        }
        let exists = self
            .tags
            .get(&r.tag)
            .is_some_and(|p| p.contains_key(&r.peer));
        if !exists {
            if self.entries >= self.limits.max_entries {
                return Err(RejectReason::ServerFull);
            }
            match self.tags.get(&r.tag) {
                Some(peers) if peers.len() >= self.limits.max_per_tag => {
                    return Err(RejectReason::RoomFull)
                }
                None if self.tags.len() >= self.limits.max_tags => {
                    return Err(RejectReason::ServerFull)
                }
                _ => {}
            }
            self.entries += 1;
        }
        self.tombstones.remove(&(r.tag, r.peer));
        let slot = Slot {
            observed: from,
            addrs: r.addrs,
            expires_ms: now_ms.saturating_add(u64::from(r.ttl_secs) * 1000),
            stamp: r.stamp,
        };
        self.tags.entry(r.tag).or_default().insert(r.peer, slot);
        self.stats.registered += 1;
        let ack = Message::Registered(Registered {
            tag: r.tag,
            ttl_secs: r.ttl_secs,
        });
        Ok(vec![(from, wire::encode_sig(ack))])
    }

    fn unregister(&mut self, now_ms: u64, u: Unregister) -> Result<Vec<Reply>, RejectReason> {
        u.verify().map_err(reject_reason)?;
        if !signaling::stamp_is_fresh(self.last_stamp(&u.tag, &u.peer), u.stamp) {
            return Err(RejectReason::StaleStamp);
        }
        if let Some(peers) = self.tags.get_mut(&u.tag) {
            if peers.remove(&u.peer).is_some() {
                self.entries -= 1;
                self.stats.unregistered += 1;
            }
            if peers.is_empty() {
                self.tags.remove(&u.tag);
            }
        }
        self.remember(now_ms, u.tag, u.peer, u.stamp);
        Ok(Vec::new())
    }

    fn lookup(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        l: Lookup,
    ) -> Result<Vec<Reply>, RejectReason> {
        l.verify().map_err(reject_reason)?;
        if let Some(last) = self.last_stamp(&l.tag, &l.peer) {
            if !signaling::stamp_is_fresh(Some(last), l.stamp) {
                return Err(RejectReason::StaleStamp);
            }
        }
        self.stats.lookups += 1;
        let Some(peers) = self.tags.get(&l.tag) else {
            let empty = Message::Peers(Peers {
                tag: l.tag,
                entries: Vec::new(),
            });
            return Ok(vec![(from, wire::encode_sig(empty))]);
        };
        // The asker's own addresses, if it is registered here, so the
        // others learn them too. (Its stamp is checked, not stored: a
        // register sent just before may arrive just after.)
        let asker_addrs = peers
            .get(&l.peer)
            .map(|slot| slot.addrs.clone())
            .unwrap_or_default();
        let listed: Vec<Entry> = peers
            .iter()
            .filter(|(peer, slot)| **peer != l.peer && slot.expires_ms > now_ms)
            .take(signaling::MAX_ENTRIES_PER_REPLY)
            .map(|(peer, slot)| Entry {
                peer: *peer,
                observed: slot.observed,
                addrs: slot.addrs.clone(),
            })
            .collect();
        let mut out = Vec::new();
        let asker = Entry {
            peer: l.peer,
            observed: from,
            addrs: asker_addrs,
        };
        for entry in &listed {
            let notice = Message::Arrived(Arrived {
                tag: l.tag,
                entry: asker.clone(),
            });
            out.push((entry.observed, wire::encode_sig(notice)));
        }
        for chunk in pack(l.tag, listed) {
            out.push((from, chunk));
        }
        Ok(out)
    }

    fn remember(&mut self, now_ms: u64, tag: RendezvousTag, peer: PeerId, stamp: u64) {
        while self.tombstones.len() >= self.limits.max_entries {
            let Some((key, _)) = self.tombstone_order.pop_front() else {
                break;
            };
            self.tombstones.remove(&key);
        }
        let forget_at = now_ms.saturating_add(u64::from(signaling::MAX_TTL_SECS) * 1000);
        self.tombstones.insert((tag, peer), (stamp, forget_at));
        self.tombstone_order.push_back(((tag, peer), forget_at));
    }
}

/// Packs entries into `peers` datagrams of at most [`MAX_REPLY_LEN`] bytes
/// (always at least one, possibly empty).
fn pack(tag: RendezvousTag, entries: Vec<Entry>) -> Vec<Vec<u8>> {
    let encode = |entries: Vec<Entry>| wire::encode_sig(Message::Peers(Peers { tag, entries }));
    let mut out = Vec::new();
    let mut current: Vec<Entry> = Vec::new();
    for entry in entries {
        current.push(entry);
        if encode(current.clone()).len() > MAX_REPLY_LEN && current.len() > 1 {
            let last = current.pop();
            out.push(encode(std::mem::take(&mut current)));
            current.extend(last);
        }
    }
    if !current.is_empty() || out.is_empty() {
        out.push(encode(current));
    }
    out
}

fn reject_reason(e: SignalError) -> RejectReason {
    match e {
        SignalError::TooManyAddrs { .. } => RejectReason::TooManyAddrs,
        SignalError::BadAddr { .. } => RejectReason::BadAddr,
        SignalError::BadTtl { .. } => RejectReason::BadTtl,
        // A request never carries entries; treat as malformed.
        SignalError::TooManyEntries { .. } => RejectReason::TooManyAddrs,
        SignalError::BadPeerId | SignalError::BadSignature => RejectReason::BadSignature,
    }
}
