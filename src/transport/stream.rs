//! Frames on a byte stream: stdin and stdout (`--target-type=stdio`, SLIP or 2-byte lengths),
//! or the unix stream socket QEMU connects to (`--target-type=qemu PATH`, 4-byte lengths).
//!
//! Reads fill a buffer from which the decoder takes whole frames; a frame split across reads
//! waits there for its rest. Frames for the guest are encoded into an output buffer written as
//! far as the stream takes it, the rest when it says it is writable again. While that buffer
//! holds [`OUTPUT_LIMIT`] bytes or more the link takes no frame (`EAGAIN`): the event loop
//! keeps them, and the engine makes no more, until the stream has taken what it holds. So a
//! slow reader at the other end slows the engine down instead of losing frames.
//!
//! SLIP carries IP packets, the engine Ethernet frames: each packet from the guest gets an
//! Ethernet header (from [`POINT_TO_POINT_PEER_MAC`] to the gateway) and each frame to it loses
//! its own; the engine, told the link is point-to-point, sends no ARP or neighbour discovery.

use super::framing::{Decoded, Decoder, Framing};
use super::{Recv, LINK, LINK_LISTENER, LINK_OUTPUT};
use crate::engine::wire::offload::RxOffload;
use crate::engine::POINT_TO_POINT_PEER_MAC;
use crate::transport::socket_path::SocketPath;
use mio::unix::SourceFd;
use mio::{Interest, Registry};
use nix::errno::Errno;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

/// System calls of stream links (for --enable-seccomp): the stream, accepting QEMU.
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_accept4,
    libc::SYS_close,
];

/// Bytes of frames waiting for the stream to take them, at which the link takes no more: a few
/// large frames, or a couple of hundred small ones.
pub const OUTPUT_LIMIT: usize = 256 << 10;

const ETHERNET_HEADER: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];

/// Where the stream comes from.
enum Source {
    /// stdin and stdout, there from the start; their end is slirp-ns's.
    Stdio,
    /// A listening socket; one peer at a time, which may go and come back.
    Listener { fd: OwnedFd, _path: SocketPath },
}

struct Peer {
    input: OwnedFd,
    /// None: the input is the output too (a socket).
    output: Option<OwnedFd>,
}

impl Peer {
    fn output(&self) -> &OwnedFd {
        self.output.as_ref().unwrap_or(&self.input)
    }
}

pub struct StreamLink {
    framing: Framing,
    decoder: Decoder,
    source: Source,
    peer: Option<Peer>,
    rx: Box<[u8]>,
    rx_start: usize,
    rx_end: usize,
    tx: Vec<u8>,
    tx_sent: usize,
    /// SLIP: the Ethernet header put before each packet from the guest.
    ethernet_header: [u8; ETHERNET_HEADER],
    /// stdio: why the stream ended.
    ended: Option<String>,
    dropped: u64,
}

impl StreamLink {
    fn new(framing: Framing, mtu: u32, gateway_mac: [u8; 6], source: Source) -> Self {
        // SLIP carries IP packets of up to the MTU; the others Ethernet frames, perhaps tagged.
        let max_frame = match framing {
            Framing::Slip => mtu as usize,
            _ => mtu as usize + ETHERNET_HEADER + 4,
        };
        let decoder = Decoder::new(framing, max_frame);
        let mut ethernet_header = [0u8; ETHERNET_HEADER];
        ethernet_header[..6].copy_from_slice(&gateway_mac);
        ethernet_header[6..12].copy_from_slice(&POINT_TO_POINT_PEER_MAC.0);
        StreamLink {
            framing,
            rx: vec![0; 2 * decoder.max_input()].into_boxed_slice(),
            decoder,
            source,
            peer: None,
            rx_start: 0,
            rx_end: 0,
            tx: Vec::new(),
            tx_sent: 0,
            ethernet_header,
            ended: None,
            dropped: 0,
        }
    }

