//! End-to-end benchmarks of real processes on loopback, with the machine's
//! own limits measured in the same run so results read as ratios.
//!
//! `cargo run --release -p p2pchat-tests --bin bench -- [--quick]`
//!
//! It starts a signaling server and real `p2pchat-node --json` processes
//! (the binaries of the same profile), drives them through stdin and times
//! what they print: a message counts as delivered when the receiving node
//! prints it, which is when it is stored and shown. Everything binds to
//! 127.0.0.1 with port 0, and every process is killed at the end.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use p2pchat_core::verification::Batch;
use p2pchat_core::{Identity, RoomCipher, RoomId, RoomKey};
use p2pchat_tests::{binary, Signaling};
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(about = "End-to-end p2pchat benchmarks on loopback")]
struct Args {
    /// Small sizes, to check the tool itself (about a minute).
    #[arg(long)]
    quick: bool,
    /// Messages per second for the latency run.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds of the latency run.
    #[arg(long, default_value_t = 5)]
    latency_secs: u64,
    /// Messages in each throughput run.
    #[arg(long, default_value_t = 20_000)]
    throughput: usize,
    /// Seconds of the idle-CPU run.
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// History a late joiner catches up.
    #[arg(long, default_value_t = 100_000)]
    catch_up: usize,
    /// Messages stored before the restart run.
    #[arg(long, default_value_t = 1_000_000)]
    restart: usize,
    /// Skip the restart run (it takes minutes to fill the store).
    #[arg(long)]
    skip_restart: bool,
    /// History a browser peer joins (the web UI in headless Chromium).
    #[arg(long, default_value_t = 100_000)]
    browser: usize,
    /// The web UI as `trunk build --release` wrote it.
    #[arg(long, default_value = "dist")]
    browser_dist: std::path::PathBuf,
    /// Skip the browser run.
    #[arg(long)]
    skip_browser: bool,
    /// Profile the browser peer's join (DevTools' sampling profiler) and
    /// write the profile there (a `.cpuprofile` DevTools can open); the
    /// functions it spent most time in are printed.
    #[arg(long)]
    browser_profile: Option<std::path::PathBuf>,
    /// Run only these runs (repeat the flag; all of them when absent),
    /// to work on one figure.
    #[arg(long, value_enum)]
    only: Vec<Run>,
}

/// One run of the bench, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Run {
    Latency,
    Throughput,
    Idle,
    CatchUp,
    Browser,
    Restart,
}

impl Args {
    /// Whether `run` is to be run.
    fn runs(&self, run: Run) -> bool {
        let skipped = match run {
            Run::Browser => self.skip_browser,
            Run::Restart => self.skip_restart,
            _ => false,
        };
        if self.only.is_empty() {
            !skipped
        } else {
            self.only.contains(&run)
        }
    }
}

const WAIT: Duration = Duration::from_secs(600);

mod browser;

/// A node with timestamped output lines.
struct Node {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<(Instant, Value)>,
    peer: String,
    /// Its relay's address, when it runs one.
    relay: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// A per-author quota far above what the bench writes.
const BENCH_QUOTA: &str = "4000000000:4000000000:4000000000:4000000000:1099511627776";

impl Node {
    fn start(
        name: &str,
        signal: SocketAddr,
        dir: &Path,
        keep: Option<tempfile::TempDir>,
    ) -> Result<Node> {
        Node::start_with(name, signal, dir, keep, &["--no-relay"])
    }

