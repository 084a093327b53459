//! UDP datagram streams through slirp-ns, byte for byte and in order: sequence-numbered
//! datagrams of sizes from 1 byte to 65507 (fragments beyond the MTU), in bursts of one size so
//! that they travel in runs (sendmmsg one way, super-datagrams to the guest the other), over
//! IPv4 and IPv6, with TAP offloads on and off, for flows the guest opens and through a UDP
//! port forward.

use crate::common;

use common::*;
use std::net::{SocketAddr, UdpSocket};

/// Sizes from the smallest to the largest datagram: around the MTU (1472 is the largest that
/// fits 1500 over IPv4; 1473 goes in fragments), and well beyond it.
const SIZES: [usize; 9] = [1, 8, 100, 1400, 1472, 1473, 8000, 32000, 65507];
/// Bursts of each size.
const BURSTS: usize = 3;

/// Datagrams per burst of `size`: as many as fit 64 KiB, from 1 to 32. A socket's default
/// buffer (about 208 KiB of memory, which a datagram takes more of than its bytes) holds such a
/// burst whole, so that no kernel on the way drops any.
fn burst_len(size: usize) -> usize {
    ((64 << 10) / size).clamp(1, 32)
}

/// How many datagrams [`echo_bursts`] sends.
fn datagram_count() -> usize {
    SIZES.iter().map(|&size| BURSTS * burst_len(size)).sum()
}

/// Datagram `seq` of `size` bytes: its sequence number first (where it fits), then a pattern
/// of its own.
fn datagram(seq: u64, size: usize) -> Vec<u8> {
    let mut data = pattern(size, seq);
    let head = size.min(8);
    data[..head].copy_from_slice(&seq.to_be_bytes()[..head]);
    data
}

/// Sends bursts of datagrams on `client` (connected to an echo) and checks that each comes
/// back as it was sent, in order; says what went wrong otherwise.
fn echo_bursts(client: &UdpSocket) -> Result<(), String> {
    let mut buf = vec![0u8; 65536];
    let mut seq = 0u64;
    for size in SIZES {
        for _ in 0..BURSTS {
            let burst: Vec<Vec<u8>> = (0..burst_len(size))
                .map(|_| {
                    seq += 1;
                    datagram(seq, size)
                })
                .collect();
            for sent in &burst {
                client.send(sent).unwrap();
            }
            for (i, sent) in burst.iter().enumerate() {
                let n = client
                    .recv(&mut buf)
                    .map_err(|e| format!("{size}-byte datagram {i} of a burst: {e}"))?;
                if buf[..n] != sent[..] {
                    return Err(format!(
                        "{size}-byte datagram {i} of a burst came back as {n} bytes, or changed"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Gives `socket` buffers of 8 MiB (as root, beyond rmem_max): a burst of datagrams in
/// fragments takes far more room in a socket than its bytes, and a guest or host kernel that
/// runs out of it drops them, as it would on any network.
fn big_buffers(socket: &UdpSocket) {
    let size: libc::c_int = 8 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: setsockopt reads one int from the pointer; the socket is open.
        let set = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(socket),
                libc::SOL_SOCKET,
                option,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
    }
}

/// Echoes `count` datagrams on `server`, on a thread; gives the addresses they came from.
fn echo(server: UdpSocket, count: usize) -> std::thread::JoinHandle<Vec<std::net::IpAddr>> {
    big_buffers(&server);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut peers = Vec::new();
        for _ in 0..count {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            if !peers.contains(&from.ip()) {
                peers.push(from.ip());
            }
            server.send_to(&buf[..n], from).unwrap();
        }
        peers
    })
}

/// Checks that the engine dropped none of the datagrams (other drops, of frames the guest's
/// kernel sends on its own such as router solicitations, are not these tests' business).
fn assert_none_dropped(counters: &serde_json::Value) {
    for reason in [
        "tx_queue_full",
        "host_socket",
        "fragments",
        "unresolved",
        "flow_table_full",
    ] {
        assert_eq!(counters[format!("dropped_{reason}")], 0, "{counters}");
    }
}

fn counters(net: &Net) -> serde_json::Value {
    let reply = request(&net.sock, r#"{"execute":"get_info"}"#);
    serde_json::from_str::<serde_json::Value>(&reply).unwrap()["return"]["counters"].clone()
}

/// The guest's flow to an echo server in host-sim at `server`.
fn guest_flow_round_trips(net: &Net, server: &str) {
    let server = server.to_string();
    let server = net.host(move || UdpSocket::bind(server).unwrap());
    let addr = server.local_addr().unwrap();
    let echo = echo(server, datagram_count());
    let client = net.udp_client(addr);
    big_buffers(&client);
    if let Err(e) = echo_bursts(&client) {
        panic!("{e}; counters: {}", counters(net));
    }
    echo.join().unwrap();
}

#[test]
fn datagram_streams_are_intact_over_ipv4_with_offloads_on_and_off() {
    for offload in [true, false] {
        let net = Net::new(if offload { &[] } else { &["--no-offload"] });
        guest_flow_round_trips(&net, "198.51.100.1:0");
        let counters = counters(&net);
        let super_datagrams = counters["super_packets_out"].as_u64().unwrap();
        // Runs of one size reach the guest as super-datagrams when the TAP takes them, and
        // the host in segmented sends either way.
        assert_eq!(
            super_datagrams > 0,
            offload,
            "offload {offload}: {counters}"
        );
        let segmented = counters["udp_segmented_sends"].as_u64().unwrap();
        assert!(segmented > 0, "offload {offload}: {counters}");
        assert_none_dropped(&counters);
    }
}

#[test]
fn datagram_streams_are_intact_over_ipv6() {
    let net = crate::ipv6::ipv6_net(&[]);
    guest_flow_round_trips(&net, "[2001:db8:1::1]:0");
    let counters = counters(&net);
    assert!(
        counters["super_packets_out"].as_u64().unwrap() > 0,
        "{counters}"
    );
    assert_none_dropped(&counters);
}

/// A client in host-sim, through a UDP forward, to an echo server in the guest: its
/// datagrams reach the guest from its own address, and the answers leave from the forward.
#[test]
fn datagram_streams_are_intact_through_a_udp_forward() {
    let net = Net::new(&[]);
    let port = net.free_port();
    let reply = request(
        &net.sock,
        &format!(
            r#"{{"execute":"add_hostfwd","arguments":{{"proto":"udp","host_addr":"192.0.2.1","host_port":{port},"guest_port":7000}}}}"#
        ),
    );
    assert!(reply.contains(r#""id""#), "{reply}");
    let server = net.in_guest(|| UdpSocket::bind("0.0.0.0:7000").unwrap());
    let echo = echo(server, datagram_count());
    let client = net.host(|| UdpSocket::bind("192.0.2.1:0").unwrap());
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    big_buffers(&client);
    client
        .connect(SocketAddr::from(([192, 0, 2, 1], port)))
        .unwrap();
    if let Err(e) = echo_bursts(&client) {
        panic!("{e}; counters: {}", counters(&net));
    }
    let peers = echo.join().unwrap();
    assert_eq!(
        peers,
        ["192.0.2.1".parse::<std::net::IpAddr>().unwrap()],
        "the guest sees the client's own address"
    );
    let counters = counters(&net);
    assert_none_dropped(&counters);
    assert!(
        counters["super_packets_out"].as_u64().unwrap() > 0,
        "runs from the client reach the guest as super-datagrams: {counters}"
    );
}
