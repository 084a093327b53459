//! The guest's networks: slirp4netns's virtual ones (`--cidr`, `--cidr6`, hosts at fixed
//! offsets) or hosts given one by one (pasta's copy of the host's network). Parsed with
//! slirp4netns's checks and messages.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a network could not be parsed, in slirp4netns's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkError(pub String);

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NetworkError {}

const GATEWAY_OFFSET: u32 = 2;
const DNS_OFFSET: u32 = 3;
const DHCP_START_OFFSET: u32 = 15;
const GUEST_OFFSET: u32 = 100;
const PREFIX_MIN: u8 = 1;
// The guest's address is network+100, so a /26 or longer has no room for it.
const PREFIX_MAX: u8 = 25;

/// The IPv4 network the guest lives in, and the well-known hosts on it: slirp4netns's virtual
/// network (gateway network+2, DNS +3, guest +100), or pasta's copy of the host's own network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Network {
    network: Ipv4Addr,
    prefix_len: u8,
    gateway: Ipv4Addr,
    dns: Ipv4Addr,
    guest: Ipv4Addr,
    dhcp_start: Ipv4Addr,
}

impl Ipv4Network {
    /// Parses `a.b.c.d/n` with slirp4netns's checks and messages, in its order.
    pub fn parse_cidr(cidr: &str) -> Result<Self, NetworkError> {
        let invalid = || NetworkError(format!("invalid CIDR: {cidr}"));
        let (addr, prefix) = cidr.split_once('/').ok_or_else(invalid)?;
        let digits = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
        };
        let groups: Vec<&str> = addr.split('.').collect();
        if groups.len() != 4 || !groups.iter().all(|g| digits(g, 3)) || !digits(prefix, 2) {
            return Err(invalid());
        }
        let network: Ipv4Addr = addr
            .parse()
            .map_err(|_| NetworkError(format!("invalid network address: {addr}")))?;
        let prefix_len: u8 = prefix.parse().map_err(|_| invalid())?;
        if !(PREFIX_MIN..=PREFIX_MAX).contains(&prefix_len) {
            return Err(NetworkError(format!(
                "prefix length needs to be {PREFIX_MIN}-{PREFIX_MAX}"
            )));
        }
        if u32::from(network) & mask_bits(prefix_len) != u32::from(network) {
            return Err(NetworkError(
                "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24"
                    .into(),
            ));
        }
        Ok(Self::virtual_network(network, prefix_len))
    }

    /// slirp4netns's network: its hosts at fixed offsets from the network's address.
    fn virtual_network(network: Ipv4Addr, prefix_len: u8) -> Self {
        let host = |offset: u32| Ipv4Addr::from(u32::from(network) + offset);
        Ipv4Network {
            network,
            prefix_len,
            gateway: host(GATEWAY_OFFSET),
            dns: host(DNS_OFFSET),
            guest: host(GUEST_OFFSET),
            dhcp_start: host(DHCP_START_OFFSET),
        }
    }

    /// A network whose hosts are given: the guest at `guest`/`prefix_len` (any length, /32 too),
    /// its router at `gateway`, DNS at `dns` (which may lie outside the network, as pasta's
    /// --dns-forward 169.254.1.1 does). DHCP offers the guest its one address.
    pub fn with_hosts(guest: Ipv4Addr, prefix_len: u8, gateway: Ipv4Addr, dns: Ipv4Addr) -> Self {
        let prefix_len = prefix_len.min(32);
        Ipv4Network {
            network: Ipv4Addr::from(u32::from(guest) & mask_bits(prefix_len)),
            prefix_len,
            gateway,
            dns,
            guest,
            dhcp_start: guest,
        }
    }

    fn mask_bits(&self) -> u32 {
        mask_bits(self.prefix_len)
    }

    /// The network's own address (10.0.2.0).
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length (24).
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask (255.255.255.0).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The broadcast address (10.0.2.255).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask_bits())
    }

    /// The gateway (network+2, which stands for the host).
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The DNS relay (network+3).
    pub fn dns(&self) -> Ipv4Addr {
        self.dns
    }

    /// The first address handed out by DHCP (network+15).
    pub fn dhcp_start(&self) -> Ipv4Addr {
        self.dhcp_start
    }

    /// The address `--configure` gives the guest (network+100).
    pub fn guest(&self) -> Ipv4Addr {
        self.guest
    }

    /// Whether `addr` is the network's own address or its broadcast address, which no host
    /// of the network may have.
    pub fn is_network_or_broadcast(&self, addr: Ipv4Addr) -> bool {
        addr == self.network() || addr == self.broadcast()
    }

    /// Whether `addr` is in the network.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask_bits() == u32::from(self.network)
    }
}

fn mask_bits(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

impl Default for Ipv4Network {
    fn default() -> Self {
        Self::virtual_network(Ipv4Addr::new(10, 0, 2, 0), 24)
    }
}

impl fmt::Display for Ipv4Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// The guest's IPv6 network: slirp4netns's /64 (fd00::/64 unless --cidr6 moves it), on which
/// the guest picks its own address by SLAAC from our router advertisements; or pasta's copy of
/// the host's prefix, the guest's address given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Prefix {
    prefix: Ipv6Addr,
    len: u8,
    gateway: Ipv6Addr,
    dns: Option<Ipv6Addr>,
    guest: Option<Ipv6Addr>,
}