    /// A node with `extra` arguments (`--no-relay`, or a relay's).
    fn start_with(
        name: &str,
        signal: SocketAddr,
        dir: &Path,
        keep: Option<tempfile::TempDir>,
        extra: &[&str],
    ) -> Result<Node> {
        let bin = binary("p2pchat-node")?;
        // `P2PCHAT_BENCH_NODE_LOG=info` shows the nodes' logs (their drop
        // counters when they stop, say) on the bench's stderr.
        let node_log = std::env::var("P2PCHAT_BENCH_NODE_LOG").ok();
        // `P2PCHAT_BENCH_HISTORY_WINDOW=N` sets the nodes' window (to
        // compare with a node keeping everything, say).
        let window: Vec<String> = std::env::var("P2PCHAT_BENCH_HISTORY_WINDOW")
            .map(|n| vec!["--history-window".to_owned(), n])
            .unwrap_or_default();
        let mut child = Command::new(bin)
            .args(["--json", "--host", "127.0.0.1", "--port", "0"])
            .args(extra)
            .args(&window)
            .args(["--username", name, "--signal", &signal.to_string()])
            // The bench writes as fast as a node takes messages: its chats
            // are created with a quota that never binds (see
            // `p2pchat_core::quota`; chats on the default quota take 20
            // messages a second per author).
            .args(["--room-quota", BENCH_QUOTA])
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", node_log.as_deref().unwrap_or("warn"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if node_log.is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .context("starting p2pchat-node")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let at = Instant::now();
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send((at, v)).is_err() {
                        break;
                    }
                }
            }
        });
        let mut node = Node {
            child,
            stdin,
            lines,
            peer: String::new(),
            relay: None,
            _dir: keep,
        };
        let (_, ready) = node.wait("ready", |v| v["event"] == "ready")?;
        node.peer = ready["peer"].as_str().unwrap_or_default().to_owned();
        node.relay = ready["relay"].as_str().map(str::to_owned);
        Ok(node)
    }

    fn fresh(name: &str, signal: SocketAddr) -> Result<Node> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().to_path_buf();
        Node::start(name, signal, &path, Some(dir))
    }

    fn send(&mut self, line: &str) -> Result<()> {
        writeln!(self.stdin, "{line}").context("writing to the node")
    }

    fn flush(&mut self) -> Result<()> {
        self.stdin.flush().context("flushing the node's stdin")
    }

    fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<(Instant, Value)> {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, v)) if pred(&v) => return Ok((at, v)),
                Ok(_) => {}
                Err(_) => bail!("no {what} within {WAIT:?}"),
            }
        }
    }

    /// Waits until `n` messages from others have been printed; their
    /// arrival times by text.
    fn receive(&mut self, n: usize) -> Result<HashMap<String, Instant>> {
        let mut got = HashMap::new();
        while got.len() < n {
            let (at, v) = self.wait(&format!("message {} of {n}", got.len() + 1), |v| {
                v["event"] == "message" && v["own"] == false
            })?;
            got.insert(v["text"].as_str().unwrap_or_default().to_owned(), at);
        }
        Ok(got)
    }

    fn cpu_secs(&self) -> Result<f64> {
        cpu_secs(self.child.id())
    }

    fn quit(mut self) -> Result<()> {
        self.send("/quit")?;
        self.flush()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("node did not quit");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0.0) };
    // utime and stime, in clock ticks (100 per second on Linux).
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// A memory figure of `/proc/<pid>/status` (`VmHWM:` peak, `VmRSS:` now),
/// in MB.
fn rss_mb(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no {field}"))?;
    Ok(kb / 1024.0)
}

