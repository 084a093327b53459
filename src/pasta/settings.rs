//! From pasta's command line to a run of slirp-ns: the namespace to join, the addresses copied
//! from the host (or given), the mapped addresses, and the ports.

use super::cli::PastaCli;
use super::{host, ports};
use crate::config::{parse_mac, Config, Ipv4Network, Ipv6Prefix, Target};
use crate::confine::ns::watch::QuitWhen;
use crate::engine::flows::fwd::{ForwardProto, ForwardSpec};
use crate::engine::{HostNetwork, Served};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

/// pasta's default MTU (and its largest).
const PASTA_MTU: u32 = 65520;
/// The name the interface gets when the host has no default route to copy it from.
const FALLBACK_IFNAME: &str = "tap0";
/// Where `--netns NAME` looks, as `ip netns` keeps them.
const NAMED_NETNS_DIR: &str = "/run/netns";

/// What pasta's command line adds to a run.
#[derive(Debug, Clone)]
pub struct PastaRun {
    /// The mapped addresses of pasta's network.
    pub host_network: HostNetwork,
    /// Whether the namespace gets IPv4 (not with --ipv6-only).
    pub ipv4: bool,
    /// Where our PID goes once running (--pid).
    pub pid_file: Option<PathBuf>,
    /// What ends the run besides signals (none with --no-netns-quit).
    pub quit_when: Option<QuitWhen>,
    /// Running in the background: at ready, stdio goes to /dev/null, stderr to this log file
    /// when one is given.
    pub background: Option<Option<PathBuf>>,
    /// Loopback clients of forwarded ports arrive from the namespace's loopback
    /// (--host-lo-to-ns-lo) instead of from its address.
    pub splice_to_loopback: bool,
    /// `-t auto`, `-u auto`: ports forwarded while the namespace listens on them.
    pub auto: Vec<super::auto::AutoSpec>,
    /// -T: (port on the namespace's 127.0.0.1, port on the host's) pairs.
    pub tcp_ns: Vec<(u16, u16)>,
    /// -U: the same for UDP.
    pub udp_ns: Vec<(u16, u16)>,
    /// `-T auto`, `-U auto` (and `all`): host ports offered in the namespace while listened on.
    pub auto_to_host: Vec<super::auto::AutoSpec>,
    /// `-t all`, `-u all`: every non-ephemeral port.
    pub all: Vec<super::auto::AllSpec>,
    /// What the guest is served (--no-tcp, --no-udp, --no-icmp, --no-ndp, --no-ra,
    /// --no-dhcpv6).
    pub served: Served,
    /// The user and group to run as once everything is set up (--runas; root in the initial
    /// user namespace runs as nobody).
    pub run_as: Option<super::user::RunAs>,
}

fn addresses(
    values: &[String],
    what: &str,
) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), String> {
    let (mut v4, mut v6) = (None, None);
    for value in values {
        match value.parse::<IpAddr>() {
            Ok(IpAddr::V4(addr)) => v4 = Some(addr),
            Ok(IpAddr::V6(addr)) => v6 = Some(addr),
            Err(_) => return Err(format!("Invalid {what}: {value}")),
        }
    }
    Ok((v4, v6))
}

/// Like [`addresses`], with "none" for no address: `None` when the option was not given.
#[allow(clippy::type_complexity)]
fn mapped(
    values: &[String],
    what: &str,
) -> Result<Option<(Option<Ipv4Addr>, Option<Ipv6Addr>)>, String> {
    if values.is_empty() {
        return Ok(None);
    }
    let (mut v4, mut v6) = (None, None);
    for value in values {
        if value == "none" {
            (v4, v6) = (None, None);
            continue;
        }
        let (a4, a6) = addresses(std::slice::from_ref(value), what)?;
        v4 = a4.or(v4);
        v6 = a6.or(v6);
    }
    Ok(Some((v4, v6)))
}

/// `-n`: a prefix length or a dotted netmask.
fn netmask(text: &str) -> Result<u8, String> {
    let bad = || format!("Invalid netmask: {text}");
    if let Ok(len) = text.parse::<u8>() {
        return if len <= 32 { Ok(len) } else { Err(bad()) };
    }
    let mask = u32::from(text.parse::<Ipv4Addr>().map_err(|_| bad())?);
    let len = mask.leading_ones();
    if mask.checked_shl(len).unwrap_or(0) != 0 {
        return Err(bad());
    }
    Ok(len as u8)
}

