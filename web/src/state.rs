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
use p2pchat_core::clock::EventId;
use p2pchat_core::history::Event;
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
}

/// The room on screen: the chat as core's chat model has it, and its
/// timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomItem {
    /// The chat: name, Chat ID, members, names, delivery state.
    pub chat: Chat,
    /// Messages in canonical order.
    pub messages: Vec<MessageItem>,
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
    /// A restored room's history (each event with its late mark) and
    /// members, as the node holds them.
    Restored {
        room: RoomId,
        events: Vec<(Arc<Event>, bool)>,
        members: Vec<Member>,
    },
    /// A room's history as the node shows it now, replacing the timeline
    /// (a fork hid an equivocator's messages; marks were recomputed).
    Reshown {
        room: RoomId,
        events: Vec<(Arc<Event>, bool)>,
    },
    /// The user opened a room.
    Select(RoomId),
    /// Something went wrong that the user must know.
    Error(String),
    /// The user dismissed an error.
    Dismiss(u64),
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
    /// Each room's messages, in canonical order.
    pub timelines: BTreeMap<RoomId, Vec<MessageItem>>,
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
            messages: self.timelines.get(&chat.id).cloned().unwrap_or_default(),
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
                events,
                members,
            } => {
                if let Some(chats) = &mut self.chats {
                    chats.restored(
                        &room,
                        events.iter().map(|(e, _)| e.as_ref()),
                        members.iter(),
                    );
                }
                let timeline = self.timelines.entry(room).or_default();
                for (event, late) in &events {
                    insert(timeline, MessageItem::of(event, *late));
                }
            }
            Action::Reshown { room, events } => {
                if let Some(chats) = &mut self.chats {
                    chats.reshown(&room, events.len());
                }
                let timeline = self.timelines.entry(room).or_default();
                timeline.clear();
                for (event, late) in &events {
                    insert(timeline, MessageItem::of(event, *late));
                }
            }
            Action::Select(room) => {
                if let Some(chats) = &mut self.chats {
                    chats.set_current(room);
                }
            }
            Action::Error(message) => self.warn(message),
            Action::Dismiss(id) => self.errors.retain(|(i, _)| *i != id),
        }
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
                insert(timeline, MessageItem::of(&event, late));
            }
            AppEvent::Late { room, events } => {
                if let Some(timeline) = self.timelines.get_mut(&room) {
                    for item in timeline.iter_mut() {
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
    use p2pchat_core::history::Body;
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
        // A restore racing a delivery does not show a message twice.
        m.apply(Action::Restored {
            room: r,
            events: vec![(event(a, 1, 1), false)],
            members: Vec::new(),
        });
        let got: Vec<(u64, PeerId, u64)> = m.timelines[&r].iter().map(|x| x.key()).collect();
        let mut want = got.clone();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(got.len(), 4);
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
        assert_eq!(shown.messages.len(), 1);
        m.apply(Action::Engine(AppEvent::RoomLeft { room: r1 }));
        assert!(!m.timelines.contains_key(&r1));
        assert_eq!(m.selected_room().unwrap().chat.name, "two");
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
