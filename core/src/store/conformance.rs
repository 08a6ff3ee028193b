//! The rules of [`crate::store`], as checks any [`Store`] can be run
//! through: the SQLite store of the native node, the browser's store, and
//! [`MemoryStore`] all pass the same suite.
//!
//! Each check takes a fresh, empty store and panics with a message naming
//! the rule it broke. The checks are written once, over [`AsyncStore`]
//! (every [`Store`] is one): [`check_all`] runs them all on a synchronous
//! store, [`check_all_async`] on one whose operations complete later (the
//! browser's IndexedDB, in Chromium).
//!
//! Built for tests only: enable the crate's `conformance` feature in a
//! `[dev-dependencies]` entry.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::{AsyncStore, Entry, Loaded, Record, Store};
use crate::clock::EventId;
use crate::clock::OrderKey;
use crate::history::{Anchor, Body, Event};
use crate::identity::{Identity, PeerId, UserName};
use crate::output::Output;
use crate::room::{RoomId, RoomKey, RoomName};
use crate::{ChatId, Config, Node};

/// Runs every check on a synchronous store, each on a store from `fresh`.
pub fn check_all<S: Store>(mut fresh: impl FnMut() -> S) {
    let checks = check_all_async(|| std::future::ready(fresh()));
    match pin!(checks).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(()) => {}
        Poll::Pending => panic!("a synchronous store's operations complete at once"),
    }
    entries_are_what_chain_reads(fresh());
}

/// Rule 6: [`Store::entries`] reads what [`Store::chain`] reads, each
/// event's place and token length only (a synchronous store's read: the
/// node reads it from its archive).
pub fn entries_are_what_chain_reads<S: Store>(mut store: S) {
    let (r1, rec1) = room_record(1);
    let (a, b) = (peer(1), peer(2));
    let mut batch = vec![rec1];
    let mut lamport = 0;
    for (who, seq) in [(a, 1), (b, 1), (a, 2), (a, 3), (b, 2), (a, 5)] {
        lamport += 1;
        let mut e = event(who, seq, lamport, vec![], &format!("{who}-{seq}"));
        e.token = "t".repeat(usize::try_from(seq).unwrap_or(0) * 10);
        batch.push(Record::Event { room: r1, event: e });
    }
    if let Err(e) = Store::apply(&mut store, &batch) {
        panic!("apply failed: {e}");
    }
    for (who, from, limit) in [(a, 1, 10), (a, 2, 1), (a, 4, 3), (b, 1, 5), (peer(3), 1, 5)] {
        let (Ok(chain), Ok(entries)) = (
            Store::chain(&store, &r1, &who, from, limit),
            Store::entries(&store, &r1, &who, from, limit),
        ) else {
            panic!("a read failed");
        };
        let want: Vec<Entry> = chain.iter().map(Entry::of).collect();
        assert_eq!(entries, want, "{who} from {from}, at most {limit}");
    }
    // The token's length, as stored.
    let Ok(entries) = Store::entries(&store, &r1, &a, 1, 10) else {
        panic!("a read failed");
    };
    let lens: Vec<usize> = entries.iter().map(|e| e.token_len).collect();
    assert_eq!(
        lens,
        vec![10, 20, 30],
        "stops before the first number not held"
    );
}

/// Runs every check, each on a store `fresh` opens.
pub async fn check_all_async<S: AsyncStore, F: Future<Output = S>>(mut fresh: impl FnMut() -> F) {
    an_empty_store_loads_nothing(fresh().await).await;
    rooms_load_in_join_order_and_keep_their_place(fresh().await).await;
    events_load_in_canonical_order_whatever_order_they_came_in(fresh().await).await;
    the_first_copy_of_an_event_wins(fresh().await).await;
    a_member_keeps_its_name_unless_given_a_new_one(fresh().await).await;
    leaving_deletes_the_room_its_events_and_members(fresh().await).await;
    versions_are_kept_once_each_and_erased_with_their_room(fresh().await).await;
    records_of_a_batch_apply_in_order(fresh().await).await;
    tokens_are_read_back_by_id(fresh().await).await;
    ranges_are_read_back_by_author_and_in_canonical_order(fresh().await).await;
    checkpoints_come_back_with_the_events_they_do_not_cover(fresh().await).await;
    a_node_restored_from_the_store_is_the_node_that_wrote_it(fresh().await).await;
}

