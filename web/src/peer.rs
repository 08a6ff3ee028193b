//! The browser peer: the core engine, its storage and its relay connection,
//! driven by the browser's event loop.
//!
//! Like the native node, this is a driver and makes no protocol decision.
//! Inputs are relay frames (datagrams from peers, and the UDP address the
//! relay bound for us), timer expiries at the engine's deadline, and the
//! user's commands. After every input the engine's outputs are done in its
//! order: batches to browser storage (then confirmed), datagrams to the
//! relay, [`Action`]s for the UI. The engine holds back whatever depends on
//! a batch until it is confirmed, so nothing is shown as sent, or sent,
//! before it is stored; if storage refuses a batch, what waited for it is
//! neither sent nor shown, and the user is told.
//!
//! Chats and history live in IndexedDB ([`crate::database`]), whose
//! operations complete later: a batch or a read goes out in a task of its
//! own, and its answer is handed to the engine when it comes (tagged with
//! the run it belongs to, so an answer for an engine that was stopped in
//! the meantime is dropped). The profile and the tab lease stay in
//! `localStorage` ([`crate::storage`]); chats kept there by an earlier
//! version move to IndexedDB the first time the page starts.
//!
//! The relay connection reconnects on its own with exponential backoff. Each
//! connection gets a new UDP socket at the relay; the engine learns the new
//! address from the `bound` frame and members learn it from our next
//! heartbeat.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use gloo_timers::callback::{Interval, Timeout};
use js_sys::Uint8Array;
use p2pchat_core::history::Anchor;
use p2pchat_core::output::Persist;
use p2pchat_core::relay::Frame;
use p2pchat_core::signaling::ServerSpec;
use p2pchat_core::{
    AppEvent, ChatId, Config, Identity, Loaded, Node, Output, Record, RoomId, Store, UserName,
};
use rand_core::{OsRng, RngCore};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};
use yew::Callback;

use crate::database::{Database, DB_NAME};
use crate::pacer::Pacer;
use crate::state::{backoff_ms, Action, RelayStatus, PAGE};
use crate::storage::{KeyValue, LocalStorage, MemoryStore, PeerStore, StorageError};
use crate::tab::{self, Claim};

/// Datagrams kept while the relay is down.
const BACKLOG: usize = 1_024;
/// Older ones are not worth sending.
const BACKLOG_MAX_AGE_MS: u64 = 10_000;
/// Most datagrams from the relay held for one hand-over to the engine.
const INBOX_MAX: usize = 256;

/// The peer, shared between the UI's callbacks and the browser's events.
pub type PeerHandle = Rc<RefCell<Peer>>;

/// Where the peer reaches the world.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The relay's WebSocket URL.
    pub relay_url: String,
    /// Signaling servers (reached through the relay), with their keys if
    /// pinned.
    pub signaling: Vec<ServerSpec>,
}

