//! The library driving a real kernel: a [`Stack`] in this process serves a TAP in a guest
//! namespace (with the loop of examples/tap_server.rs, as an embedding program would), and the guest's own TCP and UDP reach
//! servers that exist only inside this process — virtual listeners and a virtual UDP endpoint.

use crate::common;
#[allow(dead_code)]
#[path = "../../examples/tap_server.rs"]
mod tap_server;

use common::wire::guest_device;
use common::*;
use slirp_ns::{EngineConfig, Ipv4Network, Ipv6Prefix, Stack, VirtualListener, VirtualUdpSocket};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs a stack on `tap` in host-sim's namespace (so that whatever host socket it might open
/// stays there) until `stop`; `setup` makes the virtual servers first.
fn drive<T: Send + 'static>(
    hs: &HostSim,
    tap: std::fs::File,
    stop: Arc<AtomicBool>,
    setup: impl FnOnce(&mut Stack) -> T + Send + 'static,
) -> T {
    let netns = hs.netns_path();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns).unwrap();
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let config = EngineConfig::new(Ipv4Network::default()).with_ipv6(Ipv6Prefix::default());
        let mut stack = Stack::new(config).unwrap();
        ready_tx.send(setup(&mut stack)).unwrap();
        tap_server::drive(&mut stack, &tap, &stop).unwrap();
    });
    ready.recv().unwrap()
}

#[test]
fn a_guest_kernel_reaches_servers_that_live_in_this_process() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let tap = guest_device(&guest, false);
    let stop = Arc::new(AtomicBool::new(false));
    // Beyond the gateway, on the gateway, and on the guest's own link (IPv4 and IPv6: the
    // stack answers ARP and neighbour solicitations for those).
    const SERVERS: [&str; 5] = [
        "192.0.2.80:80",
        "10.0.2.2:8080",
        "10.0.2.80:80",
        "[2001:db8::80]:80",
        "[fd00::80]:80",
    ];
    let (listeners, dns) = drive(&hs, tap, stop.clone(), |stack| {
        let engine = stack.engine_mut();
        let listeners: Vec<VirtualListener> = SERVERS
            .iter()
            .map(|addr| engine.listen(addr.parse().unwrap()).unwrap())
            .collect();
        let dns: VirtualUdpSocket = engine.bind_udp("10.0.2.3:53".parse().unwrap()).unwrap();
        (listeners, dns)
    });
    // The static address is the guest's own: no SLAAC address from the stack's router
    // advertisements beside it, which the kernel could pick as the source instead.
    run_ok(
        guest
            .command("sysctl")
            .args(["-qw", "net.ipv6.conf.wire0.autoconf=0"]),
    );
    guest.ip("-6 addr flush dev wire0 scope global dynamic");
    guest.ip("-6 addr add fd00::100/64 dev wire0 nodad");
    guest.ip("-6 route replace default via fe80::2 dev wire0");
    assert!(guest.ping("10.0.2.2"), "the stack answers for the gateway");

    for (listener, addr) in listeners.into_iter().zip(SERVERS) {
        let body = pattern(4 << 20, 5);
        let sent = body.clone();
        let server = std::thread::spawn(move || {
            let (mut conn, peer) = listener.accept().unwrap();
            let mut request = [0u8; 5];
            conn.read_exact(&mut request).unwrap();
            assert_eq!(&request, b"hello");
            conn.write_all(&sent).unwrap();
            peer
        });
        let addr: SocketAddr = addr.parse().unwrap();
        let got = in_netns(&guest.netns_path(), move || {
            let mut conn = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
            conn.set_read_timeout(Some(TIMEOUT)).unwrap();
            conn.write_all(b"hello").unwrap();
            let mut got = Vec::new();
            conn.read_to_end(&mut got).unwrap();
            got
        });
        let peer = server.join().unwrap();
        let guest_addr = if addr.is_ipv6() {
            "fd00::100"
        } else {
            "10.0.2.100"
        };
        assert_eq!(
            peer.ip().to_string(),
            guest_addr,
            "{addr}: the guest's own address"
        );
        assert!(
            got == body,
            "{addr}: {} bytes, not the 4 MiB sent",
            got.len()
        );
    }

    let answer = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = dns.recv_from(&mut buf).unwrap();
        dns.send_to(&buf[..n], from).unwrap();
        from
    });
    let echoed = in_netns(&guest.netns_path(), || {
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        udp.set_read_timeout(Some(TIMEOUT)).unwrap();
        udp.send_to(b"virtual dns?", "10.0.2.3:53").unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = udp.recv_from(&mut buf).unwrap();
        (buf[..n].to_vec(), from)
    });
    assert_eq!(echoed.0, b"virtual dns?");
    assert_eq!(echoed.1.to_string(), "10.0.2.3:53");
    assert_eq!(answer.join().unwrap().ip().to_string(), "10.0.2.100");
    stop.store(true, Ordering::Relaxed);
}
