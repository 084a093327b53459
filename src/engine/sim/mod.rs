//! sim - the engine on a virtual clock, for tests: no root, no sleeps, every run replayable.
//!
//! The engine takes time as an argument, so a test can hand it any clock it likes. Here that
//! clock is virtual: a [`Side`] is an engine with its poll and transmit queue, driven as the
//! event loop drives it (frames in as a batch, socket events, timers, end of batch, frames out
//! until the link refuses one); a [`Pair`] is two sides back to back through two seeded
//! [`wire::Wire`]s, one for each direction. The frames side B sends to its guest are side A's
//! guest frames and the other way round, so a connection B opens toward its guest
//! ([`Engine::connect`]) is accepted by a virtual listener of A: each side's TCP is the other's
//! peer, and both directions of the engine's TCP (host to guest, guest to host) are exercised.
//!
//! Host sockets are real unix stream pairs (virtual listeners and connections), whose readiness
//! is immediate: the driver runs turns at one instant until nothing moves, then jumps the clock
//! to the next event (a frame arriving or leaving a wire's queue, an engine's timer). If
//! nothing is due and the transfer is not done, that is a stall, and the run fails saying so.
//!
//! [`guest`] scripts a guest segment by segment instead, for the unit tests of single cases.

pub mod guest;
pub mod wire;

use super::{Engine, EngineConfig, TxQueue};
use crate::engine::Ipv4Network;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use wire::{Faults, Wire};

/// Frames one side may queue between two hand-overs (as the event loop's queue).
const TX_FRAMES: usize = 1024;

/// An engine driven as the event loop drives it, on a virtual clock.
pub struct Side {
    poll: mio::Poll,
    events: mio::Events,
    pub engine: Engine,
    pub tx: TxQueue,
}

impl Side {
    pub fn new(cfg: EngineConfig) -> Self {
        let poll = mio::Poll::new().expect("epoll");
        let engine = Engine::new(cfg, poll.registry().try_clone().expect("registry"));
        Side {
            poll,
            events: mio::Events::with_capacity(256),
            engine,
            tx: TxQueue::new(TX_FRAMES),
        }
    }

    /// A registry for an engine that replaces this side's (same poll).
    pub fn engine_registry(&self) -> mio::Registry {
        self.poll.registry().try_clone().expect("registry")
    }

    /// One turn: frames that arrived, host sockets that are ready, timers due, then the work
    /// left at the end of a batch; frames go to `link` until it refuses one. Returns whether
    /// anything happened.
    pub fn turn(
        &mut self,
        now: Instant,
        frames: &[Vec<u8>],
        link: &mut dyn FnMut(&[u8]) -> bool,
    ) -> bool {
        let mut busy = self.flush(link);
        if !frames.is_empty() {
            busy = true;
            let batch = frames.iter().map(|f| (&f[..], Default::default()));
            self.engine.handle_frames(now, batch, &mut self.tx);
        }
        self.poll
            .poll(&mut self.events, Some(Duration::ZERO))
            .expect("poll");
        for event in self.events.iter() {
            busy = true;
            self.engine.handle_event(now, event, &mut self.tx);
            if self.tx.is_full() {
                Self::flush_queue(&mut self.tx, link);
            }
        }
        if self.engine.poll_at().is_some_and(|at| at <= now) {
            busy = true;
            self.engine.handle_timers(now, &mut self.tx);
        }
        // As the event loop's finish_turn: a blocked link waits for room, nothing spins.
        for _ in 0..8 {
            busy |= self.flush(link);
            if self.tx.is_blocked() || !self.engine.end_of_batch(now, &mut self.tx) {
                break;
            }
        }
        busy |= self.flush(link);
        busy
    }

    /// Hands queued frames to `link` until it refuses one; returns whether any went.
    pub fn flush(&mut self, link: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        Self::flush_queue(&mut self.tx, link)
    }

    fn flush_queue(tx: &mut TxQueue, link: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        if tx.is_empty() {
            return false;
        }
        let mut taken = 0;
        for frame in tx.frames() {
            if !link(frame) {
                break;
            }
            taken += 1;
        }
        let all = taken == tx.len();
        tx.consume_front(taken);
        if !all {
            tx.link_full();
        }
        taken > 0
    }
}

/// A test pattern: byte `i` of stream `seed`.
pub fn pattern_byte(seed: u8, i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 11) as u8 ^ seed
}

