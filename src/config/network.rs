//! Host addresses of the command line: those outbound sockets bind to (--outbound-addr,
//! --outbound-addr6), and where the SOCKS5 server listens (--socks5).

use super::CliError;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// An address given as itself or as the name of an interface: the first of the interface's
/// addresses that `pick` takes. `option` names the option in the error message.
fn address_or_interface<T: std::str::FromStr>(
    text: &str,
    option: &str,
    family: &str,
    pick: impl Fn(&nix::sys::socket::SockaddrStorage) -> Option<T>,
) -> Result<T, CliError> {
    if let Ok(addr) = text.parse::<T>() {
        return Ok(addr);
    }
    let invalid = || {
        CliError(format!(
            "{option} has to be valid {family} address or interface name: {text}"
        ))
    };
    let addrs = nix::ifaddrs::getifaddrs().map_err(|_| invalid())?;
    addrs
        .filter(|ifaddr| ifaddr.interface_name == text)
        .find_map(|ifaddr| ifaddr.address.as_ref().and_then(&pick))
        .ok_or_else(invalid)
}

/// `--outbound-addr`: an IPv4 address, or the name of an interface whose IPv4 address to use.
pub fn resolve_outbound_v4(text: &str) -> Result<Ipv4Addr, CliError> {
    address_or_interface(text, "outbound-addr", "ipv4", |addr| {
        addr.as_sockaddr_in().map(|v4| v4.ip())
    })
}

/// `--outbound-addr6`: an IPv6 address, or the name of an interface whose global IPv6 address
/// to use.
pub fn resolve_outbound_v6(text: &str) -> Result<Ipv6Addr, CliError> {
    address_or_interface(text, "outbound-addr6", "ipv6", |addr| {
        // A link-local source cannot reach anything beyond the link.
        addr.as_sockaddr_in6()
            .map(|v6| v6.ip())
            .filter(|ip| !ip.is_unicast_link_local())
    })
}

/// `[ADDR:]PORT` of --socks5: just a port listens on 127.0.0.1 (the guest's services are not
/// for the whole network unless asked).
pub(super) fn socks5_listen(arg: &str) -> Result<SocketAddr, String> {
    let invalid = || format!("--socks5 {arg:?}: expected [ADDR:]PORT");
    if let Ok(port) = arg.parse::<u16>() {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    arg.parse::<SocketAddr>().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_addr6_takes_an_address_or_an_interface() {
        assert_eq!(
            resolve_outbound_v6("2001:db8::5").unwrap(),
            "2001:db8::5".parse::<Ipv6Addr>().unwrap()
        );
        assert!(resolve_outbound_v6("nosuchif0")
            .unwrap_err()
            .0
            .starts_with("outbound-addr6 has to be valid ipv6 address or interface name"));
    }

    #[test]
    fn socks5_listen_addresses() {
        assert_eq!(socks5_listen("1080"), Ok("127.0.0.1:1080".parse().unwrap()));
        assert_eq!(
            socks5_listen("0.0.0.0:1080"),
            Ok("0.0.0.0:1080".parse().unwrap())
        );
        assert_eq!(socks5_listen("[::1]:9"), Ok("[::1]:9".parse().unwrap()));
        assert!(socks5_listen("localhost:1080").is_err());
        assert!(socks5_listen("70000").is_err());
    }
}
