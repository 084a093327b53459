//! The NAT through real namespaces: guest clients in the guest namespace, servers in host-sim.

use crate::common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const SERVER_V4: &str = "198.51.100.1";

#[test]
fn tcp_download_64_mib_and_upload_16_mib_arrive_intact() {
    transfer_both_ways(&Net::new(&[]));
}

#[test]
fn tcp_transfers_intact_without_so_peek_off() {
    // As on kernels before 6.10: every peek skips the bytes in flight.
    let hs = HostSim::new();
    let guest = hs.guest();
    let mut cmd = hs.command(BIN);
    cmd.args(["-r", "3", "-c", &guest.pid.to_string(), "tap0"]);
    let env = vec![("SLIRP_NS_NO_PEEK_OFF".to_string(), "1".to_string())];
    let mut slirp = Slirp::spawn(
        cmd,
        StartOptions {
            env,
            ..Default::default()
        },
    );
    slirp.expect_ready();
    transfer_both_ways(&Net::from_parts(hs, guest, slirp));
}

fn transfer_both_ways(net: &Net) {
    net.transfer_both_ways(&format!("{SERVER_V4}:0"), 64 << 20, 16 << 20);
}

#[test]
fn a_hundred_concurrent_connections_all_complete() {
    let net = Net::new(&[]);
    let listener = net.listen(&format!("{SERVER_V4}:0"));
    let addr = listener.local_addr().unwrap();
    const CONNS: usize = 100;
    let server = std::thread::spawn(move || {
        let mut handlers = Vec::new();
        for _ in 0..CONNS {
            let (mut conn, _) = listener.accept().unwrap();
            handlers.push(std::thread::spawn(move || {
                // Echo 64 KiB back, reversed, so each side checks the other.
                let mut buf = vec![0u8; 64 << 10];
                conn.read_exact(&mut buf).unwrap();
                buf.reverse();
                conn.write_all(&buf).unwrap();
            }));
        }
        for h in handlers {
            h.join().unwrap();
        }
    });
    let conns: Vec<TcpStream> = (0..CONNS).map(|_| net.connect(addr).unwrap()).collect();
    let clients: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(TIMEOUT)).unwrap();
                let data = pattern(64 << 10, i as u64 + 10);
                conn.write_all(&data).unwrap();
                let mut back = vec![0u8; data.len()];
                conn.read_exact(&mut back).unwrap();
                back.reverse();
                assert!(back == data, "connection {i} garbled");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap();
}