/// One end of a transfer on a unix stream: sends `send_len` pattern bytes then its end of
/// stream, and checks what it receives against the peer's pattern.
pub struct Endpoint {
    stream: UnixStream,
    send_seed: u8,
    recv_seed: u8,
    pub send_len: u64,
    pub sent: u64,
    pub received: u64,
    pub eof: bool,
    shut: bool,
    /// Bytes read at a time at most (a slow reader reads little).
    pub read_chunk: usize,
    /// Set when a byte differed: where.
    pub corrupt_at: Option<u64>,
    pub error: Option<String>,
    buf: Vec<u8>,
    /// Pattern bytes made for writing, and how far they were written.
    out: Vec<u8>,
    out_at: usize,
}

impl Endpoint {
    pub fn new(stream: UnixStream, send_seed: u8, recv_seed: u8, send_len: u64) -> Self {
        stream.set_nonblocking(true).expect("nonblocking");
        Endpoint {
            stream,
            send_seed,
            recv_seed,
            send_len,
            sent: 0,
            received: 0,
            eof: false,
            shut: false,
            read_chunk: 256 << 10,
            corrupt_at: None,
            error: None,
            buf: vec![0; 64 << 10],
            out: Vec::new(),
            out_at: 0,
        }
    }

    /// Writes and reads what the stream takes and has; returns whether anything moved.
    pub fn pump(&mut self) -> bool {
        let mut moved = false;
        let mut buf = std::mem::take(&mut self.buf);
        while self.sent < self.send_len && self.error.is_none() {
            // The next piece of the pattern, made once however often the stream refuses it.
            if self.out_at == self.out.len() {
                let n = ((self.send_len - self.sent) as usize).min(64 << 10);
                self.out.clear();
                self.out
                    .extend((0..n as u64).map(|i| pattern_byte(self.send_seed, self.sent + i)));
                self.out_at = 0;
            }
            match self.stream.write(&self.out[self.out_at..]) {
                Ok(written) => {
                    self.sent += written as u64;
                    self.out_at += written;
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => self.error = Some(format!("write: {e}")),
            }
        }
        if self.sent == self.send_len && !self.shut {
            self.shut = true;
            moved = true;
            let _ = self.stream.shutdown(std::net::Shutdown::Write);
        }
        let mut budget = self.read_chunk;
        while !self.eof && budget > 0 && self.error.is_none() {
            let want = budget.min(buf.len());
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => {
                    self.eof = true;
                    moved = true;
                }
                Ok(n) => {
                    for (i, &b) in buf[..n].iter().enumerate() {
                        let at = self.received + i as u64;
                        if self.corrupt_at.is_none() && b != pattern_byte(self.recv_seed, at) {
                            self.corrupt_at = Some(at);
                        }
                    }
                    self.received += n as u64;
                    budget -= n;
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => self.error = Some(format!("read: {e}")),
            }
        }
        self.buf = buf;
        moved
    }

    /// Whether everything was sent and the peer's whole stream received.
    pub fn done(&self, expect: u64) -> bool {
        self.sent == self.send_len && self.eof && self.received == expect
    }
}

/// Where side A listens and side B connects to.
pub const SERVER: &str = "10.0.2.100:8080";

/// Two engines back to back through two faulty wires.
pub struct Pair {
    pub base: Instant,
    pub now: Duration,
    pub a: Side,
    pub b: Side,
    /// Frames from A to B, and from B to A.
    pub ab: Wire,
    pub ba: Wire,
    /// Clock jumps and turns so far (what a run cost).
    pub steps: u64,
    pub turns: u64,
}

/// A transfer through a [`Pair`]: how much each way, how fast the programs read, how long it
/// may take in virtual time.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    pub client_len: u64,
    pub server_len: u64,
    pub limit: Duration,
    /// Bytes each program reads per turn at most.
    pub client_read_chunk: usize,
    pub server_read_chunk: usize,
}

impl Transfer {
    /// `client_len` bytes up and `server_len` down, read as fast as they come.
    pub fn new(client_len: u64, server_len: u64) -> Self {
        Transfer {
            client_len,
            server_len,
            limit: Duration::from_secs(120),
            client_read_chunk: 256 << 10,
            server_read_chunk: 256 << 10,
        }
    }
}

/// How a transfer through a [`Pair`] ended: when, in virtual time.
#[derive(Debug)]
pub struct Outcome {
    pub elapsed: Duration,
}

