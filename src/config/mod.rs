//! Resolved settings: the command line checked in slirp4netns's order, with its messages, and
//! the addresses derived from --cidr.

use crate::config::cli::{Cli, NetnsType};
use crate::engine::flows::fwd::{ForwardProto, ForwardSpec};
use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::path::PathBuf;

#[doc(hidden)]
pub mod cli;
mod link;
mod network;
pub use crate::engine::{Ipv4Network, Ipv6Prefix};
pub use network::{resolve_outbound_v4, resolve_outbound_v6};

pub const DEFAULT_MTU: u32 = 1500;
/// The largest MTU a TAP device takes: 65535 minus the Ethernet header.
pub const MAX_MTU: u32 = 65521;
pub const DEFAULT_CIDR: &str = "10.0.2.0/24";
pub const DEFAULT_TAPNAME: &str = "tap0";
/// Most TAP queues (descriptors passed from the helper in one message).
const MAX_QUEUES: usize = crate::confine::ns::fdpass::MAX_FDS;
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

impl From<crate::engine::NetworkError> for CliError {
    fn from(e: crate::engine::NetworkError) -> Self {
        CliError(e.0)
    }
}

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
    let spec = ForwardSpec {
        proto,
        host_addr,
        host_port,
        guest_addr,
        guest_port,
        device: None,
    };
    spec.validate()
        .map_err(|why| CliError(format!("{} ({why})", invalid().0)))?;
    Ok(spec)
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
            .map(network::socks5_listen)
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
            busy_poll: std::time::Duration::from_micros(
                crate::host::busy_poll::DEFAULT_LIMIT_MICROS,
            ),
            warnings: Vec::new(),
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
mod tests;
