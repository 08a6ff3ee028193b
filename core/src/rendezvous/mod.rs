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
//! - A **lookup** (signed too) is answered with one page of the tag's live
//!   entries, the asker excluded: [`signaling::MAX_ENTRIES_PER_REPLY`] per
//!   page, in the order of a keyed hash of their peer ids under a secret
//!   drawn when the server starts (so nobody can grind ids that come first
//!   and hide everyone else), with the number of pages, so a client can
//!   page through them all. A page is packed into as many `peers`
//!   datagrams as needed to keep each within [`MAX_REPLY_LEN`], each
//!   echoing the lookup's nonce. Each entry listed also receives an
//!   `arrived` notice naming the asker (with the nonce of that entry's own
//!   registration), so both sides can send to each other at once.
//! - **Fair share.** Entries are counted per source IP (the address a
//!   registration came from, whatever its port): at most
//!   `max_per_source_per_tag` under one tag and `max_per_source` in all.
//!   When a tag (or the server) is full, a newcomer whose source holds
//!   fewer entries there than the fullest source, by two or more, takes
//!   the place of that source's entry closest to expiry; otherwise it is
//!   refused. So one source, or a few, cannot fill a tag or the server
//!   against everyone else.
//! - Everything else is dropped and counted by reason: oversized,
//!   malformed, not a request, bad signature, stale stamp, bad TTL or
//!   address, room full, server full, source full.
//!
//! Bounded: at most `max_tags` tags, `max_per_tag` entries per tag and
//! `max_entries` in all; remembered stamps of removed entries are capped
//! at `max_entries` too, and the count of entries per source has one slot
//! per source holding any. What is stored is exactly a tag, a peer id, two
//! kinds of address, an expiry, a stamp, a nonce and a membership proof
//! the server cannot check: nothing about a room beyond its one-way tag.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use sha2::{Digest, Sha256};

mod stats;

pub use stats::{Drop, Stats};

use crate::identity::{Identity, PeerId, SIGNATURE_LEN};
use crate::room::{MembershipProof, RendezvousTag};
use crate::signaling::{
    self, Arrived, Entry, Lookup, Message, Peers, Register, Registered, RejectReason, Rejected,
    SignalError, Unregister,
};
use crate::wire::{self, Datagram, SigPacket, WireError};

/// Largest datagram the server accepts or sends (the p2pchat MTU).
pub const MAX_REPLY_LEN: usize = wire::DEFAULT_MTU;
/// Largest request accepted; a register with four IPv6 addresses is about
/// 700 bytes.
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
    /// Most entries from one source IP, in all.
    pub max_per_source: usize,
    /// Most entries from one source IP under one tag.
    pub max_per_source_per_tag: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tags: 10_000,
            max_per_tag: 256,
            max_entries: 50_000,
            max_per_source: 64,
            max_per_source_per_tag: 16,
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
    nonce: u64,
    proof: MembershipProof,
    /// Where the entry comes in lookups (a keyed hash of its peer id).
    rank: u64,
}

impl Slot {
    fn source(&self) -> IpAddr {
        source_of(&self.observed)
    }
}

/// The source an address counts against: its IP, IPv4-mapped addresses as
/// IPv4.
fn source_of(addr: &SocketAddr) -> IpAddr {
    addr.ip().to_canonical()
}

/// The registry.
#[derive(Debug, Default)]
pub struct Registry {
    limits: Limits,
    /// The secret of the lookup order.
    order_key: [u8; 32],
    /// The key every answer is signed with, if the server has one.
    key: Option<Identity>,
    tags: HashMap<RendezvousTag, BTreeMap<PeerId, Slot>>,
    entries: usize,
    /// Entries per source IP.
    by_source: HashMap<IpAddr, usize>,
    /// Stamps of removed entries, with when to forget them, oldest first.
    tombstones: HashMap<(RendezvousTag, PeerId), (u64, u64)>,
    tombstone_order: VecDeque<((RendezvousTag, PeerId), u64)>,
    stats: Stats,
}

/// A datagram to send.
pub type Reply = (SocketAddr, Vec<u8>);

