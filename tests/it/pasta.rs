//! slirp-ns started as `pasta`, with the command lines podman 5.0, 5.1, 5.3 and 6 and
//! rootlesskit's pasta driver write (they are not in Debian 12, so their command lines are
//! replayed), doing what each caller does next: wait for the exit, read the PID file and the
//! namespace's addresses, use the published ports, DNS and the mapped addresses, and end it by
//! removing the namespace's file, by SIGTERM or by the target's exit.

use crate::common;

use common::pasta::*;
use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

/// podman 5.3 and later, 6.x: `pasta --config-net -t ... -u ... --dns-forward 169.254.1.1
/// -T none -U none --no-map-gw --quiet --netns PATH --map-guest-addr 169.254.1.2`.
#[test]
fn podman_6_command_line() {
    let setup = Setup::new();
    let netns = setup.netns_path();
    let pid_file = setup.pid_file().display().to_string();
    let args = podman_args(
        &netns,
        &[
            "-t",
            "8080-8081:80-81",
            "-t",
            "2001:db8::1/8443-8443:443-443",
            "-u",
            "5353-5353:53-53",
            "--dns-forward",
            "169.254.1.1",
            "-T",
            "none",
            "-U",
            "none",
            "--no-map-gw",
            "--quiet",
            "--map-guest-addr",
            "169.254.1.2",
            "--pid",
            &pid_file,
        ],
    );
    let (code, output) = setup.run(&args);
    assert_eq!(code, 0, "output: {output}");
    assert_eq!(output, "", "--quiet: nothing said");
    let pid = setup.daemon();
    assert!(!exited(pid), "the process named in the PID file runs on");

    // The namespace has the host's interface name, addresses and routes, as podman reads them.
    let links = ip_json_in(&netns, &["addr", "show", "hs0"]);
    let addrs: Vec<String> = links[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert!(addrs.contains(&"192.0.2.1/24".to_string()), "{addrs:?}");
    assert!(addrs.contains(&"2001:db8::1/64".to_string()), "{addrs:?}");
    assert_eq!(links[0]["mtu"], 65520);
    let routes = ip_json_in(&netns, &["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "192.0.2.254");
    // One IPv6 default route, the host's router (our advertisements name no default router).
    std::thread::sleep(Duration::from_millis(300));
    let routes6 = ip_json_in(&netns, &["-6", "route", "show", "default"]);
    let gateways: Vec<&str> = routes6
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["gateway"].as_str())
        .collect();
    assert_eq!(gateways, ["2001:db8::fe"], "{routes6}");

    // Published ports: the guest sees the client's own address, IPv4 and IPv6, over a range.
    guest_tells_client_address(&setup, "0.0.0.0:80");
    guest_tells_client_address(&setup, "0.0.0.0:81");
    guest_tells_client_address(&setup, "[::]:443");
    assert_eq!(
        ask_from_host(&setup, "198.51.100.1:0", "198.51.100.1:8080"),
        "198.51.100.1"
    );
    assert_eq!(
        ask_from_host(&setup, "198.51.100.1:0", "192.0.2.1:8081"),
        "198.51.100.1"
    );
    assert_eq!(
        ask_from_host(&setup, "[2001:db8:1::1]:0", "[2001:db8::1]:8443"),
        "2001:db8:1::1"
    );
    // UDP: a datagram to the published port comes back from the guest's echo.
    let echo = setup.in_guest(|| UdpSocket::bind("0.0.0.0:53").unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let client = in_netns(&setup.hs.netns_path(), || {
        UdpSocket::bind("198.51.100.1:0").unwrap()
    });
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.send_to(b"ping", "198.51.100.1:5353").unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = client.recv_from(&mut buf).expect("the UDP echo");
    assert_eq!(&buf[..n], b"ping");

    // DNS through --dns-forward; the host's own address through --map-guest-addr; the world.
    guest_resolves_through(&setup, "169.254.1.1:53");
    host_server(&setup, "192.0.2.1:7002", "host itself");
    assert_eq!(read_from_guest(&setup, "169.254.1.2:7002"), "host itself");
    host_server(&setup, "198.51.100.1:7001", "out there");
    assert_eq!(read_from_guest(&setup, "198.51.100.1:7001"), "out there");

    // podman removes the namespace's file when the container stops: pasta goes within 1 s.
    run_ok(Command::new("ip").args(["netns", "del", &setup.netns]));
    wait_exited(pid, Duration::from_secs(1));
}

/// podman 5.1 and 5.2: `--dns-forward 169.254.0.1`, no `--map-guest-addr`; and without
/// `--quiet` pasta says nothing on success either. SIGTERM ends it.
#[test]
fn podman_5_1_command_line_and_sigterm() {
    let setup = Setup::new();
    let netns = setup.netns_path();
    let pid_file = setup.pid_file().display().to_string();
    let args = podman_args(
        &netns,
        &[
            "--dns-forward",
            "169.254.0.1",
            "-t",
            "none",
            "-u",
            "none",
            "-T",
            "none",
            "-U",
            "none",
            "--no-map-gw",
            "--pid",
            &pid_file,
        ],
    );
    let (code, output) = setup.run(&args);
    assert_eq!(code, 0, "output: {output}");
    guest_resolves_through(&setup, "169.254.0.1:53");
    let pid = setup.daemon();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_exited(pid, Duration::from_secs(2));
}

/// podman 5.0: neither `--dns-forward` nor `--quiet`; the gateway is the host (no
/// --no-map-gw): a service on host-sim's loopback answers at the gateway's address.
#[test]
fn podman_5_0_command_line_maps_the_gateway_to_host_loopback() {
    let setup = Setup::new();
    let netns = setup.netns_path();
    let pid_file = setup.pid_file().display().to_string();
    let args = podman_args(&netns, &["-t", "none", "--pid", &pid_file]);
    let (code, output) = setup.run(&args);
    assert_eq!(code, 0, "output: {output}");
    host_server(&setup, "127.0.0.1:7003", "loopback");
    assert_eq!(read_from_guest(&setup, "192.0.2.254:7003"), "loopback");
}

/// podman retries without `--map-guest-addr` when pasta says exactly this.
#[test]
fn unknown_options_get_getopts_message_and_exit_1() {
    let setup = Setup::new();
    let (code, output) = setup.run(&["--config-net", "--map-guest-adr", "169.254.1.2"]);
    assert_eq!(code, 1);
    assert_eq!(output, "pasta: unrecognized option '--map-guest-adr'\n");
    let (code, output) = setup.run(&["--version"]);
    assert_eq!(code, 0);
    assert!(output.starts_with("pasta "), "{output}");
    // rootlesskit's probe for --host-lo-to-ns-lo.
    let (code, _) = setup.run(&["--host-lo-to-ns-lo", "--version"]);
    assert_eq!(code, 0);
}

/// A port that cannot be bound fails start-up: one line, exit 1, nothing left running.
#[test]
fn a_port_taken_fails_start_up() {
    let setup = Setup::new();
    let _taken = in_netns(&setup.hs.netns_path(), || {
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, 8090)).unwrap()
    });
    let netns = setup.netns_path();
    let pid_file = setup.pid_file().display().to_string();
    let args = podman_args(&netns, &["--quiet", "-t", "8090:80", "--pid", &pid_file]);
    let (code, output) = setup.run(&args);
    assert_eq!(code, 1, "output: {output}");
    assert_eq!(output.lines().count(), 1, "one line: {output}");
    assert!(output.starts_with("pasta: "), "{output}");
    assert!(
        processes_with_arg(&pid_file).is_empty(),
        "nothing left running"
    );
}

/// rootlesskit's pasta driver: every address given, a PID target, ready when the parent
/// exits; loopback clients of forwards arrive from the namespace's loopback
/// (--host-lo-to-ns-lo); pasta ends when the target process does.
#[test]
fn rootlesskit_command_line() {
    let setup = Setup::new();
    let guest = setup.hs.guest();
    let pid = guest.pid.to_string();
    let (code, output) = setup.run(&[
        "--stderr",
        "--ns-ifname=tap0",
        "--mtu=65520",
        "--config-net",
        "--address=10.0.2.100",
        "--netmask=24",
        "--gateway=10.0.2.2",
        "--dns-forward=10.0.2.3",
        "--ipv4-only",
        "--tcp-ports=8095:80",
        "--udp-ports=none",
        "--host-lo-to-ns-lo",
        &pid,
    ]);
    assert_eq!(code, 0, "output: {output}");
    let netns = guest.netns_path();
    let links = ip_json_in(&netns, &["addr", "show", "tap0"]);
    assert_eq!(links[0]["addr_info"][0]["local"], "10.0.2.100");
    assert!(
        guest.ping("10.0.2.2"),
        "the gateway (host loopback) answers"
    );
    let guest_server = in_netns(&netns, || TcpListener::bind("0.0.0.0:80").unwrap());
    std::thread::spawn(move || {
        for conn in guest_server.incoming().flatten() {
            let peer = conn.peer_addr().unwrap().ip();
            let _ = (&conn).write_all(peer.to_string().as_bytes());
        }
    });
    assert_eq!(
        ask_from_host(&setup, "127.0.0.1:0", "127.0.0.1:8095"),
        "127.0.0.1"
    );
    // pasta and its helper in the namespace (its child) run on.
    let ours: Vec<u32> = processes_with_arg("--host-lo-to-ns-lo")
        .into_iter()
        .filter(|&p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == pid.as_bytes()))
        })
        .collect();
    let daemon: Vec<u32> = ours
        .iter()
        .copied()
        .filter(|&p| !ours.contains(&status_field(p, "PPid").parse().unwrap_or(0)))
        .collect();
    assert_eq!(daemon.len(), 1, "one pasta runs on: {ours:?}");
    drop(guest);
    wait_exited(daemon[0], Duration::from_secs(1));
}

