//! The engine as a library, entirely in memory: no namespace, no TAP, no host socket. Two
//! stacks back to back (the frames of one are the other's guest, moved by the loop of
//! examples/in_memory.rs, whose own run is a test too), a program connecting through one to a
//! virtual listener of the other; a virtual UDP echo answering a guest datagram.

#[path = "../../examples/in_memory.rs"]
mod in_memory;

use crate::common::{pattern, tshark_fields};
use slirp_ns::{EngineConfig, Ipv4Network, Stack};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Packet,
    Ipv4Repr, UdpPacket, UdpRepr,
};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn stack() -> Stack {
    stack_with_mtu(1500)
}

fn stack_with_mtu(mtu: u32) -> Stack {
    Stack::new(EngineConfig::new(Ipv4Network::default()).with_mtu(mtu)).expect("a stack")
}

/// The example's loop, bounded: fails after `limit`.
fn run_back_to_back(a: &mut Stack, b: &mut Stack, done: impl Fn() -> bool, limit: Duration) {
    let start = Instant::now();
    in_memory::back_to_back(a, b, || {
        assert!(
            start.elapsed() < limit,
            "the exchange did not finish in {limit:?}"
        );
        done()
    })
    .unwrap();
}

/// A virtual listener on A (10.0.2.100:8080) and B's connection to it, its SYN handed over.
fn connect_to_a_virtual_listener(
    a: &mut Stack,
    b: &mut Stack,
) -> (slirp_ns::VirtualListener, std::os::unix::net::UnixStream) {
    let server_addr: SocketAddr = "10.0.2.100:8080".parse().unwrap();
    let listener = a.engine_mut().listen(server_addr).expect("listen");
    let mut unsent = Vec::new();
    let client = b
        .connect(server_addr, &mut |f| unsent.push(f.to_vec()))
        .expect("connect");
    for frame in &unsent {
        a.input(frame, &mut |_| {});
    }
    (listener, client)
}

#[test]
fn the_in_memory_example_runs() {
    in_memory::main().unwrap();
}

#[test]
fn ten_mib_each_way_through_two_stacks_to_a_virtual_listener() {
    for mtu in [1500, 65520] {
        exchange_through_two_stacks(mtu);
    }
}

