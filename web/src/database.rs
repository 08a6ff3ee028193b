//! The browser peer's chats and history in IndexedDB: the records of the
//! store contract (`p2pchat_core::store`), kept by [`Database`], which
//! passes the contract's conformance suite in Chromium.
//!
//! # Why IndexedDB
//!
//! `localStorage` gives an origin about 10 MB, synchronously, with no
//! transactions: a browser peer filled it at about 4,700 messages and could
//! then store, and so show, nothing more. IndexedDB gives an origin a share
//! of the disk (gigabytes), transactions, and keys kept in order, so a
//! room's history comes back in canonical order from one range read.
//!
//! # Layout
//!
//! One database, [`DB_NAME`], version [`DB_VERSION`]. Every key is a string
//! and every value a string (JSON); `<room>`, `<author>`, `<peer>` and
//! `<digest>` are lowercase hex, numbers are 20 zero-padded decimal digits
//! (so that keys sort as the numbers do, up to `u64::MAX`):
//!
//! - `meta`: `room-counter` and `member-counter`, the last join-order and
//!   first-stored numbers handed out.
//! - `rooms`: `<room>` → `{"order", "record"}` (the `Record::Room`).
//! - `events`: `<room>/<author>/<seq>` → `{"ord", "json"}`: the event
//!   (with its token) as JSON, and `ord`, its place in the room's
//!   canonical order, `<room>/<lamport>/<author>/<seq>`, which the index
//!   `canonical` sorts by. Keyed by id, the first copy of an id wins (rule
//!   2) and a token is read back with one request (rule 5); through the
//!   index a room's events load in canonical order with one range read.
//!   One request writes an event, its index entry with it.
//! - `versions`: `<room>/<author>/<seq>/<digest>` → a version kept off its
//!   author's main chain, once per digest, in load order.
//! - `members`: `<room>/<peer>` → `{"n", "peer", "name", "addr"}`, loaded
//!   in the order of `n` (first stored).
//!
//! A room's entries in every store are the keys from `<room>/` to
//! `<room>0` (`0` follows `/`), so leaving deletes three key ranges.
//!
//! # Stored before shown
//!
//! [`Database::apply`] writes a batch in one `readwrite` transaction with
//! `strict` durability and returns once it has committed: all of the batch
//! or none of it, flushed to disk. The peer confirms the batch to the
//! engine only then, and the engine sends and shows nothing that waited
//! for it before. A batch that does not fit (the origin's quota is
//! reached) aborts and is reported as [`StorageError::Full`]; storage is
//! as it was.
//!
//! # Nothing read can panic
//!
//! An entry that cannot be decoded is skipped and counted in
//! [`Loaded::skipped`] (rule 4), as are the entries of a room whose record
//! cannot be read.

use indexed_db_futures::database::Database as Idb;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{
    Transaction, TransactionDurability, TransactionMode, TransactionOptions,
};
use indexed_db_futures::{KeyPath, KeyRange};
use p2pchat_core::clock::{EventId, OrderKey};
use p2pchat_core::equivocation::digest;
use p2pchat_core::history::{Anchor, Event};
use p2pchat_core::{AsyncStore, Loaded, PeerId, Record, RoomId};
use serde::{Deserialize, Serialize};

use crate::storage::StorageError;

/// The database's name.
pub const DB_NAME: &str = "p2pchat";
/// The version of the layout above.
pub const DB_VERSION: u32 = 1;

const META: &str = "meta";
const ROOMS: &str = "rooms";
const EVENTS: &str = "events";
/// The index of `events` in canonical order.
const CANONICAL: &str = "canonical";
const VERSIONS: &str = "versions";
const MEMBERS: &str = "members";
const ALL: [&str; 5] = [META, ROOMS, EVENTS, VERSIONS, MEMBERS];
const ROOM_COUNTER: &str = "room-counter";
const MEMBER_COUNTER: &str = "member-counter";

/// A room's entry in `rooms`.
#[derive(Serialize, Deserialize)]
struct RoomEntry {
    order: u64,
    record: Record,
}

/// A member's entry in `members`.
#[derive(Serialize, Deserialize)]
struct MemberEntry {
    n: u64,
    peer: PeerId,
    name: Option<String>,
    addr: std::net::SocketAddr,
}

/// The one field of an event's entry that reading a token needs.
#[derive(Deserialize)]
struct TokenOnly {
    token: String,
}

