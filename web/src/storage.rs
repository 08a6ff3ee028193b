//! The browser peer's `localStorage`: who the user is (the profile), the
//! tab lease ([`crate::tab`]), and — in pages before the history moved to
//! IndexedDB ([`crate::database`]) — the chats and everything said in
//! them. Those records are still read here once, to move them
//! ([`PeerStore::records_to_move`], then [`PeerStore::erase_records`]);
//! the store below keeps the whole store contract all the same (it is the
//! fallback the contract's suite checks in Chromium too).
//!
//! # What is kept
//!
//! The user's profile (display name and the 32 secret bytes of their
//! Ed25519 identity), and the [`Record`]s the core engine emits (this store
//! keeps the store contract of `p2pchat_core::store`): the rooms
//! joined (each with its Chat ID, which holds the room key), the events
//! delivered in each room, and each room's members with their names and
//! last addresses. [`PeerStore::load`] gives the records back in an order
//! [`p2pchat_core::Node::restore`] accepts, and the node is rebuilt from
//! them. All of it is secret (whoever reads a Chat ID can join the room),
//! and `localStorage` is readable by any script of the page's origin: the
//! page must load no third-party scripts.
//!
//! # Key layout
//!
//! Every key starts with `p2pchat/v1/`; values are JSON.
//!
//! - `p2pchat/v1/profile`: the [`Profile`], `{"name", "secret"}` with the
//!   secret in hex.
//! - `p2pchat/v1/room-counter`: the last join-order number handed out, in
//!   decimal.
//! - `p2pchat/v1/room/<room hex>`: `{"order": n, "record": <Record::Room>}`,
//!   where `n` is the room's place in the join order (taken from the
//!   counter when the room is first stored, kept when it is stored again).
//! - `p2pchat/v1/ev/<room hex>/<author hex>/<seq>`: one delivered event
//!   (the JSON of [`Event`]), `seq` as 20 zero-padded decimal digits so the
//!   keys of one author sort by sequence number.
//! - `p2pchat/v1/member/<room hex>/<peer hex>`: `{"name", "addr"}`, a
//!   member's last known display name (or `null`) and address.
//!
//! The `v1` in the prefix is the version of this layout. A different
//! layout would get a new prefix (and an explicit migration from the old
//! keys); this code never reads keys of another version, so it can neither
//! misread newer data nor damage it, and it never touches the keys of
//! other applications on the same origin.
//!
//! # One key per event
//!
//! `localStorage` has no transactions, no indexes and no appends: writing
//! a value rewrites it whole. Keeping a room's history in one value would
//! make every new message cost as much as the whole history, in time and in
//! quota headroom (the old and the new copy must fit at once). With one key
//! per event each message is one small write, a duplicate is found with one
//! lookup, and leaving a room deletes exactly its keys. Ordering is done
//! when loading: a room's events are sorted into the canonical order
//! (Lamport time, then author, then sequence number).
//!
//! # Stored before shown
//!
//! The engine's outputs are drained in order: records first, then
//! datagrams, then events for the user. The driver hands each batch of
//! records to [`PeerStore::apply`] before it transmits or shows anything,
//! and goes on only if it succeeded. `localStorage` writes are synchronous:
//! once `apply` returns, the batch survives a reload. Nothing is therefore
//! shown as sent, and nothing leaves the peer, before it is stored.
//!
//! # When storage is full
//!
//! Browsers give an origin a few megabytes of `localStorage`. A write that
//! does not fit fails with [`StorageError::Full`]; `apply` then undoes what
//! it had already written of the batch (keys it created are removed, values
//! it replaced or deleted are put back, last write first), so a failed
//! batch leaves storage as it was: no event without its room, no half-left
//! room. The driver must then not show the batch as sent, and should tell
//! the user to leave a chat (which deletes its history) or free space;
//! [`PeerStore::usage`] says how much p2pchat uses.
//!
//! # Nothing read can panic
//!
//! Storage is outside this program's control (another version, an
//! extension, a person with the developer tools may have written to it).
//! A profile that cannot be read is an error ([`StorageError::Corrupt`]),
//! never a reason to make a new identity silently. Any other entry that
//! cannot be decoded is skipped and counted in [`Loaded::skipped`], as are
//! the events and members of rooms that were not loaded. (A room whose
//! Chat ID the node cannot use is loaded; `Node::restore` skips it, as the
//! store contract of `p2pchat_core::store` says.)

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use p2pchat_core::clock::EventId;
use p2pchat_core::equivocation::digest;
use p2pchat_core::history::{Anchor, Event};
use p2pchat_core::{Identity, Loaded, PeerId, Record, RoomId};
use serde::{Deserialize, Serialize};

/// Every key this module reads or writes starts with this.
const PREFIX: &str = "p2pchat/v1/";
/// The user's [`Profile`].
const PROFILE_KEY: &str = "p2pchat/v1/profile";
/// The last join-order number handed out.
const ROOM_COUNTER_KEY: &str = "p2pchat/v1/room-counter";
/// Rooms, by room id.
const ROOM_PREFIX: &str = "p2pchat/v1/room/";
/// Events, by room, author and sequence number.
const EVENT_PREFIX: &str = "p2pchat/v1/ev/";
/// Members, by room and peer.
const MEMBER_PREFIX: &str = "p2pchat/v1/member/";
/// Versions kept off an author's main chain, by room and digest.
const VERSION_PREFIX: &str = "p2pchat/v1/version/";

/// A synchronous string key-value store: `localStorage` in the browser
/// (`LocalStorage`), a map in tests ([`MemoryStore`]).
pub trait KeyValue {
    /// The value under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<String>, StorageError>;
    /// Stores `value` under `key`, replacing any value there. A value that
    /// does not fit is refused with [`StorageError::Full`] and nothing is
    /// written.
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError>;
    /// Deletes `key`; deleting a key that is not there is not an error.
    fn remove(&mut self, key: &str) -> Result<(), StorageError>;
    /// Every key that starts with `prefix`.
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
}

/// Why browser storage could not be used. Every message is written for the
/// person using the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// There is no storage to use (no `window`, storage disabled or
    /// blocked by the browser's privacy settings), or it failed.
    #[error("browser storage is not available: {0}")]
    Unavailable(String),
    /// A write did not fit in the storage quota.
    #[error("browser storage is full: the change could not be saved; leave a chat or free space")]
    Full,
    /// Stored data that must be read could not be.
    #[error("browser storage holds damaged p2pchat data: {0}")]
    Corrupt(String),
}