struct Socket {
    ws: WebSocket,
    // Kept alive as long as the socket: the browser calls them.
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

/// Where the chats and history are kept.
enum Records {
    /// Not opened yet (the engine does not run before it is).
    Opening,
    /// IndexedDB.
    Indexed(Rc<Database>),
    /// Memory, when the browser offers no IndexedDB: the page chats, and
    /// nothing new survives a reload.
    Memory(p2pchat_core::MemoryStore),
}

/// What opening the records found.
struct Opened {
    records: Records,
    loaded: Result<Loaded, StorageError>,
    /// Whether chats kept in `localStorage` moved (if there were any).
    moved: Option<Result<(), StorageError>>,
    /// Why IndexedDB could not be used, if it could not.
    unavailable: Option<StorageError>,
}

/// Opens IndexedDB, moves `legacy` records into it, and loads everything;
/// or, without IndexedDB, keeps `legacy` in memory for this visit.
async fn open_records(legacy: Vec<Record>) -> Opened {
    match Database::open(DB_NAME).await {
        Ok(db) => {
            let moved = if legacy.is_empty() {
                None
            } else {
                Some(db.apply(&legacy).await)
            };
            let loaded = db.load().await;
            Opened {
                records: Records::Indexed(Rc::new(db)),
                loaded,
                moved,
                unavailable: None,
            }
        }
        Err(e) => {
            let mut memory = p2pchat_core::MemoryStore::new();
            let _ = Store::apply(&mut memory, &legacy);
            let loaded = Store::load(&memory).map_err(|e| match e {});
            Opened {
                records: Records::Memory(memory),
                loaded,
                moved: None,
                unavailable: Some(e),
            }
        }
    }
}

/// The engine and everything around it.
pub struct Peer {
    me: Weak<RefCell<Peer>>,
    dispatch: Callback<Action>,
    endpoints: Endpoints,
    /// The profile and the tab lease (`localStorage`).
    store: PeerStore<Backend>,
    /// The chats and history.
    records: Records,
    /// Which run of the engine this is: answers from storage for an
    /// earlier one are dropped.
    run: u64,
    engine: Option<Node>,
    socket: Option<Socket>,
    open: bool,
    bound: Option<SocketAddr>,
    attempts: u32,
    reconnect: Option<Timeout>,
    timer: Option<(u64, Timeout)>,
    /// Datagrams produced while the relay was down, sent when it is back
    /// (so the probes a restored peer sends at once are not lost).
    backlog: std::collections::VecDeque<(u64, Vec<u8>)>,
    /// Datagrams from the relay not yet handed to the engine: those that
    /// arrive before the page gets back to them are handed over together,
    /// so their signatures are checked in one batch.
    inbox: Vec<(SocketAddr, Vec<u8>)>,
    take_inbox: Option<Timeout>,
    /// What the engine reported and the UI has not been given yet
    /// ([`crate::pacer`]), and the timer that will.
    pacer: Pacer,
    show: Option<Timeout>,
    /// This tab's name for the tab lease.
    tab: String,
    renew: Option<Interval>,
    takeover: Option<Timeout>,
    _on_pagehide: Option<Closure<dyn FnMut()>>,
}

fn now_ms() -> u64 {
    let ms = js_sys::Date::now();
    if ms.is_finite() && ms > 0.0 {
        ms as u64
    } else {
        0
    }
}

fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    seed
}

impl Peer {
    /// Reads storage, restores the engine if a profile exists, and starts
    /// connecting to the relay.
    pub fn start(dispatch: Callback<Action>, endpoints: Endpoints) -> PeerHandle {
        let peer = Rc::new_cyclic(|me| {
            RefCell::new(Peer {
                me: me.clone(),
                dispatch,
                endpoints,
                store: PeerStore::new(Backend::Memory(MemoryStore::default())),
                records: Records::Opening,
                run: 0,
                engine: None,
                socket: None,
                open: false,
                bound: None,
                attempts: 0,
                reconnect: None,
                timer: None,
                backlog: std::collections::VecDeque::new(),
                inbox: Vec::new(),
                take_inbox: None,
                pacer: Pacer::default(),
                show: None,
                tab: hex::encode(seed()),
                renew: None,
                takeover: None,
                _on_pagehide: None,
            })
        });
        peer.borrow_mut().open();
        peer
    }

    /// Opens storage and runs the peer if no other tab does.
    fn open(&mut self) {
        match LocalStorage::open() {
            Ok(kv) => self.store = PeerStore::new(Backend::Local(kv)),
            Err(e) => self.error(format!(
                "{e}; this page will chat, but nothing will be kept after a reload"
            )),
        }
        // Give the lease up when the page goes away, so a reload starts at
        // once instead of waiting for it to lapse.
        let me = self.me.clone();
        let on_pagehide = Closure::<dyn FnMut()>::new(move || {
            if let Some(p) = me.upgrade() {
                let mut p = p.borrow_mut();
                let tab = p.tab.clone();
                let _ = tab::release(p.store.kv_mut(), &tab);
            }
        });
        if let Some(window) = web_sys::window() {
            let _ = window
                .add_event_listener_with_callback("pagehide", on_pagehide.as_ref().unchecked_ref());
        }
        self._on_pagehide = Some(on_pagehide);
        let tab = self.tab.clone();
        match tab::claim(self.store.kv_mut(), &tab, now_ms(), false) {
            Ok(Claim::Held) => self.begin(),
            Ok(Claim::Elsewhere) => {
                self.emit(Action::Elsewhere(true));
                self.emit(Action::Ready);
            }
            Err(e) => {
                self.error(format!("cannot check for other tabs: {e}"));
                self.begin();
            }
        }
    }

