//! The tests' own stand-in for User Mode Linux, QEMU or vde_plug: a TAP (or, for SLIP, a TUN)
//! device in the guest's namespace whose frames are carried to and from slirp-ns over a stream
//! or a socket in the transport's framing. Optionally it mixes noise into what it sends
//! (malformed and oversize frames, bad escapes) and splits the stream at random places, as a
//! real pipe or ssh session may.
//!
//! The framing is written here from the formats' definitions, not taken from slirp-ns, so that
//! a mistake in slirp-ns's codec cannot hide behind the same mistake in the test.

use super::Guest;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RFC 1055 SLIP of IP packets.
    Slip,
    /// 2-byte big-endian length, Ethernet frame.
    Len16,
    /// 4-byte big-endian length, Ethernet frame.
    Len32,
    /// One Ethernet frame per message (SOCK_SEQPACKET).
    Messages,
}

const END: u8 = 0xc0;
const ESC: u8 = 0xdb;

impl Framing {
    fn encode(self, frame: &[u8], out: &mut Vec<u8>) {
        match self {
            Framing::Slip => {
                out.push(END);
                for &b in frame {
                    match b {
                        END => out.extend_from_slice(&[ESC, 0xdc]),
                        ESC => out.extend_from_slice(&[ESC, 0xdd]),
                        _ => out.push(b),
                    }
                }
                out.push(END);
            }
            Framing::Len16 => {
                out.extend_from_slice(&(frame.len() as u16).to_be_bytes());
                out.extend_from_slice(frame);
            }
            Framing::Len32 => {
                out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
                out.extend_from_slice(frame);
            }
            Framing::Messages => out.extend_from_slice(frame),
        }
    }

    /// One piece of noise slirp-ns must drop and count as malformed; `n` picks which.
    fn noise(self, n: usize, out: &mut Vec<u8>) {
        match (self, n % 3) {
            // A bad escape; a packet that is no IP; one longer than the MTU.
            (Framing::Slip, 0) => out.extend_from_slice(&[END, ESC, 0x07, 0x45, END]),
            (Framing::Slip, 1) => self.encode(&[0x11; 30], out),
            (Framing::Slip, _) => self.encode(&[0x45; 4000], out),
            // An empty frame; one too short for an Ethernet header; one far over the MTU.
            (_, 0) if self != Framing::Messages => self.encode(&[], out),
            (_, 1) => self.encode(&[0xee; 5], out),
            (_, _) => self.encode(&vec![0x55; 9000], out),
        }
    }
}

/// Takes whole frames out of a byte stream in `framing`.
struct Deframer {
    framing: Framing,
    buf: Vec<u8>,
}

impl Deframer {
    fn next(&mut self) -> Option<Vec<u8>> {
        match self.framing {
            Framing::Slip => loop {
                let end = self.buf.iter().position(|&b| b == END)?;
                let raw: Vec<u8> = self.buf.drain(..=end).take(end).collect();
                if raw.is_empty() {
                    continue;
                }
                let mut packet = Vec::with_capacity(raw.len());
                let mut bytes = raw.iter();
                while let Some(&b) = bytes.next() {
                    packet.push(match (b, bytes.clone().next()) {
                        (ESC, Some(0xdc)) => END,
                        (ESC, Some(0xdd)) => ESC,
                        (ESC, _) => panic!("slirp-ns sent a bad SLIP escape"),
                        (b, _) => b,
                    });
                    if b == ESC {
                        bytes.next();
                    }
                }
                return Some(packet);
            },
            Framing::Len16 | Framing::Len32 => {
                let header = if self.framing == Framing::Len16 { 2 } else { 4 };
                if self.buf.len() < header {
                    return None;
                }
                let len = self.buf[..header]
                    .iter()
                    .fold(0usize, |l, &b| (l << 8) | usize::from(b));
                assert!(
                    len > 0 && len <= 1518,
                    "slirp-ns sent a frame of {len} bytes"
                );
                if self.buf.len() < header + len {
                    return None;
                }
                let frame = self.buf[header..header + len].to_vec();
                self.buf.drain(..header + len);
                Some(frame)
            }
            Framing::Messages => (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf)),
        }
    }
}

nix::ioctl_write_ptr_bad!(tunsetiff, libc::TUNSETIFF, libc::ifreq);

