//! The chat model, tested once for every front end.

use std::sync::Arc;

use rand_core::OsRng;

use super::*;
use crate::history::{Body, Event};
use crate::membership::StatusChange;
use crate::room::{RoomKey, RoomName};
use crate::Identity;

fn peer(n: u8) -> PeerId {
    Identity::from_secret_bytes(&[n; 32]).peer_id()
}

/// A room with a real Chat ID.
fn chat(name: &str) -> (RoomId, String) {
    let id = RoomId::generate(&mut OsRng);
    let chat_id = ChatId::without_bootstrap(
        id,
        RoomKey::generate(&mut OsRng),
        RoomName::new(name).unwrap(),
    );
    (id, chat_id.to_string())
}

fn joined(m: &mut Chats, room: RoomId, name: &str, chat_id: &str) {
    m.apply(&AppEvent::RoomJoined {
        room,
        name: RoomName::new(name).unwrap(),
        chat_id: chat_id.to_owned(),
        created: false,
        restored: false,
        joined_with: None,
    });
}

fn event(author: PeerId, seq: u64, name: &str) -> Arc<Event> {
    Arc::new(Event {
        id: EventId::new(author, seq),
        lamport: seq,
        deps: Vec::new(),
        time: 0,
        name: name.to_owned(),
        body: Body::Text {
            text: format!("{name} {seq}"),
        },
        token: String::new(),
        floor: 0,
        token_len: 0,
        prev: None,
        refs: Vec::new(),
        digest: Default::default(),
    })
}

fn message(m: &mut Chats, room: RoomId, author: PeerId, seq: u64, name: &str) -> bool {
    let own = author == m.me();
    m.apply(&AppEvent::Message {
        room,
        event: event(author, seq, name),
        late: false,
        own,
    })
}

fn member(m: &mut Chats, room: RoomId, peer: PeerId, name: Option<&str>, to: Status) {
    m.apply(&AppEvent::Member {
        room,
        change: StatusChange {
            peer,
            name: name.map(str::to_owned),
            from: None,
            to,
        },
    });
}

#[test]
fn finds_chats_by_name_and_chat_id_prefix() {
    let mut m = Chats::new(peer(9), "me");
    assert_eq!(m.resolve(None), Err(LookupError::NoCurrent));
    let (a, a_id) = chat("general");
    let (b, b_id) = chat("random");
    joined(&mut m, a, "general", &a_id);
    joined(&mut m, b, "random", &b_id);
    assert_eq!(m.resolve(None), Ok(b));
    assert_eq!(m.resolve(Some("general")), Ok(a));
    assert_eq!(m.resolve(Some(&a_id)), Ok(a));
    assert_eq!(m.resolve(Some(&a_id[..20])), Ok(a));
    assert_eq!(m.resolve(Some(&a_id[8..20])), Ok(a));
    assert!(matches!(
        m.resolve(Some("nope")),
        Err(LookupError::NotFound(_))
    ));
    // Too short a prefix is not a match.
    assert!(matches!(
        m.resolve(Some(&a_id[..10])),
        Err(LookupError::NotFound(_))
    ));
    m.set_current(a);
    assert_eq!(m.resolve(None), Ok(a));
}

#[test]
fn a_shared_name_is_ambiguous_and_a_prefix_settles_it() {
    let mut m = Chats::new(peer(9), "me");
    let (a, a_id) = chat("general");
    let (b, b_id) = chat("general");
    joined(&mut m, a, "general", &a_id);
    joined(&mut m, b, "general", &b_id);
    let text = m.resolve(Some("general")).unwrap_err().to_string();
    assert!(text.contains(&short_chat_id(&a_id)), "{text}");
    assert!(text.contains(&short_chat_id(&b_id)), "{text}");
    let prefix = short_chat_id(&a_id).trim_end_matches('…').to_owned();
    assert_eq!(m.resolve(Some(&prefix)), Ok(a));
}