async fn load<S: AsyncStore>(store: &S) -> Loaded {
    match AsyncStore::load(store).await {
        Ok(loaded) => loaded,
        Err(e) => panic!("load failed: {e}"),
    }
}

async fn apply<S: AsyncStore>(store: &mut S, batch: &[Record]) {
    if let Err(e) = AsyncStore::apply(store, batch).await {
        panic!("apply failed: {e}");
    }
}

async fn tokens<S: AsyncStore>(store: &S, room: RoomId, ids: &[EventId]) -> Vec<Option<String>> {
    match AsyncStore::tokens(store, &room, ids).await {
        Ok(t) => t,
        Err(e) => panic!("tokens failed: {e}"),
    }
}

async fn chain<S: AsyncStore>(
    store: &S,
    room: RoomId,
    author: PeerId,
    from: u64,
    limit: usize,
) -> Vec<Event> {
    match AsyncStore::chain(store, &room, &author, from, limit).await {
        Ok(events) => events,
        Err(e) => panic!("chain failed: {e}"),
    }
}

async fn page<S: AsyncStore>(store: &S, room: RoomId, anchor: Anchor, limit: usize) -> Vec<Event> {
    match AsyncStore::page(store, &room, anchor, limit).await {
        Ok(events) => events,
        Err(e) => panic!("page failed: {e}"),
    }
}

/// A room record with a real Chat ID.
pub fn room_record(n: u8) -> (RoomId, Record) {
    let room = RoomId::from_bytes([n; 16]);
    let name = RoomName::new(&format!("room{n}")).unwrap_or_else(|e| panic!("{e}"));
    let chat_id = ChatId::without_bootstrap(room, RoomKey::from_bytes([n; 32]), name);
    let record = Record::Room {
        room,
        chat_id: chat_id.to_string(),
        created: n % 2 == 0,
    };
    (room, record)
}

/// `event` as a store loads it (rule 3).
pub fn as_loaded(event: &Event) -> Event {
    Loaded::without_token(event.clone())
}

/// A peer id that is a real key.
pub fn peer(n: u8) -> PeerId {
    Identity::from_secret_bytes(&[n; 32]).peer_id()
}

/// An event (its token is not a real one: stores do not open tokens).
pub fn event(author: PeerId, seq: u64, lamport: u64, deps: Vec<EventId>, text: &str) -> Event {
    Event {
        id: EventId::new(author, seq),
        lamport,
        deps,
        time: 1_750_000_000_000 + lamport % 1_000_000,
        name: format!("p{}", author.short()),
        body: Body::Text {
            text: text.to_owned(),
        },
        token: format!("token-{text}"),
        floor: 0,
        token_len: 0,
        prev: None,
        refs: Vec::new(),
        digest: Default::default(),
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), port)
}

fn member(room: RoomId, peer: PeerId, name: Option<&str>, port: u16) -> Record {
    Record::Member {
        room,
        peer,
        name: name.map(str::to_owned),
        addr: addr(port),
    }
}

fn rooms_of(loaded: &Loaded) -> Vec<RoomId> {
    loaded
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Room { room, .. } => Some(*room),
            _ => None,
        })
        .collect()
}

/// The room's events as loaded; each must have come back without its
/// token (rule 3), which [`as_loaded`] expects.
fn events_of(loaded: &Loaded, room: RoomId) -> Vec<Event> {
    loaded
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Event { room: r, event } if *r == room => {
                assert!(
                    event.token.is_empty() && event.token_len > 0,
                    "rule 3: events load without their tokens, their length kept"
                );
                Some(event.clone())
            }
            _ => None,
        })
        .collect()
}

fn members_of(loaded: &Loaded, room: RoomId) -> Vec<(PeerId, Option<String>, SocketAddr)> {
    loaded
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Member {
                room: r,
                peer,
                name,
                addr,
            } if *r == room => Some((*peer, name.clone(), *addr)),
            _ => None,
        })
        .collect()
}

