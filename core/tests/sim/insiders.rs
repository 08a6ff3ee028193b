//! Insiders: a member who turns hostile holds the Chat ID and seals
//! whatever it likes with its own key. It must not be able to turn the
//! other members against third parties, nor hurt the room.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use p2pchat_core::membership::{Beat, Hint, Status, MAX_HINTS, MAX_MEMBERS};
use p2pchat_core::wire::{self, Control, RoomKind, Sealed};
use p2pchat_core::{
    addr as addrs, ChatId, Config, Identity, MemoryStore, Node, PeerId, RoomCipher,
};
use p2pchat_sim::{settle, user_name, Check, Settled, T0};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::for_fewer_seeds;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 5000))
}

const ALICE: usize = 0;
const BOB: usize = 1;
const MALLORY: usize = 2;

/// Alice, Bob and Mallory in one room over a perfect network; Mallory
/// runs an honest node and, on top of it, seals control messages of her
/// own making.
struct Room {
    now: u64,
    nodes: Vec<Node>,
    disks: Vec<MemoryStore>,
    chat: ChatId,
    mallory: Identity,
    /// Mallory is still running (her node, and what she sends by hand).
    mallory_up: bool,
    /// Datagrams Mallory sent each node (honest and crafted).
    from_mallory: [u64; 2],
    /// Datagrams each node sent to an address that is none of the three
    /// nodes', by destination.
    elsewhere: [BTreeMap<SocketAddr, u64>; 2],
    rng: ChaCha20Rng,
    stamp: u64,
}

impl Room {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mallory = Identity::generate(&mut rng);
        let mut nodes = Vec::new();
        for (i, name) in ["alice", "bob", "mallory"].into_iter().enumerate() {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            let identity = if i == MALLORY {
                mallory.clone()
            } else {
                Identity::generate(&mut rng)
            };
            let config = Config {
                local_addrs: vec![addr(i as u8 + 1)],
                ..Config::default()
            };
            nodes.push(Node::new(identity, user_name(name), config, secret));
        }
        let chat = nodes[ALICE].create_room(T0, "general").expect("valid name");
        for n in &mut nodes[1..] {
            n.join_room(T0, &chat).expect("join");
        }
        Room {
            now: T0,
            nodes,
            disks: vec![MemoryStore::new(), MemoryStore::new(), MemoryStore::new()],
            chat,
            mallory,
            mallory_up: true,
            from_mallory: [0; 2],
            elsewhere: [BTreeMap::new(), BTreeMap::new()],
            rng,
            stamp: T0 * 1000,
        }
    }

    fn running(&self) -> usize {
        if self.mallory_up {
            3
        } else {
            2
        }
    }

    /// Runs the nodes until `until`, delivering every datagram between
    /// them at once.
    fn run_until(&mut self, until: u64) {
        loop {
            let mut moved = false;
            for i in 0..self.running() {
                let (out, _) = settle(&mut self.nodes[i], &mut self.disks[i]);
                for o in out {
                    let Settled::Transmit(t) = o else { continue };
                    let to = (1..=3)
                        .find(|&j| addr(j) == t.to)
                        .map(|j| usize::from(j) - 1);
                    match to {
                        Some(MALLORY) if !self.mallory_up => {}
                        Some(j) => {
                            if i == MALLORY {
                                self.from_mallory[j] += 1;
                            }
                            self.nodes[j].handle_datagram(self.now, addr(i as u8 + 1), &t.bytes);
                            moved = true;
                        }
                        None if i != MALLORY => {
                            *self.elsewhere[i].entry(t.to).or_default() += 1;
                        }
                        None => {}
                    }
                }
            }
            if moved {
                continue;
            }
            let next = (0..self.running())
                .filter_map(|i| {
                    let (out, next) = settle(&mut self.nodes[i], &mut self.disks[i]);
                    assert!(out.is_empty(), "drained above");
                    next
                })
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for i in 0..self.running() {
                        self.nodes[i].handle_timeout(self.now);
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
        for i in 0..self.running() {
            self.nodes[i].handle_timeout(self.now);
        }
    }

    /// Mallory sends `to` a heartbeat of her own making, from her own
    /// (proved) address, hinting `hints`.
    fn mallory_beats(&mut self, to: usize, hints: Vec<Hint>) {
        self.stamp = self.stamp.max(self.now * 1000 + 500) + 1;
        let beat = Beat {
            stamp: self.stamp,
            name: "mallory".into(),
            digest: 0,
            hints,
            hello: false,
            challenge: None,
            response: None,
        };
        let payload = serde_json::to_vec(&Sealed::Ctl(Control::Beat(beat))).expect("json");
        let cipher = RoomCipher::new(*self.chat.room_id(), self.chat.key());
        let token = cipher
            .seal(&self.mallory, &payload, self.now)
            .expect("seal");
        let datagrams = wire::encode_room(
            RoomKind::Ctl,
            self.chat.key().rendezvous_tag(),
            self.mallory.peer_id(),
            &token,
            1200,
            self.rng.next_u32(),
        )
        .expect("fits");
        for d in datagrams {
            self.from_mallory[to] += 1;
            self.nodes[to].handle_datagram(self.now, addr(3), &d);
        }
    }

    fn fake_hints(&mut self) -> Vec<Hint> {
        let unusable = [
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4000),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 251)), 5353),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::BROADCAST), 9),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)), 5353),
        ];
        (0..MAX_HINTS)
            .map(|i| {
                let mut id = [0u8; 32];
                self.rng.fill_bytes(&mut id);
                let addr = if i < unusable.len() {
                    unusable[i]
                } else {
                    // Third parties: anywhere in 198.51.100.0/24.
                    let host = (self.rng.next_u32() % 254 + 1) as u8;
                    let port = (self.rng.next_u32() % 60_000 + 1024) as u16;
                    SocketAddr::from(([198, 51, 100, host], port))
                };
                Hint {
                    peer: PeerId::from_bytes(id),
                    addr,
                }
            })
            .collect()
    }

    fn online(&self, i: usize, peer: PeerId) -> bool {
        self.nodes[i]
            .members(self.chat.room_id())
            .and_then(|m| m.get(&peer))
            .is_some_and(|m| m.status == Status::Online)
    }
}

