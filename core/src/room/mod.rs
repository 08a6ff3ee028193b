//! Room: one chat room, as a state machine.
//!
//! A `Room` is fed `Input`s with the time — a whole token that arrived
//! for it (the [`crate::Node`] has routed the datagram by rendezvous tag and
//! put fragments back together), members a signaling server listed, and
//! the passing of time — through `Room::handle`, and writes what follows
//! into an `Outbox`. It also takes the user's words (`Room::say`) and
//! departure (`Room::leave`).
//!
//! The room itself only opens tokens and routes what is inside to the
//! module whose concept it is; each module reacts to its own messages and
//! timers:
//!
//! | what | module |
//! |---|---|
//! | events: causal delivery, canonical order, this node's own words | [`crate::history`] |
//! | heartbeats, hints, goodbyes; liveness; the member table | [`crate::membership`] |
//! | digests, summaries, repair pushes, catching up | [`crate::replication`] |
//! | bootstrap addresses, signaling registrations and lookups | [`crate::discovery`] |
//!
//! A control message is authenticated first: its sealer must be its
//! sender, its contents must keep their limits, and its stamp must be
//! fresh (membership's liveness bookkeeping), before its module sees it
//! (`crate::wire::Control::handle` routes it, with an `Incoming` that
//! lends the handler the room's parts). Adding a control message is adding
//! its struct and handler to its module and a variant to
//! [`crate::wire::Control`]; nothing here changes.
//!
//! The vocabulary of rooms — ids, keys, names, rendezvous tags — is in
//! [`id`], re-exported here.

pub mod id;

use std::net::SocketAddr;

pub use id::*;
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha20Rng;

use crate::addr;
use crate::chat_id::{ChatId, MAX_BOOTSTRAP};
use crate::clock::EventId;
use crate::counters::{Counters, DropReason};
use crate::discovery::{self, Answer, Discovery};
use crate::equivocation;
use crate::history::{self, Event, History, HistoryStats, Received};
use crate::identity::{Identity, PeerId};
use crate::membership::{self, Members};
use crate::node::{CommandError, Local};
use crate::output::{AppEvent, OutputQueue};
use crate::path;
use crate::replication::{self, Replication};
use crate::seal::{Opened, RoomCipher, SealError, Unsealed};
use crate::wire::{self, Control, RoomKind, Sealed};
use crate::UnixMillis;

/// Who sent a control message, and from where: the member its seal
/// names, at the address the datagram came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sender {
    pub peer: PeerId,
    pub addr: SocketAddr,
}

/// A control message that came in, and the parts of its room its handler
/// may use (each message's handler is in the module it belongs to; see
/// [`crate::wire::Control::handle`]).
pub(crate) struct Incoming<'r> {
    pub now: UnixMillis,
    pub from: Sender,
    pub room: RoomId,
    pub history: &'r History,
    pub members: &'r mut Members,
    pub repl: &'r mut Replication,
    pub link: &'r Link,
}

/// A whole token of `kind` arrived from `addr`, sent by `sender` (as the
/// datagram claims), and was opened by the node: decrypted, parsed and its
/// signature checked (in a batch with others, see
/// [`crate::verification`]).
#[derive(Debug)]
pub(crate) struct Arrived {
    pub kind: RoomKind,
    pub addr: SocketAddr,
    pub sender: PeerId,
    pub token: String,
    pub opened: Result<Opened, SealError>,
}

/// What a room is fed.
#[derive(Debug)]
pub(crate) enum Input {
    /// A whole token came for the room, opened by the node.
    Token(Arrived),
    /// A signaling server answered.
    Found(Answer),
    /// Time passed.
    Timeout,
}

/// What a room may use of its node while it handles an input, and where
/// its outputs go: the node's identity and settings, its randomness, its
/// control stamps, its counters and its output queue.
pub(crate) struct Outbox<'a> {
    pub local: &'a Local,
    /// The room handling the input.
    room: RoomId,
    rng: &'a mut ChaCha20Rng,
    stamp: &'a mut u64,
    queue: &'a mut OutputQueue,
    counters: &'a mut Counters,
}

impl<'a> Outbox<'a> {
    pub fn new(
        local: &'a Local,
        room: RoomId,
        rng: &'a mut ChaCha20Rng,
        stamp: &'a mut u64,
        queue: &'a mut OutputQueue,
        counters: &'a mut Counters,
    ) -> Self {
        Outbox {
            local,
            room,
            rng,
            stamp,
            queue,
            counters,
        }
    }

    /// A record to store.
    pub fn persist(&mut self, record: crate::Record) {
        self.queue.persist(record);
    }

