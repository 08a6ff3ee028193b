//! One relay connection: the handshake (origin check and admission), one
//! UDP socket of its own, and the pump that moves frames both ways within
//! its budgets.
//!
//! Only p2pchat leaves through the relay: a datagram goes out only if it is
//! at most the MTU and parses as a p2pchat datagram (core's
//! `wire::decode`), to an address core's address rule calls usable; and
//! only p2pchat datagrams come back to the page. Budgets are token buckets
//! of datagrams: one per connection and direction, and one shared by every
//! connection of the same origin (a page cannot multiply its budget by
//! opening connections).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use p2pchat_core::rate::TokenBucket;
use p2pchat_core::relay::{Frame, MAX_FRAME};
use p2pchat_core::wire;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, warn};

use super::origin::Gate;
use super::slots::{Slots, Ticket};
use super::{stopped, RelayConfig};

/// How long a TCP connection may take to finish the WebSocket handshake:
/// a page needs a few milliseconds.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one write to a browser may block before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long sending a Close may take; `run` waits a little longer than this
/// for connections to end at shutdown, then aborts the rest.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

type Ws = WebSocketStream<TcpStream>;

/// A token bucket of datagrams on the relay's clock.
#[derive(Debug)]
pub struct Budget {
    bucket: TokenBucket,
    rate: u64,
    burst: u64,
}

impl Budget {
    fn new(rate: u32, burst: u32) -> Self {
        let (rate, burst) = (u64::from(rate), u64::from(burst));
        Budget {
            bucket: TokenBucket::full(burst, 0),
            rate,
            burst,
        }
    }

    fn take(&mut self, epoch: Instant) -> bool {
        let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.bucket.try_take(now, self.rate, self.burst)
    }
}

/// The budgets shared by the connections of one origin (`None`: local
/// programs without an `Origin`), on the relay's clock.
#[derive(Debug)]
pub struct OriginBudgets {
    epoch: Instant,
    rate: u32,
    burst: u32,
    by_origin: Mutex<HashMap<Option<String>, Arc<Mutex<Budget>>>>,
}

impl OriginBudgets {
    /// Budgets of `rate` datagrams per second (`burst` at once) per origin.
    pub fn new(rate: u32, burst: u32) -> Self {
        OriginBudgets {
            epoch: Instant::now(),
            rate,
            burst,
            by_origin: Mutex::new(HashMap::new()),
        }
    }

    /// The budget of `origin`. The map holds one entry per origin ever
    /// admitted: the allowed origins, and "none".
    fn of(&self, origin: &Option<String>) -> Arc<Mutex<Budget>> {
        let mut map = self.by_origin.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            map.entry(origin.clone())
                .or_insert_with(|| Arc::new(Mutex::new(Budget::new(self.rate, self.burst)))),
        )
    }
}

/// What happened on one connection, logged when it closes.
#[derive(Debug, Default)]
struct Counters {
    to_udp: u64,
    to_browser: u64,
    rate_in: u64,
    rate_out: u64,
    rate_origin: u64,
    bad_frame: u64,
    bad_dest: u64,
    over_mtu: u64,
    not_p2pchat_out: u64,
    not_p2pchat_in: u64,
    send_failed: u64,
    too_large: u64,
}

/// What the shared parts of the relay lend a connection.
pub struct Shared {
    pub config: Arc<RelayConfig>,
    pub slots: Arc<Slots>,
    pub budgets: Arc<OriginBudgets>,
}

/// One connection, from TCP accept to close. Holds its ticket until it
/// ends.
pub async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Shared,
    mut shutdown: watch::Receiver<bool>,
    mut ticket: Ticket,
) {
    let Shared {
        config,
        slots,
        budgets,
    } = shared;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * MAX_FRAME)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let mut admitted = None;
    let gate = Gate {
        allowed: &config.allowed_origins,
        peer,
        slots,
        id: ticket.id,
        admitted: &mut admitted,
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, gate, Some(ws_config));
    let outcome = tokio::select! {
        _ = stopped(&mut shutdown) => return,
        _ = stopped(&mut ticket.kill) => {
            debug!(%peer, "relay handshake pushed out by newer connections");
            return;
        }
        outcome = timeout(HANDSHAKE_TIMEOUT, handshake) => outcome,
    };
    let mut ws = match outcome {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "relay handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "relay handshake timed out");
            return;
        }
    };
    let Some(origin) = admitted else {
        return;
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
    debug!(%peer, udp = %udp_addr, ?origin, "relay connection opened");
    let shared_budget = budgets.of(&origin);
    let counters = Pump {
        ws: &mut ws,
        udp: &udp,
        config: &config,
        origin_budget: &shared_budget,
        epoch: budgets.epoch,
    }
    .run(udp_addr, &mut shutdown, &mut ticket.kill)
    .await;
    debug!(%peer, udp = %udp_addr, ?counters, "relay connection closed");
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

/// Whether `payload` is a p2pchat datagram the relay may send: within the
/// MTU and parsing as one.
fn p2pchat_out(payload: &[u8], mtu: usize) -> Result<(), bool> {
    if payload.len() > mtu {
        return Err(true);
    }
    wire::decode(payload).map(drop).map_err(|_| false)
}

/// Moves frames between one WebSocket and its UDP socket.
struct Pump<'a> {
    ws: &'a mut Ws,
    udp: &'a UdpSocket,
    config: &'a RelayConfig,
    origin_budget: &'a Mutex<Budget>,
    epoch: Instant,
}