/// The namespace to join, and what says it is gone.
fn target(cli: &PastaCli) -> Result<(Target, Option<QuitWhen>), String> {
    if cli.socket.is_some() || cli.fd.is_some() || cli.vhost_user {
        return Err("--socket, --fd and --vhost-user are passt's, not pasta's".into());
    }
    if cli.conf_path.is_some() {
        return Err("-c/--conf-path (the pesto forwarder) is not supported by slirp-ns".into());
    }
    if let Some(netns) = &cli.netns {
        if !cli.rest.is_empty() {
            return Err("--netns and a PID or command cannot be given together".into());
        }
        let path = if netns.contains('/') {
            PathBuf::from(netns)
        } else {
            Path::new(NAMED_NETNS_DIR).join(netns)
        };
        if !path.exists() {
            return Err(format!("{}: No such file or directory", path.display()));
        }
        return Ok((Target::Path(path.clone()), Some(quit_when_gone(&path))));
    }
    if let [only] = &cli.rest[..] {
        if let Some(pid) = only.to_str().and_then(|s| s.parse::<i32>().ok()) {
            if pid <= 0 {
                return Err(format!("Invalid PID: {pid}"));
            }
            return Ok((Target::Pid(pid), Some(QuitWhen::ProcessExits(pid))));
        }
    }
    let command = if cli.rest.is_empty() {
        vec![std::env::var_os("SHELL").unwrap_or_else(|| OsString::from("/bin/sh"))]
    } else {
        cli.rest.clone()
    };
    Ok((Target::Exec(command), None))
}

/// What says the namespace at `path` is gone: procfs sends no inotify events, so a
/// /proc/PID/... path means the process's exit; anything else (a bind mount, as podman's) its
/// removal.
fn quit_when_gone(path: &Path) -> QuitWhen {
    let mut parts = path.components().skip(1);
    let under_proc = parts.next().is_some_and(|c| c.as_os_str() == "proc");
    let pid = parts
        .next()
        .and_then(|c| c.as_os_str().to_str()?.parse::<i32>().ok());
    match pid {
        Some(pid) if under_proc && path.is_absolute() => QuitWhen::ProcessExits(pid),
        _ => QuitWhen::FileRemoved(path.to_path_buf()),
    }
}

/// An `auto` specification: the ports named are the only ones it may forward (any, when none
/// is named), the excluded ones never.
fn auto_spec(
    proto: ForwardProto,
    listen: Vec<IpAddr>,
    device: Option<NonZeroU32>,
    spec: &ports::PortSpec,
) -> super::auto::AutoSpec {
    let only = (spec.auto && !spec.maps.is_empty())
        .then(|| spec.maps.iter().map(|m| m.host..=m.host).collect());
    super::auto::AutoSpec {
        proto,
        listen,
        device,
        only,
        excluded: spec.excluded.clone(),
    }
}

/// A port forward of `proto` needs that protocol served (pasta's wording).
fn served(cli: &PastaCli, proto: ForwardProto) -> Result<(), String> {
    match proto {
        ForwardProto::Tcp if cli.no_tcp => {
            Err("Can't add TCP forwarding rule, TCP not enabled".into())
        }
        ForwardProto::Udp if cli.no_udp => {
            Err("Can't add UDP forwarding rule, UDP not enabled".into())
        }
        _ => Ok(()),
    }
}

/// The index of the host's interface `name`, for `option text` (`ADDR%IF`).
fn interface_index(name: &str, option: &str, text: &str) -> Result<NonZeroU32, String> {
    nix::net::if_::if_nametoindex(name)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| format!("{option} {text}: no interface {name} on the host"))
}

