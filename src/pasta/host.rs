//! What pasta copies from the host at start: the interface of the default route, its address
//! and prefix, and the gateway, for IPv4 and IPv6 (read from /proc/net of the namespace
//! slirp-ns starts in, which is the host's).

use std::net::{Ipv4Addr, Ipv6Addr};

/// The host's side of one IP family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFamily<A> {
    pub interface: String,
    pub address: A,
    pub prefix_len: u8,
    pub gateway: A,
}

/// The IPv4 default route with the lowest metric (of `interface` when given), with the first
/// IPv4 address of its interface.
pub fn ipv4(interface: Option<&str>) -> Option<HostFamily<Ipv4Addr>> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    let (ifname, gateway) = default_route_v4(&routes, interface)?;
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let (address, prefix_len) = addrs.filter(|a| a.interface_name == ifname).find_map(|a| {
        let address = a.address?.as_sockaddr_in()?.ip();
        let mask = a.netmask?.as_sockaddr_in()?.ip();
        Some((address, u32::from(mask).leading_ones() as u8))
    })?;
    Some(HostFamily {
        interface: ifname,
        address,
        prefix_len,
        gateway,
    })
}

/// The IPv6 default route with the lowest metric (of `interface` when given), with the first
/// global IPv6 address of its interface.
pub fn ipv6(interface: Option<&str>) -> Option<HostFamily<Ipv6Addr>> {
    let routes = std::fs::read_to_string("/proc/net/ipv6_route").ok()?;
    let (ifname, gateway) = default_route_v6(&routes, interface)?;
    let addrs = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
    let (address, prefix_len) = global_address_v6(&addrs, &ifname)?;
    Some(HostFamily {
        interface: ifname,
        address,
        prefix_len,
        gateway,
    })
}

/// From /proc/net/route: `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`, the
/// addresses in host byte order as hex.
fn default_route_v4(table: &str, interface: Option<&str>) -> Option<(String, Ipv4Addr)> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let hex = |i: usize| u32::from_str_radix(f.get(i)?, 16).ok();
            let (dest, gateway, flags, metric, mask) =
                (hex(1)?, hex(2)?, hex(3)?, f.get(6)?, hex(7)?);
            let metric: u32 = metric.parse().ok()?;
            let wanted = dest == 0
                && mask == 0
                && flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY
                && interface.is_none_or(|name| name == f[0]);
            // The file has the address as the kernel holds it: network order read as a native
            // (little-endian on every platform Linux reports this way) integer.
            wanted.then(|| {
                (
                    metric,
                    f[0].to_string(),
                    Ipv4Addr::from(u32::from_be(gateway)),
                )
            })
        })
        .min_by_key(|(metric, ..)| *metric)
        .map(|(_, name, gateway)| (name, gateway))
}

/// From /proc/net/ipv6_route: `dest dest_len src src_len next_hop metric refcnt use flags
/// iface`, addresses as 32 hex digits.
fn default_route_v6(table: &str, interface: Option<&str>) -> Option<(String, Ipv6Addr)> {
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = |i: usize| u128::from_str_radix(f.get(i)?, 16).ok().map(Ipv6Addr::from);
            let (dest, dest_len, next_hop) = (addr(0)?, f.get(1)?, addr(4)?);
            let metric = u32::from_str_radix(f.get(5)?, 16).ok()?;
            let name = f.get(9)?;
            let wanted = dest.is_unspecified()
                && *dest_len == "00"
                && !next_hop.is_unspecified()
                && *name != "lo"
                && interface.is_none_or(|wanted| wanted == *name);
            wanted.then(|| (metric, name.to_string(), next_hop))
        })
        .min_by_key(|(metric, ..)| *metric)
        .map(|(_, name, gateway)| (name, gateway))
}

/// From /proc/net/if_inet6: `address ifindex prefix_len scope flags name`; the first address
/// of global scope that is neither tentative nor deprecated nor failed DAD.
fn global_address_v6(table: &str, interface: &str) -> Option<(Ipv6Addr, u8)> {
    const IFA_F_DADFAILED: u32 = 0x08;
    const IFA_F_DEPRECATED: u32 = 0x20;
    const IFA_F_TENTATIVE: u32 = 0x40;
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let address = Ipv6Addr::from(u128::from_str_radix(f.first()?, 16).ok()?);
        let prefix_len = u8::from_str_radix(f.get(2)?, 16).ok()?;
        let scope = u32::from_str_radix(f.get(3)?, 16).ok()?;
        let flags = u32::from_str_radix(f.get(4)?, 16).ok()?;
        let usable = flags & (IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE) == 0;
        (*f.get(5)? == interface && scope == 0 && usable).then_some((address, prefix_len))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv4_default_route_with_the_lowest_metric() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t00000000\tFE6400CB\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
            eth0\t00000000\tFE0200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\tFFFFFF00\t0\t0\t0\n";
        assert_eq!(
            default_route_v4(table, None),
            Some(("eth0".into(), Ipv4Addr::new(192, 0, 2, 254)))
        );
        assert_eq!(
            default_route_v4(table, Some("eth1")),
            Some(("eth1".into(), Ipv4Addr::new(203, 0, 100, 254)))
        );
        assert_eq!(default_route_v4(table, Some("eth9")), None);
    }

    #[test]
    fn the_ipv6_default_route_and_a_usable_global_address() {
        let routes = "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
            00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n\
            00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        assert_eq!(
            default_route_v6(routes, None),
            Some(("eth0".into(), "fe80::1".parse().unwrap()))
        );
        let addrs = "fe800000000000000000000000000010 02 40 20 80     eth0\n\
            20010db8000000000000000000000011 02 40 00 40     eth0\n\
            20010db8000000000000000000000010 02 40 00 80     eth0\n";
        assert_eq!(
            global_address_v6(addrs, "eth0"),
            Some(("2001:db8::10".parse().unwrap(), 64))
        );
    }
}