#[test]
fn a_chat_is_found_by_any_chat_id_seen_for_it() {
    let mut m = Chats::new(peer(9), "me");
    let (a, a_id) = chat("general");
    joined(&mut m, a, "general", &a_id);
    let (_, other) = chat("general");
    // The node announces a new Chat ID (with bootstrap addresses): the
    // chat shares it now, and is still found by the old one.
    m.apply(&AppEvent::Invite {
        room: a,
        chat_id: format!("{a_id}zz"),
    });
    assert!(!m.apply(&AppEvent::Invite {
        room: a,
        chat_id: format!("{a_id}zz"),
    }));
    assert_eq!(m.get(&a).unwrap().chat_id, format!("{a_id}zz"));
    assert_eq!(m.resolve(Some(&a_id[..16])), Ok(a));
    // A whole Chat ID of a chat not joined is not found.
    assert!(matches!(
        m.resolve(Some(&other)),
        Err(LookupError::NotFound(_))
    ));
}

#[test]
fn a_chat_is_found_by_the_chat_id_it_was_joined_with() {
    let mut m = Chats::new(peer(9), "me");
    let (a, a_id) = chat("general");
    let (_, given) = chat("other");
    m.apply(&AppEvent::RoomJoined {
        room: a,
        name: RoomName::new("general").unwrap(),
        chat_id: a_id,
        created: false,
        restored: false,
        joined_with: Some(given.clone()),
    });
    assert_eq!(m.resolve(Some(&given[..14])), Ok(a));
}

#[test]
fn leaving_moves_the_current_chat_to_the_last_joined() {
    let mut m = Chats::new(peer(9), "me");
    let (a, a_id) = chat("one");
    let (b, b_id) = chat("two");
    let (c, c_id) = chat("three");
    joined(&mut m, a, "one", &a_id);
    joined(&mut m, b, "two", &b_id);
    joined(&mut m, c, "three", &c_id);
    m.set_current(b);
    m.apply(&AppEvent::RoomLeft { room: b });
    assert_eq!(m.current(), Some(c));
    m.apply(&AppEvent::RoomLeft { room: c });
    m.apply(&AppEvent::RoomLeft { room: a });
    assert_eq!(m.current(), None);
    assert!(m.get(&a).is_none());
    assert!(m.is_empty());
}

#[test]
fn unread_counts_only_others_messages_in_other_chats_and_clears_on_pick() {
    let me = peer(9);
    let mut m = Chats::new(me, "me");
    let (a, a_id) = chat("one");
    let (b, b_id) = chat("two");
    joined(&mut m, a, "one", &a_id);
    joined(&mut m, b, "two", &b_id);
    assert_eq!(m.current(), Some(b));
    message(&mut m, a, peer(1), 1, "x");
    message(&mut m, b, peer(1), 2, "x");
    message(&mut m, a, me, 1, "me");
    assert_eq!(m.get(&a).unwrap().unread, 1);
    assert_eq!(m.get(&b).unwrap().unread, 0);
    assert_eq!(m.get(&a).unwrap().messages, 2);
    m.set_current(a);
    assert_eq!(m.get(&a).unwrap().unread, 0);
}

#[test]
fn own_messages_are_pending_until_a_member_is_reachable() {
    let me = peer(9);
    let mut m = Chats::new(me, "me");
    let (a, a_id) = chat("g");
    joined(&mut m, a, "g", &a_id);
    message(&mut m, a, me, 1, "me");
    let id = EventId::new(me, 1);
    assert_eq!(m.get(&a).unwrap().delivery(&me, &id), Delivery::Pending);
    member(&mut m, a, peer(1), Some("bob"), Status::Online);
    assert_eq!(m.get(&a).unwrap().delivery(&me, &id), Delivery::Sent);
    // A member online: sent at once.
    message(&mut m, a, me, 2, "me");
    assert_eq!(
        m.get(&a).unwrap().delivery(&me, &EventId::new(me, 2)),
        Delivery::Sent
    );
    // Others' messages are received.
    assert_eq!(
        m.get(&a).unwrap().delivery(&me, &EventId::new(peer(1), 1)),
        Delivery::Received
    );
}

#[test]
fn without_a_connection_messages_wait_for_it() {
    let me = peer(9);
    let mut m = Chats::new(me, "me");
    m.set_connected(false);
    let (a, a_id) = chat("g");
    joined(&mut m, a, "g", &a_id);
    member(&mut m, a, peer(1), Some("bob"), Status::Online);
    message(&mut m, a, me, 1, "me");
    assert_eq!(m.get(&a).unwrap().pending(), 1);
    m.set_connected(true);
    assert_eq!(m.get(&a).unwrap().pending(), 0);
}

