//! IPv6 through real namespaces: SLAAC from our router advertisements, TCP, UDP, ICMPv6 echo and
//! DNS to host-sim's 2001:db8:: addresses, host loopback, --cidr6, port forwards.

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const SERVER_V6: &str = "2001:db8::1";
/// With --macaddress 02:11:22:33:44:55, SLAAC (EUI-64) gives the guest this address.
const GUEST_MAC: &str = "02:11:22:33:44:55";
const GUEST_V6: &str = "fd00::11:22ff:fe33:4455";

/// The guest's global (SLAAC) IPv6 addresses on tap0 that are ready for use.
fn global_addresses(guest: &Guest) -> Vec<Ipv6Addr> {
    let json = guest.ip_json(&["-6", "addr", "show", "dev", "tap0", "scope", "global"]);
    let mut found = Vec::new();
    for link in json.as_array().into_iter().flatten() {
        for addr in link["addr_info"].as_array().into_iter().flatten() {
            if addr["tentative"].as_bool() == Some(true) {
                continue;
            }
            if let Some(Ok(ip)) = addr["local"].as_str().map(str::parse) {
                found.push(ip);
            }
        }
    }
    found
}

fn default_route_via(guest: &Guest) -> Option<String> {
    let json = guest.ip_json(&["-6", "route", "show", "default"]);
    json.as_array()?.first()?["gateway"]
        .as_str()
        .map(str::to_owned)
}

/// Waits until the guest has a SLAAC address and a default route; returns the address.
pub(crate) fn wait_for_slaac(net: &Net) -> Ipv6Addr {
    let mut address = None;
    wait_until(Duration::from_secs(5), "a SLAAC address", || {
        address = global_addresses(&net.guest).first().copied();
        address.is_some() && default_route_via(&net.guest).is_some()
    });
    address.unwrap()
}

pub(crate) fn ipv6_net(extra: &[&str]) -> Net {
    let mut args = vec!["--enable-ipv6"];
    args.extend_from_slice(extra);
    let net = Net::new(&args);
    wait_for_slaac(&net);
    net
}

#[test]
fn the_guest_autoconfigures_within_two_seconds() {
    let net = Net::new(&["--enable-ipv6", "--macaddress", GUEST_MAC]);
    // Net::new returns once slirp-ns said it is ready.
    let start = Instant::now();
    let address = wait_for_slaac(&net);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "SLAAC took {took:?}");
    assert_eq!(address, GUEST_V6.parse::<Ipv6Addr>().unwrap());
    assert_eq!(default_route_via(&net.guest).as_deref(), Some("fe80::2"));
    // The link MTU comes from the advertisement too (here the same as the device's).
    let mtu = std::fs::read_to_string(format!(
        "/proc/{}/root/proc/sys/net/ipv6/conf/tap0/mtu",
        net.guest.pid
    ));
    if let Ok(mtu) = mtu {
        assert_eq!(mtu.trim(), "1500");
    }
    // Both virtual hosts answer ping and neighbour solicitations.
    assert!(net.guest.ping("fd00::2"));
    assert!(net.guest.ping("fd00::3"));
    assert!(net.guest.ping("fe80::2%tap0"));
}

#[test]
fn tcp_over_ipv6_both_ways_arrives_intact() {
    let net = ipv6_net(&[]);
    net.transfer_both_ways(&format!("[{SERVER_V6}]:0"), 16 << 20, 4 << 20);
}

#[test]
fn udp_echo_over_ipv6_including_a_fragmented_reply() {
    let net = ipv6_net(&[]);
    let server = net.host(|| UdpSocket::bind(format!("[{SERVER_V6}]:0")).unwrap());
    let addr = server.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        for _ in 0..5 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from).unwrap();
        }
        // One more, far larger than the MTU: it reaches the guest as IPv6 fragments.
        let (_, from) = server.recv_from(&mut buf).unwrap();
        server.send_to(&pattern(8000, 99), from).unwrap();
    });
    let client = net.udp_client(addr);
    let mut buf = vec![0u8; 65536];
    // The last two the guest sends in fragments: put back together on the way.
    for (i, len) in [1usize, 1000, 1452, 4000, 60000].iter().enumerate() {
        let msg = pattern(*len, i as u64);
        client.send(&msg).unwrap();
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &msg[..]);
    }
    client.send(b"big").unwrap();
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        &pattern(8000, 99)[..],
        "reassembled by the guest"
    );
    echo.join().unwrap();
}

#[test]
fn ping6_reaches_a_host_sim_address() {
    let net = ipv6_net(&[]);
    net.hs.allow_ping_sockets();
    assert!(
        net.guest.ping(SERVER_V6),
        "ICMPv6 echo through a ping socket"
    );
    assert!(net.guest.ping("2001:db8:1::1"));
}

