//! Frame I/O between the engine and the guest. The engine sees Ethernet frames whatever
//! carries them: a TAP descriptor (or a bess SOCK_SEQPACKET socket, which carries them the same
//! way, one per message) or a byte stream with a framing of its own ([`stream`]).

pub mod framing;
pub mod socket_path;
pub mod stream;
pub mod tap;
pub mod vnet;

use crate::engine::offload::{RxOffload, TxOffload};
use mio::unix::SourceFd;
use mio::{Interest, Registry};
use nix::errno::Errno;
use std::os::fd::AsRawFd;
use stream::StreamLink;
use tap::TapDevice;

pub use crate::tokens::{LINK, LINK_LISTENER, LINK_OUTPUT};

/// What a read from the link gave.
pub enum Recv {
    Frame(usize, RxOffload),
    /// Nothing more to read now.
    Empty,
    /// The guest is gone for good (the TAP's namespace was destroyed, stdin was closed...).
    Gone(String),
}

/// The guest's end of the wire.
pub enum Link {
    /// A TAP descriptor or a bess socket: one frame per read and per write.
    Packets(TapDevice),
    Stream(StreamLink),
}

impl Link {
    /// Registers the link: readable for frames from the guest, writable for the moment a
    /// link that refused a frame (see [`Link::send`]) takes frames again.
    pub fn register(&mut self, registry: &Registry) -> std::io::Result<()> {
        match self {
            Link::Packets(tap) => registry.register(
                &mut SourceFd(&tap.as_raw_fd()),
                LINK,
                Interest::READABLE | Interest::WRITABLE,
            ),
            Link::Stream(stream) => stream.register(registry),
        }
    }

    /// Whether frames may carry offloads (a TAP with a virtio-net header that took them).
    pub fn offloads(&self) -> bool {
        match self {
            Link::Packets(tap) => tap.offloads(),
            Link::Stream(_) => false,
        }
    }

    /// Reads one frame into `buf`.
    pub fn recv(&mut self, buf: &mut [u8]) -> Recv {
        match self {
            Link::Packets(tap) => tap.recv(buf),
            Link::Stream(stream) => stream.recv(buf),
        }
    }

    /// Sends one frame (or queues it, for [`Link::flush`]). `EAGAIN` means the link is full
    /// for now: the frame was not taken, and the link reports writable when it takes frames
    /// again. Any other error means the frame is lost.
    pub fn send(&mut self, frame: &[u8], offload: &TxOffload) -> Result<(), Errno> {
        match self {
            Link::Packets(tap) => tap.send(frame, offload),
            Link::Stream(stream) => stream.send(frame),
        }
    }

    /// Writes what [`Link::send`] queued; false once the link is broken for good.
    pub fn flush(&mut self) -> bool {
        match self {
            Link::Packets(_) => true,
            Link::Stream(stream) => stream.flush(),
        }
    }

    /// A peer is waiting on the listener.
    pub fn accept(&mut self, registry: &Registry) {
        if let Link::Stream(stream) = self {
            stream.accept(registry);
        }
    }

    /// Frames from the guest the link itself dropped (bad framing) since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        match self {
            Link::Packets(_) => 0,
            Link::Stream(stream) => stream.take_dropped(),
        }
    }
}
