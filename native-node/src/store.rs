//! The node's durable store: one SQLite database in the data directory.
//!
//! # What is stored
//!
//! Everything the node needs to come back as the same peer after a restart:
//!
//! - its identity, the 32 secret bytes of its Ed25519 key (table `meta`,
//!   key `identity`), generated on first use and never replaced;
//! - the [`Record`]s the protocol engine emits: the rooms it has joined
//!   (each with its Chat ID, which holds the room key), the events
//!   delivered in each room (as the JSON of [`Event`]), and each room's
//!   members with their names and last addresses.
//!
//! [`Store::load`] gives the records back in an order
//! [`p2pchat_core::Node::restore`] accepts, and the node is rebuilt from
//! them.
//!
//! # Files and permissions
//!
//! The database is the file `p2pchat.sqlite3` in the data directory. Both
//! hold secrets (the identity key, room keys, every message), so on Unix
//! the directory is created with mode `0700`, or tightened to it if it is
//! looser, and the database file is created with mode `0600` *before*
//! SQLite opens it (an existing file, and a write-ahead log left by a
//! crash, are tightened to `0600` too). The write-ahead log SQLite creates
//! takes the database file's mode.
//!
//! # Stored before shown
//!
//! The engine's outputs are drained in order: records first, then
//! datagrams, then events for the user. The driver hands each batch of
//! records to [`Store::apply`], which returns only once the batch is
//! durable: the database runs in WAL mode with `synchronous=FULL`, so a
//! commit is on disk when it returns and survives a crash or a power loss.
//! Nothing is therefore shown as sent, and no event leaves the node, before
//! it is stored.
//!
//! # One transaction per batch
//!
//! A batch is written in a single transaction: all of it is stored or none
//! of it is, so a crash never leaves half a batch (an event without its
//! room, a room left but its messages still there).
//!
//! # Leaving erases
//!
//! A `Left` record deletes the room's row (with its Chat ID, which holds
//! the room key), its events and its members, and the store makes them
//! unrecoverable from its files before [`Store::apply`] returns: the
//! connection runs with `secure_delete` on, so deleted cells and freed
//! pages are overwritten with zeros, and the write-ahead log is then
//! checkpointed into the database file and truncated, so no older copy of
//! those pages is left in it. (What the file system or the disk keeps of
//! blocks the log once used is beyond SQLite's reach.)
//!
//! # One node per data directory
//!
//! The connection takes SQLite's exclusive locking mode and a write lock
//! while opening, and holds it until the store is dropped. A second node
//! started on the same data directory does not wait and does not share the
//! files: its [`Store::open`] fails at once with [`StoreError::Locked`].
//!
//! # Schema version
//!
//! The schema's version is kept in `PRAGMA user_version` (currently
//! [`SCHEMA_VERSION`]). A database written by a newer p2pchat, with a
//! higher version, is refused with [`StoreError::NewerSchema`] and left
//! untouched: it is never rewritten or silently emptied. An older one is
//! brought up to date in place when it is opened: version 2 adds the
//! `versions` table; version 3 adds the `token` column to `events`; version
//! 4 adds the `checkpoints` table. Rows
//! written before version 3 keep the token inside `event` (and `token`
//! NULL); they are read as they are, never rewritten.
//!
//! # Schema
//!
//! - `meta(key TEXT PRIMARY KEY, value BLOB)`: the identity.
//! - `rooms(joined INTEGER PRIMARY KEY, room BLOB UNIQUE, chat_id TEXT,
//!   created INTEGER)`: `joined` (the rowid) keeps the order rooms were
//!   joined in.
//! - `events(room BLOB, author BLOB, seq INTEGER, lamport INTEGER, event
//!   TEXT, token TEXT, PRIMARY KEY (room, author, seq))`, indexed by
//!   `(room, lamport, author, seq)` so a room's history is read in
//!   canonical order without sorting. `event` is the event as JSON without
//!   its token, `token` the sealed token: loading reads only the token's
//!   length, and sending an event on reads only its token. `seq` and
//!   `lamport` are `u64`s stored with their top bit flipped, which maps
//!   them onto SQLite's signed integers in the same order.
//! - `versions(room BLOB, digest BLOB, author BLOB, seq INTEGER, event
//!   TEXT, PRIMARY KEY (room, digest))`: versions of events kept off their
//!   author's main chain, the proofs and other branches of an equivocation
//!   (see `p2pchat_core::equivocation`).
//! - `members(id INTEGER PRIMARY KEY, room BLOB, peer BLOB, name TEXT,
//!   addr TEXT, UNIQUE (room, peer))`.
//! - `checkpoints(room BLOB PRIMARY KEY, covers TEXT, data BLOB)`: each
//!   room's newest checkpoint (`p2pchat_core::checkpoint`), what it covers
//!   as a version vector in JSON. A load gives it only if every event it
//!   covers is held (one `COUNT` per author over the primary key), then
//!   reads the room's events from the lowest Lamport time an uncovered
//!   event can have, leaving covered rows undecoded.
//!
//! Nothing read from disk can panic the node: a row that cannot be decoded
//! is skipped with a warning and counted (see [`Loaded::skipped`]).

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use p2pchat_core::clock::{EventId, OrderKey, VersionVector};
use p2pchat_core::history::{Anchor, Event};
use p2pchat_core::identity::PEER_ID_LEN;
use p2pchat_core::room::ROOM_ID_LEN;
use p2pchat_core::store::Entry;
use p2pchat_core::{Identity, Loaded, PeerId, Record, RoomId};
use rand_core::{CryptoRng, RngCore};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

/// Name of the database file in the data directory.
pub const DB_FILE: &str = "p2pchat.sqlite3";

/// Version of the schema this build reads and writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 4;

/// Key of the identity's secret bytes in the `meta` table.
const IDENTITY_KEY: &str = "identity";

/// An author's events from a number on ([`Store::chain`]).
const CHAIN_SQL: &str = "SELECT author, seq, lamport, event, length(CAST(token AS BLOB)) \
     FROM events WHERE room = ?1 AND author = ?2 AND seq >= ?3 ORDER BY seq LIMIT ?4";
/// An author's events from a number on, each as its token's length, then
/// the key columns ([`Store::entries`]).
const ENTRIES_SQL: &str = "SELECT length(CAST(token AS BLOB)), seq, lamport FROM events \
     WHERE room = ?1 AND author = ?2 AND seq >= ?3 ORDER BY seq LIMIT ?4";
/// A page of events before a key, newest first ([`Store::page`]).
const PAGE_BEFORE_SQL: &str = "SELECT author, seq, lamport, event, length(CAST(token AS BLOB)) \
     FROM events WHERE room = ?1 AND (lamport, author, seq) < (?2, ?3, ?4) \
     ORDER BY lamport DESC, author DESC, seq DESC LIMIT ?5";
/// A page of events after a key ([`Store::page`]).
const PAGE_AFTER_SQL: &str = "SELECT author, seq, lamport, event, length(CAST(token AS BLOB)) \
     FROM events WHERE room = ?1 AND (lamport, author, seq) > (?2, ?3, ?4) \
     ORDER BY lamport, author, seq LIMIT ?5";