/// `--tcp-ports=auto` (rootlesskit's implicit port driver): a port the namespace starts
/// listening on is forwarded from the host within a rescan, and stops being forwarded when the
/// namespace stops listening.
#[test]
fn auto_ports_follow_what_the_namespace_listens_on() {
    let setup = Setup::new();
    let guest = setup.hs.guest();
    let pid = guest.pid.to_string();
    let (code, output) = setup.run(&[
        "--config-net",
        "--address=10.0.2.100",
        "--netmask=24",
        "--gateway=10.0.2.2",
        "--ipv4-only",
        "--tcp-ports=auto",
        "--udp-ports=none",
        &pid,
    ]);
    assert_eq!(code, 0, "output: {output}");
    let host_port_open = |setup: &Setup| {
        in_netns(&setup.hs.netns_path(), || {
            TcpStream::connect_timeout(&"198.51.100.1:8097".parse().unwrap(), TIMEOUT).is_ok()
        })
    };
    assert!(!host_port_open(&setup), "nothing listens yet");
    let netns = guest.netns_path();
    let listener = in_netns(&netns, || TcpListener::bind("0.0.0.0:8097").unwrap());
    let accepting = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        for conn in accepting.incoming().flatten() {
            let peer = conn.peer_addr().unwrap().ip();
            let _ = (&conn).write_all(peer.to_string().as_bytes());
        }
    });
    wait_until(Duration::from_secs(3), "the port to be forwarded", || {
        host_port_open(&setup)
    });
    assert_eq!(
        ask_from_host(&setup, "198.51.100.1:0", "198.51.100.1:8097"),
        "198.51.100.1"
    );
    // Stop listening (shut the socket down: the accepting thread holds a clone).
    nix::sys::socket::shutdown(
        std::os::fd::AsRawFd::as_raw_fd(&listener),
        nix::sys::socket::Shutdown::Both,
    )
    .unwrap();
    drop(listener);
    wait_until(Duration::from_secs(3), "the forward to go", || {
        !host_port_open(&setup)
    });
}

