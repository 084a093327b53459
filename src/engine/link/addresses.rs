//! addresses - what the guest's addresses are to the engine: its virtual hosts (gateway, DNS
//! relay), the addresses it answers ARP and neighbour solicitations for, the guest's own, and
//! the stand-ins it shows for host-side peers. slirp4netns's virtual network and pasta's copy
//! of the host's network ([`crate::engine::HostNetwork`]) differ here, and only here and in routing.

use crate::engine::{link::ndp, Core, Cx};
use std::net::IpAddr;

impl Cx {
    /// Whether `addr` is one of the virtual hosts the engine answers for itself: the gateway
    /// and the DNS relay; on pasta's network the DNS relay and what stands for host loopback
    /// (the gateway there may be a real router).
    pub fn is_virtual_host(&self, addr: IpAddr) -> bool {
        match &self.cfg.host_network {
            Some(host) => host.loopback.contains(&addr) || self.is_dns(addr),
            None => self.is_gateway(addr) || self.is_dns(addr),
        }
    }

    /// Whether `addr` is the address the guest was given (pasta's network: the host's own).
    pub(crate) fn is_guest_own(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => v4 == self.cfg.net.guest(),
            IpAddr::V6(v6) => self.cfg.ipv6.is_some_and(|p| p.guest() == Some(v6)),
        }
    }

    /// Whether `addr` is the gateway (IPv4, or IPv6 global or link-local).
    pub fn is_gateway(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => v4 == self.cfg.net.gateway(),
            IpAddr::V6(v6) => self
                .cfg
                .ipv6
                .is_some_and(|p| v6 == p.gateway() || v6 == ndp::ROUTER_LINK_LOCAL),
        }
    }

    /// Whether `addr` is the DNS relay (and it is on).
    pub fn is_dns(&self, addr: IpAddr) -> bool {
        self.cfg.dns_enabled && self.is_dns_address(addr)
    }

    /// Whether `addr` is the DNS relay's address, whether the relay is on or not.
    fn is_dns_address(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => v4 == self.cfg.net.dns(),
            IpAddr::V6(v6) => self.cfg.ipv6.is_some_and(|p| p.dns() == Some(v6)),
        }
    }

    /// Whether `addr` belongs to the virtual network (IPv4 or IPv6) the guest is on.
    pub fn in_guest_network(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => self.cfg.net.contains(v4),
            IpAddr::V6(v6) => self.cfg.ipv6.is_some_and(|p| p.contains(v6)),
        }
    }

    /// What the guest sees as the source of a host-side client it could not answer directly
    /// (on host loopback, the host's own address, or the other IP family): the gateway, or on
    /// pasta's network the address that stands for the host's loopback or own address.
    pub(crate) fn stand_in_for_host(&self, like: IpAddr) -> IpAddr {
        let same_family = |addr: &&IpAddr| addr.is_ipv4() == like.is_ipv4();
        self.cfg
            .host_network
            .as_ref()
            .and_then(|host| {
                let mut aliases = host.host_aliases.iter().map(|(alias, _)| alias);
                let alias = aliases.find(same_family);
                alias
                    .or_else(|| host.loopback.iter().find(same_family))
                    .copied()
            })
            .unwrap_or_else(|| self.gateway_like(like))
    }

    /// The gateway's address in the family of `like`.
    pub fn gateway_like(&self, like: IpAddr) -> IpAddr {
        match (like, self.cfg.ipv6) {
            (IpAddr::V6(_), Some(prefix)) => IpAddr::V6(prefix.gateway()),
            _ => IpAddr::V4(self.cfg.net.gateway()),
        }
    }

    /// The address outbound sockets to `dst` bind to (--outbound-addr, --outbound-addr6).
    pub fn outbound_source(&self, dst: IpAddr) -> Option<IpAddr> {
        match dst {
            IpAddr::V4(_) => self.cfg.outbound_addr.map(IpAddr::V4),
            IpAddr::V6(_) => self.cfg.outbound_addr6.map(IpAddr::V6),
        }
    }
}

impl Core {
    /// Whether the engine answers ARP (and neighbour solicitations) for `addr`: a virtual
    /// host's, or a virtual listener's or endpoint's. The DNS address is answered for even with
    /// --disable-dns, as by slirp4netns, so that what the guest sends there is lost quietly
    /// (a connection times out) rather than unroutable. On pasta's network every unicast
    /// address but the guest's own is answered for: all of them are reached through us.
    pub(crate) fn stands_for(&self, addr: IpAddr) -> bool {
        if self.cx.cfg.host_network.is_some() {
            let unicast = match addr {
                IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()),
                IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
            };
            return unicast && !self.cx.is_guest_own(addr);
        }
        self.cx.is_virtual_host(addr)
            || self.cx.is_dns_address(addr)
            || self.virtuals.has_address(addr)
    }
}