/// The schema, created in one transaction when the database is new.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    joined  INTEGER PRIMARY KEY,
    room    BLOB NOT NULL UNIQUE,
    chat_id TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    room    BLOB NOT NULL,
    author  BLOB NOT NULL,
    seq     INTEGER NOT NULL,
    lamport INTEGER NOT NULL,
    event   TEXT NOT NULL,
    token   TEXT,
    PRIMARY KEY (room, author, seq)
);
CREATE INDEX IF NOT EXISTS events_canonical ON events (room, lamport, author, seq);
CREATE TABLE IF NOT EXISTS versions (
    room    BLOB NOT NULL,
    digest  BLOB NOT NULL,
    author  BLOB NOT NULL,
    seq     INTEGER NOT NULL,
    event   TEXT NOT NULL,
    PRIMARY KEY (room, digest)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    room    BLOB PRIMARY KEY NOT NULL,
    covers  TEXT NOT NULL,
    data    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    id   INTEGER PRIMARY KEY,
    room BLOB NOT NULL,
    peer BLOB NOT NULL,
    name TEXT,
    addr TEXT NOT NULL,
    UNIQUE (room, peer)
);
";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory of the store could not be created, read or
    /// protected.
    #[error("cannot use {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// SQLite failed.
    #[error("the store's database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Another process holds the database.
    #[error(
        "the data directory {} is in use by another running p2pchat node",
        path.display()
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The stored data is damaged in a way that cannot be skipped (for
    /// example the identity has the wrong length). Nothing is regenerated
    /// or overwritten.
    #[error("the store is damaged: {0}")]
    Corrupt(String),
    /// A chat was deleted but its old pages could not be overwritten yet
    /// (the write-ahead log could not be checkpointed).
    #[error(
        "the chat was deleted, but its old data could not be overwritten in the store's files"
    )]
    NotErased,
    /// The store's lock was poisoned: a thread panicked while using it.
    #[error("the store was left in an unknown state by a failed thread")]
    Poisoned,
    /// The database was written by a newer p2pchat; it is left untouched.
    #[error(
        "the store was written by a newer p2pchat (schema version {found}, \
         this version supports up to {supported}); upgrade p2pchat to use it"
    )]
    NewerSchema {
        /// The database's schema version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A record could not be encoded for storage.
    #[error("cannot encode a record for the store: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The node's durable store: an open, exclusively locked SQLite database.
///
/// The lock is held until the store is dropped.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    ///
    /// Creates the directory (mode `0700`) and the database file (mode
    /// `0600`) if they are missing, tightens their modes if they are looser,
    /// takes the exclusive lock and creates or checks the schema. Fails
    /// with [`StoreError::Locked`] if another node holds the directory and
    /// with [`StoreError::NewerSchema`] if a newer p2pchat wrote it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        prepare_dir(dir)?;
        let path = dir.join(DB_FILE);
        prepare_file(dir, &path)?;
        let conn = connect(&path).map_err(|e| classify(e, dir, &path))?;
        Ok(Store { conn, path })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The node's identity: loaded, or generated with `rng` and saved on
    /// first use.
    ///
    /// A stored identity that is not 32 bytes is reported as
    /// [`StoreError::Corrupt`], never replaced: a new one would make the
    /// user a different peer.
    pub fn identity(
        &mut self,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Identity, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stored = {
            let mut stmt = tx.prepare_cached("SELECT value FROM meta WHERE key = ?1")?;
            let mut rows = stmt.query([IDENTITY_KEY])?;
            match rows.next()? {
                Some(row) => Some(identity_from(row.get_ref(0)?)?),
                None => None,
            }
        };
        let identity = match stored {
            Some(identity) => identity,
            None => {
                let identity = Identity::generate(rng);
                let secret = identity.secret_bytes();
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                    params![IDENTITY_KEY, &secret[..]],
                )?;
                identity
            }
        };
        tx.commit()?;
        Ok(identity)
    }

    /// Everything to rebuild the node, in an order
    /// [`p2pchat_core::Node::restore`] accepts: rooms in the order they were
    /// joined, then each room's events in canonical order (Lamport time,
    /// then author bytes, then sequence number), then each room's members.
    ///
    /// A row that cannot be decoded is skipped with a warning and counted
    /// in [`Loaded::skipped`]; so are the events and members of a skipped
    /// room.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let mut records = Vec::new();
        let skipped = self.load_each(|record| records.push(record))?;
        Ok(Loaded { records, skipped })
    }

    /// [`Store::load`] one record at a time, handed to `take` as it is
    /// read, so that the caller need not hold them all at once (a node
    /// restores from them as they come); returns how many were skipped.
    pub fn load_each(&self, take: impl FnMut(Record)) -> Result<usize, StoreError> {
        load_in_chunks(|| Ok(self), take)
    }

    /// [`Store::load_each`] of a store shared behind a lock, taken for each
    /// chunk of rows and released before they are handed to `take`: the
    /// node being restored reads older events back from this very store
    /// while its history fills ([`p2pchat_core::store::Archive`]).
    pub fn load_shared(
        store: &std::sync::Mutex<Store>,
        take: impl FnMut(Record),
    ) -> Result<usize, StoreError> {
        load_in_chunks(|| store.lock().map_err(|_| StoreError::Poisoned), take)
    }

    /// The rooms, in join order (with the raw `room` column of each, to
    /// look its rows up by), and the raw keys of rooms that do not decode.
    #[allow(clippy::type_complexity)]
    fn load_rooms(
        &self,
        skipped: &mut usize,
    ) -> Result<(Vec<Record>, Vec<(Value, RoomId)>, Vec<Value>), StoreError> {
        let (mut records, mut keys, mut lost) = (Vec::new(), Vec::new(), Vec::new());
        let mut stmt = self
            .conn
            .prepare("SELECT room, chat_id, created FROM rooms ORDER BY joined")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let key = Value::from(row.get_ref(0)?);
            match decode_room(row) {
                Ok((room, record)) => {
                    keys.push((key, room));
                    records.push(record);
                }
                Err(why) => {
                    skip(skipped, "rooms", &why);
                    lost.push(key);
                }
            }
        }
        Ok((records, keys, lost))
    }

    /// At most `limit` rows of a room's events in canonical order, after
    /// the row whose raw `(lamport, author, seq)` is `after` (from the
    /// first if `None`): the events that decode, and the last row's key
    /// (`None` when there were fewer rows than `limit`: the end).
    #[allow(clippy::type_complexity)]
    ///
    /// With a checkpoint's `(covers, from)`, the first read starts at the
    /// raw Lamport time `from`, and rows `covers` covers are left out
    /// undecoded.
    fn load_events(
        &self,
        key: &Value,
        after: Option<&[Value; 3]>,
        tail: Option<(&VersionVector, &Value)>,
        limit: usize,
        skipped: &mut usize,
    ) -> Result<(Vec<Event>, Option<[Value; 3]>), StoreError> {
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt;
        let mut rows = match (after, tail) {
            (None, None) => {
                stmt = self.conn.prepare_cached(
                    "SELECT author, seq, lamport, event, length(CAST(token AS BLOB)) \
                     FROM events WHERE room = ?1 ORDER BY lamport, author, seq LIMIT ?2",
                )?;
                stmt.query(params![key, limit_sql])?
            }
            (None, Some((_, from))) => {
                stmt = self.conn.prepare_cached(
                    "SELECT author, seq, lamport, event, length(CAST(token AS BLOB)) \
                     FROM events WHERE room = ?1 AND lamport >= ?2 \
                     ORDER BY lamport, author, seq LIMIT ?3",
                )?;
                stmt.query(params![key, from, limit_sql])?
            }
            (Some([lamport, author, seq]), _) => {
                stmt = self.conn.prepare_cached(PAGE_AFTER_SQL)?;
                stmt.query(params![key, lamport, author, seq, limit_sql])?
            }
        };
        let covered = |row: &rusqlite::Row<'_>| -> bool {
            let Some((covers, _)) = tail else {
                return false;
            };
            match (
                blob::<PEER_ID_LEN>(row, 0, "author"),
                integer(row, 1, "seq"),
            ) {
                (Ok(author), Ok(seq)) => seq <= ordered(covers.get(&PeerId::from_bytes(author))),
                _ => false,
            }
        };
        let (mut events, mut read, mut last) = (Vec::new(), 0usize, None);
        while let Some(row) = rows.next()? {
            read += 1;
            last = Some([
                Value::from(row.get_ref(2)?),
                Value::from(row.get_ref(0)?),
                Value::from(row.get_ref(1)?),
            ]);
            if covered(row) {
                continue;
            }
            match decode_event(row) {
                Ok(event) => events.push(event),
                Err(why) => skip(skipped, "events", &why),
            }
        }
        Ok((events, last.filter(|_| read == limit)))
    }

    /// The room's checkpoint, if it has one and every event it covers is
    /// held (rule 7), with the raw lowest Lamport time an event it does
    /// not cover has (`None`: there is none).
    fn load_checkpoint(
        &self,
        key: &Value,
        skipped: &mut usize,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT covers, data FROM checkpoints WHERE room = ?1")?;
        let Some((covers, data)) = stmt
            .query_row([key], |row| {
                Ok((row.get::<_, String>(0), row.get::<_, Vec<u8>>(1)))
            })
            .optional()?
        else {
            return Ok(None);
        };
        let covers = match (covers, data) {
            (Ok(covers), Ok(data)) => match serde_json::from_str::<VersionVector>(&covers) {
                Ok(covers) => (covers, data),
                Err(e) => {
                    skip(
                        skipped,
                        "checkpoints",
                        &format!("covers is not readable: {e}"),
                    );
                    return Ok(None);
                }
            },
            _ => {
                skip(skipped, "checkpoints", "a column of the wrong type");
                return Ok(None);
            }
        };
        let (covers, data) = covers;
        let mut count = self.conn.prepare_cached(
            "SELECT COUNT(*) FROM events WHERE room = ?1 AND author = ?2 AND seq BETWEEN ?3 AND ?4",
        )?;
        let mut next = self.conn.prepare_cached(
            "SELECT lamport FROM events WHERE room = ?1 AND author = ?2 AND seq > ?3 \
             ORDER BY seq LIMIT 1",
        )?;
        let mut from: Option<i64> = None;
        let mut lowest = |lamport: Option<i64>| {
            if let Some(l) = lamport {
                from = Some(from.map_or(l, |f| f.min(l)));
            }
        };
        for (author, n) in covers.iter() {
            let held: i64 = count.query_row(
                params![key, &author.as_bytes()[..], ordered(1), ordered(n)],
                |row| row.get(0),
            )?;
            if u64::try_from(held).ok() != Some(n) {
                tracing::warn!(
                    %author,
                    held,
                    covered = n,
                    "the store lost events its checkpoint covers: reading every event"
                );
                return Ok(None);
            }
            lowest(
                next.query_row(params![key, &author.as_bytes()[..], ordered(n)], |row| {
                    row.get(0)
                })
                .optional()?,
            );
        }
        // Authors it does not name: from their first event.
        let mut authors = self.conn.prepare_cached(
            "SELECT author, lamport FROM events WHERE room = ?1 AND author > ?2 \
             ORDER BY author, seq LIMIT 1",
        )?;
        let mut at: Vec<u8> = Vec::new();
        while let Some((author, lamport)) = authors
            .query_row(params![key, at], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?))
            })
            .optional()?
        {
            let named = <[u8; PEER_ID_LEN]>::try_from(author.as_slice())
                .is_ok_and(|a| covers.get(&PeerId::from_bytes(a)) > 0);
            if !named {
                lowest(Some(lamport));
            }
            at = author;
        }
        Ok(Some(Checkpoint {
            covers,
            data,
            from: from.map(Value::from),
        }))
    }

    /// The versions and members of the rooms kept, and a count of the rows
    /// of the rooms that could not be read (skipped too).
    fn load_rest(
        &self,
        keys: &[(Value, RoomId)],
        lost: &[Value],
        skipped: &mut usize,
    ) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        // Each room's versions kept off the main chains.
        {
            let mut stmt = self.conn.prepare(
                "SELECT author, seq, event FROM versions WHERE room = ?1 \
                 ORDER BY author, seq, digest",
            )?;
            for (key, room) in keys {
                let mut rows = stmt.query([key])?;
                while let Some(row) = rows.next()? {
                    match decode_version(row) {
                        Ok(event) => out.push(Record::Version { room: *room, event }),
                        Err(why) => skip(skipped, "versions", &why),
                    }
                }
            }
        }

        // Each room's members, in the order they were first stored.
        {
            let mut stmt = self
                .conn
                .prepare("SELECT peer, name, addr FROM members WHERE room = ?1 ORDER BY id")?;
            for (key, room) in keys {
                let mut rows = stmt.query([key])?;
                while let Some(row) = rows.next()? {
                    match decode_member(*room, row) {
                        Ok(record) => out.push(record),
                        Err(why) => skip(skipped, "members", &why),
                    }
                }
            }
        }

        // What belonged to rooms that could not be read is not loaded
        // either; count it so the loss is visible.
        if !lost.is_empty() {
            let mut events = self
                .conn
                .prepare("SELECT count(*) FROM events WHERE room = ?1")?;
            let mut members = self
                .conn
                .prepare("SELECT count(*) FROM members WHERE room = ?1")?;
            for key in lost {
                let n: i64 = events.query_row([key], |r| r.get(0))?;
                let m: i64 = members.query_row([key], |r| r.get(0))?;
                let n = usize::try_from(n.saturating_add(m)).unwrap_or(0);
                if n > 0 {
                    tracing::warn!(
                        rows = n,
                        "skipping the events and members of an unreadable room"
                    );
                    *skipped += n;
                }
            }
        }
        Ok(out)
    }

    /// The tokens of the events stored under `events` in `room`, in order
    /// (`None` for one it does not hold, or whose row does not decode):
    /// the engine reads them back to send events on.
    pub fn tokens(
        &self,
        room: &RoomId,
        events: &[EventId],
    ) -> Result<Vec<Option<String>>, StoreError> {
        /// The one field read from an event's row written before the
        /// token column.
        #[derive(serde::Deserialize)]
        struct Token {
            token: String,
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT token, CASE WHEN token IS NULL THEN event END FROM events \
             WHERE room = ?1 AND author = ?2 AND seq = ?3",
        )?;
        let mut out = Vec::with_capacity(events.len());
        for id in events {
            let mut rows = stmt.query(params![
                &room.as_bytes()[..],
                &id.author.as_bytes()[..],
                ordered(id.seq),
            ])?;
            let token = match rows.next()? {
                // A row from before the token column: inside the JSON.
                Some(row) => match row.get::<_, Option<String>>(0) {
                    Ok(Some(token)) => Some(token),
                    Ok(None) => row
                        .get::<_, String>(1)
                        .ok()
                        .and_then(|json| serde_json::from_str::<Token>(&json).ok())
                        .map(|t| t.token),
                    Err(_) => None,
                },
                None => None,
            };
            out.push(token);
        }
        Ok(out)
    }

    /// `author`'s events in `room` numbered `from` on, in order, at most
    /// `limit`, stopping before the first number not held (or whose row
    /// does not decode): one range of the primary key.
    pub fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.run(CHAIN_SQL, room, author, from, limit, |row| {
            Ok(decode_event(row).ok().map(|event| (event.id.seq, event)))
        })
    }

    /// [`Store::chain`], each event's place and token length only, read
    /// from the row's columns without decoding the event: what a catch-up
    /// is served from. A row from before the token column is decoded for
    /// its token's length.
    pub fn entries(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.run(ENTRIES_SQL, room, author, from, limit, |row| {
            let (Ok(seq), Ok(lamport)) = (integer(row, 1, "seq"), integer(row, 2, "lamport"))
            else {
                return Ok(None);
            };
            let (seq, lamport) = (unordered(seq), unordered(lamport));
            let token_len = match row.get_ref(0)? {
                ValueRef::Integer(n) => usize::try_from(n).ok(),
                _ => self
                    .chain(room, author, seq, 1)?
                    .first()
                    .map(|e| e.token_len),
            };
            Ok(token_len.map(|token_len| {
                let key = OrderKey::new(lamport, EventId::new(*author, seq));
                (seq, Entry { key, token_len })
            }))
        })
    }

    /// `author`'s rows in `room` numbered `from` on, read by `sql` (its
    /// parameters those of [`CHAIN_SQL`]), each taken by `take` with its
    /// number, stopping at the first it cannot take or that is not the
    /// next number (rule 6: a hole ends the run).
    fn run<T>(
        &self,
        sql: &str,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
        mut take: impl FnMut(&rusqlite::Row<'_>) -> Result<Option<(u64, T)>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let from = from.max(1);
        let mut rows = stmt.query(params![
            &room.as_bytes()[..],
            &author.as_bytes()[..],
            ordered(from),
            i64::try_from(limit).unwrap_or(i64::MAX),
        ])?;
        let mut out: Vec<T> = Vec::new();
        while let Some(row) = rows.next()? {
            let Some((seq, item)) = take(row)? else {
                break;
            };
            if seq != from.saturating_add(out.len() as u64) {
                break;
            }
            out.push(item);
        }
        Ok(out)
    }

    /// At most `limit` of `room`'s events next to `anchor`, in canonical
    /// order (oldest first): one range of the `events_canonical` index.
    /// A row that does not decode is left out.
    pub fn page(
        &self,
        room: &RoomId,
        anchor: Anchor,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let (key, older) = match anchor {
            Anchor::Newest => (OrderKey::MAX, true),
            Anchor::Before(key) => (key, true),
            Anchor::After(key) => (key, false),
        };
        let mut stmt = self.conn.prepare_cached(if older {
            PAGE_BEFORE_SQL
        } else {
            PAGE_AFTER_SQL
        })?;
        let mut rows = stmt.query(params![
            &room.as_bytes()[..],
            ordered(key.lamport),
            &key.author.as_bytes()[..],
            ordered(key.seq),
            i64::try_from(limit).unwrap_or(i64::MAX),
        ])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            match decode_event(row) {
                Ok(event) => out.push(event),
                Err(why) => tracing::warn!(reason = why, "skipping an unreadable event in a page"),
            }
        }
        if older {
            out.reverse();
        }
        Ok(out)
    }

    /// Writes the right floor into stored events (rows written before the
    /// floor was kept, found by the node as it restores them,
    /// `p2pchat_core::Node::take_refloored`), in one transaction.
    pub fn set_floors(&mut self, fixes: &[(RoomId, EventId, u64)]) -> Result<(), StoreError> {
        if fixes.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE events SET event = json_set(event, '$.floor', ?4) \
                 WHERE room = ?1 AND author = ?2 AND seq = ?3",
            )?;
            for (room, id, floor) in fixes {
                let Ok(floor) = i64::try_from(*floor) else {
                    continue;
                };
                stmt.execute(params![
                    &room.as_bytes()[..],
                    &id.author.as_bytes()[..],
                    ordered(id.seq),
                    floor
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Persists a batch in one transaction (all or nothing) and returns
    /// once it is durable. Called before anything the batch describes is
    /// shown or sent.
    ///
    /// - `Room`: stored; a room already stored keeps its place in the join
    ///   order and takes the new Chat ID and `created` flag.
    /// - `Event`: stored unless an event with the same room, author and
    ///   sequence number is stored already.
    /// - `Member`: stored or updated; a `None` name keeps the stored name.
    /// - `Left`: the room, its events and its members are deleted.
    pub fn apply(&mut self, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for record in records {
            apply_one(&tx, record)?;
        }
        tx.commit()?;
        if records.iter().any(|r| matches!(r, Record::Left { .. })) {
            self.erase_left()?;
        }
        Ok(())
    }

    /// Makes what a `Left` record deleted unrecoverable from the files:
    /// `secure_delete` (set when the store is opened) has zeroed the freed
    /// cells and pages in the new versions of the pages, now in the
    /// write-ahead log; the checkpoint copies them over the database
    /// file's old pages, and the log, which still holds older versions of
    /// those pages, is truncated to nothing.
    fn erase_left(&mut self) -> Result<(), StoreError> {
        let (busy, _, _): (i64, i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        if busy != 0 {
            return Err(StoreError::NotErased);
        }
        Ok(())
    }
}

#[cfg(test)]
impl Store {
    /// Makes every later write of an event fail (a full or broken disk, as
    /// far as the callers can tell).
    pub(crate) fn refuse_events(&self) -> Result<(), StoreError> {
        self.conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON events \
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )?;
        Ok(())
    }
}

/// The store contract of `p2pchat_core::store`, which this store keeps
/// (checked by core's conformance suite in the tests below).
impl p2pchat_core::Store for Store {
    type Error = StoreError;

    fn apply(&mut self, batch: &[Record]) -> Result<(), StoreError> {
        Store::apply(self, batch)
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        Store::load(self)
    }

    fn tokens(&self, room: &RoomId, events: &[EventId]) -> Result<Vec<Option<String>>, StoreError> {
        Store::tokens(self, room, events)
    }

    fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        Store::chain(self, room, author, from, limit)
    }

    fn page(&self, room: &RoomId, anchor: Anchor, limit: usize) -> Result<Vec<Event>, StoreError> {
        Store::page(self, room, anchor, limit)
    }

    fn entries(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        Store::entries(self, room, author, from, limit)
    }
}

/// Writes one record inside the batch's transaction.
fn apply_one(tx: &Transaction<'_>, record: &Record) -> Result<(), StoreError> {
    match record {
        Record::Room {
            room,
            chat_id,
            created,
        } => {
            tx.prepare_cached(
                "INSERT INTO rooms (room, chat_id, created) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (room) DO UPDATE SET \
                 chat_id = excluded.chat_id, created = excluded.created",
            )?
            .execute(params![&room.as_bytes()[..], chat_id, created])?;
        }
        Record::Event { room, event } => {
            // The token in its own column: the JSON without it.
            let json = serde_json::to_string(&Event {
                token: String::new(),
                ..event.clone()
            })?;
            tx.prepare_cached(
                "INSERT INTO events (room, author, seq, lamport, event, token) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (room, author, seq) DO NOTHING",
            )?
            .execute(params![
                &room.as_bytes()[..],
                &event.id.author.as_bytes()[..],
                ordered(event.id.seq),
                ordered(event.lamport),
                json,
                event.token,
            ])?;
        }
        Record::Version { room, event } => {
            let json = serde_json::to_string(event)?;
            tx.prepare_cached(
                "INSERT INTO versions (room, digest, author, seq, event) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (room, digest) DO NOTHING",
            )?
            .execute(params![
                &room.as_bytes()[..],
                &p2pchat_core::equivocation::digest(event).as_bytes()[..],
                &event.id.author.as_bytes()[..],
                ordered(event.id.seq),
                json,
            ])?;
        }
        Record::Member {
            room,
            peer,
            name,
            addr,
        } => {
            tx.prepare_cached(
                "INSERT INTO members (room, peer, name, addr) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (room, peer) DO UPDATE SET \
                 name = coalesce(excluded.name, members.name), addr = excluded.addr",
            )?
            .execute(params![
                &room.as_bytes()[..],
                &peer.as_bytes()[..],
                name,
                addr.to_string(),
            ])?;
        }
        Record::Checkpoint { room, covers, data } => {
            tx.prepare_cached(
                "INSERT INTO checkpoints (room, covers, data) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (room) DO UPDATE SET covers = excluded.covers, data = excluded.data",
            )?
            .execute(params![
                &room.as_bytes()[..],
                serde_json::to_string(covers)?,
                data
            ])?;
        }
        Record::Left { room } => {
            let key = &room.as_bytes()[..];
            tx.prepare_cached("DELETE FROM checkpoints WHERE room = ?1")?
                .execute([key])?;
            tx.prepare_cached("DELETE FROM events WHERE room = ?1")?
                .execute([key])?;
            tx.prepare_cached("DELETE FROM versions WHERE room = ?1")?
                .execute([key])?;
            tx.prepare_cached("DELETE FROM members WHERE room = ?1")?
                .execute([key])?;
            tx.prepare_cached("DELETE FROM rooms WHERE room = ?1")?
                .execute([key])?;
        }
    }
    Ok(())
}

/// Maps a `u64` onto an `i64` in the same order (flips the top bit), so
/// SQLite sorts stored Lamport times and sequence numbers as numbers.
fn ordered(v: u64) -> i64 {
    i64::from_ne_bytes((v ^ (1 << 63)).to_ne_bytes())
}

/// The `u64` [`ordered`] mapped to `v`.
fn unordered(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes()) ^ (1 << 63)
}

