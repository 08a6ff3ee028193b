//! The UI's state, in one place, kept apart from rendering so it can be
//! tested alone (natively and in the browser).
//!
//! The peer (the engine, the relay connection, storage) turns what happens
//! into [`Action`]s; [`Model::apply`] is the only place the state changes.
//! Components read the model and send commands back to the peer; they never
//! change the model themselves.

use std::collections::BTreeMap;

use p2pchat_core::membership::Status;
use p2pchat_core::wire::MAX_TEXT_LEN;
use p2pchat_core::{PeerId, RoomId};

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

/// Where one of our own messages stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Stored here; not handed to the network yet (no relay, or nobody
    /// online): anti-entropy delivers it once a member is reachable.
    Pending,
    /// Stored and handed to the relay for the members online.
    Sent,
    /// Someone else's message.
    Received,
}

impl Delivery {
    /// `data-status` and CSS word.
    pub fn code(self) -> &'static str {
        match self {
            Delivery::Pending => "pending",
            Delivery::Sent => "sent",
            Delivery::Received => "received",
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
    /// Author's clock, ms since the Unix epoch.
    pub time: u64,
    /// Text.
    pub text: String,
    /// Placed before a message shown earlier.
    pub late: bool,
    /// Where it stands.
    pub delivery: Delivery,
}

impl MessageItem {
    fn key(&self) -> (u64, PeerId, u64) {
        (self.lamport, self.author, self.seq)
    }
}

/// A member of a room as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberItem {
    /// Display name, once known.
    pub name: Option<String>,
    /// Liveness.
    pub status: Status,
}

/// A room in the sidebar and its timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomItem {
    /// Id.
    pub id: RoomId,
    /// Name.
    pub name: String,
    /// The Chat ID to share (refreshed as addresses become known).
    pub chat_id: String,
    /// Messages in canonical order.
    pub messages: Vec<MessageItem>,
    /// Messages received while another room was shown.
    pub unread: usize,
    /// Other members.
    pub members: BTreeMap<PeerId, MemberItem>,
}

impl RoomItem {
    /// `name`, or `name#shortid` when another author or member of the room
    /// goes by the same name.
    pub fn shown_name(&self, peer: &PeerId, name: &str) -> String {
        let clash = self
            .messages
            .iter()
            .any(|m| m.name == name && m.author != *peer)
            || self
                .members
                .iter()
                .any(|(p, m)| p != peer && m.name.as_deref() == Some(name));
        if clash {
            format!("{name}#{}", peer.short())
        } else {
            name.to_owned()
        }
    }