#[test]
fn udp_echo_including_a_datagram_larger_than_the_mtu() {
    let net = Net::new(&[]);
    let (addr, echo) = net.udp_echo(&format!("{SERVER_V4}:0"), 5);
    let client = net.udp_client(addr);
    let mut buf = vec![0u8; 65536];
    // The last two the guest sends in fragments (MTU 1500): put back together on the way.
    for (i, len) in [1usize, 1400, 1472, 4000, 60000].iter().enumerate() {
        let msg = pattern(*len, i as u64);
        client.send(&msg).unwrap();
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &msg[..]);
    }
    echo.join().unwrap();
    // A reply larger than the MTU reaches the guest as IPv4 fragments.
    let big_server = net.host(|| UdpSocket::bind(format!("{SERVER_V4}:0")).unwrap());
    let big_addr = big_server.local_addr().unwrap();
    let client = net.in_guest(|| UdpSocket::bind("0.0.0.0:0").unwrap());
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.send_to(b"hi", big_addr).unwrap();
    let (_, from) = big_server.recv_from(&mut buf).unwrap();
    let big = pattern(8000, 99);
    big_server.send_to(&big, from).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        &big[..],
        "fragmented reply reassembled by the guest"
    );
    let info: serde_json::Value =
        serde_json::from_str(&request(&net.sock, r#"{"execute":"get_info"}"#)).unwrap();
    let counters = &info["return"]["counters"];
    assert_eq!(counters["ip_reassembled"], 2, "{counters}");
    assert_eq!(counters["dropped_fragments"], 0);
    assert_eq!(info["return"]["reassembly_bytes"], 0, "nothing left over");
}

#[test]
fn a_ping_larger_than_the_mtu_is_answered() {
    let net = Net::new(&[]);
    net.hs.allow_ping_sockets();
    for addr in ["10.0.2.2", SERVER_V4] {
        let out = net
            .guest
            .run("ping", &["-c", "1", "-W", "5", "-s", "4000", addr]);
        assert!(
            out.status.success(),
            "ping -s 4000 {addr}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn udp_to_a_closed_port_gets_port_unreachable() {
    let net = Net::new(&[]);
    // A port nobody listens on: bind one, note it, close it.
    let port = net.host(|| {
        UdpSocket::bind(format!("{SERVER_V4}:0"))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    });
    let client = net.in_guest(|| UdpSocket::bind("0.0.0.0:0").unwrap());
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.connect(format!("{SERVER_V4}:{port}")).unwrap();
    let mut buf = [0u8; 16];
    let mut refused = false;
    for _ in 0..5 {
        let _ = client.send(b"anyone?");
        match client.recv(&mut buf) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => {}
        }
    }
    assert!(refused, "the guest hears ECONNREFUSED");
}

#[test]
fn ping_reaches_a_host_sim_address() {
    let net = Net::new(&[]);
    net.hs.allow_ping_sockets();
    assert!(net.guest.ping("192.0.2.1"), "ping through a ping socket");
    assert!(net.guest.ping("198.51.100.1"));
}

#[test]
fn tcp_connection_refused_fails_at_once() {
    let net = Net::new(&[]);
    let port = net
        .listen(&format!("{SERVER_V4}:0"))
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let err = net
        .connect(format!("{SERVER_V4}:{port}").parse().unwrap())
        .expect_err("nothing listens");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn tcp_to_an_unreachable_network_fails_at_once() {
    let net = Net::new(&[]);
    // host-sim has no default route: 203.0.113.1 is unreachable from it.
    let start = Instant::now();
    let err = net
        .connect("203.0.113.1:80".parse().unwrap())
        .expect_err("no route");
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH)
        ),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn gateway_reaches_host_loopback() {
    let net = Net::new(&[]);
    assert_eq!(
        net.greeting_via("127.0.0.1:0", "10.0.2.2", b"hello from host loopback"),
        "hello from host loopback"
    );
    // UDP too (the counterpart of the refusal test below).
    let server = net.host(|| UdpSocket::bind("127.0.0.1:0").unwrap());
    server.set_read_timeout(Some(TIMEOUT)).unwrap();
    let port = server.local_addr().unwrap().port();
    let client = net.in_guest(|| UdpSocket::bind("0.0.0.0:0").unwrap());
    client.send_to(b"x", format!("10.0.2.2:{port}")).unwrap();
    let mut buf = [0u8; 4];
    let (n, from) = server
        .recv_from(&mut buf)
        .expect("arrives on host loopback");
    assert_eq!(&buf[..n], b"x");
    assert!(from.ip().is_loopback());
}

#[test]
fn disable_host_loopback_makes_the_gateway_unreachable() {
    let net = Net::new(&["--disable-host-loopback"]);
    let listener = net.listen("127.0.0.1:0");
    let port = listener.local_addr().unwrap().port();
    let start = Instant::now();
    let err = net
        .connect(format!("10.0.2.2:{port}").parse().unwrap())
        .expect_err("host loopback is off limits");
    assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
    // Nor does UDP get through to a host loopback server.
    let server = net.host(|| UdpSocket::bind("127.0.0.1:0").unwrap());
    server
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let client = net.in_guest(|| UdpSocket::bind("0.0.0.0:0").unwrap());
    for _ in 0..3 {
        let _ = client.send_to(b"x", format!("10.0.2.2:{port}"));
    }
    let mut buf = [0u8; 4];
    assert!(server.recv_from(&mut buf).is_err(), "nothing arrives");
}

#[test]
fn the_flow_limit_refuses_cleanly() {
    let net = Net::new(&["--max-flows", "4"]);
    let listener = net.listen(&format!("{SERVER_V4}:0"));
    let addr = listener.local_addr().unwrap();
    // Each server side closes once its client has.
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            std::thread::spawn(move || {
                let _ = conn.read_to_end(&mut Vec::new());
            });
        }
    });
    let held: Vec<TcpStream> = (0..4)
        .map(|_| net.connect(addr).expect("within the limit"))
        .collect();
    let start = Instant::now();
    let err = net.connect(addr).expect_err("over the limit");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
    // Closing frees room again.
    drop(held);
    let mut ok = false;
    for _ in 0..50 {
        if net.connect(addr).is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "a connection fits again once others closed");
    let stderr = net.slirp.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn dns_relay_to_the_resolver_of_resolv_conf_over_udp_and_tcp() {
    // `ip netns exec` shows /etc/netns/NAME/resolv.conf as /etc/resolv.conf: slirp-ns, started
    // in host-sim that way, reads a loopback resolver from it.
    let hs = HostSim::new();
    let _conf = hs.resolv_conf("nameserver 127.0.0.53\n");
    let guest = hs.guest();
    let slirp = Slirp::start(&hs, &["-c", &guest.pid.to_string(), "tap0"]);
    let net = Net::from_parts(hs, guest, slirp);
    dns::serve(&net.hs.netns_path(), "127.0.0.53:53");
    dns::check_both_ways(&net, "10.0.2.3:53", dns::A, &dns::ANSWER_A);
}

