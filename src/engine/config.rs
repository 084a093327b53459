//! What the engine is told: the guest's network, its limits and what it serves
//! ([`EngineConfig`]), and pasta's network model ([`HostNetwork`]).

use crate::engine::flows::fwd;
use crate::engine::network::{Ipv4Network, Ipv6Prefix};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

/// What the engine needs to know about the virtual network and its limits. Made with
/// [`EngineConfig::new`] (slirp4netns's defaults) and changed with the `with_*` methods or by
/// setting fields; more fields may come.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// The guest's IPv4 network (10.0.2.0/24 by default).
    pub net: Ipv4Network,
    /// The guest's IPv6 network; `None` leaves IPv6 off (its frames are dropped and counted).
    pub ipv6: Option<Ipv6Prefix>,
    /// The link's MTU: the largest IP packet either way (1500 by default).
    pub mtu: u32,
    /// Whether the DNS relay address exists (false with --disable-dns).
    pub dns_enabled: bool,
    /// Whether the gateway address reaches the host's loopback (false with
    /// --disable-host-loopback).
    pub host_loopback: bool,
    /// Resolvers to relay DNS to; empty means those of `resolv_conf`.
    pub dns_servers: Vec<IpAddr>,
    /// Where the host's resolvers and search domains are read from (/etc/resolv.conf; read
    /// again when it changes).
    pub resolv_conf: PathBuf,
    /// Source address for outbound IPv4 sockets (--outbound-addr).
    pub outbound_addr: Option<Ipv4Addr>,
    /// Source address for outbound IPv6 sockets (--outbound-addr6).
    pub outbound_addr6: Option<Ipv6Addr>,
    /// Most flows (TCP connections, UDP flows, echo flows) at once.
    pub max_flows: usize,
    /// Most bytes of guest TCP data all connections together hold out of order (beyond a lost
    /// segment, until it comes again) or for a host socket that is full.
    pub tcp_hold_memory: usize,
    /// Most bytes held for IP datagrams the guest sent in fragments, not whole yet.
    pub reassembly_memory: usize,
    /// How long a UDP or echo flow lives without traffic.
    pub udp_idle_timeout: Duration,
    /// Whether TCP sockets take SO_PEEK_OFF (probed once at start-up).
    pub tcp_peek_offset: bool,
    /// Whether the TAP takes offloaded frames: TCP data to the guest then goes in super-packets
    /// of up to 64 KiB with partial checksums, which the guest's kernel takes whole.
    pub tap_offload: bool,
    /// Whether the TAP also takes UDP super-datagrams (USO, Linux 6.2+): datagrams of a flow
    /// from the host then reach the guest several to a frame, which its kernel splits.
    pub tap_uso: bool,
    /// Whether this engine sends the unsolicited router advertisements (with several TAP
    /// queues, only the first one's does).
    pub router_adverts: bool,
    /// Whether port-forward clients on host loopback are handed over to the splice path
    /// (`Engine::take_splice_candidates`) instead of going through the TAP.
    pub splice_loopback: bool,
    /// Whether the DHCPv4 server answers (false with --disable-dhcp).
    pub dhcp: bool,
    /// The host name DHCP offers (--hostname).
    pub dhcp_hostname: Option<String>,
    /// Search domains for DHCP, router advertisements and DHCPv6 (--dns-search); empty means
    /// those of `resolv_conf`.
    pub dns_search: Vec<String>,
    /// The directory the TFTP server serves (--tftp-path); None: no TFTP server.
    pub tftp_root: Option<PathBuf>,
    /// The boot file DHCP names (--bootfile).
    pub dhcp_bootfile: Option<String>,
    /// A link without ARP or neighbour discovery (SLIP): the guest is always
    /// 02:00:00:00:00:01, and nothing is solicited or advertised.
    pub point_to_point: bool,
    /// pasta's model instead of slirp4netns's virtual network: the guest has the host's own
    /// addresses and its network is the host's real one (see `HostNetwork`).
    pub host_network: Option<HostNetwork>,
    /// Whether forwards listening on IPv6 take IPv6 only (pasta: each port's IPv4 listener is
    /// a forward of its own); otherwise `::` takes IPv4 clients too.
    pub forwards_v6_only: bool,
    /// Most port forwards at once (at most `MAX_FORWARDS_ANY`).
    pub max_forwards: usize,
    /// The protocols and services the guest is served; what is off is dropped as unsupported.
    pub served: Served,
}

