//! End-to-end test of the browser peer: the built web UI (`trunk build`
//! output) in headless Chromium, chatting with a real `p2pchat-node`
//! through the node's relay WebSocket.
//!
//! The scenario: sign in, create a room, let the node join it with the Chat
//! ID the page shows, exchange eight messages both ways and check that the
//! page and the node hold them in the same `(author, seq)` order, see the
//! node online in the member list, reload the page while the node writes
//! (the identity, the room and the history survive, and the message written
//! meanwhile is caught up), and get a clear error for a damaged Chat ID.
//! Every wait is bounded; every process dies with the test.
//!
//! Usage: `browser-check --dist dist [--screenshot target/artifacts/web-chat.png]`
//! (`BROWSER_CHECK_VERBOSE=1` for WebDriver retry details).

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use p2pchat_tests::chat::{order, texts};
use p2pchat_tests::{static_server, ChatNode, Signaling};
use serde_json::Value;
use tokio::task::block_in_place;

/// The room the page creates.
const ROOM: &str = "browser-room";
/// The page's username.
const WEB_NAME: &str = "webby";
/// The node's username.
const NODE_NAME: &str = "cli";
/// How often a wait looks at the page again.
const POLL: Duration = Duration::from_millis(150);

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
// `block_in_place` while the WebDriver session task keeps going.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let work = WorkDir::create()?;
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
    let cli = block_in_place(|| {
        ChatNode::start(
            NODE_NAME,
            &work.join(NODE_NAME),
            &[signal.addr],
            &["--relay", "127.0.0.1:0"],
        )
    })
    .context("starting p2pchat-node")?;
    let relay = cli
        .relay
        .ok_or_else(|| anyhow!("the node reported no relay address: {}", cli.ready))?;
    let site = static_server::serve(&args.dist)?;
    let url = format!("http://{site}/?relay=ws://{relay}/");

    let port = free_port()?;
    let mut driver = tokio::process::Command::new(&args.chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.chromedriver.display()))?;
    let client = connect(port, &args.chromium).await?;

    let mut test = Test {
        browser: Browser {
            client: client.clone(),
            timeout: Duration::from_secs(args.timeout_secs),
            driver_port: port,
        },
        cli,
        started,
    };
    let outcome = match scenario(&mut test, &url, &args.screenshot).await {
        Ok(summary) => Ok(summary),
        Err(e) => Err(anyhow!("{}\n\n{}", chain(&e), test.diagnostics().await)),
    };
    let _ = client.close().await;
    let _ = driver.kill().await;
    drop(test);
    drop(signal);
    outcome
}

