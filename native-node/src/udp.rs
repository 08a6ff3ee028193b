//! The node's one UDP socket, shared by peers and signaling.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use tokio::net::UdpSocket;

/// Binds the node's socket, with an error that says which address failed.
pub async fn bind(host: IpAddr, port: u16) -> Result<UdpSocket> {
    let addr = SocketAddr::new(host, port);
    UdpSocket::bind(addr).await.with_context(|| {
        format!("cannot bind UDP {addr} (is another node using this port? try --port)")
    })
}
