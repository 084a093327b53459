//! The few socket operations neither std nor nix wraps, each a thin safe function over one
//! system call. Everything `unsafe` about host sockets lives here.

/// A system call number, as the seccomp filter takes it (each module lists its own).
pub type Syscall = libc::c_long;

use nix::sys::socket::MsgFlags;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Sets SO_PEEK_OFF: where the next MSG_PEEK starts, counted from the first unread byte.
/// Each peek then moves it forward; consuming bytes moves it back by as many.
pub fn set_peek_offset(fd: BorrowedFd<'_>, offset: i32) -> io::Result<()> {
    // SAFETY: the option value is a c_int that lives across the call; its size is passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEEK_OFF,
            (&offset as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Whether TCP sockets take SO_PEEK_OFF (Linux 6.10 and later).
pub fn tcp_peek_offset_supported() -> bool {
    let Ok(sock) = std::net::TcpListener::bind("127.0.0.1:0") else {
        return false;
    };
    use std::os::fd::AsFd;
    set_peek_offset(sock.as_fd(), 0).is_ok()
}

/// Makes `fd` non-blocking (or blocking again).
pub fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    let flags = if nonblocking {
        flags | OFlag::O_NONBLOCK
    } else {
        flags & !OFlag::O_NONBLOCK
    };
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Most descriptors one message may pass (SCM_RIGHTS) to [`recv_with_fds`].
pub const MAX_PASSED_FDS: usize = 8;

/// Receives one message into `buf` with the descriptors passed along (SCM_RIGHTS, made
/// close-on-exec; at most [`MAX_PASSED_FDS`]): the message's length and the descriptors.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: MsgFlags,
) -> nix::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; MAX_PASSED_FDS]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC | flags,
    )?;
    let mut received = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed this descriptor for us; nothing owns it.
                received.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((msg.bytes, received))
}

/// Accepts a connection waiting on `listener`, with `flags` (SOCK_NONBLOCK, SOCK_CLOEXEC).
pub fn accept(
    listener: BorrowedFd<'_>,
    flags: nix::sys::socket::SockFlag,
) -> nix::Result<std::os::fd::OwnedFd> {
    let fd = nix::sys::socket::accept4(listener.as_raw_fd(), flags)?;
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// Throws away up to `len` bytes from the front of a TCP socket's receive queue without
/// copying them (MSG_TRUNC), returning how many went. (A unix stream socket's are read away.)
pub fn discard(fd: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: with MSG_TRUNC on a TCP socket the kernel writes nothing to the (null) buffer.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    if n >= 0 {
        return Ok(n as usize);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::EFAULT) {
        return Err(error);
    }
    // A unix stream (a virtual connection) has no MSG_TRUNC: it wants to copy, and refused the
    // null buffer before taking anything. Read the bytes away instead.
    let mut sink = [0u8; 16384];
    let mut done = 0;
    while done < len {
        let want = (len - done).min(sink.len());
        match nix::sys::socket::recv(fd.as_raw_fd(), &mut sink[..want], MsgFlags::MSG_DONTWAIT) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(nix::errno::Errno::EAGAIN) if done > 0 => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// Bytes in a TCP socket's send queue, sent but not acknowledged or not yet sent (SIOCOUTQ).
pub fn send_queue_len(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one c_int through the pointer, which is valid for the call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued) })?;
    Ok(queued.max(0) as usize)
}

/// Most datagrams one [`send_datagrams`] call passes to the kernel.
pub const MAX_DATAGRAM_BATCH: usize = 64;

/// Message headers for sendmmsg/recvmmsg: the first `count` each with one of `iovecs`, no
/// address and no control data.
fn message_headers(
    iovecs: &mut [libc::iovec; MAX_DATAGRAM_BATCH],
    count: usize,
) -> [libc::mmsghdr; MAX_DATAGRAM_BATCH] {
    // SAFETY: mmsghdr is plain old data; all-zero (no name, no control data) is valid.
    let mut headers: [libc::mmsghdr; MAX_DATAGRAM_BATCH] = unsafe { std::mem::zeroed() };
    for (header, iovec) in headers.iter_mut().zip(iovecs.iter_mut()).take(count) {
        header.msg_hdr.msg_iov = iovec;
        header.msg_hdr.msg_iovlen = 1;
    }
    headers
}

/// Sends datagrams on a connected socket with one sendmmsg(2): returns how many went (at least
/// one), or the error that stopped the first. At most [`MAX_DATAGRAM_BATCH`] are looked at.
pub fn send_datagrams(fd: BorrowedFd<'_>, datagrams: &[&[u8]]) -> io::Result<usize> {
    let count = datagrams.len().min(MAX_DATAGRAM_BATCH);
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_DATAGRAM_BATCH];
    for (iovec, datagram) in iovecs.iter_mut().zip(datagrams).take(count) {
        *iovec = libc::iovec {
            iov_base: datagram.as_ptr() as *mut libc::c_void,
            iov_len: datagram.len(),
        };
    }
    let mut headers = message_headers(&mut iovecs, count);
    // SAFETY: `count` headers each point at one iovec, which points into a datagram borrowed
    // for the call; the kernel only reads them (and writes msg_len).
    let sent = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            headers.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    check(sent).map(|n| n as usize)
}