/// The records of the store contract in the browser's IndexedDB.
pub struct Database {
    db: Idb,
}

/// An IndexedDB error as the page says it: a full origin is
/// [`StorageError::Full`].
fn failed(error: impl std::fmt::Display) -> StorageError {
    let text = error.to_string();
    if text.contains("QuotaExceeded") || text.to_ascii_lowercase().contains("quota") {
        StorageError::Full
    } else {
        StorageError::Unavailable(text)
    }
}

/// Why a transaction did not commit. The browser aborts one that does not
/// fit the origin's quota without saying so to the commit: then the
/// storage estimate shows the origin at its quota.
async fn why_aborted(error: indexed_db_futures::error::Error) -> StorageError {
    let said = failed(&error);
    if said == StorageError::Full {
        return said;
    }
    let estimate = web_sys::window()
        .and_then(|w| w.navigator().storage().estimate().ok())
        .map(wasm_bindgen_futures::JsFuture::from);
    let Some(estimate) = estimate else {
        return said;
    };
    let Ok(estimate) = estimate.await else {
        return said;
    };
    let field = |name: &str| {
        js_sys::Reflect::get(&estimate, &name.into())
            .ok()
            .and_then(|v| v.as_f64())
    };
    match (field("usage"), field("quota")) {
        // Within a megabyte of the quota: a batch that large did not fit.
        (Some(usage), Some(quota)) if usage + 1_048_576.0 >= quota => StorageError::Full,
        _ => said,
    }
}

fn n20(n: u64) -> String {
    format!("{n:020}")
}

fn id_key(room: &RoomId, id: &EventId) -> String {
    format!("{room}/{}/{}", id.author, n20(id.seq))
}

/// Every key of `room` in any store.
fn room_range(room: &RoomId) -> KeyRange<String> {
    KeyRange::Bound(format!("{room}/"), false, format!("{room}0"), true)
}

impl Database {
    /// Opens (or creates) the database called `name`.
    pub async fn open(name: &str) -> Result<Database, StorageError> {
        let db = Idb::open(name)
            .with_version(DB_VERSION)
            .with_on_upgrade_needed(|event, db| {
                if event.old_version() < 1.0 {
                    for store in ALL {
                        let created = db.create_object_store(store).build()?;
                        if store == EVENTS {
                            created
                                .create_index(CANONICAL, KeyPath::One("ord"))
                                .build()?;
                        }
                    }
                }
                Ok(())
            })
            .await
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        Ok(Database { db })
    }

    /// Deletes the database called `name` (tests start afresh with it).
    #[cfg(test)]
    pub async fn delete(name: &str) -> Result<(), StorageError> {
        Idb::delete_by_name(name)
            .map_err(|e| StorageError::Unavailable(e.to_string()))?
            .await
            .map_err(failed)
    }

