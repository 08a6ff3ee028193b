//! A member turned hostile, against real nodes on loopback: Mallory holds
//! the Chat ID, runs the protocol engine herself over a UDP socket of this
//! test, and on top of it seals control messages of her own making.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use p2pchat_core::clock::EventId;
use p2pchat_core::history::Body;
use p2pchat_core::membership::{Beat, Hint, Status, MAX_HINTS, MAX_HINT_CREDIT};
use p2pchat_core::wire::{self, Control, EventWire, RoomKind, Sealed};
use p2pchat_core::{ChatId, Config, Identity, MemoryStore, Node, PeerId, RoomCipher, UserName};
use p2pchat_sim::{settle, Settled};
use p2pchat_tests::{ChatNode, Signaling};
use rand_core::{OsRng, RngCore};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Mallory: an engine on a UDP socket of the test, and her key.
struct Mallory {
    socket: UdpSocket,
    engine: Node,
    disk: MemoryStore,
    identity: Identity,
    chat: ChatId,
    stamp: u64,
    /// Datagrams she sent to each address.
    sent: std::collections::BTreeMap<SocketAddr, u64>,
    /// The digest of the last event she made by hand (the hash chain).
    last: Option<p2pchat_core::equivocation::Digest>,
}

impl Mallory {
    async fn join(chat_id: &str, signal: SocketAddr) -> Result<Mallory> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let config = Config {
            signaling: vec![signal],
            local_addrs: vec![socket.local_addr()?],
            ..Config::default()
        };
        let identity = Identity::generate(&mut OsRng);
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let mut engine = Node::new(identity.clone(), UserName::new("mallory")?, config, seed);
        let chat: ChatId = chat_id.parse().map_err(|e| anyhow!("{e}"))?;
        engine.join_room(now_ms(), &chat)?;
        Ok(Mallory {
            socket,
            engine,
            disk: MemoryStore::new(),
            identity,
            chat,
            stamp: 0,
            sent: Default::default(),
            last: None,
        })
    }

    /// Runs the engine for `ms`.
    async fn run_for(&mut self, ms: u64) -> Result<()> {
        let end = Instant::now() + Duration::from_millis(ms);
        let mut buf = vec![0u8; 65_536];
        loop {
            let (outputs, next) = settle(&mut self.engine, &mut self.disk);
            for o in outputs {
                if let Settled::Transmit(t) = o {
                    self.send(t.to, &t.bytes).await?;
                }
            }
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            let wake = next
                .map_or(200, |t| t.saturating_sub(now_ms()).min(200))
                .min(u64::try_from((end - now).as_millis()).unwrap_or(200));
            match tokio::time::timeout(Duration::from_millis(wake), self.socket.recv_from(&mut buf))
                .await
            {
                Err(_) => self.engine.handle_timeout(now_ms()),
                Ok(r) => {
                    let (n, from) = r?;
                    self.engine.handle_datagram(now_ms(), from, &buf[..n]);
                }
            }
        }
    }

    async fn send(&mut self, to: SocketAddr, bytes: &[u8]) -> Result<()> {
        self.socket.send_to(bytes, to).await?;
        *self.sent.entry(to).or_default() += 1;
        Ok(())
    }

    fn online_with(&self, peers: &[PeerId]) -> bool {
        let Some(members) = self.engine.members(self.chat.room_id()) else {
            return false;
        };
        peers
            .iter()
            .all(|p| members.get(p).is_some_and(|m| m.status == Status::Online))
    }

    /// A heartbeat of her own making, hinting `hints`, to `to` from her
    /// own (proved) address.
    async fn hint(&mut self, to: SocketAddr, hints: Vec<Hint>) -> Result<()> {
        self.stamp = self.stamp.max(now_ms() * 1000 + 500) + 1;
        let beat = Beat {
            stamp: self.stamp,
            name: "mallory".into(),
            digest: 0,
            hints,
            hello: false,
            challenge: None,
            response: None,
        };
        let payload = serde_json::to_vec(&Sealed::Ctl(Control::Beat(beat)))?;
        let cipher = RoomCipher::new(*self.chat.room_id(), self.chat.key());
        let token = cipher.seal(&self.identity, &payload, now_ms())?;
        let datagrams = wire::encode_room(
            RoomKind::Ctl,
            self.chat.key().rendezvous_tag(),
            self.identity.peer_id(),
            &token,
            1200,
            OsRng.next_u32(),
        )
        .context("the beat does not fit")?;
        for d in datagrams {
            self.send(to, &d).await?;
        }
        Ok(())
    }
}