impl Registry {
    /// An empty registry with these limits; `seed` (random, from the host)
    /// keys the order of lookups.
    pub fn new(limits: Limits, seed: [u8; 32]) -> Self {
        Registry {
            limits,
            order_key: Sha256::digest(seed).into(),
            ..Registry::default()
        }
    }

    /// From now on every answer is signed with `key` (see
    /// [`crate::signaling`]: nodes that pin its public key take nothing
    /// else from this server's address).
    pub fn sign_answers(&mut self, key: Identity) {
        self.key = Some(key);
    }

    /// The public key answers are signed with, if any.
    pub fn server_key(&self) -> Option<PeerId> {
        self.key.as_ref().map(Identity::peer_id)
    }

    /// Encodes an answer, signed if this server has a key.
    fn answer(&self, msg: Message) -> Vec<u8> {
        match &self.key {
            Some(key) => wire::encode_signed_answer(msg, key),
            None => wire::encode_sig(msg),
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

    /// Whether an entry for `peer` under `tag` is held.
    pub fn holds(&self, tag: &RendezvousTag, peer: &PeerId) -> bool {
        self.tags.get(tag).is_some_and(|p| p.contains_key(peer))
    }

    /// Entries held for the source IP `ip`.
    pub fn entries_of(&self, ip: IpAddr) -> usize {
        self.by_source.get(&ip).copied().unwrap_or(0)
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
                vec![(from, self.answer(Message::Rejected(Rejected { reason })))]
            }
        }
    }

