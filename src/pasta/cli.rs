#![allow(rustdoc::broken_intra_doc_links, rustdoc::private_intra_doc_links)]
// The doc comments here are clap's help texts: brackets are option syntax, not links.

//! pasta's command line, as podman 5/6 and rootlesskit write it: its option names, short forms
//! and `getopt_long` error messages (podman retries without `--map-guest-addr` when told
//! exactly "unrecognized option '--map-guest-addr'").

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "pasta",
    about = "slirp-ns as pasta: user-mode networking for a network namespace, pasta's options.",
    override_usage = "pasta [OPTION]... [COMMAND [ARG]...]\n       \
        pasta [OPTION]... PID\n       \
        pasta [OPTION]... --netns [PATH|NAME]",
    disable_version_flag = true,
    disable_help_flag = true
)]
pub struct PastaCli {
    /// Print this help and exit
    #[arg(short = 'h', long)]
    pub help: bool,
    /// Print the version and exit
    #[arg(long)]
    pub version: bool,
    /// Log debug messages
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// Log everything (as --debug here)
    #[arg(long)]
    pub trace: bool,
    /// Log only errors
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Stay in the foreground
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Log to standard error (the default until start-up is done)
    #[arg(short = 'e', long)]
    pub stderr: bool,
    /// Log to PATH once running in the background
    #[arg(short = 'l', long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Size limit of the log file (accepted, not enforced)
    #[arg(long, value_name = "SIZE")]
    pub log_size: Option<String>,
    /// Write the PID of the running process to PATH
    #[arg(short = 'P', long = "pid", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Capture frames to PATH (pcap)
    #[arg(short = 'p', long, value_name = "PATH")]
    pub pcap: Option<PathBuf>,
    /// Name of the interface in the namespace (default: the host's default-route interface)
    #[arg(short = 'I', long, value_name = "NAME")]
    pub ns_ifname: Option<String>,
    /// MTU of the namespace's interface (default 65520)
    #[arg(short = 'm', long, value_name = "MTU")]
    pub mtu: Option<String>,
    /// Address of the namespace (IPv4 and/or IPv6; default: the host's)
    #[arg(short = 'a', long, value_name = "ADDR")]
    pub address: Vec<String>,
    /// IPv4 netmask or prefix length (default: the host's)
    #[arg(short = 'n', long, value_name = "MASK")]
    pub netmask: Option<String>,
    /// MAC address of our end of the link (accepted, not used)
    #[arg(short = 'M', long, value_name = "ADDR")]
    pub mac_addr: Option<String>,
    /// MAC address of the namespace's interface
    #[arg(long, value_name = "ADDR")]
    pub ns_mac_addr: Option<String>,
    /// Default gateway (IPv4 and/or IPv6; default: the host's)
    #[arg(short = 'g', long, value_name = "ADDR")]
    pub gateway: Vec<String>,
    /// Host interface to copy addresses and routes from
    #[arg(short = 'i', long, value_name = "NAME")]
    pub interface: Option<String>,
    /// Source address of outbound sockets (IPv4 and/or IPv6)
    #[arg(short = 'o', long, value_name = "ADDR")]
    pub outbound: Vec<String>,
    /// Host interface for outbound IPv4 sockets
    #[arg(long, value_name = "NAME")]
    pub outbound_if4: Option<String>,
    /// Host interface for outbound IPv6 sockets
    #[arg(long, value_name = "NAME")]
    pub outbound_if6: Option<String>,
    /// DNS server to announce (DHCP, NDP); "none" for none
    #[arg(short = 'D', long, value_name = "ADDR")]
    pub dns: Vec<String>,
    /// Search domains to announce; "none" for none
    #[arg(short = 'S', long, value_name = "LIST")]
    pub search: Vec<String>,
    /// Host name for DHCP
    #[arg(short = 'H', long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Fully qualified domain name for DHCP (accepted, not used)
    #[arg(long, value_name = "NAME")]
    pub fqdn: Option<String>,
    /// DNS to ADDR goes to the host's resolver (--dns-host)
    #[arg(long, value_name = "ADDR")]
    pub dns_forward: Vec<String>,
    /// The resolver --dns-forward queries go to (default: the host's first nameserver)
    #[arg(long, value_name = "ADDR")]
    pub dns_host: Vec<String>,
    /// Announce DNS servers in DHCP and NDP
    #[arg(long)]
    pub dhcp_dns: bool,
    /// Announce no DNS servers
    #[arg(long)]
    pub no_dhcp_dns: bool,
    /// Announce search domains
    #[arg(long)]
    pub dhcp_search: bool,
    /// Announce no search domains
    #[arg(long)]
    pub no_dhcp_search: bool,
    /// No TCP
    #[arg(long)]
    pub no_tcp: bool,
    /// No UDP
    #[arg(long)]
    pub no_udp: bool,
    /// No ICMP echo
    #[arg(long)]
    pub no_icmp: bool,
    /// No DHCP server
    #[arg(long)]
    pub no_dhcp: bool,
    /// No DHCPv6 server
    #[arg(long)]
    pub no_dhcpv6: bool,
    /// No neighbour discovery
    #[arg(long)]
    pub no_ndp: bool,
    /// No router advertisements
    #[arg(long)]
    pub no_ra: bool,
    /// Loopback clients of forwarded ports go through the interface, not a socket pair
    #[arg(long)]
    pub no_splice: bool,
    /// Only loopback forwards (accepted, not enforced)
    #[arg(long)]
    pub splice_only: bool,
    /// Bind forwarded ports to addresses the host does not have yet (accepted)
    #[arg(long)]
    pub freebind: bool,
    /// The gateway's address is the real gateway, not the host's loopback
    #[arg(long)]
    pub no_map_gw: bool,
    /// ADDR reaches the host's loopback ("none": no address does)
    #[arg(long, value_name = "ADDR")]
    pub map_host_loopback: Vec<String>,
    /// ADDR reaches the host's own (global) address ("none": no address does)
    #[arg(long, value_name = "ADDR")]
    pub map_guest_addr: Vec<String>,
    /// Loopback clients of forwarded ports arrive from the namespace's loopback
    #[arg(long)]
    pub host_lo_to_ns_lo: bool,
    /// IPv4 only
    #[arg(short = '4', long)]
    pub ipv4_only: bool,
    /// IPv6 only
    #[arg(short = '6', long)]
    pub ipv6_only: bool,
    /// Quit after the first client (accepted, not used)
    #[arg(short = '1', long)]
    pub one_off: bool,
    /// TCP ports of the host to forward into the namespace: SPEC, auto, all or none
    #[arg(short = 't', long, value_name = "SPEC")]
    pub tcp_ports: Vec<String>,
    /// UDP ports of the host to forward into the namespace: SPEC, auto, all or none
    #[arg(short = 'u', long, value_name = "SPEC")]
    pub udp_ports: Vec<String>,
    /// TCP ports of the namespace's loopback to forward to the host's: SPEC, auto or none
    #[arg(short = 'T', long, value_name = "SPEC")]
    pub tcp_ns: Vec<String>,
    /// UDP ports of the namespace's loopback to forward to the host's: SPEC, auto or none
    #[arg(short = 'U', long, value_name = "SPEC")]
    pub udp_ns: Vec<String>,
    /// User namespace to join (a path)
    #[arg(long, value_name = "PATH")]
    pub userns: Option<PathBuf>,
    /// Network namespace to join (a path, or a name under /run/netns)
    #[arg(long, value_name = "PATH")]
    pub netns: Option<String>,
    /// Keep running when the namespace's file or process goes away
    #[arg(long)]
    pub no_netns_quit: bool,
    /// Only make the namespace (accepted, not used)
    #[arg(long)]
    pub netns_only: bool,
    /// Configure the namespace's interface: addresses, routes, up
    #[arg(long)]
    pub config_net: bool,
    /// Copy no routes from the host (only the default route is set)
    #[arg(long)]
    pub no_copy_routes: bool,
    /// Copy no addresses from the host (only the one given or found)
    #[arg(long)]
    pub no_copy_addrs: bool,
    /// Run as this user once set up (as root in the initial user namespace: nobody)
    #[arg(long, value_name = "UID[:GID]")]
    pub runas: Option<String>,
    /// Fall back to chroot for isolation (accepted)
    #[arg(long)]
    pub chroot_fallback: bool,
    /// passt's vhost-user mode (not supported)
    #[arg(long)]
    pub vhost_user: bool,
    /// passt's UNIX socket (not supported as pasta)
    #[arg(short = 's', long = "socket", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// passt's inherited descriptor (not supported as pasta)
    #[arg(short = 'F', long = "fd", value_name = "FD")]
    pub fd: Option<String>,
    /// Configuration socket of the pesto forwarder (not supported)
    #[arg(short = 'c', long, value_name = "PATH")]
    pub conf_path: Option<PathBuf>,
    /// PID, or COMMAND [ARG]...
    #[arg(value_name = "PID|COMMAND", trailing_var_arg = true)]
    pub rest: Vec<OsString>,
}