/// A room: the first node creates it, the others join; returns when the
/// creator sees every other member online.
fn room(nodes: &mut [Node], name: &str) -> Result<()> {
    let (first, rest) = nodes.split_first_mut().ok_or_else(|| anyhow!("no nodes"))?;
    first.send(&format!("/create_chat {name}"))?;
    first.flush()?;
    let (_, v) = first.wait("chat_created", |v| v["event"] == "chat_created")?;
    let chat_id = v["chat_id"].as_str().unwrap_or_default().to_owned();
    for n in rest.iter_mut() {
        n.send(&format!("/join_chat {chat_id}"))?;
        n.flush()?;
        n.wait("chat_joined", |v| v["event"] == "chat_joined")?;
    }
    let mut left: Vec<String> = rest.iter().map(|n| n.peer.clone()).collect();
    while !left.is_empty() {
        let (_, v) = first.wait("members online", |v| {
            v["event"] == "member" && v["to"] == "online"
        })?;
        left.retain(|p| v["peer"].as_str() != Some(p));
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ----- the machine's limits -----------------------------------------------

struct Limits {
    udp_send_per_s: f64,
    udp_recv_per_s: f64,
    seal_us: f64,
    open_us: f64,
    /// Open with the signatures checked 64 at a time, on one core.
    open_batched_us: f64,
}

fn machine_limits() -> Result<Limits> {
    // Loopback UDP: one thread sends 785-byte datagrams (a 100-character
    // message's size) as fast as it can, another receives.
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    let to = rx.local_addr()?;
    rx.set_read_timeout(Some(Duration::from_millis(300)))?;
    let n = 200_000u32;
    let receiver = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut count = 0u32;
        let mut first = None;
        let mut last = Instant::now();
        while rx.recv(&mut buf).is_ok() {
            count += 1;
            last = Instant::now();
            first.get_or_insert(last);
        }
        (count, first.map(|f| last.duration_since(f)))
    });
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    let payload = vec![7u8; 785];
    let start = Instant::now();
    for _ in 0..n {
        let _ = tx.send_to(&payload, to);
    }
    let send_time = start.elapsed();
    let (received, recv_time) = receiver.join().map_err(|_| anyhow!("receiver panicked"))?;
    let udp_send_per_s = f64::from(n) / send_time.as_secs_f64();
    let udp_recv_per_s = match recv_time {
        Some(t) if t.as_secs_f64() > 0.0 => f64::from(received) / t.as_secs_f64(),
        _ => 0.0,
    };

    // One message's crypto: sign + encrypt, then decrypt + verify.
    let identity = Identity::from_secret_bytes(&[9; 32]);
    let room: RoomId = serde_json::from_str(&format!("\"{}\"", "ab".repeat(16)))?;
    let cipher = RoomCipher::new(room, &RoomKey::from_bytes([3; 32]));
    let body = vec![b'x'; 300];
    let rounds = 2_000;
    let t = Instant::now();
    let mut tokens = Vec::with_capacity(rounds);
    for i in 0..rounds {
        tokens.push(cipher.seal(&identity, &body, 1_750_000_000_000 + i as u64)?);
    }
    let seal_us = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let t = Instant::now();
    for token in &tokens {
        cipher.open(token)?;
    }
    let open_us = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    // The same tokens opened as a node opens a burst: decrypted one by
    // one, their signatures checked in batches of 64.
    let t = Instant::now();
    for chunk in tokens.chunks(64) {
        let mut checks = Vec::with_capacity(chunk.len());
        for token in chunk {
            checks.push(cipher.unseal(token)?.check);
        }
        let verdicts = Batch::new(checks, [5; 32]).verdicts();
        if verdicts.iter().any(|ok| !ok) {
            bail!("a batch of honest signatures failed");
        }
    }
    let open_batched_us = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    Ok(Limits {
        udp_send_per_s,
        udp_recv_per_s,
        seal_us,
        open_us,
        open_batched_us,
    })
}

// ----- the runs -----------------------------------------------------------