    /// A datagram to send.
    pub fn transmit(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.queue.transmit(to, bytes);
    }

    /// Datagrams that say only what this node holds, sent ahead of the
    /// batch being stored ([`crate::output::OutputQueue::transmit_ahead`]).
    pub fn transmit_ahead(&mut self, to: SocketAddr, datagrams: Vec<Vec<u8>>) {
        self.queue.transmit_ahead(to, datagrams);
    }

    /// The stored token of the room's event `event`, to send to `to` once
    /// the host has read it ([`crate::Output::Read`]).
    pub fn read(&mut self, to: SocketAddr, event: EventId) {
        self.queue.read(self.room, to, event);
    }

    /// The same datagram to every signaling server.
    pub fn transmit_to_servers(&mut self, bytes: &[u8]) {
        for server in &self.local.config.signaling {
            self.queue.transmit(*server, bytes.to_vec());
        }
    }

    /// Something for the user.
    pub fn event(&mut self, event: AppEvent) {
        self.queue.event(event);
    }

    /// Counts a drop.
    pub fn count(&mut self, reason: DropReason) {
        self.counters.count(reason);
    }

    /// The node's counters.
    pub fn counters(&mut self) -> &mut Counters {
        self.counters
    }

    /// A fresh control stamp: strictly increasing, and near `now` in
    /// microseconds so that it keeps increasing across restarts.
    pub fn stamp(&mut self, now: UnixMillis) -> u64 {
        *self.stamp = (*self.stamp + 1).max(now.saturating_mul(1000));
        *self.stamp
    }

    /// A random number from the node's seeded RNG.
    pub fn random_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    /// A random nonce from the node's seeded RNG.
    pub fn random_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

/// How a room's tokens are sealed, framed and opened: its rendezvous tag and
/// its cipher.
#[derive(Debug)]
pub(crate) struct Link {
    pub tag: RendezvousTag,
    cipher: RoomCipher,
}

impl Link {
    /// Signs and encrypts `payload` as `author`.
    pub fn seal(
        &self,
        author: &Identity,
        payload: &[u8],
        now: UnixMillis,
    ) -> Result<String, SealError> {
        self.cipher.seal(author, payload, now)
    }

    /// The datagrams that carry an event's `token` at this MTU, if it fits
    /// [`wire::MAX_FRAGMENTS`] of them. The fragment id derives from the
    /// token (see [`event_frag_id`]).
    pub fn event_datagrams(&self, from: PeerId, token: &str, mtu: usize) -> Option<Vec<Vec<u8>>> {
        wire::encode_room(
            RoomKind::Ev,
            self.tag,
            from,
            token,
            mtu,
            event_frag_id(token),
        )
    }

    /// Seals `control` and sends it to `to`.
    pub fn control(&self, now: UnixMillis, to: SocketAddr, control: Control, out: &mut Outbox<'_>) {
        for bytes in self.control_datagrams(now, control, out) {
            out.transmit(to, bytes);
        }
    }

    /// The datagrams that carry `control`, sealed (none if it cannot be).
    pub fn control_datagrams(
        &self,
        now: UnixMillis,
        control: Control,
        out: &mut Outbox<'_>,
    ) -> Vec<Vec<u8>> {
        let payload = serde_json::to_vec(&Sealed::Ctl(control)).unwrap_or_default();
        let Ok(token) = self.cipher.seal(&out.local.identity, &payload, now) else {
            return Vec::new();
        };
        let frag_id = out.random_u32();
        let (me, mtu) = (out.local.me, out.local.config.mtu);
        wire::encode_room(RoomKind::Ctl, self.tag, me, &token, mtu, frag_id).unwrap_or_default()
    }

    /// Sends a delivered event to `to`: its token if it is held in
    /// memory, otherwise once the host has read it from its store (the
    /// history keeps its events without their tokens).
    pub fn send(&self, to: SocketAddr, event: &Event, out: &mut Outbox<'_>) {
        if event.token.is_empty() {
            out.read(to, event.id);
        } else {
            self.event(to, &event.token, out);
        }
    }

