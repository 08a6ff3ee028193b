//! End-to-end test of the browser peer: the built web UI (`trunk build`
//! output) in headless Chromium, chatting with a real `p2pchat-node`
//! through the node's relay WebSocket.
//!
//! The scenario: sign in, create a room, let the node join it with the Chat
//! ID the page shows, exchange eight messages both ways and check that the
//! page and the node hold them in the same `(author, seq)` order, see the
//! node online in the member list, reload the page while the node writes
//! (the identity, the room and the history survive, and the message written
//! meanwhile is caught up), get a clear error for a damaged Chat ID, see a
//! second tab refuse to run a second copy of the peer, and read back
//! through a history longer than the timeline holds at once (it loads
//! older messages as the user scrolls up, to the room's first message).
//! Every wait is bounded; every process dies with the test.
//!
//! The page is driven through its page object,
//! [`p2pchat_tests::browser::ChatPage`]; this file is the user story.
//!
//! Usage: `browser-check --dist dist [--screenshot target/artifacts/web-chat.png]`
//! (`BROWSER_CHECK_VERBOSE=1` for WebDriver retry details).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use p2pchat_tests::browser::{short, BrowserOptions, ChatPage, Page};
use p2pchat_tests::chat::{order, texts};
use p2pchat_tests::{ChatNode, Signaling, StaticServer};
use serde_json::Value;
use tokio::task::block_in_place;

/// The room the page creates.
const ROOM: &str = "browser-room";
/// The page's username.
const WEB_NAME: &str = "webby";
/// The node's username.
const NODE_NAME: &str = "cli";

#[derive(Debug, Parser)]
#[command(about = "End-to-end test of the web UI as a peer, against a real p2pchat-node")]
struct Args {
    /// The directory `trunk build` wrote.
    #[arg(long, default_value = "dist")]
    dist: PathBuf,
    /// Where to save a screenshot of the chat.
    #[arg(long, default_value = "target/artifacts/web-chat.png")]
    screenshot: PathBuf,
    /// The ChromeDriver binary.
    #[arg(long, default_value = "/usr/bin/chromedriver")]
    chromedriver: PathBuf,
    /// The Chromium binary.
    #[arg(long, default_value = "/usr/bin/chromium")]
    chromium: String,
    /// The longest wait for any one thing to happen.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

// Multi-threaded so that the blocking node harness can run under
// `block_in_place` while the WebDriver session task and the static server
// keep going.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    // The node's store; removed when dropped, whatever happens.
    let work = tempfile::Builder::new()
        .prefix("p2pchat-browser-check-")
        .tempdir()
        .context("creating a scratch directory")?;
    let summary = run(&args, work.path()).await?;
    drop(work);
    println!("browser end-to-end passed: {summary}");
    Ok(())
}

/// Starts everything, runs the scenario, and stops everything whatever
/// happened (the processes also die on drop if anything returns early).
async fn run(args: &Args, work: &Path) -> Result<String> {
    let started = Instant::now();
    let signal = block_in_place(Signaling::start).context("starting p2pchat-signaling")?;
    // The page is served from a port of its own: the node's relay must
    // allow that origin (it allows only the page it serves by default).
    let site = StaticServer::start(&args.dist).await?;
    let origin = format!("http://{}", site.addr());
    let cli = block_in_place(|| {
        ChatNode::start(
            NODE_NAME,
            &work.join(NODE_NAME),
            &[signal.addr],
            &["--relay", "127.0.0.1:0", "--relay-origin", &origin],
        )
    })
    .context("starting p2pchat-node")?;
    let relay = cli
        .relay
        .ok_or_else(|| anyhow!("the node reported no relay address: {}", cli.ready))?;
    let url = format!("{origin}/?relay=ws://{relay}/");

    let web = ChatPage::launch(&BrowserOptions {
        chromedriver: args.chromedriver.clone(),
        chromium: args.chromium.clone(),
        timeout: Duration::from_secs(args.timeout_secs),
    })
    .await?;
    let mut test = Test { web, cli, started };
    let outcome = match scenario(&mut test, &url, &args.screenshot).await {
        Ok(summary) => Ok(summary),
        Err(e) => Err(anyhow!("{}\n\n{}", chain(&e), test.diagnostics().await)),
    };
    let Test { web, cli, .. } = test;
    web.close().await;
    drop(cli);
    drop(site);
    drop(signal);
    outcome
}