fn expect(cond: bool, what: &str) -> Check {
    if cond {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

/// Mallory hints 32 made-up members per heartbeat, ten heartbeats a
/// second to each of Alice and Bob for a minute (third parties' addresses,
/// and unspecified, multicast and broadcast ones), then goes silent.
/// Alice and Bob never send to an unusable address, send the hinted
/// addresses at most one datagram per datagram Mallory sent them, and
/// stop when she does; they keep chatting with each other throughout.
fn hints_reflect_nothing(seed: u64) -> Check {
    let mut room = Room::new(seed);
    room.run_until(T0 + 5_000);
    let ids: Vec<PeerId> = room.nodes.iter().map(Node::peer_id).collect();
    expect(
        room.online(ALICE, ids[BOB]) && room.online(ALICE, ids[MALLORY]),
        "the room did not come together",
    )?;
    let start = room.now;
    while room.now < start + 60_000 {
        for to in [ALICE, BOB] {
            let hints = room.fake_hints();
            room.mallory_beats(to, hints);
        }
        let next = room.now + 100;
        room.run_until(next);
    }
    let during: Vec<u64> = (0..2).map(|i| room.elsewhere[i].values().sum()).collect();
    let sent = room.from_mallory;
    room.mallory_up = false;
    room.run_until(room.now + 20_000);
    let after: Vec<u64> = (0..2)
        .map(|i| room.elsewhere[i].values().sum::<u64>())
        .collect();
    for i in [ALICE, BOB] {
        let unusable: Vec<_> = room.elsewhere[i]
            .keys()
            .filter(|a| !addrs::usable(a))
            .collect();
        expect(
            unusable.is_empty(),
            &format!("node {i} sent to unusable addresses {unusable:?}"),
        )?;
        expect(
            during[i] <= sent[i],
            &format!(
                "node {i} sent {} datagrams to hinted addresses for {} datagrams from Mallory",
                during[i], sent[i]
            ),
        )?;
        expect(
            after[i] - during[i] <= 32,
            &format!(
                "node {i} sent {} more datagrams to hinted addresses in the 20 s after Mallory went silent",
                after[i] - during[i]
            ),
        )?;
        let members = room.nodes[i]
            .members(room.chat.room_id())
            .map_or(0, |m| m.len());
        expect(members <= MAX_MEMBERS, "member table bounded")?;
    }
    expect(
        room.online(ALICE, ids[BOB]) && room.online(BOB, ids[ALICE]),
        "Alice and Bob lost each other",
    )
}

#[test]
fn a_members_hints_make_nobody_send_more_than_it_sent() {
    for_fewer_seeds(
        "a_members_hints_make_nobody_send_more_than_it_sent",
        10,
        hints_reflect_nothing,
    );
}