#[test]
fn dns_aaaa_through_the_ipv6_dns_address() {
    let net = ipv6_net(&["--dns-server", SERVER_V6]);
    dns::serve(&net.hs.netns_path(), &format!("[{SERVER_V6}]:53"));
    dns::check_both_ways(&net, "[fd00::3]:53", dns::AAAA, &dns::ANSWER_AAAA);
}

#[test]
fn the_ipv6_gateway_reaches_host_loopback() {
    let net = ipv6_net(&[]);
    assert_eq!(
        net.greeting_via("[::1]:0", "fd00::2", b"hello from ::1"),
        "hello from ::1"
    );
}

#[test]
fn disable_host_loopback_makes_the_ipv6_gateway_unreachable() {
    let net = ipv6_net(&["--disable-host-loopback"]);
    let listener = net.listen("[::1]:0");
    let port = listener.local_addr().unwrap().port();
    let start = Instant::now();
    let err = net
        .connect(format!("[fd00::2]:{port}").parse().unwrap())
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3), "fails at once");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing reached ::1");
}

#[test]
fn cidr6_moves_the_prefix() {
    let net = Net::new(&["--enable-ipv6", "--cidr6", "2001:db8:5::/64"]);
    let address = wait_for_slaac(&net);
    assert_eq!(address.segments()[..4], [0x2001, 0xdb8, 5, 0], "{address}");
    assert!(net.guest.ping("2001:db8:5::2"));
    assert_eq!(
        net.greeting_via("[::1]:0", "2001:db8:5::2", b"moved"),
        "moved"
    );
}

/// A TCP server in the guest on [::]:`port` that answers each connection with the client's
/// address as it sees it.
fn guest_server(net: &Net, port: u16, connections: usize) -> std::thread::JoinHandle<()> {
    let listener = net.in_guest(move || TcpListener::bind(("::", port)).unwrap());
    std::thread::spawn(move || {
        for _ in 0..connections {
            let (mut conn, peer) = listener.accept().unwrap();
            let _ = conn.write_all(peer.ip().to_string().as_bytes());
        }
    })
}

/// Connects from host-sim to `addr` and returns what the guest server said.
fn fetch(net: &Net, addr: SocketAddr) -> String {
    let mut conn = net
        .host(move || TcpStream::connect_timeout(&addr, TIMEOUT))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    got
}

