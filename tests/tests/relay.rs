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

// ----- what an outsider on this machine cannot do with the relay ---------

/// A node with a relay on a free loopback port, and nothing else.
fn relay_node() -> Result<(ChatNode, tempfile::TempDir, SocketAddr)> {
    let dir = tempfile::tempdir()?;
    // No signaling server: the relay is what is under test.
    let unused: SocketAddr = "127.0.0.1:9".parse()?;
    let node = ChatNode::start(
        "relayer",
        dir.path(),
        &[unused],
        &["--relay", "127.0.0.1:0"],
    )?;
    let relay = node
        .relay
        .ok_or_else(|| anyhow!("the node runs no relay"))?;
    Ok((node, dir, relay))
}

/// A WebSocket to the relay with this `Origin`; its first frame (`bound`)
/// read.
async fn open(relay: SocketAddr, origin: &str) -> Result<(WebSocketStream<TcpStream>, SocketAddr)> {
    let stream = TcpStream::connect(relay).await?;
    let mut request = format!("ws://{relay}/").into_client_request()?;
    request.headers_mut().insert("Origin", origin.parse()?);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .context("handshake timed out")??;
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .context("no bound frame")?
        .ok_or_else(|| anyhow!("relay closed"))??;
    match Frame::decode(&first.into_data())? {
        Frame::Bound { addr } => Ok((ws, addr)),
        other => bail!("first frame is not bound: {other:?}"),
    }
}

async fn send_to(
    ws: &mut WebSocketStream<TcpStream>,
    addr: SocketAddr,
    payload: &[u8],
) -> Result<()> {
    let frame = Frame::Datagram {
        addr,
        payload: payload.to_vec(),
    };
    ws.send(Message::Binary(frame.encode()?.into())).await?;
    Ok(())
}

/// A real p2pchat datagram (a control message of some room).
fn p2pchat_datagram() -> Result<Vec<u8>> {
    let tag = p2pchat_core::RoomKey::from_bytes([3; 32]).rendezvous_tag();
    let from = Identity::from_secret_bytes(&[4; 32]).peer_id();
    let token = "A".repeat(200);
    p2pchat_core::wire::encode_room(
        p2pchat_core::wire::RoomKind::Ctl,
        tag,
        from,
        &token,
        1200,
        1,
    )
    .and_then(|mut d| d.pop())
    .ok_or_else(|| anyhow!("a small token fits one datagram"))
}

/// Any other page on this machine (another dev server, another port) is
/// refused: only the page the node serves may use its relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_page_on_this_machine_cannot_use_the_relay() -> Result<()> {
    let (_node, _dir, relay) = relay_node()?;
    for origin in [
        "http://127.0.0.1:5173",
        "http://localhost:3000",
        "http://evil.example",
    ] {
        let outcome = open(relay, origin).await;
        assert!(outcome.is_err(), "{origin} was let in");
    }
    open(relay, "http://127.0.0.1:8080").await?;
    Ok(())
}

/// The relay is no UDP proxy: a page sends 60 KB of junk to a victim
/// socket on this machine, and the victim receives nothing but the one
/// p2pchat datagram sent after it (bytes to the victim per junk byte: 0).
/// Junk the victim sends back never reaches the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_is_not_an_open_udp_proxy() -> Result<()> {
    let (_node, _dir, relay) = relay_node()?;
    let (mut ws, bound) = open(relay, "http://127.0.0.1:8080").await?;
    let victim = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let victim_addr = victim.local_addr()?;
    let junk = [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        vec![b'x'; 60_000],
        b"\x00\x01\x02\x03".to_vec(),
    ];
    let mut junk_bytes = 0;
    for payload in &junk {
        junk_bytes += payload.len();
        send_to(&mut ws, victim_addr, payload).await?;
    }
    let marker = p2pchat_datagram()?;
    send_to(&mut ws, victim_addr, &marker).await?;
    let mut buf = vec![0u8; 65_536];
    let (n, from) = tokio::time::timeout(Duration::from_secs(10), victim.recv_from(&mut buf))
        .await
        .context("the p2pchat datagram never arrived")??;
    assert_eq!(from, bound);
    assert_eq!(
        &buf[..n],
        &marker[..],
        "the victim received junk: {n} bytes, after {junk_bytes} bytes of junk were sent"
    );
    // And back: junk, then a p2pchat datagram; the page sees only the latter.
    victim
        .send_to(b"HTTP/1.1 200 OK\r\n\r\nsecret", bound)
        .await?;
    victim.send_to(&marker, bound).await?;
    let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .context("nothing came back")?
        .ok_or_else(|| anyhow!("relay closed"))??;
    match Frame::decode(&frame.into_data())? {
        Frame::Datagram { payload, .. } => assert_eq!(payload, marker, "junk reached the page"),
        other => bail!("unexpected frame {other:?}"),
    }
    Ok(())
}

/// 40 idle TCP connections (more than the relay's 32 slots) do not lock
/// the page out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_lock_the_page_out() -> Result<()> {
    let (_node, _dir, relay) = relay_node()?;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(relay).await?);
    }
    let (_ws, bound) = open(relay, "http://127.0.0.1:8080").await?;
    assert!(bound.ip().is_loopback());
    Ok(())
}
