//! Connection slots: how many connections the relay holds, and who gets in
//! when it is full.
//!
//! Two pools, so that idle sockets cannot lock the page out:
//!
//! - **Handshakes** (`max_pending`): a TCP connection is counted here until
//!   its WebSocket handshake is done. When this pool is full, the oldest
//!   handshake in it is dropped to make room for the newcomer; a real page
//!   finishes its handshake in a millisecond, so sockets that say nothing
//!   only push each other out (and each is dropped after the handshake
//!   timeout anyway).
//! - **Open connections** (`max_connections`): a connection enters when its
//!   handshake is admitted. When this pool is full, a page the node serves
//!   still gets in by closing the oldest connection of a local program
//!   (one that sent no `Origin`); if every open connection is such a page,
//!   the newcomer gets HTTP 503.
//!
//! Each connection holds a [`Ticket`] that leaves its pool when the
//! connection ends, and watches a kill switch the pool flips to close it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Open { page: bool },
}

#[derive(Debug)]
struct Entry {
    id: u64,
    state: State,
    kill: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// In arrival order.
    entries: VecDeque<Entry>,
    /// Connections closed to make room, so far.
    evicted: u64,
}

/// The answer to a finished handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// In.
    Admitted,
    /// No room: HTTP 503.
    Full,
}

/// The relay's connection slots.
#[derive(Debug)]
pub struct Slots {
    inner: Mutex<Inner>,
    max_pending: usize,
    max_open: usize,
}

/// A connection's place in the pools, given up on drop.
pub struct Ticket {
    slots: Arc<Slots>,
    /// The connection's id.
    pub id: u64,
    /// Flips to true when the pools close this connection.
    pub kill: watch::Receiver<bool>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.slots.leave(self.id);
    }
}

impl Slots {
    /// Pools of these sizes (each at least 1).
    pub fn new(max_pending: usize, max_open: usize) -> Arc<Self> {
        Arc::new(Slots {
            inner: Mutex::new(Inner::default()),
            max_pending: max_pending.max(1),
            max_open: max_open.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain counters
        // behind, which are still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new TCP connection: it joins the handshake pool, pushing the
    /// oldest handshake out if the pool is full.
    pub fn arrive(self: &Arc<Self>) -> Ticket {
        let mut inner = self.lock();
        let pending = inner
            .entries
            .iter()
            .filter(|e| e.state == State::Handshake)
            .count();
        if pending >= self.max_pending {
            if let Some(pos) = inner
                .entries
                .iter()
                .position(|e| e.state == State::Handshake)
            {
                if let Some(old) = inner.entries.remove(pos) {
                    let _ = old.kill.send(true);
                    inner.evicted += 1;
                }
            }
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let (kill, watch) = watch::channel(false);
        inner.entries.push_back(Entry {
            id,
            state: State::Handshake,
            kill,
        });
        Ticket {
            slots: Arc::clone(self),
            id,
            kill: watch,
        }
    }

    /// Connection `id` finished its handshake; `page` if it is a page we
    /// serve (an allowed `Origin`), not a local program.
    pub fn admit(&self, id: u64, page: bool) -> Admission {
        let mut inner = self.lock();
        if !inner.entries.iter().any(|e| e.id == id) {
            // Pushed out while it was shaking hands.
            return Admission::Full;
        }
        let open = inner
            .entries
            .iter()
            .filter(|e| matches!(e.state, State::Open { .. }))
            .count();
        if open >= self.max_open {
            let victim = page
                .then(|| {
                    inner
                        .entries
                        .iter()
                        .position(|e| e.state == State::Open { page: false })
                })
                .flatten();
            match victim.and_then(|pos| inner.entries.remove(pos)) {
                Some(old) => {
                    let _ = old.kill.send(true);
                    inner.evicted += 1;
                }
                None => return Admission::Full,
            }
        }
        if let Some(entry) = inner.entries.iter_mut().find(|e| e.id == id) {
            entry.state = State::Open { page };
        }
        Admission::Admitted
    }

    fn leave(&self, id: u64) {
        self.lock().entries.retain(|e| e.id != id);
    }

    /// Connections closed to make room, so far.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }
}