/// An in-memory [`KeyValue`] over a `BTreeMap`, for tests and as a
/// fallback when the browser offers no storage (nothing then survives a
/// reload), with an optional byte quota to simulate a full storage.
///
/// The quota counts the bytes of every key and value held, like a
/// browser's quota counts an origin's `localStorage`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryStore {
    entries: std::collections::BTreeMap<String, String>,
    quota: Option<usize>,
    used: usize,
}

impl MemoryStore {
    /// An empty store that refuses, with [`StorageError::Full`], any write
    /// that would make its keys and values exceed `bytes` bytes.
    #[cfg(test)]
    pub fn with_quota(bytes: usize) -> Self {
        MemoryStore {
            quota: Some(bytes),
            ..MemoryStore::default()
        }
    }
}

/// What one entry costs against a quota.
fn entry_size(key: &str, value: &str) -> usize {
    key.len().saturating_add(value.len())
}

impl KeyValue for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        Ok(self.entries.get(key).cloned())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        let replaced = self.entries.get(key).map_or(0, |old| entry_size(key, old));
        let used = self
            .used
            .saturating_sub(replaced)
            .saturating_add(entry_size(key, value));
        if self.quota.is_some_and(|quota| used > quota) {
            return Err(StorageError::Full);
        }
        self.entries.insert(key.to_owned(), value.to_owned());
        self.used = used;
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<(), StorageError> {
        if let Some(old) = self.entries.remove(key) {
            self.used = self.used.saturating_sub(entry_size(key, &old));
        }
        Ok(())
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .entries
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, _)| key.clone())
            .collect())
    }
}

/// The page's `localStorage` (in the browser only).
///
/// An exception thrown by `setItem` is taken for `QuotaExceededError` and
/// reported as [`StorageError::Full`]; any other exception (from reading,
/// listing or removing) as [`StorageError::Unavailable`].
#[cfg(target_arch = "wasm32")]
#[derive(Debug, Clone)]
pub struct LocalStorage {
    storage: web_sys::Storage,
}

#[cfg(target_arch = "wasm32")]
impl LocalStorage {
    /// The page's `localStorage`, or [`StorageError::Unavailable`] saying
    /// why there is none (no window, storage disabled, access denied).
    pub fn open() -> Result<Self, StorageError> {
        let window = web_sys::window().ok_or_else(|| {
            StorageError::Unavailable("this page has no window to keep data in".to_owned())
        })?;
        match window.local_storage() {
            Ok(Some(storage)) => Ok(LocalStorage { storage }),
            Ok(None) => Err(StorageError::Unavailable(
                "this browser offers no localStorage".to_owned(),
            )),
            Err(error) => Err(unavailable(&error)),
        }
    }
}

/// A JavaScript exception as [`StorageError::Unavailable`].
#[cfg(target_arch = "wasm32")]
fn unavailable(error: &wasm_bindgen::JsValue) -> StorageError {
    StorageError::Unavailable(describe_js_error(error))
}

/// The name and message of a JavaScript exception (a `DOMException` or an
/// `Error`), or whatever can be said about another thrown value.
#[cfg(target_arch = "wasm32")]
fn describe_js_error(error: &wasm_bindgen::JsValue) -> String {
    if let Some(text) = error.as_string() {
        return text;
    }
    let field = |name: &str| {
        js_sys::Reflect::get(error, &wasm_bindgen::JsValue::from_str(name))
            .ok()
            .and_then(|value| value.as_string())
            .filter(|text| !text.is_empty())
    };
    match (field("name"), field("message")) {
        (Some(name), Some(message)) => format!("{name}: {message}"),
        (Some(text), None) | (None, Some(text)) => text,
        (None, None) => format!("{error:?}"),
    }
}

#[cfg(target_arch = "wasm32")]
impl KeyValue for LocalStorage {
    fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        self.storage.get_item(key).map_err(|e| unavailable(&e))
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        // setItem throws QuotaExceededError when the value does not fit;
        // access itself was checked when the storage was opened.
        self.storage
            .set_item(key, value)
            .map_err(|_| StorageError::Full)
    }

    fn remove(&mut self, key: &str) -> Result<(), StorageError> {
        self.storage.remove_item(key).map_err(|e| unavailable(&e))
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let len = self.storage.length().map_err(|e| unavailable(&e))?;
        let mut keys = Vec::new();
        for index in 0..len {
            if let Some(key) = self.storage.key(index).map_err(|e| unavailable(&e))? {
                if key.starts_with(prefix) {
                    keys.push(key);
                }
            }
        }
        Ok(keys)
    }
}

/// What the browser keeps about its user.
///
/// `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The display name.
    pub name: String,
    /// The 32 secret bytes of the identity key, in hex.
    pub secret: String,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("secret", &"<secret>")
            .finish()
    }
}

/// A room as stored: its place in the join order and its record.
#[derive(Deserialize)]
struct RoomEntry {
    order: u64,
    record: Record,
}

/// [`RoomEntry`] for writing, without copying the record.
#[derive(Serialize)]
struct RoomEntryRef<'a> {
    order: u64,
    record: &'a Record,
}

/// A member as stored.
#[derive(Serialize, Deserialize)]
struct MemberEntry {
    name: Option<String>,
    addr: SocketAddr,
}

/// What a batch has changed so far, to undo it: each key written or
/// deleted with the value it held before (`None`: there was none), in the
/// order of the changes.
type Journal = Vec<(String, Option<String>)>;

/// The peer's durable state over any KeyValue.
#[derive(Debug)]
pub struct PeerStore<K: KeyValue> {
    kv: K,
}

impl<K: KeyValue> PeerStore<K> {
    /// The state kept in `kv`.
    pub fn new(kv: K) -> Self {
        PeerStore { kv }
    }

    /// The key-value store underneath (for other entries, such as the tab
    /// lease).
    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// The key-value store underneath, mutably.
    pub fn kv_mut(&mut self) -> &mut K {
        &mut self.kv
    }

    /// The user's name and identity, or `None` if none was saved yet. A
    /// saved profile that cannot be read is [`StorageError::Corrupt`]: the
    /// caller must not make a new identity over it silently.
    pub fn profile(&self) -> Result<Option<(String, Identity)>, StorageError> {
        let Some(json) = self.kv.get(PROFILE_KEY)? else {
            return Ok(None);
        };
        let profile: Profile = serde_json::from_str(&json).map_err(|e| {
            StorageError::Corrupt(format!("the saved profile is not readable: {e}"))
        })?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(profile.secret.as_bytes(), &mut secret).map_err(|_| {
            StorageError::Corrupt(
                "the saved identity key is not 32 bytes written in hex".to_owned(),
            )
        })?;
        Ok(Some((profile.name, Identity::from_secret_bytes(&secret))))
    }

