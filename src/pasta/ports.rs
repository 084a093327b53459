//! pasta's port specifications (`-t`, `-u`, `-T`, `-U`):
//! `none`, or `[ADDR[%IF]/]ENTRY[,ENTRY]...` where an entry is
//! `FIRST[-LAST][:[TOADDR/]TOFIRST[-TOLAST]]`, `FIRST[-LAST]:TOADDR`, `~FIRST[-LAST]` (excluded),
//! `all[:TOADDR]` or `auto`.

use std::net::IpAddr;
use std::ops::RangeInclusive;

/// One host port forwarded to one guest port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMap {
    pub host: u16,
    pub guest: u16,
    /// Where in the guest (`None`: the guest's own address).
    pub to_addr: Option<IpAddr>,
}

/// What one `-t`/`-u`/`-T`/`-U` option asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSpec {
    /// The address to listen on (`None`: every address of the families in use).
    pub listen: Option<IpAddr>,
    /// The interface to bind the listeners to.
    pub interface: Option<String>,
    /// The ports, excluded ranges already taken out.
    pub maps: Vec<PortMap>,
    /// `auto`: forward those of the ports (all, when no range is given) that the other side
    /// listens on, rescanned every second.
    pub auto: bool,
    /// `all`, or only excluded ranges: every non-ephemeral port not excluded.
    pub all: bool,
    /// Ranges `all` and `auto` leave out.
    pub excluded: Vec<RangeInclusive<u16>>,
    /// Where `all:TOADDR` sends the ports.
    pub all_to: Option<IpAddr>,
}

/// Parses one option's value; `None` for `none`.
pub fn parse(text: &str) -> Result<Option<PortSpec>, String> {
    let bad = |why: &str| format!("Invalid port specifier {text}: {why}");
    if text == "none" {
        return Ok(None);
    }
    let mut spec = PortSpec::default();
    let mut ports = text;
    // An address and interface before the first '/' that precedes every ':' (a mapped address
    // after ':' has its own '/').
    if let Some((head, tail)) = text.split_once('/') {
        if !head.contains(':') || head.parse::<IpAddr>().is_ok() || head.contains('%') {
            let (addr, interface) = match head.split_once('%') {
                Some((addr, interface)) => (addr, Some(interface)),
                None => (head, None),
            };
            if !addr.is_empty() {
                spec.listen = Some(addr.parse().map_err(|_| bad("bad address"))?);
            }
            if let Some(interface) = interface {
                if interface.is_empty() || interface.len() > 15 {
                    return Err(bad("bad interface name"));
                }
                spec.interface = Some(interface.to_string());
            }
            ports = tail;
        }
    }
    let mut included = Vec::new();
    for entry in ports.split(',') {
        if let Some(range) = entry.strip_prefix('~') {
            spec.excluded
                .push(port_range(range).ok_or_else(|| bad("bad excluded range"))?);
        } else if entry == "auto" {
            spec.auto = true;
        } else if let Some(rest) = entry.strip_prefix("all") {
            if !(rest.is_empty() || rest.starts_with(':')) {
                return Err(bad("bad entry"));
            }
            spec.all = true;
            if let Some(addr) = rest.strip_prefix(':') {
                spec.all_to = Some(addr.parse().map_err(|_| bad("bad target address"))?);
            }
        } else {
            let (from, to) = match entry.split_once(':') {
                Some((from, to)) => (from, Some(to)),
                None => (entry, None),
            };
            let from = port_range(from).ok_or_else(|| bad("bad port range"))?;
            let (to_addr, to_ports) = match to {
                None => (None, None),
                Some(to) => match to.rsplit_once('/') {
                    Some((addr, ports)) => {
                        let addr = addr.parse().map_err(|_| bad("bad target address"))?;
                        (
                            Some(addr),
                            Some(port_range(ports).ok_or_else(|| bad("bad range"))?),
                        )
                    }
                    None => match port_range(to) {
                        Some(range) => (None, Some(range)),
                        None => (Some(to.parse().map_err(|_| bad("bad target"))?), None),
                    },
                },
            };
            if let Some(to_ports) = &to_ports {
                if to_ports.end() - to_ports.start() != from.end() - from.start() {
                    return Err(bad("mismatched port ranges"));
                }
            }
            included.push((from, to_ports, to_addr));
        }
    }
    if included.is_empty() && !spec.auto {
        // Only exclusions (or `all`): every other port.
        spec.all = true;
    }
    for (from, to_ports, to_addr) in included {
        for host in from.clone() {
            if spec.excluded.iter().any(|range| range.contains(&host)) {
                continue;
            }
            let guest = match &to_ports {
                Some(to) => to.start() + (host - from.start()),
                None => host,
            };
            spec.maps.push(PortMap {
                host,
                guest,
                to_addr,
            });
        }
    }
    Ok(Some(spec))
}