/// Rule 3: nothing stored, nothing loaded.
pub async fn an_empty_store_loads_nothing<S: AsyncStore>(store: S) {
    let loaded = load(&store).await;
    assert!(
        loaded.records.is_empty(),
        "an empty store loaded {loaded:?}"
    );
    assert_eq!(loaded.skipped, 0);
}

/// Rules 2 and 3: rooms come back in join order; a room stored again keeps
/// its place and takes the new record.
pub async fn rooms_load_in_join_order_and_keep_their_place<S: AsyncStore>(mut store: S) {
    let (a, ra) = room_record(3);
    let (b, rb) = room_record(1);
    let (c, rc) = room_record(2);
    apply(&mut store, &[ra.clone(), rb]).await;
    apply(&mut store, &[rc]).await;
    let Record::Room { chat_id, .. } = &ra else {
        unreachable!("room_record makes rooms")
    };
    let again = Record::Room {
        room: a,
        chat_id: chat_id.clone(),
        created: true,
    };
    apply(&mut store, std::slice::from_ref(&again)).await;
    let loaded = load(&store).await;
    assert_eq!(rooms_of(&loaded), vec![a, b, c], "rooms in join order");
    assert!(
        loaded.records.contains(&again),
        "a room stored again takes the new record"
    );
    assert_eq!(loaded.records.len(), 3, "each room once");
}

/// Rule 3: a room's events come back in canonical order, after the rooms.
pub async fn events_load_in_canonical_order_whatever_order_they_came_in<S: AsyncStore>(
    mut store: S,
) {
    let (r1, rec1) = room_record(1);
    let (r2, rec2) = room_record(2);
    let (a, b) = (peer(1), peer(2));
    let a1 = event(a, 1, 1, vec![], "a1");
    let b1 = event(b, 1, 1, vec![], "b1");
    let a2 = event(a, 2, 2, vec![a1.id, b1.id], "a2");
    let b2 = event(b, 2, 3, vec![a2.id], "b2");
    // Times beyond what a signed 64-bit integer holds sort as numbers too.
    let a3 = event(a, 3, u64::MAX, vec![b2.id], "a3");
    let b3 = event(b, 3, 1 << 63, vec![b2.id], "b3");
    let b4 = event(b, 4, (1 << 63) + 1, vec![b3.id], "b4");
    let other = event(a, 1, 1, vec![], "other");
    apply(&mut store, &[rec1, rec2]).await;
    apply(
        &mut store,
        &[
            Record::Event {
                room: r1,
                event: b2.clone(),
            },
            Record::Event {
                room: r2,
                event: other.clone(),
            },
            Record::Event {
                room: r1,
                event: a2.clone(),
            },
        ],
    )
    .await;
    apply(
        &mut store,
        &[
            Record::Event {
                room: r1,
                event: b1.clone(),
            },
            Record::Event {
                room: r1,
                event: a1.clone(),
            },
            Record::Event {
                room: r1,
                event: a3.clone(),
            },
            Record::Event {
                room: r1,
                event: b4.clone(),
            },
            Record::Event {
                room: r1,
                event: b3.clone(),
            },
        ],
    )
    .await;
    let loaded = load(&store).await;
    let mut want: Vec<Event> = [a1, b1, a2, b2, b3, b4, a3].iter().map(as_loaded).collect();
    want.sort_by_key(Event::key);
    assert_eq!(events_of(&loaded, r1), want, "canonical order");
    assert_eq!(events_of(&loaded, r2), vec![as_loaded(&other)]);
    let first_event = loaded
        .records
        .iter()
        .position(|r| matches!(r, Record::Event { .. }));
    let last_room = loaded
        .records
        .iter()
        .rposition(|r| matches!(r, Record::Room { .. }));
    assert!(last_room < first_event, "rooms before events");
}