fn exchange_through_two_stacks(mtu: u32) {
    const LEN: usize = 10 << 20;
    let (mut a, mut b) = (stack_with_mtu(mtu), stack_with_mtu(mtu));
    let (listener, client) = connect_to_a_virtual_listener(&mut a, &mut b);
    // Both programs must be done before the loop stops: either may finish first.
    let done = Arc::new(AtomicUsize::new(0));
    let server_done = done.clone();

    // The server: reads the request whole while answering with as much.
    let server = thread::spawn(move || {
        let (mut conn, peer) = listener.accept().expect("accept");
        let mut writer = conn.try_clone().unwrap();
        let sender = thread::spawn(move || {
            writer.write_all(&pattern(LEN, 2)).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        sender.join().unwrap();
        server_done.fetch_add(1, Ordering::Relaxed);
        (peer, got)
    });
    let client_done = done.clone();
    let client = thread::spawn(move || {
        let mut writer = client.try_clone().unwrap();
        let sender = thread::spawn(move || {
            writer.write_all(&pattern(LEN, 1)).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut reader = client;
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        sender.join().unwrap();
        client_done.fetch_add(1, Ordering::Relaxed);
        got
    });
    let both = || done.load(Ordering::Relaxed) == 2;
    run_back_to_back(&mut a, &mut b, both, Duration::from_secs(60));
    let answer = client.join().unwrap();
    let (peer, request) = server.join().unwrap();
    assert!(
        request == pattern(LEN, 1),
        "request of {} bytes differs",
        request.len()
    );
    assert!(
        answer == pattern(LEN, 2),
        "answer of {} bytes differs",
        answer.len()
    );
    assert_eq!(
        peer.ip(),
        Ipv4Addr::new(10, 0, 2, 2),
        "B's connection comes from its gateway"
    );
    let counters = a.engine().counters();
    assert!(counters.tcp_bytes_from_guest >= LEN as u64);
    assert_eq!(counters.dropped_malformed, 0);
}

/// A UDP datagram from the guest at 10.0.2.100:40000 to `to`, as an Ethernet frame.
fn guest_datagram(to: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let SocketAddr::V4(to) = to else { panic!() };
    let udp = UdpRepr {
        src_port: 40000,
        dst_port: to.port(),
    };
    let ip = Ipv4Repr {
        src_addr: Ipv4Addr::new(10, 0, 2, 100),
        dst_addr: *to.ip(),
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 0x64]),
        dst_addr: EthernetAddress([0x52, 0x55, 10, 0, 2, 2]),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut frame = vec![0u8; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
    let mut eth_frame = EthernetFrame::new_unchecked(&mut frame);
    eth.emit(&mut eth_frame);
    let mut ip_packet = Ipv4Packet::new_unchecked(eth_frame.payload_mut());
    let caps = smoltcp::phy::ChecksumCapabilities::default();
    ip.emit(&mut ip_packet, &caps);
    let mut udp_packet = UdpPacket::new_unchecked(ip_packet.payload_mut());
    udp.emit(
        &mut udp_packet,
        &ip.src_addr.into(),
        &ip.dst_addr.into(),
        payload.len(),
        |buf| buf.copy_from_slice(payload),
        &caps,
    );
    frame
}

/// The source, destination and payload of a UDP frame for the guest.
fn parse_datagram(frame: &[u8]) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp || !ip.verify_checksum() {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if !udp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()) {
        return None;
    }
    Some((
        SocketAddr::new(ip.src_addr().into(), udp.src_port()),
        SocketAddr::new(ip.dst_addr().into(), udp.dst_port()),
        udp.payload().to_vec(),
    ))
}

#[test]
fn a_virtual_udp_echo_answers_the_guest() {
    let mut stack = stack();
    // One endpoint outside the guest's network (reached through the gateway), one on the
    // gateway's own address.
    for echo_addr in ["192.0.2.7:7", "10.0.2.2:5353"] {
        let echo_addr: SocketAddr = echo_addr.parse().unwrap();
        let endpoint = stack.engine_mut().bind_udp(echo_addr).expect("bind");
        let echo = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            for _ in 0..3 {
                let (len, from) = endpoint.recv_from(&mut buf).unwrap();
                endpoint.send_to(&buf[..len], from).unwrap();
            }
            endpoint
        });
        let mut answers = Vec::new();
        for i in 0..3u8 {
            let payload = vec![i; 100 + usize::from(i) * 500];
            stack.input(&guest_datagram(echo_addr, &payload), &mut |f| {
                answers.push(f.to_vec())
            });
            let start = Instant::now();
            while answers.len() <= usize::from(i) {
                assert!(start.elapsed() < Duration::from_secs(5), "no echo");
                stack
                    .poll(Some(Duration::from_millis(10)), &mut |f| {
                        answers.push(f.to_vec())
                    })
                    .unwrap();
            }
            let guest: SocketAddr = "10.0.2.100:40000".parse().unwrap();
            assert_eq!(
                parse_datagram(&answers[usize::from(i)]),
                Some((echo_addr, guest, payload))
            );
        }
        let endpoint = echo.join().unwrap();
        assert_eq!(endpoint.local_addr(), echo_addr);
        assert!(
            stack.engine_mut().bind_udp(echo_addr).is_err(),
            "one endpoint per address"
        );
    }
}

#[test]
fn virtual_addresses_and_connect_destinations_are_checked() {
    let mut stack = stack();
    for bad in [
        "10.0.2.0:80",
        "10.0.2.255:80",
        "0.0.0.0:80",
        "224.0.0.1:80",
        "192.0.2.1:0",
    ] {
        let addr: SocketAddr = bad.parse().unwrap();
        assert!(stack.engine_mut().listen(addr).is_err(), "{bad}");
        assert!(stack.engine_mut().bind_udp(addr).is_err(), "{bad}");
    }
    let addr: SocketAddr = "192.0.2.80:80".parse().unwrap();
    let _listener = stack.engine_mut().listen(addr).unwrap();
    assert!(
        stack.engine_mut().listen(addr).is_err(),
        "one listener per address"
    );
    for not_guest in ["192.0.2.1:80", "10.0.2.2:80", "10.0.2.100:0"] {
        let addr = not_guest.parse().unwrap();
        assert!(
            stack.connect(addr, &mut |_| {}).is_err(),
            "connect reaches only the guest's own addresses: {not_guest}"
        );
    }
}

#[test]
fn a_dropped_listener_refuses_the_guest_and_ends_the_stream() {
    let (mut a, mut b) = (stack(), stack());
    let addr: SocketAddr = "10.0.2.100:8080".parse().unwrap();
    drop(a.engine_mut().listen(addr).unwrap());
    let mut client = b.connect(addr, &mut |_| {}).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let ended = done.clone();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 16];
        let outcome = client.read(&mut buf);
        ended.store(true, Ordering::Relaxed);
        outcome.map_err(|e| e.kind())
    });
    run_back_to_back(
        &mut a,
        &mut b,
        || done.load(Ordering::Relaxed),
        Duration::from_secs(10),
    );
    let outcome = reader.join().unwrap();
    assert!(
        matches!(outcome, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
        "the guest's refusal ends the stream: {outcome:?}"
    );
    assert!(a.engine().counters().tcp_resets >= 1, "A reset the SYN");
}

/// `Stack::set_capture` records what crosses the stack's guest side as `--pcap` and `--debug`
/// do: tshark reads the connection whole from the file.
#[test]
fn a_stack_records_its_guest_frames_in_a_pcap_file() {
    const LEN: usize = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("stack.pcap");
    let (mut a, mut b) = (stack(), stack());
    a.set_capture(slirp_ns::Capture::open(Some(&pcap), false).expect("the pcap file"));
    let (listener, client) = connect_to_a_virtual_listener(&mut a, &mut b);
    let done = Arc::new(AtomicBool::new(false));
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.write_all(&pattern(LEN, 3)).unwrap();
    });
    let client_done = done.clone();
    let client = thread::spawn(move || {
        let mut got = Vec::new();
        (&client).read_to_end(&mut got).unwrap();
        client_done.store(true, Ordering::Relaxed);
        got
    });
    run_back_to_back(
        &mut a,
        &mut b,
        || done.load(Ordering::Relaxed),
        Duration::from_secs(30),
    );
    server.join().unwrap();
    assert!(client.join().unwrap() == pattern(LEN, 3), "the download");
    drop(a);

    let rows = tshark_fields(
        &pcap,
        "tcp.port == 8080",
        &["ip.src", "tcp.flags.syn", "tcp.len"],
    );
    let syns = rows
        .iter()
        .filter(|r| r[1] == "1" || r[1] == "True")
        .count();
    assert_eq!(syns, 2, "SYN and SYN-ACK: {rows:?}");
    let served: usize = rows
        .iter()
        .filter(|r| r[0] == "10.0.2.100")
        .map(|r| r[2].parse::<usize>().unwrap_or(0))
        .sum();
    assert_eq!(served, LEN, "the server's bytes, whole, in the capture");
}
