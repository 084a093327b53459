//! splice - the fast path of TCP port forwards for clients on the host's loopback.
//!
//! Such a client needs no address translation: its connection is joined to a socket that the
//! namespace helper makes inside the guest's namespace, connected to the forward's guest
//! address and port, and the bytes move between the two sockets with `splice()` through a pipe
//! per direction — in the kernel, never through the engine, the TAP or a buffer of ours. The
//! guest sees the connection come from its own address (as with pasta or rootlessport).
//! `--no-splice` (or a target without a helper: --netns-type=tapfd) sends these connections
//! through the TAP like the others, and so does a helper that has gone (killed, or its
//! namespace gone): spliced pairs already joined keep going, new clients take the TAP.
//!
//! Each direction: splice from the source socket into its pipe until EAGAIN, then from the
//! pipe into the destination until EAGAIN; end of stream from the source becomes shutdown of
//! the destination's write side once the pipe is empty. An error on either side, or a failed
//! connect inside, closes both (the client sees a reset).
//!
//! Each spliced connection is a flow of the engine's table (engine::flows::spliced): it counts
//! under the same `max_flows`, and its flow slot names its two sockets' tokens. A connection
//! the table has no room for is refused; a closed one gives its slot back
//! ([`Splicer::release_closed`]).

use crate::confine::ns::fdpass::Reply;
use crate::confine::ns::helper::Helper;
use crate::engine::flows::spliced::SpliceCandidate;
use crate::tokens::{self, Kind};
use mio::net::TcpStream;
use mio::{Interest, Registry};
use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::OwnedFd;

/// System calls of the splice path (for --enable-seccomp): pipes and splice, and the requests
/// to the helper (a socket made in the namespace comes back with recvmsg).
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    libc::SYS_pipe2,
    libc::SYS_splice,
    libc::SYS_fcntl,
    libc::SYS_sendto,
    libc::SYS_recvmsg,
    libc::SYS_close,
];

/// Most listeners in the namespace's loopback (pasta's -T ports).
pub const MAX_OUTWARD_LISTENERS: usize = 1 << 16;
/// Pipe capacity asked for (the kernel may give less to an unprivileged user).
const PIPE_SIZE: i32 = 1 << 20;
/// Most bytes moved per splice call.
const CHUNK: usize = 1 << 20;

struct Direction {
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    /// Bytes in the pipe, not yet passed on.
    in_pipe: usize,
    /// The source sent its end of stream.
    src_eof: bool,
    /// The destination's write side is shut (this direction is done).
    done: bool,
}

