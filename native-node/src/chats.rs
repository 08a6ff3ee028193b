//! The user's chats as the user names them, and which one is current.
//!
//! Wherever a command names a chat, its name works, and so does the start
//! of any Chat ID of it this node has seen (the one it printed at creation,
//! the one pasted to join, the ones `/invite` printed, and the stored one),
//! with or without the `p2pchat:` prefix. A full Chat ID works too. A name
//! that two chats share is an error that lists them with a Chat ID prefix
//! that tells them apart. The current chat (where a line without a slash
//! goes) is the last one created, joined or written to.

use p2pchat_core::{ChatId, RoomId};

/// Shortest Chat ID prefix (after `p2pchat:`) accepted, so that a typo of
/// one or two letters does not silently pick a chat.
const MIN_PREFIX: usize = 4;
/// Chat ID characters shown to tell chats apart.
const SHOWN_PREFIX: usize = 8;
/// Chat IDs remembered per chat for prefix lookup.
const MAX_KNOWN_IDS: usize = 16;

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

#[derive(Debug, Clone)]
struct Entry {
    room: RoomId,
    name: String,
    /// Chat IDs seen for it, the stored one first.
    ids: Vec<String>,
}

/// The chats of this node.
#[derive(Debug, Default)]
pub struct Chats {
    entries: Vec<Entry>,
    current: Option<RoomId>,
}

impl Chats {
    /// Adds a chat (or a Chat ID to a known one), and makes it current.
    pub fn add(&mut self, room: RoomId, name: &str, chat_id: &str) {
        self.remember(room, name, chat_id);
        self.current = Some(room);
    }

    /// Adds a chat (or a Chat ID to a known one) without changing the
    /// current chat.
    pub fn remember(&mut self, room: RoomId, name: &str, chat_id: &str) {
        match self.entries.iter_mut().find(|e| e.room == room) {
            Some(e) => {
                if !e.ids.iter().any(|id| id == chat_id) && e.ids.len() < MAX_KNOWN_IDS {
                    e.ids.push(chat_id.to_owned());
                }
            }
            None => self.entries.push(Entry {
                room,
                name: name.to_owned(),
                ids: vec![chat_id.to_owned()],
            }),
        }
    }

    /// Forgets a chat.
    pub fn remove(&mut self, room: &RoomId) {
        self.entries.retain(|e| e.room != *room);
        if self.current == Some(*room) {
            self.current = self.entries.last().map(|e| e.room);
        }
    }

    /// Makes `room` current.
    pub fn set_current(&mut self, room: RoomId) {
        if self.entries.iter().any(|e| e.room == room) {
            self.current = Some(room);
        }
    }

    /// The current chat.
    pub fn current(&self) -> Option<RoomId> {
        self.current
    }

    /// A chat's name.
    pub fn name(&self, room: &RoomId) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.room == *room)
            .map(|e| e.name.as_str())
    }

    /// The chat named by `query`, or the current one when `query` is `None`.
    pub fn resolve(&self, query: Option<&str>) -> Result<RoomId, LookupError> {
        let Some(query) = query else {
            return self.current.ok_or(LookupError::NoCurrent);
        };
        let by_name: Vec<&Entry> = self.entries.iter().filter(|e| e.name == query).collect();
        match by_name.as_slice() {
            [one] => return Ok(one.room),
            [] => {}
            many => return Err(self.ambiguous(query, many)),
        }
        if let Ok(id) = query.parse::<ChatId>() {
            if let Some(e) = self.entries.iter().find(|e| e.room == *id.room_id()) {
                return Ok(e.room);
            }
            return Err(LookupError::NotFound(query.to_owned()));
        }
        let bare = query
            .strip_prefix(p2pchat_core::chat_id::PREFIX)
            .unwrap_or(query);
        if bare.chars().count() < MIN_PREFIX {
            return Err(LookupError::NotFound(query.to_owned()));
        }
        let by_id: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| {
                e.ids.iter().any(|id| {
                    id.strip_prefix(p2pchat_core::chat_id::PREFIX)
                        .unwrap_or(id)
                        .starts_with(bare)
                })
            })
            .collect();
        match by_id.as_slice() {
            [one] => Ok(one.room),
            [] => Err(LookupError::NotFound(query.to_owned())),
            many => Err(self.ambiguous(query, many)),
        }
    }

    fn ambiguous(&self, query: &str, entries: &[&Entry]) -> LookupError {
        LookupError::Ambiguous {
            query: query.to_owned(),
            candidates: entries
                .iter()
                .map(|e| format!("{} ({})", e.name, short_chat_id(&e.ids[0])))
                .collect(),
        }
    }
}