    /// Opens the records (moving those an earlier version kept in
    /// `localStorage`), then loads and connects; keeps the tab lease.
    fn begin(&mut self) {
        self.emit(Action::Elsewhere(false));
        self.run += 1;
        self.records = Records::Opening;
        let legacy = match self.store.records_to_move() {
            Ok(loaded) => loaded.records,
            Err(e) => {
                self.error(format!("cannot read the chats kept in localStorage: {e}"));
                Vec::new()
            }
        };
        let (me, run) = (self.me.clone(), self.run);
        wasm_bindgen_futures::spawn_local(async move {
            let opened = open_records(legacy).await;
            if let Some(p) = me.upgrade() {
                p.borrow_mut().opened(run, opened);
            }
        });
        let me = self.me.clone();
        self.renew = Some(Interval::new(tab::RENEW_MS, move || {
            if let Some(p) = me.upgrade() {
                p.borrow_mut().renew_lease();
            }
        }));
    }

    fn renew_lease(&mut self) {
        let tab = self.tab.clone();
        if let Ok(Claim::Elsewhere) = tab::claim(self.store.kv_mut(), &tab, now_ms(), false) {
            self.stop();
        }
    }

    /// Another tab took over: stop everything here.
    fn stop(&mut self) {
        self.run += 1;
        self.records = Records::Opening;
        self.renew = None;
        self.timer = None;
        self.take_inbox = None;
        self.inbox.clear();
        self.reconnect = None;
        self.engine = None;
        self.backlog.clear();
        self.open = false;
        if let Some(s) = self.socket.take() {
            s.ws.set_onopen(None);
            s.ws.set_onmessage(None);
            s.ws.set_onclose(None);
            let _ = s.ws.close();
        }
        self.emit(Action::Relay(RelayStatus::NotConnected));
        self.emit(Action::Elsewhere(true));
    }

    /// The user wants p2pchat in this tab: take the lease, wait for the
    /// other tab to stop, then start.
    pub fn take_over(&mut self) {
        let tab = self.tab.clone();
        if let Err(e) = tab::claim(self.store.kv_mut(), &tab, now_ms(), true) {
            return self.error(format!("cannot take over from the other tab: {e}"));
        }
        let me = self.me.clone();
        self.takeover = Some(Timeout::new(tab::TAKEOVER_WAIT_MS, move || {
            if let Some(p) = me.upgrade() {
                let mut p = p.borrow_mut();
                p.takeover = None;
                p.begin();
            }
        }));
    }

    /// Whether this tab still runs the peer; stops it if not.
    fn still_here(&mut self) -> bool {
        let tab = self.tab.clone();
        match tab::holds(self.store.kv(), &tab) {
            Ok(false) => {
                self.stop();
                false
            }
            _ => true,
        }
    }

    fn error(&mut self, message: impl Into<String>) {
        self.emit(Action::Error(message.into()));
    }

    fn config(&self) -> Config {
        Config {
            signaling: self.endpoints.signaling.iter().map(|s| s.addr).collect(),
            signaling_keys: self
                .endpoints
                .signaling
                .iter()
                .filter_map(|s| s.key.map(|key| (s.addr, key)))
                .collect(),
            local_addrs: self.bound.into_iter().collect(),
            ..Config::default()
        }
    }

