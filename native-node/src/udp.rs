//! The node's one UDP socket, shared by peers and signaling.
//!
//! Its receive buffer is enlarged: a member catching up receives bursts of
//! hundreds of datagrams, and whatever does not fit the kernel's buffer is
//! dropped before the node sees it (costing a repair round each time). The
//! kernel caps the request at `net.core.rmem_max`; the node works with
//! whatever it gets.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Receive buffer asked for.
const RECV_BUFFER: usize = 4 * 1024 * 1024;

/// Binds the node's socket, with an error that says which address failed.
pub fn bind(host: IpAddr, port: u16) -> Result<UdpSocket> {
    let addr = SocketAddr::new(host, port);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .context("creating a UDP socket")?;
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER) {
        tracing::debug!("cannot enlarge the UDP receive buffer: {e}");
    }
    if let Ok(size) = socket.recv_buffer_size() {
        tracing::debug!(bytes = size, "UDP receive buffer");
    }
    socket.bind(&addr.into()).with_context(|| {
        format!("cannot bind UDP {addr} (is another node using this port? try --port)")
    })?;
    socket
        .set_nonblocking(true)
        .context("making the UDP socket non-blocking")?;
    UdpSocket::from_std(socket.into()).context("registering the UDP socket with tokio")
}
