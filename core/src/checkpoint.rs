//! Checkpoint: a room's history written down whole, so that a restart
//! reads what came after it instead of every event before it.
//!
//! A node that keeps a window of its history in memory
//! ([`crate::history::History::keep_window`]) could rebuild everything
//! else its rules read — each author's number and newest version, the
//! heads, the quota budgets, the lateness records and marks, the names
//! authors wrote under — only by delivering every stored event again: a
//! year of chat read and checked at every start. A checkpoint is that
//! state as of a version vector, `covers`, in a compact binary form
//! ([`postcard`]). The rules:
//!
//! - **Written in order.** The node hands a checkpoint to its host as a
//!   [`crate::Record::Checkpoint`] at the end of a batch, so every event it
//!   covers is in that batch or an earlier one: a store that keeps its
//!   rules holds them all once it holds the checkpoint.
//! - **Written now and then.** When a room has delivered [`MIN_EVENTS`]
//!   events since its last checkpoint, or a quarter of its history if
//!   that is more (writing them costs a fraction of writing the events,
//!   and a restart after a crash delivers at most that again), and for
//!   every room when the host asks ([`crate::Node::checkpoint`], before a
//!   clean stop: the next start then delivers nothing again).
//! - **Only of a plain history.** None is written while an author is
//!   proven to equivocate or versions are kept off the main chains: the
//!   proofs are events, and such a history restores by delivering every
//!   event again, as without checkpoints.
//! - **Taken whole or not at all.** A store gives a checkpoint back only if
//!   it holds every event it covers (rule 7 of [`crate::store`]), followed
//!   by the room's events it does not cover. The history takes it only if
//!   it decodes, is of this [`FORMAT`], covers what the record says, holds
//!   together (each author's lateness chain as long as its number), and
//!   each author's newest event read back from the store has the digest
//!   the checkpoint names. Otherwise the room delivers the covered events
//!   again from the store, as without one. Either way the events after it
//!   are then delivered as usual.
//! - **The same history.** A history restored from a checkpoint is the one
//!   delivering every event again would have built: the simulator restarts
//!   windowed nodes from checkpoints and compares them with a node rebuilt
//!   event by event.

use serde::{Deserialize, Serialize};

/// The form of checkpoint this build writes and reads; any other is not
/// taken (the room's events are delivered again instead).
pub const FORMAT: u32 = 2;

/// Fewest events delivered between two checkpoints of a room.
pub const MIN_EVENTS: usize = 4096;

/// Whether a room that has delivered `delivered` events, `at_last` of them
/// when its last checkpoint was written, is due another, at least `min`
/// events after it ([`MIN_EVENTS`] but in tests).
pub(crate) fn due(delivered: usize, at_last: usize, min: usize) -> bool {
    delivered.saturating_sub(at_last) >= min.max(at_last / 4)
}

/// Why a checkpoint was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// Its bytes do not decode.
    #[error("the checkpoint does not decode: {0}")]
    Decode(String),
    /// Written by another version, in another form.
    #[error("the checkpoint is of form {0}, this build reads {FORMAT}")]
    Format(u32),
    /// Its parts do not hold together, or not with what it says it covers.
    #[error("the checkpoint does not hold together: {0}")]
    Inconsistent(&'static str),
    /// The store does not give back an author's newest event as the
    /// checkpoint names it.
    #[error("the store does not hold the newest events the checkpoint names")]
    Newest,
    /// Only an empty history with a store to read from takes a checkpoint.
    #[error("only an empty history that reads its store takes a checkpoint")]
    NotEmpty,
}

/// A room's history state ([`crate::history::History::checkpoint`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    pub format: u32,
    /// Main-chain events delivered.
    pub delivered: u64,
    /// The heads: `(lamport, author, seq)`.
    pub heads: Vec<(u64, [u8; 32], u64)>,
    /// Per author, by its id.
    pub authors: Vec<Author>,
    pub lateness: LatenessState,
}

