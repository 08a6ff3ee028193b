//! The UI's state, in one place, kept apart from rendering so it can be
//! tested alone (natively and in the browser).
//!
//! The peer (the engine, the relay connection, storage) turns what happens
//! into [`Action`]s; [`Model::apply`] is the only place the state changes.
//! Components read the model and send commands back to the peer; they never
//! change the model themselves.
//!
//! The chats themselves — names and how same-named people are told apart,
//! the current chat, Chat IDs, unread counts, delivery state — are core's
//! chat model ([`Chats`]), the one the terminal renders too; this module
//! adds only what a page has and a terminal has not: the connection
//! banner, the timelines kept for display, errors on screen.

use std::collections::BTreeMap;
use std::sync::Arc;

use p2pchat_core::chats::{Chat, Chats};
use p2pchat_core::clock::{EventId, OrderKey};
use p2pchat_core::history::{Anchor, Event};
use p2pchat_core::membership::Member;
use p2pchat_core::wire::MAX_TEXT_LEN;
use p2pchat_core::{AppEvent, PeerId, RoomId};

/// Where the page stands with the local node's relay WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayStatus {
    /// No connection has been attempted or none is open.
    NotConnected,
    /// A connection attempt is under way.
    Connecting,
    /// The relay is connected: datagrams flow.
    Connected,
    /// The connection dropped; a retry is scheduled.
    Lost,
}

impl RelayStatus {
    /// The words shown in the connection banner.
    pub fn label(self) -> &'static str {
        match self {
            RelayStatus::NotConnected => "Not connected",
            RelayStatus::Connecting => "Connecting…",
            RelayStatus::Connected => "Connected",
            RelayStatus::Lost => "Connection lost — retrying",
        }
    }

    /// The CSS modifier that colours the banner.
    pub fn css_class(self) -> &'static str {
        match self {
            RelayStatus::NotConnected => "status-offline",
            RelayStatus::Connecting => "status-pending",
            RelayStatus::Connected => "status-online",
            RelayStatus::Lost => "status-lost",
        }
    }

    /// A stable word for scripts and tests (`data-status`).
    pub fn code(self) -> &'static str {
        match self {
            RelayStatus::NotConnected => "not-connected",
            RelayStatus::Connecting => "connecting",
            RelayStatus::Connected => "connected",
            RelayStatus::Lost => "lost",
        }
    }
}

/// One message in a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageItem {
    /// Author.
    pub author: PeerId,
    /// Author's sequence number.
    pub seq: u64,
    /// Lamport time.
    pub lamport: u64,
    /// Author's display name.
    pub name: String,
    /// When it was written, ms since the Unix epoch: the author's clock,
    /// never before the messages it follows.
    pub time: u64,
    /// What the author's clock said, when it is well before the messages
    /// this one follows (backdated).
    pub claimed_time: Option<u64>,
    /// Text.
    pub text: String,
    /// Placed before a message shown earlier.
    pub late: bool,
}

impl MessageItem {
    /// The timeline entry of a delivered event.
    pub fn of(event: &Event, late: bool) -> Self {
        MessageItem {
            author: event.id.author,
            seq: event.id.seq,
            lamport: event.lamport,
            name: event.name.clone(),
            time: event.shown_time(),
            claimed_time: event.backdated().then_some(event.time),
            text: event.body.shown().to_owned(),
            late,
        }
    }

    /// The event's id.
    pub fn id(&self) -> EventId {
        EventId::new(self.author, self.seq)
    }

    fn key(&self) -> (u64, PeerId, u64) {
        (self.lamport, self.author, self.seq)
    }

    /// Its place in the room's canonical order.
    pub fn order_key(&self) -> OrderKey {
        OrderKey::new(self.lamport, self.id())
    }
}

/// Messages a timeline holds at most: whatever the history's length, the
/// page renders and keeps this many.
pub const MAX_LOADED: usize = 300;
/// Messages asked of the node at a time, as the user scrolls.
pub const PAGE: usize = 100;

