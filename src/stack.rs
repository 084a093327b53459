//! [`Stack`]: an [`Engine`] with a poll of its own, for programs that hand it the guest's
//! frames and take the frames for the guest, and want nothing to do with the host sockets and
//! timers in between.

use crate::engine::{Engine, EngineConfig, TxQueue};
use crate::transport::capture::{Capture, Direction};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Frames the engine may queue for the guest between two hand-overs to the sink.
const TX_QUEUE_FRAMES: usize = 256;

/// The engine and everything that drives it but the frames: the host sockets' readiness, the
/// timers, the virtual endpoints.
///
/// Frames go in with [`input`](Self::input); frames for the guest come out through the sink
/// every call takes, a closure called once per frame (an Ethernet frame, at most the MTU plus
/// its 14-byte header, checksums complete). Between frames from the guest, call
/// [`poll`](Self::poll): it waits for host sockets and timers and handles them. The stack's
/// descriptor ([`AsFd`]) turns readable when `poll` has work, so a stack fits in any event
/// loop; [`poll_at`](Self::poll_at) says when it must be called at the latest.
pub struct Stack {
    poll: mio::Poll,
    events: mio::Events,
    engine: Engine,
    tx: TxQueue,
    capture: Option<Capture>,
}

impl Stack {
    /// A stack for `config`. Frames carry no offloads here (`tap_offload` is turned off), and
    /// forwarded connections from host loopback are not spliced (no namespace to splice into).
    pub fn new(config: EngineConfig) -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        let config = EngineConfig {
            tap_offload: false,
            tap_uso: false,
            splice_loopback: false,
            ..config
        };
        let engine = Engine::new(config, poll.registry().try_clone()?);
        Ok(Stack {
            poll,
            events: mio::Events::with_capacity(256),
            engine,
            tx: TxQueue::new(TX_QUEUE_FRAMES),
            capture: None,
        })
    }

    /// Records every frame to and from the guest from now on, as `--pcap` and `--debug` do
    /// (see [`Capture::open`]).
    pub fn set_capture(&mut self, capture: Capture) {
        self.capture = Some(capture);
    }

    /// The engine, for its configuration and counters.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, for port forwards, virtual listeners and endpoints, counters.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Hands the engine one frame from the guest.
    pub fn input(&mut self, frame: &[u8], sink: &mut dyn FnMut(&[u8])) {
        self.input_batch([frame], sink)
    }

    /// Hands the engine several frames from the guest at once (TCP data in a batch is passed
    /// to the host in fewer, larger writes).
    pub fn input_batch<'a>(
        &mut self,
        frames: impl IntoIterator<Item = &'a [u8]>,
        sink: &mut dyn FnMut(&[u8]),
    ) {
        let now = Instant::now();
        let capture = &mut self.capture;
        let frames = frames.into_iter().map(|frame| {
            if let Some(capture) = capture.as_mut() {
                capture.frame(Direction::FromGuest, frame);
            }
            (frame, Default::default())
        });
        self.engine.handle_frames(now, frames, &mut self.tx);
        self.finish(now, sink);
    }

    /// Waits at most `timeout` (and no longer than the engine's next timer) for host sockets
    /// and virtual endpoints, then handles what is ready and the timers that are due.
    pub fn poll(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<()> {
        let until_timer = self
            .engine
            .poll_at()
            .map(|at| at.saturating_duration_since(Instant::now()));
        let timeout = match (timeout, until_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        for event in self.events.iter() {
            self.engine.handle_event(now, event, &mut self.tx);
            if self.tx.is_full() {
                Self::drain(&mut self.tx, &mut self.capture, sink);
            }
        }
        self.engine.handle_timers(now, &mut self.tx);
        self.finish(now, sink);
        Ok(())
    }

    /// When [`poll`](Self::poll) must be called at the latest, for the engine's timers.
    pub fn poll_at(&self) -> Option<Instant> {
        self.engine.poll_at()
    }

    /// Opens a TCP connection to a server in the guest (see [`Engine::connect`]).
    pub fn connect(
        &mut self,
        guest: SocketAddr,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<UnixStream> {
        let now = Instant::now();
        let stream = self.engine.connect(now, guest, &mut self.tx);
        self.finish(now, sink);
        stream
    }

    /// Hands what the engine queued to the sink, letting the engine go on where a full queue
    /// stopped it.
    fn finish(&mut self, now: Instant, sink: &mut dyn FnMut(&[u8])) {
        Self::drain(&mut self.tx, &mut self.capture, sink);
        while self.engine.end_of_batch(now, &mut self.tx) {
            Self::drain(&mut self.tx, &mut self.capture, sink);
        }
        Self::drain(&mut self.tx, &mut self.capture, sink);
        if let Some(capture) = &mut self.capture {
            capture.flush();
        }
    }

    fn drain(tx: &mut TxQueue, capture: &mut Option<Capture>, sink: &mut dyn FnMut(&[u8])) {
        for (frame, _) in tx.frames_with_offload() {
            if let Some(capture) = capture {
                capture.frame(Direction::ToGuest, frame);
            }
            sink(frame);
        }
        tx.clear();
    }
}

impl AsFd for Stack {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the poll's descriptor lives as long as the stack, which the borrow ties it to.
        unsafe { BorrowedFd::borrow_raw(self.poll.as_raw_fd()) }
    }
}

impl AsRawFd for Stack {
    fn as_raw_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }
}
