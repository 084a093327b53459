//! Resolved settings: the command line checked in slirp4netns's order, with its messages, and
//! the addresses derived from --cidr.

use crate::cli::{Cli, NetnsType};
use crate::engine::fwd::{ForwardProto, ForwardSpec};
use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::path::PathBuf;

mod link;
mod network;
pub use network::{resolve_outbound_v4, resolve_outbound_v6, Ipv4Network, Ipv6Prefix};

pub const DEFAULT_MTU: u32 = 1500;
/// The largest MTU a TAP device takes: 65535 minus the Ethernet header.
pub const MAX_MTU: u32 = 65521;
pub const DEFAULT_CIDR: &str = "10.0.2.0/24";
pub const DEFAULT_TAPNAME: &str = "tap0";
/// Most TAP queues (descriptors passed from the helper in one message).
const MAX_QUEUES: usize = crate::ns::fdpass::MAX_FDS;
/// Linux's sun_path is 108 bytes including the terminating NUL.
const SUN_PATH_MAX: usize = 108;
/// Linux's IFNAMSIZ is 16 including the terminating NUL.
const IFNAME_MAX: usize = 15;

/// Checks that `path` fits a unix socket address (slirp4netns's messages, `what` naming it).
fn check_socket_path(path: &std::path::Path, what: &str) -> Result<(), CliError> {
    let len = path.as_os_str().len();
    if len >= SUN_PATH_MAX {
        return err(format!(
            "the specified {what} path is too long (>= {SUN_PATH_MAX})"
        ));
    }
    if len == 0 {
        return err(format!("the specified {what} path is empty"));
    }
    Ok(())
}

/// A command-line error: the message is printed as is and the process exits 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

fn err<T>(msg: impl Into<String>) -> Result<T, CliError> {
    Err(CliError(msg.into()))
}

/// Parses `xx:xx:xx:xx:xx:xx`; a multicast or all-zero address cannot be a device's own.
pub fn parse_mac(text: &str) -> Result<[u8; 6], CliError> {
    let invalid = || CliError(format!("\"{text}\" is an invalid MAC address."));
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in mac.iter_mut() {
        let part = parts.next().ok_or_else(invalid)?;
        if part.is_empty() || part.len() > 2 {
            return Err(invalid());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
    }
    if parts.next().is_some() || mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(invalid());
    }
    Ok(mac)
}

/// `-p [HOST_ADDR:]HOST_PORT:[GUEST_ADDR:]GUEST_PORT[/udp|/tcp]`; IPv6 addresses in brackets.
/// `guest` is where connections go when no GUEST_ADDR is given.
pub fn parse_publish(text: &str, guest: Ipv4Addr) -> Result<ForwardSpec, CliError> {
    let invalid = || {
        CliError(format!(
            "invalid --publish {text:?}: expected \
             [HOST_ADDR:]HOST_PORT:[GUEST_ADDR:]GUEST_PORT[/udp]"
        ))
    };
    let (ports, proto) = match text.rsplit_once('/') {
        Some((ports, "tcp")) => (ports, ForwardProto::Tcp),
        Some((ports, "udp")) => (ports, ForwardProto::Udp),
        Some(_) => return Err(invalid()),
        None => (text, ForwardProto::Tcp),
    };
    // Split on the colons outside brackets.
    let mut fields = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in ports.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => {
                fields.push(&ports[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&ports[start..]);
    let addr = |field: &str| -> Result<IpAddr, CliError> {
        let bare = field
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(field);
        bare.parse().map_err(|_| invalid())
    };
    let port = |field: &str| field.parse::<u16>().map_err(|_| invalid());
    let is_port = |field: &str| !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit());
    let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let (host_addr, host_port, guest_addr, guest_port) = match fields[..] {
        [hp, gp] => (unspecified, port(hp)?, IpAddr::V4(guest), port(gp)?),
        [hp, ga, gp] if is_port(hp) => (unspecified, port(hp)?, addr(ga)?, port(gp)?),
        [ha, hp, gp] => (addr(ha)?, port(hp)?, IpAddr::V4(guest), port(gp)?),
        [ha, hp, ga, gp] => (addr(ha)?, port(hp)?, addr(ga)?, port(gp)?),
        _ => return Err(invalid()),
    };
    if guest_port == 0 {
        return Err(invalid());
    }
    Ok(ForwardSpec {
        proto,
        host_addr,
        host_port,
        guest_addr,
        guest_port,
    })
}

/// Where the guest is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Join the namespaces of this process.
    Pid(i32),
    /// Join the network namespace at this path (and --userns-path if given).
    Path(PathBuf),
    /// Use this inherited TAP descriptor; no namespace is entered.
    TapFd(RawFd),
    /// Create a new namespace and run this command in it.
    Exec(Vec<OsString>),
    /// Listen on this SOCK_SEQPACKET socket for the guest (User Mode Linux's bess).
    Bess(PathBuf),
    /// Frames on stdin and stdout.
    Stdio(crate::transport::framing::Framing),
    /// Listen on this unix stream socket for QEMU.
    Qemu(PathBuf),
}

