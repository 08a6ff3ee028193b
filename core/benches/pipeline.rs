//! Throughput of the core's message pipeline, for the README's figures.
//!
//! - `seal_open/seal`, `seal_open/open`: [`RoomCipher`] sign+encrypt and
//!   decrypt+verify of a 100-byte payload.
//! - `send`: [`Node::send_text`] of a 100-character message in a room with
//!   one live member, outputs drained as a host would.
//! - `receive`: a fresh receiver handling 1000 pre-captured event datagrams
//!   (decode, reassemble, decrypt, verify, deliver, record).
//! - `receive_16k`: the same for 16 KiB messages, about 20 fragments each.
//! - `receive_burst`: `receive`, the datagrams handed over 64 at a time
//!   ([`Node::handle_datagrams`]): their signatures checked in one batch.
//! - `open_batch/64`: decrypt 64 tokens and check their signatures in one
//!   batch ([`p2pchat_core::verification::Batch`]), per token.
//!
//! Run with `cargo bench -p p2pchat-core --bench pipeline`. Every bench
//! reports elements per second (criterion's `Throughput::Elements`).
//!
//! Native only: on wasm32 this compiles to an empty `main`.

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::hint::black_box;
    use std::net::SocketAddr;
    use std::time::Duration;

    use criterion::{criterion_group, BatchSize, Criterion, SamplingMode, Throughput};
    use p2pchat_core::node::CommandError;
    use p2pchat_core::verification::Batch;
    use p2pchat_core::{
        ChatId, Config, Identity, Node, Output, RoomCipher, RoomId, RoomKey, Transmit, UserName,
    };
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// An arbitrary fixed start time (ms since the epoch).
    const T0: u64 = 1_750_000_000_000;
    /// Messages per `receive` iteration.
    const RECEIVE_N: usize = 1000;
    /// Messages per `receive_16k` iteration.
    const RECEIVE_16K_N: usize = 50;
    /// Sender's and receiver's addresses.
    const SENDER: u8 = 1;
    const RECEIVER: u8 = 2;

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(5));
        targets = seal_open, open_batch, send, receive, receive_burst, receive_16k
    }

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 5000))
    }

    /// A text of exactly `len` ASCII characters.
    fn text(len: usize) -> String {
        "The quick brown fox jumps over the lazy dog; "
            .chars()
            .cycle()
            .take(len)
            .collect()
    }

    /// A node built only from `i`, so that it can be built again identically.
    fn node(i: u8) -> Node {
        let mut rng = ChaCha20Rng::seed_from_u64(u64::from(i));
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let config = Config {
            local_addrs: vec![addr(i)],
            ..Config::default()
        };
        let name = UserName::new(&format!("node{i}")).expect("a valid name");
        Node::new(Identity::generate(&mut rng), name, config, seed)
    }

    /// Drains a node's outputs as a host would (each batch confirmed as
    /// stored at once); returns the datagrams it wanted to send and its
    /// next deadline.
    fn drain(node: &mut Node) -> (Vec<Transmit>, Option<u64>) {
        let mut sent = Vec::new();
        loop {
            match node.poll_output() {
                Output::Persist(p) => {
                    black_box(&p.records);
                    node.stored(p.batch);
                }
                // Nothing is kept: the benches measure no repairs.
                Output::Read(r) => {
                    let none = vec![None; r.events.len()];
                    node.read_done(r.id, none);
                }
                Output::Transmit(t) => sent.push(t),
                Output::Event(e) => {
                    black_box(e);
                }
                Output::Timeout(deadline) => return (sent, deadline),
            }
        }
    }

    /// An input the receiver was fed while the pair settled.
    enum Input {
        Datagram(u64, SocketAddr, Vec<u8>),
        Timeout(u64),
    }

    /// A sender and a receiver in one room, each knowing the other live.
    /// Every input the receiver got is logged, so that a fresh receiver in
    /// the same state can be rebuilt (nodes are deterministic given their
    /// seed and inputs) without the sender taking part again.
    struct Pair {
        now: u64,
        sender: Node,
        receiver: Node,
        chat: ChatId,
        log: Vec<Input>,
    }

    impl Pair {
        fn new() -> Self {
            let mut sender = node(SENDER);
            let mut receiver = node(RECEIVER);
            let chat = sender.create_room(T0, "bench").expect("valid name");
            receiver.join_room(T0, &chat).expect("join");
            assert!(
                chat.bootstrap().contains(&addr(SENDER)),
                "the Chat ID carries the sender's address"
            );
            let mut pair = Pair {
                now: T0,
                sender,
                receiver,
                chat,
                log: Vec::new(),
            };
            pair.settle(5_000);
            pair.check_live();
            pair
        }

        fn room(&self) -> RoomId {
            *self.chat.room_id()
        }

        /// Runs both nodes for `ms`, delivering everything at once.
        fn settle(&mut self, ms: u64) {
            let end = self.now + ms;
            loop {
                let mut moved = false;
                let (from_sender, sender_next) = drain(&mut self.sender);
                let (from_receiver, receiver_next) = drain(&mut self.receiver);
                for t in from_sender {
                    if t.to == addr(RECEIVER) {
                        self.log
                            .push(Input::Datagram(self.now, addr(SENDER), t.bytes.clone()));
                        self.receiver
                            .handle_datagram(self.now, addr(SENDER), &t.bytes);
                        moved = true;
                    }
                }
                for t in from_receiver {
                    if t.to == addr(SENDER) {
                        self.sender
                            .handle_datagram(self.now, addr(RECEIVER), &t.bytes);
                        moved = true;
                    }
                }
                if moved {
                    continue;
                }
                let next = [sender_next, receiver_next].into_iter().flatten().min();
                match next {
                    Some(t) if t <= end => {
                        self.now = self.now.max(t);
                        self.sender.handle_timeout(self.now);
                        self.log.push(Input::Timeout(self.now));
                        self.receiver.handle_timeout(self.now);
                    }
                    _ => break,
                }
            }
            self.now = end;
        }

        fn check_live(&self) {
            let room = self.room();
            let live = |n: &Node| n.members(&room).expect("in the room").live().count();
            assert_eq!(live(&self.sender), 1, "the sender sees the receiver live");
            assert_eq!(live(&self.receiver), 1, "the receiver sees the sender live");
        }

        /// A receiver in the state `self.receiver` had after settling: joined,
        /// knowing the sender, with an empty history.
        fn fresh_receiver(&self) -> Node {
            let mut r = node(RECEIVER);
            r.join_room(T0, &self.chat).expect("join");
            for input in &self.log {
                match input {
                    Input::Datagram(now, from, bytes) => r.handle_datagram(*now, *from, bytes),
                    Input::Timeout(now) => r.handle_timeout(*now),
                }
                drain(&mut r);
            }
            r
        }

        /// Has the sender say `count` messages of `len` characters; returns
        /// the datagrams addressed to the receiver, in order.
        fn capture(&mut self, count: usize, len: usize) -> Vec<Vec<u8>> {
            let room = self.room();
            let body = text(len);
            let mut out = Vec::new();
            for _ in 0..count {
                // The room's quota holds the sender to its rate: it waits
                // as long as it is told, in its own time.
                while let Err(e) = self.sender.send_text(self.now, &room, &body) {
                    match e {
                        CommandError::OverQuota(q) => self.now += q.retry_after_ms,
                        e => panic!("send: {e}"),
                    }
                }
                for t in drain(&mut self.sender).0 {
                    if t.to == addr(RECEIVER) {
                        out.push(t.bytes);
                    }
                }
            }
            out
        }
    }

    fn seal_open(c: &mut Criterion) {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let author = Identity::generate(&mut rng);
        let cipher = RoomCipher::new(RoomId::generate(&mut rng), &RoomKey::generate(&mut rng));
        let payload = text(100).into_bytes();
        let token = cipher.seal(&author, &payload, T0).expect("seal");
        assert_eq!(cipher.open(&token).expect("open").payload, payload);

        let mut g = c.benchmark_group("seal_open");
        g.throughput(Throughput::Elements(1));
        g.bench_function("seal", |b| {
            b.iter(|| cipher.seal(black_box(&author), black_box(&payload), T0))
        });
        g.bench_function("open", |b| b.iter(|| cipher.open(black_box(&token))));
        g.finish();
    }

    fn open_batch(c: &mut Criterion) {
        const N: usize = 64;
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let cipher = RoomCipher::new(RoomId::generate(&mut rng), &RoomKey::generate(&mut rng));
        let authors: Vec<Identity> = (0..4).map(|_| Identity::generate(&mut rng)).collect();
        let payload = text(100).into_bytes();
        let tokens: Vec<String> = (0..N)
            .map(|i| cipher.seal(&authors[i % 4], &payload, T0).expect("seal"))
            .collect();
        let open_all = |tokens: &[String]| {
            let unsealed: Vec<_> = tokens
                .iter()
                .map(|t| cipher.unseal(t).expect("unseal"))
                .collect();
            let checks = unsealed.iter().map(|u| u.check.clone()).collect();
            Batch::new(checks, [7; 32]).verdicts()
        };
        assert_eq!(open_all(&tokens), vec![true; N]);
        let mut g = c.benchmark_group("open_batch");
        g.throughput(Throughput::Elements(N as u64));
        g.bench_function(format!("{N}"), |b| b.iter(|| open_all(black_box(&tokens))));
        g.finish();
    }

    /// A sender in a room with one live member, having sent once already
    /// (so the one datagram per send is checked).
    fn send_fixture(body: &str) -> (Node, RoomId, u64) {
        let mut pair = Pair::new();
        let room = pair.room();
        let now = pair.now;
        pair.sender.send_text(now, &room, body).expect("send");
        assert_eq!(
            drain(&mut pair.sender).0.len(),
            1,
            "one datagram to the one live member"
        );
        (pair.sender, room, now)
    }

    fn send(c: &mut Criterion) {
        let body = text(100);
        // Built on first use, so that a filtered-out bench costs nothing.
        let mut fixture = None;
        let mut g = c.benchmark_group("send");
        g.throughput(Throughput::Elements(1));
        g.bench_function("text_100", |b| {
            let (sender, room, now) = fixture.get_or_insert_with(|| send_fixture(&body));
            b.iter(|| {
                let id = sender.send_text(*now, room, black_box(&body));
                drain(sender);
                id
            })
        });
        g.finish();
        if let Some((sender, room, _)) = &fixture {
            let history = sender.history(room).expect("in the room").len();
            println!("send: the sender's history grew to {history} events");
        }
    }

    /// What a receive benchmark replays: the pair (for fresh receivers) and
    /// the datagrams the sender addressed to the receiver.
    struct ReceiveFixture {
        pair: Pair,
        room: RoomId,
        now: u64,
        datagrams: Vec<Vec<u8>>,
    }

    impl ReceiveFixture {
        fn new(name: &str, count: usize, len: usize) -> Self {
            let mut pair = Pair::new();
            let room = pair.room();
            let datagrams = pair.capture(count, len);
            let now = pair.now;
            let fixture = ReceiveFixture {
                pair,
                room,
                now,
                datagrams,
            };
            // Once, outside timing: a fresh receiver knows the sender, and
            // ends up with everything delivered and nothing dropped.
            let mut check = fixture.pair.fresh_receiver();
            assert_eq!(check.members(&room).expect("joined").live().count(), 1);
            assert_eq!(check.history(&room).expect("joined").len(), 0);
            fixture.run(&mut check, count, 1);
            println!(
                "{name}: {count} messages of {len} characters in {} datagrams ({} bytes)",
                fixture.datagrams.len(),
                fixture.datagrams.iter().map(Vec::len).sum::<usize>()
            );
            fixture
        }

        /// Feeds the datagrams to `receiver` as a host would, `burst` at
        /// a time, draining after each burst; checks that all `count`
        /// events were delivered.
        fn run(&self, receiver: &mut Node, count: usize, burst: usize) {
            for chunk in self.datagrams.chunks(burst) {
                receiver
                    .handle_datagrams(self.now, chunk.iter().map(|d| (addr(SENDER), d.as_slice())));
                drain(receiver);
            }
            // Cheap: the bench cannot silently measure drops.
            assert_eq!(receiver.history(&self.room).map(|h| h.len()), Some(count));
            assert_eq!(
                receiver.counters().dropped(),
                0,
                "{:?}",
                receiver.counters()
            );
        }
    }

    /// A fresh receiver (joined, knowing the sender) handles `count`
    /// messages of `len` characters.
    fn receive_bench(c: &mut Criterion, name: &str, count: usize, len: usize, burst: usize) {
        let mut fixture = None;
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(count as u64));
        g.sampling_mode(SamplingMode::Flat);
        g.sample_size(10);
        g.bench_function(format!("{count}x{len}"), |b| {
            let f: &ReceiveFixture =
                fixture.get_or_insert_with(|| ReceiveFixture::new(name, count, len));
            b.iter_batched(
                || f.pair.fresh_receiver(),
                |mut receiver| {
                    f.run(&mut receiver, count, burst);
                    receiver
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }

    fn receive(c: &mut Criterion) {
        receive_bench(c, "receive", RECEIVE_N, 100, 1);
    }

    fn receive_burst(c: &mut Criterion) {
        receive_bench(c, "receive_burst", RECEIVE_N, 100, 64);
    }

    fn receive_16k(c: &mut Criterion) {
        receive_bench(
            c,
            "receive_16k",
            RECEIVE_16K_N,
            p2pchat_core::wire::MAX_TEXT_LEN,
            1,
        );
    }
}