    /// Members online.
    pub fn online(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.status == Status::Online)
            .count()
    }
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
    /// A room was created, joined or restored.
    RoomJoined {
        room: RoomId,
        name: String,
        chat_id: String,
    },
    /// A room's shareable Chat ID changed.
    ChatId { room: RoomId, chat_id: String },
    /// A room was left.
    RoomLeft { room: RoomId },
    /// A message was delivered (or restored).
    Message { room: RoomId, item: MessageItem },
    /// Our pending messages in `room` went out.
    PendingSent { room: RoomId },
    /// A member appeared or changed status.
    Member {
        room: RoomId,
        peer: PeerId,
        name: Option<String>,
        status: Status,
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
    /// Rooms, in the order they were joined.
    pub rooms: Vec<RoomItem>,
    /// The room shown.
    pub selected: Option<RoomId>,
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

    /// The room shown, if any.
    pub fn selected_room(&self) -> Option<&RoomItem> {
        let id = self.selected?;
        self.rooms.iter().find(|r| r.id == id)
    }

    fn room_mut(&mut self, id: &RoomId) -> Option<&mut RoomItem> {
        self.rooms.iter_mut().find(|r| r.id == *id)
    }

    /// Applies one action.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Ready => self.ready = true,
            Action::Elsewhere(elsewhere) => self.elsewhere = elsewhere,
            Action::Profile { name, peer } => self.me = Some((name, peer)),
            Action::Relay(status) => self.relay = Some(status),
            Action::RoomJoined {
                room,
                name,
                chat_id,
            } => {
                if let Some(r) = self.room_mut(&room) {
                    r.chat_id = chat_id;
                } else {
                    self.rooms.push(RoomItem {
                        id: room,
                        name,
                        chat_id,
                        messages: Vec::new(),
                        unread: 0,
                        members: BTreeMap::new(),
                    });
                }
                self.selected = Some(room);
            }
            Action::ChatId { room, chat_id } => {
                if let Some(r) = self.room_mut(&room) {
                    r.chat_id = chat_id;
                }
            }
            Action::RoomLeft { room } => {
                self.rooms.retain(|r| r.id != room);
                if self.selected == Some(room) {
                    self.selected = self.rooms.first().map(|r| r.id);
                }
            }
            Action::Message { room, item } => {
                let shown = self.selected == Some(room);
                let Some(r) = self.room_mut(&room) else {
                    return;
                };
                match r.messages.binary_search_by(|m| m.key().cmp(&item.key())) {
                    Ok(i) => {
                        // Already there (a restore racing a delivery): keep
                        // the better delivery state.
                        if item.delivery == Delivery::Sent {
                            r.messages[i].delivery = Delivery::Sent;
                        }
                    }
                    Err(i) => {
                        if item.delivery == Delivery::Received && !shown {
                            r.unread += 1;
                        }
                        r.messages.insert(i, item);
                    }
                }
            }
            Action::PendingSent { room } => {
                if let Some(r) = self.room_mut(&room) {
                    for m in &mut r.messages {
                        if m.delivery == Delivery::Pending {
                            m.delivery = Delivery::Sent;
                        }
                    }
                }
            }
            Action::Member {
                room,
                peer,
                name,
                status,
            } => {
                if let Some(r) = self.room_mut(&room) {
                    let m = r
                        .members
                        .entry(peer)
                        .or_insert(MemberItem { name: None, status });
                    m.status = status;
                    if name.is_some() {
                        m.name = name;
                    }
                }
            }
            Action::Select(room) => {
                if let Some(r) = self.room_mut(&room) {
                    r.unread = 0;
                    self.selected = Some(room);
                }
            }
            Action::Error(message) => {
                self.next_error += 1;
                self.errors.push((self.next_error, message));
                if self.errors.len() > MAX_ERRORS {
                    self.errors.remove(0);
                }
            }
            Action::Dismiss(id) => self.errors.retain(|(i, _)| *i != id),
        }
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
    use p2pchat_core::Identity;

    fn peer(n: u8) -> PeerId {
        Identity::from_secret_bytes(&[n; 32]).peer_id()
    }

    fn room(n: u8) -> RoomId {
        let mut bytes = [0u8; 16];
        bytes[0] = n;
        // Room ids are opaque; any 16 bytes in hex deserialize.
        serde_json::from_str(&format!("\"{}\"", hex::encode(bytes))).unwrap()
    }

    fn msg(author: PeerId, seq: u64, lamport: u64, name: &str, delivery: Delivery) -> MessageItem {
        MessageItem {
            author,
            seq,
            lamport,
            name: name.into(),
            time: 0,
            text: format!("{name} {seq}"),
            late: false,
            delivery,
        }
    }

    fn joined(m: &mut Model, r: RoomId, name: &str) {
        m.apply(Action::RoomJoined {
            room: r,
            name: name.into(),
            chat_id: format!("p2pchat:{name}"),
        });
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
        let mut m = Model::default();
        let r = room(1);
        joined(&mut m, r, "general");
        let (a, b) = (peer(1), peer(2));
        for item in [
            msg(a, 2, 3, "a", Delivery::Received),
            msg(b, 1, 1, "b", Delivery::Received),
            msg(a, 1, 1, "a", Delivery::Received),
            msg(b, 2, 3, "b", Delivery::Received),
            msg(a, 1, 1, "a", Delivery::Received),
        ] {
            m.apply(Action::Message { room: r, item });
        }
        let got: Vec<(u64, PeerId, u64)> = m.rooms[0].messages.iter().map(|x| x.key()).collect();
        let mut want = got.clone();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(got.len(), 4, "duplicates are not shown twice");
    }

    #[test]
    fn unread_counts_only_other_rooms_and_reset_on_open() {
        let mut m = Model::default();
        let (r1, r2) = (room(1), room(2));
        joined(&mut m, r1, "one");
        joined(&mut m, r2, "two");
        assert_eq!(m.selected, Some(r2));
        m.apply(Action::Message {
            room: r1,
            item: msg(peer(1), 1, 1, "a", Delivery::Received),
        });
        m.apply(Action::Message {
            room: r2,
            item: msg(peer(1), 1, 1, "a", Delivery::Received),
        });
        m.apply(Action::Message {
            room: r1,
            item: msg(peer(2), 1, 1, "me", Delivery::Sent),
        });
        assert_eq!(m.rooms[0].unread, 1);
        assert_eq!(m.rooms[1].unread, 0);
        m.apply(Action::Select(r1));
        assert_eq!(m.rooms[0].unread, 0);
        assert_eq!(m.selected_room().map(|r| r.name.as_str()), Some("one"));
    }

    #[test]
    fn pending_messages_become_sent() {
        let mut m = Model::default();
        let r = room(1);
        joined(&mut m, r, "g");
        m.apply(Action::Message {
            room: r,
            item: msg(peer(1), 1, 1, "me", Delivery::Pending),
        });
        assert_eq!(m.rooms[0].messages[0].delivery, Delivery::Pending);
        m.apply(Action::PendingSent { room: r });
        assert_eq!(m.rooms[0].messages[0].delivery, Delivery::Sent);
    }

    #[test]
    fn clashing_names_get_a_short_id() {
        let mut m = Model::default();
        let r = room(1);
        joined(&mut m, r, "g");
        let (a1, a2, b) = (peer(1), peer(2), peer(3));
        m.apply(Action::Message {
            room: r,
            item: msg(a1, 1, 1, "alice", Delivery::Received),
        });
        m.apply(Action::Message {
            room: r,
            item: msg(b, 1, 1, "bob", Delivery::Received),
        });
        let room = &m.rooms[0];
        assert_eq!(room.shown_name(&a1, "alice"), "alice");
        m.apply(Action::Member {
            room: r,
            peer: a2,
            name: Some("alice".into()),
            status: Status::Online,
        });
        let room = &m.rooms[0];
        assert_eq!(
            room.shown_name(&a1, "alice"),
            format!("alice#{}", a1.short())
        );
        assert_eq!(room.shown_name(&b, "bob"), "bob");
        assert_eq!(room.online(), 1);
    }

    #[test]
    fn members_keep_their_names_and_rooms_can_be_left() {
        let mut m = Model::default();
        let (r1, r2) = (room(1), room(2));
        joined(&mut m, r1, "one");
        joined(&mut m, r2, "two");
        let p = peer(4);
        m.apply(Action::Member {
            room: r2,
            peer: p,
            name: Some("dora".into()),
            status: Status::Online,
        });
        m.apply(Action::Member {
            room: r2,
            peer: p,
            name: None,
            status: Status::Offline,
        });
        let member = &m.rooms[1].members[&p];
        assert_eq!(member.name.as_deref(), Some("dora"));
        assert_eq!(member.status, Status::Offline);
        m.apply(Action::RoomLeft { room: r2 });
        assert_eq!(m.rooms.len(), 1);
        assert_eq!(m.selected, Some(r1));
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