/// A room's timeline: a window onto its shown history, in canonical order,
/// slid a page at a time as the user scrolls (older messages are loaded at
/// the top, newer ones at the bottom, and the far end is let go).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The messages loaded, in canonical order, at most [`MAX_LOADED`].
    pub messages: Vec<MessageItem>,
    /// Shown messages may exist before the first loaded.
    pub older: bool,
    /// Shown messages exist after the last loaded: the user went back in
    /// history, and new messages are not loaded until they come back.
    pub newer: bool,
}

impl Timeline {
    /// A new message was delivered: loaded if it falls inside the window
    /// (or at its end, when the window reaches the newest).
    fn arrived(&mut self, item: MessageItem) {
        let before_first = self.messages.first().is_some_and(|m| item.key() < m.key());
        let after_last = self.messages.last().is_some_and(|m| item.key() > m.key());
        if (before_first && self.older) || (after_last && self.newer) {
            return;
        }
        insert(&mut self.messages, item);
        if self.messages.len() > MAX_LOADED {
            if self.newer {
                self.messages.truncate(MAX_LOADED);
            } else {
                let extra = self.messages.len() - MAX_LOADED;
                self.messages.drain(..extra);
                self.older = true;
            }
        }
    }

    /// A page the node gave for `anchor`, asked for `PAGE` at a time (a
    /// shorter page reached the end of the history). A page that does not
    /// start or end where the window does any more (the window moved
    /// since it was asked for) is ignored.
    fn page(&mut self, anchor: Anchor, items: Vec<MessageItem>, asked: usize) {
        let full = items.len() >= asked;
        match anchor {
            Anchor::Newest => {
                self.messages = items;
                self.older = full;
                self.newer = false;
            }
            Anchor::Before(key) => {
                if self.messages.first().map(MessageItem::order_key) != Some(key) {
                    return;
                }
                let mut messages = items;
                messages.append(&mut self.messages);
                self.messages = messages;
                self.older = full;
                if self.messages.len() > MAX_LOADED {
                    self.messages.truncate(MAX_LOADED);
                    self.newer = true;
                }
            }
            Anchor::After(key) => {
                if self.messages.last().map(MessageItem::order_key) != Some(key) {
                    return;
                }
                self.messages.extend(items);
                self.newer = full;
                if self.messages.len() > MAX_LOADED {
                    let extra = self.messages.len() - MAX_LOADED;
                    self.messages.drain(..extra);
                    self.older = true;
                }
            }
        }
    }
}

/// The room on screen: the chat as core's chat model has it, and its
/// timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomItem {
    /// The chat: name, Chat ID, members, names, delivery state.
    pub chat: Chat,
    /// The messages loaded, in canonical order, and whether there are more.
    pub timeline: Timeline,
}

/// Everything that changes the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The peer has read storage: the page knows whether a profile exists.
    Ready,
    /// Another tab of this browser runs the peer (true), or this one does
    /// again (false).
    Elsewhere(bool),
    /// The user's identity is known (created or loaded).
    Profile { name: String, peer: PeerId },
    /// The relay connection changed.
    Relay(RelayStatus),
    /// Datagrams can leave (the relay is up and knows our address), or no
    /// longer can.
    Connected(bool),
    /// Something the node reported.
    Engine(AppEvent),
    /// A restored room's history (for the chat model: names and count),
    /// its newest page (each event with its late mark) and its members,
    /// as the node holds them.
    Restored {
        room: RoomId,
        messages: usize,
        /// The names its authors wrote under, with who wrote under each.
        names: Vec<(String, PeerId)>,
        page: Vec<(Arc<Event>, bool)>,
        members: Vec<Member>,
    },
    /// A room's history as the node shows it now: how many messages and
    /// the newest page, replacing the timeline (a fork hid an
    /// equivocator's messages; marks were recomputed).
    Reshown {
        room: RoomId,
        messages: usize,
        page: Vec<(Arc<Event>, bool)>,
    },
    /// A page of a room's history the timeline asked for (at most
    /// [`PAGE`] events, with their late marks).
    Page {
        room: RoomId,
        anchor: Anchor,
        page: Vec<(Arc<Event>, bool)>,
    },
    /// The user opened a room.
    Select(RoomId),
    /// Something went wrong that the user must know.
    Error(String),
    /// The user dismissed an error.
    Dismiss(u64),
    /// Several of the above, in order (what one drain of the node gave).
    All(Vec<Action>),
}