/// `p2pchat:` and the first characters of a Chat ID, then an ellipsis.
pub fn short_chat_id(chat_id: &str) -> String {
    let bare = chat_id
        .strip_prefix(p2pchat_core::chat_id::PREFIX)
        .unwrap_or(chat_id);
    let head: String = bare.chars().take(SHOWN_PREFIX).collect();
    format!("{}{head}…", p2pchat_core::chat_id::PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2pchat_core::{RoomKey, RoomName};
    use rand_core::OsRng;

    fn chat(name: &str) -> (RoomId, String) {
        let id = RoomId::generate(&mut OsRng);
        let chat_id = ChatId::without_bootstrap(
            id,
            RoomKey::generate(&mut OsRng),
            RoomName::new(name).unwrap(),
        );
        (id, chat_id.to_string())
    }

    #[test]
    fn finds_chats_by_name_and_chat_id_prefix() {
        let mut chats = Chats::default();
        assert_eq!(chats.resolve(None), Err(LookupError::NoCurrent));
        let (a, a_id) = chat("general");
        let (b, b_id) = chat("random");
        chats.add(a, "general", &a_id);
        chats.add(b, "random", &b_id);
        assert_eq!(chats.resolve(None), Ok(b));
        assert_eq!(chats.resolve(Some("general")), Ok(a));
        assert_eq!(chats.resolve(Some(&a_id)), Ok(a));
        assert_eq!(chats.resolve(Some(&a_id[..20])), Ok(a));
        assert_eq!(chats.resolve(Some(&a_id[8..20])), Ok(a));
        assert!(matches!(
            chats.resolve(Some("nope")),
            Err(LookupError::NotFound(_))
        ));
        // Too short a prefix is not a match.
        assert!(matches!(
            chats.resolve(Some(&a_id[..10])),
            Err(LookupError::NotFound(_))
        ));
        chats.set_current(a);
        assert_eq!(chats.resolve(None), Ok(a));
    }

    #[test]
    fn a_shared_name_is_ambiguous_and_a_prefix_settles_it() {
        let mut chats = Chats::default();
        let (a, a_id) = chat("general");
        let (b, b_id) = chat("general");
        chats.add(a, "general", &a_id);
        chats.add(b, "general", &b_id);
        let err = chats.resolve(Some("general")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&short_chat_id(&a_id)), "{text}");
        assert!(text.contains(&short_chat_id(&b_id)), "{text}");
        // The shown prefixes tell them apart.
        let prefix = short_chat_id(&a_id).trim_end_matches('…').to_owned();
        assert_eq!(chats.resolve(Some(&prefix)), Ok(a));
    }

    #[test]
    fn a_full_chat_id_of_a_chat_not_joined_is_not_found() {
        let mut chats = Chats::default();
        let (a, a_id) = chat("general");
        chats.add(a, "general", &a_id);
        let (_, other) = chat("general2");
        assert!(matches!(
            chats.resolve(Some(&other)),
            Err(LookupError::NotFound(_))
        ));
    }

    #[test]
    fn leaving_moves_the_current_chat() {
        let mut chats = Chats::default();
        let (a, a_id) = chat("one");
        let (b, b_id) = chat("two");
        chats.add(a, "one", &a_id);
        chats.add(b, "two", &b_id);
        chats.remove(&b);
        assert_eq!(chats.current(), Some(a));
        chats.remove(&a);
        assert_eq!(chats.current(), None);
        assert_eq!(chats.name(&a), None);
    }
}