    /// Saves the user's name and identity, replacing any saved before.
    pub fn save_profile(&mut self, name: &str, identity: &Identity) -> Result<(), StorageError> {
        let secret = identity.secret_bytes();
        let profile = Profile {
            name: name.to_owned(),
            secret: hex::encode(secret.as_slice()),
        };
        self.kv.set(PROFILE_KEY, &to_json(&profile)?)
    }

    /// Reads the per-room entries among `keys` (pairs of the full key and
    /// its `room/rest` part after the prefix): the loaded room's index, the
    /// rest, and the JSON. Entries of rooms not in `index`, or with no `/`,
    /// are counted in `skipped`.
    fn room_entries<'k>(
        &self,
        keys: &[(&str, &'k str)],
        index: &HashMap<String, usize>,
        skipped: &mut usize,
    ) -> Result<Vec<(usize, &'k str, String)>, StorageError> {
        let mut out = Vec::with_capacity(keys.len());
        for &(key, rest) in keys {
            let Some((room_hex, tail)) = rest.split_once('/') else {
                *skipped += 1;
                continue;
            };
            let Some(&i) = index.get(room_hex) else {
                *skipped += 1;
                continue;
            };
            if let Some(json) = self.kv.get(key)? {
                out.push((i, tail, json));
            }
        }
        Ok(out)
    }

    /// Everything to rebuild the node, in an order
    /// [`p2pchat_core::Node::restore`] accepts: the rooms in the order they
    /// were joined, then each room's events in canonical order (Lamport
    /// time, then author, then sequence number), then each room's members
    /// (by peer id).
    ///
    /// Rooms joined at the same place (possible only if storage was edited)
    /// go by room id. Skipped and counted in [`Loaded::skipped`] are:
    /// entries that are not JSON of the right shape, entries whose contents
    /// do not match their key, rooms whose Chat ID does not parse or names
    /// another room, and the events and members of rooms not loaded.
    /// Storage is only read here, never repaired.
    pub fn load(&self) -> Result<Loaded, StorageError> {
        self.read(false)
    }

    /// Every record kept here, as [`PeerStore::load`] gives them but with
    /// the events' tokens: what moves to IndexedDB
    /// ([`crate::database`]) the first time a page that has it opens.
    pub fn records_to_move(&self) -> Result<Loaded, StorageError> {
        self.read(true)
    }

    /// Deletes every record kept here (not the profile): once they are in
    /// IndexedDB, `localStorage` keeps only the profile and the tab lease.
    pub fn erase_records(&mut self) -> Result<(), StorageError> {
        for prefix in [ROOM_PREFIX, EVENT_PREFIX, MEMBER_PREFIX, VERSION_PREFIX] {
            for key in self.kv.keys_with_prefix(prefix)? {
                self.kv.remove(&key)?;
            }
        }
        self.kv.remove(ROOM_COUNTER_KEY)
    }

    fn read(&self, with_tokens: bool) -> Result<Loaded, StorageError> {
        let mut keys = self.kv.keys_with_prefix(PREFIX)?;
        keys.sort_unstable();
        let mut skipped = 0;

        let mut rooms: Vec<(u64, RoomId, Record)> = Vec::new();
        let mut event_keys: Vec<(&str, &str)> = Vec::new();
        let mut member_keys: Vec<(&str, &str)> = Vec::new();
        let mut version_keys: Vec<(&str, &str)> = Vec::new();
        for key in &keys {
            if let Some(rest) = key.strip_prefix(ROOM_PREFIX) {
                let Some(json) = self.kv.get(key)? else {
                    continue;
                };
                match decode_room(rest, &json) {
                    Some(room) => rooms.push(room),
                    None => skipped += 1,
                }
            } else if let Some(rest) = key.strip_prefix(EVENT_PREFIX) {
                event_keys.push((key, rest));
            } else if let Some(rest) = key.strip_prefix(MEMBER_PREFIX) {
                member_keys.push((key, rest));
            } else if let Some(rest) = key.strip_prefix(VERSION_PREFIX) {
                version_keys.push((key, rest));
            }
        }
        rooms.sort_by_key(|(order, room, _)| (*order, *room));
        let index: HashMap<String, usize> = rooms
            .iter()
            .enumerate()
            .map(|(i, (_, room, _))| (room.to_string(), i))
            .collect();

        let mut events: Vec<Vec<Event>> = vec![Vec::new(); rooms.len()];
        for (i, id, json) in self.room_entries(&event_keys, &index, &mut skipped)? {
            match decode_event(id, &json) {
                Some(event) => events[i].push(event),
                None => skipped += 1,
            }
        }

        let mut versions: Vec<Vec<Event>> = vec![Vec::new(); rooms.len()];
        for (i, digest_hex, json) in self.room_entries(&version_keys, &index, &mut skipped)? {
            match decode_version(digest_hex, &json) {
                Some(event) => versions[i].push(event),
                None => skipped += 1,
            }
        }

        let mut members: Vec<Vec<Record>> = vec![Vec::new(); rooms.len()];
        for (i, peer_hex, json) in self.room_entries(&member_keys, &index, &mut skipped)? {
            match decode_member(rooms[i].1, peer_hex, &json) {
                Some(member) => members[i].push(member),
                None => skipped += 1,
            }
        }

        let mut records = Vec::with_capacity(
            rooms.len()
                + events.iter().map(Vec::len).sum::<usize>()
                + members.iter().map(Vec::len).sum::<usize>(),
        );
        let ids: Vec<RoomId> = rooms.iter().map(|(_, room, _)| *room).collect();
        records.extend(rooms.into_iter().map(|(_, _, record)| record));
        for (room, mut list) in ids.iter().zip(events) {
            list.sort_by_key(Event::key);
            records.extend(list.into_iter().map(|event| Record::Event {
                room: *room,
                event: if with_tokens {
                    event
                } else {
                    Loaded::without_token(event)
                },
            }));
        }
        for (room, mut list) in ids.iter().zip(versions) {
            list.sort_by_key(|e| (e.id, digest(e)));
            records.extend(
                list.into_iter()
                    .map(|event| Record::Version { room: *room, event }),
            );
        }
        records.extend(members.into_iter().flatten());
        Ok(Loaded { records, skipped })
    }

    /// The tokens of the events stored under `events` in `room`, in order
    /// (`None` for one it does not hold or cannot decode): the engine reads
    /// them back to send events on.
    pub fn tokens(
        &self,
        room: &RoomId,
        events: &[EventId],
    ) -> Result<Vec<Option<String>>, StorageError> {
        /// The one field read from an event's entry.
        #[derive(serde::Deserialize)]
        struct Token {
            token: String,
        }
        events
            .iter()
            .map(|id| {
                let json = self.kv.get(&event_key(room, &id.author, id.seq))?;
                Ok(json.and_then(|j| serde_json::from_str::<Token>(&j).ok().map(|t| t.token)))
            })
            .collect()
    }

    /// `author`'s events in `room` numbered `from` on (0 counts as 1), in
    /// order, at most `limit`, stopping before the first number not held
    /// (or not readable), without their tokens.
    pub fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let mut out = Vec::new();
        let mut seq = from.max(1);
        while out.len() < limit {
            let Some(json) = self.kv.get(&event_key(room, author, seq))? else {
                break;
            };
            let Some(event) = decode_event(&event_id_part(author, seq), &json) else {
                break;
            };
            out.push(Loaded::without_token(event));
            let Some(next) = seq.checked_add(1) else {
                break;
            };
            seq = next;
        }
        Ok(out)
    }