/// Rule 2: another event under a stored id does not replace it.
pub async fn the_first_copy_of_an_event_wins<S: AsyncStore>(mut store: S) {
    let (r, rec) = room_record(1);
    let first = event(peer(1), 1, 1, vec![], "first");
    let mut forged = event(peer(1), 1, 1, vec![], "second");
    forged.token = "another token".into();
    apply(&mut store, &[rec]).await;
    let write = |e: &Event| Record::Event {
        room: r,
        event: e.clone(),
    };
    apply(&mut store, &[write(&first)]).await;
    apply(&mut store, &[write(&forged), write(&first)]).await;
    assert_eq!(events_of(&load(&store).await, r), vec![as_loaded(&first)]);
    // Within one batch too.
    let second = event(peer(2), 1, 2, vec![first.id], "second's first");
    let mut again = event(peer(2), 1, 3, vec![first.id], "second's other");
    again.token = "yet another token".into();
    apply(&mut store, &[write(&second), write(&again), write(&second)]).await;
    assert_eq!(
        events_of(&load(&store).await, r),
        vec![as_loaded(&first), as_loaded(&second)],
        "the first copy in a batch wins"
    );
    assert_eq!(
        tokens(&store, r, &[second.id]).await,
        vec![Some(second.token.clone())]
    );
    // A batch of one author's events, some held already: a run (what a
    // catch-up writes) and numbers far apart (a store may look them up
    // differently).
    let author = peer(3);
    let third = |seq: u64, text: &str| event(author, seq, 10 + seq, vec![], text);
    let held: Vec<Event> = [2, 5, 6, 1000].iter().map(|&s| third(s, "held")).collect();
    apply(&mut store, &held.iter().map(write).collect::<Vec<_>>()).await;
    let mut batch: Vec<Record> = (1..=8).map(|s| write(&third(s, "copy"))).collect();
    batch.push(write(&third(1000, "copy")));
    batch.push(write(&third(500_000, "copy")));
    apply(&mut store, &batch).await;
    let stored = events_of(&load(&store).await, r);
    let of_third: Vec<(u64, &str)> = stored
        .iter()
        .filter(|e| e.id.author == author)
        .map(|e| match &e.body {
            Body::Text { text } => (e.id.seq, text.as_str()),
            _ => (e.id.seq, ""),
        })
        .collect();
    let mut expected: Vec<(u64, &str)> = (1..=8)
        .map(|s| {
            (
                s,
                if [2, 5, 6].contains(&s) {
                    "held"
                } else {
                    "copy"
                },
            )
        })
        .collect();
    expected.extend([(1000, "held"), (500_000, "copy")]);
    assert_eq!(of_third, expected, "held events stay, the others are added");
}

/// Rule 5: tokens come back by id, in the order asked: the first copy's,
/// `None` for what is not held, nothing once the room is left.
pub async fn tokens_are_read_back_by_id<S: AsyncStore>(mut store: S) {
    let (r1, rec1) = room_record(1);
    let (r2, rec2) = room_record(2);
    let a1 = event(peer(1), 1, 1, vec![], "a1");
    let a2 = event(peer(1), 2, 2, vec![a1.id], "a2");
    let b1 = event(peer(2), 1, 1, vec![], "b1");
    let mut forged = event(peer(1), 1, 1, vec![], "forged");
    forged.token = "another token".into();
    let write = |room: RoomId, e: &Event| Record::Event {
        room,
        event: e.clone(),
    };
    apply(&mut store, &[rec1, rec2]).await;
    apply(
        &mut store,
        &[write(r1, &a1), write(r1, &a2), write(r2, &b1)],
    )
    .await;
    apply(&mut store, &[write(r1, &forged)]).await;
    let unknown = EventId::new(peer(3), 1);
    assert_eq!(
        tokens(&store, r1, &[a2.id, unknown, a1.id, b1.id]).await,
        vec![Some(a2.token.clone()), None, Some(a1.token.clone()), None],
        "by id, in the order asked, the first copy, none from another room"
    );
    assert_eq!(
        tokens(&store, r2, &[b1.id]).await,
        vec![Some(b1.token.clone())]
    );
    assert_eq!(tokens(&store, r1, &[]).await, Vec::<Option<String>>::new());
    apply(&mut store, &[Record::Left { room: r1 }]).await;
    assert_eq!(tokens(&store, r1, &[a1.id, a2.id]).await, vec![None, None]);
    assert_eq!(tokens(&store, r2, &[b1.id]).await, vec![Some(b1.token)]);
}