#[test]
fn clashing_names_get_a_short_id_and_members_keep_theirs() {
    let mut m = Chats::new(peer(9), "me");
    let (r, r_id) = chat("g");
    joined(&mut m, r, "g", &r_id);
    let (a1, a2, b) = (peer(1), peer(2), peer(3));
    message(&mut m, r, a1, 1, "alice");
    message(&mut m, r, b, 1, "bob");
    assert_eq!(m.get(&r).unwrap().shown_name(&a1, "alice"), "alice");
    member(&mut m, r, a2, Some("alice"), Status::Online);
    member(&mut m, r, a2, None, Status::Offline);
    let c = m.get(&r).unwrap();
    assert_eq!(c.shown_name(&a1, "alice"), format!("alice#{}", a1.short()));
    assert_eq!(c.member_name(&a2), format!("alice#{}", a2.short()));
    assert_eq!(c.shown_name(&b, "bob"), "bob");
    assert_eq!(c.members[&a2].name.as_deref(), Some("alice"));
    assert_eq!(c.members[&a2].status, Status::Offline);
    assert_eq!(c.online(), 0);
    // Someone else using our own name is told apart from us.
    message(&mut m, r, peer(4), 1, "me");
    assert_eq!(
        m.get(&r).unwrap().shown_name(&peer(9), "me"),
        format!("me#{}", peer(9).short())
    );
}

#[test]
fn caught_up_is_told_once_per_state() {
    let mut m = Chats::new(peer(9), "me");
    let (r, r_id) = chat("g");
    joined(&mut m, r, "g", &r_id);
    let caught = |m: &mut Chats, events| m.apply(&AppEvent::CaughtUp { room: r, events });
    assert!(caught(&mut m, 5));
    assert!(!caught(&mut m, 5));
    assert!(caught(&mut m, 7));
}

#[test]
fn a_restored_history_is_counted_and_named_but_not_unread() {
    let mut m = Chats::new(peer(9), "me");
    let (r, r_id) = chat("g");
    let (other, other_id) = chat("h");
    joined(&mut m, r, "g", &r_id);
    joined(&mut m, other, "h", &other_id);
    let events = [event(peer(1), 1, "zed"), event(peer(2), 1, "zed")];
    let mut table = crate::membership::Members::new(peer(9), Default::default());
    table.restore(peer(3), Some("cleo".into()), None);
    let mut history = crate::history::History::new();
    for e in &events {
        history.offer(e.as_ref().clone(), 0).expect("valid");
    }
    m.restored(&r, history.len(), history.names(), table.iter());
    let c = m.get(&r).unwrap();
    assert_eq!((c.messages, c.unread, c.pending()), (2, 0, 0));
    assert_eq!(c.member_name(&peer(3)), "cleo");
    assert_eq!(c.members[&peer(3)].status, Status::Offline);
    assert_eq!(
        c.shown_name(&peer(1), "zed"),
        format!("zed#{}", peer(1).short())
    );
}

#[test]
fn an_equivocator_is_marked_in_its_chat_only() {
    let me = peer(1);
    let mallory = peer(2);
    let mut m = Chats::new(me, "me");
    let (general, id_g) = chat("general");
    let (other, id_o) = chat("other");
    joined(&mut m, general, "general", &id_g);
    joined(&mut m, other, "other", &id_o);
    member(&mut m, general, mallory, Some("mallory"), Status::Online);
    assert!(m.apply(&AppEvent::Equivocation {
        room: general,
        author: mallory,
        seq: 7,
    }));
    let g = m.get(&general).unwrap();
    assert!(g.equivocates(&mallory));
    assert_eq!(g.equivocators.get(&mallory), Some(&7));
    assert!(!m.get(&other).unwrap().equivocates(&mallory));
    // An unknown chat changes nothing.
    let (gone, _) = chat("gone");
    assert!(!m.apply(&AppEvent::Equivocation {
        room: gone,
        author: mallory,
        seq: 1,
    }));
}
