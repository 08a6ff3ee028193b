//! Scale simulation: one room of N peers in the deterministic simulator
//! (`core/tests/sim/harness.rs`: real [`p2pchat_core::Node`]s, virtual
//! time, a seeded lossy network, core's rendezvous registry as the
//! signaling server), measuring what a user of a large room would hit:
//!
//! 1. **Join.** Peer 0 creates the room; the other N-1 join with its Chat ID
//!    (peer 0's address as bootstrap), spread evenly over the first second.
//!    Reported: virtual time until 99 % of (peer, other) pairs are online,
//!    and until every peer sees every other online. The phase ends there,
//!    or when membership is stuck (nothing left to probe, nothing changing
//!    for 2 s: the pairs still missing have never heard of each other), or
//!    at `--join-deadline` (20 s).
//! 2. **Idle.** Datagrams and bytes each peer sends per second when nobody
//!    speaks (heartbeats, signaling refreshes), after 1 s of settling.
//! 3. **Messages.** A few messages (5 up to 200 peers, 3 above), one at a
//!    time, each from a random peer: whether it reaches every peer
//!    (completeness), how long until the last one has it (virtual ms), and
//!    the datagrams it costs over the whole heartbeat intervals around it:
//!    event datagrams (the author's push and any repair), plus control
//!    datagrams above the idle rate (summaries exchanged because heartbeat
//!    digests differ while the message spreads), per peer and for the
//!    sender.
//!
//! Timings are core's defaults ([`Config::default`]): heartbeat 1 s,
//! suspect 4 s, offline 12 s, probe 5 s, signaling lookups every 30 s. The
//! network delays each datagram by 1 to 40 ms, duplicates none and loses
//! `--loss` of them (0 by default).
//!
//! ```text
//! cargo bench -p p2pchat-core --bench scale                # 50, 100, 200 + 200 at 5 % loss (~3 min)
//! cargo bench -p p2pchat-core --bench scale -- --peers 1000 --messages 3  # ~28 min
//! cargo bench -p p2pchat-core --bench scale -- --peers 50,100 --loss 0.05 --messages 10 --seed 7
//! ```
//!
//! Every datagram is sealed and opened for real (about 42 µs and 108 µs),
//! so the simulator's CPU time grows like the protocol's: once the mesh is
//! complete, N peers cost about N² × 0.2 ms of CPU per virtual second
//! (1,000 peers: about 250 s per virtual second on one core of the 2-core
//! CI machine; the simulator uses one).
//!
//! Without `--bench` (as `cargo test --benches` runs it) and without
//! `--peers` it does one 12-peer run as a smoke test. Native only: on
//! wasm32 `main` is empty.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::time::Instant;

    use p2pchat_core::clock::EventId;
    use p2pchat_core::membership::Status;
    use p2pchat_core::Config;
    use p2pchat_core::RoomId;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use p2pchat_sim::{NetConfig, Sent, Sim, SIGNAL_ADDR, T0};

    /// Joins are spread over this much virtual time.
    const JOIN_SPREAD_MS: u64 = 1_000;
    /// Membership is sampled this often while joining.
    const SAMPLE_MS: u64 = 250;
    /// The join phase ends early, as stuck, when no peer has anyone left to
    /// probe (every member in every table is online), the number of online
    /// pairs has not changed for this long, and every peer has made its
    /// second signaling lookup (a joiner looks up again one probe interval
    /// after joining): the pairs still missing have never heard of each
    /// other, heartbeat hints keep naming the same few members (see the
    /// report), and the next lookups (every 30 s) list the same 16 peers.
    const PLATEAU_MS: u64 = 2_000;
    /// Run after membership converged, before measuring.
    const SETTLE_MS: u64 = 1_000;
    /// Idle measurement window: a whole number of heartbeat intervals, so
    /// every live peer beats every other exactly once a second in it.
    const IDLE_MS: u64 = 1_000;
    /// Each message is measured over whole heartbeat intervals (so the
    /// heartbeats in it are exactly those of the idle window) ending at
    /// least this long after the last peer got it (summary exchanges set
    /// off by differing digests take a few round trips).
    const AFTER_DELIVERY_MS: u64 = 500;

    struct Opts {
        peers: Vec<usize>,
        seed: u64,
        loss: f64,
        /// Messages per run; `None`: by size.
        messages: Option<usize>,
        join_deadline_ms: u64,
        deliver_deadline_ms: u64,
        /// Extra row with loss, when no sizes were given.
        lossy_row: Option<(usize, f64)>,
    }

    /// Reads the command line; a bad value is an error that says which.
    fn parse() -> Result<Opts, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let bench = args.iter().any(|a| a == "--bench");
        let mut opts = Opts {
            peers: if bench { vec![50, 100, 200] } else { vec![12] },
            seed: 1,
            loss: 0.0,
            messages: None,
            join_deadline_ms: 20_000,
            deliver_deadline_ms: 30_000,
            lossy_row: bench.then_some((200, 0.05)),
        };
        fn num<T: std::str::FromStr>(name: &str, v: Option<&String>) -> Result<T, String> {
            let v = v.ok_or_else(|| format!("{name} needs a value"))?;
            v.trim()
                .parse()
                .map_err(|_| format!("{name}: {v:?} is not a valid number"))
        }
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--peers" => {
                    let list = it.next().ok_or("--peers needs N[,N...]")?;
                    opts.peers = list
                        .split(',')
                        .map(|n| num("--peers", Some(&n.to_owned())))
                        .collect::<Result<_, _>>()?;
                    if let Some(n) = opts.peers.iter().find(|&&n| !(2..=1024).contains(&n)) {
                        return Err(format!(
                            "--peers: {n} is outside 2..=1024 (a room holds at most {} members)",
                            p2pchat_core::membership::MAX_MEMBERS
                        ));
                    }
                    opts.lossy_row = None;
                }
                "--seed" => opts.seed = num("--seed", it.next())?,
                "--loss" => {
                    opts.loss = num("--loss", it.next())?;
                    if !(0.0..1.0).contains(&opts.loss) {
                        return Err(format!("--loss: {} is not in [0, 1)", opts.loss));
                    }
                    opts.lossy_row = None;
                }
                "--messages" => opts.messages = Some(num("--messages", it.next())?),
                "--join-deadline" => {
                    opts.join_deadline_ms =
                        num::<u64>("--join-deadline", it.next())?.saturating_mul(1000)
                }
                "--deliver-deadline" => {
                    opts.deliver_deadline_ms =
                        num::<u64>("--deliver-deadline", it.next())?.saturating_mul(1000)
                }
                // cargo bench passes --bench; filters and the like are ignored.
                _ => {}
            }
        }
        Ok(opts)
    }

    /// One run's figures.
    struct Row {
        peers: usize,
        loss: f64,
        /// Virtual ms from the first join until 99 % of (peer, other) pairs
        /// were online, and until every peer saw every other online.
        join99_ms: Option<u64>,
        join_ms: Option<u64>,
        /// How the join phase ended, and when.
        join_end: JoinEnd,
        join_end_ms: u64,
        /// When the number of online pairs last changed.
        last_change_ms: u64,
        /// Membership then.
        seen: Seen,
        /// Per message: peers holding it (of N), virtual ms until all did.
        delivered: Vec<(usize, Option<u64>)>,
        /// Per message, per peer (mean): event datagrams, control datagrams
        /// above the idle rate.
        ev_mean: f64,
        ctl_extra_mean: f64,
        /// The same for the sender.
        ev_sender: f64,
        ctl_extra_sender: f64,
        /// Idle datagrams per peer per second (all kinds), and heartbeat
        /// (control) ones alone.
        idle_per_s: f64,
        idle_ctl_per_s: f64,
        /// Idle kilobytes sent per peer per second.
        idle_kb_per_s: f64,
        /// Wall seconds: join phase, the rest, total.
        wall_join: f64,
        wall_total: f64,
        /// Invariant check, registrations refused by the registry, members
        /// refused because tables were full.
        check: Result<(), String>,
        signal_rejected: u64,
        members_full: u64,
    }

    pub fn main() {
        let opts = match parse() {
            Ok(opts) => opts,
            Err(e) => {
                eprintln!("scale: {e}");
                std::process::exit(2);
            }
        };
        let defaults = Config::default();
        println!(
            "p2pchat scale simulation: seed {}, heartbeat {} ms, suspect {} ms, offline {} ms, \
             probe {} ms, delay 1-40 ms; joins spread over {} ms",
            opts.seed,
            defaults.timeouts.heartbeat,
            defaults.timeouts.suspect_after,
            defaults.timeouts.offline_after,
            defaults.timeouts.probe,
            JOIN_SPREAD_MS
        );
        let mut runs: Vec<(usize, f64)> = opts.peers.iter().map(|&n| (n, opts.loss)).collect();
        runs.extend(opts.lossy_row);
        let mut rows = Vec::new();
        for (n, loss) in runs {
            let messages = opts.messages.unwrap_or(if n <= 200 { 5 } else { 3 });
            let row = run(&opts, n, loss, messages);
            print_row_detail(&row);
            rows.push(row);
        }
        print_table(&rows);
    }

    fn run(opts: &Opts, n: usize, loss: f64, messages: usize) -> Row {
        let wall = Instant::now();
        let net = NetConfig {
            loss,
            dup: 0.0,
            min_delay: 1,
            max_delay: 40,
        };
        let mut sim = Sim::new(opts.seed, net);
        sim.config = Config {
            signaling: vec![SIGNAL_ADDR],
            ..Config::default()
        };
        for i in 0..n {
            sim.add_node(&format!("p{i}"));
        }
        let chat = sim.create(0, "scale");
        let room = *chat.room_id();

        // 1. Join.
        for k in 1..n {
            let at = T0 + (k as u64 - 1) * JOIN_SPREAD_MS / (n as u64 - 1).max(1);
            if at > sim.now {
                sim.run(at - sim.now);
                trim(&mut sim);
            }
            sim.join(k, &chat);
        }
        let (mut join99_ms, mut join_ms) = (None, None);
        let (mut last_online, mut same_since) = (0, sim.now);
        let second_lookups = JOIN_SPREAD_MS + sim.config.timeouts.probe + 500;
        let (seen, join_end) = loop {
            let seen = seen_online(&sim, &room);
            let t = sim.now - T0;
            if join99_ms.is_none() && seen.pairs_online() >= 0.99 {
                join99_ms = Some(t);
            }
            if seen.complete == n {
                join_ms = Some(t);
                break (seen, JoinEnd::Converged);
            }
            if seen.online != last_online {
                (last_online, same_since) = (seen.online, sim.now);
            } else if seen.pending == 0 && sim.now - same_since >= PLATEAU_MS && t >= second_lookups
            {
                break (seen, JoinEnd::Stuck);
            }
            if t >= opts.join_deadline_ms {
                break (seen, JoinEnd::Deadline);
            }
            sim.run(SAMPLE_MS);
            trim(&mut sim);
        };
        let join_end_ms = sim.now - T0;
        let last_change_ms = same_since - T0;
        let wall_join = wall.elapsed().as_secs_f64();
        eprintln!(
            "  [{n} peers, loss {loss}] join: 99 % of pairs online at {}, all see all at {}; \
             ended {join_end:?} at {join_end_ms} ms: {:.1} % of peers see all, {:.3} % of pairs \
             online, {} pairs never heard of each other, {} pending; wall {wall_join:.1} s",
            ms(join99_ms),
            ms(join_ms),
            seen.complete as f64 * 100.0 / n as f64,
            seen.pairs_online() * 100.0,
            seen.unknown,
            seen.pending,
        );

        // 2. Idle.
        sim.run(SETTLE_MS);
        trim(&mut sim);
        let before = sent(&sim);
        sim.run(IDLE_MS);
        trim(&mut sim);
        let idle = diff(&sent(&sim), &before);
        let idle_total: u64 = idle.iter().map(|s| s.ctl + s.ev + s.sig).sum();
        let idle_ctl: u64 = idle.iter().map(|s| s.ctl).sum();
        let secs = IDLE_MS as f64 / 1000.0;
        let idle_per_s = idle_total as f64 / n as f64 / secs;
        let idle_bytes: u64 = idle.iter().map(|s| s.bytes).sum();
        let idle_kb_per_s = idle_bytes as f64 / n as f64 / secs / 1000.0;
        let idle_ctl_per_s = idle_ctl as f64 / n as f64 / secs;
        // Per peer, for the sender's baseline.
        let idle_ctl_of: Vec<f64> = idle.iter().map(|s| s.ctl as f64 / IDLE_MS as f64).collect();
        eprintln!(
            "  [{n} peers] idle: {idle_per_s:.1} datagrams/peer/s, {idle_kb_per_s:.0} kB/s/peer, wall {:.1} s",
            wall.elapsed().as_secs_f64()
        );

        // 3. Messages.
        let mut pick = ChaCha20Rng::seed_from_u64(opts.seed ^ 0x5ca1e);
        let mut delivered = Vec::new();
        let (mut ev_sum, mut ctl_extra_sum, mut ev_sender, mut ctl_extra_sender) =
            (0.0, 0.0, 0.0, 0.0);
        for m in 0..messages {
            let sender = pick.next_u64() as usize % n;
            let before = sent(&sim);
            let start = sim.now;
            let id = sim.say(sender, &room, &format!("message {m} from p{sender}"));
            let mut missing: Vec<usize> = (0..n).filter(|&i| !has(&sim, i, &room, &id)).collect();
            while !missing.is_empty() && sim.now - start < opts.deliver_deadline_ms {
                sim.run(1);
                missing.retain(|&i| !has(&sim, i, &room, &id));
                if (sim.now - start) % SAMPLE_MS == 0 {
                    trim(&mut sim);
                }
            }
            let took = sim.now - start;
            delivered.push((n - missing.len(), missing.is_empty().then_some(took)));
            let window = (took + AFTER_DELIVERY_MS).div_ceil(1000) * 1000;
            sim.run(window - took);
            trim(&mut sim);
            let d = diff(&sent(&sim), &before);
            let ev: u64 = d.iter().map(|s| s.ev).sum();
            let ctl: u64 = d.iter().map(|s| s.ctl).sum();
            let idle_ctl_window = idle_ctl as f64 * window as f64 / IDLE_MS as f64;
            ev_sum += ev as f64 / n as f64;
            ctl_extra_sum += (ctl as f64 - idle_ctl_window) / n as f64;
            ev_sender += d[sender].ev as f64;
            ctl_extra_sender += d[sender].ctl as f64 - idle_ctl_of[sender] * window as f64;
            eprintln!(
                "  [{n} peers] message {m} from p{sender}: {} of {n} in {}, {:.2} ev + {:.2} ctl extra per peer, wall {:.1} s",
                n - missing.len(),
                if missing.is_empty() { format!("{took} ms") } else { "deadline".into() },
                ev as f64 / n as f64,
                (ctl as f64 - idle_ctl_window) / n as f64,
                wall.elapsed().as_secs_f64()
            );
        }
        let k = messages.max(1) as f64;
        let all: Vec<usize> = (0..n).collect();
        let check = sim.check(&room, &all);
        let counters = (0..n).map(|i| *sim.node(i).counters());
        let (signal_rejected, members_full) = counters.fold((0, 0), |(r, f), c| {
            (
                r + c.signal_rejected,
                f + c.get(p2pchat_core::DropReason::MembersFull),
            )
        });
        Row {
            peers: n,
            loss,
            join99_ms,
            join_ms,
            join_end,
            join_end_ms,
            last_change_ms,
            seen,
            delivered,
            ev_mean: ev_sum / k,
            ctl_extra_mean: ctl_extra_sum / k,
            ev_sender: ev_sender / k,
            ctl_extra_sender: ctl_extra_sender / k,
            idle_per_s,
            idle_ctl_per_s,
            idle_kb_per_s,
            wall_join,
            wall_total: wall.elapsed().as_secs_f64(),
            check,
            signal_rejected,
            members_full,
        }
    }

    /// Keeps memory flat on long runs: the trace (for determinism tests)
    /// is not needed here. (Stores keep one record per member, not one per
    /// change of status.)
    fn trim(sim: &mut Sim) {
        sim.trace.clear();
    }

    fn has(sim: &Sim, i: usize, room: &RoomId, id: &EventId) -> bool {
        sim.nodes[i]
            .delivered
            .get(room)
            .is_some_and(|d| d.contains(id))
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum JoinEnd {
        /// Every peer sees every other online.
        Converged,
        /// Nothing left to probe and nothing changing (see [`PLATEAU_MS`]).
        Stuck,
        /// `--join-deadline` reached.
        Deadline,
    }

    /// Who sees whom, over ordered pairs (a, b): a's table has b online.
    #[derive(Clone, Copy, Debug)]
    struct Seen {
        n: usize,
        /// Peers that see every other peer online.
        complete: usize,
        /// Pairs online.
        online: usize,
        /// Pairs where b is in a's table but not online (to be probed).
        pending: usize,
        /// Pairs where b is not in a's table at all.
        unknown: usize,
    }

    impl Seen {
        fn pairs_online(&self) -> f64 {
            self.online as f64 / (self.n * (self.n - 1)) as f64
        }
    }

    fn seen_online(sim: &Sim, room: &RoomId) -> Seen {
        let n = sim.nodes.len();
        let mut seen = Seen {
            n,
            complete: 0,
            online: 0,
            pending: 0,
            unknown: 0,
        };
        for i in 0..n {
            let (online, known) = sim.node(i).members(room).map_or((0, 0), |m| {
                let online = m.iter().filter(|m| m.status == Status::Online).count();
                (online, m.len())
            });
            seen.online += online;
            seen.pending += known - online;
            seen.unknown += (n - 1).saturating_sub(known);
            if online >= n - 1 {
                seen.complete += 1;
            }
        }
        seen
    }

    fn ms(t: Option<u64>) -> String {
        t.map_or("-".to_owned(), |t| format!("{t} ms"))
    }

    fn sent(sim: &Sim) -> Vec<Sent> {
        sim.nodes.iter().map(|n| n.sent).collect()
    }

    fn diff(after: &[Sent], before: &[Sent]) -> Vec<Sent> {
        after
            .iter()
            .zip(before)
            .map(|(a, b)| Sent {
                ctl: a.ctl - b.ctl,
                ev: a.ev - b.ev,
                sig: a.sig - b.sig,
                bytes: a.bytes - b.bytes,
            })
            .collect()
    }

    fn percentile(sorted: &[u64], p: f64) -> u64 {
        let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[idx.min(sorted.len() - 1)]
    }

    fn print_row_detail(row: &Row) {
        let mut notes = Vec::new();
        if let Err(e) = &row.check {
            notes.push(format!("INVARIANT CHECK FAILED: {e}"));
        }
        if row.signal_rejected > 0 {
            notes.push(format!(
                "{} signaling registrations refused",
                row.signal_rejected
            ));
        }
        if row.members_full > 0 {
            notes.push(format!("{} members refused (table full)", row.members_full));
        }
        if !notes.is_empty() {
            eprintln!("  [{} peers] {}", row.peers, notes.join("; "));
        }
    }

    fn print_table(rows: &[Row]) {
        println!();
        println!(
            "| peers | loss | join: 99 % of pairs online (virtual s) | join: all see all online (virtual s) | at end of join: peers seeing all / pairs online | delivered | time to reach all, p50 / max (virtual ms) | datagrams per peer per message, mean (event + control above idle) | datagrams per message, sender (event + control above idle) | idle datagrams per peer per s (heartbeats) | idle kB/s sent per peer | wall s (join / total) |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in rows {
            let got: usize = r.delivered.iter().map(|(k, _)| k).sum();
            let want = r.peers * r.delivered.len();
            let mut times: Vec<u64> = r.delivered.iter().filter_map(|(_, t)| *t).collect();
            times.sort_unstable();
            let times = if times.is_empty() {
                "-".to_owned()
            } else {
                let incomplete = r.delivered.len() - times.len();
                format!(
                    "{} / {}{}",
                    percentile(&times, 0.5),
                    times[times.len() - 1],
                    if incomplete > 0 {
                        format!(" ({incomplete} not by deadline)")
                    } else {
                        String::new()
                    }
                )
            };
            println!(
                "| {} | {:.0} % | {} | {} | {:.1} % / {:.3} % | {:.2} % ({} msgs) | {} | {:.1} ({:.2} + {:.2}) | {:.1} ({:.1} + {:.1}) | {:.1} ({:.1}) | {:.0} | {:.1} / {:.1} |",
                r.peers,
                r.loss * 100.0,
                r.join99_ms
                    .map_or("-".to_owned(), |t| format!("{:.2}", t as f64 / 1000.0)),
                match (r.join_ms, r.join_end) {
                    (Some(t), _) => format!("{:.2}", t as f64 / 1000.0),
                    (None, JoinEnd::Stuck) => format!(
                        "never: stuck since {:.2}, {} pairs unaware of each other",
                        r.last_change_ms as f64 / 1000.0,
                        r.seen.unknown
                    ),
                    (None, _) => format!(
                        "not by {:.0} (deadline)",
                        r.join_end_ms as f64 / 1000.0
                    ),
                },
                r.seen.complete as f64 * 100.0 / r.peers as f64,
                r.seen.pairs_online() * 100.0,
                got as f64 * 100.0 / want.max(1) as f64,
                r.delivered.len(),
                times,
                r.ev_mean + r.ctl_extra_mean,
                r.ev_mean,
                r.ctl_extra_mean,
                r.ev_sender + r.ctl_extra_sender,
                r.ev_sender,
                r.ctl_extra_sender,
                r.idle_per_s,
                r.idle_ctl_per_s,
                r.idle_kb_per_s,
                r.wall_join,
                r.wall_total,
            );
        }
        if rows.iter().any(|r| r.check.is_err()) {
            println!("\nsome runs FAILED the simulator's invariant check (see above)");
            std::process::exit(1);
        }
    }
}