/// A room's checkpoint as [`Store::load_checkpoint`] found it usable.
struct Checkpoint {
    covers: VersionVector,
    data: Vec<u8>,
    /// The raw lowest Lamport time of an event it does not cover.
    from: Option<Value>,
}

/// Logs and counts a row left out of [`Store::load`].
fn skip(skipped: &mut usize, table: &str, why: &str) {
    tracing::warn!(
        table,
        reason = why,
        "skipping an unreadable row of the store"
    );
    *skipped += 1;
}

/// The identity from the `meta` row's value.
fn identity_from(value: ValueRef<'_>) -> Result<Identity, StoreError> {
    let ValueRef::Blob(bytes) = value else {
        return Err(StoreError::Corrupt(format!(
            "the stored identity is a {}, not 32 bytes",
            value.data_type()
        )));
    };
    let secret = <&[u8; 32]>::try_from(bytes).map_err(|_| {
        StoreError::Corrupt(format!(
            "the stored identity is {} bytes, not 32",
            bytes.len()
        ))
    })?;
    Ok(Identity::from_secret_bytes(secret))
}

/// A `rooms` row (`room, chat_id, created`).
fn decode_room(row: &rusqlite::Row<'_>) -> Result<(RoomId, Record), String> {
    let room = blob::<ROOM_ID_LEN>(row, 0, "room id").map(RoomId::from_bytes)?;
    let chat_id = text(row, 1, "Chat ID")?;
    let created = match row.get_ref(2).map_err(|e| e.to_string())? {
        ValueRef::Integer(n) => n != 0,
        other => return Err(format!("room {room}: `created` is a {}", other.data_type())),
    };
    // The Chat ID is not checked here: the node checks it when it restores
    // (and skips a room whose Chat ID it cannot use).
    let record = Record::Room {
        room,
        chat_id: chat_id.to_owned(),
        created,
    };
    Ok((room, record))
}