/// Rule 6: an author's events by number, a room's in pages of the
/// canonical order, each as loaded and with its floor.
/// Rule 7: the newest checkpoint of a room comes back right before its
/// events, and then only the events it does not cover; or, from a store
/// that leaves checkpoints out, every event. One that covers an event the
/// store does not hold never comes back, and one goes with its room.
pub async fn checkpoints_come_back_with_the_events_they_do_not_cover<S: AsyncStore>(mut store: S) {
    use crate::clock::VersionVector;
    let (r1, rec1) = room_record(1);
    let (r2, rec2) = room_record(2);
    let (a, b) = (peer(1), peer(2));
    let mut events: Vec<Event> = Vec::new();
    for (lamport, (who, seq)) in (1..).zip([(a, 1), (b, 1), (a, 2), (b, 2), (a, 3), (a, 4), (a, 5)])
    {
        let deps = events.last().map(|e| vec![e.id]).unwrap_or_default();
        events.push(event(who, seq, lamport, deps, &format!("{who}-{seq}")));
    }
    let other = event(a, 1, 1, vec![], "elsewhere");
    let mut batch = vec![rec1.clone(), rec2];
    batch.extend(events.iter().map(|e| Record::Event {
        room: r1,
        event: e.clone(),
    }));
    batch.push(Record::Event {
        room: r2,
        event: other.clone(),
    });
    apply(&mut store, &batch).await;
    let covers = |na: u64, nb: u64| {
        let mut vv = VersionVector::new();
        vv.set(a, na);
        vv.set(b, nb);
        vv
    };
    let checkpoint = |vv: VersionVector, data: Vec<u8>| Record::Checkpoint {
        room: r1,
        covers: vv,
        data,
    };
    // The second replaces the first.
    apply(&mut store, &[checkpoint(covers(3, 2), vec![1, 2, 3])]).await;
    apply(&mut store, &[checkpoint(covers(4, 2), vec![4, 5])]).await;
    let of_room = |loaded: &Loaded, room: RoomId| -> Vec<Record> {
        loaded
            .records
            .iter()
            .filter(|r| *r.room() == room && !matches!(r, Record::Room { .. }))
            .cloned()
            .collect()
    };
    let stored = |es: &[Event]| -> Vec<Record> {
        es.iter()
            .map(|e| Record::Event {
                room: r1,
                event: as_loaded(e),
            })
            .collect()
    };
    let all = stored(&events);
    let loaded = load(&store).await;
    let got = of_room(&loaded, r1);
    if got != all {
        let mut want = vec![checkpoint(covers(4, 2), vec![4, 5])];
        want.extend(stored(&events[6..]));
        assert_eq!(got, want, "a checkpoint, then what it does not cover");
    }
    assert_eq!(
        of_room(&loaded, r2),
        vec![Record::Event {
            room: r2,
            event: as_loaded(&other),
        }],
        "another room's events are all given"
    );
    // One covering an event the store does not hold is left out.
    apply(&mut store, &[checkpoint(covers(6, 2), vec![6])]).await;
    assert_eq!(of_room(&load(&store).await, r1), all);
    // It goes with its room.
    apply(&mut store, &[checkpoint(covers(2, 1), vec![7])]).await;
    apply(&mut store, &[Record::Left { room: r1 }]).await;
    apply(&mut store, &[rec1]).await;
    apply(
        &mut store,
        &[Record::Event {
            room: r1,
            event: events[0].clone(),
        }],
    )
    .await;
    assert_eq!(of_room(&load(&store).await, r1), stored(&events[..1]));
}

