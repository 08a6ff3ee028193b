use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use p2pchat_core::relay::{Frame, MAX_FRAME};
use p2pchat_core::wire::{self, RoomKind};
use p2pchat_core::{PeerId, RendezvousTag};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::origin::origin_allowed;
use super::{Relay, RelayConfig};

type Ws = WebSocketStream<TcpStream>;

const WAIT: Duration = Duration::from_secs(5);
/// The page the node serves.
const PAGE: &str = "http://127.0.0.1:8080";

fn config() -> RelayConfig {
    RelayConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
}

/// A well-formed p2pchat datagram, different for each `n`, `len` bytes of
/// token (the datagram is about 200 bytes longer).
fn p2pchat(n: u8, len: usize) -> Vec<u8> {
    let token = "A".repeat(len);
    let mut d = wire::encode_room(
        RoomKind::Ctl,
        RendezvousTag::from_bytes([n; 32]),
        PeerId::from_bytes([n; 32]),
        &token,
        usize::MAX,
        0,
    )
    .unwrap();
    d.remove(0)
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

/// Reads until the stream ends (Close, end or error), bounded; returns the
/// Close code if there was one.
async fn expect_end(ws: &mut Ws) -> Option<CloseCode> {
    timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("connection did not end")
}

fn refused_with(outcome: Result<Ws, WsError>, status: StatusCode) {
    match outcome {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), status),
        other => panic!("expected HTTP {status}, got {other:?}"),
    }
}

#[tokio::test]
async fn datagrams_cross_both_ways() {
    let (relay, _stop, _task) = start(config()).await;
    let (mut ws, bound) = connect(relay, Some(PAGE)).await;
    assert!(bound.ip().is_loopback() && bound.port() != 0);
    let (peer, peer_addr) = udp_peer().await;
    let out = p2pchat(1, 100);
    send_datagram(&mut ws, peer_addr, &out).await;
    assert_eq!(recv_udp(&peer).await, (out, bound));
    let back = p2pchat(2, 100);
    peer.send_to(&back, bound).await.unwrap();
    let expected = Frame::Datagram {
        addr: peer_addr,
        payload: back,
    };
    assert_eq!(recv_frame(&mut ws).await, expected);
}

#[tokio::test]
async fn only_the_page_the_node_serves_and_local_programs_get_in() {
    let mut cfg = config();
    cfg.allowed_origins.push("http://myhost:3000".to_string());
    let (relay, _stop, _task) = start(cfg).await;
    for bad in [
        "http://evil.example",
        "http://localhost.evil.example",
        // Another page on this machine, on another port.
        "http://127.0.0.1:5173",
        "http://localhost:3000",
        "https://127.0.0.1:8080",
        "null",
    ] {
        refused_with(try_connect(relay, Some(bad)).await, StatusCode::FORBIDDEN);
    }
    for good in [
        None,
        Some("http://127.0.0.1:8080"),
        Some("http://localhost:8080"),
        Some("http://[::1]:8080"),
        Some("http://myhost:3000"),
    ] {
        connect(relay, good).await;
    }
}

#[test]
fn origins_match_exactly() {
    let allowed = ["http://127.0.0.1:8080".to_string()];
    assert!(origin_allowed("http://127.0.0.1:8080", &allowed));
    for bad in [
        "http://127.0.0.1:8080/",
        "http://127.0.0.1:80800",
        "HTTP://127.0.0.1:8080",
        "http://127.0.0.1",
        "",
    ] {
        assert!(!origin_allowed(bad, &allowed), "{bad}");
    }
}

#[tokio::test]
async fn only_p2pchat_datagrams_within_the_mtu_leave_the_relay() {
    let (relay, _stop, _task) = start(config()).await;
    let (mut ws, bound) = connect(relay, Some(PAGE)).await;
    let (victim, victim_addr) = udp_peer().await;
    let over_mtu = p2pchat(3, 1_200);
    assert!(over_mtu.len() > wire::DEFAULT_MTU && wire::decode(&over_mtu).is_ok());
    let junk: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: victim\r\n\r\n".to_vec(),
        vec![0xff; 60_000],
        b"{\"k\":\"ctl\"}".to_vec(),
        Vec::new(),
        over_mtu,
    ];
    let mut junk_bytes = 0;
    for payload in &junk {
        junk_bytes += payload.len();
        send_datagram(&mut ws, victim_addr, payload).await;
    }
    // A real datagram after them: the only thing the victim receives.
    let real = p2pchat(4, 100);
    send_datagram(&mut ws, victim_addr, &real).await;
    assert_eq!(recv_udp(&victim).await, (real, bound));
    assert!(junk_bytes > 60_000);
}

#[tokio::test]
async fn only_p2pchat_datagrams_reach_the_page() {
    let (relay, _stop, _task) = start(config()).await;
    let (mut ws, bound) = connect(relay, Some(PAGE)).await;
    let (peer, peer_addr) = udp_peer().await;
    peer.send_to(b"\x00\x01not p2pchat", bound).await.unwrap();
    peer.send_to(&[b'{'; 500], bound).await.unwrap();
    let real = p2pchat(5, 50);
    peer.send_to(&real, bound).await.unwrap();
    let expected = Frame::Datagram {
        addr: peer_addr,
        payload: real,
    };
    assert_eq!(recv_frame(&mut ws).await, expected);
}

