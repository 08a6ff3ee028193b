//! Fixed keys, rooms and addresses the targets pick from by index, so that
//! a few bytes of input name a peer, a room or an address, and a replayed
//! input means the same thing every time.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use p2pchat_core::{ChatId, Identity, PeerId, RoomCipher, RoomId, RoomKey, RoomName, UserName};

/// Time at the start of every run (ms since the Unix epoch).
pub const T0: u64 = 1_750_000_000_000;
/// Peers other than the node under test.
pub const PEERS: usize = 4;

/// Everything fixed, built once per process (deriving an Ed25519 public
/// key costs more than a whole run of most targets).
pub struct Fixtures {
    /// The node under test.
    pub node: Identity,
    /// Other members of the room, all holding its key.
    pub peers: Vec<Identity>,
    /// The room the node is in (its Chat ID has one bootstrap address).
    pub chat: ChatId,
    /// The same room's cipher.
    pub cipher: RoomCipher,
    /// Another room's cipher (tokens of one room never open in another).
    pub other_cipher: RoomCipher,
    /// The signaling server's key (pinned by some harnesses).
    pub server: Identity,
}

thread_local! {
    // Per thread (a `RoomCipher` is not `Sync`), built once and kept for
    // the life of the process.
    static FIXTURES: &'static Fixtures = Box::leak(Box::new(build()));
}

/// The fixtures.
pub fn get() -> &'static Fixtures {
    FIXTURES.with(|f| *f)
}

fn build() -> Fixtures {
    let room = RoomId::from_bytes([7; 16]);
    let key = RoomKey::from_bytes([9; 32]);
    let name = RoomName::new("fuzz-room").unwrap();
    let chat = ChatId::new(room, key.clone(), name, vec![usable_addrs()[0]]).unwrap();
    Fixtures {
        node: Identity::from_secret_bytes(&[1; 32]),
        peers: (0..PEERS)
            .map(|i| Identity::from_secret_bytes(&[10 + i as u8; 32]))
            .collect(),
        cipher: RoomCipher::new(room, &key),
        other_cipher: RoomCipher::new(RoomId::from_bytes([8; 16]), &RoomKey::from_bytes([10; 32])),
        server: Identity::from_secret_bytes(&[0x5e; 32]),
        chat,
    }
}

impl Fixtures {
    /// The room's id.
    pub fn room(&self) -> RoomId {
        *self.chat.room_id()
    }

    /// Peer `i` (any index: wraps around).
    pub fn peer(&self, i: usize) -> &Identity {
        &self.peers[i % PEERS]
    }

    /// Who seals a message, picked by `i`: one of the peers, or (one time
    /// in five) the node itself.
    pub fn sealer(&self, i: usize) -> &Identity {
        match i % (PEERS + 1) {
            n if n < PEERS => &self.peers[n],
            _ => &self.node,
        }
    }

    /// A peer id picked by `i`: one of the peers, the node itself, or (for
    /// larger `i`) an id nobody holds the key of — a valid point or not.
    pub fn peer_id(&self, i: usize) -> PeerId {
        match i % 8 {
            n if n < PEERS => self.peers[n].peer_id(),
            4 => self.node.peer_id(),
            5 => PeerId::from_bytes([0; 32]),
            6 => PeerId::from_bytes([0xff; 32]),
            _ => PeerId::from_bytes([i as u8; 32]),
        }
    }
}

/// A display name picked by `i`; some are not valid names.
pub fn user_name(i: usize) -> String {
    const NAMES: [&str; 8] = [
        "alice",
        "bob",
        "carol",
        "dave",
        "ж",
        "",
        "two words",
        "a-name-that-is-longer-than-32-bytes",
    ];
    NAMES[i % NAMES.len()].to_owned()
}

/// The node's own display name.
pub fn node_name() -> UserName {
    UserName::new("fuzz-node").unwrap()
}

/// Addresses someone could send to.
pub fn usable_addrs() -> [SocketAddr; 6] {
    [
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 5000)),
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 5001)),
        SocketAddr::from((Ipv4Addr::new(192, 168, 1, 3), 40000)),
        SocketAddr::from((Ipv4Addr::new(127, 0, 0, 1), 1)),
        SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 5000)),
        SocketAddr::from((Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0004), 65535)),
    ]
}

/// Addresses nobody may send to or pass on (see `p2pchat_core::addr`).
pub fn unusable_addrs() -> [SocketAddr; 6] {
    [
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 0)),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 5000)),
        SocketAddr::from((Ipv4Addr::new(224, 0, 0, 1), 5000)),
        SocketAddr::from((Ipv4Addr::BROADCAST, 5000)),
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 5000)),
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            5000,
            0,
            3,
        )),
    ]
}

/// The signaling server the node is configured with.
pub fn server() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 9, 9, 9), 5555))
}

/// An address picked by `i`: mostly usable ones, sometimes not.
pub fn any_addr(i: usize) -> SocketAddr {
    let usable = usable_addrs();
    let unusable = unusable_addrs();
    match i % 16 {
        n if n < 6 => usable[n],
        n if n < 12 => unusable[n - 6],
        12 => server(),
        n => SocketAddr::from((Ipv4Addr::new(10, 1, 0, n as u8), 6000 + n as u16)),
    }
}

/// A source address picked by `i`: where a datagram can come from (a
/// usable address, or the signaling server).
pub fn source_addr(i: usize) -> SocketAddr {
    let usable = usable_addrs();
    match i % 8 {
        n if n < 6 => usable[n],
        6 => server(),
        _ => SocketAddr::from((Ipv4Addr::new(10, 1, 0, 99), 7000)),
    }
}