pub async fn ranges_are_read_back_by_author_and_in_canonical_order<S: AsyncStore>(mut store: S) {
    let (r1, rec1) = room_record(1);
    let (r2, rec2) = room_record(2);
    let (a, b) = (peer(1), peer(2));
    // Two authors taking turns, then `a` alone; `b`'s 4 never stored.
    let mut events: Vec<Event> = Vec::new();
    let mut lamport = 0;
    for (who, seq) in [(a, 1), (b, 1), (a, 2), (b, 2), (b, 3), (a, 3), (b, 5)]
        .into_iter()
        .chain((4..=9).map(|s| (a, s)))
    {
        lamport += 1;
        let deps = events.last().map(|e| vec![e.id]).unwrap_or_default();
        let mut e = event(who, seq, lamport, deps, &format!("{who}-{seq}"));
        // Shown later than its own time: the store keeps that.
        e.floor = e.time + 5_000 * seq;
        events.push(e);
    }
    // A time past what a signed 64-bit integer holds sorts as a number.
    let mut last = event(b, 6, 1 << 63, vec![events[6].id], "b-6");
    last.floor = 7;
    events.push(last);
    let write = |room: RoomId, e: &Event| Record::Event {
        room,
        event: e.clone(),
    };
    apply(&mut store, &[rec1, rec2]).await;
    // Out of order, in two batches; another room holds one of `a`'s ids.
    let (first, second) = events.split_at(7);
    let mut batch: Vec<Record> = second.iter().rev().map(|e| write(r1, e)).collect();
    batch.push(write(r2, &event(a, 1, 1, vec![], "elsewhere")));
    apply(&mut store, &batch).await;
    apply(
        &mut store,
        &first.iter().map(|e| write(r1, e)).collect::<Vec<_>>(),
    )
    .await;
    let stored: Vec<Event> = events.iter().map(as_loaded).collect();
    let of = |who: PeerId, seqs: std::ops::RangeInclusive<u64>| -> Vec<Event> {
        seqs.filter_map(|s| {
            stored
                .iter()
                .find(|e| e.id == EventId::new(who, s))
                .cloned()
        })
        .collect()
    };
    for e in chain(&store, r1, a, 1, 100).await {
        assert!(
            e.token.is_empty() && e.token_len > 0,
            "rule 6: read back as loaded, without the token, its length kept"
        );
    }
    assert_eq!(
        chain(&store, r1, a, 1, 100).await,
        of(a, 1..=9),
        "a whole chain, with floors"
    );
    assert_eq!(
        chain(&store, r1, a, 4, 3).await,
        of(a, 4..=6),
        "from a number, at most the limit"
    );
    assert_eq!(
        chain(&store, r1, a, 0, 2).await,
        of(a, 1..=2),
        "there is no number 0"
    );
    assert_eq!(
        chain(&store, r1, b, 1, 100).await,
        of(b, 1..=3),
        "stops before the first hole"
    );
    assert_eq!(
        chain(&store, r1, b, 5, 100).await,
        of(b, 5..=6),
        "and goes on past it"
    );
    assert!(
        chain(&store, r1, a, 10, 100).await.is_empty(),
        "past the end"
    );
    assert!(
        chain(&store, r1, peer(3), 1, 100).await.is_empty(),
        "an unknown author"
    );
    assert!(chain(&store, r1, a, 1, 0).await.is_empty(), "a limit of 0");
    assert_eq!(
        chain(&store, r2, a, 1, 100).await.len(),
        1,
        "each room its own"
    );

    let mut canonical = stored.clone();
    canonical.sort_by_key(Event::key);
    assert_eq!(
        page(&store, r1, Anchor::Newest, 100).await,
        canonical,
        "one page holds all"
    );
    for size in [1, 2, 5] {
        // Walked back from the newest page and forward from the oldest.
        let mut back: Vec<Event> = Vec::new();
        let mut p = page(&store, r1, Anchor::Newest, size).await;
        while let Some(first) = p.first() {
            assert!(p.len() <= size, "at most the limit");
            let key = first.key();
            p.append(&mut back);
            back = p;
            p = page(&store, r1, Anchor::Before(key), size).await;
        }
        assert_eq!(back, canonical, "pages of {size}, from the newest back");
        let mut forth: Vec<Event> = Vec::new();
        let mut p = page(&store, r1, Anchor::After(OrderKey::MIN), size).await;
        while let Some(last) = p.last() {
            let key = last.key();
            forth.append(&mut p);
            p = page(&store, r1, Anchor::After(key), size).await;
        }
        assert_eq!(forth, canonical, "pages of {size}, from the oldest on");
    }
    let middle = canonical[6].key();
    assert_eq!(
        page(&store, r1, Anchor::Before(middle), 3).await,
        canonical[3..6]
    );
    assert_eq!(
        page(&store, r1, Anchor::After(middle), 3).await,
        canonical[7..10]
    );
    assert!(page(&store, r1, Anchor::Before(OrderKey::MIN), 5)
        .await
        .is_empty());
    assert!(page(&store, r1, Anchor::After(OrderKey::MAX), 5)
        .await
        .is_empty());
    assert!(page(&store, r1, Anchor::Newest, 0).await.is_empty());
    assert_eq!(
        page(&store, r2, Anchor::Newest, 100).await.len(),
        1,
        "each room its own"
    );
    apply(&mut store, &[Record::Left { room: r1 }]).await;
    assert!(
        chain(&store, r1, a, 1, 100).await.is_empty(),
        "gone with the room"
    );
    assert!(
        page(&store, r1, Anchor::Newest, 100).await.is_empty(),
        "gone with the room"
    );
}

