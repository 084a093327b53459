//! Port forwards, as the API and `-p` make them: TCP through the splice path and through the
//! TAP (with the client's address), slow readers, removal, resets, IPv6 and port 0, UDP flows
//! per client, many API clients at once, and a dead namespace helper.

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

#[test]
fn tcp_forward_carries_8_mib_and_shows_the_real_client_address() {
    forward_8_mib(&[], "10.0.2.100");
}

#[test]
fn tcp_forward_without_splice_shows_loopback_clients_as_the_gateway() {
    forward_8_mib(&["--no-splice"], "10.0.2.2");
}

/// An 8 MiB download through a forward from host loopback (seen by the guest as
/// `loopback_seen_as`) and from a host-sim address (seen as itself).
fn forward_8_mib(extra: &[&str], loopback_seen_as: &str) {
    let net = Net::new(extra);
    let port = net.free_port();
    assert_eq!(add_tcp(&net.sock, "", port, 80), r#"{"return":{"id":1}}"#);
    let body = pattern(8 << 20, 21);
    let server = net.guest_server(80, 2, body.clone());
    // From host loopback: spliced (the guest sees its own address), or through the TAP (the
    // guest sees the gateway).
    let (who, got) = net
        .fetch(format!("127.0.0.1:{port}").parse().unwrap())
        .unwrap();
    assert_eq!(who, loopback_seen_as);
    assert!(
        got == body,
        "8 MiB through the forward ({} bytes)",
        got.len()
    );
    // From a host-sim address: the guest sees that address.
    let (who, got) = net
        .fetch(format!("192.0.2.1:{port}").parse().unwrap())
        .unwrap();
    assert_eq!(who, "192.0.2.1");
    assert!(got == body);
    server.join().unwrap();
}

/// A spliced connection whose ends both read slowly, while both write: 16 MiB each way through
/// full sockets and pipes (each direction waits for its destination, then goes on), byte for
/// byte.
#[test]
fn a_spliced_forward_with_slow_readers_both_ways() {
    const SIZE: usize = 16 << 20;
    let net = Net::new(&[]);
    let port = net.free_port();
    add_tcp(&net.sock, "127.0.0.1", port, 80);
    let listener = net.in_guest(|| TcpListener::bind("0.0.0.0:80").unwrap());
    // Writes `body` from one thread while reading `SIZE` bytes slowly on this one.
    fn slow_exchange(conn: TcpStream, body: Vec<u8>) -> Vec<u8> {
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut writer = conn.try_clone().unwrap();
        let sender = std::thread::spawn(move || writer.write_all(&body).unwrap());
        let mut got = Vec::with_capacity(SIZE);
        let mut buf = vec![0u8; 256 << 10];
        while got.len() < SIZE {
            let n = (&conn).read(&mut buf).unwrap();
            assert!(n > 0, "ended after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
            // Slow: the other side's writes fill every buffer on the way.
            std::thread::sleep(Duration::from_millis(2));
        }
        sender.join().unwrap();
        got
    }
    let up = pattern(SIZE, 31);
    let down = pattern(SIZE, 32);
    let guest = {
        let down = down.clone();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            slow_exchange(conn, down)
        })
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = in_netns(&net.hs.netns_path(), move || {
        TcpStream::connect_timeout(&addr, TIMEOUT)
    })
    .unwrap();
    let got_down = slow_exchange(client, up.clone());
    let got_up = guest.join().unwrap();
    assert!(got_down == down, "guest -> client, byte for byte");
    assert!(got_up == up, "client -> guest, byte for byte");
}

/// Spliced connections are flows like the others: they count under --max-flows, one beyond
/// it is refused (reset, never reaching the guest), and a closed one makes room again.
#[test]
fn spliced_connections_count_under_max_flows() {
    let net = Net::new(&["--max-flows", "4"]);
    let port = net.free_port();
    add_tcp(&net.sock, "127.0.0.1", port, 80);
    let listener = net.in_guest(|| TcpListener::bind("0.0.0.0:80").unwrap());
    // Tells each client what address it comes from, then holds it until it closes.
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            std::thread::spawn(move || {
                let peer = conn.peer_addr().unwrap().ip();
                let _ = conn.write_all(format!("{peer}\n").as_bytes());
                let _ = conn.read_to_end(&mut Vec::new());
            });
        }
    });
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let netns = net.hs.netns_path();
    // A client from host loopback, and the first line the guest sent it: "" if none came,
    // the connection reset (a refused one may be reset before its connect call returns).
    let connect = move || {
        let conn = match in_netns(&netns, move || TcpStream::connect_timeout(&addr, TIMEOUT)) {
            Ok(conn) => conn,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (None, String::new())
            }
            Err(e) => panic!("connect: {e}"),
        };
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(&conn), &mut line);
        (Some(conn), line)
    };
    let mut held = Vec::new();
    for _ in 0..4 {
        let (conn, line) = connect();
        assert_eq!(
            line, "10.0.2.100\n",
            "spliced: the guest sees its own address"
        );
        held.push(conn);
    }
    let (_, line) = connect();
    assert_eq!(line, "", "a fifth connection is refused");
    let info = request(&net.sock, r#"{"execute":"get_info"}"#);
    assert!(
        !info.contains(r#""dropped_flow_table_full":0"#),
        "counted as refused for a full table: {info}"
    );
    drop(held.pop());
    let mut fits = false;
    for _ in 0..50 {
        if connect().1 == "10.0.2.100\n" {
            fits = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(fits, "a closed spliced connection makes room");
}

#[test]
fn a_removed_forward_refuses_connections() {
    let net = Net::new(&[]);
    let port = net.free_port();
    add_tcp(&net.sock, "127.0.0.1", port, 80);
    let server = net.guest_server(80, 1, b"up".to_vec());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(net.fetch(addr).unwrap().1, b"up");
    server.join().unwrap();
    assert_eq!(
        request(
            &net.sock,
            r#"{"execute":"remove_hostfwd","arguments":{"id":1}}"#
        ),
        r#"{"return":{}}"#
    );
    let err = net.fetch(addr).expect_err("nothing listens any more");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn a_forward_to_a_closed_guest_port_is_reset() {
    let net = Net::new(&[]);
    let port = net.free_port();
    add_tcp(&net.sock, "127.0.0.1", port, 81);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The host connection is accepted, then reset when the guest refuses.
    let result = net.fetch(addr);
    match result {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok((who, body)) => assert!(who.is_empty() && body.is_empty(), "got {who:?}"),
    }
}

#[test]
fn ipv6_host_address_and_port_zero() {
    let net = Net::new(&[]);
    let reply = add_tcp(&net.sock, "::1", 0, 80);
    assert_eq!(reply, r#"{"return":{"id":1}}"#);
    let list: serde_json::Value =
        serde_json::from_str(&request(&net.sock, r#"{"execute":"list_hostfwd"}"#)).unwrap();
    let entry = &list["entries"][0];
    assert_eq!(entry["host_addr"], "::1");
    let port = entry["host_port"].as_u64().unwrap();
    assert_ne!(port, 0, "the port the kernel picked is listed");
    let server = net.guest_server(80, 1, b"over IPv6".to_vec());
    let (who, body) = net.fetch(format!("[::1]:{port}").parse().unwrap()).unwrap();
    // Spliced: the guest sees the connection come from its own address.
    assert_eq!(
        (who.as_str(), body.as_slice()),
        ("10.0.2.100", &b"over IPv6"[..])
    );
    server.join().unwrap();
}

#[test]
fn publish_at_start_and_get_info() {
    let hs_port = 18080;
    let publish = format!("127.0.0.1:{hs_port}:80");
    let net = Net::new(&["-p", &publish, "--tcp-hold-memory=3"]);
    let list: serde_json::Value =
        serde_json::from_str(&request(&net.sock, r#"{"execute":"list_hostfwd"}"#)).unwrap();
    assert_eq!(list["entries"][0]["host_port"], hs_port);
    let server = net.guest_server(80, 1, b"published".to_vec());
    let (_, body) = net
        .fetch(format!("127.0.0.1:{hs_port}").parse().unwrap())
        .unwrap();
    assert_eq!(body, b"published");
    server.join().unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&request(&net.sock, r#"{"execute":"get_info"}"#)).unwrap();
    let info = &info["return"];
    assert_eq!(info["guest"], "10.0.2.100");
    assert_eq!(info["gateway"], "10.0.2.2");
    assert_eq!(info["mtu"], 1500);
    assert_eq!(info["forwards"], 1);
    assert_eq!(info["tcp_hold_memory"], 3 << 20, "--tcp-hold-memory in MiB");
    assert_eq!(info["tcp_held_bytes"], 0);
    assert!(info["counters"]["forwarded_connections"].as_u64().unwrap() >= 1);
    assert!(info["version"].is_string());
}

#[test]
fn a_hundred_api_clients_and_a_silent_one_do_not_stall_traffic() {
    let net = Net::new(&[]);
    let port = net.free_port();
    add_tcp(&net.sock, "127.0.0.1", port, 80);
    let body = pattern(32 << 20, 3);
    let server = net.guest_server(80, 1, body.clone());
    // One client connects and never writes.
    let silent = UnixStream::connect(&net.sock).unwrap();
    let transfer = {
        let hs = net.hs.netns_path();
        std::thread::spawn(move || {
            let mut conn = in_netns(&hs, move || {
                TcpStream::connect(("127.0.0.1", port)).unwrap()
            });
            conn.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut all = Vec::new();
            conn.read_to_end(&mut all).unwrap();
            all
        })
    };
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let sock = net.sock.clone();
            std::thread::spawn(move || request(&sock, r#"{"execute":"list_hostfwd"}"#))
        })
        .collect();
    for client in clients {
        let reply = client.join().unwrap();
        assert!(reply.starts_with(r#"{"entries":[{"id":1,"#), "{reply}");
    }
    let all = transfer.join().unwrap();
    let newline = all.iter().position(|b| *b == b'\n').unwrap();
    assert!(
        all[newline + 1..] == body[..],
        "transfer intact while the API was busy"
    );
    server.join().unwrap();
    drop(silent);
    assert!(net.slirp.stderr().lines().all(|l| !l.contains("panicked")));
}

#[test]
fn udp_forward_echo_with_per_client_flows() {
    use std::net::UdpSocket;
    let net = Net::new(&[]);
    let port = net.free_port();
    let reply = request(
        &net.sock,
        &format!(
            r#"{{"execute":"add_hostfwd","arguments":{{"proto":"udp","host_addr":"0.0.0.0","host_port":{port},"guest_port":5353}}}}"#
        ),
    );
    assert_eq!(reply, r#"{"return":{"id":1}}"#);
    // In the guest: echo each datagram back, prefixed with the sender's address.
    let server = in_netns(&net.guest.netns_path(), || {
        UdpSocket::bind("0.0.0.0:5353").unwrap()
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = server.recv_from(&mut buf) {
            let mut answer = format!("{} ", from.ip()).into_bytes();
            answer.extend_from_slice(&buf[..n]);
            let _ = server.send_to(&answer, from);
        }
    });
    for (source, seen) in [("127.0.0.1", "10.0.2.2"), ("192.0.2.1", "192.0.2.1")] {
        let client = in_netns(&net.hs.netns_path(), move || {
            UdpSocket::bind((source, 0)).unwrap()
        });
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let target = format!("{source}:{port}");
        let mut buf = [0u8; 2048];
        let mut answer = None;
        // The first datagram may go while slirp-ns still asks the guest for its MAC.
        for _ in 0..20 {
            client.send_to(b"ping", &target).unwrap();
            if let Ok((n, from)) = client.recv_from(&mut buf) {
                assert_eq!(from.to_string(), target, "the reply comes from the forward");
                answer = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                break;
            }
        }
        assert_eq!(answer.as_deref(), Some(format!("{seen} ping").as_str()));
    }
}

#[test]
fn connections_made_through_a_forward_outlive_its_removal() {
    let net = Net::new(&[]);
    let port = net.free_port();
    add_tcp(&net.sock, "", port, 80);
    // The guest server sends its first line, waits for a byte from the client, then the rest.
    let listener = in_netns(&net.guest.netns_path(), || {
        TcpListener::bind("0.0.0.0:80").unwrap()
    });
    let body = pattern(1 << 20, 8);
    let sent = body.clone();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut conn, _) = listener.accept().unwrap();
            let sent = sent.clone();
            std::thread::spawn(move || {
                conn.write_all(b"hello\n").unwrap();
                let mut go = [0u8; 1];
                conn.read_exact(&mut go).unwrap();
                conn.write_all(&sent).unwrap();
            });
        }
    });
    // One connection spliced (loopback), one through the TAP (host-sim address).
    let hs = net.hs.netns_path();
    let mut conns: Vec<TcpStream> = ["127.0.0.1", "192.0.2.1"]
        .iter()
        .map(|ip| {
            let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
            let mut conn = in_netns(&hs, move || TcpStream::connect(addr).unwrap());
            conn.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut hello = [0u8; 6];
            conn.read_exact(&mut hello).unwrap();
            assert_eq!(&hello, b"hello\n");
            conn
        })
        .collect();
    assert_eq!(
        request(
            &net.sock,
            r#"{"execute":"remove_hostfwd","arguments":{"id":1}}"#
        ),
        r#"{"return":{}}"#
    );
    for conn in &mut conns {
        conn.write_all(b"g").unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert!(rest == body, "the connection goes on after the removal");
    }
    server.join().unwrap();
}

/// The namespace helper killed: slirp-ns handles its end of file once (no spinning), forwards
/// from host loopback take the TAP from then on, and SIGTERM still ends it.
#[test]
fn a_dead_helper_costs_no_cpu_and_loopback_forwards_take_the_tap() {
    let mut net = Net::new(&[]);
    let port = net.free_port();
    assert_eq!(add_tcp(&net.sock, "", port, 80), r#"{"return":{"id":1}}"#);
    let body = pattern(1 << 20, 5);
    let server = net.guest_server(80, 2, body.clone());
    let loopback: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(net.fetch(loopback).unwrap().0, "10.0.2.100", "spliced");

    let helper = helper_of(net.slirp.pid());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(helper as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_idle(net.slirp.pid(), "after the helper died");
    let (who, got) = net.fetch(loopback).unwrap();
    assert_eq!(who, "10.0.2.2", "through the TAP now");
    assert!(
        got == body,
        "1 MiB through the forward ({} bytes)",
        got.len()
    );
    server.join().unwrap();
    assert_eq!(
        net.slirp
            .stderr()
            .matches("namespace helper exited")
            .count(),
        1,
        "logged once: {}",
        net.slirp.stderr()
    );
    assert!(net.slirp.stop().success());
}

/// A UDP forward removed and another added (in the freed slot): a flow of the first one's
/// client must not answer from the second one's socket; once the client writes to the second
/// forward, its flow answers from there.
#[test]
fn a_udp_flow_never_answers_from_a_later_forward() {
    use std::net::UdpSocket;
    let net = Net::new(&[]);
    let add_udp = |port: u16| {
        request(
            &net.sock,
            &format!(
                r#"{{"execute":"add_hostfwd","arguments":{{"proto":"udp","host_addr":"192.0.2.1","host_port":{port},"guest_port":5353}}}}"#
            ),
        )
    };
    let first = net.free_port();
    assert_eq!(add_udp(first), r#"{"return":{"id":1}}"#);
    // In the guest: echo each datagram; a datagram "again" makes it send once more, later, to
    // the last client.
    let server = in_netns(&net.guest.netns_path(), || {
        UdpSocket::bind("0.0.0.0:5353").unwrap()
    });
    let guest_side = server.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = server.recv_from(&mut buf) {
            let _ = server.send_to(&buf[..n], from);
        }
    });
    let client = in_netns(&net.hs.netns_path(), || {
        UdpSocket::bind("192.0.2.1:0").unwrap()
    });
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let exchange = |port: u16| -> Option<SocketAddr> {
        let mut buf = [0u8; 64];
        for _ in 0..20 {
            client.send_to(b"ping", ("192.0.2.1", port)).unwrap();
            if let Ok((_, from)) = client.recv_from(&mut buf) {
                return Some(from);
            }
        }
        None
    };
    let first_addr: SocketAddr = format!("192.0.2.1:{first}").parse().unwrap();
    assert_eq!(exchange(first), Some(first_addr));
    let seen_by_guest: SocketAddr = client.local_addr().unwrap();

    let remove = r#"{"execute":"remove_hostfwd","arguments":{"id":1}}"#;
    assert_eq!(request(&net.sock, remove), r#"{"return":{}}"#);
    let second = net.free_port();
    assert_eq!(add_udp(second), r#"{"return":{"id":2}}"#);
    // The guest answers the first forward's client on its old flow: nothing may arrive.
    guest_side.send_to(b"late", seen_by_guest).unwrap();
    let mut buf = [0u8; 64];
    let stray = client.recv_from(&mut buf);
    assert!(
        stray.is_err(),
        "a datagram arrived from {:?} for a removed forward",
        stray.map(|(_, from)| from)
    );
    // Through the second forward, the same client's flow answers from it.
    let second_addr: SocketAddr = format!("192.0.2.1:{second}").parse().unwrap();
    assert_eq!(exchange(second), Some(second_addr));
}