#[test]
fn dns_server_option_overrides_resolv_conf() {
    let net = Net::new(&["--dns-server", "192.0.2.1"]);
    dns::serve(&net.hs.netns_path(), "192.0.2.1:53");
    dns::check_both_ways(&net, "10.0.2.3:53", dns::A, &dns::ANSWER_A);
}

#[test]
fn disable_dns_leaves_the_dns_address_silent() {
    let net = Net::new(&["--disable-dns", "--dns-server", "192.0.2.1"]);
    dns::serve(&net.hs.netns_path(), "192.0.2.1:53");
    let udp = net.in_guest(|| UdpSocket::bind("0.0.0.0:0").unwrap());
    udp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let _ = udp.send_to(&dns::query(1, "example.test", dns::A), "10.0.2.3:53");
    let mut buf = [0u8; 512];
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "no answer with --disable-dns"
    );
    assert!(!net.guest.ping("10.0.2.3"));
    // A TCP connection there times out, as with slirp4netns (the address is answered for, what
    // is sent to it lost), rather than failing with "no route to host" once ARP gives up.
    let refused = net.in_guest(|| {
        let dns = "10.0.2.3:53".parse().unwrap();
        std::net::TcpStream::connect_timeout(&dns, Duration::from_secs(5))
    });
    assert_eq!(
        refused.map(drop).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::TimedOut)
    );
}

/// A guest connection with TCP keepalive (probes after 1 s idle, every second, 3 unanswered
/// end it), idle for 10 s: slirp-ns must answer each probe, and the connection still work.
#[test]
fn an_idle_connection_with_keepalive_probes_stays_up_and_works() {
    use nix::sys::socket::{setsockopt, sockopt};
    let net = Net::new(&[]);
    let listener = net.listen(&format!("{SERVER_V4}:0"));
    let addr = listener.local_addr().unwrap();
    let server = serve_once(listener, |mut conn| {
        let mut request = [0u8; 5];
        conn.read_exact(&mut request).unwrap();
        conn.write_all(&request).unwrap();
    });
    let mut conn = net.connect(addr).unwrap();
    setsockopt(&conn, sockopt::KeepAlive, &true).unwrap();
    setsockopt(&conn, sockopt::TcpKeepIdle, &1).unwrap();
    setsockopt(&conn, sockopt::TcpKeepInterval, &1).unwrap();
    setsockopt(&conn, sockopt::TcpKeepCount, &3).unwrap();
    std::thread::sleep(Duration::from_secs(10));
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    conn.write_all(b"awake")
        .expect("the connection is still there");
    let mut echo = [0u8; 5];
    conn.read_exact(&mut echo).expect("and carries data");
    assert_eq!(&echo, b"awake");
    server.join().unwrap();
}

#[test]
fn guest_half_close_then_host_keeps_sending() {
    let net = Net::new(&[]);
    let listener = net.listen(&format!("{SERVER_V4}:0"));
    let addr = listener.local_addr().unwrap();
    let response = pattern(1 << 20, 5);
    let sent = response.clone();
    let server = serve_once(listener, move |mut conn| {
        let mut request = Vec::new();
        conn.read_to_end(&mut request).unwrap();
        assert_eq!(request, b"request, then my half of the connection closes");
        conn.write_all(&sent).unwrap();
    });
    let mut conn = net.connect(addr).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    conn.write_all(b"request, then my half of the connection closes")
        .unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    assert!(got == response, "response after the guest's FIN");
    server.join().unwrap();
}

