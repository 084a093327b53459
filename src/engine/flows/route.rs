//! route - where a guest's destination really is on the host.
//!
//! - the gateway (network+2; with IPv6 also prefix::2 and fe80::2) is the host itself: host
//!   loopback (127.0.0.1, or ::1 for IPv6), unless --disable-host-loopback, in which case the
//!   guest is told the network is unreachable;
//! - the DNS address (network+3, prefix::3) port 53 is the host's resolver;
//! - loopback, unspecified, broadcast, multicast and link-local destinations, IPv4-mapped IPv6
//!   addresses (a way around the IPv4 rules), and other addresses of the virtual networks lead
//!   nowhere;
//! - everything else is itself.
//!
//! On pasta's network (the guest has the host's addresses, [`crate::engine::HostNetwork`]) only the
//! mapped addresses are special: those that stand for host loopback and for the host's own
//! address, and the DNS relay. The gateway and the rest of the link are real hosts; the guest's
//! own address leads nowhere.

use crate::engine::wire::key::Proto;
use crate::engine::Unreachable;
use crate::engine::{Core, DropReason, GuestPacket, TxQueue};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

pub(crate) const DNS_PORT: u16 = 53;

/// What to do with a new flow to a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Open a host socket to this address.
    Host(SocketAddr),
    /// Tell the guest the network is unreachable (ICMP; TCP connect fails with ENETUNREACH).
    NetUnreachable,
    /// Tell the guest nothing listens there (TCP RST, ICMP port unreachable).
    Closed,
    /// DropReason silently.
    Nowhere,
}

