//! Output: what the node asks of its host, from one queue, in an order no
//! host can get wrong.
//!
//! The host drains [`crate::Node::poll_output`] after every input and gets,
//! one at a time:
//!
//! - [`Output::Persist`]: a batch of [`Record`]s to store (see
//!   [`crate::store`]). The host stores it and then confirms with
//!   [`crate::Node::stored`] (or reports [`crate::Node::store_failed`]).
//! - [`Output::Read`]: tokens of stored events to read back (the history
//!   keeps its events without their tokens, see [`crate::history`]); the
//!   host hands them over with [`crate::Node::read_done`], and the node
//!   sends them on to whoever they were read for, in the read's place:
//!   nothing queued after a read leaves before it is answered (a summary
//!   sent after a repair must not overtake the repair), so a host that
//!   reads asynchronously gets `Timeout` until it answers.
//! - [`Output::Transmit`]: a datagram to send.
//! - [`Output::Event`]: something to tell the user.
//! - [`Output::Timeout`]: nothing more to do for now; call
//!   [`crate::Node::handle_timeout`] at that time (or never, if `None`),
//!   unless another input comes first.
//!
//! **Stored before sent or shown.** Every transmit, read and event is queued with
//! the number of records written before it, and leaves the queue only once
//! the host has confirmed a batch holding all of them. A message is
//! therefore never sent, nor shown as sent, before it is durable, whatever
//! the host does: a host that stores asynchronously simply gets
//! `Timeout` until it confirms, and a host that never confirms sends
//! nothing but summaries (below). Records written while a batch is out go
//! into the next batch; a batch holds every record written so far, so a
//! burst of input (a catch-up) is stored in one transaction.
//!
//! **Summaries go ahead.** A replication summary carries no message, only
//! what this node holds ([`crate::replication`]), so it need not wait for
//! the store: [`OutputQueue::transmit_ahead`] sends it before the batch
//! being stored is confirmed, and a catch-up asks for its next round while
//! the store writes the last one (the round trip no longer includes a
//! commit). If the node stops before the batch is stored, the summary
//! named events it then lacks: the peer holds back nothing it would not
//! resend, since the next summary after the restart names what is really
//! held. A summary never overtakes anything queued for the same address
//! (a push it follows must arrive first, or the peer would ask again for
//! what is on its way); then it waits its turn like any transmit.
//!
//! If a batch cannot be stored, [`OutputQueue::failed`] drops everything
//! that waited for it: what the batch described is neither sent nor shown,
//! and the user is told by the host.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::clock::EventId;
use crate::history::Event;
use crate::membership::StatusChange;
use crate::room::{RoomId, RoomName};
use crate::store::Record;
use crate::UnixMillis;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Payload, at most the configured MTU.
    pub bytes: Vec<u8>,
}

/// Something the user should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppEvent {
    /// A room was created, joined, or brought back by a restore.
    RoomJoined {
        /// The room.
        room: RoomId,
        /// Its name.
        name: RoomName,
        /// The Chat ID to share (with this node as bootstrap).
        chat_id: String,
        /// Whether this node created it.
        created: bool,
        /// Brought back from the store at start, not joined just now.
        restored: bool,
        /// The Chat ID this node was given to join with (when it joined
        /// just now), so that the user can name the chat by it too.
        joined_with: Option<String>,
    },
    /// A room was left.
    RoomLeft {
        /// The room.
        room: RoomId,
    },
    /// The Chat ID to share for a room changed (this node's addresses or
    /// the members online, which it names as bootstrap peers, changed).
    Invite {
        /// The room.
        room: RoomId,
        /// The Chat ID to share now.
        chat_id: String,
    },
    /// An event was delivered, in causal order.
    Message {
        /// The room.
        room: RoomId,
        /// The event.
        event: Arc<Event>,
        /// It sorts before an event delivered earlier.
        late: bool,
        /// Written by this node.
        own: bool,
    },
    /// A member was heard for the first time or changed status.
    Member {
        /// The room.
        room: RoomId,
        /// What changed.
        change: StatusChange,
    },
    /// Events delivered earlier turned out to be late
    /// ([`crate::lateness`]): a message written well after each, without
    /// knowing it, sorts after it.
    Late {
        /// The room.
        room: RoomId,
        /// The events now marked late.
        events: Vec<crate::clock::EventId>,
    },
    /// The room's shown history changed other than by new messages: an
    /// equivocator's messages from its fork on are hidden, and late marks
    /// were computed again. A UI shows the history again from
    /// [`crate::Node::history`].
    Reshown {
        /// The room.
        room: RoomId,
    },
    /// `author` was proven to have signed two different events under
    /// sequence number `seq` ([`crate::equivocation`]); told once per
    /// author.
    Equivocation {
        /// The room.
        room: RoomId,
        /// Who equivocated.
        author: crate::PeerId,
        /// The number it used twice.
        seq: u64,
    },
    /// This node had been behind a member and now holds everything that
    /// member had announced.
    CaughtUp {
        /// The room.
        room: RoomId,
        /// Events in the room's history now.
        events: usize,
    },
}