impl Target {
    /// Whether slirp-ns makes (or attaches to) a TAP device in a namespace.
    pub fn makes_tap(&self) -> bool {
        matches!(self, Target::Pid(_) | Target::Path(_) | Target::Exec(_))
    }
}

/// Everything the run needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub userns_path: Option<PathBuf>,
    pub tapname: String,
    pub configure: bool,
    pub exit_fd: Option<RawFd>,
    pub ready_fd: Option<RawFd>,
    pub mtu: u32,
    pub net: Ipv4Network,
    pub mac: Option<[u8; 6]>,
    pub api_socket: Option<PathBuf>,
    /// The guest's IPv6 network; none without --enable-ipv6.
    pub ipv6: Option<Ipv6Prefix>,
    pub disable_host_loopback: bool,
    pub enable_sandbox: bool,
    pub enable_seccomp: bool,
    pub disable_dns: bool,
    /// Source address of outbound IPv4 sockets, resolved from an address or interface name.
    pub outbound_addr: Option<Ipv4Addr>,
    /// Source address of outbound IPv6 sockets.
    pub outbound_addr6: Option<std::net::Ipv6Addr>,
    pub dns_servers: Vec<std::net::IpAddr>,
    pub dns_search: Vec<String>,
    pub disable_dhcp: bool,
    pub hostname: Option<String>,
    pub pcap: Option<std::path::PathBuf>,
    pub debug: bool,
    pub tftp_path: Option<std::path::PathBuf>,
    pub bootfile: Option<String>,
    /// Where the inbound SOCKS5 server listens (--socks5).
    pub socks5: Option<std::net::SocketAddr>,
    pub max_flows: usize,
    /// Bytes of guest TCP data held at most (--tcp-hold-memory).
    pub tcp_hold_memory: usize,
    /// Bytes held at most for fragmented datagrams (--reassembly-memory).
    pub reassembly_memory: usize,
    /// Port forwards present from the start (-p).
    pub publish: Vec<ForwardSpec>,
    /// Whether loopback clients of port forwards take the splice path.
    pub splice: bool,
    /// Whether to ask the TAP for offloads (virtio-net header, checksum, TSO, USO).
    pub offload: bool,
    /// TAP queues, one thread and engine each.
    pub queues: usize,
    /// The longest busy poll of the event loops (--busy-poll).
    pub busy_poll: std::time::Duration,
    /// One line each, printed before start-up: options accepted but not acted on (yet).
    pub warnings: Vec<String>,
    /// What pasta's command line adds (started as `pasta`).
    pub pasta: Option<crate::pasta::PastaRun>,
}

fn parse_fd(value: &str, what: &str) -> Result<RawFd, CliError> {
    match value.parse::<RawFd>() {
        Ok(fd) if fd >= 0 => Ok(fd),
        _ => err(format!("{what} must be a non-negative integer")),
    }
}

