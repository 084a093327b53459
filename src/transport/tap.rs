//! Frames on a TAP descriptor: one read returns one frame, one write sends one. With a
//! virtio-net header (IFF_VNET_HDR) each frame carries its offload metadata too
//! ([`super::vnet`]).

use super::vnet::{self, TxOffload, VNET_HDR_LEN};
use super::Recv;
use nix::errno::Errno;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// System calls on the TAP descriptor (for --enable-seccomp).
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_write,
    libc::SYS_writev,
];

nix::ioctl_read_bad!(tungetiff, libc::TUNGETIFF, libc::ifreq);
nix::ioctl_write_int_bad!(tunsetoffload, libc::TUNSETOFFLOAD);
nix::ioctl_write_ptr_bad!(tunsetvnetle, libc::TUNSETVNETLE, libc::c_int);
nix::ioctl_write_ptr_bad!(tunsetvnethdrsz, libc::TUNSETVNETHDRSZ, libc::c_int);

/// What the guest's kernel may leave to us: checksums, TCP segmentation (with ECN), and UDP
/// segmentation where the kernel has it (6.2+).
const OFFLOADS: libc::c_uint =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
const UDP_OFFLOADS: libc::c_uint = libc::TUN_F_USO4 | libc::TUN_F_USO6;

pub struct TapDevice {
    fd: OwnedFd,
    /// A SOCK_SEQPACKET socket rather than a TAP: a read of 0 bytes is the peer's end.
    socket: bool,
    /// Frames carry a virtio-net header.
    vnet: bool,
    /// The offloads the kernel took (TUN_F_*), 0 without a header.
    offloads: libc::c_uint,
}

impl TapDevice {
    /// Takes a TAP descriptor and makes it non-blocking. If it was opened with IFF_VNET_HDR,
    /// offloads are turned on when `offload` says so (and the kernel agrees).
    pub fn new(fd: OwnedFd, offload: bool) -> io::Result<Self> {
        crate::sys::set_nonblocking(fd.as_fd(), true)?;
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        // SAFETY: TUNGETIFF fills a struct ifreq, which `ifr` is; the fd is open.
        let vnet = unsafe { tungetiff(fd.as_raw_fd(), &mut ifr) }.is_ok()
            // SAFETY: TUNGETIFF set the flags member of the union.
            && i32::from(unsafe { ifr.ifr_ifru.ifru_flags }) & libc::IFF_VNET_HDR != 0;
        let mut tap = TapDevice {
            fd,
            socket: false,
            vnet,
            offloads: 0,
        };
        if vnet {
            let raw = tap.fd.as_raw_fd();
            let size = VNET_HDR_LEN as libc::c_int;
            // SAFETY: both ioctls read one int from the pointer given; the fd is open.
            unsafe { tunsetvnethdrsz(raw, &size) }?;
            // Little-endian fields everywhere (the default on little-endian machines; kernels
            // without cross-endian support refuse, harmlessly, there).
            let _ = unsafe { tunsetvnetle(raw, &1) };
            if offload {
                tap.offloads = [OFFLOADS | UDP_OFFLOADS, OFFLOADS, libc::TUN_F_CSUM]
                    .into_iter()
                    // SAFETY: TUNSETOFFLOAD takes its argument by value; the fd is open.
                    .find(|&flags| unsafe { tunsetoffload(raw, flags as libc::c_int) }.is_ok())
                    .unwrap_or(0);
            }
        }
        Ok(tap)
    }

    /// A connected SOCK_SEQPACKET socket (bess), carrying a frame per message as a TAP does.
    pub fn seqpacket(fd: OwnedFd) -> io::Result<Self> {
        crate::sys::set_nonblocking(fd.as_fd(), true)?;
        Ok(TapDevice {
            fd,
            socket: true,
            vnet: false,
            offloads: 0,
        })
    }

    /// Whether frames from the guest may be large and partly checksummed, and frames to it
    /// may be too.
    pub fn offloads(&self) -> bool {
        self.offloads & libc::TUN_F_TSO4 != 0
    }

    /// Whether frames may be UDP super-datagrams (the kernel took USO).
    pub fn udp_offloads(&self) -> bool {
        self.offloads & UDP_OFFLOADS == UDP_OFFLOADS
    }

    /// Reads one frame into `buf`.
    pub fn recv(&self, buf: &mut [u8]) -> Recv {
        let mut header = [0u8; VNET_HDR_LEN];
        loop {
            let read = if self.vnet {
                let mut iov = [IoSliceMut::new(&mut header), IoSliceMut::new(buf)];
                nix::sys::uio::readv(&self.fd, &mut iov).map(|n| n.saturating_sub(VNET_HDR_LEN))
            } else {
                nix::unistd::read(&self.fd, buf)
            };
            match read {
                Ok(0) if self.socket => return Recv::Gone("the guest closed the socket".into()),
                Ok(n) => {
                    let len = n.min(buf.len());
                    vnet::complete_inner_checksum(&header, &mut buf[..len]);
                    return Recv::Frame(n, vnet::parse(&header));
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Recv::Empty,
                Err(e) if self.socket => return Recv::Gone(format!("guest socket: {e}")),
                Err(e) => return Recv::Gone(format!("TAP device is gone ({e})")),
            }
        }
    }

    /// Writes one frame. EAGAIN (a bess socket whose peer has not read what it holds) means
    /// the frame was not taken: the caller keeps it until the descriptor is writable again. A
    /// TAP takes every frame (its kernel side drops what it cannot queue).
    pub fn send(&self, frame: &[u8], offload: &TxOffload) -> Result<(), Errno> {
        let header = vnet::header(offload);
        loop {
            let written = if self.vnet {
                nix::sys::uio::writev(&self.fd, &[IoSlice::new(&header), IoSlice::new(frame)])
            } else {
                nix::unistd::write(&self.fd, frame)
            };
            match written {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsFd for TapDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for TapDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
