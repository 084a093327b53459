//! Two rootless nodes joined by VXLAN, as usernetes and k3s join theirs (flannel, UDP 8472):
//! two namespaces, each behind its own slirp-ns in host-sim, each publishing its VXLAN port
//! through a UDP forward on host-sim's 192.0.2.1. The tunnel between them carries ping and
//! 16 MiB of TCP each way, byte for byte.

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

const VXLAN_PORT: u16 = 8472;
const TRANSFER: usize = 16 << 20;

struct Node {
    guest: Guest,
    slirp: Slirp,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

/// A guest behind its own slirp-ns, its VXLAN port published on 192.0.2.1:`host_port`.
fn node(hs: &HostSim, host_port: u16) -> Node {
    let guest = hs.guest();
    let dir = tempfile::tempdir().unwrap();
    let sock = socket_path(dir.path());
    let pid = guest.pid.to_string();
    let slirp = Slirp::start(hs, &["-c", "-a", sock.to_str().unwrap(), &pid, "tap0"]);
    let reply = request(
        &sock,
        &format!(
            r#"{{"execute":"add_hostfwd","arguments":{{"proto":"udp","host_addr":"192.0.2.1","host_port":{host_port},"guest_port":{VXLAN_PORT}}}}}"#
        ),
    );
    assert!(reply.contains(r#""id""#), "{reply}");
    Node {
        guest,
        slirp,
        sock,
        _dir: dir,
    }
}

/// The node's end of the tunnel: vxlan0 with `overlay`/24, its frames to the other node's
/// published port `peer_port` on 192.0.2.1.
fn tunnel(node: &Node, overlay: &str, peer_port: u16) {
    node.guest.ip(&format!(
        "link add vxlan0 type vxlan id 42 dstport {VXLAN_PORT} nolearning"
    ));
    let fdb = node.guest.run(
        "bridge",
        &["fdb", "append", "00:00:00:00:00:00", "dev", "vxlan0"]
            .into_iter()
            .chain(["dst", "192.0.2.1", "port", &peer_port.to_string()])
            .collect::<Vec<_>>(),
    );
    assert!(
        fdb.status.success(),
        "{}",
        String::from_utf8_lossy(&fdb.stderr)
    );
    node.guest.ip(&format!("addr add {overlay}/24 dev vxlan0"));
    node.guest.ip("link set vxlan0 up");
}

/// Sends `up` to a server at `to` (in the other node) that answers with `down` at once.
fn exchange(from: &Node, to_guest: &Guest, to: &str, up: Vec<u8>, down: Vec<u8>) {
    let addr: std::net::SocketAddr = to.parse().unwrap();
    let listener = in_netns(&to_guest.netns_path(), move || {
        TcpListener::bind(addr).unwrap()
    });
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut writer = conn.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            writer.write_all(&down).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        (&conn).read_to_end(&mut got).unwrap();
        sender.join().unwrap();
        got
    });
    let conn = in_netns(&from.guest.netns_path(), move || {
        TcpStream::connect_timeout(&addr, TIMEOUT)
    })
    .expect("a connection through the tunnel");
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let up_len = up.len();
    let sender = std::thread::spawn(move || {
        writer.write_all(&up).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got_down = Vec::new();
    (&conn).read_to_end(&mut got_down).unwrap();
    sender.join().unwrap();
    let got_up = server.join().unwrap();
    assert_eq!(got_up.len(), up_len, "bytes through the tunnel one way");
    assert!(got_up == pattern(TRANSFER, 51), "the same bytes one way");
    assert!(got_down == pattern(TRANSFER, 52), "and the other");
}

#[test]
fn two_nodes_behind_slirp_ns_talk_over_vxlan() {
    let hs = HostSim::new();
    let (port_a, port_b) = (free_udp_port(&hs), free_udp_port(&hs));
    let a = node(&hs, port_a);
    let b = node(&hs, port_b);
    tunnel(&a, "203.0.113.1", port_b);
    tunnel(&b, "203.0.113.2", port_a);
    assert!(
        a.guest.ping_within("203.0.113.2", Duration::from_secs(5)),
        "ping through the tunnel"
    );
    exchange(
        &a,
        &b.guest,
        "203.0.113.2:9000",
        pattern(TRANSFER, 51),
        pattern(TRANSFER, 52),
    );
    for node in [&a, &b] {
        let reply = request(&node.sock, r#"{"execute":"get_info"}"#);
        let info: serde_json::Value = serde_json::from_str(&reply).unwrap();
        let counters = &info["return"]["counters"];
        for reason in [
            "tx_queue_full",
            "host_socket",
            "unresolved",
            "flow_table_full",
        ] {
            assert_eq!(counters[format!("dropped_{reason}")], 0, "{counters}");
        }
    }
    drop((a.slirp, b.slirp));
}

/// A UDP port free on host-sim's 192.0.2.1 now.
fn free_udp_port(hs: &HostSim) -> u16 {
    in_netns(&hs.netns_path(), || {
        std::net::UdpSocket::bind("192.0.2.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}
