//! Garbage from the guest: slirp-ns must drop and count it, keep running and keep answering.

mod common;

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
    assert!(guest.ping("10.0.2.2"), "still answering after the flood");
    assert!(slirp.stop().success());
    // The counters printed at exit account for the garbage.
    let stderr = slirp.stderr();
    let counters = stderr
        .lines()
        .find(|l| l.contains("frames in"))
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
    assert!(number_after("frames in") >= sent as u64 / 2, "{counters}");
    assert!(number_after("malformed") > 0, "{counters}");
}