/// An `events` row (`author, seq, lamport, event`).
fn decode_event(row: &rusqlite::Row<'_>) -> Result<Event, String> {
    let author = blob::<PEER_ID_LEN>(row, 0, "author")?;
    let seq = integer(row, 1, "seq")?;
    let lamport = integer(row, 2, "lamport")?;
    let json = text(row, 3, "event")?;
    let mut event: Event =
        serde_json::from_str(json).map_err(|e| format!("event is not readable: {e}"))?;
    if *event.id.author.as_bytes() != author
        || ordered(event.id.seq) != seq
        || ordered(event.lamport) != lamport
    {
        return Err(format!("event {} does not match its row's key", event.id));
    }
    // The token's length, from its column; a row from before the column
    // has the token inside `event` instead.
    match row.get_ref(4).map_err(|e| e.to_string())? {
        ValueRef::Null => Ok(Loaded::without_token(event)),
        ValueRef::Integer(n) => {
            event.token = String::new();
            event.token_len = usize::try_from(n).map_err(|_| "token length is negative")?;
            Ok(event)
        }
        other => Err(format!("token length is a {}", other.data_type())),
    }
}

/// A `versions` row (`author, seq, event`).
fn decode_version(row: &rusqlite::Row<'_>) -> Result<Event, String> {
    let author = blob::<PEER_ID_LEN>(row, 0, "author")?;
    let seq = integer(row, 1, "seq")?;
    let json = text(row, 2, "event")?;
    let event: Event =
        serde_json::from_str(json).map_err(|e| format!("version is not readable: {e}"))?;
    if *event.id.author.as_bytes() != author || ordered(event.id.seq) != seq {
        return Err(format!(
            "version of {} does not match its row's key",
            event.id
        ));
    }
    Ok(event)
}