    /// At most `limit` of `room`'s events next to `anchor`, in canonical
    /// order (oldest first), without their tokens. `localStorage` has no
    /// index: this reads every event of the room, which its quota keeps to
    /// a few thousand (IndexedDB, [`crate::database`], reads pages from an
    /// index).
    pub fn page(
        &self,
        room: &RoomId,
        anchor: Anchor,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let prefix = events_prefix(room);
        let mut events = Vec::new();
        for key in self.kv.keys_with_prefix(&prefix)? {
            let Some(id) = key.strip_prefix(&prefix) else {
                continue;
            };
            let Some(json) = self.kv.get(&key)? else {
                continue;
            };
            if let Some(event) = decode_event(id, &json) {
                events.push(event);
            }
        }
        events.sort_by_key(Event::key);
        let page = match anchor {
            Anchor::Newest => &events[events.len().saturating_sub(limit)..],
            Anchor::Before(key) => {
                let end = events.partition_point(|e| e.key() < key);
                &events[end.saturating_sub(limit)..end]
            }
            Anchor::After(key) => {
                let start = events.partition_point(|e| e.key() <= key);
                &events[start..events.len().min(start.saturating_add(limit))]
            }
        };
        Ok(page.iter().cloned().map(Loaded::without_token).collect())
    }

    /// Persists a batch of records drained from
    /// [`p2pchat_core::Node::poll_record`]; call it before transmitting or
    /// showing anything of the batch.
    ///
    /// - `Room`: stored; a room stored again keeps its place in the join
    ///   order and takes the new record.
    /// - `Event`: stored, unless the event is stored already (a stored
    ///   value that cannot be read is replaced).
    /// - `Member`: stored or updated; a `None` name keeps the stored name.
    /// - `Left`: the room, its events and its members are deleted.
    ///
    /// If a write fails midway ([`StorageError::Full`], or any other
    /// error), what the batch already changed is undone, last change first
    /// (keys it created are removed, values it replaced or deleted are put
    /// back; best effort), and the error is returned: a failed batch leaves
    /// storage as it was.
    pub fn apply(&mut self, records: &[Record]) -> Result<(), StorageError> {
        let mut journal = Journal::new();
        for record in records {
            if let Err(error) = self.apply_one(record, &mut journal) {
                self.undo(journal);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Bytes used by p2pchat's keys (the sum of the lengths of every key
    /// and value, in UTF-8).
    #[cfg(test)]
    fn usage(&self) -> Result<usize, StorageError> {
        let mut total = 0usize;
        for key in self.kv.keys_with_prefix(PREFIX)? {
            if let Some(value) = self.kv.get(&key)? {
                total = total.saturating_add(entry_size(&key, &value));
            }
        }
        Ok(total)
    }

    fn apply_one(&mut self, record: &Record, journal: &mut Journal) -> Result<(), StorageError> {
        match record {
            Record::Room { room, .. } => {
                let key = room_key(room);
                let old = self.kv.get(&key)?;
                let stored = old
                    .as_deref()
                    .and_then(|json| serde_json::from_str::<RoomEntry>(json).ok());
                let order = match stored {
                    Some(entry) => entry.order,
                    None => self.next_room_order(journal)?,
                };
                let value = to_json(&RoomEntryRef { order, record })?;
                if old.as_deref() != Some(value.as_str()) {
                    self.put(journal, key, old, &value)?;
                }
            }
            Record::Event { room, event } => {
                let key = event_key(room, &event.id.author, event.id.seq);
                let old = self.kv.get(&key)?;
                let stored = old
                    .as_deref()
                    .and_then(|json| serde_json::from_str::<Event>(json).ok());
                if stored.is_some_and(|stored| stored.id == event.id) {
                    return Ok(());
                }
                let value = to_json(event)?;
                self.put(journal, key, old, &value)?;
            }
            Record::Version { room, event } => {
                let key = format!(
                    "{VERSION_PREFIX}{room}/{}",
                    hex::encode(digest(event).as_bytes())
                );
                if self.kv.get(&key)?.is_some() {
                    return Ok(());
                }
                let value = to_json(event)?;
                self.put(journal, key, None, &value)?;
            }
            Record::Member {
                room,
                peer,
                name,
                addr,
            } => {
                let key = member_key(room, peer);
                let old = self.kv.get(&key)?;
                let name = match name {
                    Some(name) => Some(name.clone()),
                    None => old
                        .as_deref()
                        .and_then(|json| serde_json::from_str::<MemberEntry>(json).ok())
                        .and_then(|entry| entry.name),
                };
                let value = to_json(&MemberEntry { name, addr: *addr })?;
                if old.as_deref() != Some(value.as_str()) {
                    self.put(journal, key, old, &value)?;
                }
            }
            // Rule 7 lets a store leave checkpoints out: the browser's
            // node keeps whole histories and never writes one.
            Record::Checkpoint { .. } => {}
            Record::Left { room } => {
                // Events and members first, the room last: if the page dies
                // halfway the room is still there, and leaving it again
                // removes the rest (no orphans that nothing ever deletes).
                let mut doomed = self.kv.keys_with_prefix(&events_prefix(room))?;
                doomed.extend(
                    self.kv
                        .keys_with_prefix(&format!("{VERSION_PREFIX}{room}/"))?,
                );
                doomed.extend(self.kv.keys_with_prefix(&members_prefix(room))?);
                doomed.push(room_key(room));
                for key in doomed {
                    self.delete(journal, key)?;
                }
            }
        }
        Ok(())
    }

    /// The join-order number for a room stored for the first time, written
    /// back to the counter. A lost or damaged counter cannot put a new room
    /// before the rooms already stored: the number is also past theirs.
    fn next_room_order(&mut self, journal: &mut Journal) -> Result<u64, StorageError> {
        let old = self.kv.get(ROOM_COUNTER_KEY)?;
        let mut highest = old
            .as_deref()
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0);
        for key in self.kv.keys_with_prefix(ROOM_PREFIX)? {
            let order = self
                .kv
                .get(&key)?
                .and_then(|json| serde_json::from_str::<RoomEntry>(&json).ok())
                .map(|entry| entry.order);
            if let Some(order) = order {
                highest = highest.max(order);
            }
        }
        let next = highest.saturating_add(1);
        self.put(journal, ROOM_COUNTER_KEY.to_owned(), old, &next.to_string())?;
        Ok(next)
    }

    /// Writes `value` under `key`, which held `old`, and journals it.
    fn put(
        &mut self,
        journal: &mut Journal,
        key: String,
        old: Option<String>,
        value: &str,
    ) -> Result<(), StorageError> {
        self.kv.set(&key, value)?;
        journal.push((key, old));
        Ok(())
    }

    /// Deletes `key`, if it is there, and journals its value.
    fn delete(&mut self, journal: &mut Journal, key: String) -> Result<(), StorageError> {
        let Some(old) = self.kv.get(&key)? else {
            return Ok(());
        };
        self.kv.remove(&key)?;
        journal.push((key, Some(old)));
        Ok(())
    }

    /// Undoes a failed batch's changes, last first. Each step returns a key
    /// to the value it held just before the change being undone, when the
    /// store as a whole fitted, so it fits again; a step that fails anyway
    /// is passed over (best effort).
    fn undo(&mut self, journal: Journal) {
        for (key, old) in journal.into_iter().rev() {
            let _ = match old {
                Some(value) => self.kv.set(&key, &value),
                None => self.kv.remove(&key),
            };
        }
    }
}

/// The store contract of `p2pchat_core::store`, which this store keeps
/// (checked by core's conformance suite, over memory and over the
/// browser's `localStorage`, in the tests below).
impl<K: KeyValue> p2pchat_core::Store for PeerStore<K> {
    type Error = StorageError;

    fn apply(&mut self, batch: &[Record]) -> Result<(), StorageError> {
        PeerStore::apply(self, batch)
    }

    fn load(&self) -> Result<Loaded, StorageError> {
        PeerStore::load(self)
    }

    fn tokens(
        &self,
        room: &RoomId,
        events: &[EventId],
    ) -> Result<Vec<Option<String>>, StorageError> {
        PeerStore::tokens(self, room, events)
    }

    fn chain(
        &self,
        room: &RoomId,
        author: &PeerId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        PeerStore::chain(self, room, author, from, limit)
    }

    fn page(
        &self,
        room: &RoomId,
        anchor: Anchor,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        PeerStore::page(self, room, anchor, limit)
    }
}

/// `value` as JSON.
fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value)
        .map_err(|e| StorageError::Corrupt(format!("could not encode data for storage: {e}")))
}

