//! The real `p2pchat-signaling` binary on loopback: what it answers, what
//! it refuses, what it survives, and what it never learns.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use p2pchat_core::room::MembershipProof;
use p2pchat_core::signaling::{
    Arrived, Entry, Lookup, Message, Peers, Query, Register, Registration, Unregister,
};
use p2pchat_core::wire::{self, Datagram};
use p2pchat_core::{Config, MemoryStore, Node, UserName};
use p2pchat_core::{Identity, PeerId, RendezvousTag, RoomKey};
use p2pchat_sim::{settle, Settled};
use p2pchat_tests::process::Stream;
use p2pchat_tests::{binary, ChatNode, Process};

const WAIT: Duration = Duration::from_secs(30);

fn start_server(extra: &[&str], env: &[(&str, &str)]) -> Result<(Process, SocketAddr)> {
    let bin = binary("p2pchat-signaling")?;
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut server = Process::start_with_env(&bin, &args, env)?;
    let line = server.expect_stdout("listening on", WAIT)?;
    let addr = line.rsplit(' ').next().unwrap_or_default().parse()?;
    Ok((server, addr))
}

/// A test peer speaking the signaling protocol over a real socket.
struct Client {
    socket: UdpSocket,
    identity: Identity,
    server: SocketAddr,
    stamp: u64,
}

