//! Opening a TAP device: a new one, or an existing persistent one (as rootlesskit makes them).

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsRawFd, OwnedFd};

nix::ioctl_write_ptr_bad!(tunsetiff, libc::TUNSETIFF, libc::ifreq);
nix::ioctl_read_bad!(tungetiff, libc::TUNGETIFF, libc::ifreq);

/// Opens /dev/net/tun and attaches it to the TAP device `name`, creating it if it does not
/// exist. Frames carry no packet-information header (IFF_NO_PI); with `vnet_hdr`, they carry a
/// virtio-net header if the kernel takes the flag (it is tried without it otherwise). With
/// `queues` above 1 the device is multi-queue and one descriptor per queue is returned.
pub fn open_tap(name: &str, vnet_hdr: bool, queues: usize) -> Result<Vec<OwnedFd>, String> {
    let multi = if queues > 1 { libc::IFF_MULTI_QUEUE } else { 0 };
    let first = match vnet_hdr.then(|| attach(name, libc::IFF_VNET_HDR | multi)) {
        Some(Ok(fd)) => fd,
        _ => attach(name, multi)?,
    };
    let flags = first_flags(&first);
    let mut fds = vec![first];
    while fds.len() < queues {
        fds.push(attach(name, flags)?);
    }
    Ok(fds)
}

/// The flags (of ours) the first queue was attached with, for the others.
fn first_flags(fd: &OwnedFd) -> libc::c_int {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF fills a struct ifreq, which `ifr` is; the fd is open.
    if unsafe { tungetiff(fd.as_raw_fd(), &mut ifr) }.is_err() {
        return 0;
    }
    // SAFETY: TUNGETIFF set the flags member of the union.
    let flags = libc::c_int::from(unsafe { ifr.ifr_ifru.ifru_flags });
    flags & (libc::IFF_VNET_HDR | libc::IFF_MULTI_QUEUE)
}

fn attach(name: &str, extra_flags: libc::c_int) -> Result<OwnedFd, String> {
    let fd = open(
        "/dev/net/tun",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        nix::errno::Errno::EACCES => {
            format!("cannot open /dev/net/tun: {e} (this user needs read and write access to it)")
        }
        _ => format!("cannot open /dev/net/tun: {e}"),
    })?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let name_bytes = name.as_bytes();
    if name_bytes.len() >= ifr.ifr_name.len() {
        return Err(format!("TAP device name too long: {name}"));
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name_bytes) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | extra_flags) as libc::c_short;
    // SAFETY: TUNSETIFF reads a struct ifreq, which `ifr` is, and the fd is open.
    unsafe { tunsetiff(fd.as_raw_fd(), &ifr) }.map_err(|e| {
        let hint = match e {
            nix::errno::Errno::EPERM => " (no CAP_NET_ADMIN over the namespace)",
            nix::errno::Errno::EBUSY => " (another process has the device open)",
            nix::errno::Errno::EINVAL => {
                " (an existing device of another kind or with other flags)"
            }
            _ => "",
        };
        format!("cannot attach to TAP device {name}: {e}{hint}")
    })?;
    Ok(fd)
}
