//! A WebSocket client talks to native peers through a node's relay, the
//! way the browser peer does: it runs the protocol engine itself (keys,
//! identity and all) and only hands datagrams to the relay, framed as
//! `p2pchat_core::relay` says.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use p2pchat_core::history::Body;
use p2pchat_core::relay::Frame;
use p2pchat_core::{AppEvent, ChatId, Config, Identity, MemoryStore, Node, RoomId, UserName};
use p2pchat_sim::{settle, Settled};
use p2pchat_tests::{ChatNode, Signaling};
use rand_core::OsRng;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An engine on the far side of a WebSocket.
struct WsPeer {
    ws: WebSocketStream<TcpStream>,
    engine: Node,
    /// The engine's store (the browser's, in the real page).
    disk: MemoryStore,
    bound: SocketAddr,
    texts: Vec<String>,
}

impl WsPeer {
    async fn connect(
        relay: SocketAddr,
        signal: SocketAddr,
        origin: Option<&str>,
    ) -> Result<WsPeer> {
        let stream = TcpStream::connect(relay).await?;
        let mut request = format!("ws://{relay}/").into_client_request()?;
        if let Some(o) = origin {
            request.headers_mut().insert("Origin", o.parse()?);
        }
        let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await?;
        let first = tokio::time::timeout(WAIT, ws.next())
            .await
            .context("no bound frame")?
            .ok_or_else(|| anyhow!("relay closed"))??;
        let bound = match Frame::decode(&first.into_data())? {
            Frame::Bound { addr } => addr,
            other => bail!("first frame is not bound: {other:?}"),
        };
        let config = Config {
            signaling: vec![signal],
            local_addrs: vec![bound],
            ..Config::default()
        };
        let name = UserName::new("webby")?;
        let engine = Node::new(Identity::generate(&mut OsRng), name, config, [7; 32]);
        Ok(WsPeer {
            ws,
            engine,
            disk: MemoryStore::new(),
            bound,
            texts: Vec::new(),
        })
    }

    /// Drives the engine until `done` holds or the deadline passes.
    async fn drive_until(&mut self, what: &str, done: impl Fn(&WsPeer) -> bool) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let (outputs, next) = settle(&mut self.engine, &mut self.disk);
            for output in outputs {
                match output {
                    Settled::Transmit(t) => {
                        let frame = Frame::Datagram {
                            addr: t.to,
                            payload: t.bytes,
                        };
                        self.ws
                            .send(Message::Binary(frame.encode()?.into()))
                            .await?;
                    }
                    Settled::Event(AppEvent::Message { event, .. }) => {
                        if let Body::Text { text } = &event.body {
                            self.texts.push(text.clone());
                        }
                    }
                    Settled::Event(_) => {}
                }
            }
            if done(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "ws peer: no {what} within {WAIT:?}; texts so far {:?}",
                    self.texts
                );
            }
            let wake = next.map_or(200, |t| t.saturating_sub(now_ms()).min(200));
            match tokio::time::timeout(Duration::from_millis(wake), self.ws.next()).await {
                Err(_) => self.engine.handle_timeout(now_ms()),
                Ok(None) => bail!("relay closed the connection"),
                Ok(Some(msg)) => {
                    if let Message::Binary(bytes) = msg? {
                        if let Frame::Datagram { addr, payload } = Frame::decode(&bytes)? {
                            self.engine.handle_datagram(now_ms(), addr, &payload);
                        }
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_peer_chats_with_native_nodes_through_the_relay() -> Result<()> {
    let signal = Signaling::start()?;
    let dir_a = tempfile::tempdir()?;
    let dir_b = tempfile::tempdir()?;
    let mut alice = ChatNode::start(
        "alice",
        dir_a.path(),
        &[signal.addr],
        &["--relay", "127.0.0.1:0"],
    )?;
    let mut bob = ChatNode::start("bob", dir_b.path(), &[signal.addr], &[])?;
    let relay = alice.relay.ok_or_else(|| anyhow!("alice runs no relay"))?;
    assert!(relay.ip().is_loopback());
    assert!(bob.relay.is_none());

    let chat_id = alice.create_chat("web")?;
    bob.join_chat(&chat_id)?;
    alice.say("web", "native hello")?;

    // A page on another origin may not use alice's node.
    let refused = WsPeer::connect(relay, signal.addr, Some("http://evil.example")).await;
    assert!(refused.is_err(), "a foreign origin was let in");

    let mut web = WsPeer::connect(relay, signal.addr, Some("http://localhost:8080")).await?;
    assert!(web.bound.ip().is_loopback());
    let parsed: ChatId = chat_id.parse()?;
    let room: RoomId = web.engine.join_room(now_ms(), &parsed)?;
    web.drive_until("alice's message", |w| {
        w.texts.iter().any(|t| t == "native hello")
    })
    .await?;
    web.engine
        .send_text(now_ms(), &room, "hello from the web")?;
    web.drive_until("its own message sent", |w| {
        w.texts.iter().any(|t| t == "hello from the web")
    })
    .await?;

    // Both native nodes receive it; the web peer receives theirs.
    let drive = tokio::spawn(async move {
        let r = web
            .drive_until("bob's reply", |w| {
                w.texts.iter().any(|t| t == "bob replies")
            })
            .await;
        (web, r)
    });
    let got = tokio::task::spawn_blocking(move || -> Result<(ChatNode, ChatNode)> {
        let m = alice.expect_message("hello from the web")?;
        assert_eq!(m["name"], "webby");
        bob.expect_message("hello from the web")?;
        bob.say("web", "bob replies")?;
        Ok((alice, bob))
    })
    .await??;
    let (web, r) = drive.await?;
    r?;
    // Same order everywhere.
    let (mut alice, mut bob) = got;
    let h = alice.wait_history("web", 3)?;
    let order: Vec<String> = h
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    let web_order: Vec<String> = web
        .engine
        .history(&room)
        .map(|h| {
            h.iter()
                .filter_map(|e| match &e.body {
                    Body::Text { text } => Some(text.clone()),
                    Body::Unsupported => None,
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(order, web_order);
    assert_eq!(bob.wait_history("web", 3)?.len(), 3);
    Ok(())
}