/// The key of `room`.
fn room_key(room: &RoomId) -> String {
    format!("{ROOM_PREFIX}{room}")
}

/// The prefix of every event key of `room`.
fn events_prefix(room: &RoomId) -> String {
    format!("{EVENT_PREFIX}{room}/")
}

/// The key of event `seq` of `author` in `room`.
fn event_key(room: &RoomId, author: &PeerId, seq: u64) -> String {
    format!("{EVENT_PREFIX}{room}/{}", event_id_part(author, seq))
}

/// The part of an event key after the room: `<author hex>/<seq>`.
fn event_id_part(author: &PeerId, seq: u64) -> String {
    format!("{author}/{seq:020}")
}

/// The prefix of every member key of `room`.
fn members_prefix(room: &RoomId) -> String {
    format!("{MEMBER_PREFIX}{room}/")
}

/// The key of member `peer` of `room`.
fn member_key(room: &RoomId, peer: &PeerId) -> String {
    format!("{MEMBER_PREFIX}{room}/{peer}")
}

/// A stored room (`room_hex`: its key after the prefix), if it is a room
/// record for that very room. (Its Chat ID is checked by the node when it
/// restores, which skips a room it cannot use.)
fn decode_room(room_hex: &str, json: &str) -> Option<(u64, RoomId, Record)> {
    let entry: RoomEntry = serde_json::from_str(json).ok()?;
    let Record::Room { room, .. } = &entry.record else {
        return None;
    };
    if room.to_string() != room_hex {
        return None;
    }
    Some((entry.order, *room, entry.record))
}

/// A stored event (`id`: its key after the room, `<author hex>/<seq>`), if
/// it is the event its key names.
fn decode_event(id: &str, json: &str) -> Option<Event> {
    let event: Event = serde_json::from_str(json).ok()?;
    (event_id_part(&event.id.author, event.id.seq) == id).then_some(event)
}

/// A stored version (`digest_hex`: its key after the room).
fn decode_version(digest_hex: &str, json: &str) -> Option<Event> {
    let event: Event = serde_json::from_str(json).ok()?;
    (hex::encode(digest(&event).as_bytes()) == digest_hex).then_some(event)
}