    /// Frames on stdin and stdout. Standard output is then pointed at standard error, so that
    /// nothing printed later can corrupt the stream.
    pub fn stdio(framing: Framing, mtu: u32, gateway_mac: [u8; 6]) -> Result<Self, String> {
        let take = |fd: i32, name: &str| -> Result<OwnedFd, String> {
            // SAFETY: F_DUPFD_CLOEXEC only reads the descriptor number; a closed one is EBADF.
            let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
            if copy < 0 {
                return Err(format!("{name}: {}", std::io::Error::last_os_error()));
            }
            // SAFETY: `copy` is a new descriptor that nothing else owns.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(copy) };
            crate::sys::set_nonblocking(fd.as_fd(), true).map_err(|e| format!("{name}: {e}"))?;
            Ok(fd)
        };
        let input = take(libc::STDIN_FILENO, "stdin")?;
        let output = take(libc::STDOUT_FILENO, "stdout")?;
        // SAFETY: dup2 onto fd 1 only replaces what fd 1 refers to; `output` holds the stream.
        unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) };
        let mut link = Self::new(framing, mtu, gateway_mac, Source::Stdio);
        link.peer = Some(Peer {
            input,
            output: Some(output),
        });
        Ok(link)
    }

    /// Listens at `path` for QEMU (`-netdev stream,addr.type=unix,addr.path=PATH`).
    pub fn qemu(path: &Path, mtu: u32) -> Result<Self, String> {
        let (fd, path) = SocketPath::listen(path, nix::sys::socket::SockType::Stream, "socket")?;
        Ok(Self::new(
            Framing::Len32,
            mtu,
            [0; 6],
            Source::Listener { fd, _path: path },
        ))
    }

    pub fn register(&mut self, registry: &Registry) -> std::io::Result<()> {
        let cannot_poll = |what: &str, e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!("cannot poll {what} (a pipe, socket or terminal is needed): {e}"),
            )
        };
        if let Source::Listener { fd, .. } = &self.source {
            registry.register(
                &mut SourceFd(&fd.as_raw_fd()),
                LINK_LISTENER,
                Interest::READABLE,
            )?;
        }
        if let Some(peer) = &self.peer {
            let input = peer.input.as_raw_fd();
            registry
                .register(&mut SourceFd(&input), LINK, Interest::READABLE)
                .map_err(|e| cannot_poll("stdin", e))?;
            if let Some(output) = &peer.output {
                let output = output.as_raw_fd();
                registry
                    .register(&mut SourceFd(&output), LINK_OUTPUT, Interest::WRITABLE)
                    .map_err(|e| cannot_poll("stdout", e))?;
            }
        }
        Ok(())
    }

    /// Takes the peers waiting on the listener: the first while none is connected; the others
    /// are closed at once (one guest at a time).
    pub fn accept(&mut self, registry: &Registry) {
        let Source::Listener { fd, .. } = &self.source else {
            return;
        };
        loop {
            let flags = nix::sys::socket::SockFlag::SOCK_NONBLOCK
                | nix::sys::socket::SockFlag::SOCK_CLOEXEC;
            let accepted = match crate::sys::accept(fd.as_fd(), flags) {
                Ok(accepted) => accepted,
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                Err(_) => return,
            };
            if self.peer.is_some() {
                log::warn!("a guest is connected already; refusing another");
                continue;
            }
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = registry.register(&mut SourceFd(&accepted.as_raw_fd()), LINK, interest)
            {
                log::warn!("cannot poll the guest's connection: {e}");
                continue;
            }
            log::info!("guest connected");
            self.peer = Some(Peer {
                input: accepted,
                output: None,
            });
        }
    }

    /// The stream is done with: stdio ends the run, a listener waits for the next peer.
    fn peer_gone(&mut self, why: String) -> Recv {
        self.rx_start = 0;
        self.rx_end = 0;
        self.tx.clear();
        self.tx_sent = 0;
        self.decoder.reset();
        match self.source {
            Source::Stdio => {
                self.ended.get_or_insert(why);
                Recv::Gone(self.ended.clone().unwrap_or_default())
            }
            Source::Listener { .. } => {
                log::info!("guest disconnected ({why}); waiting for the next");
                self.peer = None;
                Recv::Empty
            }
        }
    }

    /// Reads one frame into `buf` (room for the largest frame plus an Ethernet header).
    pub fn recv(&mut self, buf: &mut [u8]) -> Recv {
        if let Some(why) = &self.ended {
            return Recv::Gone(why.clone());
        }
        loop {
            let Some(peer) = &self.peer else {
                return Recv::Empty;
            };
            let ip = self.framing.carries_ip();
            let out = if ip {
                &mut buf[ETHERNET_HEADER..]
            } else {
                &mut buf[..]
            };
            let input = &self.rx[self.rx_start..self.rx_end];
            let (used, decoded) = self.decoder.decode(input, out);
            self.rx_start += used;
            match decoded {
                Decoded::Frame(len) if ip => match wrap_ip(self.ethernet_header, buf, len) {
                    Some(len) => return Recv::Frame(len, RxOffload::default()),
                    None => self.dropped += 1,
                },
                Decoded::Frame(len) => return Recv::Frame(len, RxOffload::default()),
                Decoded::Dropped => self.dropped += 1,
                Decoded::Skipped => {}
                Decoded::NeedMore => {
                    if self.rx_start == self.rx_end {
                        self.rx_start = 0;
                        self.rx_end = 0;
                    } else if self.rx_end == self.rx.len() {
                        self.rx.copy_within(self.rx_start..self.rx_end, 0);
                        self.rx_end -= self.rx_start;
                        self.rx_start = 0;
                    }
                    match nix::unistd::read(&peer.input, &mut self.rx[self.rx_end..]) {
                        Ok(0) => return self.peer_gone("end of stream".into()),
                        Ok(n) => self.rx_end += n,
                        Err(Errno::EINTR) => {}
                        Err(Errno::EAGAIN) => return Recv::Empty,
                        Err(e) => return self.peer_gone(e.to_string()),
                    }
                }
            }
        }
    }

    /// Queues one frame for the guest; [`StreamLink::flush`] writes it. EAGAIN while the
    /// output holds [`OUTPUT_LIMIT`] bytes or more (the frame is not taken).
    pub fn send(&mut self, frame: &[u8]) -> Result<(), Errno> {
        if self.peer.is_none() {
            return Ok(());
        }
        let payload = if self.framing.carries_ip() {
            match frame.get(12..14) {
                Some(t) if t == ETHERTYPE_IPV4 || t == ETHERTYPE_IPV6 => &frame[ETHERNET_HEADER..],
                // ARP and the like have no place on a point-to-point link.
                _ => return Ok(()),
            }
        } else {
            frame
        };
        let pending = self.tx.len() - self.tx_sent;
        if pending >= OUTPUT_LIMIT {
            return Err(Errno::EAGAIN);
        }
        if self.tx_sent > OUTPUT_LIMIT / 2 {
            self.tx.drain(..self.tx_sent);
            self.tx_sent = 0;
        }
        self.framing.encode(payload, &mut self.tx);
        Ok(())
    }

    /// Writes what is queued, as far as the stream takes it. Returns false once the stream is
    /// broken for good (stdio), so that the loop ends.
    pub fn flush(&mut self) -> bool {
        while self.tx_sent < self.tx.len() {
            let Some(peer) = &self.peer else {
                break;
            };
            match nix::unistd::write(peer.output(), &self.tx[self.tx_sent..]) {
                Ok(n) => self.tx_sent += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return true,
                Err(e) => {
                    let _ = self.peer_gone(format!("cannot write to the guest: {e}"));
                    break;
                }
            }
        }
        self.tx.clear();
        self.tx_sent = 0;
        self.ended.is_none()
    }

    /// Frames from the guest dropped since the last call (malformed, too long).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

/// Puts `header` before the IP packet of `len` bytes at `buf[14..]`, with the EtherType its
/// version says; None for what is no IP packet.
fn wrap_ip(mut header: [u8; ETHERNET_HEADER], buf: &mut [u8], len: usize) -> Option<usize> {
    let ethertype = match buf[ETHERNET_HEADER] >> 4 {
        4 => ETHERTYPE_IPV4,
        6 => ETHERTYPE_IPV6,
        _ => return None,
    };
    header[12..14].copy_from_slice(&ethertype);
    buf[..ETHERNET_HEADER].copy_from_slice(&header);
    Some(ETHERNET_HEADER + len)
}
