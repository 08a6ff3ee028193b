//! `p2pchat-node`: the peer a person runs.
//!
//! It drives the protocol engine of `p2pchat-core` over one UDP socket,
//! keeps everything in a SQLite store, talks to the user through a
//! line-based REPL (or JSON lines with `--json`), and relays datagrams for
//! browser peers over a loopback WebSocket. Protocol decisions live in
//! core; this binary only moves bytes, time and commands in and out.

mod cli;
mod command;
mod node;
mod relay;
mod repl;
mod store;
mod store_thread;
mod udp;
mod ui;
mod verify;

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use p2pchat_core::{Config, Node};
use p2pchat_host::shutdown::Shutdown;
use rand_core::{OsRng, RngCore};
use tokio::sync::watch;

use crate::cli::{Args, RelayChoice};
use crate::node::{advertised, now_ms, Driver};
use crate::relay::{Relay, RelayConfig};
use crate::store::Store;
use crate::store_thread::StoreThread;
use crate::ui::{Note, Output};

/// How long the relay gets to close its connections at shutdown.
const RELAY_STOP: Duration = Duration::from_secs(2);

fn main() -> Result<()> {
    let args = Args::parse();
    args.validate()?;
    p2pchat_host::init_logging("warn");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let outcome = runtime.block_on(run(args));
    // Don't wait on anything still parked in the runtime at exit (the
    // blocking stdin reader).
    runtime.shutdown_timeout(Duration::from_millis(500));
    outcome
}

async fn run(args: Args) -> Result<()> {
    let mut shutdown = Shutdown::install()?;

    let data_dir = args.data_dir()?;
    let mut store = Store::open(&data_dir)
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    tracing::info!(path = %store.path().display(), "store opened");
    let identity = store
        .identity(&mut OsRng)
        .context("loading this node's identity")?;
    let socket = udp::bind(args.host, args.port)?;
    let local = socket
        .local_addr()
        .context("reading the UDP socket's local address")?;

    let config = Config {
        signaling: args.signal.iter().map(|s| s.addr).collect(),
        signaling_keys: args
            .signal
            .iter()
            .filter_map(|s| s.key.map(|key| (s.addr, key)))
            .collect(),
        local_addrs: advertised(local),
        room_quota: args.room_quota.unwrap_or_default(),
        ..Config::default()
    };
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    // Each stored record goes into the engine as it is read, and each
    // history keeps only a window of events in memory, reading older ones
    // back from the store: neither the store nor a long history is ever
    // held in memory whole.
    let store = Arc::new(Mutex::new(store));
    let mut engine = Node::new(identity, args.user_name()?, config, seed);
    engine.set_archive(store.clone(), args.history_window as usize);
    let (now, mut unused, mut floors) = (now_ms(), 0, Ok(()));
    let skipped = Store::load_shared(&store, |record| {
        if !engine.restore_record(now, record) {
            unused += 1;
        }
        // Rows from before floors were stored get theirs as they go.
        if floors.is_ok() {
            floors = write_floors(&store, &mut engine, 4096);
        }
    })
    .context("loading stored chats")?;
    engine.restored();
    floors
        .and_then(|()| write_floors(&store, &mut engine, 0))
        .context("writing the shown times of messages stored by an older version")?;
    let chats = engine.rooms().count();
    let messages: usize = engine
        .rooms()
        .filter_map(|(room, _)| engine.history(&room))
        .map(|h| h.len())
        .sum();
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "some stored rows could not be read and were skipped"
        );
    }
    engine.set_verifier(verify::on_all_cores);
    if unused > 0 {
        tracing::warn!(
            records = unused,
            "some stored records could not be used and were skipped"
        );
    }

    let (stop_relay, relay_stopped) = watch::channel(false);
    let relay = start_relay(&args, local, relay_stopped).await?;
    let relay_addr = relay.as_ref().map(|(addr, _)| *addr);

    let interactive =
        !args.json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let reader = repl::start(interactive)?;
    let mut driver = Driver::new(
        engine,
        StoreThread::start(store)?,
        socket,
        Output::new(args.json, reader.printer),
    );
    driver.show(&Note::Ready {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        peer: driver.peer_id().to_string(),
        name: args.username.clone(),
        udp: local,
        relay: relay_addr,
        signal: args.signal.iter().map(ToString::to_string).collect(),
        data_dir: data_dir.display().to_string(),
        chats,
        messages,
    });
    tracing::info!(%local, username = %args.username, "node started");

    let outcome = driver.run(reader.lines, &mut shutdown).await;

    let _ = stop_relay.send(true);
    if let Some((_, task)) = relay {
        match tokio::time::timeout(RELAY_STOP, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("relay: {e:#}"),
            Ok(Err(e)) => tracing::warn!("relay task: {e}"),
            Err(_) => tracing::warn!("relay did not stop in time"),
        }
    }
    tracing::info!("node stopped");
    driver.show(&Note::Bye);
    outcome
}

/// Writes back the floors the engine found wrong while restoring, once
/// more than `at_least` are waiting.
fn write_floors(store: &Mutex<Store>, engine: &mut Node, at_least: usize) -> Result<()> {
    if engine.refloored_waiting() <= at_least {
        return Ok(());
    }
    let fixes = engine.take_refloored();
    tracing::info!(
        events = fixes.len(),
        "storing the shown times of older messages"
    );
    let mut store = store
        .lock()
        .map_err(|_| anyhow::anyhow!("the store was left in an unknown state"))?;
    Ok(store.set_floors(&fixes)?)
}

type RelayTask = tokio::task::JoinHandle<Result<()>>;

/// Starts the browser relay as asked: an explicit address must bind; the
/// default one may be taken (a second node on this machine), and then the
/// node runs without a relay and says so.
async fn start_relay(
    args: &Args,
    local: std::net::SocketAddr,
    stop: watch::Receiver<bool>,
) -> Result<Option<(std::net::SocketAddr, RelayTask)>> {
    let (listen, explicit) = match args.relay_choice() {
        RelayChoice::Off => return Ok(None),
        RelayChoice::Default(addr) => (addr, false),
        RelayChoice::Explicit(addr) => (addr, true),
    };
    let mut config = RelayConfig::new(listen, local.ip());
    config
        .allowed_origins
        .extend(args.relay_origins.iter().cloned());
    let relay = match Relay::bind(config).await {
        Ok(r) => r,
        Err(e) if !explicit => {
            tracing::warn!(
                "browser relay disabled: {e:#} (pass --relay ADDR to choose another address)"
            );
            eprintln!(
                "note: browser relay disabled: {e:#}; pass --relay 127.0.0.1:0 or --no-relay"
            );
            return Ok(None);
        }
        Err(e) => return Err(e.context(format!("starting the browser relay on {listen}"))),
    };
    let addr = relay.local_addr();
    let task = tokio::spawn(relay.run(stop));
    Ok(Some((addr, task)))
}
