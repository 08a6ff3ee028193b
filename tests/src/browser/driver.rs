//! Headless Chromium through a ChromeDriver this process starts: the
//! WebDriver session and the generic moves on it (open, type, click, run a
//! script, tabs, console, screenshot). It knows nothing of p2pchat's page:
//! the page object ([`super::ChatPage`]) hands it the selectors.
//!
//! Every WebDriver command is bounded by the timeout, and every retry loop
//! by a deadline.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fantoccini::wd::{WebDriverCompatibleCommand, WindowHandle};
use fantoccini::{Client, ClientBuilder, Locator};
use http::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use tokio::process::Child;
use tokio::task::JoinHandle;
use url::Url;

/// How often a retry loop tries again.
pub(crate) const POLL: Duration = Duration::from_millis(150);
/// The longest wait for ChromeDriver to accept a session.
const DRIVER_START: Duration = Duration::from_secs(20);

/// What to start.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// The ChromeDriver binary.
    pub chromedriver: PathBuf,
    /// The Chromium binary.
    pub chromium: String,
    /// The longest wait for any one thing to happen (and for any one
    /// WebDriver command to answer).
    pub timeout: Duration,
}

/// A WebDriver session on headless Chromium, and the ChromeDriver process
/// behind it (killed on [`Browser::close`], or on drop).
pub struct Browser {
    client: Client,
    driver: Child,
    timeout: Duration,
}

/// A browser tab, to go back to.
#[derive(Debug, Clone)]
pub struct Tab(WindowHandle);

impl Browser {
    /// Starts ChromeDriver on a free loopback port and opens a session on
    /// headless Chromium, with the browser console recorded.
    pub async fn start(options: &BrowserOptions) -> Result<Browser> {
        let port = free_port()?;
        let driver = tokio::process::Command::new(&options.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", options.chromedriver.display()))?;
        // On failure `driver` is dropped, which kills it.
        let client = connect(port, &options.chromium).await?;
        Ok(Browser {
            client,
            driver,
            timeout: options.timeout,
        })
    }

    /// Ends the session (Chromium quits) and kills ChromeDriver.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(self.timeout, self.client.clone().close()).await;
        let _ = self.driver.kill().await;
    }

