//! The browser relay: a WebSocket endpoint on loopback through which a
//! browser peer reaches UDP.
//!
//! A browser cannot open a UDP socket, so the browser peer (the same protocol
//! core, compiled to wasm) connects to this relay in the user's local native
//! node. Each WebSocket connection gets **one UDP socket of its own**, bound
//! on `udp_host` port 0 when the connection opens and closed with it: the
//! browser is a peer with its own UDP address, never a tenant of the node's
//! socket, and nothing one connection sends is seen by another.
//!
//! Every WebSocket binary message is exactly one frame; the frame format is
//! documented in `p2pchat_core::relay`. In short: a `datagram` frame carries
//! a remote address and a payload (browser → relay: send it from this
//! connection's socket; relay → browser: it arrived from that address), and
//! the relay sends one `bound` frame first, holding the socket's own address.
//! The relay never parses or inspects payloads and holds no key: it moves
//! ciphertext only.
//!
//! Bounds: at most `max_connections` connections (handshakes included; a
//! handshake must finish within 10 s), a frame is at most `MAX_FRAME` bytes
//! (a larger WebSocket message or frame closes that connection), and each
//! connection has a token bucket per direction (`rate` datagrams per second,
//! `burst` at once); over budget, datagrams are dropped and counted. Frames
//! the relay cannot use (undecodable, `bound` from the browser, text
//! messages) and datagrams to unspecified, broadcast or multicast addresses
//! or to port 0 are dropped and counted too, without closing the connection.
//!
//! Origin policy: any web page the user visits can open a WebSocket to
//! localhost, so without a check a page on another origin could use the
//! user's node to send UDP from the user's machine. The relay therefore
//! accepts only requests without an `Origin` header (non-browser local
//! clients; browsers always send one), with an `http`/`https` origin on
//! `localhost`, `127.0.0.1` or `[::1]` (any port), or with an origin listed
//! exactly in `extra_origins`; everything else gets HTTP 403. Checking the
//! origin also defeats DNS rebinding, since a rebound page keeps its own
//! origin. For the same reason the relay listens on loopback only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use p2pchat_core::rate::TokenBucket;
use p2pchat_core::relay::{Frame, MAX_FRAME};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

/// How long a TCP connection may take to finish the WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write to a browser may block before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long sending a Close may take; `run` waits a little longer than this
/// for connections to end at shutdown, then aborts the rest.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Answer to a TCP connection beyond `max_connections`.
const FULL_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 14\r\nConnection: close\r\n\r\nrelay is full\n";

type Ws = WebSocketStream<TcpStream>;

/// Relay settings.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Where the WebSocket listener binds; must be a loopback address.
    pub listen: SocketAddr,
    /// The address each connection's UDP socket binds (on port 0).
    pub udp_host: IpAddr,
    /// `Origin` values allowed beyond the local ones, compared exactly
    /// (e.g. `http://myhost:8080`).
    pub extra_origins: Vec<String>,
    /// Most connections open at once (default 32).
    pub max_connections: usize,
    /// Datagrams per second per connection, in each direction (default 5000).
    pub rate: u32,
    /// Datagrams a connection may send or receive at once (default 1000).
    pub burst: u32,
}

impl RelayConfig {
    /// Settings with the default bounds and no extra origins.
    pub fn new(listen: SocketAddr, udp_host: IpAddr) -> Self {
        RelayConfig {
            listen,
            udp_host,
            extra_origins: Vec::new(),
            max_connections: 32,
            rate: 5000,
            burst: 1000,
        }
    }
}

/// A bound relay, ready to [`run`](Relay::run).
pub struct Relay {
    listener: TcpListener,
    local: SocketAddr,
    config: RelayConfig,
}