/// A stored member of `room` (`peer_hex`: its key after the room).
fn decode_member(room: RoomId, peer_hex: &str, json: &str) -> Option<Record> {
    let peer: PeerId = peer_hex.parse().ok()?;
    let entry: MemberEntry = serde_json::from_str(json).ok()?;
    Some(Record::Member {
        room,
        peer,
        name: entry.name,
        addr: entry.addr,
    })
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::net::SocketAddr;

    use p2pchat_core::clock::EventId;
    use p2pchat_core::history::{Body, Event};
    use p2pchat_core::{
        ChatId, Config, Identity, Loaded, Node, Output, PeerId, Record, RoomId, RoomKey, RoomName,
        UserName,
    };

    use super::{
        event_key, KeyValue, MemoryStore, PeerStore, Profile, StorageError, EVENT_PREFIX,
        MEMBER_PREFIX, PROFILE_KEY, ROOM_PREFIX,
    };

    const NOW: u64 = 1_700_000_000_000;

    fn alice() -> Node {
        Node::new(
            Identity::from_secret_bytes(&[1; 32]),
            UserName::new("alice").unwrap(),
            Config::default(),
            [0; 32],
        )
    }

    /// The records the node asks to store, each batch confirmed.
    fn drain(node: &mut Node) -> Vec<Record> {
        let mut records = Vec::new();
        loop {
            match node.poll_output() {
                Output::Persist(p) => {
                    records.extend(p.records);
                    node.stored(p.batch);
                }
                Output::Timeout(_) => return records,
                Output::Transmit(_) | Output::Event(_) | Output::Read(_) => {}
            }
        }
    }

    fn peer(n: u8) -> PeerId {
        Identity::from_secret_bytes(&[n; 32]).peer_id()
    }

    fn room_record(n: u8) -> (RoomId, Record) {
        let room = RoomId::from_bytes([n; 16]);
        let chat_id = ChatId::without_bootstrap(
            room,
            RoomKey::from_bytes([n; 32]),
            RoomName::new(&format!("room{n}")).unwrap(),
        );
        let record = Record::Room {
            room,
            chat_id: chat_id.to_string(),
            created: false,
        };
        (room, record)
    }

    fn event(author: PeerId, seq: u64, lamport: u64, token: &str) -> Event {
        Event {
            id: EventId::new(author, seq),
            lamport,
            deps: Vec::new(),
            time: NOW,
            name: "someone".to_owned(),
            body: Body::Text {
                text: format!("{seq}@{lamport}"),
            },
            token: token.to_owned(),
            floor: 0,
            token_len: 0,
            prev: None,
            refs: Vec::new(),
            digest: Default::default(),
        }
    }

    fn member(room: RoomId, peer: PeerId, name: Option<&str>, port: u16) -> Record {
        Record::Member {
            room,
            peer,
            name: name.map(str::to_owned),
            addr: SocketAddr::from(([192, 0, 2, 1], port)),
        }
    }

    fn room_keys(store: &PeerStore<MemoryStore>, room: &RoomId) -> Vec<String> {
        let mut keys = Vec::new();
        for prefix in [EVENT_PREFIX, MEMBER_PREFIX, ROOM_PREFIX] {
            keys.extend(
                store
                    .kv
                    .keys_with_prefix(&format!("{prefix}{room}"))
                    .unwrap(),
            );
        }
        keys
    }

    /// Fails the `fail_on`-th write (counting from 1) with Unavailable.
    struct Flaky {
        inner: MemoryStore,
        writes: usize,
        fail_on: usize,
    }

    impl KeyValue for Flaky {
        fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
            self.inner.get(key)
        }
        fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
            self.writes += 1;
            if self.writes == self.fail_on {
                return Err(StorageError::Unavailable("unplugged".to_owned()));
            }
            self.inner.set(key, value)
        }
        fn remove(&mut self, key: &str) -> Result<(), StorageError> {
            self.inner.remove(key)
        }
        fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
            self.inner.keys_with_prefix(prefix)
        }
    }

    #[test]
    fn records_move_out_with_their_tokens_and_the_profile_stays() {
        let mut store = PeerStore::new(MemoryStore::default());
        let identity = Identity::from_secret_bytes(&[5; 32]);
        store.save_profile("dora", &identity).unwrap();
        store.kv_mut().set("p2pchat/v1/tab", "lease").unwrap();
        let (room, record) = room_record(1);
        let a1 = event(peer(1), 1, 1, "token-1");
        let a2 = event(peer(1), 2, 2, "token-2");
        store
            .apply(&[
                record,
                Record::Event {
                    room,
                    event: a2.clone(),
                },
                Record::Event {
                    room,
                    event: a1.clone(),
                },
                member(room, peer(2), Some("x"), 1),
            ])
            .unwrap();
        let moving = store.records_to_move().unwrap();
        let events: Vec<&Event> = moving
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Event { event, .. } => Some(event),
                _ => None,
            })
            .collect();
        assert_eq!(events, vec![&a1, &a2], "whole events, tokens too, in order");
        assert_eq!(moving.records.len(), store.load().unwrap().records.len());
        store.erase_records().unwrap();
        assert!(store.load().unwrap().records.is_empty(), "no record left");
        assert_eq!(
            store.profile().unwrap().map(|(name, _)| name).as_deref(),
            Some("dora")
        );
        assert_eq!(
            store.kv().get("p2pchat/v1/tab").unwrap().as_deref(),
            Some("lease")
        );
        assert_eq!(store.kv().keys_with_prefix(super::PREFIX).unwrap().len(), 2);
    }

    #[test]
    fn profile_is_saved_and_read_back() {
        let mut store = PeerStore::new(MemoryStore::default());
        assert!(store.profile().unwrap().is_none());
        let identity = Identity::from_secret_bytes(&[7; 32]);
        store.save_profile("alice", &identity).unwrap();
        let (name, read) = store.profile().unwrap().unwrap();
        assert_eq!(name, "alice");
        assert_eq!(read.peer_id(), identity.peer_id());
        assert_eq!(*read.secret_bytes(), [7; 32]);

        store
            .save_profile("alicia", &Identity::from_secret_bytes(&[8; 32]))
            .unwrap();
        let (name, read) = store.profile().unwrap().unwrap();
        assert_eq!(name, "alicia");
        assert_eq!(*read.secret_bytes(), [8; 32]);
    }

    #[test]
    fn a_damaged_profile_is_an_error_not_a_new_identity() {
        let short = format!(r#"{{"name":"a","secret":"{}"}}"#, "ab".repeat(31));
        let long = format!(r#"{{"name":"a","secret":"{}"}}"#, "ab".repeat(33));
        let not_hex = format!(r#"{{"name":"a","secret":"{}"}}"#, "zz".repeat(32));
        for bad in [
            "not json",
            r#"{"name":"a"}"#,
            r#"{"name":"a","secret":42}"#,
            short.as_str(),
            long.as_str(),
            not_hex.as_str(),
        ] {
            let mut kv = MemoryStore::default();
            kv.set(PROFILE_KEY, bad).unwrap();
            let store = PeerStore::new(kv);
            assert!(
                matches!(store.profile(), Err(StorageError::Corrupt(_))),
                "{bad}"
            );
            // Still there: nothing was replaced.
            assert_eq!(store.kv.get(PROFILE_KEY).unwrap().as_deref(), Some(bad));
        }
    }

    #[test]
    fn profile_debug_hides_the_secret() {
        let profile = Profile {
            name: "alice".to_owned(),
            secret: "ab".repeat(32),
        };
        let shown = format!("{profile:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("abab"));
    }

    #[test]
    fn keeps_the_store_contract() {
        p2pchat_core::store::conformance::check_all(|| PeerStore::new(MemoryStore::default()));
    }

    /// The same contract over the browser's own storage (each check starts
    /// from a `localStorage` without p2pchat's keys).
    #[cfg(target_arch = "wasm32")]
    #[test]
    fn local_storage_keeps_the_store_contract() {
        let Ok(_) = super::LocalStorage::open() else {
            return;
        };
        p2pchat_core::store::conformance::check_all(|| {
            let mut kv = super::LocalStorage::open().unwrap();
            for key in kv.keys_with_prefix(super::PREFIX).unwrap() {
                kv.remove(&key).unwrap();
            }
            PeerStore::new(kv)
        });
    }

    #[test]
    fn rooms_load_in_join_order_and_keep_their_place() {
        let (late_id, late) = room_record(9);
        let (early_id, early) = room_record(1);
        let (third_id, third) = room_record(5);
        let mut store = PeerStore::new(MemoryStore::default());
        store.apply(std::slice::from_ref(&late)).unwrap();
        store.apply(&[early.clone(), third.clone()]).unwrap();
        // Stored again (same record, or a new one): the place is kept.
        store.apply(std::slice::from_ref(&late)).unwrap();
        let mut renewed = late.clone();
        if let Record::Room { created, .. } = &mut renewed {
            *created = true;
        }
        store.apply(std::slice::from_ref(&renewed)).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.records, vec![renewed, early.clone(), third.clone()]);

        // Left and joined again: last.
        store.apply(&[Record::Left { room: late_id }]).unwrap();
        store.apply(std::slice::from_ref(&late)).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.records, vec![early, third, late]);

        // A lost counter does not put a new room first.
        store.kv.remove(super::ROOM_COUNTER_KEY).unwrap();
        let (newest_id, newest) = room_record(0);
        store.apply(&[newest]).unwrap();
        let order: Vec<RoomId> = store
            .load()
            .unwrap()
            .records
            .iter()
            .map(|r| match r {
                Record::Room { room, .. } => *room,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(order, vec![early_id, third_id, late_id, newest_id]);
    }

    #[test]
    fn leaving_removes_the_room_its_events_and_members() {
        let (gone, gone_record) = room_record(1);
        let (kept, kept_record) = room_record(2);
        let mut store = PeerStore::new(MemoryStore::default());
        let mut batch = vec![gone_record, kept_record.clone()];
        for room in [gone, kept] {
            batch.push(Record::Event {
                room,
                event: event(peer(3), 1, 1, "x"),
            });
            batch.push(Record::Event {
                room,
                event: event(peer(3), 2, 2, "y"),
            });
            batch.push(member(room, peer(3), Some("carol"), 1000));
        }
        store.apply(&batch).unwrap();
        assert_eq!(room_keys(&store, &gone).len(), 4);

        store.apply(&[Record::Left { room: gone }]).unwrap();
        assert!(room_keys(&store, &gone).is_empty());
        assert_eq!(room_keys(&store, &kept).len(), 4);
        let loaded = store.load().unwrap();
        assert_eq!(loaded.skipped, 0);
        assert_eq!(loaded.records.len(), 4);
        assert_eq!(loaded.records[0], kept_record);

        // Leaving a room that is not stored changes nothing.
        let before = store.kv.clone();
        store.apply(&[Record::Left { room: gone }]).unwrap();
        assert_eq!(store.kv, before);
    }

    #[test]
    fn a_batch_that_does_not_fit_leaves_storage_as_it_was() {
        let mut node = alice();
        let general = *node.create_room(NOW, "general").unwrap().room_id();
        node.send_text(NOW + 1, &general, "first").unwrap();
        let first = drain(&mut node);

        let random = *node.create_room(NOW + 2, "random").unwrap().room_id();
        node.send_text(NOW + 3, &general, "second").unwrap();
        node.send_text(NOW + 4, &random, "third").unwrap();
        let mut second = drain(&mut node);
        second.push(member(general, peer(2), Some("bob"), 1000));
        second.push(Record::Left { room: general });
        // Joined again: a new place in the join order.
        second.push(first[0].clone());
        assert!(second.len() >= 6);

        let mut unlimited = PeerStore::new(MemoryStore::default());
        unlimited.apply(&first).unwrap();
        let after_first = unlimited.usage().unwrap();
        // Not a bound on usage: the batch may shrink it (Left), so the
        // highest usage during the batch is what must fit.
        let mut peak = after_first;
        for record in &second {
            unlimited.apply(std::slice::from_ref(record)).unwrap();
            peak = peak.max(unlimited.usage().unwrap());
        }
        assert!(peak > after_first);

        let mut failures = 0;
        for quota in after_first..peak {
            let mut store = PeerStore::new(MemoryStore::with_quota(quota));
            store.apply(&first).unwrap();
            let before = store.kv.clone();
            assert_eq!(store.apply(&second), Err(StorageError::Full), "{quota}");
            assert_eq!(store.kv, before, "quota {quota}");
            failures += 1;
        }
        assert!(failures > 0);

        // At the peak it fits.
        let mut store = PeerStore::new(MemoryStore::with_quota(peak));
        store.apply(&first).unwrap();
        store.apply(&second).unwrap();
    }

    #[test]
    fn a_failed_batch_puts_back_what_it_removed_and_replaced() {
        let (gone, gone_record) = room_record(1);
        let (kept, kept_record) = room_record(2);
        let setup = vec![
            gone_record,
            kept_record,
            Record::Event {
                room: gone,
                event: event(peer(3), 1, 1, "x"),
            },
            member(gone, peer(3), Some("carol"), 1000),
            member(kept, peer(3), Some("carol"), 1000),
        ];
        let batch = vec![
            Record::Left { room: gone },
            member(kept, peer(3), None, 2000),
            Record::Event {
                room: kept,
                event: event(peer(3), 1, 1, "y"),
            },
        ];
        // Fail the batch's first write, then its second.
        for fail_on in 1..=2 {
            let mut store = PeerStore::new(Flaky {
                inner: MemoryStore::default(),
                writes: 0,
                fail_on: usize::MAX,
            });
            store.apply(&setup).unwrap();
            let before = store.kv.inner.clone();
            store.kv.writes = 0;
            store.kv.fail_on = fail_on;
            assert_eq!(
                store.apply(&batch),
                Err(StorageError::Unavailable("unplugged".to_owned()))
            );
            assert_eq!(store.kv.inner, before, "failing write {fail_on}");
        }
    }

    #[test]
    fn damaged_entries_are_skipped_and_counted() {
        let (room, record) = room_record(1);
        let (other, other_record) = room_record(2);
        let good = event(peer(3), 1, 1, "x");
        let mut store = PeerStore::new(MemoryStore::default());
        store
            .apply(&[
                record.clone(),
                Record::Event {
                    room,
                    event: good.clone(),
                },
                member(room, peer(3), Some("carol"), 1000),
            ])
            .unwrap();
        let kv = &mut store.kv;
        let event_json = serde_json::to_string(&good).unwrap();
        // Not JSON, or not an event.
        kv.set(&event_key(&room, &peer(3), 2), "{not json").unwrap();
        kv.set(&event_key(&room, &peer(3), 3), r#"{"record":"left"}"#)
            .unwrap();
        // An event under another event's key.
        kv.set(&event_key(&room, &peer(3), 4), &event_json).unwrap();
        kv.set(&event_key(&room, &peer(4), 1), &event_json).unwrap();
        // Keys that name nothing.
        kv.set(&format!("{EVENT_PREFIX}{room}"), &event_json)
            .unwrap();
        kv.set(&format!("{EVENT_PREFIX}{room}/x/1"), &event_json)
            .unwrap();
        // An event of a room that is not stored.
        kv.set(&event_key(&other, &peer(3), 1), &event_json)
            .unwrap();
        // Members: bad JSON, a peer id that is not one, no room.
        kv.set(&format!("{MEMBER_PREFIX}{room}/{}", peer(4)), "[]")
            .unwrap();
        let not_a_key = peer(4).to_string().to_uppercase();
        kv.set(
            &format!("{MEMBER_PREFIX}{room}/{not_a_key}"),
            r#"{"name":null,"addr":"192.0.2.1:1"}"#,
        )
        .unwrap();
        kv.set(
            &format!("{MEMBER_PREFIX}{other}/{}", peer(4)),
            r#"{"name":null,"addr":"192.0.2.1:1"}"#,
        )
        .unwrap();
        // Rooms: bad JSON, a bad Chat ID, another room's Chat ID, a record
        // under another room's key, a record that is not a room. The two
        // with a Chat ID the node cannot use are loaded: the node skips them.
        let Record::Room { chat_id, .. } = &other_record else {
            unreachable!()
        };
        let rooms = [
            (RoomId::from_bytes([5; 16]), "{".to_owned()),
            (
                RoomId::from_bytes([6; 16]),
                format!(
                    r#"{{"order":9,"record":{{"record":"room","room":"{}","chat_id":"p2pchat:nonsense","created":true}}}}"#,
                    RoomId::from_bytes([6; 16])
                ),
            ),
            (
                RoomId::from_bytes([7; 16]),
                format!(
                    r#"{{"order":9,"record":{{"record":"room","room":"{}","chat_id":"{chat_id}","created":true}}}}"#,
                    RoomId::from_bytes([7; 16])
                ),
            ),
            (
                RoomId::from_bytes([8; 16]),
                format!(
                    r#"{{"order":9,"record":{{"record":"room","room":"{other}","chat_id":"{chat_id}","created":true}}}}"#
                ),
            ),
            (
                RoomId::from_bytes([9; 16]),
                format!(r#"{{"order":9,"record":{{"record":"left","room":"{other}"}}}}"#),
            ),
        ];
        for (id, json) in &rooms {
            kv.set(&format!("{ROOM_PREFIX}{id}"), json).unwrap();
        }
        // Keys of no known kind under the prefix are not counted.
        kv.set("p2pchat/v1/future-thing", "whatever").unwrap();
        kv.set("p2pchat/v1/room-counter", "not a number").unwrap();

        let loaded = store.load().unwrap();
        // Events: six damaged, one of a room not stored; members: two
        // damaged, one of a room not stored; rooms: three.
        assert_eq!(loaded.skipped, 7 + 3 + 3);
        let unusable: Vec<RoomId> = [6, 7].map(|n| RoomId::from_bytes([n; 16])).to_vec();
        assert_eq!(
            loaded
                .records
                .iter()
                .filter(|r| !unusable.contains(r.room()))
                .cloned()
                .collect::<Vec<_>>(),
            vec![
                record,
                Record::Event {
                    room,
                    event: Loaded::without_token(good.clone())
                },
                member(room, peer(3), Some("carol"), 1000),
            ]
        );
        let (node, skipped) = Node::restore(
            Identity::from_secret_bytes(&[1; 32]),
            UserName::new("alice").unwrap(),
            Config::default(),
            [0; 32],
            NOW,
            loaded.records,
        );
        assert_eq!(skipped, 2, "the rooms with unusable Chat IDs");
        assert_eq!(node.rooms().count(), 1);

        // Storing an event over a damaged copy repairs it.
        let second = event(peer(3), 2, 2, "y");
        store
            .apply(&[Record::Event {
                room,
                event: second.clone(),
            }])
            .unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.skipped, 6 + 3 + 3);
        assert!(loaded.records.contains(&Record::Event {
            room,
            event: Loaded::without_token(second)
        }));
    }

    #[test]
    fn memory_store_keeps_to_its_quota() {
        let mut kv = MemoryStore::with_quota(10);
        kv.set("a", "123456789").unwrap();
        assert_eq!(kv.set("b", ""), Err(StorageError::Full));
        assert_eq!(kv.set("a", "1234567890"), Err(StorageError::Full));
        assert_eq!(kv.get("a").unwrap().as_deref(), Some("123456789"));
        kv.set("a", "1").unwrap();
        kv.set("bc", "123456").unwrap();
        kv.remove("bc").unwrap();
        kv.remove("nothing").unwrap();
        kv.set("b", "1234567").unwrap();
        assert_eq!(kv.keys_with_prefix("").unwrap(), ["a", "b"]);
        assert_eq!(kv.keys_with_prefix("b").unwrap(), ["b"]);
        assert!(kv.keys_with_prefix("c").unwrap().is_empty());

        let mut unlimited = MemoryStore::default();
        unlimited.set("x", &"y".repeat(1 << 20)).unwrap();
    }

    #[test]
    fn errors_say_what_to_do() {
        let full = StorageError::Full.to_string();
        assert!(full.starts_with("browser storage is full: "), "{full}");
        assert!(full.ends_with("; leave a chat or free space"), "{full}");
        assert_eq!(
            StorageError::Unavailable("disabled".to_owned()).to_string(),
            "browser storage is not available: disabled"
        );
        assert!(StorageError::Corrupt("x".to_owned())
            .to_string()
            .ends_with(": x"));
    }

    #[cfg(target_arch = "wasm32")]
    #[test]
    fn local_storage_opens_or_says_why() {
        match super::LocalStorage::open() {
            Ok(mut storage) => {
                let key = "p2pchat-test/storage-check";
                storage.set(key, "1").unwrap();
                assert_eq!(storage.get(key).unwrap().as_deref(), Some("1"));
                assert_eq!(storage.keys_with_prefix("p2pchat-test/").unwrap(), [key]);
                storage.remove(key).unwrap();
                assert_eq!(storage.get(key).unwrap(), None);
            }
            Err(StorageError::Unavailable(why)) => assert!(!why.is_empty()),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
}