/// SLAAC needs a /64: the other half of the address is the interface identifier.
const IPV6_PREFIX_LEN: u8 = 64;

impl Ipv6Prefix {
    /// Parses `PREFIX/64`: a unicast network address (not link-local, loopback or multicast).
    pub fn parse(text: &str) -> Result<Self, NetworkError> {
        let invalid = || NetworkError(format!("invalid IPv6 CIDR: {text}"));
        let (addr, len) = text.split_once('/').ok_or_else(invalid)?;
        let prefix: Ipv6Addr = addr.parse().map_err(|_| invalid())?;
        if len.parse::<u8>().ok() != Some(IPV6_PREFIX_LEN) {
            return Err(NetworkError(format!(
                "IPv6 prefix length needs to be 64: {text}"
            )));
        }
        let bits = u128::from(prefix);
        if bits & u128::from(u64::MAX) != 0 {
            return Err(NetworkError(format!(
                "IPv6 CIDR needs to be a network address like fd00::/64, not like {text}"
            )));
        }
        if prefix.is_multicast()
            || prefix.is_unspecified()
            || prefix.is_loopback()
            || prefix.is_unicast_link_local()
            || prefix.to_ipv4_mapped().is_some()
        {
            return Err(NetworkError(format!(
                "IPv6 CIDR needs to be a unicast network: {text}"
            )));
        }
        Ok(Self::virtual_network(prefix))
    }

    /// slirp4netns's /64: gateway prefix::2, DNS prefix::3, the guest's address by SLAAC.
    fn virtual_network(prefix: Ipv6Addr) -> Self {
        let host = |offset: u32| Ipv6Addr::from(u128::from(prefix) | u128::from(offset));
        Ipv6Prefix {
            prefix,
            len: IPV6_PREFIX_LEN,
            gateway: host(GATEWAY_OFFSET),
            dns: Some(host(DNS_OFFSET)),
            guest: None,
        }
    }

    /// A network whose hosts are given (pasta's copy of the host's): the guest at
    /// `guest`/`len`, its router at `gateway` (often link-local), DNS at `dns` if any.
    pub fn with_hosts(guest: Ipv6Addr, len: u8, gateway: Ipv6Addr, dns: Option<Ipv6Addr>) -> Self {
        let len = len.min(128);
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        Ipv6Prefix {
            prefix: Ipv6Addr::from(u128::from(guest) & mask),
            len,
            gateway,
            dns,
            guest: Some(guest),
        }
    }

    /// The prefix, its interface bits zero.
    pub fn prefix(&self) -> Ipv6Addr {
        self.prefix
    }

    /// The prefix length (64 on slirp4netns's network: SLAAC needs it).
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The gateway (prefix::2, which stands for the host).
    pub fn gateway(&self) -> Ipv6Addr {
        self.gateway
    }

    /// The DNS relay (prefix::3), if there is one.
    pub fn dns(&self) -> Option<Ipv6Addr> {
        self.dns
    }

    /// The guest's address when it is given rather than picked by SLAAC.
    pub fn guest(&self) -> Option<Ipv6Addr> {
        self.guest
    }

    /// Whether `addr` is in the prefix.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.len))
            .unwrap_or(0);
        u128::from(addr) & mask == u128::from(self.prefix)
    }
}

impl Default for Ipv6Prefix {
    fn default() -> Self {
        Self::virtual_network(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0))
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.prefix, self.len)
    }
}

impl FromStr for Ipv4Network {
    type Err = NetworkError;

    /// `a.b.c.d/n`, as [`Ipv4Network::parse_cidr`].
    fn from_str(text: &str) -> Result<Self, NetworkError> {
        Self::parse_cidr(text)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = NetworkError;

    /// `PREFIX/64`, as [`Ipv6Prefix::parse`].
    fn from_str(text: &str) -> Result<Self, NetworkError> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_prefix() {
        let default = Ipv6Prefix::default();
        assert_eq!(default.to_string(), "fd00::/64");
        assert_eq!(default.gateway(), "fd00::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(default.dns(), "fd00::3".parse().ok());
        let moved = Ipv6Prefix::parse("2001:db8:1:2::/64").unwrap();
        assert_eq!(
            moved.gateway(),
            "2001:db8:1:2::2".parse::<Ipv6Addr>().unwrap()
        );
        assert!(moved.contains("2001:db8:1:2:5054:ff:fe12:3456".parse().unwrap()));
        assert!(!moved.contains("2001:db8:1:3::1".parse().unwrap()));
        for (bad, message) in [
            ("fd00::", "invalid IPv6 CIDR: fd00::"),
            ("fd00::/48", "IPv6 prefix length needs to be 64: fd00::/48"),
            ("10.0.2.0/64", "invalid IPv6 CIDR: 10.0.2.0/64"),
            (
                "fd00::1/64",
                "IPv6 CIDR needs to be a network address like fd00::/64, not like fd00::1/64",
            ),
            (
                "fe80::/64",
                "IPv6 CIDR needs to be a unicast network: fe80::/64",
            ),
            (
                "ff02::/64",
                "IPv6 CIDR needs to be a unicast network: ff02::/64",
            ),
        ] {
            assert_eq!(Ipv6Prefix::parse(bad).unwrap_err().0, message, "{bad}");
        }
    }
}