impl Mallory {
    /// An event of her own making: her `k`-th after `from`, `text` long,
    /// sealed and sent to `to`.
    async fn write(
        &mut self,
        to: &[SocketAddr],
        from: (u64, Vec<EventId>, u64),
        k: u64,
        text: String,
    ) -> Result<()> {
        let (seq, deps, lamport) = from;
        let me = self.identity.peer_id();
        // Chained to what her node holds, then to her own last event.
        let (prev, refs) = match (k, self.last) {
            (0, _) | (_, None) => self
                .engine
                .history(self.chat.room_id())
                .and_then(|h| h.commitments(&me, seq, &deps))
                .context("mallory's node lacks what she answers")?,
            (_, Some(last)) => (Some(last), vec![last]),
        };
        let ev = EventWire {
            seq: seq + k,
            lamport: lamport + k,
            deps: if k == 0 {
                deps
            } else {
                vec![EventId::new(me, seq + k - 1)]
            },
            time: now_ms(),
            name: "mallory".into(),
            body: Body::Text { text },
            prev,
            refs,
        };
        self.last = Some(p2pchat_core::equivocation::wire_digest(me, &ev));
        let payload = serde_json::to_vec(&Sealed::Ev(ev))?;
        let cipher = RoomCipher::new(*self.chat.room_id(), self.chat.key());
        let token = cipher.seal(&self.identity, &payload, now_ms())?;
        let datagrams = wire::encode_room(
            RoomKind::Ev,
            self.chat.key().rendezvous_tag(),
            me,
            &token,
            1200,
            OsRng.next_u32(),
        )
        .context("the event does not fit")?;
        for &addr in to {
            for d in &datagrams {
                self.send(addr, d).await?;
            }
        }
        Ok(())
    }
}

/// Alice and Bob, real nodes in one chat, and Mallory online with both.
struct Room {
    _signal: Signaling,
    dirs: [tempfile::TempDir; 2],
    alice: ChatNode,
    bob: ChatNode,
    mallory: Mallory,
}

impl Room {
    async fn start() -> Result<Room> {
        let signal = Signaling::start()?;
        let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
        let mut alice = ChatNode::start("alice", dirs[0].path(), &[signal.addr], &[])?;
        let mut bob = ChatNode::start("bob", dirs[1].path(), &[signal.addr], &[])?;
        let chat_id = alice.create_chat("general")?;
        bob.join_chat(&chat_id)?;
        let mut mallory = Mallory::join(&chat_id, signal.addr).await?;
        let peers: Vec<PeerId> = [&alice.peer, &bob.peer]
            .iter()
            .map(|p| p.parse().map_err(|e| anyhow!("peer id {p}: {e}")))
            .collect::<Result<_>>()?;
        let deadline = Instant::now() + WAIT;
        while !mallory.online_with(&peers) {
            if Instant::now() > deadline {
                bail!("mallory never got online with alice and bob");
            }
            mallory.run_for(200).await?;
        }
        Ok(Room {
            _signal: signal,
            dirs,
            alice,
            bob,
            mallory,
        })
    }
}

/// Bytes of the files in `dir`.
fn disk(dir: &std::path::Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        n += e?.metadata()?.len();
    }
    Ok(n)
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}

