//! route - where a guest's destination really is on the host.
//!
//! - the gateway (network+2) is the host itself: host loopback (127.0.0.1), unless
//!   --disable-host-loopback, in which case the guest is told the network is unreachable;
//! - the DNS address (network+3) port 53 is the host's resolver;
//! - loopback, unspecified, broadcast and multicast destinations, and other addresses of the
//!   virtual network, lead nowhere;
//! - everything else is itself.

use super::flow::Proto;
use super::{Core, Drop, GuestPacket, TxQueue};
use smoltcp::wire::Icmpv4DstUnreachable;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

const DNS_PORT: u16 = 53;

/// What to do with a new flow to a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Open a host socket to this address.
    Host(SocketAddr),
    /// Tell the guest the network is unreachable (ICMP; TCP connect fails with ENETUNREACH).
    NetUnreachable,
    /// Tell the guest nothing listens there (TCP RST, ICMP port unreachable).
    Closed,
    /// Drop silently.
    Nowhere,
}

impl Core {
    pub(crate) fn route(&mut self, now: Instant, proto: Proto, dst: SocketAddrV4) -> Route {
        let net = self.cfg.net;
        let ip = *dst.ip();
        if ip == net.gateway() {
            return if self.cfg.host_loopback {
                Route::Host(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), dst.port()))
            } else {
                Route::NetUnreachable
            };
        }
        if ip == net.dns() && self.cfg.dns_enabled {
            if proto == Proto::Icmp {
                return Route::Nowhere;
            }
            if dst.port() != DNS_PORT {
                return Route::Closed;
            }
            return match self.resolver.servers(now).first() {
                Some(server) => Route::Host(SocketAddr::new(*server, DNS_PORT)),
                None => Route::Closed,
            };
        }
        if net.contains(ip) || !is_forwardable(IpAddr::V4(ip)) {
            return Route::Nowhere;
        }
        Route::Host(SocketAddr::V4(dst))
    }
}

impl GuestPacket<'_> {
    /// Where a new flow for this packet to `remote` goes on the host. A network the guest may
    /// not reach is reported to it here (ICMP); `Ok(None)` is a destination where nothing
    /// listens, which each protocol answers in its own way.
    pub(crate) fn route_new_flow(
        &self,
        core: &mut Core,
        now: Instant,
        proto: Proto,
        remote: SocketAddrV4,
        tx: &mut TxQueue,
    ) -> Result<Option<SocketAddr>, Drop> {
        match core.route(now, proto, remote) {
            Route::Host(dst) => Ok(Some(dst)),
            Route::NetUnreachable => {
                self.unreachable(core, tx, Icmpv4DstUnreachable::NetUnreachable)?;
                Err(Drop::Refused)
            }
            Route::Closed => Ok(None),
            Route::Nowhere => Err(Drop::Refused),
        }
    }
}

/// Whether packets to `ip` may leave through a host socket at all.
pub fn is_forwardable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 0)
        }
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::engine;

    fn route(loopback: bool, dns: Vec<IpAddr>, proto: Proto, dst: [u8; 4], port: u16) -> Route {
        let mut e = engine();
        e.core.cfg.host_loopback = loopback;
        e.core.resolver = crate::engine::dns::Resolver::new(dns, "/nonexistent".into());
        e.core
            .route(Instant::now(), proto, SocketAddrV4::new(dst.into(), port))
    }

    #[test]
    fn gateway_is_host_loopback_unless_disabled() {
        assert_eq!(
            route(true, vec![], Proto::Tcp, [10, 0, 2, 2], 8080),
            Route::Host("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            route(false, vec![], Proto::Tcp, [10, 0, 2, 2], 8080),
            Route::NetUnreachable
        );
    }

    #[test]
    fn dns_address_is_the_resolver_on_port_53_only() {
        let server: IpAddr = "192.0.2.53".parse().unwrap();
        assert_eq!(
            route(true, vec![server], Proto::Udp, [10, 0, 2, 3], 53),
            Route::Host("192.0.2.53:53".parse().unwrap())
        );
        assert_eq!(
            route(true, vec![server], Proto::Tcp, [10, 0, 2, 3], 80),
            Route::Closed
        );
        assert_eq!(
            route(true, vec![], Proto::Udp, [10, 0, 2, 3], 53),
            Route::Closed
        );
    }

    #[test]
    fn nowhere_destinations() {
        for dst in [
            [127, 0, 0, 1],
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [224, 0, 0, 1],
            [10, 0, 2, 77],
        ] {
            assert_eq!(
                route(true, vec![], Proto::Udp, dst, 9),
                Route::Nowhere,
                "{dst:?}"
            );
        }
        assert_eq!(
            route(true, vec![], Proto::Udp, [198, 51, 100, 7], 9),
            Route::Host("198.51.100.7:9".parse().unwrap())
        );
    }
}