/// The whole scenario; returns the summary line.
async fn scenario(t: &mut Test, url: &str, screenshot: &Path) -> Result<String> {
    t.step(&format!("opening {url}"));
    sign_in(&t.browser, url).await?;

    t.step("creating the room in the page");
    let chat_id = create_room(&t.browser).await?;

    t.step("the node joins with the page's Chat ID");
    t.node(|n| n.join_chat(&chat_id))?;

    t.step("first message each way");
    node_says(t, "hello from the cli").await?;
    let web_peer = browser_sends(&t.browser, "hello from the browser").await?;
    t.node(|n| n.expect_message("hello from the browser"))?;

    t.step("three more each way, interleaved");
    for i in 2..=4 {
        let text = format!("cli message {i}");
        t.node(|n| n.say(ROOM, &text))?;
        browser_sends(&t.browser, &format!("browser message {i}")).await?;
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
    save_screenshot(&t.browser, screenshot).await?;

    t.step("a damaged Chat ID is refused");
    bad_chat_id(&t.browser).await?;

    t.step("a second tab finds the peer running in the first");
    second_tab(&t.browser, url).await?;
    Ok(format!(
        "{} messages in the same (author, seq) order in the page and the node, \
         identity and room kept across a reload, screenshot at {} ({:.1}s)",
        history.len(),
        screenshot.display(),
        t.started.elapsed().as_secs_f64()
    ))
}

/// Opens the page, waits for the relay connection and signs in.
async fn sign_in(b: &Browser, url: &str) -> Result<()> {
    b.client
        .goto(url)
        .await
        .with_context(|| format!("opening {url}"))?;
    b.wait_for("#connection-status[data-status=connected]", |p| {
        p.connected().then_some(())
    })
    .await?;
    b.type_into("#username", WEB_NAME).await?;
    b.click("#start").await?;
    b.wait_for("the main screen (#new-chat-name) after #start", |p| {
        (p.new_chat_form && !p.username_prompt).then_some(())
    })
    .await
}

/// Creates [`ROOM`] in the page; returns the Chat ID it shows.
async fn create_room(b: &Browser) -> Result<String> {
    b.type_into("#new-chat-name", ROOM).await?;
    b.click("#create-chat").await?;
    let page = b
        .wait_for("a #chat-id starting with \"p2pchat:\"", |p| {
            p.chat_id
                .as_deref()
                .is_some_and(|id| id.starts_with("p2pchat:"))
                .then(|| p.clone())
        })
        .await?;
    if !page.has_room(ROOM) {
        bail!("{ROOM} is not in #rooms after creating it\n{page}");
    }
    if !page.room_name.as_deref().is_some_and(|n| n.contains(ROOM)) {
        bail!("#room-name does not show {ROOM} after creating it\n{page}");
    }
    if !page.copy_button {
        bail!("no #copy-chat-id button next to the Chat ID\n{page}");
    }
    Ok(page.chat_id.unwrap_or_default())
}

/// The node writes `text`; waits until the page shows it as received from
/// the node.
async fn node_says(t: &mut Test, text: &str) -> Result<()> {
    t.node(|n| n.say(ROOM, text))?;
    let peer = t.cli.peer.clone();
    let m = t
        .browser
        .wait_for(&format!("a #timeline .message with text {text:?}"), |p| {
            p.message(text).cloned()
        })
        .await?;
    if m.author != peer || m.status != "received" {
        bail!(
            "the node's message {text:?} shows data-author={:?} data-status={:?}, \
             expected {peer:?} and \"received\"",
            m.author,
            m.status
        );
    }
    Ok(())
}

/// Types `text` into the composer and sends it; waits until the page shows
/// it as sent. Returns the page's peer id (the message's author).
async fn browser_sends(b: &Browser, text: &str) -> Result<String> {
    b.type_into("#composer", text).await?;
    b.click("#send").await?;
    let m = b
        .wait_for(
            &format!("own message {text:?} with data-status=sent"),
            |p| p.message(text).filter(|m| m.status == "sent").cloned(),
        )
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
        .browser
        .wait_for(&format!("{n} messages in #timeline"), |p| {
            (p.messages.len() >= n).then(|| p.clone())
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
                "data-lamport {:?} != node's {}",
                m.lamport, h["lamport"]
            ))
        } else if from_node && m.status != "received" {
            Some(format!("data-status {:?}, expected \"received\"", m.status))
        } else if !from_node && (m.author != web_peer || m.status != "sent") {
            Some(format!(
                "data-author {:?} data-status {:?}, expected {web_peer:?} and \"sent\"",
                m.author, m.status
            ))
        } else if from_node && !m.name.contains(NODE_NAME) {
            Some(format!(".author {:?} does not name {NODE_NAME:?}", m.name))
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
    t.browser
        .wait_for(
            &format!("#members .member[data-status=online] named {NODE_NAME:?}"),
            |p| {
                p.members
                    .iter()
                    .any(|m| m.name == NODE_NAME && m.status == "online")
                    .then_some(())
            },
        )
        .await
}

/// Reloads the page and, while it reloads, has the node write `text`.
/// Then waits until the page is back: connected, still signed in, the room
/// still listed (and selected).
async fn reload_while_node_says(t: &mut Test, text: &str) -> Result<()> {
    let client = t.browser.client.clone();
    let reload = tokio::spawn(async move { client.refresh().await });
    t.node(|n| n.say(ROOM, text))?;
    reload
        .await
        .context("the reload task")?
        .context("reloading the page")?;
    let page = t
        .browser
        .wait_for(
            &format!("after the reload: connected, no #username prompt, {ROOM} in #rooms"),
            |p| (p.connected() && !p.username_prompt && p.has_room(ROOM)).then(|| p.clone()),
        )
        .await?;
    if !page.room_name.as_deref().is_some_and(|n| n.contains(ROOM)) {
        t.browser
            .click(&format!("#rooms .room[data-name=\"{ROOM}\"]"))
            .await?;
        t.browser
            .wait_for(
                &format!("#room-name showing {ROOM} after clicking it"),
                |p| {
                    p.room_name
                        .as_deref()
                        .is_some_and(|n| n.contains(ROOM))
                        .then_some(())
                },
            )
            .await?;
    }
    Ok(())
}

/// Joins with a damaged Chat ID; expects an error naming the Chat ID and no
/// new room.
async fn bad_chat_id(b: &Browser) -> Result<()> {
    b.type_into("#join-chat-id", "p2pchat:this-is-not-a-chat-id")
        .await?;
    b.click("#join-chat").await?;
    let page = b
        .wait_for("an #errors .error mentioning \"Chat ID\"", |p| {
            p.errors
                .iter()
                .any(|e| e.contains("Chat ID"))
                .then(|| p.clone())
        })
        .await?;
    if page.rooms.len() != 1 {
        bail!("a damaged Chat ID changed #rooms\n{page}");
    }
    Ok(())
}

/// A second tab of the same page must not run a second copy of the same
/// identity: it says p2pchat is open in another tab.
async fn second_tab(b: &Browser, url: &str) -> Result<()> {
    let first = b.client.window().await.context("current window")?;
    let tab = b.client.new_window(true).await.context("opening a tab")?;
    b.client
        .switch_to_window(tab.handle)
        .await
        .context("switching to the new tab")?;
    b.client
        .goto(url)
        .await
        .context("loading the page in the new tab")?;
    let deadline = Instant::now() + b.timeout;
    loop {
        if b.client.find(Locator::Css("#other-tab")).await.is_ok() {
            break;
        }
        if Instant::now() >= deadline {
            bail!("the second tab never said p2pchat is open in another tab");
        }
        tokio::time::sleep(POLL).await;
    }
    b.client
        .close_window()
        .await
        .context("closing the second tab")?;
    b.client
        .switch_to_window(first)
        .await
        .context("back to the first tab")?;
    // The first tab still runs the peer.
    b.wait_for("the first tab still connected", |p| {
        (p.status.as_deref() == Some("connected")).then_some(())
    })
    .await
}

async fn save_screenshot(b: &Browser, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let png = b.client.screenshot().await.context("taking a screenshot")?;
    std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The node and the browser under test.
struct Test {
    browser: Browser,
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
        let console = match self.browser.console().await {
            Ok(lines) if lines.is_empty() => "  (empty)".to_owned(),
            Ok(lines) => lines.join("\n"),
            Err(e) => format!("  (unavailable: {e:#})"),
        };
        let html = match self
            .browser
            .client
            .execute(
                "return document.body ? document.body.innerHTML : ''",
                vec![],
            )
            .await
        {
            Ok(Value::String(html)) => truncate(&html, 6000),
            Ok(other) => other.to_string(),
            Err(e) => format!("(unavailable: {e})"),
        };
        let transcript = self.cli.process.transcript();
        let lines: Vec<&str> = transcript.lines().collect();
        let tail = lines[lines.len().saturating_sub(150)..].join("\n");
        format!(
            "--- browser console ---\n{console}\n\
             --- document.body.innerHTML ---\n{html}\n\
             --- node transcript (last 150 lines) ---\n{tail}"
        )
    }
}

/// The WebDriver session.
struct Browser {
    client: Client,
    timeout: Duration,
    driver_port: u16,
}

/// Reads the whole UI state in one script, so a snapshot is never torn
/// between two renders.
const PAGE_JS: &str = r#"
const q = (s, r) => (r || document).querySelector(s);
const all = (s, r) => Array.from((r || document).querySelectorAll(s));
const text = e => e == null ? null
    : (e.tagName === 'INPUT' || e.tagName === 'TEXTAREA' ? e.value : e.textContent).trim();
const attr = (e, a) => e == null ? null : e.getAttribute(a);
const shown = e => e != null && e.getClientRects().length > 0;
return {
  status: attr(q('#connection-status'), 'data-status'),
  username_prompt: shown(q('#username')),
  new_chat_form: shown(q('#new-chat-name')),
  room_name: text(q('#room-name')),
  chat_id: text(q('#chat-id')),
  copy_button: q('#copy-chat-id') != null,
  rooms: all('#rooms .room').map(r => ({
    name: attr(r, 'data-name'), unread: text(q('.unread', r)) })),
  messages: all('#timeline .message').map(m => ({
    author: attr(m, 'data-author'), seq: attr(m, 'data-seq'),
    lamport: attr(m, 'data-lamport'), status: attr(m, 'data-status'),
    late: attr(m, 'data-late'), name: text(q('.author', m)),
    time: text(q('.time', m)), text: text(q('.text', m)) })),
  members: all('#members .member').map(m => ({
    name: text(q('.name', m)), status: attr(m, 'data-status') })),
  errors: all('#errors .error').map(text),
};
"#;

impl Browser {
    /// A snapshot of what the page shows.
    async fn page(&self) -> Result<Page> {
        let v = self
            .client
            .execute(PAGE_JS, vec![])
            .await
            .context("reading the page")?;
        Ok(Page::from_json(&v))
    }

    /// Polls the page until `check` returns something, for at most the
    /// timeout; the error names `what` and shows the last snapshot.
    async fn wait_for<T>(&self, what: &str, check: impl Fn(&Page) -> Option<T>) -> Result<T> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let last = match self.page().await {
                Ok(page) => match check(&page) {
                    Some(found) => return Ok(found),
                    None => page.to_string(),
                },
                // E.g. while the page reloads.
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "browser: timed out after {:?} waiting for {what}\n\
                     last look at the page:\n{last}",
                    self.timeout
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.act(css, Some(text)).await
    }

    async fn click(&self, css: &str) -> Result<()> {
        self.act(css, None).await
    }

    /// Finds `css` and types `text` into it (or clicks it), retrying while
    /// the element is missing or replaced by a re-render.
    async fn act(&self, css: &str, text: Option<&str>) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let attempt = async {
                let el = self.client.find(Locator::Css(css)).await?;
                match text {
                    Some(text) => el.send_keys(text).await,
                    None => el.click().await,
                }
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    verbose(&format!("retrying {css}: {e}"));
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => {
                    let what = if text.is_some() {
                        "typing into"
                    } else {
                        "clicking"
                    };
                    return Err(e).with_context(|| format!("{what} {css}"));
                }
            }
        }
    }

    /// The browser console so far (ChromeDriver's log endpoint, which
    /// fantoccini does not wrap; a plain HTTP request is enough).
    async fn console(&self) -> Result<Vec<String>> {
        let session = self
            .client
            .session_id()
            .await?
            .ok_or_else(|| anyhow!("no WebDriver session"))?;
        let port = self.driver_port;
        let body = block_in_place(|| {
            http_post(
                port,
                &format!("/session/{session}/se/log"),
                r#"{"type":"browser"}"#,
            )
        })?;
        let v: Value = serde_json::from_str(&body).context("parsing the console log")?;
        let entries = v["value"]
            .as_array()
            .ok_or_else(|| anyhow!("unexpected console log reply: {}", truncate(&body, 500)))?;
        Ok(entries
            .iter()
            .map(|e| {
                format!(
                    "  [{}] {}",
                    e["level"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or_default()
                )
            })
            .collect())
    }
}

