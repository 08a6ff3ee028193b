//! What the chat page shows, read in one script ([`PAGE_JS`]) so that a
//! snapshot is never torn between two renders. The selectors and
//! attributes of the web UI's DOM are here and in [`super::chat_page`]
//! only.

use std::fmt;

use serde_json::Value;

/// Reads the whole UI state.
pub(crate) const PAGE_JS: &str = r#"
const q = (s, r) => (r || document).querySelector(s);
const all = (s, r) => Array.from((r || document).querySelectorAll(s));
const text = e => e == null ? null
    : (e.tagName === 'INPUT' || e.tagName === 'TEXTAREA' ? e.value : e.textContent).trim();
const attr = (e, a) => e == null ? null : e.getAttribute(a);
const shown = e => e != null && e.getClientRects().length > 0;
return {
  status: attr(q('#connection-status'), 'data-status'),
  username_prompt: shown(q('#username')),
  new_chat_form: shown(q('#new-chat-name')),
  room_name: text(q('#room-name')),
  chat_id: text(q('#chat-id')),
  copy_button: q('#copy-chat-id') != null,
  rooms: all('#rooms .room').map(r => ({
    name: attr(r, 'data-name'), unread: text(q('.unread', r)) })),
  messages: all('#timeline .message').map(m => ({
    author: attr(m, 'data-author'), seq: attr(m, 'data-seq'),
    lamport: attr(m, 'data-lamport'), status: attr(m, 'data-status'),
    late: attr(m, 'data-late'), name: text(q('.author', m)),
    time: text(q('.time', m)), text: text(q('.text', m)) })),
  older: attr(q('#timeline'), 'data-older') === 'true',
  newer: attr(q('#timeline'), 'data-newer') === 'true',
  beginning: q('#timeline #beginning') != null,
  jump_newest: shown(q('#jump-newest')),
  members: all('#members .member').map(m => ({
    name: text(q('.name', m)), status: attr(m, 'data-status') })),
  errors: all('#errors .error').map(text),
  other_tab: q('#other-tab') != null,
  confirm_leave: shown(q('#confirm-leave')),
};
"#;

/// A snapshot of what the page shows.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The relay connection status (`#connection-status`), e.g.
    /// `connected`.
    pub status: Option<String>,
    /// The sign-in prompt for a username is shown.
    pub username_prompt: bool,
    /// The form to create a room is shown (the main screen).
    pub new_chat_form: bool,
    /// The open room's title.
    pub room_name: Option<String>,
    /// The open room's Chat ID, as shown to be shared.
    pub chat_id: Option<String>,
    /// There is a button to copy the Chat ID.
    pub copy_button: bool,
    /// The room list.
    pub rooms: Vec<Room>,
    /// The open room's timeline, top to bottom.
    pub messages: Vec<Message>,
    /// The timeline has older messages than those it shows (loaded as
    /// the user scrolls up).
    pub older: bool,
    /// The timeline has newer messages than those it shows (the user
    /// scrolled back).
    pub newer: bool,
    /// The timeline shows the beginning of the chat.
    pub beginning: bool,
    /// The button that jumps back to the newest messages is shown.
    pub jump_newest: bool,
    /// The open room's member list.
    pub members: Vec<Member>,
    /// The error messages shown.
    pub errors: Vec<String>,
    /// The notice that p2pchat is already open in another tab.
    pub other_tab: bool,
    /// Leave's question: erase the room, or stay?
    pub confirm_leave: bool,
}

/// One room in the room list.
#[derive(Debug, Clone, Default)]
pub struct Room {
    /// Its name.
    pub name: String,
    /// Its unread badge, if any.
    pub unread: Option<String>,
}

/// One message in the timeline.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// The author's peer id (hex).
    pub author: String,
    /// The author's sequence number.
    pub seq: Option<u64>,
    /// The Lamport time.
    pub lamport: Option<u64>,
    /// `sent` (own), `received`, or on the way.
    pub status: String,
    /// The "arrived late" marker.
    pub late: String,
    /// The author's name as shown.
    pub name: String,
    /// The time as shown.
    pub time: String,
    /// The text.
    pub text: String,
}

/// One member in the member list.
#[derive(Debug, Clone, Default)]
pub struct Member {
    /// The name shown.
    pub name: String,
    /// `online` or not.
    pub status: String,
}