impl Direction {
    fn new() -> nix::Result<Self> {
        let (pipe_r, pipe_w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let _ = fcntl(&pipe_w, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        Ok(Direction {
            pipe_r,
            pipe_w,
            in_pipe: 0,
            src_eof: false,
            done: false,
        })
    }

    /// Moves what it can from `src` to `dst`: how many bytes it took from `src`, or `Err` when
    /// either side failed.
    fn pump(&mut self, src: &TcpStream, dst: &TcpStream) -> Result<usize, Errno> {
        let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
        let mut taken = 0;
        loop {
            while self.in_pipe > 0 {
                match splice(&self.pipe_r, None, dst, None, self.in_pipe, flags) {
                    Ok(n) => self.in_pipe -= n,
                    Err(Errno::EAGAIN) => return Ok(taken),
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(e),
                }
            }
            if self.src_eof {
                if !self.done {
                    self.done = true;
                    let _ = dst.shutdown(Shutdown::Write);
                }
                return Ok(taken);
            }
            match splice(src, None, &self.pipe_w, None, CHUNK, flags) {
                Ok(0) => self.src_eof = true,
                Ok(n) => {
                    self.in_pipe += n;
                    taken += n;
                }
                Err(Errno::EAGAIN) => return Ok(taken),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// What a request to the helper was for, in the order of the requests.
enum Waiting {
    /// A client to join to the socket asked for (with its guest address and flow slot).
    Client(SpliceCandidate),
    /// A listener asked for in the namespace's loopback, and the host address its clients reach.
    Listener(SocketAddr),
    /// A UDP socket asked for there, for the -U relay, and the host address it relays to.
    UdpSocket(SocketAddr),
}

struct Pair {
    client: TcpStream,
    inside: TcpStream,
    connected: bool,
    /// Client to guest, and guest to client.
    up: Direction,
    down: Direction,
    /// What each socket is registered for now.
    client_interest: Interest,
    inside_interest: Interest,
}

impl Pair {
    /// Registers each socket for what can move now: reading from a source only while its
    /// pipe is empty (a direction waiting for its destination to drain is not woken by every
    /// segment that arrives meanwhile; what arrives waits in the socket and is taken in one
    /// go), writing to a destination only while its pipe holds bytes. A socket wanting neither
    /// keeps WRITABLE, which fires only after a write that found it full.
    fn update_interest(&mut self, registry: &Registry, slot: usize) {
        let wanted = |read: bool, write: bool| match (read, write) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (true, false) => Interest::READABLE,
            (false, _) => Interest::WRITABLE,
        };
        let client = wanted(self.up.in_pipe == 0, self.down.in_pipe > 0);
        let inside = wanted(self.down.in_pipe == 0, self.up.in_pipe > 0);
        if client != self.client_interest {
            let token = tokens::token(Kind::SpliceClient, slot);
            if registry.reregister(&mut self.client, token, client).is_ok() {
                self.client_interest = client;
            }
        }
        if inside != self.inside_interest {
            let token = tokens::token(Kind::SpliceInside, slot);
            if registry.reregister(&mut self.inside, token, inside).is_ok() {
                self.inside_interest = inside;
            }
        }
    }
}

pub struct Splicer {
    /// `None` once the helper is gone.
    helper: Option<Helper>,
    /// By flow slot.
    pairs: Vec<Option<Pair>>,
    /// Flow slots of connections closed (or never joined) since the engine last took them.
    closed: Vec<usize>,
    /// Clients whose inside socket was asked for, with their guest address, in the order of
    /// the requests.
    waiting: VecDeque<Waiting>,
    /// Connect to the namespace's loopback rather than the guest's address (pasta's
    /// --host-lo-to-ns-lo): the guest's server sees a loopback client.
    to_loopback: bool,
    /// Listeners on the namespace's loopback (made by the helper), each with the host loopback
    /// port its clients are joined to (pasta's -T); a slot is empty once its port is dropped.
    outward: Vec<Option<(mio::net::TcpListener, SocketAddr)>>,
    /// UDP sockets the helper made, for the -U relay to take.
    udp_ready: Vec<(OwnedFd, SocketAddr)>,
}

impl Splicer {
    pub fn new(helper: Helper, to_loopback: bool) -> Self {
        Splicer {
            helper: Some(helper),
            pairs: Vec::new(),
            closed: Vec::new(),
            waiting: VecDeque::new(),
            to_loopback,
            outward: Vec::new(),
            udp_ready: Vec::new(),
        }
    }

    /// Joins the clients of `listener` (in the namespace) to `host` (on the host). Before
    /// [`Splicer::register`].
    pub fn add_outward(&mut self, listener: OwnedFd, host: SocketAddr) {
        if self.outward.len() < MAX_OUTWARD_LISTENERS {
            let listener = std::net::TcpListener::from(listener);
            self.outward
                .push(Some((mio::net::TcpListener::from_std(listener), host)));
        }
    }

    /// Asks the helper for a listener on the namespace's 127.0.0.1:`port` whose clients are
    /// joined to `host` (pasta's `-T auto`); it is in place once the helper answers.
    pub fn request_outward(&mut self, port: u16, host: SocketAddr) {
        let Some(helper) = &self.helper else {
            return;
        };
        match helper.request_listen(port, false) {
            Ok(()) => self.waiting.push_back(Waiting::Listener(host)),
            Err(e) => log::warn!("splice: {e}"),
        }
    }

    /// Asks the helper for a UDP socket on the namespace's 127.0.0.1:`port` relaying to `host`
    /// (pasta's `-U auto`); [`Splicer::take_udp_sockets`] hands it over once made.
    pub fn request_udp(&mut self, port: u16, host: SocketAddr) {
        let Some(helper) = &self.helper else {
            return;
        };
        match helper.request_listen(port, true) {
            Ok(()) => self.waiting.push_back(Waiting::UdpSocket(host)),
            Err(e) => log::warn!("splice: {e}"),
        }
    }

    /// The UDP sockets made since the last call.
    pub fn take_udp_sockets(&mut self) -> Vec<(OwnedFd, SocketAddr)> {
        std::mem::take(&mut self.udp_ready)
    }

    /// Closes the namespace-side listener whose clients reach `host`.
    pub fn drop_outward(&mut self, registry: &Registry, host: SocketAddr) {
        for entry in &mut self.outward {
            if entry.as_ref().is_some_and(|(_, to)| *to == host) {
                if let Some((mut listener, _)) = entry.take() {
                    let _ = registry.deregister(&mut listener);
                }
            }
        }
    }

    /// A listener the helper made, registered now.
    fn install_outward(&mut self, registry: &Registry, listener: OwnedFd, host: SocketAddr) {
        let listener = std::net::TcpListener::from(listener);
        let mut listener = mio::net::TcpListener::from_std(listener);
        let index = match self.outward.iter().position(Option::is_none) {
            Some(index) => index,
            None if self.outward.len() < MAX_OUTWARD_LISTENERS => self.outward.len(),
            None => return,
        };
        let token = tokens::token(Kind::OutwardListener, index);
        if registry
            .register(&mut listener, token, Interest::READABLE)
            .is_err()
        {
            return;
        }
        if index == self.outward.len() {
            self.outward.push(Some((listener, host)));
        } else {
            self.outward[index] = Some((listener, host));
        }
    }

    /// The namespace-side listener `index` is readable: each client gets a connection to its
    /// host port, spliced to it, if `open_flow(host, client)` gives it a flow slot.
    pub fn on_outward_ready(
        &mut self,
        registry: &Registry,
        index: usize,
        open_flow: &mut dyn FnMut(SocketAddr, SocketAddr) -> Option<usize>,
    ) {
        loop {
            let Some(Some((listener, host))) = self.outward.get(index) else {
                return;
            };
            let host = *host;
            let (client, client_addr) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, say: the client waits in the backlog for the next
                    // readiness rather than spinning here.
                    log::debug!("splice: accept in the namespace: {e}");
                    return;
                }
            };
            let Some(slot) = open_flow(host, client_addr) else {
                log::debug!("splice: no flow slot for {client_addr}, refusing it");
                crate::engine::reset_on_close(&client);
                continue;
            };
            match TcpStream::connect(host) {
                Ok(outside) => self.add_pair(registry, client, outside, slot),
                Err(e) => {
                    log::debug!("splice: connect to {host}: {e}");
                    self.closed.push(slot);
                }
            }
        }
    }

    pub fn register(&mut self, registry: &Registry) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        for (index, entry) in self.outward.iter_mut().enumerate() {
            let Some((listener, _)) = entry else {
                continue;
            };
            let token = tokens::token(Kind::OutwardListener, index);
            registry.register(listener, token, Interest::READABLE)?;
        }
        let Some(helper) = &self.helper else {
            return Ok(());
        };
        let fd = helper.socket().as_raw_fd();
        registry.register(
            &mut mio::unix::SourceFd(&fd),
            tokens::HELPER,
            Interest::READABLE,
        )
    }

    /// Whether new clients can be spliced (the helper is still there).
    pub fn is_available(&self) -> bool {
        self.helper.is_some()
    }

    /// Starts joining a forwarded client to its guest address inside the namespace. Gives it
    /// back when it cannot be spliced because the helper is gone (it can take the TAP instead).
    pub fn start(&mut self, candidate: SpliceCandidate) -> Option<SpliceCandidate> {
        let Some(helper) = &self.helper else {
            return Some(candidate);
        };
        let dst = candidate.guest;
        let inside = match (self.to_loopback, dst) {
            (false, _) => dst,
            (true, SocketAddr::V4(_)) => {
                SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, dst.port()))
            }
            (true, SocketAddr::V6(_)) => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, dst.port()))
            }
        };
        match helper.request_connect(inside) {
            Ok(()) => self.waiting.push_back(Waiting::Client(candidate)),
            Err(e) => {
                log::warn!("splice: {e}");
                self.closed.push(candidate.slot);
            }
        }
        None
    }

    /// Answers from the helper: the inside sockets for the waiting clients. When the helper
    /// is gone, it is let go (once: its socket is deregistered) and the clients still waiting
    /// are given back.
    pub fn on_helper_readable(&mut self, registry: &Registry) -> Vec<SpliceCandidate> {
        loop {
            let Some(helper) = &self.helper else {
                return Vec::new();
            };
            match helper.try_receive() {
                Reply::Nothing => return Vec::new(),
                Reply::Answer(answer) => match (self.waiting.pop_front(), answer) {
                    (Some(Waiting::Client(candidate)), Ok(fd)) => {
                        let inside = TcpStream::from_std(std::net::TcpStream::from(fd));
                        self.add_pair(registry, candidate.client, inside, candidate.slot)
                    }
                    (Some(Waiting::Client(candidate)), Err(e)) => {
                        log::debug!("splice: {e}");
                        self.closed.push(candidate.slot);
                    }
                    (Some(Waiting::Listener(host)), Ok(fd)) => {
                        self.install_outward(registry, fd, host)
                    }
                    (Some(Waiting::UdpSocket(host)), Ok(fd)) => self.udp_ready.push((fd, host)),
                    (_, Err(e)) => log::debug!("splice: {e}"),
                    (None, Ok(_)) => {}
                },
                Reply::Gone(why) => {
                    log::warn!("{why}; port forwards from loopback go through the TAP from now on");
                    use std::os::fd::AsRawFd;
                    let fd = helper.socket().as_raw_fd();
                    let _ = registry.deregister(&mut mio::unix::SourceFd(&fd));
                    self.helper = None;
                    return self
                        .waiting
                        .drain(..)
                        .filter_map(|waiting| match waiting {
                            Waiting::Client(candidate) => Some(candidate),
                            Waiting::Listener(_) | Waiting::UdpSocket(_) => None,
                        })
                        .collect();
                }
            }
        }
    }

    /// Joins `client` to `inside`, which may still be connecting, as the flow in `slot`.
    fn add_pair(&mut self, registry: &Registry, client: TcpStream, inside: TcpStream, slot: usize) {
        let (Ok(up), Ok(down)) = (Direction::new(), Direction::new()) else {
            self.closed.push(slot);
            return;
        };
        let mut pair = Pair {
            client,
            inside,
            connected: false,
            up,
            down,
            client_interest: Interest::READABLE | Interest::WRITABLE,
            inside_interest: Interest::READABLE | Interest::WRITABLE,
        };
        let _ = pair.inside.set_nodelay(true);
        let _ = pair.client.set_nodelay(true);
        let both = Interest::READABLE | Interest::WRITABLE;
        let client_token = tokens::token(Kind::SpliceClient, slot);
        let inside_token = tokens::token(Kind::SpliceInside, slot);
        if registry
            .register(&mut pair.client, client_token, both)
            .is_err()
            || registry
                .register(&mut pair.inside, inside_token, both)
                .is_err()
        {
            let _ = registry.deregister(&mut pair.client);
            self.closed.push(slot);
            return;
        }
        if slot >= self.pairs.len() {
            self.pairs.resize_with(slot + 1, || None);
        }
        self.pairs[slot] = Some(pair);
    }

    /// Hands the flow slots of the connections closed since the last call to `release`.
    pub fn release_closed(&mut self, mut release: impl FnMut(usize)) {
        for slot in self.closed.drain(..) {
            release(slot);
        }
    }

    /// Readiness of either socket of the pair of flow `slot` (`kind` says which): move what
    /// can be moved. Returns the bytes moved.
    pub fn on_pair_event(
        &mut self,
        registry: &Registry,
        kind: Kind,
        slot: usize,
        event: &mio::event::Event,
    ) -> usize {
        let Some(Some(pair)) = self.pairs.get_mut(slot) else {
            return 0;
        };
        let just_connected = !pair.connected;
        if !pair.connected {
            match pair.inside.take_error() {
                Ok(None) if pair.inside.peer_addr().is_ok() => pair.connected = true,
                Ok(None) => return 0,
                _ => {
                    self.close(registry, slot, true);
                    return 0;
                }
            }
        }
        // Only the directions this event can move: a socket that became readable feeds its
        // direction; one that is writable drains the other's pipe, when it holds anything (a
        // socket we never filled is writable at every wake-up, and a splice from the other
        // side would find nothing). An error or hang-up moves both, so that each side sees it.
        let (readable, writable) = (event.is_readable(), event.is_writable());
        let (run_up, run_down) = if just_connected || event.is_error() || event.is_read_closed() {
            (true, true)
        } else if kind == Kind::SpliceClient {
            (readable, writable && pair.down.in_pipe > 0)
        } else {
            (writable && pair.up.in_pipe > 0, readable)
        };
        let up = if run_up {
            pair.up.pump(&pair.client, &pair.inside)
        } else {
            Ok(0)
        };
        let down = if run_down {
            pair.down.pump(&pair.inside, &pair.client)
        } else {
            Ok(0)
        };
        match (up, down) {
            (Ok(up), Ok(down)) => {
                if pair.up.done && pair.down.done {
                    self.close(registry, slot, false);
                } else {
                    pair.update_interest(registry, slot);
                }
                up + down
            }
            _ => {
                self.close(registry, slot, true);
                0
            }
        }
    }

    fn close(&mut self, registry: &Registry, slot: usize, reset: bool) {
        if let Some(mut pair) = self.pairs[slot].take() {
            let _ = registry.deregister(&mut pair.client);
            let _ = registry.deregister(&mut pair.inside);
            if reset {
                crate::engine::reset_on_close(&pair.client);
                crate::engine::reset_on_close(&pair.inside);
            }
            self.closed.push(slot);
        }
    }
}