/// CPU time process `pid` has used so far, in seconds (user and system;
/// `/proc` counts in USER_HZ, 100 a second on Linux).
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: utime and stime are the 12th and 13th of them.
    let rest = stat.rsplit_once(')').context("no command name")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .context("no CPU times")
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// Mallory writes 16 KiB messages, 100 a second for 20 s (32 MB of
/// text), to Alice and Bob, in a chat on the default quota (20 messages a
/// second with bursts of 200, 64 KiB a second with bursts of 2 MiB). What
/// they store and hold grows by a few MB, not by what she sent; and Alice
/// and Bob still chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_flood_costs_the_others_only_its_quota() -> Result<()> {
    let Room {
        _signal,
        dirs: [dir_a, dir_b],
        mut alice,
        mut bob,
        mut mallory,
    } = Room::start().await?;
    alice.say("general", "before the flood")?;
    bob.expect_message("before the flood")?;
    let before = [
        (disk(dir_a.path())?, rss(alice.process.pid())?),
        (disk(dir_b.path())?, rss(bob.process.pid())?),
    ];
    let cpu_before = [cpu_secs(alice.process.pid())?, cpu_secs(bob.process.pid())?];
    let me = mallory.identity.peer_id();
    let from = mallory
        .engine
        .history(mallory.chat.room_id())
        .and_then(|h| h.next_for(&me))
        .context("mallory cannot write")?;
    let to = [alice.udp, bob.udp];
    let start = Instant::now();
    let mut k = 0u64;
    let mut sent_bytes = 0u64;
    while start.elapsed() < Duration::from_secs(20) {
        let text = format!("{k:05}{}", "x".repeat(16 * 1024 - 5));
        sent_bytes += text.len() as u64;
        mallory.write(&to, from.clone(), k, text).await?;
        k += 1;
        mallory.run_for(10).await?;
    }
    mallory.run_for(2_000).await?;
    let after = [
        (disk(dir_a.path())?, rss(alice.process.pid())?),
        (disk(dir_b.path())?, rss(bob.process.pid())?),
    ];
    let cpu_after = [cpu_secs(alice.process.pid())?, cpu_secs(bob.process.pid())?];
    let wall = start.elapsed().as_secs_f64();
    let mb = |b: u64| b as f64 / 1e6;
    for (i, (who, (b, a))) in ["alice", "bob"]
        .iter()
        .zip(before.iter().zip(&after))
        .enumerate()
    {
        let cpu = cpu_after[i] - cpu_before[i];
        println!(
            "flood: {k} messages, {:.1} MB of text in 20 s: {who} +{:.1} MB on disk, +{:.1} MB \
             resident, {cpu:.1} s of CPU in {wall:.1} s ({:.0} % of one core)",
            mb(sent_bytes),
            mb(a.0.saturating_sub(b.0)),
            mb(a.1.saturating_sub(b.1)),
            100.0 * cpu / wall
        );
        assert!(
            a.0.saturating_sub(b.0) < 16_000_000,
            "{who}'s store grew by {} bytes",
            a.0 - b.0
        );
        assert!(
            a.1.saturating_sub(b.1) < 64_000_000,
            "{who}'s memory grew by {} bytes",
            a.1 - b.1
        );
    }
    assert!(sent_bytes > 20_000_000, "the flood was a flood");
    alice.say("general", "after the flood")?;
    bob.expect_message("after the flood")?;
    alice.quit()?;
    bob.quit()?;
    Ok(())
}

/// Datagrams that reached the victims' sockets so far.
fn drain(victims: &[std::net::UdpSocket]) -> u64 {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    for v in victims {
        while v.recv_from(&mut buf).is_ok() {
            n += 1;
        }
    }
    n
}

/// Mallory hints 32 made-up members per heartbeat (28 at victims' sockets
/// of this test, and unspecified, multicast and broadcast addresses), ten
/// heartbeats a second to each of Alice and Bob for 20 s, then goes
/// silent. The victims get at most one datagram per datagram Mallory sent,
/// and next to nothing after she stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_hints_reflect_nothing() -> Result<()> {
    let Room {
        _signal,
        dirs: _dirs,
        mut alice,
        mut bob,
        mut mallory,
    } = Room::start().await?;
    let targets = [alice.udp, bob.udp];

    let victims: Vec<std::net::UdpSocket> = (0..MAX_HINTS - 4)
        .map(|_| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect::<Result<_>>()?;
    let mut hinted: Vec<SocketAddr> = victims
        .iter()
        .map(|v| v.local_addr())
        .collect::<std::io::Result<_>>()?;
    hinted.extend([
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 4000)),
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 251), 5353)),
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, 9)),
        SocketAddr::V6(SocketAddrV6::new("ff02::1".parse()?, 5353, 0, 0)),
    ]);
    let sent_before: u64 = targets
        .iter()
        .map(|t| mallory.sent.get(t).copied().unwrap_or(0))
        .sum();
    let mut reached = drain(&victims);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        for to in targets {
            let hints = hinted
                .iter()
                .map(|addr| {
                    let mut id = [0u8; 32];
                    OsRng.fill_bytes(&mut id);
                    Hint {
                        peer: PeerId::from_bytes(id),
                        addr: *addr,
                    }
                })
                .collect();
            mallory.hint(to, hints).await?;
        }
        mallory.run_for(100).await?;
        reached += drain(&victims);
    }
    let sent: u64 = targets
        .iter()
        .map(|t| mallory.sent.get(t).copied().unwrap_or(0))
        .sum();
    // Mallory goes silent.
    drop(mallory);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = drain(&victims);
    println!(
        "hint reflection: victims got {reached} datagrams for {} Mallory sent alice and bob in 20 s \
         (x{:.2}), then {after} in the 10 s after she went silent",
        sent - sent_before,
        reached as f64 / (sent - sent_before) as f64
    );
    assert!(
        reached <= sent,
        "victims got {reached} datagrams for {sent} from Mallory"
    );
    assert!(
        after <= 2 * u64::from(MAX_HINT_CREDIT),
        "victims got {after} datagrams after Mallory went silent"
    );
    // Alice and Bob still chat.
    alice.say("general", "still here")?;
    bob.expect_message("still here")?;
    alice.quit()?;
    bob.quit()?;
    Ok(())
}