impl Client {
    fn new(seed: u8, server: SocketAddr) -> Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Client {
            socket,
            identity: Identity::from_secret_bytes(&[seed; 32]),
            server,
            stamp: 0,
        })
    }

    fn addr(&self) -> Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn peer(&self) -> PeerId {
        self.identity.peer_id()
    }

    fn next_stamp(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    fn send(&self, msg: Message) -> Result<()> {
        self.socket.send_to(&wire::encode_sig(msg), self.server)?;
        Ok(())
    }

    fn register(&mut self, tag: RendezvousTag, ttl: u32) -> Result<()> {
        let stamp = self.next_stamp();
        let me = self.addr()?;
        let r = Register::new(&self.identity, registration(tag, vec![me], ttl, stamp))?;
        self.send(Message::Register(r))
    }

    fn unregister(&mut self, tag: RendezvousTag) -> Result<()> {
        let stamp = self.next_stamp();
        self.send(Message::Unregister(Unregister::new(
            &self.identity,
            tag,
            stamp,
        )))
    }

    fn lookup(&mut self, tag: RendezvousTag) -> Result<()> {
        let stamp = self.next_stamp();
        self.send(Message::Lookup(Lookup::new(
            &self.identity,
            query(tag, stamp),
        )))
    }

    /// Waits (bounded) for a message matching `pred`, skipping others.
    fn expect(&self, what: &str, pred: impl Fn(&Message) -> bool) -> Result<Message> {
        self.expect_within(what, Duration::from_secs(10), pred)
    }

    fn expect_within(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Result<Message> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < deadline {
            let Ok((len, from)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            if from != self.server {
                continue;
            }
            if let Ok(Datagram::Sig(p)) = wire::decode(&buf[..len]) {
                if pred(&p.msg) {
                    return Ok(p.msg);
                }
            }
        }
        bail!("no {what} from the server within {timeout:?}")
    }

    /// Looks `tag` up and returns the peers listed. Like a real client it
    /// asks again when no answer comes within a second: UDP may drop the
    /// request (a flood can fill the server's receive buffer).
    fn peers(&mut self, tag: RendezvousTag) -> Result<Vec<(PeerId, SocketAddr)>> {
        for _ in 0..10 {
            self.lookup(tag)?;
            let answer = self.expect_within("peers", Duration::from_secs(1), |m| {
                matches!(m, Message::Peers(_))
            });
            if let Ok(Message::Peers(p)) = answer {
                return Ok(p.entries.iter().map(|e| (e.peer, e.observed)).collect());
            }
        }
        bail!("no peers answer from the server to 10 lookups")
    }
}

fn tag(n: u8) -> RendezvousTag {
    RoomKey::from_bytes([n; 32]).rendezvous_tag()
}

#[test]
fn help_explains_the_options() -> Result<()> {
    let bin = binary("p2pchat-signaling")?;
    let mut p = Process::start(&bin, &["--help"])?;
    p.expect_stdout("--listen", WAIT)?;
    assert!(p.wait_exit(WAIT)?.success());
    let text = p.transcript();
    for option in ["--rate", "--burst", "--max-per-tag", "--stats-every"] {
        assert!(text.contains(option), "--help mentions {option}:\n{text}");
    }
    Ok(())
}

#[test]
fn two_peers_learn_each_other_through_it() -> Result<()> {
    let (_server, addr) = start_server(&[], &[])?;
    let mut alice = Client::new(1, addr)?;
    let mut bob = Client::new(2, addr)?;
    let t = tag(1);
    alice.register(t, 60)?;
    alice.expect("registered", |m| matches!(m, Message::Registered(_)))?;
    assert!(alice.peers(t)?.is_empty(), "alone at first");
    bob.register(t, 60)?;
    bob.expect("registered", |m| matches!(m, Message::Registered(_)))?;
    let seen = bob.peers(t)?;
    assert_eq!(
        seen,
        vec![(alice.peer(), alice.addr()?)],
        "bob finds alice where she is"
    );
    let arrived = alice.expect("arrived", |m| matches!(m, Message::Arrived(_)))?;
    match arrived {
        Message::Arrived(a) => {
            assert_eq!(a.entry.peer, bob.peer());
            assert_eq!(a.entry.observed, bob.addr()?);
        }
        _ => unreachable!(),
    }
    Ok(())
}

#[test]
fn entries_expire_and_unregister_removes_at_once() -> Result<()> {
    let (_server, addr) = start_server(&[], &[])?;
    let mut alice = Client::new(1, addr)?;
    let mut carol = Client::new(3, addr)?;
    let mut bob = Client::new(2, addr)?;
    let t = tag(2);
    alice.register(t, 1)?;
    carol.register(t, 60)?;
    carol.expect("registered", |m| matches!(m, Message::Registered(_)))?;
    alice.expect("registered", |m| matches!(m, Message::Registered(_)))?;
    assert_eq!(bob.peers(t)?.len(), 2);
    // Carol leaves politely: gone at once.
    carol.unregister(t)?;
    let deadline = Instant::now() + WAIT;
    loop {
        let peers: Vec<PeerId> = bob.peers(t)?.into_iter().map(|(p, _)| p).collect();
        if !peers.contains(&carol.peer()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("carol's entry survived her unregister");
        }
    }
    // Alice's 1-second registration expires on its own.
    let deadline = Instant::now() + WAIT;
    loop {
        if bob.peers(t)?.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("alice's entry never expired");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

#[test]
fn a_battery_of_bad_datagrams_is_dropped_and_counted() -> Result<()> {
    let (mut server, addr) = start_server(&["--stats-every", "1"], &[])?;
    let attacker = UdpSocket::bind("127.0.0.1:0")?;
    let mut mallory = Client::new(9, addr)?;
    let alice = Client::new(1, addr)?;
    let t = tag(3);
    let valid_register = {
        let r = Register::new(
            &alice.identity,
            registration(t, vec![alice.addr()?], 60, 10),
        )?;
        wire::encode_sig(Message::Register(r))
    };
    let mut forged = Register::new(&mallory.identity, registration(t, vec![], 60, 11))?;
    forged.peer = alice.peer();
    let mut battery: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\x00\xff\xfe".to_vec(),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        b"{".to_vec(),
        b"[]".to_vec(),
        b"{\"k\":\"sig\"}".to_vec(),
        b"{\"k\":\"sig\",\"v\":2,\"msg\":{}}".to_vec(),
        b"{\"k\":\"sig\",\"v\":1,\"msg\":{\"t\":\"nope\"}}".to_vec(),
        b"{\"k\":\"sig\",\"v\":1,\"msg\":{\"t\":\"lookup\",\"tag\":\"zz\"}}".to_vec(),
        "[".repeat(1000).into_bytes(),
        vec![b'a'; 5000],
        vec![0u8; 65_000],
        wire::encode_sig(Message::Register(forged)),
    ];
    // Truncations and bit flips of a valid registration.
    for cut in [
        1,
        10,
        50,
        valid_register.len() / 2,
        valid_register.len() - 1,
    ] {
        battery.push(valid_register[..cut].to_vec());
    }
    for i in (0..valid_register.len()).step_by(37) {
        let mut flipped = valid_register.clone();
        flipped[i] ^= 0x01;
        battery.push(flipped);
    }
    for d in &battery {
        attacker.send_to(d, addr)?;
        std::thread::sleep(Duration::from_millis(60)); // stay under the rate limit
    }
    // Still serving a well-behaved peer.
    mallory.register(t, 60)?;
    mallory.expect("registered", |m| matches!(m, Message::Registered(_)))?;
    let line = server.expect_line(
        Stream::Stderr,
        WAIT,
        "a stats line counting the battery",
        |l| l.contains("stats") && counter(l, "dropped").is_some_and(|d| d >= 20),
    )?;
    assert!(line.contains("malformed="), "{line}");
    assert_eq!(
        counter(&line, "rate_limited"),
        Some(0),
        "paced below the limit: {line}"
    );
    server.terminate()?;
    assert!(server.wait_exit(WAIT)?.success(), "{}", server.transcript());
    Ok(())
}

#[test]
fn a_flood_from_one_source_does_not_silence_the_others() -> Result<()> {
    let (mut server, addr) = start_server(&["--stats-every", "1"], &[])?;
    let flooder = UdpSocket::bind("127.0.0.1:0")?;
    let noise = Client::new(7, addr)?;
    let flood_msg = {
        let l = Lookup::new(&noise.identity, query(tag(4), 1));
        wire::encode_sig(Message::Lookup(l))
    };
    let mut bob = Client::new(2, addr)?;
    let mut alice = Client::new(1, addr)?;
    let t = tag(5);
    alice.register(t, 60)?;
    alice.expect("registered", |m| matches!(m, Message::Registered(_)))?;
    let flood = std::thread::spawn(move || {
        for _ in 0..20_000 {
            let _ = flooder.send_to(&flood_msg, addr);
        }
    });
    // While the flood runs, bob is still answered.
    let seen = bob.peers(t)?;
    assert_eq!(seen.len(), 1, "bob sees alice during the flood");
    flood
        .join()
        .map_err(|_| anyhow::anyhow!("flood thread panicked"))?;
    let seen = bob.peers(t)?;
    assert_eq!(seen.len(), 1, "and after it");
    server.expect_line(Stream::Stderr, WAIT, "stats with rate-limited drops", |l| {
        l.contains("stats") && counter(l, "rate_limited").is_some_and(|n| n > 1000)
    })?;
    Ok(())
}

/// Two real protocol engines, the joiner holding a Chat ID without any
/// bootstrap address, find each other through the server (which logs at
/// trace level) and chat; its logs and its answers mention
/// the tag and peer ids, never the room's id, key or name, the usernames
/// or the messages.
#[test]
fn it_never_learns_a_room_a_key_a_name_or_a_message() -> Result<()> {
    let (mut server, addr) = start_server(&[], &[("RUST_LOG", "trace")])?;
    let sockets = [
        UdpSocket::bind("127.0.0.1:0")?,
        UdpSocket::bind("127.0.0.1:0")?,
    ];
    let mut nodes = Vec::new();
    for (i, socket) in sockets.iter().enumerate() {
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let config = Config {
            signaling: vec![addr],
            local_addrs: vec![socket.local_addr()?],
            ..Config::default()
        };
        let name = UserName::new(["alice-secret-user", "bob-secret-user"][i])?;
        nodes.push(Node::new(
            Identity::from_secret_bytes(&[i as u8 + 1; 32]),
            name,
            config,
            [i as u8; 32],
        ));
    }
    let mut disks = [MemoryStore::new(), MemoryStore::new()];
    let chat = nodes[0].create_room(now(), "secret-garden")?;
    // No bootstrap address: they can only meet through the server.
    let bare = p2pchat_core::ChatId::without_bootstrap(
        *chat.room_id(),
        chat.key().clone(),
        chat.name().clone(),
    );
    nodes[1].join_room(now(), &bare)?;
    let room = *chat.room_id();
    let mut said = false;
    let start = Instant::now();
    // Run both engines over real sockets until bob has alice's message.
    loop {
        for (i, node) in nodes.iter_mut().enumerate() {
            node.handle_timeout(now());
            let mut buf = vec![0u8; 65_536];
            while let Ok((len, from)) = sockets[i].recv_from(&mut buf) {
                node.handle_datagram(now(), from, &buf[..len]);
            }
            for out in settle(node, &mut disks[i]).0 {
                if let Settled::Transmit(t) = out {
                    sockets[i].send_to(&t.bytes, t.to)?;
                }
            }
        }
        let bob_has = nodes[1].history(&room).map_or(0, |h| h.len());
        if !said && nodes[0].members(&room).is_some_and(|m| m.any_online()) {
            nodes[0].send_text(now(), &room, "the treasure is under the oak")?;
            said = true;
        }
        if bob_has == 1 {
            break;
        }
        if start.elapsed() > WAIT {
            bail!("the two engines never met through the server");
        }
    }
    server.terminate()?;
    server.wait_exit(WAIT)?;
    let logs = server.transcript().to_lowercase();
    assert!(
        logs.matches("datagram").count() >= 4,
        "trace logs of every datagram were captured:\n{logs}"
    );
    let key = chat.key().as_bytes();
    let secrets = [
        room.to_string(),
        hex::encode(key),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, key),
        chat.to_string(),
        "secret-garden".into(),
        "alice-secret-user".into(),
        "bob-secret-user".into(),
        "treasure".into(),
    ];
    for secret in secrets {
        assert!(
            !logs.contains(&secret.to_lowercase()),
            "the server's logs mention {secret}"
        );
    }
    Ok(())
}

/// Several servers side by side: an engine given two registers with both,
/// and each can introduce it.
#[test]
fn a_node_registers_with_every_server_it_is_given() -> Result<()> {
    let (_s1, addr1) = start_server(&[], &[])?;
    let (_s2, addr2) = start_server(&[], &[])?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let config = Config {
        signaling: vec![addr1, addr2],
        local_addrs: vec![socket.local_addr()?],
        ..Config::default()
    };
    let mut node = Node::new(
        Identity::from_secret_bytes(&[5; 32]),
        UserName::new("dora")?,
        config,
        [5; 32],
    );
    let chat = node.create_room(now(), "general")?;
    node.handle_timeout(now());
    for out in settle(&mut node, &mut MemoryStore::new()).0 {
        if let Settled::Transmit(t) = out {
            socket.send_to(&t.bytes, t.to)?;
        }
    }
    let t = chat.key().rendezvous_tag();
    for server in [addr1, addr2] {
        let mut probe = Client::new(8, server)?;
        let deadline = Instant::now() + WAIT;
        loop {
            let peers = probe.peers(t)?;
            if peers.iter().any(|(p, _)| *p == node.peer_id()) {
                break;
            }
            if Instant::now() > deadline {
                bail!("server {server} never learned of the node");
            }
        }
    }
    Ok(())
}

/// A registration under `tag` (the server cannot check membership
/// proofs, so any will do here).
fn registration(tag: RendezvousTag, addrs: Vec<SocketAddr>, ttl: u32, stamp: u64) -> Registration {
    Registration {
        tag,
        addrs,
        ttl_secs: ttl,
        stamp,
        nonce: stamp.wrapping_mul(0x9e37_79b9),
        proof: MembershipProof::from_bytes([7; 16]),
    }
}

/// A lookup of page 0 of `tag`.
fn query(tag: RendezvousTag, stamp: u64) -> Query {
    Query {
        tag,
        stamp,
        nonce: stamp.wrapping_mul(0x85eb_ca6b),
        page: 0,
        proof: MembershipProof::from_bytes([7; 16]),
    }
}

/// The value of `name=` in a stats line.
fn counter(line: &str, name: &str) -> Option<u64> {
    let key = format!("{name}=");
    let at = line.find(&key)? + key.len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        .max(1)
}

// ----- what an outsider holding only the tag can do through the server ---

/// A socket for the victim of a reflection, and the bytes it received
/// within `wait` (bounded).
fn victim_receives(victim: &UdpSocket, wait: Duration) -> Result<usize> {
    victim.set_read_timeout(Some(Duration::from_millis(100)))?;
    let deadline = Instant::now() + wait;
    let mut total = 0;
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        if let Ok((n, _)) = victim.recv_from(&mut buf) {
            total += n;
        }
    }
    Ok(total)
}

/// The room's tag, as anyone who sees its traffic reads it in clear.
fn tag_of(chat_id: &str) -> Result<RendezvousTag> {
    let chat: p2pchat_core::ChatId = chat_id.parse()?;
    Ok(chat.key().rendezvous_tag())
}

/// An outsider who knows only a room's tag registers an entry naming a
/// victim's address and looks the tag up, so the server announces it to
/// the room's members. Before the membership proof, the members sent the
/// victim 68 KB in 2 s for 2.2 KB; now nothing: the entry's proof does
/// not hold.
#[test]
fn a_registration_naming_a_victim_makes_no_member_send_to_it() -> Result<()> {
    let (_server, addr) = start_server(&[], &[])?;
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let mut alice = ChatNode::start("alice", dirs[0].path(), &[addr], &[])?;
    let mut bob = ChatNode::start("bob", dirs[1].path(), &[addr], &[])?;
    let chat_id = alice.create_chat("general")?;
    bob.join_chat(&chat_id)?;
    let bob_peer = bob.peer.clone();
    alice.expect_online(&[&bob_peer])?;
    let victim = UdpSocket::bind("127.0.0.1:0")?;
    let t = tag_of(&chat_id)?;
    let mut mallory = Client::new(66, addr)?;
    let mut sent = 0;
    for round in 0..5u64 {
        let stamp = mallory.next_stamp();
        let r = Register::new(
            &mallory.identity,
            registration(t, vec![victim.local_addr()?], 300, stamp),
        )?;
        let register = wire::encode_sig(Message::Register(r));
        let lookup_stamp = mallory.next_stamp();
        let lookup = wire::encode_sig(Message::Lookup(Lookup::new(
            &mallory.identity,
            query(t, lookup_stamp),
        )));
        for bytes in [register, lookup] {
            sent += bytes.len();
            mallory.socket.send_to(&bytes, addr)?;
        }
        if round == 0 {
            mallory.expect("registered", |m| matches!(m, Message::Registered(_)))?;
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    let received = victim_receives(&victim, Duration::from_secs(3))?;
    assert_eq!(
        received, 0,
        "the victim received {received} bytes for the {sent} bytes the attacker sent"
    );
    Ok(())
}

/// A process squats the node's configured signaling port and answers its
/// lookups (it sees them, so it echoes their nonces) with 16 made-up
/// members at a victim's address: none is taken, and the victim receives
/// nothing.
#[test]
fn a_squatted_signaling_port_adds_no_member() -> Result<()> {
    let squatter = UdpSocket::bind("127.0.0.1:0")?;
    squatter.set_read_timeout(Some(Duration::from_millis(100)))?;
    let squatted = squatter.local_addr()?;
    let victim = UdpSocket::bind("127.0.0.1:0")?;
    let victim_addr = victim.local_addr()?;
    let dir = tempfile::tempdir()?;
    let mut alice = ChatNode::start("alice", dir.path(), &[squatted], &[])?;
    alice.create_chat("general")?;
    let fakes: Vec<Entry> = (0..16u8)
        .map(|i| Entry {
            peer: Identity::from_secret_bytes(&[100 + i; 32]).peer_id(),
            observed: victim_addr,
            addrs: vec![victim_addr],
            proof: MembershipProof::from_bytes([i; 16]),
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(7);
    let mut answered = 0;
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        let Ok((n, from)) = squatter.recv_from(&mut buf) else {
            continue;
        };
        let answer = match wire::decode(&buf[..n]) {
            Ok(Datagram::Sig(s)) => match s.msg {
                Message::Lookup(l) => Message::Peers(Peers {
                    tag: l.tag,
                    nonce: l.nonce,
                    page: 0,
                    pages: 1,
                    entries: fakes.iter().take(4).cloned().collect(),
                }),
                Message::Register(r) => Message::Arrived(Arrived {
                    tag: r.tag,
                    nonce: r.nonce,
                    entry: fakes[answered % fakes.len()].clone(),
                }),
                _ => continue,
            },
            _ => continue,
        };
        squatter.send_to(&wire::encode_sig(answer), from)?;
        answered += 1;
    }
    assert!(answered >= 2, "the node asked the squatter");
    let received = victim_receives(&victim, Duration::from_secs(1))?;
    assert_eq!(received, 0, "the victim received {received} bytes");
    alice.send("/peers general")?;
    let peers = alice.event("peers", |v| v["event"] == "peers")?;
    assert_eq!(
        peers["members"].as_array().map(Vec::len),
        Some(0),
        "members taken from the squatter: {peers}"
    );
    Ok(())
}

/// A drop counter from a node's last log line ("engine stopped … drops=…").
fn node_drops(node: &ChatNode, reason: &str) -> u64 {
    node.process
        .transcript()
        .lines()
        .filter(|l| l.contains("engine stopped"))
        .find_map(|l| {
            let at = l.find(&format!("{reason}="))? + reason.len() + 1;
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// A server started with `--key-file` signs its answers. Two nodes that
/// pin its key (`--signal ADDR=KEY`) meet through it (their Chat ID names
/// nobody) and refuse none of its answers; a node that pins another key
/// refuses every answer (it may still be found: the others take the
/// server's word about it); a node that pins nothing takes them. The key
/// file is made on first use and read back on restart.
#[test]
fn nodes_that_pin_the_servers_key_take_only_its_signed_answers() -> Result<()> {
    let keys = tempfile::tempdir()?;
    let key_file = keys.path().join("server.key");
    let key_arg = key_file.display().to_string();
    let (mut server, addr) = start_server(&["--key-file", &key_arg], &[])?;
    let line = server.expect_stdout("answers signed with key", WAIT)?;
    let key: PeerId = line.rsplit(' ').next().unwrap_or_default().parse()?;
    let pinned = format!("{addr}={key}");
    let wrong = format!(
        "{addr}={}",
        Identity::from_secret_bytes(&[77; 32]).peer_id()
    );
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let mut alice = ChatNode::start("alice", dirs[0].path(), &[], &["--signal", &pinned])?;
    assert_eq!(alice.ready["signal"][0], pinned.as_str(), "{}", alice.ready);
    let chat_id = alice.create_chat("general")?;
    // No bootstrap address: they can only meet through the server.
    let chat: p2pchat_core::ChatId = chat_id.parse()?;
    let bare = p2pchat_core::ChatId::without_bootstrap(
        *chat.room_id(),
        chat.key().clone(),
        chat.name().clone(),
    )
    .to_string();
    let mut bob = ChatNode::start("bob", dirs[1].path(), &[], &["--signal", &pinned])?;
    bob.join_chat(&bare)?;
    let alice_peer = alice.peer.clone();
    bob.expect_online(&[&alice_peer])?;
    let mut carol = ChatNode::start("carol", dirs[2].path(), &[], &["--signal", &wrong])?;
    carol.join_chat(&bare)?;
    let mut dave = ChatNode::start("dave", dirs[3].path(), &[addr], &[])?;
    dave.join_chat(&bare)?;
    dave.expect_online(&[&alice_peer])?;
    for node in [&mut alice, &mut bob, &mut carol, &mut dave] {
        node.quit()?;
    }
    assert_eq!(node_drops(&alice, "bad_server_signature"), 0);
    assert_eq!(node_drops(&bob, "bad_server_signature"), 0);
    assert_eq!(node_drops(&dave, "bad_server_signature"), 0);
    let refused = node_drops(&carol, "bad_server_signature");
    assert!(
        refused > 0,
        "carol refused {refused} answers:\n{}",
        carol.process.transcript()
    );
    // The same key after a restart.
    server.terminate()?;
    server.wait_exit(WAIT)?;
    let (mut again, _) = start_server(&["--key-file", &key_arg], &[])?;
    let line = again.expect_stdout("answers signed with key", WAIT)?;
    assert!(line.ends_with(&key.to_string()), "{line}");
    Ok(())
}
