//! Chats: the user's chats as every front end shows them.
//!
//! The terminal and the web page render one model, [`Chats`], fed the
//! node's [`AppEvent`]s with [`Chats::apply`]. It is application state, not
//! protocol: nothing here changes what the node sends. It holds:
//!
//! - **Chats in join order**, each with its name and its members' names
//!   and statuses.
//! - **Names.** Display names are not identities: when two people in a
//!   chat go by one name, each is shown as `name#1a2b3c4d` (the short form
//!   of its peer id); a name nobody else uses is shown as it is.
//! - **The current chat**: where a line without a command goes, and the
//!   chat on screen. A chat becomes current when it is created, joined or
//!   picked ([`Chats::set_current`]); when the current chat is left, the
//!   last one joined becomes current.
//! - **Invites.** The Chat ID to share (the node announces a new one when
//!   the members online, which it names as bootstrap peers, change), and
//!   every Chat ID seen for the chat, so that a chat can be named by its
//!   name, by a whole Chat ID, or by the start of any of them
//!   ([`Chats::resolve`]).
//! - **Unread counts**: others' messages that arrived while another chat
//!   was current; picking the chat clears them.
//! - **Delivery state** of this node's own messages: *pending* while no
//!   member is reachable (no member online, or, in the browser, no relay),
//!   *sent* once one is (anti-entropy delivers pending messages as soon as
//!   a member can be reached).
//! - **Equivocators**: members proven to have signed two different
//!   messages under one number; every front end warns when one is found
//!   and marks it next to its name.
//! - **Caught up**: "you now hold everything the members had", told once
//!   per state rather than at every repaired gap.
//!
//! Memory is bounded by the chats and members the node holds: the names
//! remembered per chat are capped at [`MAX_NAMES`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::chat_id::{ChatId, PREFIX};
use crate::clock::EventId;
use crate::identity::PeerId;
use crate::membership::{Member, Status};
use crate::output::AppEvent;
use crate::room::RoomId;

/// Shortest Chat ID prefix (after `p2pchat:`) accepted, so that a typo of
/// one or two letters does not silently pick a chat.
pub const MIN_PREFIX: usize = 4;
/// Chat ID characters shown to tell chats apart.
pub const SHOWN_PREFIX: usize = 8;
/// Chat IDs remembered per chat for lookup.
pub const MAX_KNOWN_IDS: usize = 16;
/// Names (and peers per name) remembered per chat to tell people apart.
pub const MAX_NAMES: usize = 4_096;

/// Why a chat could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No chat matches.
    #[error("no chat {0:?} here; /chats lists yours")]
    NotFound(String),
    /// Several chats match.
    #[error("{query:?} could be any of these chats: {}; name one by the start of its Chat ID", .candidates.join(", "))]
    Ambiguous {
        /// What was asked.
        query: String,
        /// `name (p2pchat:prefix…)` for each match.
        candidates: Vec<String>,
    },
    /// No current chat yet.
    #[error(
        "no current chat: create one with /create_chat <name> or join with /join_chat <Chat ID>"
    )]
    NoCurrent,
}

/// Where one message stands, as its reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Ours, stored here; no member reachable yet.
    Pending,
    /// Ours, handed to the network with a member reachable.
    Sent,
    /// Someone else's.
    Received,
}

impl Delivery {
    /// A stable word for scripts, tests and CSS.
    pub fn code(self) -> &'static str {
        match self {
            Delivery::Pending => "pending",
            Delivery::Sent => "sent",
            Delivery::Received => "received",
        }
    }
}

/// A member of a chat, as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Display name, once known.
    pub name: Option<String>,
    /// Liveness.
    pub status: Status,
}

/// Who goes by which name in one chat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NameBook(HashMap<String, BTreeSet<PeerId>>);

impl NameBook {
    fn note(&mut self, name: &str, peer: PeerId) {
        if self.0.len() >= MAX_NAMES && !self.0.contains_key(name) {
            return;
        }
        let peers = self.0.entry(name.to_owned()).or_default();
        if peers.len() < MAX_NAMES {
            peers.insert(peer);
        }
    }