impl Relay {
    /// Binds the listener (TCP) now, so the caller can print the address
    /// before serving. Refuses a listen address that is not loopback.
    pub async fn bind(config: RelayConfig) -> anyhow::Result<Relay> {
        if !config.listen.ip().is_loopback() {
            bail!(
                "the browser relay listens on loopback only, not {} (use 127.0.0.1 or [::1])",
                config.listen
            );
        }
        if config.max_connections == 0 || config.rate == 0 || config.burst == 0 {
            bail!("the browser relay needs max_connections, rate and burst of at least 1");
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot bind the browser relay on {}", config.listen))?;
        let local = listener
            .local_addr()
            .context("reading the browser relay's local address")?;
        Ok(Relay {
            listener,
            local,
            config,
        })
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `shutdown` changes to true (or its sender is dropped);
    /// then stops accepting, closes every connection with a WebSocket Close
    /// frame (1001, going away), and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let Relay {
            listener, config, ..
        } = self;
        let config = Arc::new(config);
        let slots = Arc::new(Semaphore::new(config.max_connections));
        let mut tasks = JoinSet::new();
        let mut refused_full: u64 = 0;
        loop {
            tokio::select! {
                _ = stopped(&mut shutdown) => break,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = joined {
                        warn!(error = %e, "relay connection task failed");
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let task = connection(stream, peer, config.clone(), shutdown.clone(), permit);
                            tasks.spawn(task);
                        }
                        Err(_) => {
                            refused_full += 1;
                            info!(%peer, refused_full, "relay full: refused a connection");
                            refuse_full(&stream);
                        }
                    },
                    Err(e) => {
                        // E.g. out of file descriptors: back off, keep serving.
                        warn!(error = %e, "relay accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(listener);
        let drained = timeout(CLOSE_TIMEOUT + Duration::from_millis(500), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!("relay connections did not close in time; aborting them");
            tasks.shutdown().await;
        }
        Ok(())
    }
}

/// Resolves once shutdown is requested or can no longer be requested.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Answers 503 without blocking and without a task, then drops the stream.
fn refuse_full(stream: &TcpStream) {
    // Read what already arrived so closing sends FIN rather than RST.
    let mut scratch = [0u8; 2048];
    for _ in 0..4 {
        match stream.try_read(&mut scratch) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = stream.try_write(FULL_RESPONSE);
}

/// Whether a browser `Origin` may use the relay.
fn origin_allowed(origin: &str, extra: &[String]) -> bool {
    if extra.iter().any(|o| o == origin) {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let (host, port) = match rest.strip_prefix("[::1]") {
        Some(port) => ("[::1]", port),
        None => rest.split_at(rest.find(':').unwrap_or(rest.len())),
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        });
    matches!(host, "localhost" | "127.0.0.1" | "[::1]") && port_ok
}

/// The handshake's Origin check, for one connection.
struct OriginCheck<'a> {
    extra: &'a [String],
    peer: SocketAddr,
}

impl Callback for OriginCheck<'_> {
    fn on_request(self, req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
        let mut origins = req.headers().get_all(header::ORIGIN).iter();
        let allowed = match (origins.next(), origins.next()) {
            (None, _) => true,
            (Some(origin), None) => origin.to_str().is_ok_and(|o| origin_allowed(o, self.extra)),
            (Some(_), Some(_)) => false,
        };
        if allowed {
            return Ok(resp);
        }
        let origin: Vec<&HeaderValue> = req.headers().get_all(header::ORIGIN).iter().collect();
        info!(peer = %self.peer, ?origin, "relay refused a WebSocket from a disallowed origin");
        let body = "origin not allowed\n".to_string();
        let mut refusal = ErrorResponse::new(None);
        *refusal.status_mut() = StatusCode::FORBIDDEN;
        let headers = refusal.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        *refusal.body_mut() = Some(body);
        Err(refusal)
    }
}

/// A connection's rate budget in one direction: core's token bucket, on
/// the connection's own clock (milliseconds since it opened).
struct Budget {
    bucket: TokenBucket,
    opened: Instant,
    rate: u64,
    burst: u64,
}

impl Budget {
    fn new(rate: u32, burst: u32, opened: Instant) -> Self {
        let (rate, burst) = (u64::from(rate), u64::from(burst));
        Budget {
            bucket: TokenBucket::full(burst, 0),
            opened,
            rate,
            burst,
        }
    }

    fn take(&mut self) -> bool {
        let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.bucket.try_take(now, self.rate, self.burst)
    }
}

/// What happened on one connection, logged when it closes.
#[derive(Debug, Default)]
struct Counters {
    to_udp: u64,
    to_browser: u64,
    rate_in: u64,
    rate_out: u64,
    bad_frame: u64,
    bad_dest: u64,
    send_failed: u64,
    too_large: u64,
}

/// Destinations the relay never sends to: anything core's address rule
/// (`p2pchat_core::addr`) does not call usable.
fn refused_destination(addr: SocketAddr) -> bool {
    !p2pchat_core::addr::usable(&addr)
}

/// Sends one binary message, bounded by [`WRITE_TIMEOUT`].
async fn send_binary(ws: &mut Ws, bytes: Vec<u8>) -> bool {
    match timeout(WRITE_TIMEOUT, ws.send(Message::Binary(bytes.into()))).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            debug!(error = %e, "relay write failed");
            false
        }
        Err(_) => {
            debug!("relay write timed out");
            false
        }
    }
}