/// What the engine serves the guest (pasta's --no-tcp, --no-udp, --no-icmp, --no-ndp,
/// --no-ra, --no-dhcpv6 turn parts off). Everything is on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Served {
    /// TCP connections from the guest.
    pub tcp: bool,
    /// UDP flows from the guest, the DNS relay among them.
    pub udp: bool,
    /// ICMP and ICMPv6 echo, to the virtual hosts and beyond.
    pub icmp_echo: bool,
    /// Answers to neighbour and router solicitations.
    pub ndp: bool,
    /// Router advertisements, solicited or not.
    pub router_adverts: bool,
    /// The DHCPv6 server.
    pub dhcpv6: bool,
}

impl Default for Served {
    fn default() -> Self {
        Served {
            tcp: true,
            udp: true,
            icmp_echo: true,
            ndp: true,
            router_adverts: true,
            dhcpv6: true,
        }
    }
}

/// pasta's model of the guest's network. The guest takes the host's addresses, prefix and
/// gateway, so every other address, on the link or beyond, is a real host reached through a
/// host socket (the engine answers ARP and neighbour solicitations for all of them); a few
/// addresses are mapped instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNetwork {
    /// Addresses that stand for the host's loopback (pasta's --map-host-loopback; the gateway
    /// unless --no-map-gw).
    pub loopback: Vec<IpAddr>,
    /// Addresses that stand for the host's own address (--map-guest-addr), each with the
    /// address it stands for.
    pub host_aliases: Vec<(IpAddr, IpAddr)>,
}

impl EngineConfig {
    /// The defaults slirp4netns users expect, for the network `net`.
    pub fn new(net: Ipv4Network) -> Self {
        EngineConfig {
            net,
            ipv6: None,
            mtu: 1500,
            dns_enabled: true,
            host_loopback: true,
            dns_servers: Vec::new(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            outbound_addr: None,
            outbound_addr6: None,
            max_flows: 65536,
            tcp_hold_memory: 64 << 20,
            reassembly_memory: 4 << 20,
            udp_idle_timeout: Duration::from_secs(180),
            tcp_peek_offset: false,
            tap_offload: false,
            tap_uso: false,
            router_adverts: true,
            splice_loopback: false,
            dhcp: true,
            dhcp_hostname: None,
            dns_search: Vec::new(),
            tftp_root: None,
            point_to_point: false,
            dhcp_bootfile: None,
            host_network: None,
            forwards_v6_only: false,
            max_forwards: fwd::MAX_FORWARDS,
            served: Served::default(),
        }
    }

    /// With IPv6 on `prefix` (off by default).
    pub fn with_ipv6(mut self, prefix: Ipv6Prefix) -> Self {
        self.ipv6 = Some(prefix);
        self
    }

    /// With the link's MTU (1500 by default).
    pub fn with_mtu(mut self, mtu: u32) -> Self {
        self.mtu = mtu;
        self
    }

    /// With at most `max` flows at once.
    pub fn with_max_flows(mut self, max: usize) -> Self {
        self.max_flows = max;
        self
    }

    /// With DNS relayed to `servers` instead of those of [`EngineConfig::resolv_conf`].
    pub fn with_dns_servers(mut self, servers: Vec<IpAddr>) -> Self {
        self.dns_servers = servers;
        self
    }

    /// With what the guest is served (all of it by default).
    pub fn with_served(mut self, served: Served) -> Self {
        self.served = served;
        self
    }
}