/// Makes `wire0` in the guest's namespace — a TAP, or a TUN for IP packets — and configures it
/// as `-c` would have configured tap0.
pub fn guest_device(guest: &Guest, ip_packets: bool) -> File {
    let flags = if ip_packets {
        libc::IFF_TUN
    } else {
        libc::IFF_TAP
    } | libc::IFF_NO_PI;
    let device = super::in_netns(&guest.netns_path(), move || {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .expect("open /dev/net/tun");
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"wire0") {
            *dst = *src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: TUNSETIFF reads a struct ifreq, which `ifr` is; the fd is open.
        unsafe { tunsetiff(file.as_raw_fd(), &ifr) }.expect("TUNSETIFF");
        file
    });
    for args in [
        "link set lo up",
        "link set wire0 up",
        "addr add 10.0.2.100/24 dev wire0",
        "route add default via 10.0.2.2 dev wire0",
    ] {
        guest.ip(args);
    }
    device
}

/// The two pump threads between the guest's device and slirp-ns.
pub struct Wire {
    stop: Arc<AtomicBool>,
    to_slirp: Option<JoinHandle<()>>,
    /// Pieces of noise sent so far.
    pub noise_sent: Arc<AtomicUsize>,
}

/// How the adapter sends: noise after every `noise_every`-th frame (0: none), and the stream
/// written in pieces of random length; and how it reads: at most `read_rate` bytes a second
/// (0: as fast as it can), as an emulator busy with its guest does.
#[derive(Clone, Copy, Default)]
pub struct Mangling {
    pub noise_every: usize,
    pub split: bool,
    pub read_rate: u64,
}

impl Wire {
    /// Pumps frames between `device` and slirp-ns: what the guest sends goes to `to_slirp`,
    /// what arrives on `from_slirp` goes to the guest.
    pub fn start(
        device: File,
        framing: Framing,
        mut to_slirp: Box<dyn Write + Send>,
        mut from_slirp: Box<dyn Read + Send>,
        mangling: Mangling,
    ) -> Wire {
        let stop = Arc::new(AtomicBool::new(false));
        let noise_sent = Arc::new(AtomicUsize::new(0));
        let device = Arc::new(device);
        let (dev, stopped, noise) = (device.clone(), stop.clone(), noise_sent.clone());
        let sender = std::thread::spawn(move || {
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            let mut frame = vec![0u8; 65536];
            let mut out = Vec::new();
            let mut frames = 0usize;
            while !stopped.load(Ordering::Relaxed) {
                use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
                let mut fds = [PollFd::new(dev.as_fd(), PollFlags::POLLIN)];
                if poll(&mut fds, PollTimeout::from(100u8)).unwrap_or(0) == 0 {
                    continue;
                }
                let Ok(n) = (&*dev).read(&mut frame) else {
                    return;
                };
                out.clear();
                framing.encode(&frame[..n], &mut out);
                frames += 1;
                if mangling.noise_every > 0 && frames % mangling.noise_every == 0 {
                    let which = noise.fetch_add(1, Ordering::Relaxed);
                    if framing == Framing::Messages {
                        if to_slirp.write_all(&out).is_err() {
                            return;
                        }
                        out.clear();
                    }
                    framing.noise(which, &mut out);
                }
                if framing == Framing::Messages || !mangling.split {
                    if to_slirp.write_all(&out).is_err() {
                        return;
                    }
                    continue;
                }
                let mut rest = &out[..];
                while !rest.is_empty() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let take = (1 + (rng % 700) as usize).min(rest.len());
                    if to_slirp.write_all(&rest[..take]).is_err() {
                        return;
                    }
                    rest = &rest[take..];
                    if take < 8 {
                        std::thread::yield_now();
                    }
                }
            }
        });
        std::thread::spawn(move || {
            let mut deframer = Deframer {
                framing,
                buf: Vec::new(),
            };
            // A slow reader reads a little at a time, and waits to keep to its rate.
            let slow = mangling.read_rate > 0;
            let mut chunk = vec![0u8; if slow { 16 << 10 } else { 1 << 17 }];
            let start = std::time::Instant::now();
            let mut total = 0u64;
            loop {
                let n = match from_slirp.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if slow {
                    total += n as u64;
                    let due = Duration::from_secs_f64(total as f64 / mangling.read_rate as f64);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                deframer.buf.extend_from_slice(&chunk[..n]);
                while let Some(frame) = deframer.next() {
                    // The guest's device may be gone at the end of a test.
                    let _ = (&*device).write(&frame);
                }
            }
        });
        Wire {
            stop,
            to_slirp: Some(sender),
            noise_sent,
        }
    }

    /// Stops sending and closes the stream towards slirp-ns.
    pub fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sender) = self.to_slirp.take() {
            let _ = sender.join();
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Both ends of a pipe, as files.
pub fn pipe() -> (File, File) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    (File::from(r), File::from(w))
}

/// Connects a SOCK_SEQPACKET socket to `path`.
pub fn connect_seqpacket(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}
