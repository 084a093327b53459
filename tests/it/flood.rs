//! Garbage from the guest: slirp-ns must drop and count it, keep running and keep answering.

use crate::common;

use common::*;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// xorshift64*, deterministic so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Sends raw frames out of `dev` in the network namespace at `netns` (from a thread of its own,
/// so this test process stays where it is). Returns how many the kernel took.
fn send_raw_frames(netns: &str, dev: &str, frames: impl Iterator<Item = Vec<u8>> + Send) -> usize {
    let netns = netns.to_string();
    let dev = dev.to_string();
    std::thread::scope(|s| {
        s.spawn(move || {
            let ns = File::open(&netns).expect("open guest netns");
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let index = nix::net::if_::if_nametoindex(dev.as_str()).expect("tap index");
            // SAFETY: plain socket(2); the result is checked and owned right away.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            assert!(
                raw >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: raw is a fresh descriptor we own.
            let sock = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: sockaddr_ll is plain data; zero is a valid starting value.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = index as i32;
            addr.sll_halen = 6;
            let mut sent = 0;
            for frame in frames {
                // SAFETY: frame and addr outlive the call; lengths are theirs.
                let n = unsafe {
                    libc::sendto(
                        sock.as_raw_fd(),
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&addr as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                if n >= 0 {
                    sent += 1;
                }
            }
            sent
        })
        .join()
        .expect("sender thread")
    })
}

/// A valid ARP request for the gateway from the guest, to mutate.
fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    f.extend_from_slice(&[10, 0, 2, 100, 0, 0, 0, 0, 0, 0, 10, 0, 2, 2]);
    f
}

fn garbage(count: usize, seed: u64) -> impl Iterator<Item = Vec<u8>> + Send {
    let mut rng = Rng(seed);
    let template = arp_request();
    (0..count).map(move |i| {
        if i % 2 == 0 {
            // Random bytes of random length, up to a full 1500-byte frame.
            let len = 14 + (rng.next() % 1501) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            // An almost valid frame: a few bytes changed, maybe cut short.
            let mut f = template.clone();
            for _ in 0..1 + rng.next() % 3 {
                let at = 14 + (rng.next() as usize) % (f.len() - 14);
                f[at] = rng.next() as u8;
            }
            f.truncate(f.len() - (rng.next() % 8) as usize);
            f
        }
    })
}

#[test]
fn garbage_flood_leaves_it_running_and_answering() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let mut cmd = hs.command(BIN);
    cmd.args(["-r", "3", "-c", &guest.pid.to_string(), "tap0"]);
    let mut slirp = Slirp::spawn(
        cmd,
        StartOptions {
            env: vec![("RUST_LOG".into(), "info".into())],
            ..Default::default()
        },
    );
    slirp.expect_ready();
    const FRAMES: usize = 50_000;
    let sent = send_raw_frames(
        &guest.netns_path(),
        "tap0",
        garbage(FRAMES, 0x9e3779b97f4a7c15),
    );
    assert!(sent > FRAMES / 2, "the kernel took only {sent} frames");
    assert!(slirp.is_running(), "still running: {}", slirp.stderr());
    assert!(
        guest.ping_within("10.0.2.2", std::time::Duration::from_secs(15)),
        "still answering after the flood"
    );
    assert!(slirp.stop().success());
    // The counters printed at exit account for the garbage.
    let stderr = slirp.stderr();
    let counters = stderr
        .lines()
        .find(|l| l.contains("frames_in "))
        .unwrap_or_else(|| panic!("no counters line in {stderr}"));
    let number_after = |label: &str| -> u64 {
        let rest = &counters[counters.find(label).expect(label) + label.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(number_after("frames_in ") >= sent as u64 / 2, "{counters}");
    assert!(number_after("dropped_malformed ") > 0, "{counters}");
}

/// TCP SYNs from the guest's address to many ports of `dst` (closed ones: each is refused by
/// host-sim's kernel, so every SYN costs slirp-ns a socket and a connect).
fn syn_flood(count: usize, dst: [u8; 4]) -> impl Iterator<Item = Vec<u8>> + Send {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;
    (0..count).map(move |i| {
        let src = Ipv4Address::new(10, 0, 2, 100);
        let dst = Ipv4Address::from(dst);
        let tcp = TcpRepr {
            src_port: 40000 + (i % 20000) as u16,
            dst_port: 20000 + (i % 5000) as u16,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(i as i32),
            ack_number: None,
            window_len: 64240,
            window_scale: Some(7),
            max_seg_size: Some(1460),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([0x02, 0xaa, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([0x52, 0x55, 10, 0, 2, 2]),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut frame = vec![0u8; eth.buffer_len() + ip.buffer_len() + tcp.buffer_len()];
        let caps = ChecksumCapabilities::default();
        let mut eth_frame = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.emit(&mut eth_frame);
        let mut packet = Ipv4Packet::new_unchecked(eth_frame.payload_mut());
        ip.emit(&mut packet, &caps);
        tcp.emit(
            &mut TcpPacket::new_unchecked(packet.payload_mut()),
            &src.into(),
            &dst.into(),
            &caps,
        );
        frame
    })
}

#[test]
fn garbage_and_syn_floods_leave_an_ongoing_transfer_intact() {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let hs = HostSim::new();
    let guest = hs.guest();
    let mut slirp = Slirp::start(&hs, &["-c", &guest.pid.to_string(), "tap0"]);
    let listener = in_netns(&hs.netns_path(), || {
        TcpListener::bind("198.51.100.1:0").unwrap()
    });
    let addr = listener.local_addr().unwrap();
    const SIZE: usize = 48 << 20;
    let data = pattern(SIZE, 7);
    let sent = data.clone();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        // Paced, so that the floods below hit the middle of the transfer.
        for chunk in sent.chunks(1 << 20) {
            conn.write_all(chunk).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        conn.shutdown(Shutdown::Write).unwrap();
    });
    let mut conn = in_netns(&guest.netns_path(), move || {
        TcpStream::connect(addr).unwrap()
    });
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let client = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(SIZE);
        conn.read_to_end(&mut got).map(|_| got)
    });
    let netns = guest.netns_path();
    send_raw_frames(&netns, "tap0", garbage(30_000, 0x1234_5678));
    send_raw_frames(&netns, "tap0", syn_flood(5_000, [198, 51, 100, 1]));
    send_raw_frames(&netns, "tap0", syn_flood(2_000, [203, 0, 113, 1]));
    let got = client.join().unwrap().expect("transfer completes");
    server.join().unwrap();
    assert!(
        got == data,
        "transfer intact ({} of {} bytes)",
        got.len(),
        data.len()
    );
    assert!(slirp.is_running());
    assert!(guest.ping_within("10.0.2.2", std::time::Duration::from_secs(15)));
    slirp.stop();
}
