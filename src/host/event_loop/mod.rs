//! One mio poll drives everything: the link to the guest (a TAP, or another transport),
//! signals, the exit fd and the API socket.
//!
//! mio is edge-triggered, so the link is read until EAGAIN; to keep a flooding guest from
//! starving signals and the API, one turn reads at most [`FRAMES_PER_TURN`] frames and the next
//! poll does not block while the link may still hold more.
//!
//! Frames for the guest go to the link until it refuses one (a bess socket or a stream whose
//! peer reads slowly): the rest stay queued, in order, the engine makes no more bulk data, and
//! the loop sleeps until the link says it is writable again. Nothing is dropped for a slow
//! link, and nothing spins while it is full.

use crate::confine::ns::watch::QuitWatch;
use crate::engine::wire::offload::RxOffload;
use crate::engine::{Engine, EngineConfig, TxQueue};
use crate::host::api::{self, ApiServer};
use crate::host::busy_poll::{BusyPoll, DEFAULT_LIMIT_MICROS};
use crate::host::socks5::Socks5Server;
use crate::host::splice::Splicer;
use crate::host::udp_outward::UdpOutward;
use crate::tokens::{self, Kind, EXIT_FD, SIGNALS};
use crate::transport::{Link, Recv};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

mod link_io;

/// System calls of the loop itself (for --enable-seccomp): waiting, registering, the signal
/// pipe and the waker, reaping the command of exec mode and passing signals on to it.
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_kill,
];

/// Frames read from the link in one loop turn before other sources get a look.
pub const FRAMES_PER_TURN: usize = 256;
/// Frames the engine may queue for the guest within one turn.
const TX_QUEUE_FRAMES: usize = 1024;
/// Room for the largest frame a TAP can carry: MTU 65521 plus the Ethernet header, or a GSO
/// super-packet (an IPv6 header and 65535 bytes of payload, plus the Ethernet header).
const MAX_FRAME: usize = 14 + 40 + 65535;
/// Frames of one batch are read into one arena, to be handled together: about 1 MiB of them
/// (16 frames at MTU 65520, the per-turn limit at MTU 1500), plus room for one more.
const RX_ARENA: usize = (1 << 20) + MAX_FRAME;

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM, SIGINT or SIGHUP.
    Signal(i32),
    /// The exit fd reported an event or hung up.
    ByExitFd,
    /// The exec-mode command exited with this status (128+N for signal N).
    Command(i32),
    /// The guest went away: the TAP with its namespace, or the transport's peer.
    LinkGone,
    /// The target namespace's file was removed or its process exited (pasta's netns quit).
    TargetGone,
}

/// What periodic work may use.
pub struct Tick<'a> {
    pub engine: &'a mut Engine,
    pub splicer: Option<&'a mut Splicer>,
    pub udp_outward: Option<&'a mut UdpOutward>,
    pub registry: &'a mio::Registry,
}

