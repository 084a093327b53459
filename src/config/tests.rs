//! The command line's checks and messages, against slirp4netns's.

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
        // Checked as every forward is: the guest must be a unicast host.
        "8080:127.0.0.1:80",
        "8080:[ff02::1]:80",
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