/// Names one batch of records handed out with [`Output::Persist`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(u64);

/// Records to store, all or nothing, then confirm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persist {
    /// The batch, to confirm with [`crate::Node::stored`].
    pub batch: BatchId,
    /// The records, in the order they were written.
    pub records: Vec<Record>,
}

/// Names one read handed out with [`Output::Read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReadId(u64);

/// Tokens of stored events to read, then hand back with
/// [`crate::Node::read_done`], one answer per event, in order (`None` for
/// an event the store does not hold).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    /// The read, to answer with [`crate::Node::read_done`].
    pub id: ReadId,
    /// The room.
    pub room: RoomId,
    /// The events, by id (the copy stored under each id).
    pub events: Vec<EventId>,
}

/// One thing for the host to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Store these records, then confirm.
    Persist(Persist),
    /// Read these tokens, then hand them back.
    Read(Read),
    /// Send this datagram.
    Transmit(Transmit),
    /// Tell the user.
    Event(AppEvent),
    /// Nothing else now; the next deadline, if any.
    Timeout(Option<UnixMillis>),
}

/// A transmit, a read or an event, waiting for the records written
/// before it.
#[derive(Debug)]
enum Held {
    Transmit(Transmit),
    /// An event's token to send to `to` once read.
    Read {
        room: RoomId,
        to: SocketAddr,
        event: EventId,
    },
    Event(AppEvent),
}

/// What a read handed out was for: the room, and where each event goes.
#[derive(Debug)]
pub(crate) struct ReadFor {
    pub room: RoomId,
    /// The events asked for, in the order of the read.
    pub events: Vec<EventId>,
    pub sends: Vec<(SocketAddr, EventId)>,
}

/// The node's outputs, in order, with the "stored first" rule.
#[derive(Debug, Default)]
pub struct OutputQueue {
    /// Records written and not handed out yet.
    records: Vec<Record>,
    /// Records written since the start.
    written: u64,
    /// Records handed out in batches.
    handed: u64,
    /// Records the host confirmed (or gave up on).
    settled: u64,
    /// Transmits, reads and events, each with the number of records
    /// written before it.
    held: VecDeque<(u64, Held)>,
    /// The read handed out and not answered yet: nothing behind it leaves
    /// the queue until it is, so what it sends goes out in its place.
    reading: Option<(ReadId, ReadFor)>,
    next_read: u64,
    /// Transmits that wait for nothing ([`OutputQueue::transmit_ahead`]),
    /// sent before anything held.
    ahead: VecDeque<Transmit>,
}