/// What the page shows, as read by [`PAGE_JS`].
#[derive(Debug, Clone, Default)]
struct Page {
    status: Option<String>,
    username_prompt: bool,
    new_chat_form: bool,
    room_name: Option<String>,
    chat_id: Option<String>,
    copy_button: bool,
    rooms: Vec<(String, Option<String>)>,
    messages: Vec<Message>,
    members: Vec<Member>,
    errors: Vec<String>,
}

/// One `#timeline .message`.
#[derive(Debug, Clone, Default)]
struct Message {
    author: String,
    seq: Option<u64>,
    lamport: Option<u64>,
    status: String,
    late: String,
    name: String,
    time: String,
    text: String,
}

/// One `#members .member`.
#[derive(Debug, Clone, Default)]
struct Member {
    name: String,
    status: String,
}

impl Page {
    fn from_json(v: &Value) -> Page {
        let opt = |v: &Value, k: &str| v[k].as_str().map(str::to_owned);
        let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let num = |v: &Value, k: &str| v[k].as_str().and_then(|n| n.parse().ok());
        let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
        Page {
            status: opt(v, "status"),
            username_prompt: v["username_prompt"] == true,
            new_chat_form: v["new_chat_form"] == true,
            room_name: opt(v, "room_name"),
            chat_id: opt(v, "chat_id"),
            copy_button: v["copy_button"] == true,
            rooms: list("rooms")
                .iter()
                .map(|r| (s(r, "name"), opt(r, "unread")))
                .collect(),
            messages: list("messages")
                .iter()
                .map(|m| Message {
                    author: s(m, "author"),
                    seq: num(m, "seq"),
                    lamport: num(m, "lamport"),
                    status: s(m, "status"),
                    late: s(m, "late"),
                    name: s(m, "name"),
                    time: s(m, "time"),
                    text: s(m, "text"),
                })
                .collect(),
            members: list("members")
                .iter()
                .map(|m| Member {
                    name: s(m, "name"),
                    status: s(m, "status"),
                })
                .collect(),
            errors: list("errors")
                .iter()
                .map(|e| e.as_str().unwrap_or_default().to_owned())
                .collect(),
        }
    }