/// Closes with `code`, bounded by [`CLOSE_TIMEOUT`].
async fn close(ws: &mut Ws, code: CloseCode, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
}

/// One connection, from TCP accept to close. Holds its slot until it ends.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<RelayConfig>,
    mut shutdown: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * MAX_FRAME)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let callback = OriginCheck {
        extra: &config.extra_origins,
        peer,
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config));
    let mut ws = tokio::select! {
        _ = stopped(&mut shutdown) => return,
        outcome = timeout(HANDSHAKE_TIMEOUT, handshake) => match outcome {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "relay handshake failed");
                return;
            }
            Err(_) => {
                debug!(%peer, "relay handshake timed out");
                return;
            }
        },
    };
    // The same socket setup as the node's own (enlarged receive buffer: a
    // browser catching up receives bursts too).
    let bound = crate::udp::bind(config.udp_host, 0).and_then(|udp| {
        let addr = udp.local_addr()?;
        Ok((udp, addr))
    });
    let (udp, udp_addr) = match bound {
        Ok(bound) => bound,
        Err(e) => {
            warn!(%peer, error = %format!("{e:#}"), "relay cannot bind a UDP socket on {}", config.udp_host);
            close(&mut ws, CloseCode::Error, "cannot bind UDP").await;
            return;
        }
    };
    debug!(%peer, udp = %udp_addr, "relay connection opened");
    let counters = pump(&mut ws, &udp, udp_addr, &config, &mut shutdown).await;
    debug!(%peer, udp = %udp_addr, ?counters, "relay connection closed");
}