/// Work the loop does on a schedule of its own (pasta's `auto` ports).
pub trait Periodic {
    /// When it wants to run next.
    fn due_at(&self) -> Instant;
    fn run(&mut self, tick: Tick<'_>, now: Instant);
}

pub struct EventLoop {
    poll: Poll,
    link: Link,
    engine: Engine,
    tx: TxQueue,
    /// The frames of one batch, back to back, and where each ends.
    rx_arena: Vec<u8>,
    rx_ends: Vec<usize>,
    rx_offloads: Vec<RxOffload>,
    /// None in the loop of a further TAP queue (the first loop handles signals).
    signals: Option<Signals>,
    /// Held open while it is registered.
    _exit_fd: Option<OwnedFd>,
    quit_watch: Option<QuitWatch>,
    periodic: Option<Box<dyn Periodic + Send>>,
    udp_outward: Option<UdpOutward>,
    api: Option<ApiServer>,
    socks5: Option<Socks5Server>,
    splicer: Option<Splicer>,
    command: Option<Pid>,
    /// Whether the link may still hold frames (the last turn stopped at the per-turn limit).
    link_backlog: bool,
    /// Whether the engine has frames to send that did not fit in the last turn.
    engine_backlog: bool,
    busy_poll: BusyPoll,
    /// Bytes this turn moved over the link and through splice pairs (light turns may poll).
    turn_bytes: usize,
}

impl EventLoop {
    pub fn new(
        link: Link,
        engine_config: EngineConfig,
        exit_fd: Option<OwnedFd>,
        mut api: Option<ApiServer>,
        mut splicer: Option<Splicer>,
    ) -> io::Result<Self> {
        let mut event_loop = Self::for_queue(link, engine_config)?;
        let registry = event_loop.poll.registry();
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGCHLD])?;
        registry.register(&mut signals, SIGNALS, Interest::READABLE)?;
        if let Some(fd) = &exit_fd {
            registry
                .register(&mut SourceFd(&fd.as_raw_fd()), EXIT_FD, Interest::READABLE)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot watch exit-fd: {e}")))?;
        }
        if let Some(api) = &mut api {
            api.register(registry)?;
        }
        if let Some(splicer) = &mut splicer {
            splicer.register(registry)?;
        }
        event_loop.signals = Some(signals);
        event_loop._exit_fd = exit_fd;
        event_loop.api = api;
        event_loop.splicer = splicer;
        Ok(event_loop)
    }

    /// The loop of one link (one TAP queue): the link and its engine's sockets only.
    /// [`EventLoop::new`] adds signals, the exit fd, the API and port forwards for the first
    /// queue; a further queue of a multi-queue TAP runs with just this.
    pub fn for_queue(mut link: Link, engine_config: EngineConfig) -> io::Result<Self> {
        let poll = Poll::new()?;
        let engine = Engine::new(engine_config, poll.registry().try_clone()?);
        link.register(poll.registry())?;
        Ok(EventLoop {
            poll,
            link,
            engine,
            tx: TxQueue::new(TX_QUEUE_FRAMES),
            rx_arena: vec![0; RX_ARENA],
            rx_offloads: Vec::with_capacity(FRAMES_PER_TURN),
            rx_ends: Vec::with_capacity(FRAMES_PER_TURN),
            signals: None,
            _exit_fd: None,
            quit_watch: None,
            periodic: None,
            udp_outward: None,
            api: None,
            socks5: None,
            splicer: None,
            command: None,
            link_backlog: true,
            engine_backlog: false,
            busy_poll: BusyPoll::new(Duration::from_micros(DEFAULT_LIMIT_MICROS)),
            turn_bytes: 0,
        })
    }

    /// The most the loop busy-polls before sleeping (zero: never).
    pub fn set_busy_poll(&mut self, limit: Duration) {
        self.busy_poll = BusyPoll::new(limit);
    }

    /// Serves SOCKS5 clients (--socks5) from this loop.
    pub fn set_socks5(&mut self, mut server: Socks5Server) -> io::Result<()> {
        server.register(self.poll.registry())?;
        self.socks5 = Some(server);
        Ok(())
    }

    /// Ends the loop when the target namespace is gone (pasta without --no-netns-quit).
    pub fn set_quit_watch(&mut self, watch: QuitWatch) -> io::Result<()> {
        let fd = watch.raw_fd();
        self.poll.registry().register(
            &mut SourceFd(&fd),
            tokens::QUIT_WATCH,
            Interest::READABLE,
        )?;
        self.quit_watch = Some(watch);
        Ok(())
    }

    /// Relays UDP from the namespace's loopback ports to the host's (pasta's -U).
    pub fn set_udp_outward(&mut self, mut relay: UdpOutward) -> io::Result<()> {
        relay.register(self.poll.registry())?;
        self.udp_outward = Some(relay);
        Ok(())
    }

    /// Runs `task` whenever it is due.
    pub fn set_periodic(&mut self, task: Box<dyn Periodic + Send>) {
        self.periodic = Some(task);
    }

    /// In exec mode: the command whose exit ends the loop. SIGINT then no longer ends
    /// slirp-ns (the terminal sent it to the command too); SIGTERM and SIGHUP are passed on.
    pub fn set_command(&mut self, pid: Pid) {
        self.command = Some(pid);
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn run(&mut self) -> io::Result<Exit> {
        let mut events = Events::with_capacity(64);
        // A command that died before the signal handler was in place sent its SIGCHLD early.
        if let Some(exit) = self.reap_command() {
            return Ok(exit);
        }
        loop {
            let timeout = if self.link_backlog || self.engine_backlog {
                Some(Duration::ZERO)
            } else {
                let api = self.api.as_ref().and_then(ApiServer::next_deadline);
                let socks5 = self.socks5.as_ref().and_then(Socks5Server::next_deadline);
                let periodic = self.periodic.as_ref().map(|task| task.due_at());
                let relay = self
                    .udp_outward
                    .as_ref()
                    .and_then(UdpOutward::next_deadline);
                let next = [self.engine.poll_at(), api, socks5, periodic, relay]
                    .into_iter()
                    .flatten()
                    .min();
                next.map(|at| at.saturating_duration_since(Instant::now()))
            };
            let now = match self.wait(&mut events, timeout) {
                Ok(now) => now,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            for event in events.iter() {
                let Some((kind, index)) = tokens::decode(event.token()) else {
                    continue;
                };
                match kind {
                    Kind::Link => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.link_backlog = true;
                        }
                        if event.is_writable() {
                            self.link_writable();
                        }
                    }
                    Kind::LinkOutput => self.link_writable(),
                    Kind::LinkListener => self.link.accept(self.poll.registry()),
                    Kind::Signals => {
                        if let Some(exit) = self.handle_signals() {
                            return Ok(exit);
                        }
                    }
                    Kind::ExitFd => return Ok(Exit::ByExitFd),
                    Kind::QuitWatch => {
                        // Or another file of the directory changed.
                        if self.quit_watch.as_ref().is_some_and(QuitWatch::target_gone) {
                            return Ok(Exit::TargetGone);
                        }
                    }
                    Kind::ApiListener => {
                        if let Some(api) = &mut self.api {
                            api.accept(self.poll.registry(), now);
                        }
                    }
                    Kind::ApiClient => {
                        if let Some(api) = &mut self.api {
                            let engine = &mut self.engine;
                            api.on_client_event(self.poll.registry(), index, &mut |request| {
                                api::execute(engine, request)
                            });
                        }
                    }
                    Kind::Forward => {
                        self.engine.handle_forward_event(now, index, &mut self.tx);
                        if self.tx.is_full() {
                            self.flush();
                        }
                        for candidate in self.engine.take_splice_candidates() {
                            let unspliced = match &mut self.splicer {
                                Some(splicer) => splicer.start(candidate),
                                None => Some(candidate),
                            };
                            if let Some(candidate) = unspliced {
                                self.engine.open_unspliced(now, candidate, &mut self.tx);
                            }
                        }
                    }
                    Kind::Socks5Listener => {
                        if let Some(socks5) = &mut self.socks5 {
                            socks5.accept(self.poll.registry(), now);
                        }
                    }
                    Kind::Socks5Client => {
                        if let Some(socks5) = &mut self.socks5 {
                            let (registry, engine) = (self.poll.registry(), &mut self.engine);
                            socks5.on_client_event(registry, index, now, engine, &mut self.tx);
                        }
                    }
                    Kind::Helper => {
                        if let Some(splicer) = &mut self.splicer {
                            let unspliced = splicer.on_helper_readable(self.poll.registry());
                            for (socket, host) in splicer.take_udp_sockets() {
                                if let Some(relay) = &mut self.udp_outward {
                                    relay.add_socket(self.poll.registry(), socket, host);
                                }
                            }
                            if !splicer.is_available() {
                                self.engine.stop_splicing();
                            }
                            for candidate in unspliced {
                                self.engine.open_unspliced(now, candidate, &mut self.tx);
                            }
                        }
                    }
                    Kind::OutwardUdpSocket | Kind::OutwardUdpFlow => {
                        if let Some(relay) = &mut self.udp_outward {
                            relay.on_event(self.poll.registry(), kind, index, now);
                        }
                    }
                    Kind::OutwardListener => {
                        if let Some(splicer) = &mut self.splicer {
                            let engine = &mut self.engine;
                            splicer.on_outward_ready(
                                self.poll.registry(),
                                index,
                                &mut |host, client| engine.open_spliced(host, client),
                            );
                        }
                    }
                    Kind::SpliceClient | Kind::SpliceInside => {
                        if let Some(splicer) = &mut self.splicer {
                            let registry = self.poll.registry();
                            let moved = splicer.on_pair_event(registry, kind, index, event);
                            self.turn_bytes += moved;
                        }
                    }
                    Kind::Flow | Kind::VirtualUdp => {
                        let tx = &mut self.tx;
                        self.engine.handle_decoded(now, kind, index, event, tx);
                        if self.tx.is_full() {
                            self.flush();
                        }
                    }
                }
            }
            if let Some(splicer) = &mut self.splicer {
                let engine = &mut self.engine;
                splicer.release_closed(|slot| engine.close_spliced(slot));
            }
            if self.link_backlog {
                if let Some(exit) = self.read_link(now) {
                    return Ok(exit);
                }
            }
            self.engine.handle_timers(now, &mut self.tx);
            if let Some(task) = self.periodic.as_mut().filter(|task| task.due_at() <= now) {
                let tick = Tick {
                    engine: &mut self.engine,
                    splicer: self.splicer.as_mut(),
                    udp_outward: self.udp_outward.as_mut(),
                    registry: self.poll.registry(),
                };
                task.run(tick, now);
            }
            if let Some(relay) = &mut self.udp_outward {
                relay.expire(self.poll.registry(), now);
            }
            if let Some(api) = &mut self.api {
                api.expire(self.poll.registry(), now);
            }
            if let Some(socks5) = &mut self.socks5 {
                socks5.expire(self.poll.registry(), now);
            }
            self.finish_turn(now);
        }
    }

    /// Waits for events, and returns when it stopped waiting. After a light turn that is first
    /// a busy poll for the adaptive window (see [`crate::host::busy_poll`]), then a sleep for
    /// what is left of `timeout`.
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<Instant> {
        let start = Instant::now();
        let window = self
            .busy_poll
            .window(std::mem::take(&mut self.turn_bytes), start);
        if timeout == Some(Duration::ZERO) {
            self.poll.poll(events, timeout)?;
            return Ok(Instant::now());
        }
        // Events of the last turn would read as new ones if no poll below replaces them.
        events.clear();
        let window = timeout.map_or(window, |timeout| window.min(timeout));
        if !window.is_zero() {
            loop {
                self.poll.poll(events, Some(Duration::ZERO))?;
                if !events.is_empty() || start.elapsed() >= window {
                    break;
                }
            }
        }
        if events.is_empty() {
            let rest = timeout.map(|timeout| timeout.saturating_sub(start.elapsed()));
            self.poll.poll(events, rest)?;
        }
        let end = Instant::now();
        self.busy_poll.record_idle(end - start);
        Ok(end)
    }

    /// Flushes what the engine queued, letting it go on where a full queue stopped it, a
    /// bounded number of times so that other sources get their turn. A link that is full
    /// ends the turn: its writability brings the next.
    fn finish_turn(&mut self, now: Instant) {
        const ROUNDS: usize = 8;
        self.engine_backlog = false;
        for _ in 0..ROUNDS {
            self.flush();
            if self.tx.is_blocked() {
                return;
            }
            if !self.engine.end_of_batch(now, &mut self.tx) {
                self.flush();
                return;
            }
        }
        self.flush();
        self.engine_backlog = !self.tx.is_blocked();
    }

    fn handle_signals(&mut self) -> Option<Exit> {
        let Some(signals) = &mut self.signals else {
            return None;
        };
        let pending: Vec<i32> = signals.pending().collect();
        for signal in pending {
            match (signal, self.command) {
                (SIGCHLD, _) => {
                    if let Some(exit) = self.reap_command() {
                        return Some(exit);
                    }
                }
                (SIGINT, Some(_)) => {}
                (SIGTERM | SIGHUP, Some(pid)) => {
                    let sig = nix::sys::signal::Signal::try_from(signal).ok();
                    let _ = nix::sys::signal::kill(pid, sig);
                }
                _ => return Some(Exit::Signal(signal)),
            }
        }
        None
    }

    fn reap_command(&mut self) -> Option<Exit> {
        let pid = self.command?;
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Some(Exit::Command(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(Exit::Command(128 + sig as i32)),
            Ok(_) => None,
            Err(e) => {
                log::warn!("waitpid({pid}): {e}");
                Some(Exit::Command(1))
            }
        }
    }
}
