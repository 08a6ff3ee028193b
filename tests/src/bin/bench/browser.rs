//! The browser peer's figures: the built web UI in headless Chromium
//! (driven over WebDriver, like `browser-check`) joins a room of `n`
//! messages through the local node's relay.
//!
//! Measured: how long from pressing Join until the newest message is shown
//! (the page catches the whole history up, checks every signature and
//! stores every event in IndexedDB first); how long scrolling up takes to
//! reach the first message, and the most messages the page held meanwhile;
//! how long a new message takes from the node's stdin to the page's
//! timeline once the history is there; and the renderer's peak memory.
//! Times in the page are the page's `Date.now()`, on the same clock as
//! this process's.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use p2pchat_tests::browser::{BrowserOptions, ChatPage, Page};
use p2pchat_tests::StaticServer;
use tokio::task::block_in_place;

use super::{fill, Node};

/// The longest wait for any one step (a large history takes minutes);
/// `P2PCHAT_BENCH_STEP_SECS` sets another (to catch a stall quickly).
fn step() -> Duration {
    let secs = std::env::var("P2PCHAT_BENCH_STEP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(900);
    Duration::from_secs(secs)
}

/// Where the run is, on stderr (a stalled step is then plain to see).
fn progress(what: &str) {
    eprintln!("browser run: {what}");
}

/// What the browser run measured.
pub struct Figures {
    /// From pressing Join to the newest message shown.
    pub newest_shown_s: f64,
    /// Scrolling up from the newest message to the first.
    pub first_reached_s: f64,
    /// Scroll steps that took.
    pub scrolls: usize,
    /// The most messages the page held at any look.
    pub most_held: usize,
    /// New messages, node's stdin → shown in the page, in ms.
    pub new_message_ms: Vec<f64>,
    /// The peak resident memory of Chromium's renderer processes, MB.
    pub renderer_peak_mb: f64,
    /// Where the page's main thread spent the join (the renderer's own
    /// counters, Chrome DevTools `Performance.getMetrics`): busy, script,
    /// layout and style seconds, and how many layouts and style
    /// recalculations.
    pub join_work: JoinWork,
    /// With a profile asked for: the functions the page's main thread
    /// spent the join in, by self time (name, share of the samples), most
    /// first.
    pub join_profile: Vec<(String, f64)>,
}

/// The renderer's work while joining, from its counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct JoinWork {
    pub task_s: f64,
    pub script_s: f64,
    pub layout_s: f64,
    pub layouts: f64,
    pub style_s: f64,
    pub styles: f64,
}