    fn connected(&self) -> bool {
        self.status.as_deref() == Some("connected")
    }

    fn has_room(&self, name: &str) -> bool {
        self.rooms.iter().any(|(n, _)| n == name)
    }

    /// The only timeline message with this text (none if it is missing or
    /// shown twice).
    fn message(&self, text: &str) -> Option<&Message> {
        let mut found = self.messages.iter().filter(|m| m.text == text);
        match (found.next(), found.next()) {
            (Some(m), None) => Some(m),
            _ => None,
        }
    }
}

impl fmt::Display for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  connection-status={:?} username prompt={} new-chat form={}",
            self.status, self.username_prompt, self.new_chat_form
        )?;
        writeln!(
            f,
            "  room-name={:?} chat-id={:?} copy button={}",
            self.room_name, self.chat_id, self.copy_button
        )?;
        writeln!(f, "  rooms (name, unread): {:?}", self.rooms)?;
        writeln!(f, "  timeline ({} messages):", self.messages.len())?;
        for m in &self.messages {
            writeln!(
                f,
                "    {} seq={:?} lamport={:?} status={:?} late={:?} author={:?} time={:?} text={:?}",
                short(&m.author),
                m.seq,
                m.lamport,
                m.status,
                m.late,
                m.name,
                m.time,
                m.text
            )?;
        }
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.status))
            .collect();
        writeln!(f, "  members: {members:?}")?;
        write!(f, "  errors: {:?}", self.errors)
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