impl Core {
    pub(crate) fn route(&mut self, now: Instant, proto: Proto, dst: SocketAddr) -> Route {
        let ip = dst.ip();
        let loopback = match ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        if let Some(host) = &self.cx.cfg.host_network {
            if host.loopback.contains(&ip) {
                return Route::Host(SocketAddr::new(loopback, dst.port()));
            }
            if let Some(&(_, own)) = host.host_aliases.iter().find(|(alias, _)| *alias == ip) {
                return Route::Host(SocketAddr::new(own, dst.port()));
            }
        } else if self.cx.is_gateway(ip) {
            return if self.cx.cfg.host_loopback {
                Route::Host(SocketAddr::new(loopback, dst.port()))
            } else {
                Route::NetUnreachable
            };
        }
        if self.cx.is_dns(ip) {
            if proto == Proto::Icmp {
                return Route::Nowhere;
            }
            if dst.port() != DNS_PORT {
                return Route::Closed;
            }
            return match self.resolver.current(now) {
                Some(server) => Route::Host(SocketAddr::new(server, DNS_PORT)),
                None => Route::Closed,
            };
        }
        let nowhere = match self.cx.cfg.host_network {
            Some(_) => self.cx.is_guest_own(ip),
            None => self.cx.in_guest_network(ip),
        };
        if nowhere || !is_forwardable(ip) {
            return Route::Nowhere;
        }
        Route::Host(dst)
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
        remote: SocketAddr,
        tx: &mut TxQueue,
    ) -> Result<Option<SocketAddr>, DropReason> {
        match core.route(now, proto, remote) {
            Route::Host(dst) => Ok(Some(dst)),
            Route::NetUnreachable => {
                self.unreachable(&mut core.cx, tx, Unreachable::Net)?;
                Err(DropReason::Refused)
            }
            Route::Closed => Ok(None),
            Route::Nowhere => Err(DropReason::Refused),
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
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
                || v6.to_ipv4_mapped().is_some())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::engine;

    fn route(loopback: bool, dns: Vec<IpAddr>, proto: Proto, dst: [u8; 4], port: u16) -> Route {
        route_to(loopback, dns, proto, Ipv4Addr::from(dst).into(), port)
    }

    fn route_to(loopback: bool, dns: Vec<IpAddr>, proto: Proto, dst: IpAddr, port: u16) -> Route {
        let mut e = engine();
        e.core.cx.cfg.ipv6 = Some(Default::default());
        e.core.cx.cfg.host_loopback = loopback;
        e.core.resolver =
            crate::engine::flows::dns::Resolver::new(dns, vec![], "/nonexistent".into());
        e.core
            .route(Instant::now(), proto, SocketAddr::new(dst, port))
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

    /// pasta's network as podman asks for it: the guest has the host's 192.0.2.10/24 and
    /// 2001:db8::10/64, router 192.0.2.254 and fe80::1; DNS at 169.254.1.1; 169.254.1.2 stands
    /// for the host's own address; --no-map-gw, so nothing stands for host loopback.
    fn host_network_engine(loopback: Vec<IpAddr>) -> crate::engine::Engine {
        let v4 = |text: &str| text.parse::<Ipv4Addr>().unwrap();
        let v6 = |text: &str| text.parse::<Ipv6Addr>().unwrap();
        let mut e = engine();
        e.core.cx.cfg.net = crate::engine::Ipv4Network::with_hosts(
            v4("192.0.2.10"),
            24,
            v4("192.0.2.254"),
            v4("169.254.1.1"),
        );
        e.core.cx.cfg.ipv6 = Some(crate::engine::Ipv6Prefix::with_hosts(
            v6("2001:db8::10"),
            64,
            v6("fe80::1"),
            None,
        ));
        e.core.cx.cfg.host_network = Some(crate::engine::HostNetwork {
            loopback,
            host_aliases: vec![(v4("169.254.1.2").into(), v4("192.0.2.10").into())],
        });
        let server: IpAddr = "198.51.100.53".parse().unwrap();
        e.core.resolver =
            crate::engine::flows::dns::Resolver::new(vec![server], vec![], "/x".into());
        e
    }

    #[test]
    fn on_pasta_network_the_link_and_gateway_are_real_and_mapped_addresses_are_not() {
        let mut e = host_network_engine(vec![]);
        let mut route = |dst: &str| {
            e.core
                .route(Instant::now(), Proto::Tcp, dst.parse().unwrap())
        };
        let host = |dst: &str| Route::Host(dst.parse().unwrap());
        assert_eq!(route("192.0.2.254:80"), host("192.0.2.254:80"));
        assert_eq!(route("192.0.2.77:80"), host("192.0.2.77:80"));
        assert_eq!(route("[2001:db8::77]:80"), host("[2001:db8::77]:80"));
        assert_eq!(route("169.254.1.2:8080"), host("192.0.2.10:8080"));
        assert_eq!(route("169.254.1.1:53"), host("198.51.100.53:53"));
        assert_eq!(route("169.254.1.1:80"), Route::Closed);
        assert_eq!(route("192.0.2.10:80"), Route::Nowhere);
        assert_eq!(route("127.0.0.1:80"), Route::Nowhere);

        let mut e = host_network_engine(vec!["192.0.2.254".parse().unwrap()]);
        assert_eq!(
            e.core.route(
                Instant::now(),
                Proto::Tcp,
                "192.0.2.254:80".parse().unwrap()
            ),
            host("127.0.0.1:80")
        );
    }

    #[test]
    fn on_pasta_network_every_neighbour_but_the_guest_is_answered_for() {
        let e = host_network_engine(vec![]);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        for answered in [
            "192.0.2.254",
            "192.0.2.77",
            "169.254.1.1",
            "fe80::1",
            "2001:db8::5",
        ] {
            assert!(e.core.stands_for(ip(answered)), "{answered}");
        }
        for unanswered in [
            "192.0.2.10",
            "2001:db8::10",
            "0.0.0.0",
            "224.0.0.1",
            "ff02::1",
        ] {
            assert!(!e.core.stands_for(ip(unanswered)), "{unanswered}");
        }
        // A host-side client with the host's own address (which the guest has too) is shown as
        // the address that stands for the host.
        assert_eq!(
            e.core.cx.stand_in_for_host(ip("192.0.2.10")),
            ip("169.254.1.2")
        );
    }

    #[test]
    fn ipv6_destinations() {
        let v6 = |text: &str| text.parse::<IpAddr>().unwrap();
        for gateway in ["fd00::2", "fe80::2"] {
            assert_eq!(
                route_to(true, vec![], Proto::Tcp, v6(gateway), 80),
                Route::Host("[::1]:80".parse().unwrap()),
                "{gateway}"
            );
            assert_eq!(
                route_to(false, vec![], Proto::Tcp, v6(gateway), 80),
                Route::NetUnreachable
            );
        }
        assert_eq!(
            route_to(
                true,
                vec![v6("2001:db8::53")],
                Proto::Udp,
                v6("fd00::3"),
                53
            ),
            Route::Host("[2001:db8::53]:53".parse().unwrap())
        );
        for nowhere in [
            "::1",
            "::",
            "ff02::1",
            "fe80::1",
            "fd00::77",
            "::ffff:127.0.0.1",
            "::ffff:192.0.2.1",
        ] {
            assert_eq!(
                route_to(true, vec![], Proto::Tcp, v6(nowhere), 80),
                Route::Nowhere,
                "{nowhere}"
            );
        }
        assert_eq!(
            route_to(true, vec![], Proto::Tcp, v6("2001:db8::1"), 80),
            Route::Host("[2001:db8::1]:80".parse().unwrap())
        );
    }
}
