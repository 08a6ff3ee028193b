//! The store on a thread of its own.
//!
//! The engine hands this thread the batches to write and the tokens to
//! read, and goes on — sealing the next messages, opening the next
//! datagrams — while SQLite writes and syncs. Writing a burst is a third
//! of a sending node's work, so doing it beside the engine rather than in
//! its turn is what lets a node send as fast as it seals.
//!
//! Nothing is sent or shown early because of it: the engine's output
//! queue holds back whatever waits for a batch until the batch is
//! confirmed (`p2pchat_core::output`), and it hands out one batch and one
//! read at a time, so at most two jobs are ever queued here. Jobs are done
//! in the order given. A write that fails ends the thread; the engine
//! stops on that answer, as it did when it wrote in place.
//!
//! The engine reads older events back from the same store while it runs
//! (its history keeps only a window in memory, `p2pchat_core::store::Archive`),
//! so the store sits behind a lock: this thread holds it for one job at a
//! time, and an engine read waits at most for the job being done.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use p2pchat_core::output::{BatchId, Persist, Read, ReadId};
use tokio::sync::mpsc;

use crate::store::Store;

/// Something for the store to do.
enum Job {
    Write(Persist),
    Read(Read),
}

/// The store's answer to one job.
#[derive(Debug)]
pub enum Done {
    /// The batch is durable.
    Stored(BatchId),
    /// The tokens a read asked for, in its order.
    Read(ReadId, Vec<Option<String>>),
    /// The job failed; the thread has stopped.
    Failed(anyhow::Error),
}

/// The running store thread.
pub struct StoreThread {
    jobs: Option<std_mpsc::Sender<Job>>,
    done: mpsc::UnboundedReceiver<Done>,
    thread: Option<JoinHandle<()>>,
    /// Jobs handed over and not answered yet.
    pending: usize,
}

impl StoreThread {
    /// Has a thread of its own write to `store` and read tokens from it.
    pub fn start(store: Arc<Mutex<Store>>) -> Result<StoreThread> {
        let (jobs, queue) = std_mpsc::channel();
        let (answers, done) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || work(store, &queue, &answers))
            .context("starting the store thread")?;
        Ok(StoreThread {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            pending: 0,
        })
    }

    /// Hands over a batch to write.
    pub fn write(&mut self, persist: Persist) -> Result<()> {
        self.submit(Job::Write(persist))
    }

    /// Hands over tokens to read.
    pub fn read(&mut self, read: Read) -> Result<()> {
        self.submit(Job::Read(read))
    }

    fn submit(&mut self, job: Job) -> Result<()> {
        let jobs = self.jobs.as_ref().context("the store thread is stopped")?;
        jobs.send(job)
            .map_err(|_| anyhow!("the store thread has stopped"))?;
        self.pending += 1;
        Ok(())
    }

    /// Whether jobs are waiting for their answers.
    pub fn busy(&self) -> bool {
        self.pending > 0
    }

    /// The next answer (waits for it; pending forever when nothing is
    /// being done, so it can sit in a `select!`).
    pub async fn done(&mut self) -> Done {
        if self.pending == 0 {
            return std::future::pending().await;
        }
        let done = match self.done.recv().await {
            Some(done) => done,
            None => Done::Failed(anyhow!("the store thread stopped unexpectedly")),
        };
        self.pending = self.pending.saturating_sub(1);
        done
    }

    /// Lets the thread finish what it was given and waits for it.
    pub fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the store thread panicked");
            }
        }
    }
}