/// The first 8 characters of a peer id.
fn short(peer: &str) -> &str {
    peer.get(..8).unwrap_or(peer)
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} bytes in all)", &s[..i], s.len()),
        None => s.to_owned(),
    }
}

/// Connects to ChromeDriver, retrying while it starts up.
async fn connect(port: u16, chromium: &str) -> Result<Client> {
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,800"
            ]
        },
        "goog:loggingPrefs": { "browser": "ALL" }
    });
    let caps = match caps {
        Value::Object(map) => map,
        _ => bail!("capabilities must be a JSON object"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match attempt {
            Ok(client) => return Ok(client),
            Err(e) if Instant::now() < deadline => {
                verbose(&format!("waiting for chromedriver: {e}"));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e).context("connecting to chromedriver"),
        }
    }
}

/// A one-off JSON POST to ChromeDriver on loopback; returns the body.
/// ChromeDriver keeps the connection open and answers with a
/// `Content-Length`, so the body is read by that length.
fn http_post(port: u16, path: &str, body: &str) -> Result<String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).context("connecting to chromedriver")?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_len, body_len) = loop {
        let n = stream.read(&mut buf).context("reading from chromedriver")?;
        if n == 0 {
            bail!("chromedriver closed the connection mid-reply");
        }
        reply.extend_from_slice(&buf[..n]);
        if let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&reply[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| anyhow!("no Content-Length from chromedriver: {head}"))?;
            break (end + 4, len);
        }
    };
    while reply.len() < head_len + body_len {
        let n = stream.read(&mut buf).context("reading from chromedriver")?;
        if n == 0 {
            bail!("chromedriver closed the connection mid-reply");
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&reply[head_len..head_len + body_len]).into_owned())
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener
        .local_addr()
        .context("reading the free port")?
        .port())
}

/// A scratch directory for the node's store, removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create() -> Result<WorkDir> {
        let dir =
            std::env::temp_dir().join(format!("p2pchat-browser-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(WorkDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Retry detail, shown with BROWSER_CHECK_VERBOSE=1.
fn verbose(msg: &str) {
    if std::env::var_os("BROWSER_CHECK_VERBOSE").is_some() {
        eprintln!("{msg}");
    }
}