impl Pair {
    pub fn new(mtu: u32, ab: Faults, ba: Faults, seed: u64) -> Self {
        let cfg = EngineConfig {
            mtu,
            tcp_peek_offset: true,
            ..EngineConfig::new(Ipv4Network::default())
        };
        Pair {
            base: Instant::now(),
            now: Duration::ZERO,
            a: Side::new(cfg.clone()),
            b: Side::new(cfg),
            ab: Wire::new(ab, seed.wrapping_mul(3).wrapping_add(1)),
            ba: Wire::new(ba, seed.wrapping_mul(5).wrapping_add(2)),
            steps: 0,
            turns: 0,
        }
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// Runs turns at the current instant until nothing moves; returns whether anything did.
    pub fn settle(&mut self, endpoints: &mut [&mut Endpoint]) -> bool {
        let mut any = false;
        for _ in 0..10_000 {
            self.turns += 1;
            let now = self.instant();
            let t = self.now;
            let to_a = self.ba.arrived(t);
            let to_b = self.ab.arrived(t);
            let ab = &mut self.ab;
            let mut busy = self.a.turn(now, &to_a, &mut |f| ab.offer(t, f));
            let ba = &mut self.ba;
            busy |= self.b.turn(now, &to_b, &mut |f| ba.offer(t, f));
            for endpoint in endpoints.iter_mut() {
                busy |= endpoint.pump();
            }
            if !busy {
                return any;
            }
            any = true;
        }
        panic!("no rest at {:?}: something spins", self.now);
    }

    /// When something is next due: a wire event or an engine timer.
    pub fn next_event(&self) -> Option<Duration> {
        let timer = |side: &Side| {
            side.engine
                .poll_at()
                .map(|at| at.saturating_duration_since(self.base))
        };
        [
            self.ab.next_event(),
            self.ba.next_event(),
            timer(&self.a),
            timer(&self.b),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Moves the clock to the next event, but not past `limit`; false if nothing is due.
    pub fn step(&mut self, limit: Duration) -> bool {
        match self.next_event() {
            Some(next) => {
                self.steps += 1;
                // A deadline already passed (a timer the engine keeps for later) still moves
                // the clock a little, so that a run always makes progress.
                self.now = next.max(self.now + Duration::from_micros(1)).min(limit);
                true
            }
            None => false,
        }
    }

    /// Opens a connection from B to A's listener and moves `t.client_len` bytes from the
    /// client (B's program) to the server (A's program) and `t.server_len` back, both ending
    /// with their end of stream.
    pub fn transfer(&mut self, t: &Transfer) -> Result<Outcome, String> {
        let (client_len, server_len, limit) = (t.client_len, t.server_len, t.limit);
        let server_addr: SocketAddr = SERVER.parse().expect("address");
        let listener = self.a.engine.listen(server_addr).expect("listen");
        listener.set_nonblocking(true).expect("nonblocking");
        let now = self.instant();
        let client = self
            .b
            .engine
            .connect(now, server_addr, &mut self.b.tx)
            .map_err(|e| format!("connect: {e}"))?;
        let mut client = Endpoint::new(client, 1, 2, client_len);
        client.read_chunk = t.client_read_chunk;
        let mut server: Option<Endpoint> = None;
        loop {
            match &mut server {
                Some(server) => {
                    self.settle(&mut [&mut client, server]);
                }
                None => {
                    self.settle(&mut [&mut client]);
                    if let Ok((stream, _)) = listener.accept() {
                        let mut accepted = Endpoint::new(stream, 2, 1, server_len);
                        accepted.read_chunk = t.server_read_chunk;
                        server = Some(accepted);
                        continue;
                    }
                }
            }
            for endpoint in [Some(&client), server.as_ref()].into_iter().flatten() {
                if let Some(at) = endpoint.corrupt_at {
                    return Err(format!("byte {at} differs ({:?})", self.now));
                }
                if let Some(error) = &endpoint.error {
                    return Err(format!("{error} ({:?})", self.now));
                }
            }
            let server_done = server.as_ref().is_some_and(|s| s.done(client_len));
            if client.done(server_len) && server_done {
                return Ok(Outcome { elapsed: self.now });
            }
            let ended = client.eof && server.as_ref().is_some_and(|s| s.eof);
            if ended || self.now >= limit || !self.step(limit) {
                let server = server.as_ref().map(|s| (s.sent, s.received, s.eof));
                return Err(format!(
                    "{} at {:?}: client sent {} of {client_len}, received {} of {server_len} \
                     (eof {}); server (sent, received, eof) {server:?}; wires {:?} / {:?}",
                    if ended { "ended early" } else { "stalled" },
                    self.now,
                    client.sent,
                    client.received,
                    client.eof,
                    self.ab.stats,
                    self.ba.stats,
                ));
            }
        }
    }
}