#[tokio::test]
async fn unusable_frames_are_dropped_not_fatal() {
    let (relay, _stop, _task) = start(config()).await;
    let (mut ws, bound) = connect(relay, Some(PAGE)).await;
    let (peer, peer_addr) = udp_peer().await;
    let garbage = [vec![], vec![9, 9, 9], vec![0, 4, 127, 0]];
    for bytes in garbage {
        ws.send(Message::Binary(bytes.into())).await.unwrap();
    }
    let from_browser = Frame::Bound { addr: peer_addr }.encode().unwrap();
    ws.send(Message::Binary(from_browser.into())).await.unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    let still = p2pchat(6, 10);
    send_datagram(&mut ws, peer_addr, &still).await;
    assert_eq!(recv_udp(&peer).await, (still, bound));
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
    let fine = p2pchat(7, 10);
    send_datagram(&mut other, peer_addr, &fine).await;
    assert_eq!(recv_udp(&peer).await, (fine, bound));
}

#[tokio::test]
async fn connection_limit_holds_and_frees() {
    let mut cfg = config();
    cfg.max_connections = 2;
    let (relay, _stop, _task) = start(cfg).await;
    let (first, _) = connect(relay, None).await;
    let (_second, _) = connect(relay, None).await;
    refused_with(
        try_connect(relay, None).await,
        StatusCode::SERVICE_UNAVAILABLE,
    );
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

/// 64 TCP connections that never say a word, then the page: it gets in at
/// once (the idle ones only push each other out of the handshake pool).
#[tokio::test]
async fn idle_sockets_cannot_lock_the_page_out() {
    let (relay, _stop, _task) = start(config()).await;
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(TcpStream::connect(relay).await.unwrap());
    }
    let (mut ws, bound) = connect(relay, Some(PAGE)).await;
    let (peer, peer_addr) = udp_peer().await;
    let hello = p2pchat(8, 10);
    send_datagram(&mut ws, peer_addr, &hello).await;
    assert_eq!(recv_udp(&peer).await, (hello, bound));
}

/// Local programs fill every slot; the page still gets in, and one of them
/// is closed to make room; another local program is refused.
#[tokio::test]
async fn a_page_gets_in_when_local_programs_fill_the_relay() {
    let mut cfg = config();
    cfg.max_connections = 2;
    let (relay, _stop, _task) = start(cfg).await;
    let (mut a, _) = connect(relay, None).await;
    let (mut b, _) = connect(relay, None).await;
    let (_page, _) = connect(relay, Some(PAGE)).await;
    // The oldest local program gave its place up.
    assert_eq!(expect_end(&mut a).await, Some(CloseCode::Again));
    let probe = p2pchat(9, 10);
    let (peer, peer_addr) = udp_peer().await;
    send_datagram(&mut b, peer_addr, &probe).await;
    assert_eq!(recv_udp(&peer).await.0, probe);
    refused_with(
        try_connect(relay, None).await,
        StatusCode::SERVICE_UNAVAILABLE,
    );
}

#[tokio::test]
async fn rate_limit_drops_excess() {
    let mut cfg = config();
    cfg.rate = 10;
    cfg.burst = 10;
    let (relay, _stop, _task) = start(cfg).await;
    let (mut ws, _) = connect(relay, None).await;
    let (peer, peer_addr) = udp_peer().await;
    let started = Instant::now();
    for i in 0..100u8 {
        send_datagram(&mut ws, peer_addr, &p2pchat(i, 10)).await;
    }
    let received = count_received(&peer).await;
    // The budget: the burst, plus the rate over the time it took.
    let allowed = 10 + 10 * (started.elapsed().as_secs() + 1);
    assert!(
        (1..=allowed).contains(&received),
        "received {received} of 100"
    );
}

/// Two connections of one origin share the origin's budget.
#[tokio::test]
async fn connections_of_one_origin_share_its_budget() {
    let mut cfg = config();
    cfg.origin_rate = 10;
    cfg.origin_burst = 10;
    let (relay, _stop, _task) = start(cfg).await;
    let (mut first, _) = connect(relay, Some(PAGE)).await;
    let (mut second, _) = connect(relay, Some(PAGE)).await;
    let (peer, peer_addr) = udp_peer().await;
    let started = Instant::now();
    for i in 0..50u8 {
        send_datagram(&mut first, peer_addr, &p2pchat(i, 10)).await;
        send_datagram(&mut second, peer_addr, &p2pchat(i, 10)).await;
    }
    let received = count_received(&peer).await;
    let allowed = 10 + 10 * (started.elapsed().as_secs() + 1);
    assert!(
        (1..=allowed).contains(&received),
        "received {received} of 100"
    );
}

/// Datagrams arriving at `peer` until none comes for half a second.
async fn count_received(peer: &UdpSocket) -> u64 {
    let mut received = 0;
    let mut buf = [0u8; 2048];
    while let Ok(Ok(_)) = timeout(Duration::from_millis(500), peer.recv_from(&mut buf)).await {
        received += 1;
        assert!(received <= 1_000);
    }
    received
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
        send_datagram(&mut ws, dest.parse().unwrap(), &p2pchat(1, 10)).await;
    }
    let (peer, peer_addr) = udp_peer().await;
    let fine = p2pchat(2, 10);
    send_datagram(&mut ws, peer_addr, &fine).await;
    assert_eq!(recv_udp(&peer).await, (fine, bound));
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