    /// The longest wait for any one thing.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one WebDriver command, for at most the timeout.
    async fn bounded<T, E>(
        &self,
        what: &str,
        command: impl Future<Output = Result<T, E>>,
    ) -> Result<T>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        match tokio::time::timeout(self.timeout, command).await {
            Ok(result) => result.with_context(|| what.to_owned()),
            Err(_) => bail!(
                "{what}: no answer from the browser within {:?}",
                self.timeout
            ),
        }
    }

    /// Loads `url` in the current tab.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.bounded(&format!("opening {url}"), self.client.goto(url))
            .await
    }

    /// Runs `script` in the page and returns what it returns.
    pub(crate) async fn execute(&self, script: &str) -> Result<Value> {
        self.bounded(
            "running a script in the page",
            self.client.execute(script, vec![]),
        )
        .await
    }

    /// Runs `script` in the page, which ends by calling the callback it
    /// is given as its last argument (`arguments[arguments.length - 1]`),
    /// and returns what it passes to it.
    pub(crate) async fn execute_async(&self, script: &str) -> Result<Value> {
        self.bounded(
            "running an asynchronous script in the page",
            self.client.execute_async(script, vec![]),
        )
        .await
    }

    /// Types `text` into the element `css`, retrying while it is missing
    /// or replaced by a re-render.
    pub(crate) async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.act(css, Some(text)).await
    }

    /// Clicks the element `css`, retrying while it is missing or replaced
    /// by a re-render.
    pub(crate) async fn click(&self, css: &str) -> Result<()> {
        self.act(css, None).await
    }

    async fn act(&self, css: &str, text: Option<&str>) -> Result<()> {
        let what = match text {
            Some(_) => format!("typing into {css}"),
            None => format!("clicking {css}"),
        };
        let deadline = Instant::now() + self.timeout;
        loop {
            let attempt = self.bounded(&what, async {
                let el = self.client.find(Locator::Css(css)).await?;
                match text {
                    Some(text) => el.send_keys(text).await,
                    None => el.click().await,
                }
            });
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    verbose(&format!("retrying {css}: {e:#}"));
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reloads the current tab in a task of its own, so the caller can do
    /// something else while the page reloads.
    pub fn reload_in_background(&self) -> JoinHandle<Result<()>> {
        let client = self.client.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, client.refresh()).await {
                Ok(reloaded) => reloaded.context("reloading the page"),
                Err(_) => bail!("reloading the page: no answer within {timeout:?}"),
            }
        })
    }

    /// Opens a new tab, switches to it and loads `url` there; returns the
    /// tab it came from.
    pub async fn open_tab(&self, url: &str) -> Result<Tab> {
        let first = self.bounded("current window", self.client.window()).await?;
        let tab = self
            .bounded("opening a tab", self.client.new_window(true))
            .await?;
        self.bounded(
            "switching to the new tab",
            self.client.switch_to_window(tab.handle),
        )
        .await?;
        self.bounded("loading the page in the new tab", self.client.goto(url))
            .await?;
        Ok(Tab(first))
    }

    /// Closes the current tab and switches back to `to`.
    pub async fn close_tab(&self, to: Tab) -> Result<()> {
        self.bounded("closing the tab", self.client.close_window())
            .await?;
        self.bounded("back to the first tab", self.client.switch_to_window(to.0))
            .await
    }

    /// Saves a PNG of the current tab at `path` (creating its directory).
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let png = self
            .bounded("taking a screenshot", self.client.screenshot())
            .await?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// The browser console so far, one line per entry.
    pub async fn console(&self) -> Result<Vec<String>> {
        // Without a session the command would go to `/session//se/log`.
        self.bounded("asking for the session id", self.client.session_id())
            .await?
            .ok_or_else(|| anyhow!("no WebDriver session"))?;
        let log = self
            .bounded("reading the console log", self.client.issue_cmd(BrowserLog))
            .await?;
        let entries = log.as_array().ok_or_else(|| {
            anyhow!(
                "unexpected console log reply: {}",
                truncate(&log.to_string(), 500)
            )
        })?;
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

    /// Runs a Chrome DevTools Protocol command in the current tab
    /// (ChromeDriver's `goog/cdp/execute`), e.g. `Performance.getMetrics`.
    pub async fn devtools(&self, cmd: &str, params: Value) -> Result<Value> {
        self.bounded("asking for the session id", self.client.session_id())
            .await?
            .ok_or_else(|| anyhow!("no WebDriver session"))?;
        let command = DevTools {
            body: serde_json::json!({ "cmd": cmd, "params": params }).to_string(),
        };
        self.bounded(cmd, self.client.issue_cmd(command)).await
    }

    /// What a failure report needs from the browser: the console and the
    /// page's HTML (cut at 6,000 characters).
    pub async fn diagnostics(&self) -> String {
        let console = match self.console().await {
            Ok(lines) if lines.is_empty() => "  (empty)".to_owned(),
            Ok(lines) => lines.join("\n"),
            Err(e) => format!("  (unavailable: {e:#})"),
        };
        let html = match self
            .execute("return document.body ? document.body.innerHTML : ''")
            .await
        {
            Ok(Value::String(html)) => truncate(&html, 6000),
            Ok(other) => other.to_string(),
            Err(e) => format!("(unavailable: {e:#})"),
        };
        format!(
            "--- browser console ---\n{console}\n\
             --- document.body.innerHTML ---\n{html}"
        )
    }
}

/// ChromeDriver's DevTools endpoint (`POST /session/{id}/goog/cdp/execute`).
#[derive(Debug)]
struct DevTools {
    body: String,
}

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        (Method::POST, Some(self.body.clone()))
    }
}

/// ChromeDriver's console log endpoint (`POST /session/{id}/se/log`), which
/// fantoccini does not wrap: sent through the session like any command.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        (Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// Connects to ChromeDriver, retrying while it starts up.
/// Extra Chromium flags from `P2PCHAT_CHROMIUM_ARGS` (split on
/// whitespace), to look inside the page: `--js-flags=--perf-basic-prof`
/// lets `perf` name the page's JavaScript and WebAssembly functions.
async fn connect(port: u16, chromium: &str) -> Result<Client> {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,800",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Ok(extra) = std::env::var("P2PCHAT_CHROMIUM_ARGS") {
        args.extend(extra.split_whitespace().map(str::to_owned));
    }
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": args
        },
        "goog:loggingPrefs": { "browser": "ALL" }
    });
    let Value::Object(caps) = caps else {
        bail!("capabilities must be a JSON object");
    };
    let deadline = Instant::now() + DRIVER_START;
    loop {
        let attempt = tokio::time::timeout(
            DRIVER_START,
            ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await;
        match attempt {
            Ok(Ok(client)) => return Ok(client),
            Ok(Err(e)) if Instant::now() < deadline => {
                verbose(&format!("waiting for chromedriver: {e}"));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(Err(e)) => return Err(e).context("connecting to chromedriver"),
            Err(_) => bail!("connecting to chromedriver: no session within {DRIVER_START:?}"),
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener
        .local_addr()
        .context("reading the free port")?
        .port())
}

/// `s` cut to `max` characters, saying how long it was.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} bytes in all)", &s[..i], s.len()),
        None => s.to_owned(),
    }
}

/// Retry detail, shown with BROWSER_CHECK_VERBOSE=1.
pub(crate) fn verbose(msg: &str) {
    if std::env::var_os("BROWSER_CHECK_VERBOSE").is_some() {
        eprintln!("{msg}");
    }
}
