//! Frames on a TAP descriptor: one read returns one frame, one write sends one.

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

pub struct TapDevice {
    fd: OwnedFd,
}

/// What a read from the TAP gave.
pub enum Recv {
    Frame(usize),
    /// Nothing more to read now.
    Empty,
    /// The device is gone (its namespace was destroyed, or it was deleted).
    Gone(Errno),
}

impl TapDevice {
    /// Takes a TAP descriptor and makes it non-blocking.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        let flags = OFlag::from_bits_retain(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(TapDevice { fd })
    }

    pub fn recv(&self, buf: &mut [u8]) -> Recv {
        loop {
            match nix::unistd::read(&self.fd, buf) {
                Ok(n) => return Recv::Frame(n),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Recv::Empty,
                Err(e) => return Recv::Gone(e),
            }
        }
    }

    /// Writes one frame. A TAP whose queue is full drops the frame itself; EAGAIN here means
    /// the same, and the caller counts it.
    pub fn send(&self, frame: &[u8]) -> Result<(), Errno> {
        loop {
            match nix::unistd::write(&self.fd, frame) {
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