/// The whole UI state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// Storage has been read (until then the page shows it is loading).
    pub ready: bool,
    /// Another tab of this browser runs the peer.
    pub elsewhere: bool,
    /// The user's name and peer id, once chosen.
    pub me: Option<(String, PeerId)>,
    /// The relay connection.
    pub relay: Option<RelayStatus>,
    /// Whether datagrams can leave.
    pub connected: bool,
    /// The user's chats (core's chat model), once the user is known.
    pub chats: Option<Chats>,
    /// Each room's timeline: the messages loaded, in canonical order.
    pub timelines: BTreeMap<RoomId, Timeline>,
    /// Errors not dismissed yet, oldest first, with their ids.
    pub errors: Vec<(u64, String)>,
    next_error: u64,
}

/// Errors kept on screen at most.
const MAX_ERRORS: usize = 5;

impl Model {
    /// The relay status to show.
    pub fn relay_status(&self) -> RelayStatus {
        self.relay.unwrap_or(RelayStatus::NotConnected)
    }

    /// The room shown, if any: the chat model's current chat.
    pub fn selected_room(&self) -> Option<RoomItem> {
        let chats = self.chats.as_ref()?;
        let chat = chats.get(&chats.current()?)?;
        Some(RoomItem {
            chat: chat.clone(),
            timeline: self.timelines.get(&chat.id).cloned().unwrap_or_default(),
        })
    }

    /// Applies one action.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Ready => self.ready = true,
            Action::Elsewhere(elsewhere) => self.elsewhere = elsewhere,
            Action::Profile { name, peer } => {
                if self.chats.as_ref().map(Chats::me) != Some(peer) {
                    let mut chats = Chats::new(peer, &name);
                    chats.set_connected(self.connected);
                    self.chats = Some(chats);
                    self.timelines.clear();
                }
                self.me = Some((name, peer));
            }
            Action::Relay(status) => self.relay = Some(status),
            Action::Connected(connected) => {
                self.connected = connected;
                if let Some(chats) = &mut self.chats {
                    chats.set_connected(connected);
                }
            }
            Action::Engine(event) => self.engine(event),
            Action::Restored {
                room,
                messages,
                names,
                page,
                members,
            } => {
                if let Some(chats) = &mut self.chats {
                    let names = names.iter().map(|(n, p)| (n.as_str(), *p));
                    chats.restored(&room, messages, names, members.iter());
                }
                self.page(room, Anchor::Newest, page);
            }
            Action::Reshown {
                room,
                messages,
                page,
            } => {
                if let Some(chats) = &mut self.chats {
                    chats.reshown(&room, messages);
                }
                self.page(room, Anchor::Newest, page);
            }
            Action::Page { room, anchor, page } => self.page(room, anchor, page),
            Action::Select(room) => {
                if let Some(chats) = &mut self.chats {
                    chats.set_current(room);
                }
            }
            Action::Error(message) => self.warn(message),
            Action::Dismiss(id) => self.errors.retain(|(i, _)| *i != id),
            Action::All(actions) => actions.into_iter().for_each(|a| self.apply(a)),
        }
    }

    /// Puts a page the node gave in `room`'s timeline.
    fn page(&mut self, room: RoomId, anchor: Anchor, page: Vec<(Arc<Event>, bool)>) {
        let items = page
            .iter()
            .map(|(event, late)| MessageItem::of(event, *late))
            .collect();
        self.timelines
            .entry(room)
            .or_default()
            .page(anchor, items, PAGE);
    }

    /// Shows `message` in the error list (the oldest goes past
    /// [`MAX_ERRORS`]).
    fn warn(&mut self, message: String) {
        self.next_error += 1;
        self.errors.push((self.next_error, message));
        if self.errors.len() > MAX_ERRORS {
            self.errors.remove(0);
        }
    }

    fn engine(&mut self, event: AppEvent) {
        let Some(chats) = &mut self.chats else {
            return;
        };
        chats.apply(&event);
        match event {
            AppEvent::RoomJoined { room, .. } => {
                self.timelines.entry(room).or_default();
            }
            AppEvent::RoomLeft { room } => {
                self.timelines.remove(&room);
            }
            AppEvent::Message {
                room, event, late, ..
            } => {
                let timeline = self.timelines.entry(room).or_default();
                timeline.arrived(MessageItem::of(&event, late));
            }
            AppEvent::Late { room, events } => {
                if let Some(timeline) = self.timelines.get_mut(&room) {
                    for item in timeline.messages.iter_mut() {
                        if events.iter().any(|id| *id == item.id()) {
                            item.late = true;
                        }
                    }
                }
            }
            AppEvent::Equivocation { room, author, seq } => {
                let who = chats
                    .get(&room)
                    .map_or_else(|| author.short(), |c| c.member_name(&author));
                let chat = chats.name(&room);
                self.warn(format!(
                    "{chat}: {who} signed two different messages as its message {seq} and showed \
                     them to different members. Its messages from that one on are hidden, for \
                     every member alike."
                ));
            }
            AppEvent::Invite { .. }
            | AppEvent::Member { .. }
            | AppEvent::CaughtUp { .. }
            | AppEvent::Reshown { .. } => {}
        }
    }
}

