//! What the guest and other users must not get: host loopback with --disable-host-loopback by
//! any address, the API socket of another user, capabilities slirp-ns no longer needs.

use crate::common;

use common::*;
use std::ffi::CString;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Another user than the one running the tests (root).
const OTHER_UID: u32 = 40126;

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP SYN from `src` to `dst` in an Ethernet frame from `from_mac` to `to_mac`, built by
/// hand: the guest's kernel would never send these destinations out of tap0.
fn syn_frame(from_mac: [u8; 6], to_mac: [u8; 6], src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20);
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&1000u32.to_be_bytes()); // sequence number
    tcp.extend_from_slice(&0u32.to_be_bytes()); // acknowledgement
    tcp.extend_from_slice(&[0x50, 0x02]); // 20-byte header, SYN
    tcp.extend_from_slice(&64240u16.to_be_bytes()); // window
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    let mut frame = Vec::new();
    frame.extend_from_slice(&to_mac);
    frame.extend_from_slice(&from_mac);
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            let pseudo = [&s.ip().octets()[..], &d.ip().octets(), &[0, 6, 0, 20]].concat();
            let sum = checksum(&[&pseudo, &tcp]);
            tcp[16..18].copy_from_slice(&sum.to_be_bytes());
            let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
            ip.extend_from_slice(&s.ip().octets());
            ip.extend_from_slice(&d.ip().octets());
            let sum = checksum(&[&ip]);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&[0x08, 0x00]);
            frame.extend_from_slice(&ip);
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            let pseudo = [
                &s.ip().octets()[..],
                &d.ip().octets(),
                &[0, 0, 0, 20, 0, 0, 0, 6],
            ]
            .concat();
            let sum = checksum(&[&pseudo, &tcp]);
            tcp[16..18].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&[0x86, 0xdd]);
            frame.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 64]);
            frame.extend_from_slice(&s.ip().octets());
            frame.extend_from_slice(&d.ip().octets());
        }
        _ => panic!("one family"),
    }
    frame.extend_from_slice(&tcp);
    frame
}

/// Sends `frames` out of the guest's tap0 as they are (an AF_PACKET socket).
fn inject(net: &Net, frames: Vec<Vec<u8>>) {
    net.in_guest(move || {
        let ifindex = nix::net::if_::if_nametoindex("tap0").unwrap();
        // SAFETY: plain socket calls on a descriptor we own; the address is a zeroed
        // sockaddr_ll with the fields AF_PACKET needs filled in.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "packet socket");
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex as i32;
            addr.sll_halen = 6;
            for frame in &frames {
                let sent = libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(sent, frame.len() as isize, "frame sent");
            }
            libc::close(fd);
        }
    });
}