/// A `members` row (`peer, name, addr`) of `room`.
fn decode_member(room: RoomId, row: &rusqlite::Row<'_>) -> Result<Record, String> {
    let peer = blob::<PEER_ID_LEN>(row, 0, "peer id").map(PeerId::from_bytes)?;
    let name = match row.get_ref(1).map_err(|e| e.to_string())? {
        ValueRef::Null => None,
        ValueRef::Text(t) => Some(
            std::str::from_utf8(t)
                .map_err(|_| "member name is not UTF-8".to_owned())?
                .to_owned(),
        ),
        other => return Err(format!("member name is a {}", other.data_type())),
    };
    let addr: SocketAddr = text(row, 2, "address")?
        .parse()
        .map_err(|e| format!("member address: {e}"))?;
    Ok(Record::Member {
        room,
        peer,
        name,
        addr,
    })
}

/// Column `i` as exactly `N` bytes.
fn blob<const N: usize>(row: &rusqlite::Row<'_>, i: usize, what: &str) -> Result<[u8; N], String> {
    match row.get_ref(i).map_err(|e| e.to_string())? {
        ValueRef::Blob(b) => {
            <[u8; N]>::try_from(b).map_err(|_| format!("{what} is {} bytes, not {N}", b.len()))
        }
        other => Err(format!("{what} is a {}, not bytes", other.data_type())),
    }
}

/// Column `i` as UTF-8 text.
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize, what: &str) -> Result<&'r str, String> {
    match row.get_ref(i).map_err(|e| e.to_string())? {
        ValueRef::Text(t) => std::str::from_utf8(t).map_err(|_| format!("{what} is not UTF-8")),
        other => Err(format!("{what} is a {}, not text", other.data_type())),
    }
}

/// Column `i` as an integer.
fn integer(row: &rusqlite::Row<'_>, i: usize, what: &str) -> Result<i64, String> {
    match row.get_ref(i).map_err(|e| e.to_string())? {
        ValueRef::Integer(n) => Ok(n),
        other => Err(format!("{what} is a {}, not an integer", other.data_type())),
    }
}

/// An I/O error about `path`.
fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A SQLite error while opening, in the user's terms.
fn classify(e: StoreError, dir: &Path, path: &Path) -> StoreError {
    let StoreError::Sqlite(inner) = e else {
        return e;
    };
    match inner.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
            path: dir.to_owned(),
        },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt(format!("{}: {inner}", path.display()))
        }
        _ => StoreError::Sqlite(inner),
    }
}

/// Events read at a time while loading.
const LOAD_CHUNK: usize = 4096;

/// [`Store::load_each`] over a store reached through `open` for each
/// chunk of rows (a plain reference, or a lock taken and released again):
/// rooms in join order, each room's events in canonical order straight
/// from the index, then versions and members.
fn load_in_chunks<G: std::ops::Deref<Target = Store>>(
    mut open: impl FnMut() -> Result<G, StoreError>,
    mut take: impl FnMut(Record),
) -> Result<usize, StoreError> {
    let mut skipped = 0;
    let (rooms, keys, lost) = open()?.load_rooms(&mut skipped)?;
    rooms.into_iter().for_each(&mut take);
    for (key, room) in &keys {
        // Rule 7: a checkpoint, then only what it does not cover.
        let checkpoint = open()?.load_checkpoint(key, &mut skipped)?;
        let mut tail = None;
        if let Some(Checkpoint { covers, data, from }) = checkpoint {
            take(Record::Checkpoint {
                room: *room,
                covers: covers.clone(),
                data,
            });
            match from {
                Some(from) => tail = Some((covers, from)),
                None => continue,
            }
        }
        let mut after = None;
        loop {
            let (events, last) = open()?.load_events(
                key,
                after.as_ref(),
                tail.as_ref().map(|(c, f)| (c, f)),
                LOAD_CHUNK,
                &mut skipped,
            )?;
            for event in events {
                take(Record::Event { room: *room, event });
            }
            match last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
    }
    // Each read's lock is released at the end of its statement, before
    // `take` runs (which may read the store again).
    let rest = open()?.load_rest(&keys, &lost, &mut skipped)?;
    rest.into_iter().for_each(&mut take);
    Ok(skipped)
}

/// Opens the existing database file, locks it and creates or checks the
/// schema.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    // No CREATE flag: the file was created with the right mode already.
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // A second node must fail at once, not wait.
    conn.busy_timeout(Duration::ZERO)?;
    // Before the first read: the lock taken is then never released, and
    // WAL keeps its index in memory (no -shm file).
    let mode: String =
        conn.pragma_update_and_check(None, "locking_mode", "EXCLUSIVE", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("exclusive") {
        return Err(StoreError::Corrupt(format!(
            "SQLite refused the exclusive locking mode (got {mode})"
        )));
    }
    // Refuse a newer schema before changing anything in the file.
    check_version(schema_version(&conn)?)?;
    let journal: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !journal.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal, "SQLite did not switch the store to WAL mode");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Deleted content is overwritten with zeros, not just unlinked: a
    // chat that was left cannot be read back from free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;

    // The schema, in a write transaction: this also takes the write lock,
    // held from now on.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version = schema_version(&tx)?;
    check_version(version)?;
    if version < SCHEMA_VERSION {
        // New, or older: every table is created if it is missing, and a
        // table from before a column was added gets the column.
        tx.execute_batch(SCHEMA)?;
        if (1..3).contains(&version) && !has_column(&tx, "events", "token")? {
            tx.execute_batch("ALTER TABLE events ADD COLUMN token TEXT;")?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(conn)
}

/// Whether `table` has `column`.
fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?;
    Ok(stmt.exists([table, column])?)
}

/// The database's `user_version`.
fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Refuses a schema this build cannot read.
fn check_version(found: i64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 0 {
        return Err(StoreError::Corrupt(format!(
            "the schema version is {found}"
        )));
    }
    Ok(())
}

/// Creates the data directory (mode `0700` on Unix) or tightens its mode.
#[cfg(unix)]
fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(dir)(e)),
    }
    let meta = fs::metadata(dir).map_err(io_err(dir))?;
    if !meta.is_dir() {
        return Err(io_err(dir)(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    }
    Ok(())
}

/// Creates the data directory.
#[cfg(not(unix))]
fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(io_err(dir))
}