impl JoinWork {
    fn between(
        before: &std::collections::BTreeMap<String, f64>,
        after: &std::collections::BTreeMap<String, f64>,
    ) -> JoinWork {
        let d = |name: &str| {
            after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
        };
        JoinWork {
            task_s: d("TaskDuration"),
            script_s: d("ScriptDuration"),
            layout_s: d("LayoutDuration"),
            layouts: d("LayoutCount"),
            style_s: d("RecalcStyleDuration"),
            styles: d("RecalcStyleCount"),
        }
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Runs the browser measurements on `n` messages with the web UI built in
/// `dist`.
/// With `profile`, the join is profiled and the profile written there.
pub fn run(signal: SocketAddr, dist: &Path, n: usize, profile: Option<&Path>) -> Result<Figures> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(measure(signal, dist, n, profile))
}

async fn measure(
    signal: SocketAddr,
    dist: &Path,
    n: usize,
    profile: Option<&Path>,
) -> Result<Figures> {
    let site = StaticServer::start(dist).await?;
    let origin = format!("http://{}", site.addr());
    let dir = tempfile::tempdir()?;
    let mut node = block_in_place(|| {
        Node::start_with(
            "host",
            signal,
            dir.path(),
            None,
            &["--relay", "127.0.0.1:0", "--relay-origin", &origin],
        )
    })?;
    let relay = node.relay.clone().context("the node runs no relay")?;
    progress(&format!("writing {n} messages"));
    let chat_id = block_in_place(|| -> Result<String> {
        fill(&mut node, "big", n)?;
        node.send("/invite big")?;
        node.flush()?;
        let (_, v) = node.wait("invite", |v| v["event"] == "invite")?;
        Ok(v["chat_id"].as_str().unwrap_or_default().to_owned())
    })?;
    let page = ChatPage::launch(&BrowserOptions {
        chromedriver: "/usr/bin/chromedriver".into(),
        chromium: "/usr/bin/chromium".into(),
        timeout: step(),
    })
    .await?;
    let figures = on_the_page(
        &page,
        &mut node,
        &format!("{origin}/?relay=ws://{relay}/"),
        &chat_id,
        n,
        profile,
    )
    .await;
    page.close().await;
    block_in_place(|| node.quit())?;
    drop(site);
    figures
}

async fn on_the_page(
    page: &ChatPage,
    node: &mut Node,
    url: &str,
    chat_id: &str,
    n: usize,
    profile: Option<&Path>,
) -> Result<Figures> {
    progress("opening the page");
    page.open(url).await?;
    page.wait_for("the page connected to the node's relay", Page::connected)
        .await?;
    page.sign_in("reader").await?;
    page.wait_for("the main screen", Page::main_screen).await?;

    // Join, and wait for the newest message.
    let newest = format!("history message number {}", n.saturating_sub(1));
    page.watch_for(&newest).await?;
    let work_before = page.metrics().await?;
    if profile.is_some() {
        page.start_profiler(250).await?;
    }
    let joined = now_ms();
    progress("joining");
    page.join(chat_id).await?;
    let mut most_held = 0;
    let deadline = Instant::now() + step();
    let shown = loop {
        if let Some(at) = page.seen_at(&newest).await? {
            break at;
        }
        if Instant::now() >= deadline {
            bail!(
                "the newest message was not shown within {:?}\n{}\n{}",
                step(),
                page.look()
                    .await
                    .map_or_else(|e| format!("{e:#}"), |p| p.to_string()),
                page.diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let newest_shown_s = (shown - joined) / 1000.0;
    let join_work = JoinWork::between(&work_before, &page.metrics().await?);
    let mut join_profile = Vec::new();
    if let Some(path) = profile {
        let cpuprofile = page.stop_profiler().await?;
        std::fs::write(path, cpuprofile.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
        join_profile = self_time(&cpuprofile);
    }
    most_held = most_held.max(page.look().await?.messages.len());

    progress("newest shown; scrolling up");
    // Up to the first message.
    let first = "history message number 0";
    let started = Instant::now();
    let mut scrolls = 0;
    loop {
        page.scroll_timeline_to_top().await?;
        scrolls += 1;
        let look = page.look().await?;
        most_held = most_held.max(look.messages.len());
        if look.beginning {
            if look.messages.first().map(|m| m.text.as_str()) != Some(first) {
                bail!(
                    "at the beginning of the chat the page does not show its first message\n{look}"
                );
            }
            break;
        }
        if started.elapsed() >= step() {
            bail!(
                "scrolling up did not reach the first message within {:?}\n{look}",
                step()
            );
        }
    }
    let first_reached_s = started.elapsed().as_secs_f64();

    progress("first reached; new messages");
    // Back to the newest, then new messages one at a time.
    page.jump_to_newest().await?;
    page.wait_for("the newest messages again", |p| {
        !p.newer && p.message(&newest).is_some()
    })
    .await?;
    let mut new_message_ms = Vec::new();
    for i in 0..5 {
        let text = format!("a new message {i}");
        page.watch_for(&text).await?;
        let sent = now_ms();
        block_in_place(|| -> Result<()> {
            node.send(&format!("/send_chat big {text}"))?;
            node.flush()
        })?;
        let deadline = Instant::now() + step();
        let at = loop {
            if let Some(at) = page.seen_at(&text).await? {
                break at;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{text:?} was not shown within {:?}\n{}",
                    step(),
                    page.diagnostics().await
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        new_message_ms.push(at - sent);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Figures {
        newest_shown_s,
        first_reached_s,
        scrolls,
        most_held,
        new_message_ms,
        renderer_peak_mb: renderer_peak_mb(),
        join_work,
        join_profile,
    })
}

/// Self time by function name in a DevTools CPU profile, as shares of all
/// samples, most first.
fn self_time(profile: &serde_json::Value) -> Vec<(String, f64)> {
    let mut by_name: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    let mut total = 0.0;
    for node in profile["nodes"].as_array().into_iter().flatten() {
        let hits = node["hitCount"].as_f64().unwrap_or(0.0);
        let frame = &node["callFrame"];
        let name = match frame["functionName"].as_str() {
            Some("") | None => format!("(anonymous) {}", frame["url"].as_str().unwrap_or("")),
            Some(name) => name.to_owned(),
        };
        *by_name.entry(name).or_default() += hits;
        total += hits;
    }
    let mut shares: Vec<(String, f64)> = by_name
        .into_iter()
        .map(|(name, hits)| (name, 100.0 * hits / total.max(1.0)))
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    shares
}

/// The largest peak resident memory among Chromium's renderer processes
/// (the page's), in MB.
fn renderer_peak_mb() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut peak: f64 = 0.0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.contains("--type=renderer") {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(path.join("status")) else {
            continue;
        };
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        peak = peak.max(kb / 1024.0);
    }
    peak
}