/// Puts `item` in its place in the canonical order (once: a restore racing
/// a delivery does not show a message twice).
fn insert(timeline: &mut Vec<MessageItem>, item: MessageItem) {
    if let Err(i) = timeline.binary_search_by(|m| m.key().cmp(&item.key())) {
        timeline.insert(i, item);
    }
}

/// What the composer shows about the text typed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposerCheck {
    /// Bytes used.
    pub bytes: usize,
    /// Whether it can be sent.
    pub sendable: bool,
    /// Why not, if not (and not simply empty).
    pub problem: Option<String>,
}

/// Checks a draft against the protocol's rules, before the engine does.
pub fn check_draft(text: &str) -> ComposerCheck {
    let bytes = text.len();
    if text.trim().is_empty() {
        return ComposerCheck {
            bytes,
            sendable: false,
            problem: None,
        };
    }
    match p2pchat_core::wire::validate_text(text) {
        Ok(()) => ComposerCheck {
            bytes,
            sendable: true,
            problem: None,
        },
        Err(e) => ComposerCheck {
            bytes,
            sendable: false,
            problem: Some(e.to_string()),
        },
    }
}

/// The composer's counter: `used / limit`.
pub fn byte_counter(bytes: usize) -> String {
    format!("{bytes} / {MAX_TEXT_LEN} bytes")
}

/// The relay's WebSocket URL: the `relay` query parameter when given,
/// otherwise `/relay` on the page's own origin (which `trunk serve`
/// proxies to the local node).
pub fn relay_url(page_protocol: &str, page_host: &str, relay_param: Option<&str>) -> String {
    if let Some(url) = relay_param.filter(|u| u.starts_with("ws://") || u.starts_with("wss://")) {
        return url.to_owned();
    }
    let scheme = if page_protocol == "https:" {
        "wss"
    } else {
        "ws"
    };
    format!("{scheme}://{page_host}/relay")
}