    /// Sends an event's token (its author's, unchanged) to `to`.
    pub fn event(&self, to: SocketAddr, token: &str, out: &mut Outbox<'_>) {
        let (me, mtu) = (out.local.me, out.local.config.mtu);
        if let Some(datagrams) = self.event_datagrams(me, token, mtu) {
            for bytes in datagrams {
                out.transmit(to, bytes);
            }
        }
    }
}

/// The fragment id of an event token: derived from the token, so every
/// retransmission of the same event by the same sender uses the same id,
/// and the receiver's partial copy fills up across retransmissions instead
/// of starting over (a 16 KiB event is ~20 fragments; under 30 % loss it
/// would almost never arrive whole in one go).
fn event_frag_id(token: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(token.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// One room this node is in.
#[derive(Debug)]
pub(crate) struct Room {
    pub id: RoomId,
    pub name: RoomName,
    key: RoomKey,
    pub link: Link,
    pub history: History,
    pub members: Members,
    repl: Replication,
    discovery: Discovery,
    /// History drops already counted into the node's counters.
    history_seen: HistoryStats,
    /// When the members were last asked for versions waiting events need.
    versions_asked_at: UnixMillis,
    /// The Chat ID last announced, and the member-table generation it was
    /// derived at.
    announced: (String, u64),
    /// Events delivered when the last checkpoint was written (or taken).
    checkpointed: usize,
}

impl Room {
    /// The room of `chat_id`, joined (or restored) at `now`.
    pub fn new(now: UnixMillis, chat_id: &ChatId, local: &Local) -> Self {
        let id = *chat_id.room_id();
        let key = chat_id.key().clone();
        let link = Link {
            tag: key.rendezvous_tag(),
            cipher: RoomCipher::new(id, &key),
        };
        let timeouts = local.config.timeouts;
        let mut room = Room {
            id,
            name: chat_id.name().clone(),
            key,
            link,
            history: History::with_rules(chat_id.quota(), chat_id.chained()),
            members: Members::new(local.me, timeouts),
            repl: Replication::new(local.config.replication),
            discovery: Discovery::new(now, chat_id.bootstrap(), chat_id.key(), &local.me),
            history_seen: HistoryStats::default(),
            versions_asked_at: 0,
            announced: (String::new(), 0),
            checkpointed: 0,
        };
        if let Some((archive, window)) = &local.archive {
            room.history
                .keep_window(id, std::sync::Arc::clone(archive), *window);
        }
        room.announced = (
            room.invite(local, false).to_string(),
            room.members.generation(),
        );
        room
    }

    /// The Chat ID announced last (this node's addresses and, once any
    /// member was online, theirs).
    pub fn announced_invite(&self) -> &str {
        &self.announced.0
    }

    /// A Chat ID for the room with this node's usable addresses and, with
    /// `with_members`, those of the members online, as bootstrap addresses.
    pub fn invite(&self, local: &Local, with_members: bool) -> ChatId {
        let mut bootstrap: Vec<SocketAddr> = local
            .config
            .local_addrs
            .iter()
            .copied()
            .filter(addr::usable)
            .collect();
        if with_members {
            bootstrap.extend(self.members.live().map(|(_, a)| a).filter(addr::usable));
        }
        bootstrap.dedup();
        bootstrap.truncate(MAX_BOOTSTRAP);
        // Addresses are filtered to usable ones and capped, so this only
        // fails on an impossible input; fall back to no bootstrap.
        let quota = self.history.budgets().quota();
        let bare = || ChatId::without_bootstrap(self.id, self.key.clone(), self.name.clone());
        // The quota is the room's own, valid since it was parsed or built.
        let id = ChatId::new(self.id, self.key.clone(), self.name.clone(), bootstrap)
            .unwrap_or_else(|_| bare())
            .with_quota(quota)
            .unwrap_or_else(|_| bare());
        if self.history.chained() {
            id
        } else {
            id.unchained()
        }
    }

    /// Handles one input.
    pub fn handle(&mut self, now: UnixMillis, input: Input, out: &mut Outbox<'_>) {
        match input {
            Input::Token(arrived) => self.on_token(now, arrived, out),
            Input::Found(answer) => {
                let digest = self.history.state_digest();
                let (d, members) = (&mut self.discovery, &mut self.members);
                discovery::on_answer(d, members, &self.link, digest, now, answer, out);
            }
            Input::Timeout => self.on_timeout(now, out),
        }
        self.settle(out);
    }

    /// This node says `text` in the room: delivered and stored here, then
    /// pushed to every member believed online.
    pub fn say(
        &mut self,
        now: UnixMillis,
        text: &str,
        out: &mut Outbox<'_>,
    ) -> Result<EventId, CommandError> {
        let (id, datagrams) =
            history::author(&mut self.history, self.id, &self.link, now, text, out)?;
        replication::push_new(&self.members, &datagrams, out);
        self.settle(out);
        Ok(id)
    }

    /// This node leaves (or shuts down): goodbye to the members, and
    /// unregistered from signaling.
    pub fn leave(&mut self, now: UnixMillis, out: &mut Outbox<'_>) {
        membership::say_bye(&self.members, &self.link, now, out);
        discovery::unregister(self.link.tag, now, out);
    }

    /// The next time the room has work, if ever.
    pub fn deadline(&self, signaling: bool) -> UnixMillis {
        let mut next = self.members.next_deadline();
        if let Some(t) = self.history.next_expiry() {
            next = next.min(t);
        }
        if let Some(t) = self.repl.next_retry(self.history.shared_vector()) {
            next = next.min(t);
        }
        if let Some(t) = self.repl.next_owed() {
            next = next.min(t);
        }
        next.min(self.discovery.deadline(&self.members, signaling))
    }

    /// Decrypts and parses a token that came for this room, leaving its
    /// signature to the node's batch (see [`crate::verification`]).
    pub fn unseal(&self, token: &str) -> Result<Unsealed, SealError> {
        self.link.cipher.unseal(token)
    }

    /// Offers a stored event back to the history at restore.
    pub fn restore_event(&mut self, event: Event, now: UnixMillis) -> bool {
        // Our own store: trusted, but checked like any event, so a damaged
        // store cannot break the order. What it marks late is read from
        // the history when the chat is shown.
        self.history.note_floors(true);
        let taken = self.history.offer(event, now).is_ok();
        self.forget_restore_output();
        // Read from the store: stored, free to leave memory as the
        // restore goes on.
        self.history.all_stored();
        taken
    }

    /// Takes a stored checkpoint back at restore ([`crate::checkpoint`]);
    /// if the history refuses it, delivers the events it covers again,
    /// read from the store, as a restore without one would have. Returns
    /// whether it was taken.
    pub fn restore_checkpoint(
        &mut self,
        covers: &crate::clock::VersionVector,
        data: &[u8],
        now: UnixMillis,
    ) -> bool {
        if self.history.restore_checkpoint(covers, data).is_ok() {
            self.checkpointed = self.history.delivered();
            return true;
        }
        const PAGE: usize = 4096;
        let mut after = crate::clock::OrderKey::MIN;
        loop {
            let page = self.history.stored_after(after, PAGE);
            let (Some(last), full) = (page.last(), page.len() == PAGE) else {
                break;
            };
            after = last.key();
            for event in page {
                if event.id.seq <= covers.get(&event.id.author) {
                    self.restore_event(event, now);
                }
            }
            if !full {
                break;
            }
        }
        false
    }

    /// A checkpoint of the room, if one is due ([`crate::checkpoint`],
    /// at least `min` events after the last), or with `None` if anything
    /// was delivered since the last.
    pub fn checkpoint(&mut self, min: Option<usize>) -> Option<crate::Record> {
        let delivered = self.history.delivered();
        let due = match min {
            Some(min) => crate::checkpoint::due(delivered, self.checkpointed, min),
            None => delivered > self.checkpointed,
        };
        if !due {
            return None;
        }
        self.checkpointed = delivered;
        let (covers, data) = self.history.checkpoint()?;
        Some(crate::Record::Checkpoint {
            room: self.id,
            covers,
            data,
        })
    }

    /// Offers a stored version (kept off a main chain) back at restore:
    /// used if it is held again or proves its author's fork again (a
    /// proof may be a version no history takes, or one that reached the
    /// main chain since).
    pub fn restore_version(&mut self, event: Event, now: UnixMillis) -> bool {
        let (author, seq) = (event.id.author, event.id.seq);
        let used = match self.history.offer(event, now) {
            Ok(_) | Err(history::Refused::Duplicate) => true,
            Err(_) => self
                .history
                .forks()
                .get(&author)
                .is_some_and(|f| f.seq() <= seq),
        };
        self.forget_restore_output();
        used
    }

    /// What a restore changes is read from the history when the chat is
    /// shown, and is stored already.
    fn forget_restore_output(&mut self) {
        self.history.take_marked_late();
        self.history.take_reshown();
        self.history.take_to_store();
    }

    fn on_token(&mut self, now: UnixMillis, arrived: Arrived, out: &mut Outbox<'_>) {
        let Arrived {
            kind,
            addr,
            sender,
            token,
            opened,
        } = arrived;
        let opened = match opened {
            Ok(o) => o,
            Err(e) => return out.count(DropReason::from(&e)),
        };
        let Ok(sealed) = serde_json::from_slice::<Sealed>(&opened.payload) else {
            return out.count(DropReason::BadPayload);
        };
        match (kind, sealed) {
            (RoomKind::Ctl, Sealed::Ctl(control)) => {
                if opened.author != sender {
                    return out.count(DropReason::ForgedSender);
                }
                let from = Sender { peer: sender, addr };
                self.on_control(now, from, control, token.len(), out);
            }
            (RoomKind::Ev, Sealed::Ev(ev)) => {
                let author = opened.author;
                match history::receive(&mut self.history, self.id, now, author, ev, token, out) {
                    Received::Delivered { name } => {
                        self.members.set_name(author, &name);
                        replication::on_delivered(
                            &mut self.repl,
                            &self.history,
                            &self.members,
                            &self.link,
                            now,
                            out,
                        );
                        replication::check_caught_up(&mut self.repl, &self.history, self.id, out);
                    }
                    Received::Waiting => replication::on_gap(
                        &mut self.repl,
                        &self.history,
                        &self.members,
                        &self.link,
                        now,
                        sender,
                        out,
                    ),
                    Received::Dropped => {}
                }
                equivocation::on_new_forks(
                    &mut self.history,
                    self.id,
                    &self.members,
                    &self.link,
                    out,
                );
            }
            _ => out.count(DropReason::BadPayload),
        }
    }

    /// A control message sealed by `from.peer` came from `from.addr`
    /// (`bytes` long): from an address the member has not proved, it only
    /// drives the handshake that proves it ([`crate::path`]); otherwise
    /// it goes to its module once its stamp is found fresh.
    fn on_control(
        &mut self,
        now: UnixMillis,
        from: Sender,
        control: Control,
        bytes: usize,
        out: &mut Outbox<'_>,
    ) {
        if !control.is_valid() {
            return out.count(DropReason::BadPayload);
        }
        let Sender { addr, .. } = from;
        let answers = match &control {
            Control::Beat(beat) => beat
                .response
                .is_some_and(|nonce| self.members.paths().answers(&addr, nonce)),
            _ => false,
        };
        if !answers && !self.members.is_proved(&from.peer, &addr) {
            let digest = self.history.state_digest();
            return path::on_unproved(
                &mut self.members,
                &self.link,
                digest,
                now,
                from,
                &control,
                bytes,
                out,
            );
        }
        let name = match &control {
            Control::Beat(beat) => Some(beat.name.as_str()),
            _ => None,
        };
        let stamp = control.stamp();
        if !membership::heard(&mut self.members, self.id, now, from, name, stamp, out) {
            return;
        }
        if answers {
            self.members.paths_mut().proved(&addr);
        }
        self.discovery.heard_from(addr);
        let incoming = Incoming {
            now,
            from,
            room: self.id,
            history: &self.history,
            members: &mut self.members,
            repl: &mut self.repl,
            link: &self.link,
        };
        control.handle(incoming, out);
    }

    fn on_timeout(&mut self, now: UnixMillis, out: &mut Outbox<'_>) {
        self.history.expire(now);
        let digest = self.history.state_digest();
        membership::on_timeout(&mut self.members, self.id, &self.link, digest, now, out);
        discovery::on_bootstrap_timeout(
            &mut self.discovery,
            &mut self.members,
            &self.link,
            digest,
            now,
            out,
        );
        replication::on_timeout(
            &mut self.repl,
            &self.history,
            &self.members,
            &self.link,
            now,
            out,
        );
        discovery::on_signal_timeout(&mut self.discovery, &self.members, self.link.tag, now, out);
        equivocation::on_timeout(
            &self.history,
            &self.members,
            &self.link,
            &mut self.versions_asked_at,
            now,
            out,
        );
    }

    /// After any input: history drops go into the node's counters, and a
    /// change of the live members announces a new Chat ID to share.
    fn settle(&mut self, out: &mut Outbox<'_>) {
        let stats = self.history.stats();
        let seen = self.history_seen;
        out.counters()
            .add(DropReason::BadLamport, stats.bad_lamport - seen.bad_lamport);
        out.counters()
            .add(DropReason::OverQuota, stats.over_quota - seen.over_quota);
        out.counters()
            .add(DropReason::PendingEvicted, stats.evicted - seen.evicted);
        out.counters().add(
            DropReason::Equivocation,
            stats.equivocations - seen.equivocations,
        );
        self.history_seen = stats;
        self.refresh_invite(out, false);
    }

    /// Announces the Chat ID to share if it changed. It is derived again
    /// only when the live members changed, or with `force` (this node's
    /// own addresses changed).
    pub fn refresh_invite(&mut self, out: &mut Outbox<'_>, force: bool) {
        let generation = self.members.generation();
        if !force && generation == self.announced.1 {
            return;
        }
        self.announced.1 = generation;
        let invite = self.invite(out.local, true).to_string();
        if invite != self.announced.0 {
            out.event(AppEvent::Invite {
                room: self.id,
                chat_id: invite.clone(),
            });
            self.announced.0 = invite;
        }
    }
}