/// Parses pasta's command line; an error comes back as the one line pasta would print.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<PastaCli, String> {
    PastaCli::try_parse_from(args).map_err(|e| getopt_message(&e))
}

/// `getopt_long`'s wording for what clap found wrong.
fn getopt_message(e: &clap::Error) -> String {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.clone(),
        _ => String::new(),
    };
    let option = arg.split([' ', '=', '<']).next().unwrap_or_default();
    match e.kind() {
        ErrorKind::UnknownArgument if option.starts_with("--") => {
            format!("pasta: unrecognized option '{option}'")
        }
        ErrorKind::UnknownArgument => {
            let letter = option.trim_start_matches('-').chars().next().unwrap_or('?');
            format!("pasta: invalid option -- '{letter}'")
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals if option.starts_with("--") => {
            format!("pasta: option '{option}' requires an argument")
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals => {
            let letter = option.trim_start_matches('-').chars().next().unwrap_or('?');
            format!("pasta: option requires an argument -- '{letter}'")
        }
        ErrorKind::ArgumentConflict if option.starts_with("--") => {
            format!("pasta: option '{option}' doesn't allow an argument")
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            format!("pasta: {}", first.strip_prefix("error: ").unwrap_or(first))
        }
    }
}

/// pasta's help text (clap's, under pasta's name).
pub fn help() -> String {
    use clap::CommandFactory;
    PastaCli::command().render_help().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn podman_six_command_line() {
        let cli = parse(args(
            "pasta --config-net -t 8080-8081:80-81 -u 127.0.0.1/5353:53 --dns-forward 169.254.1.1 \
             -T none -U none --no-map-gw --quiet --netns /run/user/1000/netns/netns-x \
             --map-guest-addr 169.254.1.2",
        ))
        .unwrap();
        assert!(cli.config_net && cli.no_map_gw && cli.quiet);
        assert_eq!(cli.tcp_ports, ["8080-8081:80-81"]);
        assert_eq!(cli.udp_ports, ["127.0.0.1/5353:53"]);
        assert_eq!(cli.tcp_ns, ["none"]);
        assert_eq!(cli.map_guest_addr, ["169.254.1.2"]);
        assert_eq!(cli.netns.as_deref(), Some("/run/user/1000/netns/netns-x"));
        assert!(cli.rest.is_empty());
    }

    #[test]
    fn rootlesskit_command_line() {
        let cli = parse(args(
            "pasta --stderr --ns-ifname=tap0 --mtu=65520 --config-net --address=10.0.2.100 \
             --netmask=24 --gateway=10.0.2.2 --dns-forward=10.0.2.3 --no-map-gw --ipv4-only \
             --tcp-ports=auto --udp-ports=none --host-lo-to-ns-lo 4242",
        ))
        .unwrap();
        assert_eq!(cli.ns_ifname.as_deref(), Some("tap0"));
        assert_eq!(cli.address, ["10.0.2.100"]);
        assert_eq!(cli.tcp_ports, ["auto"]);
        assert!(cli.host_lo_to_ns_lo && cli.ipv4_only && cli.stderr);
        assert_eq!(cli.rest, [OsString::from("4242")]);
    }

    #[test]
    fn a_command_keeps_its_own_options() {
        let cli = parse(args("pasta -f --config-net -- sh -c true")).unwrap();
        assert_eq!(cli.rest, args("sh -c true"));
        let cli = parse(args("pasta --config-net ip -j addr")).unwrap();
        assert_eq!(cli.rest, args("ip -j addr"));
    }

    #[test]
    fn errors_read_as_getopt_writes_them() {
        assert_eq!(
            parse(args("pasta --map-guest-adr 169.254.1.2")).unwrap_err(),
            "pasta: unrecognized option '--map-guest-adr'"
        );
        assert_eq!(
            parse(args("pasta --bogus=1 1")).unwrap_err(),
            "pasta: unrecognized option '--bogus'"
        );
        assert_eq!(
            parse(args("pasta -z")).unwrap_err(),
            "pasta: invalid option -- 'z'"
        );
        assert_eq!(
            parse(args("pasta --netns")).unwrap_err(),
            "pasta: option '--netns' requires an argument"
        );
    }
}