/// Rule 2: a member's address is replaced; a `None` name keeps the name.
pub async fn a_member_keeps_its_name_unless_given_a_new_one<S: AsyncStore>(mut store: S) {
    let (r, rec) = room_record(1);
    let (p, q) = (peer(1), peer(2));
    apply(&mut store, &[rec]).await;
    apply(
        &mut store,
        &[member(r, p, Some("dora"), 1), member(r, q, None, 2)],
    )
    .await;
    apply(&mut store, &[member(r, p, None, 3)]).await;
    apply(&mut store, &[member(r, q, Some("quinn"), 4)]).await;
    let mut got = members_of(&load(&store).await, r);
    got.sort();
    let mut want = vec![
        (p, Some("dora".to_owned()), addr(3)),
        (q, Some("quinn".to_owned()), addr(4)),
    ];
    want.sort();
    assert_eq!(got, want);
}

/// Rule 2: leaving deletes everything of the room and nothing else; a room
/// joined again comes last.
pub async fn leaving_deletes_the_room_its_events_and_members<S: AsyncStore>(mut store: S) {
    let (r1, rec1) = room_record(1);
    let (r2, rec2) = room_record(2);
    let e = event(peer(1), 1, 1, vec![], "hi");
    apply(&mut store, &[rec1.clone(), rec2]).await;
    apply(
        &mut store,
        &[
            Record::Event {
                room: r1,
                event: e.clone(),
            },
            Record::Event {
                room: r2,
                event: e.clone(),
            },
            member(r1, peer(2), Some("x"), 1),
            member(r2, peer(2), Some("x"), 1),
        ],
    )
    .await;
    apply(&mut store, &[Record::Left { room: r1 }]).await;
    let loaded = load(&store).await;
    assert!(
        loaded.records.iter().all(|r| *r.room() != r1),
        "nothing of the room left: {loaded:?}"
    );
    assert_eq!(events_of(&loaded, r2), vec![as_loaded(&e)]);
    assert_eq!(members_of(&loaded, r2).len(), 1);
    // Joined again: last in the join order, and empty.
    apply(&mut store, &[rec1]).await;
    let loaded = load(&store).await;
    assert_eq!(rooms_of(&loaded), vec![r2, r1]);
    assert!(events_of(&loaded, r1).is_empty());
}

/// Rule 1: the records of one batch take effect in their order.
pub async fn records_of_a_batch_apply_in_order<S: AsyncStore>(mut store: S) {
    let (r1, rec1) = room_record(1);
    let (r2, rec2) = room_record(2);
    let e = event(peer(1), 1, 1, vec![], "hi");
    apply(
        &mut store,
        &[
            rec1.clone(),
            Record::Event {
                room: r1,
                event: e.clone(),
            },
            Record::Left { room: r1 },
            rec2,
            rec1,
        ],
    )
    .await;
    let loaded = load(&store).await;
    assert_eq!(rooms_of(&loaded), vec![r2, r1]);
    assert!(events_of(&loaded, r1).is_empty(), "left, then joined again");
}