    fn transaction(&self, mode: TransactionMode) -> Result<Transaction<'_>, StorageError> {
        let mut options = TransactionOptions::new();
        options.set_durability(TransactionDurability::Strict);
        self.db
            .transaction(ALL.as_slice())
            .with_mode(mode)
            .with_options(options)
            .build()
            .map_err(failed)
    }

    /// Stores a batch in one transaction, all or nothing, and returns once
    /// it is on disk.
    pub async fn apply(&self, batch: &[Record]) -> Result<(), StorageError> {
        let tx = self.transaction(TransactionMode::Readwrite)?;
        let mut rest = batch;
        while let Some(first) = rest.first() {
            let events = rest
                .iter()
                .take_while(|r| matches!(r, Record::Event { .. }))
                .count();
            if events > 0 {
                put_events(&tx, &rest[..events]).await?;
                rest = &rest[events..];
            } else {
                apply_one(&tx, first).await?;
                rest = &rest[1..];
            }
        }
        match tx.commit().await {
            Ok(()) => Ok(()),
            Err(e) => Err(why_aborted(e).await),
        }
    }

    /// Everything stored, in the contract's load order.
    pub async fn load(&self) -> Result<Loaded, StorageError> {
        let tx = self.transaction(TransactionMode::Readonly)?;
        let mut loaded = Loaded::default();
        let mut rooms: Vec<(u64, RoomId, Record)> = Vec::new();
        let mut lost: Vec<String> = Vec::new();
        let keys: Vec<String> = strings(
            tx.object_store(ROOMS)
                .map_err(failed)?
                .get_all_keys()
                .primitive()
                .map_err(failed)?
                .await
                .map_err(failed)?,
        );
        for key in keys {
            let entry: Option<String> = get(&tx, ROOMS, &key).await?;
            match entry.as_deref().and_then(decode_room) {
                Some((order, room, record)) if room.to_string() == key => {
                    rooms.push((order, room, record));
                }
                _ => {
                    loaded.skipped += 1;
                    lost.push(key);
                }
            }
        }
        rooms.sort_by_key(|(order, _, _)| *order);
        loaded
            .records
            .extend(rooms.iter().map(|(_, _, record)| record.clone()));
        for (_, room, _) in &rooms {
            for json in in_order(&tx, room).await? {
                match serde_json::from_str::<Event>(&json) {
                    Ok(event) => loaded.records.push(Record::Event {
                        room: *room,
                        event: Loaded::without_token(event),
                    }),
                    Err(_) => loaded.skipped += 1,
                }
            }
        }
        for (_, room, _) in &rooms {
            for json in range(&tx, VERSIONS, room).await? {
                match serde_json::from_str::<Event>(&json) {
                    Ok(event) => loaded.records.push(Record::Version { room: *room, event }),
                    Err(_) => loaded.skipped += 1,
                }
            }
        }
        for (_, room, _) in &rooms {
            let mut members: Vec<MemberEntry> = Vec::new();
            for json in range(&tx, MEMBERS, room).await? {
                match serde_json::from_str::<MemberEntry>(&json) {
                    Ok(member) => members.push(member),
                    Err(_) => loaded.skipped += 1,
                }
            }
            members.sort_by_key(|m| m.n);
            loaded
                .records
                .extend(members.into_iter().map(|m| Record::Member {
                    room: *room,
                    peer: m.peer,
                    name: m.name,
                    addr: m.addr,
                }));
        }
        // What belongs to a room that could not be read is not loaded
        // either; count it so the loss is visible.
        for key in &lost {
            let range = KeyRange::Bound(format!("{key}/"), false, format!("{key}0"), true);
            for store in [EVENTS, VERSIONS, MEMBERS] {
                let n = tx
                    .object_store(store)
                    .map_err(failed)?
                    .count()
                    .with_query::<String, _>(range.clone())
                    .primitive()
                    .map_err(failed)?
                    .await
                    .map_err(failed)?;
                loaded.skipped += usize::try_from(n).unwrap_or(usize::MAX);
            }
        }
        Ok(loaded)
    }

    /// The tokens of the events stored under `events` in `room`, in the
    /// order asked, `None` where none is held (or its entry is damaged).
    pub async fn tokens(
        &self,
        room: &RoomId,
        events: &[EventId],
    ) -> Result<Vec<Option<String>>, StorageError> {
        let tx = self.transaction(TransactionMode::Readonly)?;
        let mut out = Vec::with_capacity(events.len());
        for id in events {
            let token = get_event(&tx, &id_key(room, id))
                .await?
                .and_then(|json| serde_json::from_str::<TokenOnly>(&json).ok())
                .map(|t| t.token);
            out.push(token);
        }
        Ok(out)
    }
}