    /// Drops entries and remembered stamps that have expired.
    pub fn expire(&mut self, now_ms: u64) {
        let mut gone: Vec<IpAddr> = Vec::new();
        self.tags.retain(|_, peers| {
            peers.retain(|_, slot| {
                let live = slot.expires_ms > now_ms;
                if !live {
                    gone.push(slot.source());
                }
                live
            });
            !peers.is_empty()
        });
        self.entries -= gone.len();
        self.stats.expired += gone.len() as u64;
        for source in gone {
            self.uncount(source);
        }
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

    /// Where `peer` comes in the lookups of `tag`.
    fn rank(&self, tag: &RendezvousTag, peer: &PeerId) -> u64 {
        let digest = Sha256::new()
            .chain_update(self.order_key)
            .chain_update(tag.as_bytes())
            .chain_update(peer.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    fn count(&mut self, source: IpAddr) {
        *self.by_source.entry(source).or_insert(0) += 1;
    }

    fn uncount(&mut self, source: IpAddr) {
        if let Some(n) = self.by_source.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_source.remove(&source);
            }
        }
    }

    /// Removes an entry, keeping the counts.
    fn remove_slot(&mut self, tag: &RendezvousTag, peer: &PeerId) -> Option<Slot> {
        let peers = self.tags.get_mut(tag)?;
        let slot = peers.remove(peer)?;
        if peers.is_empty() {
            self.tags.remove(tag);
        }
        self.entries -= 1;
        self.uncount(slot.source());
        Some(slot)
    }

    /// Entries of `source` under `tag`.
    fn in_tag(&self, tag: &RendezvousTag, source: IpAddr) -> usize {
        self.tags.get(tag).map_or(0, |peers| {
            peers.values().filter(|s| s.source() == source).count()
        })
    }

    /// Makes room under `tag` (full) for a newcomer from `source`: the
    /// fullest source there gives up its entry closest to expiry, if it
    /// holds at least two more than `source`.
    fn evict_in_tag(&mut self, tag: &RendezvousTag, source: IpAddr) -> bool {
        let Some(peers) = self.tags.get(tag) else {
            return false;
        };
        let mut counts: HashMap<IpAddr, usize> = HashMap::new();
        for slot in peers.values() {
            *counts.entry(slot.source()).or_insert(0) += 1;
        }
        let mine = counts.get(&source).copied().unwrap_or(0);
        let Some((fullest, n)) = counts.into_iter().max_by_key(|(ip, n)| (*n, *ip)) else {
            return false;
        };
        if n < mine + 2 {
            return false;
        }
        let victim = peers
            .iter()
            .filter(|(_, slot)| slot.source() == fullest)
            .min_by_key(|(peer, slot)| (slot.expires_ms, **peer))
            .map(|(peer, _)| *peer);
        match victim {
            Some(peer) => {
                self.remove_slot(tag, &peer);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }

    /// Makes room on a full server for a newcomer from `source`: the
    /// fullest source gives up its entry closest to expiry, if it holds at
    /// least two more than `source`.
    fn evict_anywhere(&mut self, source: IpAddr) -> bool {
        let mine = self.entries_of(source);
        let Some((fullest, n)) = self
            .by_source
            .iter()
            .max_by_key(|(ip, n)| (**n, **ip))
            .map(|(ip, n)| (*ip, *n))
        else {
            return false;
        };
        if n < mine + 2 {
            return false;
        }
        let victim = self
            .tags
            .iter()
            .flat_map(|(tag, peers)| peers.iter().map(move |(peer, slot)| (tag, peer, slot)))
            .filter(|(_, _, slot)| slot.source() == fullest)
            .min_by_key(|(tag, peer, slot)| (slot.expires_ms, **tag, **peer))
            .map(|(tag, peer, _)| (*tag, *peer));
        match victim {
            Some((tag, peer)) => {
                self.remove_slot(&tag, &peer);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }

    /// Whether a new entry from `source` under `tag` fits, making room by
    /// the fair-share rule if needed.
    fn admit(&mut self, tag: &RendezvousTag, source: IpAddr) -> Result<(), RejectReason> {
        let limits = self.limits;
        if self.entries_of(source) >= limits.max_per_source
            || self.in_tag(tag, source) >= limits.max_per_source_per_tag
        {
            return Err(RejectReason::SourceFull);
        }
        let tag_len = self.tags.get(tag).map_or(0, BTreeMap::len);
        if tag_len >= limits.max_per_tag && !self.evict_in_tag(tag, source) {
            return Err(RejectReason::RoomFull);
        }
        if !self.tags.contains_key(tag) && self.tags.len() >= limits.max_tags {
            return Err(RejectReason::ServerFull);
        }
        if self.entries >= limits.max_entries && !self.evict_anywhere(source) {
            return Err(RejectReason::ServerFull);
        }
        Ok(())
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
        let source = source_of(&from);
        let moved_from = self
            .tags
            .get(&r.tag)
            .and_then(|p| p.get(&r.peer))
            .map(Slot::source);
        match moved_from {
            // A refresh from the same source: always kept.
            Some(old) if old == source => {}
            // A refresh from elsewhere counts against the new source.
            Some(_) => {
                let limits = self.limits;
                if self.entries_of(source) >= limits.max_per_source
                    || self.in_tag(&r.tag, source) >= limits.max_per_source_per_tag
                {
                    return Err(RejectReason::SourceFull);
                }
                self.remove_slot(&r.tag, &r.peer);
            }
            None => self.admit(&r.tag, source)?,
        }
        let fresh = !self
            .tags
            .get(&r.tag)
            .is_some_and(|p| p.contains_key(&r.peer));
        self.tombstones.remove(&(r.tag, r.peer));
        let slot = Slot {
            observed: from,
            addrs: r.addrs,
            expires_ms: now_ms.saturating_add(u64::from(r.ttl_secs) * 1000),
            stamp: r.stamp,
            nonce: r.nonce,
            proof: r.proof,
            rank: self.rank(&r.tag, &r.peer),
        };
        self.tags.entry(r.tag).or_default().insert(r.peer, slot);
        if fresh {
            self.entries += 1;
            self.count(source);
        }
        self.stats.registered += 1;
        let ack = Message::Registered(Registered {
            tag: r.tag,
            ttl_secs: r.ttl_secs,
            nonce: r.nonce,
        });
        Ok(vec![(from, self.answer(ack))])
    }

    fn unregister(&mut self, now_ms: u64, u: Unregister) -> Result<Vec<Reply>, RejectReason> {
        u.verify().map_err(reject_reason)?;
        if !signaling::stamp_is_fresh(self.last_stamp(&u.tag, &u.peer), u.stamp) {
            return Err(RejectReason::StaleStamp);
        }
        if self.remove_slot(&u.tag, &u.peer).is_some() {
            self.stats.unregistered += 1;
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
        let per_page = signaling::MAX_ENTRIES_PER_REPLY;
        let mut live: Vec<(&PeerId, &Slot)> = self
            .tags
            .get(&l.tag)
            .map(|peers| {
                peers
                    .iter()
                    .filter(|(peer, slot)| **peer != l.peer && slot.expires_ms > now_ms)
                    .collect()
            })
            .unwrap_or_default();
        live.sort_by_key(|(peer, slot)| (slot.rank, **peer));
        let pages = live
            .len()
            .div_ceil(per_page)
            .clamp(1, usize::from(signaling::MAX_PAGES));
        let page = usize::from(l.page).min(pages - 1);
        let listed: Vec<(Entry, u64)> = live
            .iter()
            .skip(page * per_page)
            .take(per_page)
            .map(|(peer, slot)| {
                let entry = Entry {
                    peer: **peer,
                    observed: slot.observed,
                    addrs: slot.addrs.clone(),
                    proof: slot.proof,
                };
                (entry, slot.nonce)
            })
            .collect();
        // The asker as the others should see it: its own addresses if it is
        // registered here (its stamp is checked, not stored: a register sent
        // just before may arrive just after), and the proof it sent.
        let asker_addrs = self
            .tags
            .get(&l.tag)
            .and_then(|peers| peers.get(&l.peer))
            .map(|slot| slot.addrs.clone())
            .unwrap_or_default();
        let asker = Entry {
            peer: l.peer,
            observed: from,
            addrs: asker_addrs,
            proof: l.proof,
        };
        let mut out = Vec::new();
        for (entry, nonce) in &listed {
            let notice = Message::Arrived(Arrived {
                tag: l.tag,
                nonce: *nonce,
                entry: asker.clone(),
            });
            out.push((entry.observed, self.answer(notice)));
        }
        let head = PageHead {
            tag: l.tag,
            nonce: l.nonce,
            page: u8::try_from(page).unwrap_or(u8::MAX),
            pages: u8::try_from(pages).unwrap_or(u8::MAX),
        };
        let entries = listed.into_iter().map(|(entry, _)| entry).collect();
        for chunk in pack(head, entries, self.key.as_ref()) {
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

/// What every datagram of one page of a lookup's answer repeats.
#[derive(Clone, Copy)]
struct PageHead {
    tag: RendezvousTag,
    nonce: u64,
    page: u8,
    pages: u8,
}

/// Packs one page's entries into `peers` datagrams of at most
/// [`MAX_REPLY_LEN`] bytes (always at least one, possibly empty), each
/// signed with `key` if there is one (sizes are measured with a signature
/// of the same length, so only what is sent gets signed).
fn pack(head: PageHead, entries: Vec<Entry>, key: Option<&Identity>) -> Vec<Vec<u8>> {
    let msg = |entries: Vec<Entry>| {
        Message::Peers(Peers {
            tag: head.tag,
            nonce: head.nonce,
            page: head.page,
            pages: head.pages,
            entries,
        })
    };
    let size = |entries: Vec<Entry>| {
        wire::encode_sig_packet(SigPacket {
            v: wire::VERSION,
            msg: msg(entries),
            sig: key.map(|_| [0; SIGNATURE_LEN]),
        })
        .len()
    };
    let encode = |entries: Vec<Entry>| match key {
        Some(key) => wire::encode_signed_answer(msg(entries), key),
        None => wire::encode_sig(msg(entries)),
    };
    let mut out = Vec::new();
    let mut current: Vec<Entry> = Vec::new();
    for entry in entries {
        current.push(entry);
        if size(current.clone()) > MAX_REPLY_LEN && current.len() > 1 {
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
        // A request never carries entries or pages; treat as malformed.
        SignalError::TooManyEntries { .. } | SignalError::BadPage { .. } => {
            RejectReason::TooManyAddrs
        }
        SignalError::BadPeerId | SignalError::BadSignature | SignalError::BadServerSignature => {
            RejectReason::BadSignature
        }
    }
}
