//! Loads the built web UI (`trunk build` output) in headless Chromium via
//! WebDriver and checks what it rendered: the app name and the "not
//! connected" state. Exits non-zero if the page does not render, so a broken
//! `index.html`, `Trunk.toml` or web crate fails CI.
//!
//! Usage: `browser-check --dist dist [--screenshot out.png]`

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use p2pchat_tests::static_server;

#[derive(Debug, Parser)]
#[command(about = "Check that the built web UI renders in headless Chromium")]
struct Args {
    /// The directory `trunk build` wrote.
    #[arg(long, default_value = "dist")]
    dist: PathBuf,
    /// Where to save a screenshot of the page.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// The ChromeDriver binary.
    #[arg(long, default_value = "/usr/bin/chromedriver")]
    chromedriver: PathBuf,
    /// The Chromium binary.
    #[arg(long, default_value = "/usr/bin/chromium")]
    chromium: String,
    /// How long to wait for the page to render.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let site = static_server::serve(&args.dist)?;
    let url = format!("http://{site}/");

    let port = free_port()?;
    let mut driver = tokio::process::Command::new(&args.chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.chromedriver.display()))?;

    let client = connect(port, &args.chromium).await?;
    let outcome = check(&client, &url, &args).await;
    let _ = client.close().await;
    let _ = driver.kill().await;
    outcome?;
    println!("browser check passed: {url} rendered the app name and the relay status");
    Ok(())
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
        }
    });
    let caps = match caps {
        serde_json::Value::Object(map) => map,
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

async fn check(client: &Client, url: &str, args: &Args) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs);
    client
        .goto(url)
        .await
        .with_context(|| format!("opening {url}"))?;
    let name = client
        .wait()
        .at_most(timeout)
        .for_element(Locator::Css("#app-name"))
        .await
        .context("the page never rendered #app-name (did the wasm app start?)")?;
    let name = name.text().await.context("reading #app-name")?;
    if name.trim() != "p2pchat" {
        bail!("#app-name shows {name:?}, expected \"p2pchat\"");
    }
    let status = client
        .find(Locator::Css("#connection-status"))
        .await
        .context("the page has no #connection-status")?
        .text()
        .await
        .context("reading #connection-status")?;
    if status.trim() != "Not connected" {
        bail!("#connection-status shows {status:?}, expected \"Not connected\"");
    }
    let title = client.title().await.context("reading the title")?;
    if title != "p2pchat" {
        bail!("page title is {title:?}, expected \"p2pchat\"");
    }
    if let Some(path) = &args.screenshot {
        let png = client.screenshot().await.context("taking a screenshot")?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
        println!("screenshot saved to {}", path.display());
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener
        .local_addr()
        .context("reading the free port")?
        .port())
}

/// Progress detail, shown with BROWSER_CHECK_VERBOSE=1.
fn verbose(msg: &str) {
    if std::env::var_os("BROWSER_CHECK_VERBOSE").is_some() {
        eprintln!("{msg}");
    }
}