fn latency(signal: SocketAddr, rate: u32, secs: u64) -> Result<(f64, f64, f64, usize)> {
    let mut nodes = vec![
        Node::fresh("lat-a", signal)?,
        Node::fresh("lat-b", signal)?,
        Node::fresh("lat-c", signal)?,
    ];
    room(&mut nodes, "latency")?;
    let total = (u64::from(rate) * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut sent = HashMap::with_capacity(total);
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval * i as u32;
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let text = format!("m{i}");
        nodes[0].send(&format!("/send_chat latency {text}"))?;
        nodes[0].flush()?;
        sent.insert(text, Instant::now());
    }
    let mut lat = Vec::with_capacity(total * 2);
    for node in nodes.iter_mut().skip(1) {
        for (text, at) in node.receive(total)? {
            if let Some(s) = sent.get(&text) {
                lat.push(at.saturating_duration_since(*s).as_secs_f64() * 1e3);
            }
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let achieved = total as f64 / start.elapsed().as_secs_f64().max(1e-9);
    for n in nodes {
        n.quit()?;
    }
    Ok((
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        achieved,
        total,
    ))
}

/// `n` messages written as fast as the node takes them; messages per
/// second until every other node has printed all of them.
fn throughput(signal: SocketAddr, peers: usize, n: usize) -> Result<f64> {
    let mut nodes = Vec::new();
    for i in 0..peers {
        nodes.push(Node::fresh(&format!("tp{i}"), signal)?);
    }
    room(&mut nodes, "throughput")?;
    let start = Instant::now();
    for i in 0..n {
        nodes[0].send(&format!("/send_chat throughput t{i}"))?;
    }
    nodes[0].flush()?;
    let mut last = start;
    for node in nodes.iter_mut().skip(1) {
        let got = node.receive(n)?;
        if let Some(t) = got.values().max() {
            last = last.max(*t);
        }
    }
    for n in nodes {
        n.quit()?;
    }
    Ok(n as f64 / last.duration_since(start).as_secs_f64().max(1e-9))
}

fn idle_cpu(signal: SocketAddr, secs: u64) -> Result<Vec<f64>> {
    let mut nodes = vec![
        Node::fresh("idle-a", signal)?,
        Node::fresh("idle-b", signal)?,
        Node::fresh("idle-c", signal)?,
    ];
    room(&mut nodes, "idle")?;
    thread::sleep(Duration::from_secs(2));
    let before: Vec<f64> = nodes.iter().map(Node::cpu_secs).collect::<Result<_>>()?;
    thread::sleep(Duration::from_secs(secs));
    let after: Vec<f64> = nodes.iter().map(Node::cpu_secs).collect::<Result<_>>()?;
    for n in nodes {
        n.quit()?;
    }
    Ok(before
        .iter()
        .zip(&after)
        .map(|(b, a)| 100.0 * (a - b) / secs as f64)
        .collect())
}

/// Fills a node's history with `n` messages of its own (as fast as it
/// takes them) and returns when they are all stored.
fn fill(node: &mut Node, chat: &str, n: usize) -> Result<()> {
    node.send(&format!("/create_chat {chat}"))?;
    node.flush()?;
    node.wait("chat_created", |v| v["event"] == "chat_created")?;
    write(node, chat, n)
}

/// Writes `n` messages in `chat` and waits until the node shows them all.
fn write(node: &mut Node, chat: &str, n: usize) -> Result<()> {
    for i in 0..n {
        node.send(&format!("/send_chat {chat} history message number {i}"))?;
    }
    node.flush()?;
    let mut own = 0;
    while own < n {
        node.wait("own message", |v| {
            v["event"] == "message" && v["own"] == true
        })?;
        own += 1;
    }
    Ok(())
}

/// What the catch-up run measured, in seconds.
struct CaughtUp {
    /// From the join to the last message shown.
    secs: f64,
    /// Writing the history.
    fill: f64,
    /// CPU the member serving it spent, and the joiner.
    served_cpu: f64,
    joined_cpu: f64,
}

fn catch_up(signal: SocketAddr, n: usize) -> Result<CaughtUp> {
    let mut a = Node::fresh("history", signal)?;
    let t = Instant::now();
    fill(&mut a, "history", n)?;
    let fill_secs = t.elapsed().as_secs_f64();
    a.send("/invite history")?;
    a.flush()?;
    let (_, v) = a.wait("invite", |v| v["event"] == "invite")?;
    let chat_id = v["chat_id"].as_str().unwrap_or_default().to_owned();
    let mut late = Node::fresh("late", signal)?;
    let (served, joined) = (a.cpu_secs()?, late.cpu_secs()?);
    let start = Instant::now();
    late.send(&format!("/join_chat {chat_id}"))?;
    late.flush()?;
    late.receive(n)?;
    let secs = start.elapsed().as_secs_f64();
    let (served, joined) = (a.cpu_secs()? - served, late.cpu_secs()? - joined);
    late.quit()?;
    a.quit()?;
    Ok(CaughtUp {
        secs,
        fill: fill_secs,
        served_cpu: served,
        joined_cpu: joined,
    })
}

/// What the restart run measured.
struct Restarted {
    /// Seconds from start to the node's `ready`.
    ready: f64,
    /// Seconds from start until the chat is restored on screen (the UI
    /// has read what it shows).
    shown: f64,
    /// Peak RSS through the restart, MB.
    peak: f64,
    /// RSS after 5 idle seconds in the chat, MB.
    idle: f64,
    /// Seconds spent filling the store.
    fill: f64,
    /// Messages in the store restarted from.
    stored: usize,
    /// Messages written after that restart, before a crash.
    more: usize,
    /// Seconds from start to `ready` after the crash.
    after_crash: f64,
}

fn restart(signal: SocketAddr, n: usize) -> Result<Restarted> {
    // `P2PCHAT_BENCH_RESTART_DIR` keeps the filled store there and reuses
    // it in later runs (filling a million takes about a minute): to
    // measure restarts again and again, or to profile one.
    let kept = std::env::var_os("P2PCHAT_BENCH_RESTART_DIR").map(std::path::PathBuf::from);
    let temp = tempfile::tempdir()?;
    let dir = kept.clone().unwrap_or_else(|| temp.path().to_owned());
    let mut fill_secs = 0.0;
    if kept.as_ref().is_none_or(|d| !d.join("filled").exists()) {
        std::fs::create_dir_all(&dir)?;
        let mut a = Node::start("big", signal, &dir, None)?;
        let t = Instant::now();
        fill(&mut a, "big", n)?;
        fill_secs = t.elapsed().as_secs_f64();
        a.quit()?;
        std::fs::write(dir.join("filled"), n.to_string())?;
    }
    let stored = std::fs::read_to_string(dir.join("filled"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(n);
    let t = Instant::now();
    let mut b = Node::start("big", signal, &dir, None)?;
    let ready = t.elapsed().as_secs_f64();
    let (at, _) = b.wait("chat restored", |v| v["event"] == "chat_restored")?;
    let shown = at.duration_since(t).as_secs_f64();
    thread::sleep(Duration::from_secs(5));
    let idle = rss_mb(b.child.id(), "VmRSS:")?;
    let peak = rss_mb(b.child.id(), "VmHWM:")?;
    // A tenth more, then a crash: the next start takes the checkpoint
    // written at the clean stop and delivers what came after it again.
    let more = stored / 10;
    write(&mut b, "big", more)?;
    b.child.kill().context("killing the node")?;
    let _ = b.child.wait();
    drop(b);
    std::fs::write(dir.join("filled"), (stored + more).to_string())?;
    let t = Instant::now();
    let c = Node::start("big", signal, &dir, None)?;
    let after_crash = t.elapsed().as_secs_f64();
    c.quit()?;
    Ok(Restarted {
        ready,
        shown,
        peak,
        idle,
        fill: fill_secs,
        stored,
        more,
        after_crash,
    })
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.latency_secs = 2;
        args.throughput = 2_000;
        args.idle_secs = 5;
        args.catch_up = 5_000;
        args.restart = 20_000;
        args.browser = 2_000;
    }
    println!(
        "p2pchat bench (profile: {})",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let limits = machine_limits()?;
    let crypto_us = limits.seal_us + limits.open_us;
    let syscall_us = 1e6 / limits.udp_send_per_s + 1e6 / limits.udp_recv_per_s.max(1.0);
    let sequential_bound = 1e6 / (crypto_us + syscall_us);
    // The receiver opens what arrives together in batches, so its side of
    // the bound is the batched open.
    let pipelined_bound = 1e6
        / (limits.seal_us + 1e6 / limits.udp_send_per_s)
            .max(limits.open_batched_us + 1e6 / limits.udp_recv_per_s.max(1.0));
    println!("\nmachine limits (same run)");
    println!(
        "  loopback UDP, 785-byte datagrams: send {:.0}/s, receive {:.0}/s",
        limits.udp_send_per_s, limits.udp_recv_per_s
    );
    println!(
        "  crypto per message: seal {:.1} µs + open {:.1} µs = {:.1} µs; open in batches of 64: {:.1} µs",
        limits.seal_us, limits.open_us, crypto_us, limits.open_batched_us
    );
    println!("  bound for one sender and one receiver: {sequential_bound:.0} msg/s sequential, {pipelined_bound:.0} msg/s pipelined (sender and receiver on separate cores)");

    let signal = Signaling::start()?;

    if args.runs(Run::Latency) {
        let (p50, p99, achieved, total) = latency(signal.addr, args.rate, args.latency_secs)?;
        println!("\nlatency, 3-node room, {total} messages at {achieved:.0} msg/s: p50 {p50:.2} ms, p99 {p99:.2} ms (target < 1 ms / < 5 ms)");
    }

    if args.runs(Run::Throughput) {
        let two = throughput(signal.addr, 2, args.throughput)?;
        println!("throughput, 2 nodes, {} messages: {two:.0} msg/s = {:.0} % of the pipelined bound (target ≥ 60 %)", args.throughput, 100.0 * two / pipelined_bound);
        let five = throughput(signal.addr, 5, args.throughput)?;
        println!(
            "throughput, 5-node room, {} messages to 4 receivers, zero loss: {five:.0} msg/s",
            args.throughput
        );
    }

    if args.runs(Run::Idle) {
        let idle = idle_cpu(signal.addr, args.idle_secs)?;
        let idle_text: Vec<String> = idle.iter().map(|c| format!("{c:.2} %")).collect();
        println!(
            "idle CPU over {} s, 3 nodes in a room: {} (target < 1 %)",
            args.idle_secs,
            idle_text.join(", ")
        );
    }

    if args.runs(Run::CatchUp) {
        let c = catch_up(signal.addr, args.catch_up)?;
        println!("catch-up of {} messages by a late joiner: {:.2} s (target < 2 s for 100,000; writing them took {:.1} s); CPU: {:.2} s serving, {:.2} s joining", args.catch_up, c.secs, c.fill, c.served_cpu, c.joined_cpu);
    }

    if args.runs(Run::Browser) {
        browser_figures(signal.addr, &args)?;
    }

    if args.runs(Run::Restart) {
        let r = restart(signal.addr, args.restart)?;
        println!("restart with {} stored messages: ready in {:.2} s, chat shown in {:.2} s, peak RSS {:.0} MB, RSS idle {:.0} MB (targets < 1 s, < 150 MB, idle < 100 MB for 1,000,000; filling took {:.0} s)", r.stored, r.ready, r.shown, r.peak, r.idle, r.fill);
        println!("restart after a crash, {} messages written since the last checkpoint: ready in {:.2} s", r.more, r.after_crash);
    }
    Ok(())
}

/// Runs the browser measurements and prints them, unless the web UI is
/// not built.
fn browser_figures(signal: SocketAddr, args: &Args) -> Result<()> {
    if !args.browser_dist.join("index.html").is_file() {
        println!(
            "browser: skipped, no web UI in {} (run `trunk build --release` first)",
            args.browser_dist.display()
        );
        return Ok(());
    }
    let f = browser::run(
        signal,
        &args.browser_dist,
        args.browser,
        args.browser_profile.as_deref(),
    )?;
    let mut ms = f.new_message_ms.clone();
    ms.sort_by(f64::total_cmp);
    let median = ms.get(ms.len() / 2).copied().unwrap_or(f64::NAN);
    let worst = ms.last().copied().unwrap_or(f64::NAN);
    println!(
        "browser peer joining a room of {} messages: newest shown after {:.1} s (target < 10 s for 100,000); first message reached by scrolling up in {:.1} s ({} scrolls, at most {} messages held); a new message shown in {median:.0} ms median, {worst:.0} ms worst of {} (target < 100 ms); renderer peak memory {:.0} MB",
        args.browser,
        f.newest_shown_s,
        f.first_reached_s,
        f.scrolls,
        f.most_held,
        ms.len(),
        f.renderer_peak_mb
    );
    let w = f.join_work;
    println!(
        "  the page's main thread while joining: busy {:.1} s, of which script {:.1} s, layout {:.1} s ({:.0} layouts), style {:.1} s ({:.0} recalculations)",
        w.task_s, w.script_s, w.layout_s, w.layouts, w.style_s, w.styles
    );
    if let Some(path) = &args.browser_profile {
        println!("  profile of the join in {} (self time):", path.display());
        for (name, share) in f.join_profile.iter().take(25) {
            println!("    {share:5.1} %  {name}");
        }
    }
    Ok(())
}