/// One author's part of a [`State`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Author {
    pub peer: [u8; 32],
    /// Its events delivered (numbered 1 to `seq`).
    pub seq: u64,
    /// The digest of its newest ([`crate::equivocation::digest`]).
    pub newest: [u8; 32],
    /// Its quota budgets ([`crate::quota::Budgets::export`]).
    pub budget: Option<[u64; 4]>,
    /// The names it wrote under.
    pub names: Vec<String>,
}

/// Pairs of numbers per author, by its id.
pub(crate) type PerAuthor = Vec<([u8; 32], Vec<(u64, u64)>)>;

/// Per author `x`, per other author `a`, the points of `x`'s chain where
/// its causal past of `a` grew ([`crate::lateness`]).
pub(crate) type Pasts = ([u8; 32], PerAuthor);

/// What the lateness rule has recorded ([`crate::lateness::Lateness`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LatenessState {
    pub pasts: Vec<Pasts>,
    /// Per author, `(lamport, shown)` of each of its events in order, each
    /// pair as the difference from the one before ([`deltas`]: along a
    /// chain both only grow, so the differences are small numbers).
    pub chains: PerAuthor,
    /// The latest shown time at each Lamport time, each as the difference
    /// from the one before (signed: the table goes up and down).
    pub by_lamport: Vec<i64>,
    /// Messages marked late.
    pub late: Vec<([u8; 32], u64)>,
}

/// Each pair as its difference from the one before (from `(0, 0)`), in
/// wrapping arithmetic: exact whatever the numbers, short when they grow
/// slowly (a million one-author messages take about a third of the
/// bytes).
pub(crate) fn deltas(pairs: impl IntoIterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut last = (0u64, 0u64);
    pairs
        .into_iter()
        .map(|(a, b)| {
            let d = (a.wrapping_sub(last.0), b.wrapping_sub(last.1));
            last = (a, b);
            d
        })
        .collect()
}

/// The pairs [`deltas`] was given.
pub(crate) fn undeltas(deltas: &[(u64, u64)]) -> impl Iterator<Item = (u64, u64)> + '_ {
    deltas.iter().scan((0u64, 0u64), |last, (da, db)| {
        *last = (last.0.wrapping_add(*da), last.1.wrapping_add(*db));
        Some(*last)
    })
}

/// Each number as its signed difference from the one before.
pub(crate) fn signed_deltas(values: &[u64]) -> Vec<i64> {
    let mut last = 0u64;
    values
        .iter()
        .map(|v| {
            let d = v.wrapping_sub(last) as i64;
            last = *v;
            d
        })
        .collect()
}

/// The numbers [`signed_deltas`] was given.
pub(crate) fn unsigned_deltas(deltas: &[i64]) -> Vec<u64> {
    let mut last = 0u64;
    deltas
        .iter()
        .map(|d| {
            last = last.wrapping_add(*d as u64);
            last
        })
        .collect()
}

/// The bytes of `state`; `None` if it does not encode (plain numbers,
/// bytes and strings always do), and then no checkpoint is written.
pub(crate) fn encode(state: &State) -> Option<Vec<u8>> {
    postcard::to_allocvec(state).ok()
}