/// A host address with a /32 and its router outside it, as cloud VMs have them: the default
/// route is on-link, and the router (the host's loopback here) answers.
#[test]
fn a_slash_32_address_gets_an_on_link_route() {
    let setup = Setup::new();
    let guest = setup.hs.guest();
    let pid = guest.pid.to_string();
    let (code, output) = setup.run(&[
        "--config-net",
        "--address=203.0.113.77",
        "--netmask=32",
        "--gateway=203.0.113.1",
        "--ipv4-only",
        "-t",
        "none",
        &pid,
    ]);
    assert_eq!(code, 0, "output: {output}");
    let routes = ip_json_in(&guest.netns_path(), &["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "203.0.113.1", "{routes}");
    assert!(
        routes[0]["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "onlink")),
        "{routes}"
    );
    assert!(guest.ping("203.0.113.1"));
}

/// `-T` (podman's `--network pasta:-T,PORT`): the namespace's 127.0.0.1:PORT reaches the host's
/// loopback, as mapped.
#[test]
fn tcp_ns_ports_reach_the_hosts_loopback() {
    let setup = Setup::new();
    let netns = setup.netns_path();
    let pid_file = setup.pid_file().display().to_string();
    let args = podman_args(
        &netns,
        &["-t", "none", "-T", "7010,7020:7021", "--pid", &pid_file],
    );
    let (code, output) = setup.run(&args);
    assert_eq!(code, 0, "output: {output}");
    host_server(&setup, "127.0.0.1:7010", "host loopback 7010");
    host_server(&setup, "127.0.0.1:7021", "host loopback 7021");
    assert_eq!(
        read_from_guest(&setup, "127.0.0.1:7010"),
        "host loopback 7010"
    );
    assert_eq!(
        read_from_guest(&setup, "127.0.0.1:7020"),
        "host loopback 7021"
    );
}

/// Exec mode, `pasta [OPTION]... [--] COMMAND`: a new namespace with the host's addresses, the
/// command run in it with its exit status passed on.
#[test]
fn exec_mode_runs_the_command_in_a_namespace_like_the_hosts() {
    let setup = Setup::new();
    host_server(&setup, "198.51.100.1:7004", "out there");
    let (code, output) = setup.run(&[
        "--config-net",
        "--",
        "sh",
        "-c",
        "ip -o -4 addr show hs0 && python3 -c \"import socket; \
         print(socket.create_connection(('198.51.100.1', 7004), timeout=5).recv(64).decode())\" \
         && exit 7",
    ]);
    assert_eq!(code, 7, "output: {output}");
    assert!(output.contains("inet 192.0.2.1/24"), "{output}");
    assert!(output.contains("out there"), "{output}");
}

/// rootlesskit's --detach-netns: `--userns=/proc/PID/ns/user --netns=PATH` instead of a PID,
/// and `--ipv6-only` leaves IPv4 off the interface.
#[test]
fn userns_and_netns_paths_and_ipv6_only() {
    let setup = Setup::new();
    let guest = setup.hs.guest_in_userns();
    let userns = guest.userns_path();
    let netns = guest.netns_path();
    let (code, output) = setup.run(&[
        "--config-net",
        "--ipv6-only",
        "--ns-ifname=tap0",
        &format!("--userns={userns}"),
        &format!("--netns={netns}"),
        "-t",
        "none",
    ]);
    assert_eq!(code, 0, "output: {output}");
    let links = ip_json_in(&netns, &["addr", "show", "tap0"]);
    let families: Vec<&str> = links[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] == "global")
        .map(|a| a["family"].as_str().unwrap())
        .collect();
    assert_eq!(families, ["inet6"], "{links}");
    host_server(&setup, "[2001:db8:1::1]:7005", "over IPv6");
    let stream = in_netns(&netns, || {
        TcpStream::connect_timeout(&"[2001:db8:1::1]:7005".parse().unwrap(), TIMEOUT)
    })
    .expect("IPv6 reaches host-sim");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut text = String::new();
    (&stream).read_to_string(&mut text).unwrap();
    assert_eq!(text, "over IPv6");
    // Given /proc/PID/ns/net, pasta ends with that process.
    let ours: Vec<u32> = processes_with_arg(&format!("--netns={netns}"));
    assert!(!ours.is_empty(), "pasta runs");
    drop(guest);
    for pid in ours {
        wait_exited(pid, Duration::from_secs(1));
    }
}

/// `-U`: a datagram to the namespace's 127.0.0.1:PORT reaches the host's loopback, as mapped,
/// and the reply comes back to the client.
#[test]
fn udp_ns_ports_reach_the_hosts_loopback() {
    let setup = Setup::new();
    let netns = setup.netns_path();
    let pid_file = setup.pid_file().display().to_string();
    let args = podman_args(
        &netns,
        &["-t", "none", "-U", "7030:7031", "--pid", &pid_file],
    );
    let (code, output) = setup.run(&args);
    assert_eq!(code, 0, "output: {output}");
    let echo = in_netns(&setup.hs.netns_path(), || {
        UdpSocket::bind("127.0.0.1:7031").unwrap()
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    for client in 0..2 {
        let socket = setup.in_guest(|| UdpSocket::bind("127.0.0.1:0").unwrap());
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        let message = format!("datagram from client {client}");
        socket
            .send_to(message.as_bytes(), "127.0.0.1:7030")
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = socket.recv_from(&mut buf).expect("the echo");
        assert_eq!(&buf[..n], message.as_bytes());
        assert_eq!(from, "127.0.0.1:7030".parse().unwrap());
    }
}

/// `-t all` with exclusions: every non-ephemeral port not excluded is bound (here 8100-8199),
/// on IPv4 and IPv6.
#[test]
fn all_ports_but_the_excluded_ones() {
    let setup = Setup::new();
    let netns = setup.netns_path();
    let pid_file = setup.pid_file().display().to_string();
    let args = podman_args(&netns, &["-t", "~1-8099,~8200-32767", "--pid", &pid_file]);
    let (code, output) = setup.run(&args);
    assert_eq!(code, 0, "output: {output}");
    guest_tells_client_address(&setup, "0.0.0.0:8150");
    assert_eq!(
        ask_from_host(&setup, "198.51.100.1:0", "198.51.100.1:8150"),
        "198.51.100.1"
    );
    let refused = in_netns(&setup.hs.netns_path(), || {
        TcpStream::connect_timeout(&"198.51.100.1:8250".parse().unwrap(), TIMEOUT).is_err()
    });
    assert!(refused, "an excluded port is not bound");
}

/// `-T auto`: a port the host starts listening on appears on the namespace's loopback within a
/// rescan; the published ports' own listeners are not offered back.
#[test]
fn tcp_ns_auto_offers_what_the_host_listens_on() {
    let setup = Setup::new();
    let netns = setup.netns_path();
    let pid_file = setup.pid_file().display().to_string();
    let args = podman_args(
        &netns,
        &["-t", "7050:7050", "-T", "auto", "--pid", &pid_file],
    );
    let (code, output) = setup.run(&args);
    assert_eq!(code, 0, "output: {output}");
    host_server(&setup, "127.0.0.1:7040", "host loopback 7040");
    let guest_reaches = |port: u16| {
        let dst = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        setup.in_guest(move || TcpStream::connect_timeout(&dst, TIMEOUT).is_ok())
    };
    wait_until(
        Duration::from_secs(3),
        "host port 7040 in the namespace",
        || guest_reaches(7040),
    );
    assert_eq!(
        read_from_guest(&setup, "127.0.0.1:7040"),
        "host loopback 7040"
    );
    assert!(
        !guest_reaches(7050),
        "the published port is not offered back"
    );
}

/// `-U auto`: a UDP port the host binds appears on the namespace's loopback within a rescan.
#[test]
fn udp_ns_auto_offers_what_the_host_binds() {
    let setup = Setup::new();
    let netns = setup.netns_path();
    let pid_file = setup.pid_file().display().to_string();
    let args = podman_args(&netns, &["-t", "none", "-U", "auto", "--pid", &pid_file]);
    let (code, output) = setup.run(&args);
    assert_eq!(code, 0, "output: {output}");
    let echo = in_netns(&setup.hs.netns_path(), || {
        UdpSocket::bind("127.0.0.1:7060").unwrap()
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let echoed = || {
        let socket = setup.in_guest(|| UdpSocket::bind("127.0.0.1:0").unwrap());
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let _ = socket.send_to(b"hello", "127.0.0.1:7060");
        let mut buf = [0u8; 16];
        socket
            .recv_from(&mut buf)
            .is_ok_and(|(n, _)| &buf[..n] == b"hello")
    };
    wait_until(
        Duration::from_secs(4),
        "host UDP port 7060 in the namespace",
        echoed,
    );
}