    fn clashes(&self, name: &str, peer: &PeerId) -> bool {
        self.0
            .get(name)
            .is_some_and(|peers| peers.iter().any(|p| p != peer))
    }
}

/// One chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    /// The room.
    pub id: RoomId,
    /// Its name.
    pub name: String,
    /// The Chat ID to share now.
    pub chat_id: String,
    /// Every Chat ID seen for it, the first one first.
    known_ids: Vec<String>,
    /// Other members, by peer id.
    pub members: BTreeMap<PeerId, MemberView>,
    names: NameBook,
    /// Others' messages that arrived while another chat was current.
    pub unread: usize,
    /// Messages in the chat's history.
    pub messages: usize,
    /// Our messages not yet sent to a reachable member.
    pending: BTreeSet<EventId>,
    /// History length when "caught up" was last told.
    caught_up_at: Option<usize>,
    /// Members proven to have signed two different messages under one
    /// number, with that number.
    pub equivocators: BTreeMap<PeerId, u64>,
}

impl Chat {
    /// Whether `peer` was proven to equivocate in this chat.
    pub fn equivocates(&self, peer: &PeerId) -> bool {
        self.equivocators.contains_key(peer)
    }

    /// `name`, or `name#1a2b3c4d` when someone else in the chat goes by
    /// the same name.
    pub fn shown_name(&self, peer: &PeerId, name: &str) -> String {
        if self.names.clashes(name, peer) {
            format!("{name}#{}", peer.short())
        } else {
            name.to_owned()
        }
    }

    /// A member's shown name (its short id while its name is unknown).
    pub fn member_name(&self, peer: &PeerId) -> String {
        match self.members.get(peer).and_then(|m| m.name.as_deref()) {
            Some(name) => self.shown_name(peer, name),
            None => format!("peer {}", peer.short()),
        }
    }

    /// Where message `id` stands for a reader who is `me`.
    pub fn delivery(&self, me: &PeerId, id: &EventId) -> Delivery {
        if id.author != *me {
            Delivery::Received
        } else if self.pending.contains(id) {
            Delivery::Pending
        } else {
            Delivery::Sent
        }
    }

    /// Our messages still pending.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Members online.
    pub fn online(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.status == Status::Online)
            .count()
    }

    /// `p2pchat:` and the first characters of the chat's first Chat ID:
    /// enough to name it in a command when two chats share a name.
    pub fn short_id(&self) -> String {
        short_chat_id(self.known_ids.first().unwrap_or(&self.chat_id))
    }

    fn live(&self) -> bool {
        self.members
            .values()
            .any(|m| matches!(m.status, Status::Online | Status::Suspect))
    }

    fn remember_id(&mut self, chat_id: &str) {
        if !self.known_ids.iter().any(|id| id == chat_id) && self.known_ids.len() < MAX_KNOWN_IDS {
            self.known_ids.push(chat_id.to_owned());
        }
    }

    fn matches_prefix(&self, bare: &str) -> bool {
        self.known_ids
            .iter()
            .any(|id| id.strip_prefix(PREFIX).unwrap_or(id).starts_with(bare))
    }
}

/// The user's chats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chats {
    me: PeerId,
    my_name: String,
    chats: Vec<Chat>,
    current: Option<RoomId>,
    connected: bool,
}

impl Chats {
    /// No chats yet, for the user `me` called `my_name`. Datagrams can
    /// leave (see [`Chats::set_connected`]).
    pub fn new(me: PeerId, my_name: &str) -> Self {
        Chats {
            me,
            my_name: my_name.to_owned(),
            chats: Vec::new(),
            current: None,
            connected: true,
        }
    }

    /// The user.
    pub fn me(&self) -> PeerId {
        self.me
    }