pub fn config(cli: PastaCli) -> Result<(Config, PastaRun), String> {
    if cli.ipv4_only && cli.ipv6_only {
        return Err("Options ipv4-only and ipv6-only are mutually exclusive".into());
    }
    let (target, quit_when) = target(&cli)?;
    let (addr4, addr6) = addresses(&cli.address, "address")?;
    let (gw4, gw6) = addresses(&cli.gateway, "gateway")?;
    let (dns_forward4, dns_forward6) = addresses(&cli.dns_forward, "--dns-forward address")?;
    let interface = cli.interface.as_deref();
    let host4 = (!cli.ipv6_only).then(|| host::ipv4(interface)).flatten();
    let host6 = (!cli.ipv4_only).then(|| host::ipv6(interface)).flatten();
    let mut warnings = Vec::new();

    // IPv4: given, or the host's; without either, slirp4netns's network stands in.
    let guest4 = addr4.or(host4.as_ref().map(|h| h.address));
    let gateway4 = gw4.or(host4.as_ref().map(|h| h.gateway));
    let prefix4 = match &cli.netmask {
        Some(mask) => Some(netmask(mask)?),
        None => host4.as_ref().map(|h| h.prefix_len),
    };
    let ipv4 = !cli.ipv6_only;
    let net = match (guest4, gateway4) {
        (Some(guest), Some(gateway)) => Ipv4Network::with_hosts(
            guest,
            prefix4.unwrap_or(24),
            gateway,
            dns_forward4.unwrap_or(Ipv4Addr::UNSPECIFIED),
        ),
        _ => {
            if ipv4 {
                warnings.push("no IPv4 default route on the host: the namespace gets 10.0.2.100/24 via 10.0.2.2".into());
            }
            let virtual_net = Ipv4Network::default();
            Ipv4Network::with_hosts(
                virtual_net.guest(),
                virtual_net.prefix_len(),
                virtual_net.gateway(),
                dns_forward4.unwrap_or(virtual_net.dns()),
            )
        }
    };
    // IPv6: only where the host has it (or it is given in full).
    let guest6 = addr6.or(host6.as_ref().map(|h| h.address));
    let gateway6 = gw6.or(host6.as_ref().map(|h| h.gateway));
    let ipv6 = match (guest6, gateway6) {
        (Some(guest), Some(gateway)) if !cli.ipv4_only => {
            let len = host6.as_ref().map_or(64, |h| h.prefix_len);
            Some(Ipv6Prefix::with_hosts(guest, len, gateway, dns_forward6))
        }
        _ => None,
    };

    // Addresses that stand for the host's loopback and for its own address.
    let loopback = match mapped(&cli.map_host_loopback, "--map-host-loopback address")? {
        Some((v4, v6)) => (v4, v6),
        None if cli.no_map_gw => (None, None),
        None => (Some(net.gateway()), ipv6.map(|p| p.gateway())),
    };
    let loopback: Vec<IpAddr> = [loopback.0.map(IpAddr::V4), loopback.1.map(IpAddr::V6)]
        .into_iter()
        .flatten()
        .collect();
    let aliases = mapped(&cli.map_guest_addr, "--map-guest-addr address")?.unwrap_or_default();
    let mut host_aliases = Vec::new();
    if let Some(alias) = aliases.0 {
        host_aliases.push((IpAddr::V4(alias), IpAddr::V4(net.guest())));
    }
    if let (Some(alias), Some(own)) = (aliases.1, ipv6.and_then(|p| p.guest())) {
        host_aliases.push((IpAddr::V6(alias), IpAddr::V6(own)));
    }

    let mtu = match &cli.mtu {
        None => PASTA_MTU,
        Some(text) => match text.parse::<u32>() {
            Ok(mtu) if (68..=PASTA_MTU).contains(&mtu) => mtu,
            _ => return Err(format!("Invalid MTU: {text}")),
        },
    };
    let tapname = cli
        .ns_ifname
        .clone()
        .or_else(|| host4.as_ref().map(|h| h.interface.clone()))
        .or_else(|| host6.as_ref().map(|h| h.interface.clone()))
        .unwrap_or_else(|| FALLBACK_IFNAME.to_string());

    let guest_addr = |listen: IpAddr| match (listen, ipv6.and_then(|p| p.guest())) {
        (IpAddr::V6(_), Some(own6)) => IpAddr::V6(own6),
        _ => IpAddr::V4(net.guest()),
    };
    let mut listen_any = Vec::new();
    if ipv4 {
        listen_any.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    if ipv6.is_some() {
        listen_any.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    }
    let mut publish = Vec::new();
    let mut auto = Vec::new();
    let mut all = Vec::new();
    for (specs, proto, option) in [
        (&cli.tcp_ports, ForwardProto::Tcp, "-t"),
        (&cli.udp_ports, ForwardProto::Udp, "-u"),
    ] {
        for text in specs {
            let Some(spec) = ports::parse(text)? else {
                continue;
            };
            served(&cli, proto)?;
            let device = spec
                .interface
                .as_deref()
                .map(|name| interface_index(name, option, text))
                .transpose()?;
            if spec.all {
                all.push(super::auto::AllSpec {
                    proto,
                    listen: spec
                        .listen
                        .map_or_else(|| listen_any.clone(), |addr| vec![addr]),
                    device,
                    excluded: spec.excluded.clone(),
                    to_addr: spec.all_to,
                });
                continue;
            }
            let listens = spec
                .listen
                .map_or_else(|| listen_any.clone(), |addr| vec![addr]);
            if spec.auto {
                auto.push(auto_spec(proto, listens, device, &spec));
                continue;
            }
            for map in &spec.maps {
                for &listen in &listens {
                    publish.push(ForwardSpec {
                        proto,
                        host_addr: listen,
                        host_port: map.host,
                        guest_addr: map.to_addr.unwrap_or_else(|| guest_addr(listen)),
                        guest_port: map.guest,
                        device,
                    });
                }
            }
        }
    }
    // -T, -U: the namespace's loopback port P reaches the host's loopback port (P, or as
    // mapped); with auto (or all), the host's ports listened on are offered there.
    let (mut tcp_ns, mut udp_ns, mut auto_to_host) = (Vec::new(), Vec::new(), Vec::new());
    for (specs, proto, option, pairs) in [
        (&cli.tcp_ns, ForwardProto::Tcp, "-T", &mut tcp_ns),
        (&cli.udp_ns, ForwardProto::Udp, "-U", &mut udp_ns),
    ] {
        for text in specs {
            let Some(spec) = ports::parse(text)? else {
                continue;
            };
            served(&cli, proto)?;
            if cli.no_splice {
                return Err(format!("{option} {text} cannot be used with --no-splice"));
            }
            if spec.listen.is_some() || spec.interface.is_some() {
                return Err(format!(
                    "{option} {text}: these ports are on the namespace's loopback; no address or interface can be given"
                ));
            }
            if spec.auto || spec.all {
                auto_to_host.push(auto_spec(proto, Vec::new(), None, &spec));
                continue;
            }
            pairs.extend(spec.maps.iter().map(|m| (m.host, m.guest)));
        }
    }

    let outbound = addresses(&cli.outbound, "outbound address")?;
    let outbound_addr = match (&cli.outbound_if4, outbound.0) {
        (Some(name), _) => Some(crate::config::resolve_outbound_v4(name).map_err(|e| e.0)?),
        (None, addr) => addr,
    };
    let outbound_addr6 = match (&cli.outbound_if6, outbound.1) {
        (Some(name), _) => Some(crate::config::resolve_outbound_v6(name).map_err(|e| e.0)?),
        (None, addr) => addr,
    };
    let dns_servers: Vec<IpAddr> = cli
        .dns_host
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|_| format!("Invalid --dns-host address: {s}"))
        })
        .collect::<Result<_, _>>()?;
    let dns_search: Vec<String> = cli
        .search
        .iter()
        .flat_map(|list| list.split_whitespace())
        .filter(|domain| *domain != "none")
        .map(|domain| domain.trim_end_matches('.').to_string())
        .collect();
    let mac = cli
        .ns_mac_addr
        .as_deref()
        .map(parse_mac)
        .transpose()
        .map_err(|e| e.0)?;

    let run_as = match cli.runas.as_deref() {
        Some(text) => Some(super::user::RunAs::parse(text)?),
        None if matches!(target, Target::Exec(_)) => None,
        None => super::user::RunAs::instead_of_root(),
    };
    if run_as.is_some_and(|r| r.is_nobody_instead_of_root) && !cli.quiet {
        warnings.push("Started as root, will change to nobody.".into());
    }
    let mut cfg = Config::new(target, tapname);
    cfg.userns_path = cli.userns.clone();
    cfg.configure = cli.config_net || matches!(cfg.target, Target::Exec(_));
    cfg.mtu = mtu;
    cfg.net = net;
    cfg.ipv6 = ipv6;
    cfg.mac = mac;
    cfg.disable_dns = dns_forward4.is_none() && dns_forward6.is_none();
    cfg.dns_servers = dns_servers;
    cfg.dns_search = dns_search;
    cfg.outbound_addr = outbound_addr;
    cfg.outbound_addr6 = outbound_addr6;
    cfg.hostname = cli.hostname.clone();
    cfg.disable_dhcp = cli.no_dhcp;
    cfg.pcap = cli.pcap.clone();
    cfg.splice = !cli.no_splice;
    cfg.publish = publish;
    cfg.warnings = warnings;
    let pasta = PastaRun {
        host_network: HostNetwork {
            loopback,
            host_aliases,
        },
        ipv4,
        pid_file: cli.pid_file.clone(),
        quit_when: quit_when.filter(|_| !cli.no_netns_quit),
        background: Some(cli.log_file.clone()),
        splice_to_loopback: cli.host_lo_to_ns_lo,
        auto,
        tcp_ns,
        udp_ns,
        auto_to_host,
        all,
        served: Served {
            tcp: !cli.no_tcp,
            udp: !cli.no_udp,
            icmp_echo: !cli.no_icmp,
            // As pasta: no ICMPv6 means no neighbour discovery either.
            ndp: !cli.no_ndp && !cli.no_icmp,
            router_adverts: !cli.no_ra,
            dhcpv6: !cli.no_dhcpv6,
        },
        run_as,
    };
    Ok((cfg, pasta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure(line: &str) -> Result<Config, String> {
        configure_pasta(line).map(|(cfg, _)| cfg)
    }

    fn configure_pasta(line: &str) -> Result<(Config, PastaRun), String> {
        let args = line.split(' ').map(OsString::from);
        config(super::super::cli::parse(args)?)
    }

    #[test]
    fn rootlesskit_gives_every_address() {
        let (cfg, pasta) = configure_pasta(
            "pasta --stderr --ns-ifname=tap0 --mtu=65520 --config-net --address=10.0.2.100 \
             --netmask=24 --gateway=10.0.2.2 --dns-forward=10.0.2.3 --no-map-gw --ipv4-only \
             --tcp-ports=8080:80 --udp-ports=none 4242",
        )
        .unwrap();
        assert_eq!(cfg.target, Target::Pid(4242));
        assert_eq!(cfg.tapname, "tap0");
        assert_eq!(cfg.net.guest(), Ipv4Addr::new(10, 0, 2, 100));
        assert_eq!(cfg.net.gateway(), Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(cfg.net.dns(), Ipv4Addr::new(10, 0, 2, 3));
        assert_eq!(cfg.net.prefix_len(), 24);
        assert!(cfg.ipv6.is_none() && cfg.configure && !cfg.disable_dns);
        assert!(pasta.host_network.loopback.is_empty());
        assert_eq!(pasta.quit_when, Some(QuitWhen::ProcessExits(4242)));
        assert_eq!(cfg.publish.len(), 1);
        assert_eq!(cfg.publish[0].host_addr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(cfg.publish[0].guest_port, 80);
    }

    #[test]
    fn mapped_addresses_and_their_defaults() {
        let (_, pasta) = configure_pasta(
            "pasta -a 192.0.2.10 -n 255.255.255.0 -g 192.0.2.254 --map-guest-addr 169.254.1.2 \
             --ipv4-only -f 1",
        )
        .unwrap();
        let host = pasta.host_network;
        // Without --no-map-gw, the gateway stands for host loopback.
        assert_eq!(host.loopback, ["192.0.2.254".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            host.host_aliases,
            [(
                "169.254.1.2".parse().unwrap(),
                "192.0.2.10".parse().unwrap()
            )]
        );
        let (_, pasta) =
            configure_pasta("pasta -a 192.0.2.10 -g 192.0.2.254 --map-host-loopback none -4 1")
                .unwrap();
        assert!(pasta.host_network.loopback.is_empty());
    }

    #[test]
    fn a_namespace_under_proc_ends_with_its_process() {
        assert_eq!(
            quit_when_gone(Path::new("/proc/42/ns/net")),
            QuitWhen::ProcessExits(42)
        );
        let bound = Path::new("/run/user/1000/netns/netns-1");
        assert_eq!(quit_when_gone(bound), QuitWhen::FileRemoved(bound.into()));
    }

    #[test]
    fn refusals() {
        for (line, message) in [
            ("pasta -4 -6 1", "mutually exclusive"),
            ("pasta -c /tmp/x 1", "pesto"),
            ("pasta -n 255.0.255.0 1", "Invalid netmask"),
            ("pasta -m 70000 1", "Invalid MTU"),
            ("pasta --netns /nonexistent/netns", "No such file"),
        ] {
            let error = configure(line).unwrap_err();
            assert!(error.contains(message), "{line}: {error}");
        }
    }
}
