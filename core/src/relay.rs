//! Relay frames: how a browser peer's datagrams cross the WebSocket to the
//! local native node, which puts them on UDP.
//!
//! A browser cannot open a UDP socket, so the native node runs a relay: one
//! WebSocket connection per browser, and behind it one UDP socket of its own.
//! Every WebSocket *binary* message is exactly one frame; both ends encode
//! and decode frames with this module (the relay in `native-node`, the
//! browser peer in `web`). The relay never looks inside a datagram: it holds
//! no room key and moves only ciphertext.
//!
//! ```text
//! kind     u8        0 = datagram, 1 = bound
//! family   u8        4 or 6
//! ip       4 or 16 bytes
//! port     u16 big-endian
//! payload  the rest (datagram only; empty for bound)
//! ```
//!
//! - **datagram**, browser → relay: send `payload` from this connection's
//!   UDP socket to the address. Relay → browser: `payload` arrived on this
//!   connection's UDP socket from the address.
//! - **bound**, relay → browser, once, first: the address of this
//!   connection's UDP socket, which the browser reports as its own (to
//!   signaling servers and in the Chat IDs it hands out).
//!
//! Decoding is strict: an unknown kind or family, a short header, a payload
//! on `bound`, or a payload larger than a UDP datagram can carry is an
//! error, and the frame is dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Largest payload a frame may carry: the largest UDP datagram over IPv4.
pub const MAX_PAYLOAD: usize = 65_507;
/// Longest header: kind, family, IPv6 address, port.
pub const MAX_HEADER: usize = 1 + 1 + 16 + 2;
/// Longest frame.
pub const MAX_FRAME: usize = MAX_HEADER + MAX_PAYLOAD;

const KIND_DATAGRAM: u8 = 0;
const KIND_BOUND: u8 = 1;
const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

/// One relay frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A datagram to send to (browser → relay) or received from
    /// (relay → browser) `addr`.
    Datagram {
        /// The remote UDP address.
        addr: SocketAddr,
        /// The datagram's bytes.
        payload: Vec<u8>,
    },
    /// The UDP address the relay bound for this connection.
    Bound {
        /// The address.
        addr: SocketAddr,
    },
}

/// Why a frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than its header.
    #[error("relay frame shorter than its header")]
    Truncated,
    /// Unknown frame kind.
    #[error("unknown relay frame kind {0}")]
    Kind(u8),
    /// Unknown address family.
    #[error("unknown address family {0} in a relay frame")]
    Family(u8),
    /// Payload larger than [`MAX_PAYLOAD`].
    #[error("relay frame payload of {0} bytes is larger than a UDP datagram")]
    TooLarge(usize),
    /// A `bound` frame with a payload.
    #[error("relay `bound` frame with a payload")]
    TrailingBytes,
}

impl Frame {
    /// Encodes the frame. Fails only when the payload is larger than
    /// [`MAX_PAYLOAD`].
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let (kind, addr, payload): (u8, &SocketAddr, &[u8]) = match self {
            Frame::Datagram { addr, payload } => (KIND_DATAGRAM, addr, payload),
            Frame::Bound { addr } => (KIND_BOUND, addr, &[]),
        };
        if payload.len() > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(payload.len()));
        }
        let mut out = Vec::with_capacity(MAX_HEADER + payload.len());
        out.push(kind);
        match addr.ip() {
            IpAddr::V4(ip) => {
                out.push(FAMILY_V4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(FAMILY_V6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&addr.port().to_be_bytes());
        out.extend_from_slice(payload);
        Ok(out)
    }

    /// Decodes one frame.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        let (&kind, rest) = bytes.split_first().ok_or(FrameError::Truncated)?;
        if kind != KIND_DATAGRAM && kind != KIND_BOUND {
            return Err(FrameError::Kind(kind));
        }
        let (&family, rest) = rest.split_first().ok_or(FrameError::Truncated)?;
        let (ip, rest): (IpAddr, &[u8]) = match family {
            FAMILY_V4 => {
                let (ip, rest) = split::<4>(rest)?;
                (Ipv4Addr::from(ip).into(), rest)
            }
            FAMILY_V6 => {
                let (ip, rest) = split::<16>(rest)?;
                (Ipv6Addr::from(ip).into(), rest)
            }
            other => return Err(FrameError::Family(other)),
        };
        let (port, payload) = split::<2>(rest)?;
        let addr = SocketAddr::new(ip, u16::from_be_bytes(port));
        if kind == KIND_BOUND {
            if !payload.is_empty() {
                return Err(FrameError::TrailingBytes);
            }
            return Ok(Frame::Bound { addr });
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(payload.len()));
        }
        Ok(Frame::Datagram {
            addr,
            payload: payload.to_vec(),
        })
    }
}

fn split<const N: usize>(bytes: &[u8]) -> Result<([u8; N], &[u8]), FrameError> {
    if bytes.len() < N {
        return Err(FrameError::Truncated);
    }
    let (head, rest) = bytes.split_at(N);
    let mut out = [0u8; N];
    out.copy_from_slice(head);
    Ok((out, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frames = [
            Frame::Datagram {
                addr: "127.0.0.1:5000".parse().unwrap(),
                payload: b"{\"k\":\"ctl\"}".to_vec(),
            },
            Frame::Datagram {
                addr: "[::1]:65535".parse().unwrap(),
                payload: vec![],
            },
            Frame::Datagram {
                addr: "10.0.0.1:1".parse().unwrap(),
                payload: vec![7; MAX_PAYLOAD],
            },
            Frame::Bound {
                addr: "127.0.0.1:40000".parse().unwrap(),
            },
        ];
        for f in frames {
            let bytes = f.encode().unwrap();
            assert!(bytes.len() <= MAX_FRAME);
            assert_eq!(Frame::decode(&bytes).unwrap(), f);
        }
    }

    #[test]
    fn bad_frames_are_refused() {
        let good = Frame::Datagram {
            addr: "127.0.0.1:5000".parse().unwrap(),
            payload: b"x".to_vec(),
        }
        .encode()
        .unwrap();
        for n in 0..8 {
            assert_eq!(Frame::decode(&good[..n]), Err(FrameError::Truncated));
        }
        let mut bad = good.clone();
        bad[0] = 9;
        assert_eq!(Frame::decode(&bad), Err(FrameError::Kind(9)));
        let mut bad = good.clone();
        bad[1] = 5;
        assert_eq!(Frame::decode(&bad), Err(FrameError::Family(5)));
        let mut bad = good.clone();
        bad[0] = KIND_BOUND;
        assert_eq!(Frame::decode(&bad), Err(FrameError::TrailingBytes));
        let mut big = good[..8].to_vec();
        big.extend(std::iter::repeat_n(0, MAX_PAYLOAD + 1));
        assert_eq!(
            Frame::decode(&big),
            Err(FrameError::TooLarge(MAX_PAYLOAD + 1))
        );
        let too_big = Frame::Datagram {
            addr: "127.0.0.1:1".parse().unwrap(),
            payload: vec![0; MAX_PAYLOAD + 1],
        };
        assert_eq!(too_big.encode(), Err(FrameError::TooLarge(MAX_PAYLOAD + 1)));
    }
}