    /// Takes one event from the node. Returns whether it is worth telling
    /// the user about (a new Chat ID to share is not; a "caught up" that
    /// changes nothing is not).
    pub fn apply(&mut self, event: &AppEvent) -> bool {
        match event {
            AppEvent::RoomJoined {
                room,
                name,
                chat_id,
                joined_with,
                ..
            } => {
                let me = self.me;
                let my_name = self.my_name.clone();
                match self.chat_mut(room) {
                    Some(chat) => {
                        chat.chat_id.clone_from(chat_id);
                        chat.remember_id(chat_id);
                    }
                    None => {
                        let mut chat = Chat {
                            id: *room,
                            name: name.as_str().to_owned(),
                            chat_id: chat_id.clone(),
                            known_ids: vec![chat_id.clone()],
                            members: BTreeMap::new(),
                            names: NameBook::default(),
                            unread: 0,
                            messages: 0,
                            pending: BTreeSet::new(),
                            caught_up_at: None,
                            equivocators: BTreeMap::new(),
                        };
                        chat.names.note(&my_name, me);
                        self.chats.push(chat);
                    }
                }
                if let (Some(chat), Some(given)) = (self.chat_mut(room), joined_with) {
                    chat.remember_id(given);
                }
                self.current = Some(*room);
                true
            }
            AppEvent::RoomLeft { room } => {
                self.chats.retain(|c| c.id != *room);
                if self.current == Some(*room) {
                    self.current = self.chats.last().map(|c| c.id);
                }
                true
            }
            AppEvent::Invite { room, chat_id } => {
                if let Some(chat) = self.chat_mut(room) {
                    chat.chat_id.clone_from(chat_id);
                    chat.remember_id(chat_id);
                }
                false
            }
            AppEvent::Message {
                room, event, own, ..
            } => {
                let current = self.current == Some(*room);
                let reachable = self.connected;
                let Some(chat) = self.chat_mut(room) else {
                    return false;
                };
                chat.names.note(&event.name, event.id.author);
                chat.messages += 1;
                if *own {
                    if !(reachable && chat.live()) {
                        chat.pending.insert(event.id);
                    }
                } else if !current {
                    chat.unread += 1;
                }
                true
            }
            AppEvent::Member { room, change } => {
                let connected = self.connected;
                let Some(chat) = self.chat_mut(room) else {
                    return false;
                };
                let member = chat.members.entry(change.peer).or_insert(MemberView {
                    name: None,
                    status: change.to,
                });
                member.status = change.to;
                if change.name.is_some() {
                    member.name.clone_from(&change.name);
                }
                if let Some(name) = &change.name {
                    chat.names.note(name, change.peer);
                }
                if connected && change.to == Status::Online {
                    chat.pending.clear();
                }
                true
            }
            AppEvent::Late { room, events } => self.chat_mut(room).is_some() && !events.is_empty(),
            AppEvent::Reshown { room } => self.chat_mut(room).is_some(),
            AppEvent::Equivocation { room, author, seq } => {
                let Some(chat) = self.chat_mut(room) else {
                    return false;
                };
                if chat.equivocators.len() >= MAX_NAMES {
                    return false;
                }
                chat.equivocators.insert(*author, *seq);
                true
            }
            AppEvent::CaughtUp { room, events } => {
                let Some(chat) = self.chat_mut(room) else {
                    return false;
                };
                if chat.caught_up_at == Some(*events) {
                    return false;
                }
                chat.caught_up_at = Some(*events);
                true
            }
        }
    }

    /// The chat's history was shown again ([`AppEvent::Reshown`]) and now
    /// holds `messages`.
    pub fn reshown(&mut self, room: &RoomId, messages: usize) {
        if let Some(chat) = self.chat_mut(room) {
            chat.messages = messages;
        }
    }