#[test]
fn outbound_addr_sets_the_source_of_host_sockets() {
    for (option, expected) in [
        ("--outbound-addr=192.0.2.1", "192.0.2.1"),
        ("--outbound-addr=hs0", "192.0.2.1"),
    ] {
        let net = Net::new(&[option]);
        let listener = net.listen(&format!("{SERVER_V4}:0"));
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || listener.accept().unwrap().1);
        let _conn = net.connect(addr).unwrap();
        let peer = server.join().unwrap();
        assert_eq!(peer.ip().to_string(), expected, "{option}");
        // To the host's loopback (the gateway's address) too, as slirp4netns does.
        let listener = net.listen("127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || listener.accept().unwrap().1);
        let _conn = net
            .connect(format!("10.0.2.2:{port}").parse().unwrap())
            .unwrap();
        let peer = server.join().unwrap();
        assert_eq!(peer.ip().to_string(), expected, "{option}, to loopback");
    }
    // Without it, the host picks the source (here the server's own address, on the same link).
    let net = Net::new(&[]);
    let listener = net.listen(&format!("{SERVER_V4}:0"));
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || listener.accept().unwrap().1);
    let _conn = net.connect(addr).unwrap();
    assert_eq!(server.join().unwrap().ip().to_string(), SERVER_V4);
}

#[test]
fn without_ping_sockets_only_the_virtual_hosts_answer_and_it_is_said_once() {
    // host-sim keeps the default net.ipv4.ping_group_range ("1 0": nobody).
    let mut net = Net::new(&[]);
    assert!(!net.guest.ping("192.0.2.1"));
    assert!(!net.guest.ping("198.51.100.1"));
    assert!(net.guest.ping("10.0.2.2"));
    net.slirp.stop();
    let stderr = net.slirp.stderr();
    assert_eq!(
        stderr.matches("ping_group_range").count(),
        1,
        "one warning line: {stderr}"
    );
}

#[test]
fn a_guest_that_stops_reading_gets_everything_once_it_reads_again() {
    // The guest's receive buffer fills, its window closes, and slirp-ns must wait (probing)
    // and resume when the window opens, without losing or reordering a byte.
    let net = Net::new(&[]);
    let listener = net.listen(&format!("{SERVER_V4}:0"));
    let addr = listener.local_addr().unwrap();
    let data = pattern(24 << 20, 11);
    let sent = data.clone();
    let server = serve_once(listener, move |mut conn| {
        conn.write_all(&sent).unwrap();
    });
    let mut conn = net.connect(addr).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    assert!(got == data, "{} of {} bytes, intact", got.len(), data.len());
    server.join().unwrap();
}

/// With few descriptors (a soft and hard limit of 128), the flow limit follows the descriptor
/// budget: connections beyond it are refused at once, while DNS and ping still work and the
/// connections made keep working.
#[test]
fn the_descriptor_limit_caps_flows_and_dns_and_ping_still_work() {
    let hs = HostSim::new();
    hs.allow_ping_sockets();
    let guest = hs.guest();
    let dir = tempfile::tempdir().unwrap();
    let sock = socket_path(dir.path());
    let mut cmd = hs.command("prlimit");
    cmd.args([
        "--nofile=128:128",
        BIN,
        "-r",
        "3",
        "-c",
        "--dns-server",
        "192.0.2.1",
    ])
    .args(["-a", sock.to_str().unwrap(), &guest.pid.to_string(), "tap0"]);
    let mut slirp = Slirp::spawn(cmd, StartOptions::default());
    slirp.expect_ready();
    let net = Net::from_parts(hs, guest, slirp);
    let info: serde_json::Value =
        serde_json::from_str(&request(&sock, r#"{"execute":"get_info"}"#)).unwrap();
    let max_flows = info["return"]["max_flows"].as_u64().unwrap() as usize;
    assert!(
        max_flows < 128,
        "max_flows {max_flows} within 128 descriptors"
    );

    dns::serve(&net.hs.netns_path(), "192.0.2.1:53");
    let listener = net.listen(&format!("{SERVER_V4}:0"));
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            std::thread::spawn(move || {
                let mut byte = [0u8; 1];
                while conn.read_exact(&mut byte).is_ok() && conn.write_all(&byte).is_ok() {}
            });
        }
    });
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..max_flows + 10 {
        let start = Instant::now();
        match net.connect(addr) {
            Ok(conn) => held.push(conn),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
                assert!(start.elapsed() < Duration::from_secs(3), "refused at once");
                refused += 1;
            }
        }
    }
    assert!(refused >= 10, "{refused} refused, {} made", held.len());
    assert!(
        held.len() + 12 >= max_flows,
        "{} made of {max_flows}",
        held.len()
    );
    assert!(net.guest.ping(SERVER_V4), "ping with the table full");
    dns::check_both_ways(&net, "10.0.2.3:53", dns::A, &dns::ANSWER_A);
    for conn in held.iter_mut().step_by(10) {
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        conn.write_all(b"x").unwrap();
        let mut echo = [0u8; 1];
        conn.read_exact(&mut echo)
            .expect("a connection made still works");
    }
}