impl Pump<'_> {
    /// Runs until either side ends, the relay stops, or the slots close
    /// this connection.
    async fn run(
        mut self,
        udp_addr: SocketAddr,
        shutdown: &mut watch::Receiver<bool>,
        kill: &mut watch::Receiver<bool>,
    ) -> Counters {
        let mut n = Counters::default();
        let Ok(bound) = (Frame::Bound { addr: udp_addr }).encode() else {
            return n;
        };
        if !send_binary(self.ws, bound).await {
            return n;
        }
        let config = self.config;
        let mut inbound = Budget::new(config.rate, config.burst);
        let mut outbound = Budget::new(config.rate, config.burst);
        let mut buf = vec![0u8; 65536];
        loop {
            tokio::select! {
                _ = stopped(shutdown) => {
                    close(self.ws, CloseCode::Away, "relay shutting down").await;
                    return n;
                }
                _ = stopped(kill) => {
                    close(self.ws, CloseCode::Again, "relay full: replaced by a page").await;
                    return n;
                }
                message = self.ws.next() => match message {
                    None => return n,
                    Some(Err(e)) => {
                        debug!(error = %e, "relay connection error");
                        return n;
                    }
                    Some(Ok(Message::Binary(bytes))) => match Frame::decode(&bytes) {
                        Ok(Frame::Datagram { addr, payload }) => {
                            self.out(addr, &payload, &mut outbound, &mut n).await;
                        }
                        Ok(Frame::Bound { .. }) | Err(_) => n.bad_frame += 1,
                    },
                    Some(Ok(Message::Text(_))) => n.bad_frame += 1,
                    // Pings are answered by tungstenite as reading goes on;
                    // after a Close, the next read sends the reply and ends
                    // the stream.
                    Some(Ok(_)) => {}
                },
                received = self.udp.recv_from(&mut buf) => match received {
                    Ok((len, from)) => {
                        let payload = buf.get(..len).unwrap_or_default();
                        if !inbound.take(self.epoch) {
                            n.rate_in += 1;
                            continue;
                        }
                        if wire::decode(payload).is_err() {
                            n.not_p2pchat_in += 1;
                            continue;
                        }
                        let frame = Frame::Datagram { addr: from, payload: payload.to_vec() };
                        match frame.encode() {
                            Ok(bytes) => {
                                if !send_binary(self.ws, bytes).await {
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
                        close(self.ws, CloseCode::Error, "UDP socket failed").await;
                        return n;
                    }
                },
            }
        }
    }

    /// One datagram from the browser: sent if it is p2pchat, to a usable
    /// address, within both budgets; dropped and counted otherwise.
    async fn out(
        &mut self,
        addr: SocketAddr,
        payload: &[u8],
        budget: &mut Budget,
        n: &mut Counters,
    ) {
        if !p2pchat_core::addr::usable(&addr) {
            n.bad_dest += 1;
            return;
        }
        match p2pchat_out(payload, self.config.mtu) {
            Err(true) => {
                n.over_mtu += 1;
                return;
            }
            Err(false) => {
                n.not_p2pchat_out += 1;
                return;
            }
            Ok(()) => {}
        }
        if !budget.take(self.epoch) {
            n.rate_out += 1;
            return;
        }
        let origin_ok = self
            .origin_budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(self.epoch);
        if !origin_ok {
            n.rate_origin += 1;
            return;
        }
        if self.udp.send_to(payload, addr).await.is_ok() {
            n.to_udp += 1;
        } else {
            n.send_failed += 1;
        }
    }
}