    /// A restored chat's history and members, as the node holds them after
    /// a restore: `messages` counted (nothing unread, nothing pending), the
    /// names its authors wrote under noted ([`crate::history::History::names`]),
    /// members listed with their names.
    pub fn restored<'e, 'n>(
        &mut self,
        room: &RoomId,
        messages: usize,
        names: impl IntoIterator<Item = (&'n str, PeerId)>,
        members: impl IntoIterator<Item = &'e Member>,
    ) {
        if let Some(chat) = self.chat_mut(room) {
            for (name, author) in names {
                chat.names.note(name, author);
            }
            chat.messages += messages;
            for m in members {
                if let Some(name) = &m.name {
                    chat.names.note(name, m.peer);
                }
                chat.members.insert(
                    m.peer,
                    MemberView {
                        name: m.name.clone(),
                        status: m.status,
                    },
                );
            }
        }
    }

    /// Whether datagrams can leave this peer (the browser's relay is up and
    /// knows our address). When they can again, pending messages in chats
    /// with a member reachable count as sent.
    pub fn set_connected(&mut self, connected: bool) {
        self.connected = connected;
        if connected {
            for chat in &mut self.chats {
                if chat.live() {
                    chat.pending.clear();
                }
            }
        }
    }

    /// The chats, in the order they were joined.
    pub fn iter(&self) -> impl Iterator<Item = &Chat> {
        self.chats.iter()
    }

    /// Number of chats.
    pub fn len(&self) -> usize {
        self.chats.len()
    }

    /// Whether there is no chat.
    pub fn is_empty(&self) -> bool {
        self.chats.is_empty()
    }

    /// One chat.
    pub fn get(&self, room: &RoomId) -> Option<&Chat> {
        self.chats.iter().find(|c| c.id == *room)
    }

    /// A chat's name, or its room id when it is not known.
    pub fn name(&self, room: &RoomId) -> String {
        self.get(room)
            .map_or_else(|| room.to_string(), |c| c.name.clone())
    }

    /// The current chat.
    pub fn current(&self) -> Option<RoomId> {
        self.current
    }

    /// Makes `room` current and clears its unread count.
    pub fn set_current(&mut self, room: RoomId) {
        if let Some(chat) = self.chat_mut(&room) {
            chat.unread = 0;
            self.current = Some(room);
        }
    }

    /// The chat named by `query` — its name, a whole Chat ID of it, or the
    /// start (at least [`MIN_PREFIX`] characters, with or without
    /// `p2pchat:`) of any Chat ID seen for it — or the current one when
    /// `query` is `None`. A name that several chats share is an error that
    /// lists them with prefixes that tell them apart.
    pub fn resolve(&self, query: Option<&str>) -> Result<RoomId, LookupError> {
        let Some(query) = query else {
            return self.current.ok_or(LookupError::NoCurrent);
        };
        let by_name: Vec<&Chat> = self.chats.iter().filter(|c| c.name == query).collect();
        match by_name.as_slice() {
            [one] => return Ok(one.id),
            [] => {}
            many => return Err(ambiguous(query, many)),
        }
        if let Ok(id) = query.parse::<ChatId>() {
            return self
                .get(id.room_id())
                .map(|c| c.id)
                .ok_or_else(|| LookupError::NotFound(query.to_owned()));
        }
        let bare = query.strip_prefix(PREFIX).unwrap_or(query);
        if bare.chars().count() < MIN_PREFIX {
            return Err(LookupError::NotFound(query.to_owned()));
        }
        let by_id: Vec<&Chat> = self
            .chats
            .iter()
            .filter(|c| c.matches_prefix(bare))
            .collect();
        match by_id.as_slice() {
            [one] => Ok(one.id),
            [] => Err(LookupError::NotFound(query.to_owned())),
            many => Err(ambiguous(query, many)),
        }
    }

    fn chat_mut(&mut self, room: &RoomId) -> Option<&mut Chat> {
        self.chats.iter_mut().find(|c| c.id == *room)
    }
}

fn ambiguous(query: &str, chats: &[&Chat]) -> LookupError {
    LookupError::Ambiguous {
        query: query.to_owned(),
        candidates: chats
            .iter()
            .map(|c| format!("{} ({})", c.name, c.short_id()))
            .collect(),
    }
}

/// `p2pchat:` and the first characters of a Chat ID, then an ellipsis.
pub fn short_chat_id(chat_id: &str) -> String {
    let bare = chat_id.strip_prefix(PREFIX).unwrap_or(chat_id);
    let head: String = bare.chars().take(SHOWN_PREFIX).collect();
    format!("{PREFIX}{head}…")
}

#[cfg(test)]
mod tests;