impl Database {
    /// `author`'s events in `room` numbered `from` on, in order, at most
    /// `limit`, stopping before the first number not held (or whose entry
    /// is damaged): one key-range read.
    pub async fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let from = from.max(1);
        let Ok(limit) = u32::try_from(limit) else {
            return Err(StorageError::Unavailable(
                "too many events asked for".into(),
            ));
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.transaction(TransactionMode::Readonly)?;
        let range = KeyRange::Bound(
            id_key(room, &EventId::new(*author, from)),
            false,
            format!("{room}/{author}0"),
            true,
        );
        let entries = tx
            .object_store(EVENTS)
            .map_err(failed)?
            .get_all::<std::collections::BTreeMap<String, String>>()
            .with_query::<String, _>(range)
            .with_limit(limit)
            .primitive()
            .map_err(failed)?
            .await
            .map_err(failed)?;
        let mut out: Vec<Event> = Vec::new();
        for entry in entries {
            let event = entry
                .ok()
                .and_then(|mut e| e.remove("json"))
                .and_then(|json| serde_json::from_str::<Event>(&json).ok());
            match event {
                Some(e) if e.id.author == *author && e.id.seq == from + out.len() as u64 => {
                    out.push(Loaded::without_token(e));
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// At most `limit` of `room`'s events next to `anchor`, in canonical
    /// order (oldest first): one cursor over the canonical index. A damaged
    /// entry is left out.
    pub async fn page(
        &self,
        room: &RoomId,
        anchor: Anchor,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        use web_sys::IdbCursorDirection;
        let (lower, upper) = (format!("{room}/"), format!("{room}0"));
        let ord = |key: &OrderKey| {
            format!(
                "{room}/{}/{}/{}",
                n20(key.lamport),
                key.author,
                n20(key.seq)
            )
        };
        let (range, direction) = match anchor {
            Anchor::Newest => (
                KeyRange::Bound(lower, false, upper, true),
                IdbCursorDirection::Prev,
            ),
            Anchor::Before(key) => (
                KeyRange::Bound(lower, false, ord(&key).min(upper), true),
                IdbCursorDirection::Prev,
            ),
            Anchor::After(key) => (
                KeyRange::Bound(ord(&key).max(lower), true, upper, true),
                IdbCursorDirection::Next,
            ),
        };
        let mut out: Vec<Event> = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let tx = self.transaction(TransactionMode::Readonly)?;
        let store = tx.object_store(EVENTS).map_err(failed)?;
        let index = store.index(CANONICAL).map_err(failed)?;
        let cursor = index
            .open_cursor()
            .with_query::<String, _>(range)
            .with_direction(direction)
            .primitive()
            .map_err(failed)?
            .await
            .map_err(failed)?;
        if let Some(mut cursor) = cursor {
            while out.len() < limit {
                let entry: Option<std::collections::BTreeMap<String, String>> =
                    cursor.next_record().await.map_err(failed)?;
                let Some(mut entry) = entry else {
                    break;
                };
                if let Some(event) = entry
                    .remove("json")
                    .and_then(|json| serde_json::from_str::<Event>(&json).ok())
                {
                    out.push(Loaded::without_token(event));
                }
            }
        }
        if direction == IdbCursorDirection::Prev {
            out.reverse();
        }
        Ok(out)
    }
}

impl AsyncStore for Database {
    type Error = StorageError;

    async fn apply(&mut self, batch: &[Record]) -> Result<(), StorageError> {
        Database::apply(self, batch).await
    }

    async fn load(&self) -> Result<Loaded, StorageError> {
        Database::load(self).await
    }

    async fn tokens(
        &self,
        room: &RoomId,
        events: &[EventId],
    ) -> Result<Vec<Option<String>>, StorageError> {
        Database::tokens(self, room, events).await
    }

    async fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        Database::chain(self, room, author, from, limit).await
    }

    async fn page(
        &self,
        room: &RoomId,
        anchor: Anchor,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        Database::page(self, room, anchor, limit).await
    }
}

/// The strings of a `getAll`, leaving out any that is not one.
fn strings<I: IntoIterator<Item = indexed_db_futures::Result<String>>>(items: I) -> Vec<String> {
    items.into_iter().filter_map(Result::ok).collect()
}

/// The value under `key` in `store`.
async fn get(tx: &Transaction<'_>, store: &str, key: &str) -> Result<Option<String>, StorageError> {
    tx.object_store(store)
        .map_err(failed)?
        .get(key.to_owned())
        .primitive()
        .map_err(failed)?
        .await
        .map_err(failed)
}

/// The JSON of the event stored under the id key `key`.
async fn get_event(tx: &Transaction<'_>, key: &str) -> Result<Option<String>, StorageError> {
    let entry: Option<std::collections::BTreeMap<String, String>> = tx
        .object_store(EVENTS)
        .map_err(failed)?
        .get(key.to_owned())
        .primitive()
        .map_err(failed)?
        .await
        .map_err(failed)?;
    Ok(entry.and_then(|mut e| e.remove("json")))
}

/// The JSON of `room`'s events in canonical order.
async fn in_order(tx: &Transaction<'_>, room: &RoomId) -> Result<Vec<String>, StorageError> {
    let entries = tx
        .object_store(EVENTS)
        .map_err(failed)?
        .index(CANONICAL)
        .map_err(failed)?
        .get_all::<std::collections::BTreeMap<String, String>>()
        .with_query::<String, _>(room_range(room))
        .primitive()
        .map_err(failed)?
        .await
        .map_err(failed)?;
    Ok(entries
        .filter_map(Result::ok)
        .filter_map(|mut e| e.remove("json"))
        .collect())
}

/// Stores `value` under `key` in `store`.
async fn put(
    tx: &Transaction<'_>,
    store: &str,
    key: &str,
    value: &str,
) -> Result<(), StorageError> {
    tx.object_store(store)
        .map_err(failed)?
        .put(value.to_owned())
        .with_key(key.to_owned())
        .primitive()
        .map_err(failed)?
        .await
        .map_err(failed)?;
    Ok(())
}

/// Every value of `room` in `store`, in key order.
async fn range(
    tx: &Transaction<'_>,
    store: &str,
    room: &RoomId,
) -> Result<Vec<String>, StorageError> {
    let values = tx
        .object_store(store)
        .map_err(failed)?
        .get_all()
        .with_query::<String, _>(room_range(room))
        .primitive()
        .map_err(failed)?
        .await
        .map_err(failed)?;
    Ok(strings(values))
}

/// The next number of the counter `name` in `meta`.
async fn next(tx: &Transaction<'_>, name: &str) -> Result<u64, StorageError> {
    let last = get(tx, META, name)
        .await?
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let next = last.saturating_add(1);
    put(tx, META, name, &next.to_string()).await?;
    Ok(next)
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|e| StorageError::Corrupt(e.to_string()))
}

fn decode_room(json: &str) -> Option<(u64, RoomId, Record)> {
    let entry: RoomEntry = serde_json::from_str(json).ok()?;
    match &entry.record {
        Record::Room { room, .. } => Some((entry.order, *room, entry.record.clone())),
        _ => None,
    }
}

/// The key of `event` in `events`: the room's canonical order.
fn event_key(room: &RoomId, event: &Event) -> String {
    format!(
        "{room}/{}/{}/{}",
        n20(event.lamport),
        event.id.author,
        n20(event.id.seq)
    )
}

/// A run of event records (what a catch-up writes): which ids are held
/// already is asked once per author in the run (one key-range read), and
/// the new events are written without waiting for each request in turn.
/// Every request of a transaction goes to the browser's storage process
/// and back: one after the other they cost a round trip each. The
/// requests still take effect in the order they are made, and the first
/// copy of an id wins (rule 2), within the run too.
async fn put_events(tx: &Transaction<'_>, records: &[Record]) -> Result<(), StorageError> {
    let events = tx.object_store(EVENTS).map_err(failed)?;
    let mut seqs: std::collections::BTreeMap<(RoomId, PeerId), Vec<u64>> =
        std::collections::BTreeMap::new();
    for record in records {
        if let Record::Event { room, event } = record {
            seqs.entry((*room, event.id.author))
                .or_default()
                .push(event.id.seq);
        }
    }
    let mut ranges = Vec::with_capacity(seqs.len());
    let mut singles = Vec::new();
    for ((room, author), seqs) in seqs {
        let (Some(&first), Some(&last)) = (seqs.iter().min(), seqs.iter().max()) else {
            continue;
        };
        let key = |seq| id_key(&room, &EventId::new(author, seq));
        if last - first <= 2 * seqs.len() as u64 + 16 {
            // A run (what a catch-up sends): one range read.
            let range = KeyRange::Bound(key(first), false, key(last), false);
            ranges.push(
                events
                    .get_all_keys::<String>()
                    .with_query::<String, _>(range)
                    .primitive()
                    .map_err(failed)?,
            );
        } else {
            // Scattered ids: a range read could return a whole history.
            for seq in seqs {
                singles.push((
                    key(seq),
                    events
                        .get_key::<String, String>(key(seq))
                        .primitive()
                        .map_err(failed)?,
                ));
            }
        }
    }
    let mut held = std::collections::HashSet::new();
    for keys in ranges {
        held.extend(strings(keys.await.map_err(failed)?));
    }
    for (key, found) in singles {
        if found.await.map_err(failed)?.is_some() {
            held.insert(key);
        }
    }
    let mut writes = Vec::new();
    for record in records {
        if let Record::Event { room, event } = record {
            let id = id_key(room, &event.id);
            if !held.insert(id.clone()) {
                continue;
            }
            let mut entry = std::collections::BTreeMap::new();
            entry.insert("ord", event_key(room, event));
            entry.insert("json", to_json(event)?);
            writes.push(events.put(entry).with_key(id).primitive().map_err(failed)?);
        }
    }
    for write in writes {
        write.await.map_err(failed)?;
    }
    Ok(())
}

/// Applies one record inside the batch's transaction (later records see
/// what earlier ones wrote).
async fn apply_one(tx: &Transaction<'_>, record: &Record) -> Result<(), StorageError> {
    match record {
        Record::Room { room, .. } => {
            let key = room.to_string();
            let kept = get(tx, ROOMS, &key).await?.as_deref().and_then(decode_room);
            let order = match kept {
                Some((order, _, _)) => order,
                None => next(tx, ROOM_COUNTER).await?,
            };
            let entry = RoomEntry {
                order,
                record: record.clone(),
            };
            put(tx, ROOMS, &key, &to_json(&entry)?).await
        }
        Record::Event { .. } => put_events(tx, std::slice::from_ref(record)).await,
        Record::Version { room, event } => {
            let key = format!(
                "{}/{}",
                id_key(room, &event.id),
                hex::encode(digest(event).as_bytes())
            );
            if get(tx, VERSIONS, &key).await?.is_some() {
                return Ok(());
            }
            put(tx, VERSIONS, &key, &to_json(event)?).await
        }
        Record::Member {
            room,
            peer,
            name,
            addr,
        } => {
            let key = format!("{room}/{peer}");
            let kept = get(tx, MEMBERS, &key)
                .await?
                .and_then(|json| serde_json::from_str::<MemberEntry>(&json).ok());
            let entry = match kept {
                Some(kept) => MemberEntry {
                    n: kept.n,
                    peer: *peer,
                    name: name.clone().or(kept.name),
                    addr: *addr,
                },
                None => MemberEntry {
                    n: next(tx, MEMBER_COUNTER).await?,
                    peer: *peer,
                    name: name.clone(),
                    addr: *addr,
                },
            };
            put(tx, MEMBERS, &key, &to_json(&entry)?).await
        }
        // Rule 7 lets a store leave checkpoints out: the browser's node
        // keeps whole histories and never writes one.
        Record::Checkpoint { .. } => Ok(()),
        Record::Left { room } => {
            tx.object_store(ROOMS)
                .map_err(failed)?
                .delete(room.to_string())
                .primitive()
                .map_err(failed)?
                .await
                .map_err(failed)?;
            for store in [EVENTS, VERSIONS, MEMBERS] {
                tx.object_store(store)
                    .map_err(failed)?
                    .delete::<String, _>(room_range(room))
                    .primitive()
                    .map_err(failed)?
                    .await
                    .map_err(failed)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::storage::{MemoryStore, PeerStore};

    thread_local! {
        static FRESH: Cell<u32> = const { Cell::new(0) };
    }

    /// A new, empty database of its own.
    async fn fresh() -> Database {
        let n = FRESH.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        let name = format!("p2pchat-test-{n}-{}", js_sys::Date::now());
        Database::delete(&name).await.expect("deleting a leftover");
        Database::open(&name).await.expect("opening IndexedDB")
    }

    #[test]
    async fn indexed_db_keeps_the_store_contract() {
        p2pchat_core::store::conformance::check_all_async(fresh).await;
    }

    /// What an earlier version kept in `localStorage` moves into
    /// IndexedDB whole: the same records load back, tokens are read back.
    #[test]
    async fn chats_kept_in_local_storage_move_whole() {
        use p2pchat_core::store::conformance::{event, peer, room_record};

        let mut legacy = PeerStore::new(MemoryStore::default());
        let (room, record) = room_record(1);
        let a1 = event(peer(1), 1, 1, vec![], "a1");
        let b1 = event(peer(2), 1, 2, vec![a1.id], "b1");
        legacy
            .apply(&[
                record,
                Record::Event {
                    room,
                    event: b1.clone(),
                },
                Record::Event {
                    room,
                    event: a1.clone(),
                },
                Record::Member {
                    room,
                    peer: peer(2),
                    name: Some("b".into()),
                    addr: "192.0.2.1:1".parse().expect("an address"),
                },
            ])
            .expect("storing in memory");
        let db = fresh().await;
        let moving = legacy.records_to_move().expect("reading");
        db.apply(&moving.records).await.expect("moving");
        assert_eq!(
            db.load().await.expect("loading"),
            legacy.load().expect("loading")
        );
        assert_eq!(
            db.tokens(&room, &[b1.id, a1.id])
                .await
                .expect("reading tokens"),
            vec![Some(b1.token), Some(a1.token)]
        );
    }
}