/// The equivocation, with real nodes: Mallory signs two different
/// messages under one number, one sent to Alice, the other to Bob, goes on
/// writing on each branch and then stays quiet (her own node stops); Alice
/// and Bob each answer the branch they saw. Both are warned, and both end
/// up showing the same history: neither version of Mallory's, both
/// answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_member_cannot_split_the_room() -> Result<()> {
    let Room {
        _signal,
        dirs: _dirs,
        mut alice,
        mut bob,
        mut mallory,
    } = Room::start().await?;
    alice.say("general", "hello")?;
    bob.expect_message("hello")?;
    let deadline = Instant::now() + WAIT;
    let room = *mallory.chat.room_id();
    while mallory.engine.history(&room).map_or(0, |h| h.len()) < 1 {
        if Instant::now() > deadline {
            bail!("mallory never got the first message");
        }
        mallory.run_for(200).await?;
    }
    let me = mallory.identity.peer_id();
    let from = mallory
        .engine
        .history(&room)
        .and_then(|h| h.next_for(&me))
        .context("mallory cannot write")?;
    // Each branch chained to its own first message.
    mallory
        .write(&[alice.udp], from.clone(), 0, "yes".into())
        .await?;
    mallory
        .write(&[alice.udp], from.clone(), 1, "I said yes".into())
        .await?;
    mallory
        .write(&[bob.udp], from.clone(), 0, "no".into())
        .await?;
    mallory
        .write(&[bob.udp], from, 1, "I said no".into())
        .await?;
    alice.expect_message("I said yes")?;
    bob.expect_message("I said no")?;
    alice.say("general", "did you?")?;
    bob.say("general", "she did")?;
    for node in [&mut alice, &mut bob] {
        // Already read past while waiting for a message, or still to come.
        let told = node
            .process
            .transcript()
            .lines()
            .any(|l| l.contains("\"event\":\"equivocation\"") && l.contains(&me.to_string()));
        if !told {
            node.event("a warning about mallory", |v| {
                v["event"] == "equivocation" && v["peer"] == me.to_string()
            })?;
        }
    }
    alice.expect_message("she did")?;
    bob.expect_message("did you?")?;
    // The same history on both, whatever branch each saw first.
    let deadline = Instant::now() + WAIT;
    loop {
        let a = alice.history("general")?;
        let b = bob.history("general")?;
        let (ta, tb) = (
            p2pchat_tests::chat::texts(&a),
            p2pchat_tests::chat::texts(&b),
        );
        let mallorys = ["yes", "no", "I said yes", "I said no"];
        let clean = |t: &[String]| !t.iter().any(|x| mallorys.contains(&x.as_str()));
        if p2pchat_tests::chat::order(&a) == p2pchat_tests::chat::order(&b)
            && ta == tb
            && clean(&ta)
        {
            println!("equivocation: alice and bob both show {ta:?}");
            assert_eq!(ta.len(), 3, "{ta:?}");
            break;
        }
        if Instant::now() > deadline {
            bail!("alice shows {ta:?}, bob {tb:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    alice.quit()?;
    bob.quit()?;
    Ok(())
}