/// `FIRST[-LAST]`, ports 1 to 65535, FIRST <= LAST.
fn port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let port = |s: &str| s.parse::<u16>().ok().filter(|&p| p > 0);
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (port(first)?, port(last)?),
        None => (port(text)?, port(text)?),
    };
    (first <= last).then_some(first..=last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(text: &str) -> Vec<(u16, u16)> {
        parse(text)
            .unwrap()
            .unwrap()
            .maps
            .iter()
            .map(|m| (m.host, m.guest))
            .collect()
    }

    #[test]
    fn ranges_and_mappings() {
        assert_eq!(maps("22"), [(22, 22)]);
        assert_eq!(maps("22:23"), [(22, 23)]);
        assert_eq!(maps("22,25"), [(22, 22), (25, 25)]);
        assert_eq!(
            maps("8080-8082:80-82"),
            [(8080, 80), (8081, 81), (8082, 82)]
        );
        assert_eq!(
            maps("20-26,~22-24"),
            [(20, 20), (21, 21), (25, 25), (26, 26)]
        );
        assert!(parse("none").unwrap().is_none());
    }

    #[test]
    fn addresses_and_interfaces() {
        let spec = parse("192.0.2.1/22").unwrap().unwrap();
        assert_eq!(spec.listen, "192.0.2.1".parse().ok());
        assert_eq!(maps("192.0.2.1/22"), [(22, 22)]);
        let spec = parse("2001:db8::1/8080:80").unwrap().unwrap();
        assert_eq!(spec.listen, "2001:db8::1".parse().ok());
        assert_eq!(spec.maps[0].guest, 80);
        let spec = parse("192.0.2.1%eth0/22").unwrap().unwrap();
        assert_eq!(spec.interface.as_deref(), Some("eth0"));
        let spec = parse("%eth0/22").unwrap().unwrap();
        assert_eq!(
            (spec.listen, spec.interface.as_deref()),
            (None, Some("eth0"))
        );
        let spec = parse("0.0.0.0/5000:192.0.2.5/6000").unwrap().unwrap();
        assert_eq!(spec.listen, "0.0.0.0".parse().ok());
        assert_eq!(
            spec.maps,
            [PortMap {
                host: 5000,
                guest: 6000,
                to_addr: "192.0.2.5".parse().ok()
            }]
        );
    }

    #[test]
    fn auto_all_and_exclusions() {
        let spec = parse("auto").unwrap().unwrap();
        assert!(spec.auto && !spec.all && spec.maps.is_empty());
        let spec = parse("8000-8001,auto").unwrap().unwrap();
        assert!(spec.auto && spec.maps.len() == 2);
        let spec = parse("~20000-20010").unwrap().unwrap();
        assert!(spec.all && spec.excluded == [20000..=20010]);
        assert!(parse("all").unwrap().unwrap().all);
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in [
            "0",
            "70000",
            "80-70",
            "80-81:90",
            "x",
            "192.0.2.300/80",
            "80:",
            "alll",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