#[test]
fn port_forwards_to_the_guest_ipv6_address() {
    let publish = format!("[::]:0:[{GUEST_V6}]:80");
    let net = Net::new(&["--enable-ipv6", "--macaddress", GUEST_MAC, "-p", &publish]);
    wait_for_slaac(&net);
    let list: serde_json::Value =
        serde_json::from_str(&request(&net.sock, r#"{"execute":"list_hostfwd"}"#)).unwrap();
    let published = list["entries"][0]["host_port"].as_u64().unwrap() as u16;
    assert_eq!(list["entries"][0]["guest_addr"], GUEST_V6);

    // Over the API: an IPv4 listener into the guest's IPv6 address.
    let reply = request(
        &net.sock,
        &format!(
            r#"{{"execute":"add_hostfwd","arguments":{{"proto":"tcp","host_addr":"0.0.0.0","host_port":0,"guest_addr":"{GUEST_V6}","guest_port":80}}}}"#
        ),
    );
    assert!(reply.starts_with(r#"{"return":{"id":2}}"#), "{reply}");
    let list: serde_json::Value =
        serde_json::from_str(&request(&net.sock, r#"{"execute":"list_hostfwd"}"#)).unwrap();
    let api_port = list["entries"][1]["host_port"].as_u64().unwrap() as u16;

    let server = guest_server(&net, 80, 4);
    // A client on host-sim's IPv6 address is seen as itself; over IPv4 or loopback, as the
    // gateway (or, spliced, as a local peer).
    let seen = fetch(&net, format!("[{SERVER_V6}]:{published}").parse().unwrap());
    assert_eq!(seen, SERVER_V6);
    let seen = fetch(&net, format!("192.0.2.1:{api_port}").parse().unwrap());
    assert_eq!(seen, "fd00::2");
    let seen = fetch(&net, format!("[::1]:{published}").parse().unwrap());
    assert!(!seen.is_empty());
    let seen = fetch(&net, format!("127.0.0.1:{api_port}").parse().unwrap());
    assert!(!seen.is_empty());
    server.join().unwrap();
}

#[test]
fn without_enable_ipv6_nothing_answers_ipv6() {
    let net = Net::new(&[]);
    assert!(!net.guest.ping("fe80::2%tap0"), "no neighbour answers");
    assert!(global_addresses(&net.guest).is_empty(), "no advertisement");
    assert_eq!(default_route_via(&net.guest), None);
    let info: serde_json::Value =
        serde_json::from_str(&request(&net.sock, r#"{"execute":"get_info"}"#)).unwrap();
    let counters = &info["return"]["counters"];
    assert!(
        counters["dropped_unsupported"].as_u64().unwrap() > 0,
        "{counters}"
    );
    assert_eq!(counters["ndp_adverts"], 0);
    assert_eq!(info["return"]["ipv6"], serde_json::Value::Null);
}

#[test]
fn stateless_dhcpv6_names_the_dns_address_and_search_domains() {
    // `ip netns exec` shows /etc/netns/NAME/resolv.conf as /etc/resolv.conf to slirp-ns.
    let hs = HostSim::new();
    let _conf = hs.resolv_conf("nameserver 192.0.2.1\nsearch corp.example lab.example\n");
    let guest = hs.guest();
    let slirp = Slirp::start(&hs, &["-c", "-6", &guest.pid.to_string(), "tap0"]);
    let net = Net::from_parts(hs, guest, slirp);
    wait_for_slaac(&net);

    let (sock, tap0) = net.in_guest(|| {
        let index = nix::net::if_::if_nametoindex("tap0").unwrap();
        (UdpSocket::bind("[::]:546").unwrap(), index)
    });
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    // Information-Request, transaction 0x123456, with a client identifier (DUID-LL).
    let mut request = vec![11, 0x12, 0x34, 0x56];
    request.extend_from_slice(&[0, 1, 0, 10, 0, 3, 0, 1, 2, 0x11, 0x22, 0x33, 0x44, 0x55]);
    let server = std::net::SocketAddrV6::new("ff02::1:2".parse().unwrap(), 547, 0, tap0);
    sock.send_to(&request, server).unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = sock.recv_from(&mut buf).expect("a DHCPv6 reply");
    assert_eq!(from.port(), 547);
    let reply = &buf[..n];
    assert_eq!(
        &reply[..4],
        &[7, 0x12, 0x34, 0x56],
        "a Reply to our transaction"
    );
    let mut options = std::collections::HashMap::new();
    let mut rest = &reply[4..];
    while rest.len() >= 4 {
        let code = u16::from_be_bytes([rest[0], rest[1]]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        options.insert(code, rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    assert_eq!(options[&1], &request[8..], "our client identifier, echoed");
    assert!(options.contains_key(&2), "a server identifier");
    let dns: Ipv6Addr = <[u8; 16]>::try_from(&options[&23][..]).unwrap().into();
    assert_eq!(dns, "fd00::3".parse::<Ipv6Addr>().unwrap());
    assert_eq!(
        options[&24],
        b"\x04corp\x07example\x00\x03lab\x07example\x00".to_vec()
    );
}

#[test]
fn outbound_addr6_sets_the_source_of_host_sockets() {
    // hs0 holds 2001:db8::1; the server listens on hs1's 2001:db8:1::1.
    for option in ["--outbound-addr6=2001:db8::1", "--outbound-addr6=hs0"] {
        let net = ipv6_net(&[option]);
        let listener = net.listen("[2001:db8:1::1]:0");
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || listener.accept().unwrap().1);
        let _conn = net.connect(addr).unwrap();
        let peer = server.join().unwrap();
        assert_eq!(peer.ip().to_string(), SERVER_V6, "{option}");
    }
}

#[test]
fn refused_and_unreachable_over_ipv6_fail_at_once() {
    let net = ipv6_net(&[]);
    let closed = net.host(|| {
        let sock = TcpListener::bind(format!("[{SERVER_V6}]:0")).unwrap();
        sock.local_addr().unwrap().port()
    });
    for (target, errors) in [
        (format!("[{SERVER_V6}]:{closed}"), &[libc::ECONNREFUSED][..]),
        // host-sim has no IPv6 default route.
        (
            "[2001:db8:99::1]:80".to_string(),
            &[libc::ENETUNREACH, libc::EHOSTUNREACH][..],
        ),
    ] {
        let start = Instant::now();
        let err = net.connect(target.parse().unwrap()).unwrap_err();
        assert!(
            errors.contains(&err.raw_os_error().unwrap_or(0)),
            "{target}: {err}"
        );
        assert!(start.elapsed() < Duration::from_secs(3), "{target}");
    }
    // A closed UDP port: ICMPv6 port unreachable, which the guest's socket reports.
    let client = net.in_guest(|| UdpSocket::bind("[::]:0").unwrap());
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.connect(format!("[{SERVER_V6}]:9")).unwrap();
    client.send(b"anyone?").unwrap();
    let err = client.recv(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
}