/// Creates the database file with mode `0600` before SQLite sees it, or
/// tightens the modes of the existing file and of a leftover WAL.
#[cfg(unix)]
fn prepare_file(dir: &Path, path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;

    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => {
            drop(file);
            // Make the new directory entry durable.
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(dir))?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten(path)?,
        Err(e) => return Err(io_err(path)(e)),
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    if wal.exists() {
        tighten(&wal)?;
    }
    Ok(())
}

/// Sets `path` to mode `0600` if group or others have any access.
#[cfg(unix)]
fn tighten(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;

    let meta = fs::metadata(path).map_err(io_err(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    }
    Ok(())
}

/// Creates the database file if it is missing.
#[cfg(not(unix))]
fn prepare_file(_dir: &Path, path: &Path) -> Result<(), StoreError> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    use p2pchat_core::clock::EventId;
    use p2pchat_core::history::Body;
    use p2pchat_core::{ChatId, RoomKey, RoomName};
    use rand_core::OsRng;

    const NOW: u64 = 1_700_000_000_000;

    fn peer(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    fn event(author: PeerId, seq: u64, lamport: u64) -> Event {
        Event {
            id: EventId::new(author, seq),
            lamport,
            deps: Vec::new(),
            time: NOW,
            name: "someone".to_owned(),
            body: Body::Text {
                text: format!("message {seq}"),
            },
            token: format!("token-{seq}-{lamport}"),
            floor: 0,
            token_len: 0,
            prev: None,
            refs: Vec::new(),
            digest: Default::default(),
        }
    }

    /// A valid Room record for a fresh room.
    fn room_record() -> (RoomId, Record) {
        let room = RoomId::generate(&mut OsRng);
        let name = RoomName::new("room").unwrap();
        let chat_id = ChatId::without_bootstrap(room, RoomKey::generate(&mut OsRng), name);
        let record = Record::Room {
            room,
            chat_id: chat_id.to_string(),
            created: true,
        };
        (room, record)
    }

    /// A store in a directory of its own, removed with it.
    struct TempStore {
        store: Store,
        _dir: tempfile::TempDir,
    }

    impl p2pchat_core::Store for TempStore {
        type Error = StoreError;

        fn apply(&mut self, batch: &[Record]) -> Result<(), StoreError> {
            self.store.apply(batch)
        }

        fn load(&self) -> Result<Loaded, StoreError> {
            self.store.load()
        }

        fn tokens(
            &self,
            room: &RoomId,
            events: &[EventId],
        ) -> Result<Vec<Option<String>>, StoreError> {
            self.store.tokens(room, events)
        }

        fn chain(
            &self,
            room: &RoomId,
            author: &PeerId,
            from: u64,
            limit: usize,
        ) -> Result<Vec<Event>, StoreError> {
            self.store.chain(room, author, from, limit)
        }

        fn page(
            &self,
            room: &RoomId,
            anchor: Anchor,
            limit: usize,
        ) -> Result<Vec<Event>, StoreError> {
            self.store.page(room, anchor, limit)
        }

        fn entries(
            &self,
            room: &RoomId,
            author: &PeerId,
            from: u64,
            limit: usize,
        ) -> Result<Vec<Entry>, StoreError> {
            self.store.entries(room, author, from, limit)
        }
    }

    #[test]
    fn keeps_the_store_contract() {
        p2pchat_core::store::conformance::check_all(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            TempStore { store, _dir: dir }
        });
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn ids(records: &[Record]) -> Vec<(u64, [u8; 32], u64)> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Event { event, .. } => {
                    Some((event.lamport, *event.id.author.as_bytes(), event.id.seq))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn identity_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let mut store = Store::open(dir.path()).unwrap();
            let a = store.identity(&mut OsRng).unwrap();
            let b = store.identity(&mut OsRng).unwrap();
            assert_eq!(a.peer_id(), b.peer_id());
            a.peer_id()
        };
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.identity(&mut OsRng).unwrap().peer_id(), first);
        assert_eq!(store.path(), dir.path().join(DB_FILE));
    }

    #[test]
    fn identity_of_the_wrong_length_is_corrupt_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('identity', ?1)",
                [&[1u8; 31][..]],
            )
            .unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        assert!(matches!(
            store.identity(&mut OsRng),
            Err(StoreError::Corrupt(_))
        ));
        let len: i64 = store
            .conn
            .query_row(
                "SELECT length(value) FROM meta WHERE key = 'identity'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(len, 31);
    }

    #[test]
    fn load_gives_rooms_then_canonical_events_then_members() {
        let dir = tempfile::tempdir().unwrap();
        let (room_a, rec_a) = room_record();
        let (room_b, rec_b) = room_record();
        let (alice, bob) = (peer(1), peer(2));
        {
            let mut store = Store::open(dir.path()).unwrap();
            store.apply(std::slice::from_ref(&rec_b)).unwrap();
            store.apply(std::slice::from_ref(&rec_a)).unwrap();
            // Out of canonical order, and with Lamport times beyond i64.
            let mut batch = Vec::new();
            for (author, seq, lamport) in [
                (bob, 2, 5),
                (alice, 1, 1),
                (bob, 3, u64::MAX),
                (alice, 2, 5),
                (bob, 1, 1),
                (alice, 3, (1 << 63) + 1),
                (alice, 4, 1 << 63),
            ] {
                batch.push(Record::Event {
                    room: room_a,
                    event: event(author, seq, lamport),
                });
            }
            batch.push(Record::Event {
                room: room_b,
                event: event(alice, 1, 1),
            });
            batch.push(Record::Member {
                room: room_a,
                peer: bob,
                name: Some("bob".into()),
                addr: addr(2),
            });
            batch.push(Record::Member {
                room: room_a,
                peer: alice,
                name: None,
                addr: addr(1),
            });
            store.apply(&batch).unwrap();
            // Re-applying the room keeps its place in the join order.
            store.apply(std::slice::from_ref(&rec_b)).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.skipped, 0);
        assert_eq!(loaded.rooms(), 2);
        assert_eq!(loaded.events(), 8);
        assert_eq!(loaded.records.len(), 2 + 8 + 2);
        assert_eq!(loaded.records[0], rec_b);
        assert_eq!(loaded.records[1], rec_a);
        // Room b's event first (b was joined first), then room a's.
        assert!(matches!(&loaded.records[2], Record::Event { room, .. } if *room == room_b));
        let a_events: Vec<_> = ids(&loaded.records[3..10]);
        assert_eq!(
            a_events,
            vec![
                (1, [1; 32], 1),
                (1, [2; 32], 1),
                (5, [1; 32], 2),
                (5, [2; 32], 2),
                (1 << 63, [1; 32], 4),
                ((1 << 63) + 1, [1; 32], 3),
                (u64::MAX, [2; 32], 3),
            ]
        );
        assert_eq!(
            loaded.records[10],
            Record::Member {
                room: room_a,
                peer: bob,
                name: Some("bob".into()),
                addr: addr(2)
            }
        );
        assert!(matches!(&loaded.records[11], Record::Member { peer, .. } if *peer == alice));
    }

    #[test]
    fn events_are_read_from_the_index_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let plan: Vec<String> = store
            .conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT author, seq, lamport, event FROM events \
                 WHERE room = ?1 ORDER BY lamport, author, seq",
            )
            .unwrap()
            .query_map([&[0u8; 16][..]], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().all(|p| !p.contains("TEMP B-TREE")), "{plan:?}");
        assert!(
            plan.iter().any(|p| p.contains("events_canonical")),
            "{plan:?}"
        );
    }

    /// Ranges are read from an index, never by scanning or sorting the
    /// room's events: their cost follows the range, not the history.
    #[test]
    fn ranges_are_read_from_the_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (sql, index) in [
            (CHAIN_SQL, "sqlite_autoindex_events_1"),
            (PAGE_BEFORE_SQL, "events_canonical"),
            (PAGE_AFTER_SQL, "events_canonical"),
        ] {
            let plan: Vec<String> = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(
                    rusqlite::params_from_iter(
                        [
                            Value::Blob(vec![0; 16]),
                            Value::Integer(0),
                            Value::Blob(vec![0; 32]),
                            Value::Integer(0),
                            Value::Integer(1),
                        ]
                        .into_iter()
                        .take(if sql == CHAIN_SQL { 4 } else { 5 }),
                    ),
                    |r| r.get::<_, String>(3),
                )
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter().all(|p| !p.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
            assert!(
                plan.iter()
                    .any(|p| p.contains(index) && (p.contains('>') || p.contains('<'))),
                "{sql}: a range of {index}: {plan:?}"
            );
        }
    }

    #[test]
    fn left_removes_the_room_its_events_and_members() {
        let dir = tempfile::tempdir().unwrap();
        let (room_a, rec_a) = room_record();
        let (room_b, rec_b) = room_record();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .apply(&[
                rec_a.clone(),
                rec_b.clone(),
                Record::Event {
                    room: room_a,
                    event: event(peer(1), 1, 1),
                },
                Record::Event {
                    room: room_b,
                    event: event(peer(1), 1, 1),
                },
                Record::Member {
                    room: room_a,
                    peer: peer(1),
                    name: None,
                    addr: addr(1),
                },
            ])
            .unwrap();
        store.apply(&[Record::Left { room: room_a }]).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!((loaded.rooms(), loaded.events(), loaded.skipped), (1, 1, 0));
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(loaded.records[0], rec_b);
        for table in ["rooms", "events", "members"] {
            let n: i64 = store
                .conn
                .query_row(
                    &format!("SELECT count(*) FROM {table} WHERE room = ?1"),
                    [&room_a.as_bytes()[..]],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 0, "{table}");
        }
        // Rejoining puts the room after the others.
        store.apply(std::slice::from_ref(&rec_a)).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!((loaded.rooms(), loaded.events()), (2, 1));
        assert_eq!(loaded.records[..2], [rec_b, rec_a]);
    }

    /// Whether `needle` occurs anywhere in the files of `dir`.
    fn found_in_files(dir: &Path, needle: &str) -> Vec<String> {
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
        found
    }

    #[test]
    fn left_leaves_nothing_recoverable_in_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let (room, rec) = room_record();
        let Record::Room { chat_id, .. } = &rec else {
            unreachable!()
        };
        let chat_id = chat_id.clone();
        // Kept alongside: its own room, events and member must survive.
        let (other, other_rec) = room_record();
        let mut store = Store::open(dir.path()).unwrap();
        let secret = |seq: u64| format!("the-left-room-said-this-{seq:05}");
        let mut batch = vec![rec, other_rec];
        for seq in 1..=300 {
            let mut e = event(peer(1), seq, seq);
            e.body = Body::Text { text: secret(seq) };
            e.token = format!("left-room-token-{seq:05}");
            batch.push(Record::Event { room, event: e });
        }
        batch.push(Record::Event {
            room: other,
            event: event(peer(1), 1, 1),
        });
        batch.push(Record::Member {
            room,
            peer: peer(2),
            name: Some("left-room-member".to_owned()),
            addr: addr(1),
        });
        store.apply(&batch).unwrap();
        // The node runs for a while: SQLite checkpoints the log into the
        // database file, as it does by itself every 1,000 pages.
        store
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        for needle in [chat_id.as_str(), &secret(1), "left-room-member"] {
            assert!(
                !found_in_files(dir.path(), needle).is_empty(),
                "the test is blind: {needle} is not in the files before /leave"
            );
        }

        store.apply(&[Record::Left { room }]).unwrap();
        let check = |when: &str| {
            let mut needles = vec![
                chat_id.clone(),
                "left-room-member".to_owned(),
                "left-room-token-".to_owned(),
            ];
            needles.extend((1..=300).map(secret));
            for needle in &needles {
                let found = found_in_files(dir.path(), needle);
                assert!(found.is_empty(), "{when}: {needle} is still in {found:?}");
            }
        };
        check("after /leave, the node still running");
        drop(store);
        check("after the node stopped");
        let loaded = Store::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(
            (loaded.rooms(), loaded.events()),
            (1, 1),
            "the other room stays"
        );
    }

    #[test]
    fn a_failing_batch_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (room, rec) = room_record();
        let mut store = Store::open(dir.path()).unwrap();
        store.apply(std::slice::from_ref(&rec)).unwrap();
        // Make the events table refuse writes, so the batch fails midway.
        store.refuse_events().unwrap();
        let (room2, rec2) = room_record();
        let result = store.apply(&[
            rec2,
            Record::Member {
                room,
                peer: peer(1),
                name: None,
                addr: addr(1),
            },
            Record::Event {
                room: room2,
                event: event(peer(1), 1, 1),
            },
        ]);
        assert!(matches!(result, Err(StoreError::Sqlite(_))));
        store.conn.execute_batch("DROP TRIGGER refuse;").unwrap();
        assert_eq!(store.load().unwrap().records, vec![rec]);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("data").join("p2pchat");
        let mut store = Store::open(&dir).unwrap();
        store.identity(&mut OsRng).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(store.path()), 0o600);
        let wal = dir.join(format!("{DB_FILE}-wal"));
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
        assert!(!dir.join(format!("{DB_FILE}-shm")).exists());
        drop(store);

        // Loose modes are tightened on the next open.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.join(DB_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(store.path()), 0o600);
    }

    #[test]
    fn a_second_open_is_locked_while_the_first_lives() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = Store::open(dir.path()).unwrap();
        let id = first.identity(&mut OsRng).unwrap().peer_id();
        match Store::open(dir.path()) {
            Err(StoreError::Locked { path }) => assert_eq!(path, dir.path()),
            other => panic!("expected Locked, got {other:?}"),
        }
        // The first store still works after the failed attempt.
        let (_, rec) = room_record();
        first.apply(&[rec]).unwrap();
        drop(first);
        let mut second = Store::open(dir.path()).unwrap();
        assert_eq!(second.identity(&mut OsRng).unwrap().peer_id(), id);
        assert_eq!(second.load().unwrap().rooms(), 1);
    }

    #[test]
    fn unreadable_rows_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (room, rec) = room_record();
        {
            let mut store = Store::open(dir.path()).unwrap();
            store
                .apply(&[
                    rec.clone(),
                    Record::Event {
                        room,
                        event: event(peer(1), 1, 1),
                    },
                    Record::Event {
                        room,
                        event: event(peer(1), 2, 2),
                    },
                    Record::Member {
                        room,
                        peer: peer(2),
                        name: None,
                        addr: addr(1),
                    },
                ])
                .unwrap();
        }
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch(&format!(
                "UPDATE events SET event = 'garbage {{' WHERE seq = {};
                 UPDATE members SET addr = 'nowhere';
                 INSERT INTO rooms (room, chat_id, created) VALUES (x'0102', 'x', 0);
                 INSERT INTO events (room, author, seq, lamport, event)
                     VALUES (x'0102', x'01', 1, 1, '{{}}');",
                ordered(2)
            ))
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        // garbage event + bad member + bad room + the bad room's event.
        assert_eq!(loaded.skipped, 4);
        assert_eq!((loaded.rooms(), loaded.events()), (1, 1));
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(loaded.records[0], rec);
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
                .unwrap();
        }
        match Store::open(dir.path()) {
            Err(StoreError::NewerSchema { found, supported }) => {
                assert_eq!((found, supported), (99, SCHEMA_VERSION));
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 99);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1);
    }

    /// A store written before versions were kept (schema 1) opens, keeps
    /// what it held, and gets the `versions` table.
    #[test]
    fn a_schema_1_store_is_brought_up_to_date_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (room, rec) = room_record();
        {
            let mut store = Store::open(dir.path()).unwrap();
            store
                .apply(&[
                    rec,
                    Record::Event {
                        room,
                        event: event(peer(1), 1, 1),
                    },
                ])
                .unwrap();
        }
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch("DROP TABLE versions; PRAGMA user_version = 1;")
                .unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap().events(), 1);
        let version = Record::Version {
            room,
            event: event(peer(1), 1, 2),
        };
        store.apply(std::slice::from_ref(&version)).unwrap();
        assert!(store.load().unwrap().records.contains(&version));
        let found: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(found, SCHEMA_VERSION);
    }

    /// Loading through the lock hands over every record, in load order,
    /// across chunks, and never while holding the lock: the node being
    /// restored reads the store (its archive) from inside `take`.
    #[test]
    fn a_shared_store_loads_in_chunks_without_holding_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (room, rec) = room_record();
        let mut batch = vec![rec];
        let n = LOAD_CHUNK as u64 * 2 + 3;
        batch.extend((1..=n).map(|seq| Record::Event {
            room,
            event: event(peer(1), seq, seq),
        }));
        batch.push(Record::Version {
            room,
            event: event(peer(1), 1, 2),
        });
        batch.push(Record::Member {
            room,
            peer: peer(2),
            name: Some("bob".into()),
            addr: "127.0.0.1:5000".parse().unwrap(),
        });
        let mut store = Store::open(dir.path()).unwrap();
        store.apply(&batch).unwrap();
        let whole = store.load().unwrap();
        let shared = std::sync::Mutex::new(store);
        let mut records = Vec::new();
        let skipped = Store::load_shared(&shared, |record| {
            assert!(shared.try_lock().is_ok(), "handed over under the lock");
            records.push(record);
        })
        .unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(records, whole.records);
        assert_eq!(whole.events() as u64, n);
    }

    /// Rule 7 on disk: a checkpoint comes back with only the events it
    /// does not cover (an author it does not name included, even at a
    /// Lamport time below the rest), and not at all once the store lost
    /// an event it covers.
    #[test]
    fn a_checkpoint_is_read_back_with_only_what_it_does_not_cover() {
        use p2pchat_core::clock::VersionVector;
        let dir = tempfile::tempdir().unwrap();
        let (room, rec) = room_record();
        let mut batch = vec![rec];
        batch.extend((1..=10).map(|seq| Record::Event {
            room,
            event: event(peer(1), seq, seq),
        }));
        batch.extend((1..=3).map(|seq| Record::Event {
            room,
            event: event(peer(2), seq, 2 * seq),
        }));
        batch.push(Record::Event {
            room,
            event: event(peer(3), 1, 5),
        });
        let mut covers = VersionVector::new();
        covers.set(peer(1), 8);
        covers.set(peer(2), 3);
        let checkpoint = Record::Checkpoint {
            room,
            covers: covers.clone(),
            data: vec![1, 2, 3],
        };
        batch.push(checkpoint.clone());
        let mut store = Store::open(dir.path()).unwrap();
        store.apply(&batch).unwrap();
        let whole: Vec<Record> = batch[1..batch.len() - 1]
            .iter()
            .map(|r| match r {
                Record::Event { room, event } => Record::Event {
                    room: *room,
                    event: Loaded::without_token(event.clone()),
                },
                other => other.clone(),
            })
            .collect();
        let canonical = |mut records: Vec<Record>| {
            records.sort_by_key(|r| match r {
                Record::Event { event, .. } => event.key(),
                _ => OrderKey::MIN,
            });
            records
        };
        let uncovered: Vec<Record> = whole
            .iter()
            .filter(|r| match r {
                Record::Event { event, .. } => event.id.seq > covers.get(&event.id.author),
                _ => false,
            })
            .cloned()
            .collect();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.records[1], checkpoint);
        assert_eq!(loaded.records[2..], canonical(uncovered)[..]);
        assert_eq!(loaded.events(), 3);
        // A lost row it covers: every event, no checkpoint.
        let gone = store
            .conn
            .execute(
                "DELETE FROM events WHERE author = ?1 AND seq = ?2",
                params![&peer(1).as_bytes()[..], ordered(4)],
            )
            .unwrap();
        assert_eq!(gone, 1);
        let loaded = store.load().unwrap();
        let held: Vec<Record> = whole
            .into_iter()
            .filter(|r| !matches!(r, Record::Event { event, .. } if event.id == EventId::new(peer(1), 4)))
            .collect();
        assert_eq!(loaded.records[1..], canonical(held)[..]);
        // Left takes it along.
        store.apply(&[Record::Left { room }]).unwrap();
        let left: i64 = store
            .conn
            .query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn rows_from_before_the_token_column_are_read_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let (room, rec) = room_record();
        let old = event(peer(1), 1, 1);
        {
            // A version 2 store: the token inside the event's JSON, no
            // token column.
            let mut store = Store::open(dir.path()).unwrap();
            store.apply(std::slice::from_ref(&rec)).unwrap();
            store
                .conn
                .execute_batch("ALTER TABLE events DROP COLUMN token; PRAGMA user_version = 2;")
                .unwrap();
            store
                .conn
                .execute(
                    "INSERT INTO events (room, author, seq, lamport, event) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        &room.as_bytes()[..],
                        &old.id.author.as_bytes()[..],
                        ordered(1),
                        ordered(1),
                        serde_json::to_string(&old).unwrap(),
                    ],
                )
                .unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        let new = event(peer(1), 2, 2);
        store
            .apply(&[Record::Event {
                room,
                event: new.clone(),
            }])
            .unwrap();
        // Both load without their tokens, their lengths kept; both tokens
        // are read back; the old row was not rewritten.
        let loaded = store.load().unwrap();
        assert_eq!((loaded.skipped, loaded.events()), (0, 2));
        for event in [&old, &new] {
            let event = Loaded::without_token(event.clone());
            assert!(loaded.records.contains(&Record::Event { room, event }));
        }
        assert_eq!(
            store.tokens(&room, &[old.id, new.id]).unwrap(),
            vec![Some(old.token.clone()), Some(new.token.clone())]
        );
        let row = |seq: u64| -> (String, Option<String>) {
            store
                .conn
                .query_row(
                    "SELECT event, token FROM events WHERE seq = ?1",
                    [ordered(seq)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
        };
        let (json, token) = row(1);
        assert!(json.contains(&old.token) && token.is_none());
        let (json, token) = row(2);
        assert!(!json.contains(&new.token));
        assert_eq!(token.as_deref(), Some(new.token.as_str()));
        let found: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(found, SCHEMA_VERSION);
    }
}