    /// The records are open: load the engine from them and connect.
    fn opened(&mut self, run: u64, opened: Opened) {
        if run != self.run {
            return;
        }
        let Opened {
            records,
            loaded,
            moved,
            unavailable,
        } = opened;
        self.records = records;
        if let Some(e) = unavailable {
            self.error(format!(
                "{e}; this page will chat, but nothing new will be kept after a reload"
            ));
        }
        match moved {
            Some(Ok(())) => {
                if let Err(e) = self.store.erase_records() {
                    self.error(format!(
                        "your chats moved to IndexedDB, but their old copy in localStorage could not be erased: {e}"
                    ));
                }
            }
            Some(Err(e)) => self.error(format!(
                "your chats could not be moved from localStorage to IndexedDB ({e}); the next visit tries again"
            )),
            None => {}
        }
        self.load(loaded);
        self.connect();
    }

    fn load(&mut self, loaded: Result<Loaded, StorageError>) {
        let profile = match self.store.profile() {
            Ok(p) => p,
            Err(e) => {
                self.error(format!("cannot read your profile: {e}"));
                None
            }
        };
        if let Some((name, identity)) = profile {
            let loaded = match loaded {
                Ok(l) => {
                    if l.skipped > 0 {
                        self.error(format!(
                            "{} stored entries could not be read and were skipped",
                            l.skipped
                        ));
                    }
                    l.records
                }
                Err(e) => {
                    self.error(format!("cannot read your chats: {e}"));
                    Vec::new()
                }
            };
            // A name saved when the limit was counted in characters may be
            // too long in bytes: keep the identity, shorten the name.
            let user = UserName::new(&name).or_else(|e| match UserName::shortened(&name) {
                Some(short) => {
                    self.error(format!(
                        "your saved name {name:?} was shortened to \"{short}\": {e}"
                    ));
                    if let Err(e) = self.store.save_profile(short.as_str(), &identity) {
                        self.error(format!("cannot save your profile: {e}"));
                    }
                    Ok(short)
                }
                None => Err(e),
            });
            match user {
                Ok(user) => {
                    let name = user.as_str().to_owned();
                    let peer = identity.peer_id();
                    let (engine, unused) =
                        Node::restore(identity, user, self.config(), seed(), now_ms(), loaded);
                    if unused > 0 {
                        self.error(format!(
                            "{unused} stored entries could not be used and were skipped"
                        ));
                    }
                    self.emit(Action::Profile { name, peer });
                    self.engine = Some(engine);
                }
                Err(e) => self.error(format!("your saved name cannot be used: {e}")),
            }
        }
        self.emit(Action::Ready);
        self.pump();
    }

    /// First visit: creates the identity and keeps it.
    pub fn create_profile(&mut self, name: &str) {
        let user = match UserName::new(name.trim()) {
            Ok(user) => user,
            Err(e) => return self.error(e.to_string()),
        };
        let identity = Identity::generate(&mut OsRng);
        if let Err(e) = self.store.save_profile(user.as_str(), &identity) {
            return self.error(format!("cannot save your profile: {e}"));
        }
        let peer = identity.peer_id();
        let name = user.as_str().to_owned();
        self.engine = Some(Node::new(identity, user, self.config(), seed()));
        self.emit(Action::Profile { name, peer });
        self.pump();
    }

