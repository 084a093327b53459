#![allow(rustdoc::broken_intra_doc_links, rustdoc::private_intra_doc_links)]
// The doc comments here are clap's help texts: brackets are option syntax, not links.

//! Command line: every slirp4netns option with its spelling and defaults, then our extensions.
//!
//! Values whose validation messages are part of the slirp4netns contract (fds, MTU, CIDR, MAC)
//! are taken as strings here and checked in [`crate::config`], which reproduces those messages.

use clap::{CommandFactory, Parser, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

/// Value of `SLIRP_CONFIG_VERSION_MAX` printed by `--version`; scripts compare it (>= 4 means
/// outbound-addr, disable-dns and the MAC option are understood).
pub const SLIRP_CONFIG_VERSION_MAX: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetnsType {
    /// The positional argument is the PID of a process in the target namespace.
    Pid,
    /// The positional argument is a path to a network namespace (e.g. /run/netns/NAME).
    Path,
    /// The positional argument is an already-open TAP file descriptor.
    Tapfd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetType {
    /// A network namespace with a TAP device in it.
    Netns,
    /// Listen on the SOCK_SEQPACKET socket PATH for one peer sending an Ethernet frame per
    /// message (User Mode Linux's bess transport)
    Bess,
    /// Frames on stdin and stdout, framed as --framing says (User Mode Linux's slirp transport,
    /// a TAP tunnelled over ssh with vde_plug)
    Stdio,
    /// Listen on the unix stream socket PATH for QEMU's `-netdev stream` (a 4-byte length
    /// before each frame); one guest at a time, reconnects accepted
    Qemu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FramingArg {
    /// IP packets in SLIP (RFC 1055), no Ethernet
    Slip,
    /// Ethernet frames, each after its length in 2 bytes, big-endian (vde_plug)
    Len16,
}

#[derive(Debug, Parser)]
#[command(
    name = "slirp-ns",
    about = "User-mode networking for unprivileged network namespaces.",
    long_about = "User-mode networking for unprivileged network namespaces.\n\n\
        A drop-in replacement for slirp4netns: enters the namespace of PID (or PATH, or uses the \
        TAP descriptor FD), creates TAPNAME (default tap0) there and connects it to the host \
        through a user-space NAT.\n\n\
        With `-- COMMAND [ARG]...` instead of a target, creates a new user and network \
        namespace, configures tap0 in it and runs COMMAND there, exiting with its status.",
    override_usage = "slirp-ns [OPTION]... PID|PATH|FD [TAPNAME]\n       \
        slirp-ns [OPTION]... -- COMMAND [ARG]...\n       \
        slirp-ns [OPTION]... --target-type=bess|qemu PATH\n       \
        slirp-ns [OPTION]... --target-type=stdio [--framing=slip|len16]",
    disable_version_flag = true
)]
pub struct Cli {
    /// Bring up the interface: lo and TAP up, MTU, address network+100, default route via network+2
    #[arg(short = 'c', long)]
    pub configure: bool,

    /// Exit when FD is closed (or reports any event)
    #[arg(short = 'e', long, value_name = "FD", allow_hyphen_values = true)]
    pub exit_fd: Option<String>,

    /// Write "1" to FD and close it once the network is ready
    #[arg(short = 'r', long, value_name = "FD", allow_hyphen_values = true)]
    pub ready_fd: Option<String>,

    /// MTU of the TAP device (default=1500, max=65521)
    #[arg(short = 'm', long, value_name = "MTU", allow_hyphen_values = true)]
    pub mtu: Option<String>,

    /// Enable IPv6 on fd00::/64
    #[arg(short = '6', long)]
    pub enable_ipv6: bool,

    /// The guest's IPv6 network with --enable-ipv6 (default=fd00::/64; must be a /64)
    #[arg(long, value_name = "PREFIX/64")]
    pub cidr6: Option<String>,

    /// Serve the JSON API (port forwarding) on a unix socket at PATH
    #[arg(short = 'a', long, value_name = "PATH")]
    pub api_socket: Option<PathBuf>,

    /// Network address CIDR (default=10.0.2.0/24)
    #[arg(long, value_name = "CIDR")]
    pub cidr: Option<String>,

    /// Prohibit connecting to 127.0.0.1:* on the host through the gateway address
    #[arg(long)]
    pub disable_host_loopback: bool,

    /// Deprecated spelling of --disable-host-loopback
    #[arg(long, hide = true)]
    pub no_host_loopback: bool,

    /// Network namespace type (default=pid)
    #[arg(long, value_enum, value_name = "TYPE")]
    pub netns_type: Option<NetnsType>,

    /// User namespace to join before the network namespace (with --netns-type=path)
    #[arg(long, value_name = "PATH")]
    pub userns_path: Option<PathBuf>,

    /// Create a new mount namespace and drop all capabilities except CAP_NET_BIND_SERVICE
    #[arg(long)]
    pub enable_sandbox: bool,

    /// Deprecated spelling of --enable-sandbox
    #[arg(long, hide = true)]
    pub create_sandbox: bool,

    /// Restrict the system calls slirp-ns may make
    #[arg(long)]
    pub enable_seccomp: bool,

    /// IPv4 address or interface name that outbound connections bind to
    #[arg(long, value_name = "IPv4|IFNAME")]
    pub outbound_addr: Option<String>,

    /// IPv6 address or interface name that outbound connections bind to
    #[arg(long, value_name = "IPv6|IFNAME")]
    pub outbound_addr6: Option<String>,

    /// Disable the DNS relay on network+3
    #[arg(long)]
    pub disable_dns: bool,

    /// MAC address of the TAP device (only valid with -c)
    #[arg(long, value_name = "MAC")]
    pub macaddress: Option<String>,

    /// Target type (default=netns)
    #[arg(long, value_enum, value_name = "TYPE")]
    pub target_type: Option<TargetType>,

    /// How frames are delimited on stdin/stdout with --target-type=stdio (default=len16)
    #[arg(long, value_enum, value_name = "FRAMING")]
    pub framing: Option<FramingArg>,

    /// Relay DNS to ADDR instead of the resolvers in /etc/resolv.conf (repeatable)
    #[arg(long = "dns-server", value_name = "ADDR")]
    pub dns_servers: Vec<std::net::IpAddr>,

    /// Search domains to tell the guest (DHCP, router advertisements, DHCPv6) instead of those
    /// of /etc/resolv.conf (repeatable, or comma-separated)
    #[arg(long, value_name = "DOMAIN", value_delimiter = ',')]
    pub dns_search: Vec<String>,

    /// Write every frame crossing the guest side, both ways, to FILE (pcap)
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,

    /// Print a one-line summary of every frame crossing the guest side to stderr
    #[arg(long)]
    pub debug: bool,

    /// Turn off the DHCP server on the gateway
    #[arg(long)]
    pub disable_dhcp: bool,

    /// Serve DIR read-only over TFTP on the gateway
    #[arg(long, value_name = "DIR")]
    pub tftp_path: Option<std::path::PathBuf>,

    /// Boot file name the DHCP server tells the guest (for network boot over TFTP)
    #[arg(long, value_name = "NAME")]
    pub bootfile: Option<String>,

    /// Serve SOCKS5 on [ADDR:]PORT of the host (127.0.0.1 without ADDR): CONNECT to the
    /// guest's own addresses only
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub socks5: Option<String>,

    /// Host name the DHCP server offers the guest
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Most flows (TCP connections, UDP flows, ICMP echo flows, connections spliced from
    /// host loopback) at once; more are refused
    #[arg(long, value_name = "N", default_value_t = 65536)]
    pub max_flows: usize,

    /// Most guest TCP data held at once, all connections together, in MiB: data that came
    /// beyond a lost segment (until it comes again) or that a full host socket could not take
    /// yet; beyond it, such data is dropped and the guest sends it again
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub tcp_hold_memory: u64,

    /// Most memory for IP datagrams the guest sends in fragments and that are not whole yet, in
    /// MiB (one source address gets half); beyond it the oldest are given up
    #[arg(long, value_name = "MIB", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub reassembly_memory: u64,

    /// Forward a host port to the guest from the start:
    /// [HOST_ADDR:]HOST_PORT:[GUEST_ADDR:]GUEST_PORT[/udp] (repeatable; IPv6 addresses go in
    /// brackets)
    #[arg(short = 'p', long, value_name = "SPEC")]
    pub publish: Vec<String>,

    /// Send port-forward clients on host loopback through the TAP too, instead of joining them
    /// to the guest with splice()
    #[arg(long)]
    pub no_splice: bool,

    /// TAP queues, each served by a thread and an engine of its own (multi-queue TAP; the
    /// first queue's engine also serves the API and port forwards)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub queues: usize,

    /// Use no TAP offloads (checksum, TCP and UDP segmentation): every frame MTU-sized and
    /// fully checksummed, both ways
    #[arg(long)]
    pub no_offload: bool,

    /// After light traffic, poll for up to USEC microseconds before sleeping: shorter round
    /// trips for a little CPU time (the window adapts to the traffic; 0 turns it off)
    #[arg(long, value_name = "USEC", default_value_t = crate::host::busy_poll::DEFAULT_LIMIT_MICROS,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub busy_poll: u64,

    /// Show version and exit
    #[arg(short = 'v', long)]
    pub version: bool,

    /// PID, namespace PATH or TAP FD (see --netns-type); the socket PATH with --target-type=bess or qemu
    #[arg(value_name = "PID|PATH|FD")]
    pub target: Option<String>,

    /// Name of the TAP device in the namespace
    #[arg(value_name = "TAPNAME")]
    pub tapname: Option<String>,

    /// Extra positional arguments are accepted with a warning, as slirp4netns does
    #[arg(value_name = "EXTRA", hide = true)]
    pub extra: Vec<String>,

    /// Command to run in a new namespace (exec mode)
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

impl Cli {
    /// The clap command, for completions and the man page.
    pub fn command_definition() -> clap::Command {
        Self::command()
    }
}

/// The `--version` text: machine-parsable lines in the slirp4netns format.
pub fn version_text() -> String {
    format!(
        "slirp-ns version {}\ncommit: {}\nSLIRP_CONFIG_VERSION_MAX: {}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("SLIRP_NS_COMMIT").unwrap_or("unknown"),
        SLIRP_CONFIG_VERSION_MAX
    )
}
