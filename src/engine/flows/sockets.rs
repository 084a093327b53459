//! Making host sockets for flows: non-blocking, close-on-exec, bound to the outbound address
//! when one is set, connected (TCP: the connect completes later).

use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockProtocol, SockType,
    SockaddrStorage,
};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

/// System calls making and managing host sockets (for --enable-seccomp; ioctl is allowed for
/// a few requests only, see [`crate::confine::seccomp`]).
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    libc::SYS_socket,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept4,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_shutdown,
    libc::SYS_fcntl,
    libc::SYS_close,
];

/// Requested send buffer of host TCP sockets; the kernel clamps it to net.core.wmem_max.
const SEND_BUFFER: usize = 16 << 20;

fn family(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// A socket for `dst`, bound to `source` when it is of the same family. Loopback too: a local
/// address may talk to it, and scripts check that connections to the host's loopback come
/// from --outbound-addr, as with slirp4netns.
fn new_socket(
    dst: &SocketAddr,
    kind: SockType,
    protocol: Option<SockProtocol>,
    source: Option<IpAddr>,
) -> io::Result<OwnedFd> {
    let fd = socket(
        family(dst),
        kind,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        protocol,
    )?;
    if let Some(source) = source {
        if source.is_ipv4() == dst.is_ipv4() {
            bind(
                fd.as_raw_fd(),
                &SockaddrStorage::from(SocketAddr::new(source, 0)),
            )?;
        }
    }
    Ok(fd)
}

/// Starts a TCP connection to `dst`; writability reports its outcome. Also returns the size of
/// its send buffer.
pub fn tcp_connect(
    dst: SocketAddr,
    source: Option<IpAddr>,
) -> io::Result<(mio::net::TcpStream, u32)> {
    let fd = new_socket(&dst, SockType::Stream, None, source)?;
    // Guest segments are already sized by the guest's own Nagle: pass them on at once.
    setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    let send_buffer = size_send_buffer(&fd);
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(dst)) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let stream = mio::net::TcpStream::from_std(std::net::TcpStream::from(fd));
    Ok((stream, send_buffer))
}

/// Sizes the send buffer of a TCP socket that carries guest data. It is the guest's receive
/// window (nothing else buffers the guest's data), and autotuning would never grow it: it grows
/// only for writers that overrun it, which we avoid. So ask for the most the host allows
/// (net.core.wmem_max caps it); the size is then fixed for the socket's life.
///
/// Returns the size the socket got. Every socket asks for the same, so the kernel's answer is
/// read back once and remembered (one system call less per connection).
pub fn size_send_buffer(fd: &impl std::os::fd::AsFd) -> u32 {
    static GRANTED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let _ = setsockopt(fd, sockopt::SndBuf, &SEND_BUFFER);
    *GRANTED.get_or_init(|| {
        let size = nix::sys::socket::getsockopt(fd, sockopt::SndBuf).unwrap_or(0);
        size.min(u32::MAX as usize) as u32
    })
}

/// A UDP socket connected to `dst`.
pub fn udp_connect(dst: SocketAddr, source: Option<IpAddr>) -> io::Result<mio::net::UdpSocket> {
    let fd = new_socket(&dst, SockType::Datagram, None, source)?;
    connect(fd.as_raw_fd(), &SockaddrStorage::from(dst))?;
    Ok(mio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd)))
}

/// An unprivileged ICMP echo ("ping") socket connected to `dst`. Fails with EACCES when the
/// host's net.ipv4.ping_group_range leaves this user out.
pub fn ping_connect(dst: SocketAddr, source: Option<IpAddr>) -> io::Result<mio::net::UdpSocket> {
    let protocol = match dst {
        SocketAddr::V4(_) => SockProtocol::Icmp,
        SocketAddr::V6(_) => SockProtocol::IcmpV6,
    };
    let fd = new_socket(&dst, SockType::Datagram, Some(protocol), source)?;
    connect(fd.as_raw_fd(), &SockaddrStorage::from(dst))?;
    // A ping socket reads and writes like a connected datagram socket.
    Ok(mio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd)))
}

/// Makes dropping `stream` reset the connection instead of closing it gracefully.
pub fn reset_on_close(stream: &mio::net::TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = setsockopt(stream, sockopt::Linger, &linger);
}