impl Drop for StoreThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: jobs in order until the engine lets go or a job fails.
fn work(
    store: Arc<Mutex<Store>>,
    queue: &std_mpsc::Receiver<Job>,
    answers: &mpsc::UnboundedSender<Done>,
) {
    while let Ok(job) = queue.recv() {
        let Ok(mut store) = store.lock() else {
            let _ = answers.send(Done::Failed(anyhow!(
                "the store was left in an unknown state by a failed thread"
            )));
            return;
        };
        let done = match job {
            Job::Write(p) => match store.apply(&p.records) {
                Ok(()) => Done::Stored(p.batch),
                Err(e) => Done::Failed(anyhow::Error::new(e).context(
                    "cannot write to the store; stopping so that nothing unsaved is shown or sent",
                )),
            },
            Job::Read(r) => match store.tokens(&r.room, &r.events) {
                Ok(tokens) => Done::Read(r.id, tokens),
                Err(e) => Done::Failed(anyhow::Error::new(e).context("cannot read from the store")),
            },
        };
        drop(store);
        let failed = matches!(done, Done::Failed(_));
        if answers.send(done).is_err() || failed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use p2pchat_core::{AppEvent, Config, Identity, Node, Output, UserName};

    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn node() -> Node {
        let identity = Identity::from_secret_bytes(&[7; 32]);
        Node::new(
            identity,
            UserName::new("alice").unwrap(),
            Config::default(),
            [3; 32],
        )
    }

    /// Drains the engine until it waits: the batch it handed out (at most
    /// one) and the events it let out.
    fn drain(node: &mut Node) -> (Option<Persist>, Vec<AppEvent>) {
        let (mut persist, mut events) = (None, Vec::new());
        loop {
            match node.poll_output() {
                Output::Persist(p) => {
                    assert!(persist.is_none(), "one batch at a time");
                    persist = Some(p);
                }
                Output::Event(e) => events.push(e),
                Output::Transmit(_) | Output::Read(_) => {}
                Output::Timeout(_) => return (persist, events),
            }
        }
    }

    /// The store thread's answer to the one job out.
    async fn answer(disk: &mut StoreThread) -> Done {
        assert!(disk.busy());
        let done = disk.done().await;
        assert!(!disk.busy());
        done
    }

    #[tokio::test]
    async fn nothing_is_shown_before_the_store_thread_confirms_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(dir.path()).unwrap()));
        let mut disk = StoreThread::start(store).unwrap();
        let mut node = node();
        let room = *node.create_room(NOW, "general").unwrap().room_id();
        let (persist, events) = drain(&mut node);
        assert!(events.is_empty(), "shown before it was stored: {events:?}");
        disk.write(persist.expect("the new room is written first"))
            .unwrap();
        // The engine goes on while the thread writes: a message is written
        // into the next batch, and neither is shown yet.
        node.send_text(NOW, &room, "hello").unwrap();
        let (persist, events) = drain(&mut node);
        assert!(persist.is_none() && events.is_empty(), "{events:?}");
        let Done::Stored(batch) = answer(&mut disk).await else {
            panic!("the room's batch was not stored");
        };
        node.stored(batch);
        let (persist, events) = drain(&mut node);
        assert!(
            matches!(
                events.as_slice(),
                [AppEvent::RoomJoined { created: true, .. }]
            ),
            "{events:?}"
        );
        disk.write(persist.expect("the message's batch")).unwrap();
        let Done::Stored(batch) = answer(&mut disk).await else {
            panic!("the message's batch was not stored");
        };
        node.stored(batch);
        let (_, events) = drain(&mut node);
        assert!(
            matches!(events.as_slice(), [AppEvent::Message { own: true, .. }]),
            "{events:?}"
        );
        disk.stop();
        let loaded = Store::open(dir.path()).unwrap().load().unwrap();
        assert_eq!((loaded.rooms(), loaded.events()), (1, 1));
    }

    #[tokio::test]
    async fn a_failed_write_is_answered_and_nothing_it_held_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.refuse_events().unwrap();
        let mut disk = StoreThread::start(Arc::new(Mutex::new(store))).unwrap();
        let mut node = node();
        let room = *node.create_room(NOW, "general").unwrap().room_id();
        let (persist, _) = drain(&mut node);
        disk.write(persist.unwrap()).unwrap();
        let Done::Stored(batch) = answer(&mut disk).await else {
            panic!("the room's batch was not stored");
        };
        node.stored(batch);
        node.send_text(NOW, &room, "hello").unwrap();
        let (persist, _) = drain(&mut node);
        let persist = persist.unwrap();
        let batch = persist.batch;
        disk.write(persist).unwrap();
        let Done::Failed(e) = answer(&mut disk).await else {
            panic!("a refused write was confirmed");
        };
        assert!(
            format!("{e:#}").contains("cannot write to the store"),
            "{e:#}"
        );
        assert_eq!(
            node.store_failed(batch),
            1,
            "the message (no member to send it to)"
        );
        let (_, events) = drain(&mut node);
        assert!(events.is_empty(), "{events:?}");
    }
}