impl Config {
    /// Checks the command line in the order slirp4netns does, so that the first error reported
    /// is the one it would report.
    pub fn from_cli(cli: Cli) -> Result<Config, CliError> {
        let exit_fd = cli
            .exit_fd
            .as_deref()
            .map(|v| parse_fd(v, "exit-fd"))
            .transpose()?;
        let ready_fd = cli
            .ready_fd
            .as_deref()
            .map(|v| parse_fd(v, "ready-fd"))
            .transpose()?;
        let mtu = match cli.mtu.as_deref() {
            None => DEFAULT_MTU,
            Some(v) => match v.parse::<u32>() {
                Ok(m) if (1..=MAX_MTU).contains(&m) => m,
                _ => return err("MTU must be a positive integer (< 65522)"),
            },
        };
        if let Some(path) = &cli.userns_path {
            if !path.exists() {
                return err(format!("userns path doesn't exist: {}", path.display()));
            }
        }
        let exec_mode = !cli.command.is_empty();
        if cli.macaddress.is_some() && !cli.configure && !exec_mode {
            return err("--macaddr cannot be specified when --configure or -c is not specified");
        }

        let mut warnings = Vec::new();
        if cli.no_host_loopback {
            warnings.push("--no-host-loopback is deprecated, use --disable-host-loopback".into());
        }
        if cli.create_sandbox {
            warnings.push("--create-sandbox is deprecated, use --enable-sandbox".into());
        }

        let link_target = link::link_target(&cli, exec_mode)?;
        let positionals = cli.target.iter().chain(&cli.tapname).chain(&cli.extra);
        let positional_count = positionals.count();
        let (target, tapname) = if let Some(target) = link_target {
            (target, String::new())
        } else if exec_mode {
            if positional_count > 0 {
                return err("a target (PID|PATH|FD) and -- COMMAND cannot be given together");
            }
            if cli.netns_type.is_some() || cli.userns_path.is_some() {
                return err("--netns-type and --userns-path cannot be used with -- COMMAND");
            }
            (Target::Exec(cli.command), DEFAULT_TAPNAME.to_string())
        } else {
            let Some(arg) = cli.target else {
                return err("missing PID|PATH|FD argument (see --help)");
            };
            match cli.netns_type.unwrap_or(NetnsType::Pid) {
                NetnsType::Pid => match arg.parse::<i32>() {
                    Ok(pid) if pid > 0 => {}
                    _ => return err("PID must be a positive integer"),
                },
                NetnsType::Tapfd => match arg.parse::<RawFd>() {
                    Ok(fd) if fd >= 0 => {}
                    _ => return err("TAPFD must be a file descriptor"),
                },
                NetnsType::Path => {
                    if !std::path::Path::new(&arg).exists() {
                        return err(format!(
                            "existing path expected when --netns-type=path: {arg}: \
                             No such file or directory"
                        ));
                    }
                }
            }
            let target = match cli.netns_type.unwrap_or(NetnsType::Pid) {
                NetnsType::Pid => Target::Pid(arg.parse().unwrap_or_default()),
                NetnsType::Tapfd => Target::TapFd(arg.parse().unwrap_or_default()),
                NetnsType::Path => Target::Path(PathBuf::from(arg)),
            };
            let (tapname, max_positionals) = match target {
                Target::TapFd(_) => (String::new(), 1),
                _ => match cli.tapname {
                    Some(name) => (name, 2),
                    None => return err("missing TAPNAME argument (see --help)"),
                },
            };
            if positional_count > max_positionals {
                warnings.push("too many arguments".into());
            }
            (target, tapname)
        };
        let tap_fd = match target {
            Target::TapFd(fd) => Some(fd),
            _ => None,
        };
        let inherited = [exit_fd, ready_fd, tap_fd];
        let distinct = inherited.iter().flatten().enumerate().all(|(i, fd)| {
            !inherited
                .iter()
                .flatten()
                .skip(i + 1)
                .any(|other| other == fd)
        });
        if !distinct {
            return err("exit-fd, ready-fd and the TAP fd must be different descriptors");
        }
        if matches!(target, Target::TapFd(_)) && cli.configure {
            return err("--configure cannot be used with --netns-type=tapfd");
        }
        if target.makes_tap()
            && (tapname.is_empty() || tapname.len() > IFNAME_MAX || tapname.contains(['/', ' ']))
        {
            return err(format!("invalid TAP device name: {tapname:?}"));
        }

        let net = Ipv4Network::parse_cidr(cli.cidr.as_deref().unwrap_or(DEFAULT_CIDR))?;
        let mac = cli.macaddress.as_deref().map(parse_mac).transpose()?;
        if let Some(path) = &cli.api_socket {
            check_socket_path(path, "API socket")?;
        }

        let dns_search: Vec<String> = cli
            .dns_search
            .iter()
            .map(|d| d.trim_end_matches('.').to_string())
            .filter(|d| !d.is_empty())
            .collect();
        for domain in &dns_search {
            if !is_domain_name(domain) {
                return err(format!("invalid search domain: {domain}"));
            }
        }
        if let Some(name) = &cli.hostname {
            if !is_domain_name(name) {
                return err(format!("invalid host name: {name}"));
            }
        }
        let tftp_path = match cli.tftp_path {
            Some(dir) if dir.is_dir() => Some(dir),
            Some(dir) => return err(format!("--tftp-path {}: not a directory", dir.display())),
            None => None,
        };
        let outbound_addr = cli
            .outbound_addr
            .as_deref()
            .map(resolve_outbound_v4)
            .transpose()?;
        let outbound_addr6 = cli
            .outbound_addr6
            .as_deref()
            .map(resolve_outbound_v6)
            .transpose()?;
        let ipv6 = match (cli.enable_ipv6, cli.cidr6.as_deref()) {
            (false, None) => None,
            (false, Some(_)) => return err("--cidr6 needs --enable-ipv6"),
            (true, cidr6) => Some(
                cidr6
                    .map(Ipv6Prefix::parse)
                    .transpose()?
                    .unwrap_or_default(),
            ),
        };
        if !(1..=MAX_QUEUES).contains(&cli.queues) {
            return err(format!("--queues must be 1 to {MAX_QUEUES}"));
        }
        if cli.queues > 1 && matches!(target, Target::TapFd(_)) {
            return err("--queues cannot be used with --netns-type=tapfd");
        }
        if cli.max_flows == 0 {
            return err("--max-flows must be at least 1");
        }
        let socks5 = cli
            .socks5
            .as_deref()
            .map(crate::socks5::parse_listen)
            .transpose()
            .map_err(CliError)?;
        let publish = cli
            .publish
            .iter()
            .map(|spec| parse_publish(spec, net.guest()))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Config {
            target,
            userns_path: cli.userns_path,
            tapname,
            configure: cli.configure || exec_mode,
            exit_fd,
            ready_fd,
            mtu,
            net,
            mac,
            api_socket: cli.api_socket,
            ipv6,
            disable_host_loopback: cli.disable_host_loopback || cli.no_host_loopback,
            enable_sandbox: cli.enable_sandbox || cli.create_sandbox,
            enable_seccomp: cli.enable_seccomp,
            disable_dns: cli.disable_dns,
            outbound_addr,
            outbound_addr6,
            dns_servers: cli.dns_servers,
            dns_search,
            disable_dhcp: cli.disable_dhcp,
            hostname: cli.hostname,
            pcap: cli.pcap,
            debug: cli.debug,
            tftp_path,
            bootfile: cli.bootfile,
            socks5,
            max_flows: cli.max_flows,
            tcp_hold_memory: (cli.tcp_hold_memory as usize) << 20,
            reassembly_memory: (cli.reassembly_memory as usize) << 20,
            publish,
            splice: !cli.no_splice,
            offload: !cli.no_offload,
            busy_poll: std::time::Duration::from_micros(cli.busy_poll),
            queues: cli.queues,
            warnings,
            pasta: None,
        })
    }

    /// slirp4netns's defaults for a TAP named `tapname` reached through `target`.
    pub fn new(target: Target, tapname: String) -> Config {
        Config {
            target,
            userns_path: None,
            tapname,
            configure: false,
            exit_fd: None,
            ready_fd: None,
            mtu: DEFAULT_MTU,
            net: Ipv4Network::default(),
            mac: None,
            api_socket: None,
            ipv6: None,
            disable_host_loopback: false,
            enable_sandbox: false,
            enable_seccomp: false,
            disable_dns: false,
            outbound_addr: None,
            outbound_addr6: None,
            dns_servers: Vec::new(),
            dns_search: Vec::new(),
            disable_dhcp: false,
            hostname: None,
            pcap: None,
            debug: false,
            tftp_path: None,
            bootfile: None,
            socks5: None,
            max_flows: 65536,
            tcp_hold_memory: 64 << 20,
            reassembly_memory: 4 << 20,
            publish: Vec::new(),
            splice: true,
            offload: true,
            queues: 1,
            busy_poll: std::time::Duration::from_micros(crate::busy_poll::DEFAULT_LIMIT_MICROS),
            warnings: Vec::new(),
            pasta: None,
        }
    }
}