fn mac_of(text: &str) -> [u8; 6] {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

/// How many connections `listener` accepts within `wait`.
fn accepted_within(listener: &TcpListener, wait: Duration) -> usize {
    listener.set_nonblocking(true).unwrap();
    let until = Instant::now() + wait;
    let mut count = 0;
    while Instant::now() < until {
        match listener.accept() {
            Ok(_) => count += 1,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    count
}

#[test]
fn host_loopback_is_off_limits_by_every_address() {
    let net = Net::new(&["--disable-host-loopback", "--enable-ipv6"]);
    // Host-loopback servers on one port, both families; and one on a host-sim address,
    // which the guest may reach (the control: injected frames do get through).
    let v4 = net.listen("127.0.0.1:0");
    let port = v4.local_addr().unwrap().port();
    let v6 = net.listen(&format!("[::1]:{port}"));
    let reachable = net.listen("192.0.2.1:0");
    let reachable_port = reachable.local_addr().unwrap().port();

    // What the guest's kernel can be made to send: connections to the gateways, the host's
    // own addresses and loopback, all refused or unanswered.
    for addr in [
        format!("10.0.2.2:{port}"),
        format!("[fd00::2]:{port}"),
        format!("192.0.2.1:{port}"),
        format!("198.51.100.1:{port}"),
        format!("[2001:db8::1]:{port}"),
    ] {
        let addr: SocketAddr = addr.parse().unwrap();
        let result = net
            .in_guest(move || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)));
        assert!(result.is_err(), "{addr} reached host loopback");
    }

    // What only a hand-made frame can carry: loopback, unspecified and IPv4-mapped
    // destinations, straight out of tap0.
    assert!(net.guest.ping("10.0.2.2"));
    let neigh = net
        .guest
        .ip_json(&["neigh", "show", "10.0.2.2", "dev", "tap0"]);
    let gateway_mac = mac_of(neigh[0]["lladdr"].as_str().unwrap());
    let link = net.guest.ip_json(&["link", "show", "tap0"]);
    let guest_mac = mac_of(link[0]["address"].as_str().unwrap());
    let mut link_local = String::new();
    wait_until(TIMEOUT, "tap0's link-local address", || {
        let addrs = net
            .guest
            .ip_json(&["-6", "addr", "show", "dev", "tap0", "scope", "link"]);
        // `ip -j` leaves an empty object for each address the filter skipped.
        link_local = addrs[0]["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|a| a["local"].as_str())
            .unwrap_or_default()
            .to_string();
        !link_local.is_empty()
    });
    let v4_src: SocketAddr = "10.0.2.100:40001".parse().unwrap();
    let v6_src: SocketAddr = format!("[{link_local}]:40001").parse().unwrap();
    let mut frames = Vec::new();
    for dst in [
        format!("127.0.0.1:{port}"),
        format!("127.1.2.3:{port}"),
        format!("0.0.0.0:{port}"),
    ] {
        frames.push(syn_frame(
            guest_mac,
            gateway_mac,
            v4_src,
            dst.parse().unwrap(),
        ));
    }
    for dst in [
        format!("[::1]:{port}"),
        format!("[::]:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
        format!("[::ffff:10.0.2.2]:{port}"),
    ] {
        frames.push(syn_frame(
            guest_mac,
            gateway_mac,
            v6_src,
            dst.parse().unwrap(),
        ));
    }
    let control: SocketAddr = format!("192.0.2.1:{reachable_port}").parse().unwrap();
    let control_src: SocketAddr = "10.0.2.100:40002".parse().unwrap();
    frames.push(syn_frame(guest_mac, gateway_mac, control_src, control));
    inject(&net, frames);

    assert_eq!(
        accepted_within(&reachable, Duration::from_secs(3)),
        1,
        "the control frame got through"
    );
    assert_eq!(accepted_within(&v4, Duration::from_millis(500)), 0);
    assert_eq!(accepted_within(&v6, Duration::from_millis(500)), 0);
}

/// Connects to the unix socket at `path` as OTHER_UID, sends `request` and returns the reply,
/// or the errno of the connect.
fn api_as_other_user(path: &std::path::Path, request: &[u8]) -> Result<Vec<u8>, i32> {
    let (mut reply_r, reply_w) = std::os::unix::net::UnixStream::pair().unwrap();
    let path = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: built before the fork so that the child only makes system calls.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as u16;
    for (dst, src) in addr.sun_path.iter_mut().zip(path.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    let mut answer = vec![0u8; 4096];
    // SAFETY: the child makes raw system calls only (no allocation, no locks) and leaves with
    // _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => unsafe {
            let out = reply_w.as_raw_fd();
            if libc::setgid(OTHER_UID) != 0 || libc::setuid(OTHER_UID) != 0 {
                libc::_exit(2);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let connected = libc::connect(
                fd,
                (&addr as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as u32,
            );
            if connected != 0 {
                let errno = *libc::__errno_location();
                let tag = [b'E', errno as u8];
                libc::write(out, tag.as_ptr().cast(), 2);
                libc::_exit(0);
            }
            libc::write(fd, request.as_ptr().cast(), request.len());
            libc::shutdown(fd, libc::SHUT_WR);
            libc::write(out, b"R".as_ptr().cast(), 1);
            loop {
                let n = libc::read(fd, answer.as_mut_ptr().cast(), answer.len());
                if n <= 0 {
                    break;
                }
                libc::write(out, answer.as_ptr().cast(), n as usize);
            }
            libc::_exit(0);
        },
        nix::unistd::ForkResult::Parent { child } => {
            drop(reply_w);
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut reply_r, &mut got).unwrap();
            nix::sys::wait::waitpid(child, None).unwrap();
            match got.first() {
                Some(b'E') => Err(i32::from(got[1])),
                Some(b'R') => Ok(got[1..].to_vec()),
                _ => panic!("the child reported nothing"),
            }
        }
    }
}

#[test]
fn the_api_socket_is_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let net = Net::new(&[]);
    let mode = std::fs::metadata(&net.sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "API socket mode");
    let list = br#"{"execute":"list_hostfwd"}"#;
    assert_eq!(api_as_other_user(&net.sock, list), Err(libc::EACCES));
    // Should the mode let others in (a user opened it up), slirp-ns still refuses them.
    std::fs::set_permissions(&net.sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let reply = api_as_other_user(&net.sock, list).expect("connected");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        r#"{"error":{"desc":"bad request: permission denied"}}"#
    );
    // Its owner is still served.
    assert_eq!(
        request(&net.sock, "{\"execute\":\"list_hostfwd\"}"),
        r#"{"entries":[]}"#
    );
}

#[test]
fn no_capabilities_but_binding_low_ports_after_start_up() {
    let net = Net::new(&["-p", "80:80"]);
    for set in ["CapEff", "CapPrm"] {
        assert_eq!(
            status_field(net.slirp.pid(), set),
            "0000000000000400",
            "{set}: only CAP_NET_BIND_SERVICE"
        );
    }
    // And that one is used: a forward from port 80 added through the API.
    let reply = request(
        &net.sock,
        r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":81,"guest_port":81}}"#,
    );
    assert_eq!(reply, r#"{"return":{"id":2}}"#);
}