/// All rules together: a node writes through the output queue; a node
/// restored from what the store loads holds the same rooms, history and
/// members, and skips nothing.
pub async fn a_node_restored_from_the_store_is_the_node_that_wrote_it<S: AsyncStore>(mut store: S) {
    let name = UserName::new("writer").unwrap_or_else(|e| panic!("{e}"));
    let identity = Identity::from_secret_bytes(&[7; 32]);
    let now = 1_750_000_000_000;
    let mut node = Node::new(identity.clone(), name.clone(), Config::default(), [1; 32]);
    let first = node
        .create_room(now, "first")
        .unwrap_or_else(|e| panic!("{e}"));
    let second = node
        .create_room(now, "second")
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, room) in [first.room_id(), second.room_id(), first.room_id()]
        .into_iter()
        .enumerate()
    {
        node.send_text(now + i as u64, room, &format!("message {i}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    node.leave_room(now, second.room_id())
        .unwrap_or_else(|e| panic!("{e}"));
    loop {
        match node.poll_output() {
            Output::Persist(p) => {
                apply(&mut store, &p.records).await;
                node.stored(p.batch);
            }
            Output::Read(r) => {
                let read = tokens(&store, r.room, &r.events).await;
                node.read_done(r.id, read);
            }
            Output::Timeout(_) => break,
            Output::Transmit(_) | Output::Event(_) => {}
        }
    }
    let helper = peer(3);
    apply(
        &mut store,
        &[member(*first.room_id(), helper, Some("helper"), 9)],
    )
    .await;
    let loaded = load(&store).await;
    assert_eq!(loaded.skipped, 0);
    let (restored, skipped) = Node::restore(
        identity,
        name,
        Config::default(),
        [2; 32],
        now,
        loaded.records,
    );
    assert_eq!(skipped, 0, "the node used every record the store gave");
    let rooms: Vec<RoomId> = restored.rooms().map(|(id, _)| id).collect();
    assert_eq!(rooms, vec![*first.room_id()], "the room left is gone");
    let ids = |n: &Node| -> Vec<EventId> {
        n.history(first.room_id())
            .map(|h| h.iter().map(|e| e.id).collect())
            .unwrap_or_default()
    };
    assert_eq!(ids(&restored), ids(&node), "the same history");
    assert_eq!(ids(&restored).len(), 2);
    let helper_name = restored
        .members(first.room_id())
        .and_then(|m| m.get(&helper))
        .and_then(|m| m.name.clone());
    assert_eq!(helper_name.as_deref(), Some("helper"), "members come back");
}

/// Versions: kept once per digest (another version of the same id is kept
/// beside it), loaded after the room's events, erased on `Left`.
pub async fn versions_are_kept_once_each_and_erased_with_their_room<S: AsyncStore>(mut store: S) {
    let (room, record) = room_record(7);
    let a = peer(1);
    let one = event(a, 1, 1, vec![], "one");
    let other = event(a, 1, 1, vec![], "another one");
    let version = |event: &Event| Record::Version {
        room,
        event: event.clone(),
    };
    apply(
        &mut store,
        &[
            record,
            Record::Event {
                room,
                event: one.clone(),
            },
            version(&other),
            version(&other),
            version(&one),
        ],
    )
    .await;
    let loaded = load(&store).await;
    let versions: Vec<&Event> = loaded
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Version { room: r, event } if *r == room => Some(event),
            _ => None,
        })
        .collect();
    assert_eq!(versions.len(), 2, "rule 2: one copy per digest");
    assert!(versions.contains(&&other) && versions.contains(&&one));
    assert_eq!(
        events_of(&loaded, room),
        vec![as_loaded(&one)],
        "rule 2: events apart"
    );
    let first_version = loaded
        .records
        .iter()
        .position(|r| matches!(r, Record::Version { .. }));
    let last_event = loaded
        .records
        .iter()
        .rposition(|r| matches!(r, Record::Event { .. }));
    assert!(first_version > last_event, "rule 3: versions after events");
    apply(&mut store, &[Record::Left { room }]).await;
    let loaded = load(&store).await;
    assert!(
        !loaded
            .records
            .iter()
            .any(|r| matches!(r, Record::Version { .. })),
        "rule 2: Left erases versions"
    );
}