/// The whole scenario; returns the summary line.
async fn scenario(t: &mut Test, url: &str, screenshot: &Path) -> Result<String> {
    t.step(&format!("opening {url}"));
    t.web.open(url).await?;
    t.web
        .wait_for("the page connected to the node's relay", Page::connected)
        .await?;
    t.web.sign_in(WEB_NAME).await?;
    t.web
        .wait_for("the main screen after signing in", Page::main_screen)
        .await?;

    t.step("creating the room in the page");
    let chat_id = create_room(t).await?;

    t.step("the node joins with the page's Chat ID");
    t.node(|n| n.join_chat(&chat_id))?;

    t.step("first message each way");
    node_says(t, "hello from the cli").await?;
    let web_peer = browser_sends(t, "hello from the browser").await?;
    t.node(|n| n.expect_message("hello from the browser"))?;

    t.step("three more each way, interleaved");
    for i in 2..=4 {
        let text = format!("cli message {i}");
        t.node(|n| n.say(ROOM, &text))?;
        browser_sends(t, &format!("browser message {i}")).await?;
    }
    same_history(t, 8, &web_peer).await?;

    t.step("the node shows as online in the page");
    node_online(t).await?;

    t.step("reloading the page while the node writes");
    reload_while_node_says(t, "said during the reload").await?;
    let history = same_history(t, 9, &web_peer).await?;
    t.step("the node shows as online again after the reload");
    node_online(t).await?;
    // The chat as the user sees it, before the error below covers it.
    t.web.screenshot(screenshot).await?;

    t.step("a damaged Chat ID is refused");
    bad_chat_id(t).await?;

    t.step("a second tab finds the peer running in the first");
    second_tab(t, url).await?;

    t.step("a long history: the newest shown, scrolled back to the first message");
    long_history(t).await?;

    t.step("leaving asks first, then erases the room from the browser");
    leave(t, &chat_id, &format!("long {LONG}")).await?;
    Ok(format!(
        "{} messages in the same (author, seq) order in the page and the node, \
         identity and room kept across a reload, screenshot at {} ({:.1}s)",
        history.len(),
        screenshot.display(),
        t.started.elapsed().as_secs_f64()
    ))
}

/// Messages the node writes for the long-history step: more than the
/// timeline holds at once.
const LONG: usize = 320;
/// Messages the timeline holds at most (the web UI's `MAX_LOADED`).
const MAX_LOADED: usize = 300;

