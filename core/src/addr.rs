//! Addresses: which socket addresses p2pchat will ever send to or pass on.
//!
//! One rule, used wherever an address comes in or goes out: bootstrap
//! addresses in Chat IDs, addresses registered with and returned by a
//! signaling server, member hints, a node's own advertised addresses, and
//! the destinations a browser asks the native node's relay to send to.
//!
//! An address is **usable** when a datagram sent to it reaches one host and
//! nothing about it is left out of what is signed:
//!
//! - its port is not 0;
//! - its IP is not unspecified (`0.0.0.0`, `::`), multicast, or the IPv4
//!   broadcast address — a datagram to those reaches everyone or no one,
//!   which is what a reflection attack wants;
//! - an IPv6 address carries no scope id and no flow label (neither is in
//!   the binary encodings that get signed, so they could be changed in
//!   transit, and a scope id means nothing on another host).
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are judged as the IPv4
//! address they carry.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Why an address is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Port 0.
    PortZero,
    /// `0.0.0.0` or `::`.
    Unspecified,
    /// A multicast group.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// An IPv6 scope id or flow label.
    Scoped,
}

impl Unusable {
    /// The reason in a few words, for error messages.
    pub fn reason(self) -> &'static str {
        match self {
            Unusable::PortZero => "port 0",
            Unusable::Unspecified => "unspecified IP address",
            Unusable::Multicast => "multicast IP address",
            Unusable::Broadcast => "broadcast IP address",
            Unusable::Scoped => "IPv6 address with a scope id or flow label",
        }
    }
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Checks an address against the rule of this module.
pub fn check(addr: &SocketAddr) -> Result<(), Unusable> {
    if addr.port() == 0 {
        return Err(Unusable::PortZero);
    }
    if let SocketAddr::V6(v6) = addr {
        if v6.scope_id() != 0 || v6.flowinfo() != 0 {
            return Err(Unusable::Scoped);
        }
    }
    let ip = addr.ip().to_canonical();
    if ip.is_unspecified() {
        return Err(Unusable::Unspecified);
    }
    if ip.is_multicast() {
        return Err(Unusable::Multicast);
    }
    if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
        return Err(Unusable::Broadcast);
    }
    Ok(())
}

/// Whether an address may be sent to or passed on.
pub fn usable(addr: &SocketAddr) -> bool {
    check(addr).is_ok()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    use super::*;

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port)
    }

    #[test]
    fn unicast_addresses_are_usable() {
        assert!(usable(&v4([127, 0, 0, 1], 5000)));
        assert!(usable(&v4([192, 168, 1, 20], 1)));
        assert!(usable(&"[2001:db8::1]:443".parse().unwrap()));
        assert!(usable(&"[::1]:9".parse().unwrap()));
    }

    #[test]
    fn everything_that_reaches_everyone_or_no_one_is_not() {
        assert_eq!(check(&v4([10, 0, 0, 1], 0)), Err(Unusable::PortZero));
        assert_eq!(check(&v4([0, 0, 0, 0], 80)), Err(Unusable::Unspecified));
        assert_eq!(
            check(&"[::]:80".parse().unwrap()),
            Err(Unusable::Unspecified)
        );
        assert_eq!(check(&v4([224, 0, 0, 251], 5353)), Err(Unusable::Multicast));
        assert_eq!(
            check(&"[ff02::fb]:5353".parse().unwrap()),
            Err(Unusable::Multicast)
        );
        assert_eq!(
            check(&v4([255, 255, 255, 255], 9)),
            Err(Unusable::Broadcast)
        );
    }

    #[test]
    fn mapped_addresses_are_judged_as_ipv4() {
        let mapped =
            |a: [u8; 4]| SocketAddr::new(IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped()), 9);
        assert_eq!(check(&mapped([0, 0, 0, 0])), Err(Unusable::Unspecified));
        assert_eq!(
            check(&mapped([255, 255, 255, 255])),
            Err(Unusable::Broadcast)
        );
        assert_eq!(check(&mapped([239, 1, 2, 3])), Err(Unusable::Multicast));
        assert!(usable(&mapped([203, 0, 113, 7])));
    }

    #[test]
    fn scope_ids_and_flow_labels_are_refused() {
        let ip: Ipv6Addr = "fe80::1".parse().unwrap();
        let scoped = SocketAddr::V6(SocketAddrV6::new(ip, 9, 0, 3));
        let flow = SocketAddr::V6(SocketAddrV6::new(ip, 9, 7, 0));
        assert_eq!(check(&scoped), Err(Unusable::Scoped));
        assert_eq!(check(&flow), Err(Unusable::Scoped));
        assert!(usable(&SocketAddr::V6(SocketAddrV6::new(ip, 9, 0, 0))));
    }
}