/// Sends `datagrams` (all `segment_size` bytes long but the last, which may be shorter) on a
/// connected UDP socket as one message the kernel segments (UDP GSO, `UDP_SEGMENT`): one pass
/// through the stack for all of them. At most [`MAX_DATAGRAM_BATCH`] are passed.
pub fn send_segmented(
    fd: BorrowedFd<'_>,
    datagrams: &[&[u8]],
    segment_size: u16,
) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let count = datagrams.len().min(MAX_DATAGRAM_BATCH);
    let mut iov = [std::io::IoSlice::new(&[]); MAX_DATAGRAM_BATCH];
    for (slice, datagram) in iov.iter_mut().zip(datagrams).take(count) {
        *slice = std::io::IoSlice::new(datagram);
    }
    let cmsg = [ControlMessage::UdpGsoSegments(&segment_size)];
    sendmsg::<()>(
        fd.as_raw_fd(),
        &iov[..count],
        &cmsg,
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map(drop)
    .map_err(io::Error::from)
}

/// Receives up to `bufs.len()` (at most [`MAX_DATAGRAM_BATCH`]) datagrams with one recvmmsg(2),
/// each into its buffer; their lengths go to `lens`. Returns how many came (at least one), or
/// the error that stopped the first (EAGAIN when there was none).
pub fn recv_datagrams(
    fd: BorrowedFd<'_>,
    bufs: &mut [&mut [u8]],
    lens: &mut [usize],
) -> io::Result<usize> {
    recv_batch(fd, bufs, lens, None)
}

/// As [`recv_datagrams`], on an unconnected socket: each datagram's sender goes to `from`
/// (`None` for an address of another family than IP).
pub fn recv_datagrams_from(
    fd: BorrowedFd<'_>,
    bufs: &mut [&mut [u8]],
    lens: &mut [usize],
    from: &mut [Option<std::net::SocketAddr>],
) -> io::Result<usize> {
    recv_batch(fd, bufs, lens, Some(from))
}

fn recv_batch(
    fd: BorrowedFd<'_>,
    bufs: &mut [&mut [u8]],
    lens: &mut [usize],
    mut from: Option<&mut [Option<std::net::SocketAddr>]>,
) -> io::Result<usize> {
    let mut count = bufs.len().min(lens.len()).min(MAX_DATAGRAM_BATCH);
    if let Some(from) = &from {
        count = count.min(from.len());
    }
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_DATAGRAM_BATCH];
    for (iovec, buf) in iovecs.iter_mut().zip(bufs.iter_mut()).take(count) {
        *iovec = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
    }
    let mut headers = message_headers(&mut iovecs, count);
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut names: [libc::sockaddr_storage; MAX_DATAGRAM_BATCH] = unsafe { std::mem::zeroed() };
    if from.is_some() {
        for (header, name) in headers.iter_mut().zip(names.iter_mut()).take(count) {
            header.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        }
    }
    // SAFETY: `count` headers each point at one iovec, which points into a buffer borrowed
    // mutably for the call, and (when asked) at one sockaddr_storage of `names`; the kernel
    // writes at most iov_len bytes into each buffer and msg_namelen into each name.
    let received = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            headers.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let received = check(received)? as usize;
    for (len, header) in lens.iter_mut().zip(&headers).take(received) {
        *len = header.msg_len as usize;
    }
    if let Some(from) = &mut from {
        for (i, header) in headers.iter().enumerate().take(received) {
            use nix::sys::socket::SockaddrLike;
            // SAFETY: the kernel filled `names[i]` with an address of msg_namelen bytes.
            let name = unsafe {
                nix::sys::socket::SockaddrStorage::from_raw(
                    (&names[i] as *const libc::sockaddr_storage).cast(),
                    Some(header.msg_hdr.msg_namelen),
                )
            };
            from[i] = name.and_then(|name| {
                if let Some(v4) = name.as_sockaddr_in() {
                    Some(std::net::SocketAddr::V4((*v4).into()))
                } else {
                    name.as_sockaddr_in6()
                        .map(|v6| std::net::SocketAddr::V6((*v6).into()))
                }
            });
        }
    }
    Ok(received)
}

/// Points stdin, stdout and stderr at /dev/null, stderr at `log` when given: the caller reads
/// our output until it closes.
pub fn detach_stdio(log: Option<&std::fs::File>) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    let err_target = log.unwrap_or(&null);
    for (target, fd) in [(&null, 0), (&null, 1), (err_target, 2)] {
        // SAFETY: dup2 onto the standard descriptors, which this process owns.
        if unsafe { libc::dup2(target.as_raw_fd(), fd) } < 0 {
            return Err(format!("dup2: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Binds `fd` to the interface with `index` (SO_BINDTOIFINDEX: no privilege needed since
/// Linux 5.7 for a socket not bound to one yet).
pub fn bind_to_interface(
    fd: &std::os::fd::OwnedFd,
    index: std::num::NonZeroU32,
) -> std::io::Result<()> {
    let index = index.get() as libc::c_int;
    // SAFETY: the option's value is a c_int, passed with its size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            libc::SOL_SOCKET,
            libc::SO_BINDTOIFINDEX,
            (&raw const index).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