pub(crate) fn decode(data: &[u8]) -> Result<State, CheckpointError> {
    let state: State =
        postcard::from_bytes(data).map_err(|e| CheckpointError::Decode(e.to_string()))?;
    if state.format != FORMAT {
        return Err(CheckpointError::Format(state.format));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_due_every_quarter_of_the_history_and_not_before_min_events() {
        assert!(!due(MIN_EVENTS - 1, 0, MIN_EVENTS));
        assert!(due(MIN_EVENTS, 0, MIN_EVENTS));
        assert!(!due(100_000 + 24_999, 100_000, MIN_EVENTS));
        assert!(due(100_000 + 25_000, 100_000, MIN_EVENTS));
        assert!(!due(10, 20, 1), "a history shorter than at the last one");
    }

    #[test]
    fn differences_give_back_exactly_what_they_were_taken_of() {
        let pairs = vec![
            (1, 1_750_000_000_000),
            (2, 1_750_000_000_010),
            (0, u64::MAX),
            (u64::MAX, 0),
        ];
        let d = deltas(pairs.clone());
        assert_eq!(d[1], (1, 10), "growing numbers give small differences");
        assert_eq!(undeltas(&d).collect::<Vec<_>>(), pairs);
        let values = vec![5, 1_750_000_000_000, 3, u64::MAX, 0];
        assert_eq!(unsigned_deltas(&signed_deltas(&values)), values);
    }

    /// A node writes a checkpoint when it stops; restarted, it takes it, or
    /// — when the checkpoint is damaged — delivers the room again from its
    /// store: the same history either way, and nothing lost.
    #[test]
    fn a_node_that_cannot_take_its_checkpoint_delivers_the_room_again_from_its_store() {
        use std::sync::{Arc, Mutex};

        use crate::identity::{Identity, UserName};
        use crate::{Config, MemoryStore, Node, Output, Record, Store};

        let disk = Arc::new(Mutex::new(MemoryStore::new()));
        let drain = |node: &mut Node| loop {
            match node.poll_output() {
                Output::Persist(p) => {
                    let Ok(()) = disk.lock().unwrap().apply(&p.records);
                    node.stored(p.batch);
                }
                Output::Read(r) => {
                    let Ok(tokens) = disk.lock().unwrap().tokens(&r.room, &r.events);
                    node.read_done(r.id, tokens);
                }
                Output::Timeout(_) => break,
                Output::Transmit(_) | Output::Event(_) => {}
            }
        };
        let identity = Identity::from_secret_bytes(&[7; 32]);
        let name = UserName::new("writer").unwrap();
        let now = 1_750_000_000_000;
        let start = |seed: u8| {
            let mut node = Node::new(
                identity.clone(),
                name.clone(),
                Config::default(),
                [seed; 32],
            );
            node.set_archive(disk.clone(), 2);
            node
        };
        let mut node = start(1);
        let chat = node.create_room(now, "log").unwrap();
        let room = *chat.room_id();
        for i in 0..10u64 {
            node.send_text(now + i, &room, &format!("entry {i}"))
                .unwrap();
            drain(&mut node);
        }
        node.shutdown(now + 20);
        drain(&mut node);
        let ids = |n: &Node| -> Vec<crate::clock::EventId> {
            n.history(&room)
                .map(|h| h.iter().map(|e| e.id).collect())
                .unwrap()
        };
        let written = ids(&node);
        assert_eq!(written.len(), 10);
        let Ok(loaded) = disk.lock().unwrap().load();
        assert!(
            loaded
                .records
                .iter()
                .any(|r| matches!(r, Record::Checkpoint { .. })),
            "a clean stop writes a checkpoint"
        );
        assert_eq!(loaded.events(), 0, "it covers every event");
        for damaged in [false, true] {
            let mut restored = start(2);
            let mut taken = Vec::new();
            for record in loaded.records.clone() {
                let record = match record {
                    Record::Checkpoint { room, covers, data } if damaged => Record::Checkpoint {
                        room,
                        covers,
                        data: data[..data.len() / 2].to_vec(),
                    },
                    other => other,
                };
                let checkpoint = matches!(record, Record::Checkpoint { .. });
                let used = restored.restore_record(now + 30, record);
                if checkpoint {
                    taken.push(used);
                }
            }
            restored.restored();
            assert_eq!(taken, vec![!damaged]);
            assert_eq!(ids(&restored), written, "damaged: {damaged}");
        }
    }

    #[test]
    fn damaged_or_foreign_checkpoints_are_refused() {
        let state = State {
            format: FORMAT,
            delivered: 2,
            heads: vec![(2, [1; 32], 2)],
            authors: vec![Author {
                peer: [1; 32],
                seq: 2,
                newest: [3; 32],
                budget: Some([1, 2, 3, 4]),
                names: vec!["ann".into()],
            }],
            lateness: LatenessState::default(),
        };
        let bytes = encode(&state).unwrap();
        assert_eq!(decode(&bytes), Ok(state.clone()));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 3]),
            Err(CheckpointError::Decode(_))
        ));
        let other = State {
            format: FORMAT + 1,
            ..state
        };
        assert_eq!(
            decode(&encode(&other).unwrap()),
            Err(CheckpointError::Format(FORMAT + 1))
        );
    }
}