/// Moves frames between the WebSocket and the UDP socket until either ends.
async fn pump(
    ws: &mut Ws,
    udp: &UdpSocket,
    udp_addr: SocketAddr,
    config: &RelayConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Counters {
    let mut n = Counters::default();
    let Ok(bound) = (Frame::Bound { addr: udp_addr }).encode() else {
        return n;
    };
    if !send_binary(ws, bound).await {
        return n;
    }
    let opened = Instant::now();
    let mut inbound = Budget::new(config.rate, config.burst, opened);
    let mut outbound = Budget::new(config.rate, config.burst, opened);
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            _ = stopped(shutdown) => {
                close(ws, CloseCode::Away, "relay shutting down").await;
                return n;
            }
            message = ws.next() => match message {
                None => return n,
                Some(Err(e)) => {
                    debug!(error = %e, "relay connection error");
                    return n;
                }
                Some(Ok(Message::Binary(bytes))) => match Frame::decode(&bytes) {
                    Ok(Frame::Datagram { addr, payload }) => {
                        if !outbound.take() {
                            n.rate_out += 1;
                        } else if refused_destination(addr) {
                            n.bad_dest += 1;
                        } else if udp.send_to(&payload, addr).await.is_ok() {
                            n.to_udp += 1;
                        } else {
                            n.send_failed += 1;
                        }
                    }
                    Ok(Frame::Bound { .. }) | Err(_) => n.bad_frame += 1,
                },
                Some(Ok(Message::Text(_))) => n.bad_frame += 1,
                // Pings are answered by tungstenite as reading goes on; after
                // a Close, the next read sends the reply and ends the stream.
                Some(Ok(_)) => {}
            },
            received = udp.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    if !inbound.take() {
                        n.rate_in += 1;
                        continue;
                    }
                    let frame = Frame::Datagram { addr: from, payload: buf[..len].to_vec() };
                    match frame.encode() {
                        Ok(bytes) => {
                            if !send_binary(ws, bytes).await {
                                return n;
                            }
                            n.to_browser += 1;
                        }
                        Err(_) => n.too_large += 1,
                    }
                }
                // ICMP errors surface here on some systems: not fatal.
                Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused) => {}
                Err(e) => {
                    debug!(error = %e, "relay UDP receive failed");
                    close(ws, CloseCode::Error, "UDP socket failed").await;
                    return n;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tokio::task::JoinHandle;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error as WsError;

    const WAIT: Duration = Duration::from_secs(5);

    fn config() -> RelayConfig {
        RelayConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        )
    }

    async fn start(config: RelayConfig) -> (SocketAddr, watch::Sender<bool>, JoinHandle<()>) {
        let relay = Relay::bind(config).await.unwrap();
        let addr = relay.local_addr();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move { relay.run(stopped).await.unwrap() });
        (addr, stop, task)
    }

    async fn try_connect(relay: SocketAddr, origin: Option<&str>) -> Result<Ws, WsError> {
        let attempt = async {
            let tcp = TcpStream::connect(relay).await?;
            let mut request = format!("ws://{relay}/").into_client_request()?;
            if let Some(origin) = origin {
                let value = HeaderValue::from_str(origin).unwrap();
                request.headers_mut().insert(header::ORIGIN, value);
            }
            Ok(tokio_tungstenite::client_async(request, tcp).await?.0)
        };
        timeout(WAIT, attempt).await.expect("handshake timed out")
    }

    /// Connects and reads the Bound frame.
    async fn connect(relay: SocketAddr, origin: Option<&str>) -> (Ws, SocketAddr) {
        let mut ws = try_connect(relay, origin).await.unwrap();
        match recv_frame(&mut ws).await {
            Frame::Bound { addr } => (ws, addr),
            other => panic!("expected Bound first, got {other:?}"),
        }
    }

    async fn recv_frame(ws: &mut Ws) -> Frame {
        loop {
            let message = timeout(WAIT, ws.next()).await.expect("no frame in time");
            match message.expect("stream ended").unwrap() {
                Message::Binary(bytes) => return Frame::decode(&bytes).unwrap(),
                Message::Pong(_) => {}
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    async fn send_datagram(ws: &mut Ws, addr: SocketAddr, payload: &[u8]) {
        let frame = Frame::Datagram {
            addr,
            payload: payload.to_vec(),
        };
        ws.send(Message::Binary(frame.encode().unwrap().into()))
            .await
            .unwrap();
    }

    async fn udp_peer() -> (UdpSocket, SocketAddr) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        (socket, addr)
    }

    async fn recv_udp(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        let (n, from) = timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .expect("no datagram in time")
            .unwrap();
        (buf[..n].to_vec(), from)
    }

    /// Reads until the stream ends (Close, end or error), bounded.
    async fn expect_end(ws: &mut Ws) {
        timeout(WAIT, async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .expect("connection did not end");
    }

    #[tokio::test]
    async fn datagrams_cross_both_ways() {
        let (relay, _stop, _task) = start(config()).await;
        let (mut ws, bound) = connect(relay, None).await;
        assert!(bound.ip().is_loopback() && bound.port() != 0);
        let (peer, peer_addr) = udp_peer().await;
        send_datagram(&mut ws, peer_addr, b"ciphertext out").await;
        let (payload, from) = recv_udp(&peer).await;
        assert_eq!((payload.as_slice(), from), (&b"ciphertext out"[..], bound));
        peer.send_to(b"ciphertext in", bound).await.unwrap();
        let expected = Frame::Datagram {
            addr: peer_addr,
            payload: b"ciphertext in".to_vec(),
        };
        assert_eq!(recv_frame(&mut ws).await, expected);
    }

    #[tokio::test]
    async fn origins_are_checked() {
        let mut cfg = config();
        cfg.extra_origins = vec!["http://myhost:8080".to_string()];
        let (relay, _stop, _task) = start(cfg).await;
        for bad in [
            "http://evil.example",
            "http://localhost.evil.example",
            "null",
        ] {
            match try_connect(relay, Some(bad)).await {
                Err(WsError::Http(resp)) => assert_eq!(resp.status(), StatusCode::FORBIDDEN),
                other => panic!("{bad} was not refused with 403: {other:?}"),
            }
        }
        for good in [
            None,
            Some("http://localhost:8080"),
            Some("http://myhost:8080"),
        ] {
            connect(relay, good).await;
        }
    }

    #[test]
    fn origin_parsing_is_strict() {
        let extra = ["https://chat.example".to_string()];
        for ok in [
            "http://localhost",
            "https://localhost:443",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
            "https://chat.example",
        ] {
            assert!(origin_allowed(ok, &extra), "{ok}");
        }
        for bad in [
            "ws://localhost",
            "http://localhost:",
            "http://localhost:99999",
            "http://localhost:+80",
            "http://localhost/",
            "http://localhost@evil.example",
            "http://[::1]evil",
            "http://127.0.0.1.evil.example",
            "https://chat.example:443",
            "",
        ] {
            assert!(!origin_allowed(bad, &extra), "{bad}");
        }
    }

    #[tokio::test]
    async fn unusable_frames_are_dropped_not_fatal() {
        let (relay, _stop, _task) = start(config()).await;
        let (mut ws, bound) = connect(relay, Some("http://127.0.0.1:8080")).await;
        let (peer, peer_addr) = udp_peer().await;
        let garbage = [vec![], vec![9, 9, 9], vec![0, 4, 127, 0]];
        for bytes in garbage {
            ws.send(Message::Binary(bytes.into())).await.unwrap();
        }
        let from_browser = Frame::Bound { addr: peer_addr }.encode().unwrap();
        ws.send(Message::Binary(from_browser.into())).await.unwrap();
        ws.send(Message::Text("hello".into())).await.unwrap();
        ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
        send_datagram(&mut ws, peer_addr, b"still here").await;
        assert_eq!(recv_udp(&peer).await, (b"still here".to_vec(), bound));
        let pong = timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(pong, Message::Pong(b"p".to_vec().into()));
    }

    #[tokio::test]
    async fn oversized_frame_closes_only_its_connection() {
        let (relay, _stop, _task) = start(config()).await;
        let (mut big, _) = connect(relay, None).await;
        let (mut other, bound) = connect(relay, None).await;
        let _ = big
            .send(Message::Binary(vec![0u8; MAX_FRAME + 1].into()))
            .await;
        expect_end(&mut big).await;
        let (peer, peer_addr) = udp_peer().await;
        send_datagram(&mut other, peer_addr, b"unaffected").await;
        assert_eq!(recv_udp(&peer).await, (b"unaffected".to_vec(), bound));
    }

    #[tokio::test]
    async fn connection_limit_holds_and_frees() {
        let mut cfg = config();
        cfg.max_connections = 2;
        let (relay, _stop, _task) = start(cfg).await;
        let (first, _) = connect(relay, None).await;
        let (_second, _) = connect(relay, None).await;
        assert!(try_connect(relay, None).await.is_err());
        drop(first);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(mut ws) = try_connect(relay, None).await {
                assert!(matches!(recv_frame(&mut ws).await, Frame::Bound { .. }));
                break;
            }
            assert!(Instant::now() < deadline, "slot was never freed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn rate_limit_drops_excess() {
        let mut cfg = config();
        cfg.rate = 10;
        cfg.burst = 10;
        let (relay, _stop, _task) = start(cfg).await;
        let (mut ws, _) = connect(relay, None).await;
        let (peer, peer_addr) = udp_peer().await;
        for i in 0..100u8 {
            send_datagram(&mut ws, peer_addr, &[i]).await;
        }
        let mut received = 0;
        let mut buf = [0u8; 16];
        while let Ok(Ok(_)) = timeout(Duration::from_millis(500), peer.recv_from(&mut buf)).await {
            received += 1;
            assert!(received <= 100);
        }
        assert!((1..=20).contains(&received), "received {received}");
    }

    #[tokio::test]
    async fn refused_destinations_are_dropped() {
        let (relay, _stop, _task) = start(config()).await;
        let (mut ws, bound) = connect(relay, None).await;
        for dest in [
            "0.0.0.0:9",
            "255.255.255.255:9",
            "224.0.0.1:9",
            "[ff02::1]:9",
            "[::ffff:255.255.255.255]:9",
            "127.0.0.1:0",
        ] {
            send_datagram(&mut ws, dest.parse().unwrap(), b"nope").await;
        }
        let (peer, peer_addr) = udp_peer().await;
        send_datagram(&mut ws, peer_addr, b"fine").await;
        assert_eq!(recv_udp(&peer).await, (b"fine".to_vec(), bound));
    }

    #[tokio::test]
    async fn shutdown_closes_connections_and_returns() {
        let (relay, stop, task) = start(config()).await;
        let (mut ws, _) = connect(relay, None).await;
        stop.send(true).unwrap();
        timeout(WAIT, task)
            .await
            .expect("run did not return")
            .unwrap();
        let message = timeout(WAIT, ws.next()).await.expect("no close in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
            None | Some(Err(_)) => {}
            Some(Ok(other)) => panic!("expected Close, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn non_loopback_listen_is_refused() {
        let mut cfg = config();
        cfg.listen = "0.0.0.0:0".parse().unwrap();
        let error = Relay::bind(cfg).await.err().expect("bind should fail");
        assert!(error.to_string().contains("loopback"), "{error}");
    }
}