    /// `/create_chat`.
    pub fn create_room(&mut self, name: &str) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        if let Err(e) = engine.create_room(now_ms(), name.trim()) {
            self.error(e.to_string());
        }
        self.pump();
    }

    /// `/join_chat`.
    pub fn join_room(&mut self, chat_id: &str) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        match chat_id.trim().parse::<ChatId>() {
            Err(e) => self.error(format!("that is not a valid Chat ID: {e}")),
            Ok(id) => {
                if let Err(e) = engine.join_room(now_ms(), &id) {
                    self.error(e.to_string());
                }
            }
        }
        self.pump();
    }

    /// Sends `text` to `room`.
    pub fn send(&mut self, room: RoomId, text: &str) -> bool {
        if !self.still_here() {
            self.error("p2pchat now runs in another tab of this browser; the message was not sent");
            return false;
        }
        let Some(engine) = self.engine.as_mut() else {
            return false;
        };
        let ok = match engine.send_text(now_ms(), &room, text) {
            Ok(_) => true,
            Err(e) => {
                self.error(e.to_string());
                false
            }
        };
        self.pump();
        ok
    }

    /// Loads a page of `room`'s history next to `anchor` into its
    /// timeline (the user scrolled to one end of what is loaded).
    pub fn page(&mut self, room: RoomId, anchor: Anchor) {
        let Some(engine) = self.engine.as_ref() else {
            return;
        };
        let page = engine.page(&room, anchor, PAGE);
        self.emit(Action::Page { room, anchor, page });
    }

    /// Leaves `room` (its history is deleted here).
    pub fn leave(&mut self, room: RoomId) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        if let Err(e) = engine.leave_room(now_ms(), &room) {
            self.error(e.to_string());
        }
        self.pump();
    }

    // ----- the relay ------------------------------------------------------

    fn connect(&mut self) {
        self.reconnect = None;
        self.emit(Action::Relay(RelayStatus::Connecting));
        let ws = match WebSocket::new(&self.endpoints.relay_url) {
            Ok(ws) => ws,
            Err(e) => {
                self.error(format!(
                    "cannot open the relay connection to {}: {e:?}",
                    self.endpoints.relay_url
                ));
                return self.schedule_reconnect();
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let me = self.me.clone();
        let on_open = Closure::<dyn FnMut()>::new(move || {
            if let Some(p) = me.upgrade() {
                p.borrow_mut().on_open();
            }
        });
        let me = self.me.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let bytes = Uint8Array::new(&e.data()).to_vec();
            if let Some(p) = me.upgrade() {
                p.borrow_mut().on_frame(&bytes);
            }
        });
        let me = self.me.clone();
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_e: CloseEvent| {
            if let Some(p) = me.upgrade() {
                p.borrow_mut().on_close();
            }
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        self.socket = Some(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        });
    }

    fn on_open(&mut self) {
        self.open = true;
        self.attempts = 0;
        self.emit(Action::Relay(RelayStatus::Connected));
    }

    fn on_close(&mut self) {
        self.open = false;
        if let Some(s) = self.socket.take() {
            s.ws.set_onopen(None);
            s.ws.set_onmessage(None);
            s.ws.set_onclose(None);
        }
        self.emit(Action::Relay(RelayStatus::Lost));
        self.emit(Action::Connected(false));
        self.schedule_reconnect();
    }

    fn schedule_reconnect(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
        let me = self.me.clone();
        self.reconnect = Some(Timeout::new(backoff_ms(self.attempts), move || {
            if let Some(p) = me.upgrade() {
                p.borrow_mut().connect();
            }
        }));
    }

    fn on_frame(&mut self, bytes: &[u8]) {
        match Frame::decode(bytes) {
            Ok(Frame::Bound { addr }) => {
                self.bound = Some(addr);
                self.flush_backlog();
                if let Some(engine) = self.engine.as_mut() {
                    engine.set_local_addrs(vec![addr]);
                }
                // Pending messages go out with the next repair round now
                // that members can be reached.
                self.emit(Action::Connected(true));
            }
            Ok(Frame::Datagram { addr, payload }) => {
                self.inbox.push((addr, payload));
                if self.inbox.len() >= INBOX_MAX {
                    return self.on_inbox();
                }
                if self.take_inbox.is_none() {
                    // After the frames already queued in the browser.
                    let me = self.me.clone();
                    self.take_inbox = Some(Timeout::new(0, move || {
                        if let Some(p) = me.upgrade() {
                            p.borrow_mut().on_inbox();
                        }
                    }));
                }
                return;
            }
            Err(e) => tracing_error(&format!("relay frame dropped: {e}")),
        }
        self.pump();
    }

    /// Hands the engine what came from the relay since the last time.
    fn on_inbox(&mut self) {
        self.take_inbox = None;
        let inbox = std::mem::take(&mut self.inbox);
        if let Some(engine) = self.engine.as_mut() {
            engine.handle_datagrams(
                now_ms(),
                inbox.iter().map(|(addr, bytes)| (*addr, bytes.as_slice())),
            );
        }
        self.pump();
    }

    // ----- driving the engine ---------------------------------------------

    fn on_timer(&mut self) {
        self.timer = None;
        if let Some(engine) = self.engine.as_mut() {
            engine.handle_timeout(now_ms());
        }
        self.pump();
    }

    /// Does what the engine asks, in its order — batches to storage (then
    /// confirmed), datagrams to the relay, actions to the UI — until it
    /// says when to wake it next.
    fn pump(&mut self) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let mut frames = Vec::new();
        let mut events = Vec::new();
        let deadline = loop {
            match engine.poll_output() {
                Output::Persist(p) => match &mut self.records {
                    Records::Indexed(db) => {
                        let (db, me, run) = (Rc::clone(db), self.me.clone(), self.run);
                        wasm_bindgen_futures::spawn_local(async move {
                            let stored = db.apply(&p.records).await;
                            if let Some(peer) = me.upgrade() {
                                peer.borrow_mut().persisted(run, p, stored);
                            }
                        });
                    }
                    Records::Memory(memory) => {
                        let _ = Store::apply(memory, &p.records);
                        engine.stored(p.batch);
                    }
                    // No engine runs before the records are open.
                    Records::Opening => {
                        engine.store_failed(p.batch);
                    }
                },
                Output::Read(r) => match &self.records {
                    Records::Indexed(db) => {
                        let (db, me, run) = (Rc::clone(db), self.me.clone(), self.run);
                        wasm_bindgen_futures::spawn_local(async move {
                            let tokens = db.tokens(&r.room, &r.events).await;
                            if let Some(peer) = me.upgrade() {
                                peer.borrow_mut().read(run, r.id, tokens);
                            }
                        });
                    }
                    Records::Memory(memory) => {
                        let tokens = Store::tokens(memory, &r.room, &r.events);
                        engine.read_done(r.id, tokens.unwrap_or_default());
                    }
                    Records::Opening => engine.read_done(r.id, Vec::new()),
                },
                Output::Transmit(t) => frames.push(Frame::Datagram {
                    addr: t.to,
                    payload: t.bytes,
                }),
                Output::Event(e) => {
                    let restored = match &e {
                        AppEvent::RoomJoined {
                            room,
                            restored: true,
                            ..
                        } => Some(Action::Restored {
                            room: *room,
                            messages: engine.history(room).map_or(0, |h| h.len()),
                            names: engine
                                .history(room)
                                .map(|h| h.names().map(|(n, p)| (n.to_owned(), p)).collect())
                                .unwrap_or_default(),
                            page: engine.page(room, Anchor::Newest, PAGE),
                            members: engine
                                .members(room)
                                .map(|m| m.iter().cloned().collect())
                                .unwrap_or_default(),
                        }),
                        AppEvent::Reshown { room } => Some(Action::Reshown {
                            room: *room,
                            messages: engine.history(room).map_or(0, |h| h.len()),
                            page: engine.page(room, Anchor::Newest, PAGE),
                        }),
                        _ => None,
                    };
                    events.push(Action::Engine(e));
                    events.extend(restored);
                }
                Output::Timeout(deadline) => break deadline,
            }
        };
        let now = now_ms();
        for frame in frames {
            match frame.encode() {
                Ok(bytes) => self.send_frame(now, bytes),
                Err(e) => tracing_error(&format!("cannot frame a datagram: {e}")),
            }
        }
        self.report(events);
        self.schedule_timer(deadline);
    }

    /// Gives the UI what the engine reported, paced ([`crate::pacer`]).
    fn report(&mut self, events: Vec<Action>) {
        let now = self.pacer.add(now_ms(), events);
        self.give(now);
        if self.show.is_none() {
            if let Some(due) = self.pacer.due() {
                let me = self.me.clone();
                let wait = due.saturating_sub(now_ms()).min(u64::from(u32::MAX)) as u32;
                self.show = Some(Timeout::new(wait, move || {
                    if let Some(p) = me.upgrade() {
                        let mut p = p.borrow_mut();
                        p.show = None;
                        let waiting = p.pacer.take(now_ms());
                        p.give(waiting);
                    }
                }));
            }
        }
    }

    /// Gives the UI reports as one action (the model is copied once per
    /// update, not once per message).
    fn give(&self, events: Vec<Action>) {
        match events.len() {
            0 => {}
            1 => events.into_iter().for_each(|a| self.dispatch.emit(a)),
            _ => self.dispatch.emit(Action::All(events)),
        }
    }

    /// Any other action: after what waits.
    fn emit(&mut self, action: Action) {
        let waiting = self.pacer.take(now_ms());
        self.give(waiting);
        self.dispatch.emit(action);
    }

    /// Sends a frame now, or keeps it for when the relay is back.
    /// A batch is stored (or not): what waited for it may go (or is
    /// dropped, and the user told).
    fn persisted(&mut self, run: u64, batch: Persist, stored: Result<(), StorageError>) {
        if run != self.run {
            return;
        }
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        match stored {
            Ok(()) => engine.stored(batch.batch),
            Err(e) => {
                engine.store_failed(batch.batch);
                self.error(format!(
                    "could not save to browser storage ({e}); the last change was neither sent nor shown"
                ));
            }
        }
        self.pump();
    }

    /// Tokens read back for the engine (to send events on).
    fn read(
        &mut self,
        run: u64,
        id: p2pchat_core::output::ReadId,
        tokens: Result<Vec<Option<String>>, StorageError>,
    ) {
        if run != self.run {
            return;
        }
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let tokens = tokens.unwrap_or_else(|e| {
            // Only a repair for another member is lost; it asks again.
            tracing_error(&format!("could not read browser storage: {e}"));
            Vec::new()
        });
        engine.read_done(id, tokens);
        self.pump();
    }

    fn send_frame(&mut self, now: u64, bytes: Vec<u8>) {
        match (&self.socket, self.open) {
            (Some(socket), true) => {
                if socket.ws.send_with_u8_array(&bytes).is_err() {
                    tracing_error("relay send failed");
                }
            }
            _ => {
                if self.backlog.len() >= BACKLOG {
                    self.backlog.pop_front();
                }
                self.backlog.push_back((now, bytes));
            }
        }
    }

    /// Sends what waited for the relay, unless it is stale (anti-entropy
    /// repairs whatever was dropped).
    fn flush_backlog(&mut self) {
        let now = now_ms();
        let waiting: Vec<(u64, Vec<u8>)> = self.backlog.drain(..).collect();
        for (at, bytes) in waiting {
            if now.saturating_sub(at) <= BACKLOG_MAX_AGE_MS {
                self.send_frame(now, bytes);
            }
        }
    }

    fn schedule_timer(&mut self, deadline: Option<u64>) {
        let Some(deadline) = deadline else {
            self.timer = None;
            return;
        };
        if self.timer.as_ref().is_some_and(|(at, _)| *at == deadline) {
            return;
        }
        let delay = deadline.saturating_sub(now_ms()).min(u64::from(u32::MAX));
        let me = self.me.clone();
        let timeout = Timeout::new(delay as u32, move || {
            if let Some(p) = me.upgrade() {
                p.borrow_mut().on_timer();
            }
        });
        self.timer = Some((deadline, timeout));
    }
}

/// Browser storage, or memory when the browser refuses storage (private
/// modes, disabled storage): the page still chats, and says nothing is kept.
enum Backend {
    Local(LocalStorage),
    Memory(MemoryStore),
}

impl KeyValue for Backend {
    fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        match self {
            Backend::Local(kv) => kv.get(key),
            Backend::Memory(kv) => kv.get(key),
        }
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        match self {
            Backend::Local(kv) => kv.set(key, value),
            Backend::Memory(kv) => kv.set(key, value),
        }
    }
    fn remove(&mut self, key: &str) -> Result<(), StorageError> {
        match self {
            Backend::Local(kv) => kv.remove(key),
            Backend::Memory(kv) => kv.remove(key),
        }
    }
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        match self {
            Backend::Local(kv) => kv.keys_with_prefix(prefix),
            Backend::Memory(kv) => kv.keys_with_prefix(prefix),
        }
    }
}

/// Diagnostics for developers go to the browser console; users see errors
/// through the UI.
fn tracing_error(message: &str) {
    web_sys::console::warn_1(&message.into());
}