/// A DNS name of letters, digits and hyphens in labels of 1 to 63 bytes, 253 bytes at most.
fn is_domain_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Config, CliError> {
        let cli = Cli::try_parse_from(std::iter::once("slirp-ns").chain(args.iter().copied()))
            .expect("clap accepts the arguments");
        Config::from_cli(cli)
    }

    fn error_of(args: &[&str]) -> String {
        parse(args).expect_err("must be rejected").0
    }

    #[test]
    fn defaults_match_slirp4netns() {
        let cfg = parse(&["1234", "tap0"]).unwrap();
        assert_eq!(cfg.target, Target::Pid(1234));
        assert_eq!(cfg.tapname, "tap0");
        assert_eq!(cfg.mtu, 1500);
        assert!(!cfg.configure);
        assert_eq!(cfg.net.gateway(), Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(cfg.net.dns(), Ipv4Addr::new(10, 0, 2, 3));
        assert_eq!(cfg.net.guest(), Ipv4Addr::new(10, 0, 2, 100));
        assert_eq!(cfg.net.dhcp_start(), Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(cfg.net.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(cfg.warnings.is_empty());
    }

    #[test]
    fn cidr_moves_every_address() {
        let cfg = parse(&["--cidr", "10.0.135.128/25", "1", "tap0"]).unwrap();
        assert_eq!(cfg.net.guest(), Ipv4Addr::new(10, 0, 135, 228));
        assert_eq!(cfg.net.gateway(), Ipv4Addr::new(10, 0, 135, 130));
        assert_eq!(cfg.net.dns(), Ipv4Addr::new(10, 0, 135, 131));
        assert_eq!(cfg.net.netmask(), Ipv4Addr::new(255, 255, 255, 128));
        assert_eq!(cfg.net.broadcast(), Ipv4Addr::new(10, 0, 135, 255));
        assert!(cfg.net.contains(Ipv4Addr::new(10, 0, 135, 200)));
        assert!(!cfg.net.contains(Ipv4Addr::new(10, 0, 135, 127)));
    }

    #[test]
    fn cidr_errors_in_slirp4netns_order() {
        for bad in [
            "24",
            "foo",
            "10.0.2.0",
            "10.0.2.0/",
            "1.2.3.4.5/8",
            "10.0.2.0/123",
        ] {
            assert_eq!(
                error_of(&["--cidr", bad, "1", "tap0"]),
                format!("invalid CIDR: {bad}")
            );
        }
        assert_eq!(
            error_of(&["--cidr", "300.0.2.0/24", "1", "tap0"]),
            "invalid network address: 300.0.2.0"
        );
        // The prefix is checked before the host bits.
        assert_eq!(
            error_of(&["--cidr", "10.0.2.100/26", "1", "tap0"]),
            "prefix length needs to be 1-25"
        );
        assert_eq!(
            error_of(&["--cidr", "10.0.0.0/0", "1", "tap0"]),
            "prefix length needs to be 1-25"
        );
        assert_eq!(
            error_of(&["--cidr", "10.0.2.100/24", "1", "tap0"]),
            "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24"
        );
    }

    /// pasta's personality starts from Config::new: its defaults are the command line's.
    #[test]
    fn new_has_the_command_lines_defaults() {
        let parsed = parse(&["1", "tap0"]).unwrap();
        let made = Config::new(Target::Pid(1), "tap0".into());
        assert_eq!(format!("{parsed:?}"), format!("{made:?}"));
    }

    #[test]
    fn mtu_range() {
        assert_eq!(parse(&["-m", "65521", "1", "t"]).unwrap().mtu, 65521);
        assert_eq!(parse(&["--mtu=1", "1", "t"]).unwrap().mtu, 1);
        for bad in ["0", "65522", "-1", "abc", "1500x", ""] {
            assert_eq!(
                error_of(&["--mtu", bad, "1", "tap0"]),
                "MTU must be a positive integer (< 65522)",
                "mtu {bad:?}"
            );
        }
    }

    #[test]
    fn fd_options() {
        let cfg = parse(&["-r", "3", "-e", "4", "1", "tap0"]).unwrap();
        assert_eq!((cfg.ready_fd, cfg.exit_fd), (Some(3), Some(4)));
        assert_eq!(
            error_of(&["-e", "x", "1", "tap0"]),
            "exit-fd must be a non-negative integer"
        );
        assert_eq!(
            error_of(&["-r", "-2", "1", "tap0"]),
            "ready-fd must be a non-negative integer"
        );
        let same = "exit-fd, ready-fd and the TAP fd must be different descriptors";
        assert_eq!(error_of(&["-r", "3", "-e", "3", "1", "tap0"]), same);
        assert_eq!(error_of(&["-r", "5", "--netns-type=tapfd", "5"]), same);
    }

    #[test]
    fn macaddress_needs_configure_and_a_valid_mac() {
        assert_eq!(
            error_of(&["--macaddress", "02:00:00:00:00:01", "1", "tap0"]),
            "--macaddr cannot be specified when --configure or -c is not specified"
        );
        let cfg = parse(&["-c", "--macaddress", "02:AB:00:00:00:01", "1", "tap0"]).unwrap();
        assert_eq!(cfg.mac, Some([2, 0xab, 0, 0, 0, 1]));
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "zz:00:00:00:00:01",
            "01:00:00:00:00:01",
        ] {
            assert_eq!(
                error_of(&["-c", "--macaddress", bad, "1", "tap0"]),
                format!("\"{bad}\" is an invalid MAC address.")
            );
        }
    }

    #[test]
    fn positional_forms() {
        assert_eq!(error_of(&["0", "tap0"]), "PID must be a positive integer");
        assert_eq!(error_of(&["abc", "tap0"]), "PID must be a positive integer");
        assert_eq!(
            error_of(&["--netns-type=tapfd", "x"]),
            "TAPFD must be a file descriptor"
        );
        let cfg = parse(&["--netns-type=tapfd", "5"]).unwrap();
        assert_eq!(cfg.target, Target::TapFd(5));
        let cfg = parse(&["--netns-type=path", "/proc/self/ns/net", "tap1"]).unwrap();
        assert_eq!(cfg.target, Target::Path("/proc/self/ns/net".into()));
        assert!(error_of(&["--netns-type=path", "/nonexistent/ns", "tap0"])
            .starts_with("existing path expected when --netns-type=path"));
        assert!(error_of(&["1234"]).contains("TAPNAME"));
        assert_eq!(
            parse(&["1", "tap0", "extra"]).unwrap().warnings,
            vec!["too many arguments".to_string()]
        );
    }

    #[test]
    fn api_socket_path_must_fit_sun_path() {
        let long = format!("/tmp/{}", "a".repeat(110));
        assert_eq!(
            error_of(&["-a", &long, "1", "tap0"]),
            "the specified API socket path is too long (>= 108)"
        );
        let fits = format!("/tmp/{}", "a".repeat(100));
        assert!(parse(&["-a", &fits, "1", "tap0"]).is_ok());
    }

    #[test]
    fn exec_mode_implies_configure() {
        let cfg = parse(&["--mtu=9000", "--", "sh", "-c", "true"]).unwrap();
        assert!(cfg.configure);
        assert_eq!(cfg.tapname, "tap0");
        assert_eq!(
            cfg.target,
            Target::Exec(vec!["sh".into(), "-c".into(), "true".into()])
        );
        assert!(parse(&["1", "tap0", "--", "sh"]).is_err());
    }

    #[test]
    fn dhcp_options() {
        let cfg = parse(&["--dns-search=corp.example,lab.example.", "1", "tap0"]).unwrap();
        assert_eq!(cfg.dns_search, ["corp.example", "lab.example"]);
        let cfg = parse(&["--disable-dhcp", "--hostname", "guest-1", "1", "tap0"]).unwrap();
        assert!(cfg.disable_dhcp);
        assert_eq!(cfg.hostname.as_deref(), Some("guest-1"));
        assert_eq!(
            error_of(&["--dns-search", "bad domain", "1", "tap0"]),
            "invalid search domain: bad domain"
        );
        assert_eq!(
            error_of(&["--hostname=-x", "1", "tap0"]),
            "invalid host name: -x"
        );
    }

    #[test]
    fn lockdown_options() {
        let cfg = parse(&["--enable-sandbox", "--enable-seccomp", "-6", "1", "tap0"]).unwrap();
        assert!(cfg.warnings.is_empty());
        assert!(cfg.enable_sandbox && cfg.enable_seccomp);
        let cfg = parse(&["--create-sandbox", "1", "tap0"]).unwrap();
        assert!(cfg.enable_sandbox);
        assert_eq!(cfg.warnings.len(), 1, "--create-sandbox is deprecated");
    }

    #[test]
    fn ipv6_options() {
        assert_eq!(parse(&["1", "tap0"]).unwrap().ipv6, None);
        let cfg = parse(&["-6", "1", "tap0"]).unwrap();
        assert_eq!(cfg.ipv6.unwrap().to_string(), "fd00::/64");
        let cfg = parse(&["--enable-ipv6", "--cidr6=2001:db8:5::/64", "1", "tap0"]).unwrap();
        assert_eq!(cfg.ipv6.unwrap().gateway().to_string(), "2001:db8:5::2");
        assert_eq!(
            error_of(&["--cidr6=2001:db8:5::/64", "1", "tap0"]),
            "--cidr6 needs --enable-ipv6"
        );
        assert_eq!(
            error_of(&["-6", "--cidr6=fd00::/56", "1", "tap0"]),
            "IPv6 prefix length needs to be 64: fd00::/56"
        );
        let cfg = parse(&["-6", "--outbound-addr6=2001:db8::9", "1", "tap0"]).unwrap();
        assert_eq!(cfg.outbound_addr6, Some("2001:db8::9".parse().unwrap()));
        assert!(error_of(&["--outbound-addr6=bogus0", "1", "tap0"])
            .starts_with("outbound-addr6 has to be valid ipv6 address or interface name"));
    }

    #[test]
    fn outbound_addr_takes_an_address_or_an_interface() {
        assert_eq!(
            parse(&["--outbound-addr=192.0.2.1", "1", "t"])
                .unwrap()
                .outbound_addr,
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(
            parse(&["--outbound-addr", "lo", "1", "t"])
                .unwrap()
                .outbound_addr,
            Some(Ipv4Addr::LOCALHOST)
        );
        assert!(error_of(&["--outbound-addr=nosuchif0", "1", "t"])
            .starts_with("outbound-addr has to be valid ipv4 address or interface name"));
    }

    #[test]
    fn publish_specs() {
        let guest = Ipv4Addr::new(10, 0, 2, 100);
        let spec = parse_publish("8080:80", guest).unwrap();
        assert_eq!(
            (
                spec.proto,
                spec.host_addr.to_string(),
                spec.host_port,
                spec.guest_port
            ),
            (ForwardProto::Tcp, "0.0.0.0".to_string(), 8080, 80)
        );
        let spec = parse_publish("127.0.0.1:5353:53/udp", guest).unwrap();
        assert_eq!(
            (spec.proto, spec.host_addr.to_string()),
            (ForwardProto::Udp, "127.0.0.1".into())
        );
        let spec = parse_publish("[::1]:8443:443/tcp", guest).unwrap();
        assert_eq!(
            (spec.host_addr.to_string(), spec.host_port),
            ("::1".into(), 8443)
        );
        assert_eq!(spec.guest_addr, IpAddr::V4(guest));
        let spec = parse_publish("[::]:8443:[fd00::5054:ff:fe12:3456]:443", guest).unwrap();
        assert_eq!(
            (spec.host_addr.to_string(), spec.guest_addr.to_string()),
            ("::".into(), "fd00::5054:ff:fe12:3456".into())
        );
        let spec = parse_publish("8080:10.0.2.99:80/udp", guest).unwrap();
        assert_eq!(
            (spec.host_port, spec.guest_addr.to_string(), spec.guest_port),
            (8080, "10.0.2.99".into(), 80)
        );
        for bad in [
            "[::1:80:80",
            "1:2:3:4:5",
            "80",
            "a:80",
            "8080:0",
            "8080:80/sctp",
            "1.2.3:8080:80",
            "70000:80",
        ] {
            assert!(parse_publish(bad, guest).is_err(), "{bad}");
        }
        let cfg = parse(&["-p", "8080:80", "--publish=9090:90/udp", "1", "tap0"]).unwrap();
        assert_eq!(cfg.publish.len(), 2);
    }

    #[test]
    fn userns_path_must_exist() {
        assert_eq!(
            error_of(&[
                "--userns-path=/nonexistent",
                "--netns-type=path",
                "/proc/self/ns/net",
                "t"
            ]),
            "userns path doesn't exist: /nonexistent"
        );
    }
}
