//! Frame I/O between the engine and the guest. The engine sees Ethernet frames whatever
//! carries them: a TAP descriptor (or a bess SOCK_SEQPACKET socket, which carries them the same
//! way, one per message) or a byte stream with a framing of its own ([`stream`]).

pub mod capture;
pub mod framing;
pub mod socket_path;
pub mod stream;
pub mod tap;
pub mod vnet;

use crate::engine::wire::offload::{RxOffload, TxOffload};
use capture::{Capture, Direction, SharedCapture};
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

/// The guest's end of the wire, and the capture (--pcap, --debug) that records what crosses it.
pub struct Link {
    medium: Medium,
    capture: Option<SharedCapture>,
}

enum Medium {
    /// A TAP descriptor or a bess socket: one frame per read and per write.
    Packets(TapDevice),
    Stream(StreamLink),
}

impl Link {
    /// A TAP descriptor or a bess socket.
    pub fn packets(tap: TapDevice) -> Link {
        Link {
            medium: Medium::Packets(tap),
            capture: None,
        }
    }

    /// A byte stream with a framing (stdio, QEMU's socket).
    pub fn stream(stream: StreamLink) -> Link {
        Link {
            medium: Medium::Stream(stream),
            capture: None,
        }
    }

    /// Records every frame read from or written to the link from now on.
    pub fn with_capture(mut self, capture: SharedCapture) -> Link {
        self.capture = Some(capture);
        self
    }

    /// Registers the link: readable for frames from the guest, writable for the moment a
    /// link that refused a frame (see [`Link::send`]) takes frames again.
    pub fn register(&mut self, registry: &Registry) -> std::io::Result<()> {
        match &mut self.medium {
            Medium::Packets(tap) => registry.register(
                &mut SourceFd(&tap.as_raw_fd()),
                LINK,
                Interest::READABLE | Interest::WRITABLE,
            ),
            Medium::Stream(stream) => stream.register(registry),
        }
    }

    /// Whether frames may carry offloads (a TAP with a virtio-net header that took them).
    pub fn offloads(&self) -> bool {
        match &self.medium {
            Medium::Packets(tap) => tap.offloads(),
            Medium::Stream(_) => false,
        }
    }

    /// Whether frames may also be UDP super-datagrams (USO).
    pub fn udp_offloads(&self) -> bool {
        match &self.medium {
            Medium::Packets(tap) => tap.udp_offloads(),
            Medium::Stream(_) => false,
        }
    }

    /// Reads one frame into `buf`.
    pub fn recv(&mut self, buf: &mut [u8]) -> Recv {
        let received = match &mut self.medium {
            Medium::Packets(tap) => tap.recv(buf),
            Medium::Stream(stream) => stream.recv(buf),
        };
        if let (Recv::Frame(len, _), Some(capture)) = (&received, &self.capture) {
            Capture::lock(capture).frame(Direction::FromGuest, &buf[..*len]);
        }
        received
    }

    /// Sends one frame (or queues it, for [`Link::flush`]). `EAGAIN` means the link is full
    /// for now: the frame was not taken, and the link reports writable when it takes frames
    /// again. Any other error means the frame is lost.
    pub fn send(&mut self, frame: &[u8], offload: &TxOffload) -> Result<(), Errno> {
        let sent = match &mut self.medium {
            Medium::Packets(tap) => tap.send(frame, offload),
            Medium::Stream(stream) => stream.send(frame),
        };
        if let (Ok(()), Some(capture)) = (&sent, &self.capture) {
            Capture::lock(capture).frame(Direction::ToGuest, frame);
        }
        sent
    }

    /// Writes what [`Link::send`] queued (and what the capture holds); false once the link is
    /// broken for good.
    pub fn flush(&mut self) -> bool {
        if let Some(capture) = &self.capture {
            Capture::lock(capture).flush();
        }
        match &mut self.medium {
            Medium::Packets(_) => true,
            Medium::Stream(stream) => stream.flush(),
        }
    }

    /// A peer is waiting on the listener.
    pub fn accept(&mut self, registry: &Registry) {
        if let Medium::Stream(stream) = &mut self.medium {
            stream.accept(registry);
        }
    }

    /// Frames from the guest the link itself dropped (bad framing) since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        match &mut self.medium {
            Medium::Packets(_) => 0,
            Medium::Stream(stream) => stream.take_dropped(),
        }
    }
}
