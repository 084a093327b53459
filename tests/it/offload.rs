//! TAP offloads: the same byte-identical transfers with offloads on (virtio-net header, partial
//! checksums, TCP super-packets both ways, UDP segmentation) and off, at MTU 1500 and 65520,
//! over IPv4 and IPv6.

use crate::common;

use common::*;
use std::net::UdpSocket;
use std::time::Duration;

fn info(net: &Net) -> serde_json::Value {
    let reply = request(&net.sock, r#"{"execute":"get_info"}"#);
    serde_json::from_str::<serde_json::Value>(&reply).unwrap()["return"].clone()
}

fn start(offload: bool, mtu: &str) -> Net {
    let mut args = vec!["--enable-ipv6", "--mtu", mtu];
    if !offload {
        args.push("--no-offload");
    }
    let net = Net::new(&args);
    // IPv6 is ready at once (no duplicate address detection on the TAP), but give SLAAC its
    // round trip.
    wait_until(Duration::from_secs(5), "a SLAAC address", || {
        let out = net.guest.run(
            "ip",
            &["-6", "addr", "show", "dev", "tap0", "scope", "global"],
        );
        String::from_utf8_lossy(&out.stdout).contains("fd00:")
    });
    net
}

#[test]
fn transfers_are_intact_with_offloads_on_and_off() {
    for offload in [true, false] {
        for mtu in ["1500", "65520"] {
            let net = start(offload, mtu);
            assert_eq!(
                info(&net)["offload"],
                offload,
                "offload {offload}, MTU {mtu}"
            );
            for server in ["198.51.100.1:0", "[2001:db8:1::1]:0"] {
                net.transfer_both_ways(server, 8 << 20, 8 << 20);
            }
            let counters = &info(&net)["counters"];
            let partial = counters["partial_checksums_in"].as_u64().unwrap();
            let super_packets = counters["super_packets_out"].as_u64().unwrap();
            if offload {
                // The guest left checksums to us, and (where its MTU is smaller than a
                // super-packet) took super-packets from us.
                assert!(partial > 0, "MTU {mtu}: {counters}");
                assert_eq!(super_packets > 0, mtu == "1500", "MTU {mtu}: {counters}");
            } else {
                assert_eq!((partial, super_packets), (0, 0), "MTU {mtu}: {counters}");
            }
        }
    }
}

#[test]
fn udp_with_partial_checksums_and_segmentation_offload() {
    let net = start(true, "1500");
    let server = net.host(|| UdpSocket::bind("198.51.100.1:0").unwrap());
    server.set_read_timeout(Some(TIMEOUT)).unwrap();
    let addr = server.local_addr().unwrap();
    let client = net.in_guest(|| UdpSocket::bind("0.0.0.0:0").unwrap());
    client.connect(addr).unwrap();
    // Partial checksums: an ordinary datagram, which the guest's kernel leaves to us.
    client.send(b"checksum left to slirp-ns").unwrap();
    let mut buf = [0u8; 2048];
    let n = server.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"checksum left to slirp-ns");
    // UDP segmentation: one 10,000-byte send becomes ten 1,000-byte datagrams. Kernels without
    // UDP segmentation offload on TAP devices segment it themselves; either way the host sees
    // ten datagrams.
    let segment: libc::c_int = 1000;
    // SAFETY: setsockopt reads one int from the pointer; the socket is open.
    let set = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&client),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            &segment as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
    let payload = pattern(10_000, 5);
    client.send(&payload).unwrap();
    for chunk in payload.chunks(1000) {
        let n = server.recv(&mut buf).expect("each segment as a datagram");
        assert_eq!(&buf[..n], chunk);
    }
    let counters = &info(&net)["counters"];
    assert!(
        counters["partial_checksums_in"].as_u64().unwrap() >= 2,
        "{counters}"
    );
}
