//! pasta's options that restrict what it does: --no-tcp, --no-udp, --no-icmp, --runas (and
//! nobody instead of root), and forwards bound to an interface (`ADDR%IF/PORT`).

use crate::common;

use common::pasta::*;
use common::*;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

/// The real and effective ids of `pid`, from the Uid: and Gid: lines of its status.
fn ids_of(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace()
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    (line("Uid:"), line("Gid:"))
}

fn ping_from_guest(setup: &Setup, addr: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &setup.netns,
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            addr,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Whether a datagram from the guest to `dst` comes back from host-sim's echo there.
fn udp_echoes(setup: &Setup, dst: &str) -> bool {
    let dst: SocketAddr = dst.parse().unwrap();
    let echo = in_netns(&setup.hs.netns_path(), move || {
        UdpSocket::bind(dst).unwrap()
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let client = setup.in_guest(|| UdpSocket::bind("0.0.0.0:0").unwrap());
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    client.send_to(b"hello", dst).unwrap();
    let mut buf = [0u8; 64];
    client.recv_from(&mut buf).is_ok()
}

fn tcp_reaches(setup: &Setup, dst: &str) -> bool {
    let dst: SocketAddr = dst.parse().unwrap();
    setup
        .in_guest(move || TcpStream::connect_timeout(&dst, Duration::from_secs(1)))
        .is_ok()
}

/// --no-udp and --no-icmp: the guest's UDP and pings go nowhere while TCP works; then the
/// same network without them, where both work (so the first half is not an accident).
#[test]
fn no_udp_and_no_icmp_leave_only_tcp() {
    for off in [true, false] {
        let setup = Setup::new();
        setup.hs.allow_ping_sockets();
        let netns = setup.netns_path();
        let pid_file = setup.pid_file().display().to_string();
        let mut extra = vec!["--quiet", "--pid", &pid_file];
        if off {
            extra.extend(["--no-udp", "--no-icmp"]);
        }
        let (code, output) = setup.run(&podman_args(&netns, &extra));
        assert_eq!(code, 0, "output: {output}");
        host_server(&setup, "198.51.100.1:7101", "tcp works");
        assert_eq!(read_from_guest(&setup, "198.51.100.1:7101"), "tcp works");
        assert_eq!(
            udp_echoes(&setup, "198.51.100.1:7102"),
            !off,
            "UDP with --no-udp {off}"
        );
        assert_eq!(
            ping_from_guest(&setup, "198.51.100.1"),
            !off,
            "ping with --no-icmp {off}"
        );
    }
}

/// --no-tcp: a TCP forward is refused at start (pasta's words), and the guest's TCP goes
/// nowhere while its UDP works.
#[test]
fn no_tcp_refuses_tcp_forwards_and_connections() {
    let setup = Setup::new();
    let netns = setup.netns_path();
    let (code, output) = setup.run(&podman_args(&netns, &["--no-tcp", "-t", "8097:80"]));
    assert_eq!(code, 1);
    assert_eq!(
        output,
        "pasta: Can't add TCP forwarding rule, TCP not enabled\n"
    );
    let pid_file = setup.pid_file().display().to_string();
    let args = podman_args(&netns, &["--no-tcp", "-t", "none", "--pid", &pid_file]);
    let (code, output) = setup.run(&args);
    assert_eq!(code, 0, "output: {output}");
    host_server(&setup, "198.51.100.1:7103", "unheard");
    assert!(!tcp_reaches(&setup, "198.51.100.1:7103"), "TCP is off");
    assert!(udp_echoes(&setup, "198.51.100.1:7104"), "UDP is on");
}

/// Started as root, pasta runs as nobody once set up; --runas names another user and group.
/// Either way a port below 1024 is still bound (the capability for it is kept), also when a
/// client comes later.
#[test]
fn runs_as_nobody_or_the_runas_user() {
    for (runas, ids) in [
        (None, ("65534 65534", "65534 65534")),
        (Some("4242:4343"), ("4242 4242", "4343 4343")),
    ] {
        let setup = Setup::new();
        let netns = setup.netns_path();
        let pid_file = setup.pid_file().display().to_string();
        let mut extra = vec!["--quiet", "-t", "443:80", "--pid", &pid_file];
        if let Some(user) = runas {
            extra.extend(["--runas", user]);
        }
        let (code, output) = setup.run(&podman_args(&netns, &extra));
        assert_eq!(code, 0, "output: {output}");
        let pid = setup.daemon();
        let (uid, gid) = ids_of(pid);
        assert_eq!((uid.as_str(), gid.as_str()), ids, "--runas {runas:?}");
        guest_tells_client_address(&setup, "0.0.0.0:80");
        assert_eq!(
            ask_from_host(&setup, "198.51.100.1:0", "198.51.100.1:443"),
            "198.51.100.1"
        );
        // And the guest still reaches the world.
        host_server(&setup, "198.51.100.1:7105", "out there");
        assert_eq!(read_from_guest(&setup, "198.51.100.1:7105"), "out there");
    }
    let setup = Setup::new();
    let netns = setup.netns_path();
    let (code, output) = setup.run(&podman_args(&netns, &["--runas", "no-such-user-here"]));
    assert_eq!(code, 1);
    assert_eq!(output, "pasta: Invalid --runas option: no-such-user-here\n");
}

/// `%IF`: a forward bound to an interface takes only clients that arrive on it. host-sim's own
/// clients arrive on the interface of the address they connect to: lo for 127.0.0.1, hs0 for
/// 192.0.2.1.
#[test]
fn forwards_bound_to_an_interface() {
    let setup = Setup::new();
    let netns = setup.netns_path();
    let (code, output) = setup.run(&podman_args(&netns, &["-t", "%nosuch0/8100:80"]));
    assert_eq!(code, 1);
    assert_eq!(
        output,
        "pasta: -t %nosuch0/8100:80: no interface nosuch0 on the host\n"
    );
    let pid_file = setup.pid_file().display().to_string();
    let args = podman_args(
        &netns,
        &[
            "--quiet",
            "-t",
            "%lo/8098:80",
            "-t",
            "0.0.0.0%hs0/8099:80",
            "--pid",
            &pid_file,
        ],
    );
    let (code, output) = setup.run(&args);
    assert_eq!(code, 0, "output: {output}");
    guest_tells_client_address(&setup, "0.0.0.0:80");
    let connects = |dst: &'static str| {
        in_netns(&setup.hs.netns_path(), move || {
            TcpStream::connect_timeout(&dst.parse().unwrap(), TIMEOUT).is_ok()
        })
    };
    assert!(
        connects("127.0.0.1:8098"),
        "lo's forward takes lo's clients"
    );
    assert!(!connects("192.0.2.1:8098"), "and no others");
    // (From 192.0.2.1 itself: a socket bound to hs0 reaches other addresses only through hs0.)
    assert!(
        connects("192.0.2.1:8099"),
        "hs0's forward takes hs0's clients"
    );
    assert!(!connects("127.0.0.1:8099"), "and no others");
}