impl Page {
    pub(crate) fn from_json(v: &Value) -> Page {
        let opt = |v: &Value, k: &str| v[k].as_str().map(str::to_owned);
        let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let num = |v: &Value, k: &str| v[k].as_str().and_then(|n| n.parse().ok());
        let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
        Page {
            status: opt(v, "status"),
            username_prompt: v["username_prompt"] == true,
            new_chat_form: v["new_chat_form"] == true,
            room_name: opt(v, "room_name"),
            chat_id: opt(v, "chat_id"),
            copy_button: v["copy_button"] == true,
            rooms: list("rooms")
                .iter()
                .map(|r| Room {
                    name: s(r, "name"),
                    unread: opt(r, "unread"),
                })
                .collect(),
            older: v["older"] == true,
            newer: v["newer"] == true,
            beginning: v["beginning"] == true,
            jump_newest: v["jump_newest"] == true,
            messages: list("messages")
                .iter()
                .map(|m| Message {
                    author: s(m, "author"),
                    seq: num(m, "seq"),
                    lamport: num(m, "lamport"),
                    status: s(m, "status"),
                    late: s(m, "late"),
                    name: s(m, "name"),
                    time: s(m, "time"),
                    text: s(m, "text"),
                })
                .collect(),
            members: list("members")
                .iter()
                .map(|m| Member {
                    name: s(m, "name"),
                    status: s(m, "status"),
                })
                .collect(),
            errors: list("errors")
                .iter()
                .map(|e| e.as_str().unwrap_or_default().to_owned())
                .collect(),
            other_tab: v["other_tab"] == true,
            confirm_leave: v["confirm_leave"] == true,
        }
    }

    /// Connected to the relay.
    pub fn connected(&self) -> bool {
        self.status.as_deref() == Some("connected")
    }

    /// Signed in: the main screen, no username prompt.
    pub fn main_screen(&self) -> bool {
        self.new_chat_form && !self.username_prompt
    }

    /// The room list has a room with this name.
    pub fn has_room(&self, name: &str) -> bool {
        self.rooms.iter().any(|r| r.name == name)
    }

    /// The open room's title shows `name`.
    pub fn shows_room(&self, name: &str) -> bool {
        self.room_name.as_deref().is_some_and(|n| n.contains(name))
    }

    /// The only timeline message with this text (none if it is missing or
    /// shown twice).
    pub fn message(&self, text: &str) -> Option<&Message> {
        let mut found = self.messages.iter().filter(|m| m.text == text);
        match (found.next(), found.next()) {
            (Some(m), None) => Some(m),
            _ => None,
        }
    }

    /// The member list shows `name` online.
    pub fn member_online(&self, name: &str) -> bool {
        self.members.iter().any(|m| m.name == name && m.online())
    }

    /// An error message shown contains `text`.
    pub fn error_mentions(&self, text: &str) -> bool {
        self.errors.iter().any(|e| e.contains(text))
    }
}

impl Message {
    /// Shown as sent (an own message).
    pub fn sent(&self) -> bool {
        self.status == "sent"
    }

    /// Shown as received (another peer's message).
    pub fn received(&self) -> bool {
        self.status == "received"
    }
}

impl Member {
    /// Shown online.
    pub fn online(&self) -> bool {
        self.status == "online"
    }
}

impl fmt::Display for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  connection-status={:?} username prompt={} new-chat form={} other-tab notice={}",
            self.status, self.username_prompt, self.new_chat_form, self.other_tab
        )?;
        writeln!(
            f,
            "  room-name={:?} chat-id={:?} copy button={}",
            self.room_name, self.chat_id, self.copy_button
        )?;
        let rooms: Vec<(&str, Option<&str>)> = self
            .rooms
            .iter()
            .map(|r| (r.name.as_str(), r.unread.as_deref()))
            .collect();
        writeln!(f, "  rooms (name, unread): {rooms:?}")?;
        writeln!(f, "  timeline ({} messages):", self.messages.len())?;
        for m in &self.messages {
            writeln!(
                f,
                "    {} seq={:?} lamport={:?} status={:?} late={:?} author={:?} time={:?} text={:?}",
                short(&m.author),
                m.seq,
                m.lamport,
                m.status,
                m.late,
                m.name,
                m.time,
                m.text
            )?;
        }
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.status))
            .collect();
        writeln!(f, "  members: {members:?}")?;
        write!(f, "  errors: {:?}", self.errors)
    }
}

/// The first 8 characters of a peer id.
pub fn short(peer: &str) -> &str {
    peer.get(..8).unwrap_or(peer)
}