/// The node writes [`LONG`] messages. The page shows the newest, holds at
/// most [`MAX_LOADED`], loads older ones as the user scrolls up until it
/// shows the room's first message, and jumps back to the newest.
async fn long_history(t: &mut Test) -> Result<()> {
    for i in 1..=LONG {
        if i > 150 {
            // Within the author's quota (20 a second after a burst of
            // 200), as the members would refuse more.
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        let text = format!("long {i}");
        t.node(|n| n.say(ROOM, &text))?;
    }
    let last = format!("long {LONG}");
    let page = t
        .web
        .wait_for(&format!("{last:?} in the timeline"), |p| {
            p.message(&last).is_some()
        })
        .await?;
    if page.messages.len() > MAX_LOADED || !page.older {
        bail!(
            "with {} messages in the room the page holds {} (at most {MAX_LOADED} expected), \
             older ones to load: {}",
            LONG + 9,
            page.messages.len(),
            page.older
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let top = loop {
        t.web.scroll_timeline_to_top().await?;
        let page = t.web.look().await?;
        if page.messages.len() > MAX_LOADED {
            bail!(
                "scrolling up, the page holds {} messages\n{page}",
                page.messages.len()
            );
        }
        if page.beginning {
            break page;
        }
        if Instant::now() >= deadline {
            bail!("scrolling up never reached the beginning of the chat\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first = top.messages.first().map(|m| m.text.as_str());
    if first != Some("hello from the cli") || top.message(&last).is_some() || !top.jump_newest {
        bail!(
            "at the top of the chat the page should show its first message, not the newest, \
             and a button back to the newest\n{top}"
        );
    }
    t.web.jump_to_newest().await?;
    t.web
        .wait_for(&format!("{last:?} shown again after jumping back"), |p| {
            p.message(&last).is_some() && !p.newer
        })
        .await?;
    Ok(())
}

/// Creates [`ROOM`] in the page; returns the Chat ID it shows.
async fn create_room(t: &Test) -> Result<String> {
    t.web.create_room(ROOM).await?;
    // Yew renders in slices of about 16 ms and lets the browser run in
    // between, so one snapshot may show the title before the list: wait
    // for the whole of it.
    let page = t
        .web
        .wait_for(
            &format!("a Chat ID starting with \"p2pchat:\", {ROOM} listed and titled"),
            |p| {
                p.chat_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with("p2pchat:"))
                    && p.has_room(ROOM)
                    && p.shows_room(ROOM)
            },
        )
        .await?;
    if !page.copy_button {
        bail!("no button to copy the Chat ID next to it\n{page}");
    }
    Ok(page.chat_id.unwrap_or_default())
}

/// The node writes `text`; waits until the page shows it as received from
/// the node.
async fn node_says(t: &mut Test, text: &str) -> Result<()> {
    t.node(|n| n.say(ROOM, text))?;
    let peer = t.cli.peer.clone();
    let m = t
        .web
        .wait_until(&format!("the message {text:?} in the timeline"), |p| {
            p.message(text).cloned()
        })
        .await?;
    if m.author != peer || !m.received() {
        bail!(
            "the node's message {text:?} shows author {:?} and status {:?}, \
             expected {peer:?} and \"received\"",
            m.author,
            m.status
        );
    }
    Ok(())
}

/// The page sends `text`; waits until it shows it as sent. Returns the
/// page's peer id (the message's author).
async fn browser_sends(t: &Test, text: &str) -> Result<String> {
    t.web.send(text).await?;
    let m = t
        .web
        .wait_until(&format!("own message {text:?} shown as sent"), |p| {
            p.message(text).filter(|m| m.sent()).cloned()
        })
        .await?;
    Ok(m.author)
}

/// Waits until the node and the page both hold `n` messages, and checks
/// that they are the same messages in the same order. Returns the node's
/// history.
async fn same_history(t: &mut Test, n: usize, web_peer: &str) -> Result<Vec<Value>> {
    let history = t.node(|c| c.wait_history(ROOM, n))?;
    if history.len() != n {
        bail!(
            "the node holds {} messages, expected {n}:\n{}",
            history.len(),
            listing(&history)
        );
    }
    let page = t
        .web
        .wait_for(&format!("{n} messages in the timeline"), |p| {
            p.messages.len() >= n
        })
        .await?;
    let shown: Vec<(String, u64)> = page
        .messages
        .iter()
        .map(|m| (m.author.clone(), m.seq.unwrap_or(u64::MAX)))
        .collect();
    let shown_texts: Vec<String> = page.messages.iter().map(|m| m.text.clone()).collect();
    if shown != order(&history) || shown_texts != texts(&history) {
        bail!(
            "the page and the node disagree on the history of {ROOM}\n\
             node:\n{}\npage:\n{page}",
            listing(&history)
        );
    }
    for (m, h) in page.messages.iter().zip(&history) {
        let from_node = m.author == t.cli.peer;
        let problem = if m.lamport != h["lamport"].as_u64() {
            Some(format!(
                "Lamport time {:?} != node's {}",
                m.lamport, h["lamport"]
            ))
        } else if from_node && !m.received() {
            Some(format!("status {:?}, expected \"received\"", m.status))
        } else if !from_node && (m.author != web_peer || !m.sent()) {
            Some(format!(
                "author {:?} status {:?}, expected {web_peer:?} and \"sent\"",
                m.author, m.status
            ))
        } else if from_node && !m.name.contains(NODE_NAME) {
            Some(format!(
                "author name {:?} does not name {NODE_NAME:?}",
                m.name
            ))
        } else if !from_node && h["name"] != WEB_NAME {
            Some(format!(
                "the node names its author {}, expected {WEB_NAME:?}",
                h["name"]
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            bail!("message {:?}: {problem}\npage:\n{page}", m.text);
        }
    }
    Ok(history)
}

/// Waits until the member list shows the node online.
async fn node_online(t: &Test) -> Result<()> {
    t.web
        .wait_for(&format!("{NODE_NAME:?} online in the member list"), |p| {
            p.member_online(NODE_NAME)
        })
        .await?;
    Ok(())
}

/// Reloads the page and, while it reloads, has the node write `text`.
/// Then waits until the page is back: connected, still signed in, the room
/// still listed (and selected).
async fn reload_while_node_says(t: &mut Test, text: &str) -> Result<()> {
    let reload = t.web.reload_in_background();
    t.node(|n| n.say(ROOM, text))?;
    reload.await.context("the reload task")??;
    let page = t
        .web
        .wait_for(
            &format!("after the reload: connected, no username prompt, {ROOM} in the room list"),
            |p| p.connected() && !p.username_prompt && p.has_room(ROOM),
        )
        .await?;
    if !page.shows_room(ROOM) {
        t.web.select_room(ROOM).await?;
        t.web
            .wait_for(
                &format!("the room title showing {ROOM} after clicking it"),
                |p| p.shows_room(ROOM),
            )
            .await?;
    }
    Ok(())
}

/// Joins with a damaged Chat ID; expects an error naming the Chat ID and no
/// new room.
async fn bad_chat_id(t: &Test) -> Result<()> {
    t.web.join("p2pchat:this-is-not-a-chat-id").await?;
    let page = t
        .web
        .wait_for("an error mentioning \"Chat ID\"", |p| {
            p.error_mentions("Chat ID")
        })
        .await?;
    if page.rooms.len() != 1 {
        bail!("a damaged Chat ID changed the room list\n{page}");
    }
    Ok(())
}

/// A second tab of the same page must not run a second copy of the same
/// identity: it says p2pchat is open in another tab.
async fn second_tab(t: &Test, url: &str) -> Result<()> {
    let first = t.web.open_in_new_tab(url).await?;
    t.web
        .wait_for(
            "the second tab saying p2pchat is open in another tab",
            |p| p.other_tab,
        )
        .await?;
    t.web.close_tab(first).await?;
    // The first tab still runs the peer.
    t.web
        .wait_for("the first tab still connected", Page::connected)
        .await?;
    Ok(())
}

/// Leave asks; Stay keeps the room; Leave and erase removes it from the
/// page and from the browser's storage (every record of the room, which
/// names it by its id, the Chat ID's among them, and `said`, a message in
/// it), and the node sees the page's peer leave.
async fn leave(t: &mut Test, chat_id: &str, said: &str) -> Result<()> {
    let room = chat_id
        .parse::<p2pchat_core::ChatId>()
        .map_err(|e| anyhow!("the page's Chat ID does not parse: {e}"))?
        .room_id()
        .to_string();
    t.web.ask_to_leave().await?;
    t.web
        .wait_for("Leave asking before it erases the room", |p| {
            p.confirm_leave
        })
        .await?;
    t.web.answer_leave(false).await?;
    t.web
        .wait_for("the room still open after Stay", |p| {
            !p.confirm_leave && p.shows_room(ROOM) && p.message(said).is_some()
        })
        .await?;
    for needle in [room.as_str(), said] {
        if !t.web.storage_contains(needle).await? {
            bail!("the test is blind: {needle:?} is not in the page's storage before Leave");
        }
    }
    t.web.ask_to_leave().await?;
    t.web
        .wait_for("Leave asking again", |p| p.confirm_leave)
        .await?;
    t.web.answer_leave(true).await?;
    t.web
        .wait_for("the room gone from the room list", |p| !p.has_room(ROOM))
        .await?;
    for needle in [room.as_str(), said] {
        if t.web.storage_contains(needle).await? {
            bail!("{needle:?} is still in the page's storage after Leave");
        }
    }
    t.node(|n| {
        n.event("the page's peer going offline as it leaves", |v| {
            v["event"] == "member" && v["name"] == WEB_NAME && v["to"] == "offline"
        })
    })?;
    Ok(())
}

/// The node and the browser under test.
struct Test {
    web: ChatPage,
    cli: ChatNode,
    started: Instant,
}

impl Test {
    /// Runs a (blocking) harness call on the node without stalling the
    /// runtime.
    fn node<T>(&mut self, f: impl FnOnce(&mut ChatNode) -> Result<T>) -> Result<T> {
        block_in_place(|| f(&mut self.cli))
    }

    /// Progress, so a hang shows where it is.
    fn step(&self, what: &str) {
        println!("[{:5.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// What a failure report needs beyond the error: the browser console,
    /// the page's HTML and the node's transcript.
    async fn diagnostics(&self) -> String {
        let browser = self.web.diagnostics().await;
        let transcript = self.cli.process.transcript();
        let lines: Vec<&str> = transcript.lines().collect();
        let tail = lines[lines.len().saturating_sub(150)..].join("\n");
        format!("{browser}\n--- node transcript (last 150 lines) ---\n{tail}")
    }
}

/// The node's history, one line per message, like [`Page`]'s timeline.
fn listing(history: &[Value]) -> String {
    history
        .iter()
        .map(|m| {
            format!(
                "    {} seq={} lamport={} name={} text={}",
                short(m["author"].as_str().unwrap_or_default()),
                m["seq"],
                m["lamport"],
                m["name"],
                m["text"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An error and its causes, one per line (without the backtrace `{:?}`
/// would add).
fn chain(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\ncaused by: ")
}