/// Delay before reconnect attempt `attempt` (1, 2, …): doubling from half
/// a second, at most 30 s.
pub fn backoff_ms(attempt: u32) -> u32 {
    let shift = attempt.saturating_sub(1).min(6);
    (500u32 << shift).min(30_000)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use p2pchat_core::chats::Delivery;
    use p2pchat_core::history::{Body, History};
    use p2pchat_core::membership::{Status, StatusChange};
    use p2pchat_core::{Identity, RoomName};

    fn peer(n: u8) -> PeerId {
        Identity::from_secret_bytes(&[n; 32]).peer_id()
    }

    fn room(n: u8) -> RoomId {
        RoomId::from_bytes([n; 16])
    }

    fn event(author: PeerId, seq: u64, lamport: u64) -> Arc<Event> {
        Arc::new(Event {
            id: EventId::new(author, seq),
            lamport,
            deps: Vec::new(),
            time: 0,
            name: "someone".into(),
            body: Body::Text {
                text: format!("{seq}@{lamport}"),
            },
            token: String::new(),
            floor: 0,
            token_len: 0,
            prev: None,
            refs: Vec::new(),
            digest: Default::default(),
        })
    }

    fn signed_in(me: PeerId) -> Model {
        let mut m = Model::default();
        m.apply(Action::Profile {
            name: "me".into(),
            peer: me,
        });
        m
    }

    fn joined(m: &mut Model, r: RoomId, name: &str) {
        m.apply(Action::Engine(AppEvent::RoomJoined {
            room: r,
            name: RoomName::new(name).unwrap(),
            chat_id: format!("p2pchat:{name}"),
            created: false,
            restored: false,
            joined_with: None,
        }));
    }

    fn message(m: &mut Model, r: RoomId, event: Arc<Event>, own: bool) {
        m.apply(Action::Engine(AppEvent::Message {
            room: r,
            event,
            late: false,
            own,
        }));
    }

    #[test]
    fn an_equivocation_warns_and_marks_the_author() {
        let mut m = signed_in(peer(1));
        let r = room(1);
        joined(&mut m, r, "general");
        m.apply(Action::Engine(AppEvent::Equivocation {
            room: r,
            author: peer(2),
            seq: 3,
        }));
        assert_eq!(m.errors.len(), 1);
        assert!(
            m.errors[0]
                .1
                .contains("two different messages as its message 3"),
            "{:?}",
            m.errors
        );
        let chat = m.chats.as_ref().and_then(|c| c.get(&r)).unwrap();
        assert!(chat.equivocates(&peer(2)));
    }

    #[test]
    fn every_status_has_a_distinct_label_class_and_code() {
        let all = [
            RelayStatus::NotConnected,
            RelayStatus::Connecting,
            RelayStatus::Connected,
            RelayStatus::Lost,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.label(), b.label());
                assert_ne!(a.css_class(), b.css_class());
                assert_ne!(a.code(), b.code());
            }
        }
        assert_eq!(Model::default().relay_status(), RelayStatus::NotConnected);
    }

    #[test]
    fn messages_sit_in_canonical_order_whatever_the_arrival_order() {
        let mut m = signed_in(peer(9));
        let r = room(1);
        joined(&mut m, r, "general");
        let (a, b) = (peer(1), peer(2));
        for e in [
            event(a, 2, 3),
            event(b, 1, 1),
            event(a, 1, 1),
            event(b, 2, 3),
        ] {
            message(&mut m, r, e, false);
        }
        let keys = |m: &Model| -> Vec<(u64, PeerId, u64)> {
            m.timelines[&r].messages.iter().map(|x| x.key()).collect()
        };
        let got = keys(&m);
        let mut want = got.clone();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(got.len(), 4);
        // A delivery racing the page that already holds it does not show a
        // message twice.
        let mut page = vec![(event(a, 1, 1), false), (event(b, 1, 1), false)];
        page.sort_by_key(|(e, _)| e.key());
        m.apply(Action::Restored {
            room: r,
            messages: 0,
            names: Vec::new(),
            page,
            members: Vec::new(),
        });
        message(&mut m, r, event(a, 1, 1), false);
        message(&mut m, r, event(a, 2, 3), false);
        assert_eq!(keys(&m).len(), 3);
    }

    /// A room of `n` messages by one author, as a node's history.
    fn long_history(n: u64) -> History {
        let mut history = History::new();
        for seq in 1..=n {
            history.offer(next(seq), 0).expect("a valid event");
        }
        history
    }

    /// Message `seq` of the long history's author.
    fn next(seq: u64) -> Event {
        let mut e = (*event(peer(1), seq, seq)).clone();
        // Ten a second: within the author's quota.
        e.time = seq * 100;
        if seq > 1 {
            e.deps = vec![EventId::new(peer(1), seq - 1)];
        }
        e
    }

    /// What the peer does when the timeline asks for a page.
    fn scroll(m: &mut Model, r: RoomId, history: &History, anchor: Anchor) {
        m.apply(Action::Page {
            room: r,
            anchor,
            page: history.page(anchor, PAGE),
        });
    }

    fn seqs(m: &Model, r: RoomId) -> Vec<u64> {
        m.timelines[&r].messages.iter().map(|x| x.seq).collect()
    }

    #[test]
    fn a_long_history_is_shown_a_window_at_a_time_back_to_the_first_message() {
        let mut m = signed_in(peer(9));
        let r = room(1);
        joined(&mut m, r, "general");
        let history = long_history(1_000);
        m.apply(Action::Reshown {
            room: r,
            messages: history.len(),
            page: history.page(Anchor::Newest, PAGE),
        });
        let t = &m.timelines[&r];
        assert_eq!(seqs(&m, r), (901..=1_000).collect::<Vec<_>>());
        assert!(t.older && !t.newer);

        // Up to the first message, a page at a time; never more than a
        // window held.
        let mut pages = 0;
        while m.timelines[&r].older {
            let first = m.timelines[&r].messages[0].order_key();
            scroll(&mut m, r, &history, Anchor::Before(first));
            assert!(m.timelines[&r].messages.len() <= MAX_LOADED);
            pages += 1;
            assert!(pages <= 20, "scrolling up never ends");
        }
        let t = &m.timelines[&r];
        assert_eq!(seqs(&m, r), (1..=MAX_LOADED as u64).collect::<Vec<_>>());
        assert!(t.newer, "the newest messages were let go");

        // A message arriving meanwhile is not loaded out of place...
        let mut history = history;
        let new = history
            .offer(next(1_001), 0)
            .expect("valid")
            .remove(0)
            .event;
        message(&mut m, r, new, false);
        assert_eq!(m.timelines[&r].messages.len(), MAX_LOADED);

        // ...and is there when the user scrolls back down to the end.
        while m.timelines[&r].newer {
            let last = m.timelines[&r].messages.last().unwrap().order_key();
            scroll(&mut m, r, &history, Anchor::After(last));
            assert!(m.timelines[&r].messages.len() <= MAX_LOADED);
            pages += 1;
            assert!(pages <= 40, "scrolling down never ends");
        }
        let got = seqs(&m, r);
        assert_eq!(got.last(), Some(&1_001));
        assert_eq!(got.len(), MAX_LOADED);
        assert!(m.timelines[&r].older);

        // At the end, new messages are loaded and the oldest let go.
        let new = history
            .offer(next(1_002), 0)
            .expect("valid")
            .remove(0)
            .event;
        message(&mut m, r, new, false);
        let got = seqs(&m, r);
        assert_eq!(got.last(), Some(&1_002));
        assert_eq!(got.len(), MAX_LOADED);
    }

    #[test]
    fn a_page_for_a_window_that_moved_since_is_ignored() {
        let mut m = signed_in(peer(9));
        let r = room(1);
        joined(&mut m, r, "general");
        let history = long_history(500);
        scroll(&mut m, r, &history, Anchor::Newest);
        let first = m.timelines[&r].messages[0].order_key();
        let stale = history.page(Anchor::Before(first), PAGE);
        scroll(&mut m, r, &history, Anchor::Before(first));
        let before = m.timelines[&r].clone();
        m.apply(Action::Page {
            room: r,
            anchor: Anchor::Before(first),
            page: stale,
        });
        assert_eq!(m.timelines[&r], before, "the same page twice is shown once");
    }

    #[test]
    fn the_room_on_screen_is_the_chat_models_current_chat() {
        let me = peer(9);
        let mut m = signed_in(me);
        let (r1, r2) = (room(1), room(2));
        joined(&mut m, r1, "one");
        joined(&mut m, r2, "two");
        message(&mut m, r1, event(peer(1), 1, 1), false);
        let shown = m.selected_room().unwrap();
        assert_eq!(shown.chat.name, "two");
        assert_eq!(m.chats.as_ref().unwrap().get(&r1).unwrap().unread, 1);
        m.apply(Action::Select(r1));
        let shown = m.selected_room().unwrap();
        assert_eq!((shown.chat.name.as_str(), shown.chat.unread), ("one", 0));
        assert_eq!(shown.timeline.messages.len(), 1);
        m.apply(Action::Engine(AppEvent::RoomLeft { room: r1 }));
        assert!(!m.timelines.contains_key(&r1));
        assert_eq!(m.selected_room().unwrap().chat.name, "two");
    }

    #[test]
    fn actions_given_together_apply_in_order() {
        let (r, a) = (room(1), peer(1));
        let one_by_one = {
            let mut m = signed_in(peer(9));
            joined(&mut m, r, "general");
            message(&mut m, r, event(a, 1, 1), false);
            message(&mut m, r, event(a, 2, 2), false);
            m.apply(Action::Engine(AppEvent::RoomLeft { room: r }));
            joined(&mut m, r, "general");
            message(&mut m, r, event(a, 3, 3), false);
            m
        };
        let mut together = signed_in(peer(9));
        let msg = |e: Arc<Event>| {
            Action::Engine(AppEvent::Message {
                room: r,
                event: e,
                late: false,
                own: false,
            })
        };
        let join = || {
            Action::Engine(AppEvent::RoomJoined {
                room: r,
                name: RoomName::new("general").unwrap(),
                chat_id: "p2pchat:general".into(),
                created: false,
                restored: false,
                joined_with: None,
            })
        };
        together.apply(Action::All(vec![
            join(),
            msg(event(a, 1, 1)),
            msg(event(a, 2, 2)),
            Action::Engine(AppEvent::RoomLeft { room: r }),
            join(),
            msg(event(a, 3, 3)),
        ]));
        assert_eq!(together, one_by_one);
        let seqs: Vec<u64> = together.timelines[&r]
            .messages
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(seqs, vec![3], "the room left dropped what came before");
    }

    #[test]
    fn own_messages_wait_for_the_relay_and_a_member() {
        let me = peer(9);
        let mut m = signed_in(me);
        let r = room(1);
        joined(&mut m, r, "g");
        m.apply(Action::Engine(AppEvent::Member {
            room: r,
            change: StatusChange {
                peer: peer(1),
                name: Some("bob".into()),
                from: None,
                to: Status::Online,
            },
        }));
        message(&mut m, r, event(me, 1, 1), true);
        let id = EventId::new(me, 1);
        let delivery = |m: &Model| m.selected_room().unwrap().chat.delivery(&me, &id);
        assert_eq!(delivery(&m), Delivery::Pending, "no relay yet");
        m.apply(Action::Connected(true));
        assert_eq!(delivery(&m), Delivery::Sent);
    }

    #[test]
    fn errors_are_kept_until_dismissed_and_bounded() {
        let mut m = Model::default();
        for i in 0..8 {
            m.apply(Action::Error(format!("e{i}")));
        }
        assert_eq!(m.errors.len(), MAX_ERRORS);
        assert_eq!(m.errors[0].1, "e3");
        let id = m.errors[0].0;
        m.apply(Action::Dismiss(id));
        assert_eq!(m.errors.len(), MAX_ERRORS - 1);
        assert!(m.errors.iter().all(|(i, _)| *i != id));
    }

    #[test]
    fn drafts_are_checked_like_the_engine_checks_them() {
        assert!(!check_draft("").sendable);
        assert!(!check_draft("   ").sendable);
        assert!(check_draft("hi").sendable);
        assert!(check_draft(&"x".repeat(MAX_TEXT_LEN)).sendable);
        let over = check_draft(&"x".repeat(MAX_TEXT_LEN + 1));
        assert!(!over.sendable);
        assert!(over.problem.unwrap_or_default().contains("16 KiB"));
        assert!(!check_draft("bell\u{7}").sendable);
        assert_eq!(byte_counter(5), format!("5 / {MAX_TEXT_LEN} bytes"));
    }

    #[test]
    fn the_relay_url_follows_the_page_unless_given() {
        assert_eq!(
            relay_url("http:", "127.0.0.1:8080", None),
            "ws://127.0.0.1:8080/relay"
        );
        assert_eq!(
            relay_url("https:", "chat.example", None),
            "wss://chat.example/relay"
        );
        assert_eq!(
            relay_url("http:", "x", Some("ws://127.0.0.1:9000/")),
            "ws://127.0.0.1:9000/"
        );
        assert_eq!(
            relay_url("http:", "x", Some("javascript:alert(1)")),
            "ws://x/relay"
        );
    }

    #[test]
    fn reconnects_back_off_to_thirty_seconds() {
        assert_eq!(backoff_ms(1), 500);
        assert_eq!(backoff_ms(2), 1_000);
        assert_eq!(backoff_ms(5), 8_000);
        assert_eq!(backoff_ms(100), 30_000);
    }
}