impl OutputQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// A record to persist.
    pub fn persist(&mut self, record: Record) {
        self.records.push(record);
        self.written += 1;
    }

    /// A datagram to send once what was written before it is stored.
    pub fn transmit(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.held
            .push_back((self.written, Held::Transmit(Transmit { to, bytes })));
    }

    /// Datagrams that say only what this node holds (a summary): sent at
    /// once, unless something queued for `to` is still waiting, which
    /// they follow like any transmit.
    pub fn transmit_ahead(&mut self, to: SocketAddr, datagrams: Vec<Vec<u8>>) {
        let waiting_for_to = self.held.iter().any(|(_, held)| match held {
            Held::Transmit(t) => t.to == to,
            Held::Read { to: r, .. } => *r == to,
            Held::Event(_) => false,
        }) || self
            .reading
            .as_ref()
            .is_some_and(|(_, r)| r.sends.iter().any(|(a, _)| *a == to));
        for bytes in datagrams {
            if waiting_for_to {
                self.transmit(to, bytes);
            } else {
                self.ahead.push_back(Transmit { to, bytes });
            }
        }
    }

    /// Something to tell the user once what was written before it is
    /// stored.
    pub fn event(&mut self, event: AppEvent) {
        self.held.push_back((self.written, Held::Event(event)));
    }

    /// The stored token of `event` in `room`, to send to `to`: read once
    /// what was written before it is stored.
    pub fn read(&mut self, room: RoomId, to: SocketAddr, event: EventId) {
        self.held
            .push_back((self.written, Held::Read { room, to, event }));
    }

    /// The next output, if one is ready.
    pub fn poll(&mut self) -> Option<Output> {
        if let Some(t) = self.ahead.pop_front() {
            return Some(Output::Transmit(t));
        }
        if self.reading.is_some() {
            return self.next_batch();
        }
        if let Some((needs, _)) = self.held.front() {
            if *needs <= self.settled {
                return self.held.pop_front().map(|(_, held)| match held {
                    Held::Transmit(t) => Output::Transmit(t),
                    Held::Event(e) => Output::Event(e),
                    Held::Read { room, to, event } => self.read_out(room, (to, event)),
                });
            }
        }
        self.next_batch()
    }

    /// The records written so far, as a batch, unless one is out.
    fn next_batch(&mut self) -> Option<Output> {
        let in_flight = self.handed > self.settled;
        if !in_flight && !self.records.is_empty() {
            self.handed = self.written;
            return Some(Output::Persist(Persist {
                batch: BatchId(self.handed),
                records: std::mem::take(&mut self.records),
            }));
        }
        None
    }

    /// Hands out one read: `first` and the reads of the same room ready
    /// right behind it, together.
    fn read_out(&mut self, room: RoomId, first: (SocketAddr, EventId)) -> Output {
        let mut sends = vec![first];
        while let Some((needs, Held::Read { room: r, .. })) = self.held.front() {
            if *needs > self.settled || *r != room {
                break;
            }
            if let Some((_, Held::Read { to, event, .. })) = self.held.pop_front() {
                sends.push((to, event));
            }
        }
        let mut events: Vec<EventId> = sends.iter().map(|(_, e)| *e).collect();
        events.sort();
        events.dedup();
        self.next_read += 1;
        let id = ReadId(self.next_read);
        let read_for = ReadFor {
            room,
            events: events.clone(),
            sends,
        };
        self.reading = Some((id, read_for));
        Output::Read(Read { id, room, events })
    }

    /// What read `id` was for, once: `None` for a read that is not the one
    /// out. What it sends is then put back with [`OutputQueue::resume`].
    pub(crate) fn read_done(&mut self, id: ReadId) -> Option<ReadFor> {
        match &self.reading {
            Some((out, _)) if *out == id => self.reading.take().map(|(_, r)| r),
            _ => None,
        }
    }

    /// The datagrams a read produced, sent before anything queued after
    /// the read (they go out where it stood).
    pub(crate) fn resume(&mut self, datagrams: Vec<Transmit>) {
        for t in datagrams.into_iter().rev() {
            self.held.push_front((0, Held::Transmit(t)));
        }
    }

    /// The host stored `batch`. Returns false for a batch that is not the
    /// one out (a host bug; nothing changes).
    pub fn stored(&mut self, batch: BatchId) -> bool {
        if batch.0 != self.handed || self.handed == self.settled {
            return false;
        }
        self.settled = batch.0;
        true
    }

    /// The host could not store `batch`: everything waiting for it is
    /// dropped. Returns how many outputs were dropped.
    pub fn failed(&mut self, batch: BatchId) -> usize {
        if batch.0 != self.handed || self.handed == self.settled {
            return 0;
        }
        let before = self.held.len();
        let released = self.settled;
        // Outputs that needed only what was stored before stay; those that
        // waited for the failed batch go.
        let mut kept = VecDeque::with_capacity(before);
        for (needs, held) in self.held.drain(..) {
            if needs <= released || needs > batch.0 {
                kept.push_back((needs, held));
            }
        }
        self.held = kept;
        self.settled = batch.0;
        before - self.held.len()
    }

    /// Forgets records written so far without handing them out (a restore
    /// writes nothing: the records came from the store).
    pub fn forget_records(&mut self) {
        self.records.clear();
        self.handed = self.written;
        self.settled = self.written;
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn room(n: u8) -> RoomId {
        RoomId::from_bytes([n; 16])
    }

    fn to(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    fn left(n: u8) -> Record {
        Record::Left { room: room(n) }
    }

    fn left_event(n: u8) -> AppEvent {
        AppEvent::RoomLeft { room: room(n) }
    }

    fn drain(q: &mut OutputQueue) -> Vec<Output> {
        std::iter::from_fn(|| q.poll()).collect()
    }

    /// The datagrams `q` hands out now, in order (drained).
    fn transmitted(q: &mut OutputQueue) -> Vec<Vec<u8>> {
        drain(q)
            .into_iter()
            .filter_map(|o| match o {
                Output::Transmit(t) => Some(t.bytes),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn nothing_leaves_before_the_records_written_before_it_are_stored() {
        let mut q = OutputQueue::new();
        q.transmit(to(1), vec![1]);
        q.persist(left(1));
        q.transmit(to(2), vec![2]);
        q.event(left_event(1));
        // What needed nothing goes first, then the batch.
        let out = drain(&mut q);
        assert!(matches!(&out[0], Output::Transmit(t) if t.to == to(1)));
        let Output::Persist(p) = &out[1] else {
            panic!("expected a batch, got {out:?}")
        };
        assert_eq!(p.records, vec![left(1)]);
        assert_eq!(out.len(), 2, "held until the batch is confirmed");
        // Still nothing while the batch is out, even with new records.
        q.persist(left(2));
        assert!(q.poll().is_none());
        assert!(q.stored(p.batch));
        let out = drain(&mut q);
        assert!(matches!(&out[0], Output::Transmit(t) if t.to == to(2)));
        assert!(matches!(&out[1], Output::Event(AppEvent::RoomLeft { .. })));
        // The record written meanwhile comes as the next batch.
        let Output::Persist(p2) = &out[2] else {
            panic!("expected the second batch, got {out:?}")
        };
        assert_eq!(p2.records, vec![left(2)]);
        assert!(!q.stored(p.batch), "an old batch is not confirmed twice");
        assert!(q.stored(p2.batch));
        assert!(q.poll().is_none());
    }

    #[test]
    fn one_batch_holds_every_record_written_so_far() {
        let mut q = OutputQueue::new();
        for n in 0..5 {
            q.persist(left(n));
            q.event(left_event(n));
        }
        let Some(Output::Persist(p)) = q.poll() else {
            panic!("expected a batch")
        };
        assert_eq!(p.records.len(), 5);
        assert!(q.poll().is_none());
        q.stored(p.batch);
        assert_eq!(drain(&mut q).len(), 5);
    }

    #[test]
    fn a_failed_batch_drops_what_waited_for_it_and_nothing_else() {
        let mut q = OutputQueue::new();
        q.persist(left(1));
        q.transmit(to(1), vec![1]);
        let Some(Output::Persist(p)) = q.poll() else {
            panic!("expected a batch")
        };
        // Written after the batch went out: waits for a later batch.
        q.persist(left(2));
        q.transmit(to(2), vec![2]);
        assert_eq!(q.failed(p.batch), 1);
        let out = drain(&mut q);
        let Output::Persist(p2) = &out[0] else {
            panic!("expected the next batch, got {out:?}")
        };
        assert_eq!(p2.records, vec![left(2)]);
        q.stored(p2.batch);
        let out = drain(&mut q);
        assert!(matches!(&out[..], [Output::Transmit(t)] if t.to == to(2)));
    }

    #[test]
    fn what_a_read_sends_goes_out_in_its_place() {
        // A repair (read from the store) and then a summary: the summary
        // must not overtake the repair, whenever the host answers.
        let mut q = OutputQueue::new();
        let id = |n: u8| EventId::new(crate::PeerId::from_bytes([n; 32]), 1);
        q.read(room(1), to(1), id(1));
        q.read(room(1), to(2), id(2));
        q.transmit(to(1), vec![9]);
        let Some(Output::Read(read)) = q.poll() else {
            panic!("expected the read")
        };
        assert_eq!(read.room, room(1));
        assert_eq!(read.events, vec![id(1), id(2)], "one read for both");
        // Nothing behind the read while it is out; a batch still goes.
        assert!(q.poll().is_none());
        q.persist(left(1));
        assert!(matches!(q.poll(), Some(Output::Persist(_))));
        assert!(q.read_done(ReadId(read.id.0 + 1)).is_none(), "not this one");
        let read_for = q.read_done(read.id).expect("the read out");
        assert_eq!(read_for.sends, vec![(to(1), id(1)), (to(2), id(2))]);
        q.resume(vec![
            Transmit {
                to: to(1),
                bytes: vec![1],
            },
            Transmit {
                to: to(2),
                bytes: vec![2],
            },
        ]);
        let sent = transmitted(&mut q);
        assert_eq!(sent, vec![vec![1], vec![2], vec![9]]);
        assert!(q.read_done(read.id).is_none(), "answered once");
    }

    #[test]
    fn a_summary_goes_ahead_of_the_batch_being_stored() {
        let mut q = OutputQueue::new();
        q.persist(left(1));
        q.event(left_event(1));
        q.transmit_ahead(to(1), vec![vec![1], vec![2]]);
        let out = drain(&mut q);
        let sent: Vec<&[u8]> = out
            .iter()
            .filter_map(|o| match o {
                Output::Transmit(t) => Some(&t.bytes[..]),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec![&[1][..], &[2][..]], "both datagrams at once");
        let Some(Output::Persist(p)) = out.last() else {
            panic!("expected the batch after them, got {out:?}")
        };
        // While the batch is out, another summary still goes; the event
        // waits for the batch.
        q.transmit_ahead(to(2), vec![vec![3]]);
        assert!(matches!(drain(&mut q)[..], [Output::Transmit(ref t)] if t.to == to(2)));
        assert!(q.stored(p.batch));
        assert!(matches!(drain(&mut q)[..], [Output::Event(_)]));
    }

    #[test]
    fn a_summary_never_overtakes_what_waits_for_the_same_address() {
        let mut q = OutputQueue::new();
        q.persist(left(1));
        q.transmit(to(1), vec![1]);
        q.transmit_ahead(to(1), vec![vec![2]]);
        q.transmit_ahead(to(2), vec![vec![3]]);
        let out = drain(&mut q);
        assert!(
            matches!(&out[..], [Output::Transmit(t), Output::Persist(_)] if t.to == to(2)),
            "only the summary to another address goes ahead: {out:?}"
        );
        let Output::Persist(p) = &out[1] else {
            unreachable!()
        };
        q.stored(p.batch);
        let sent = transmitted(&mut q);
        assert_eq!(sent, vec![vec![1], vec![2]], "in the order queued");

        // Nor what a read will send there, queued or out.
        let id = EventId::new(crate::PeerId::from_bytes([1; 32]), 1);
        q.read(room(1), to(1), id);
        q.transmit_ahead(to(1), vec![vec![4]]);
        let Some(Output::Read(read)) = q.poll() else {
            panic!("expected the read")
        };
        q.transmit_ahead(to(1), vec![vec![5]]);
        assert!(q.poll().is_none(), "both wait for the read");
        assert!(q.read_done(read.id).is_some());
        q.resume(vec![Transmit {
            to: to(1),
            bytes: vec![6],
        }]);
        let sent = transmitted(&mut q);
        assert_eq!(sent, vec![vec![6], vec![4], vec![5]]);
    }

    #[test]
    fn a_restore_forgets_its_records_and_releases_its_events() {
        let mut q = OutputQueue::new();
        q.persist(left(1));
        q.event(left_event(1));
        q.forget_records();
        let out = drain(&mut q);
        assert!(matches!(&out[..], [Output::Event(_)]));
    }
}
