//! splice - the fast path of TCP port forwards for clients on the host's loopback.
//!
//! Such a client needs no address translation: its connection is joined to a socket that the
//! namespace helper makes inside the guest's namespace, connected to the forward's guest
//! address and port, and the bytes move between the two sockets with `splice()` through a pipe
//! per direction — in the kernel, never through the engine, the TAP or a buffer of ours. The
//! guest sees the connection come from its own address (as with pasta or rootlessport).
//! `--no-splice` (or a target without a helper: --netns-type=tapfd) sends these connections
//! through the TAP like the others.
//!
//! Each direction: splice from the source socket into its pipe until EAGAIN, then from the
//! pipe into the destination until EAGAIN; end of stream from the source becomes shutdown of
//! the destination's write side once the pipe is empty. An error on either side, or a failed
//! connect inside, closes both (the client sees a reset).

use crate::ns::helper::Helper;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::OwnedFd;

/// System calls of the splice path (for --enable-seccomp): pipes and splice, and the requests
/// to the helper (a socket made in the namespace comes back with recvmsg).
pub(crate) const SYSCALLS: &[crate::seccomp::Syscall] = &[
    libc::SYS_pipe2,
    libc::SYS_splice,
    libc::SYS_fcntl,
    libc::SYS_sendto,
    libc::SYS_recvmsg,
    libc::SYS_close,
];

/// The helper's socket.
pub const HELPER_TOKEN: Token = Token(4);
/// Tokens of spliced pairs: SPLICE_TOKEN_BASE + 2 × slot (+1 for the inside socket).
pub const SPLICE_TOKEN_BASE: usize = 1 << 22;
/// Most spliced connections at once; more wait for a slot as TAP-path connections would not.
pub const MAX_PAIRS: usize = 1 << 15;
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

struct Pair {
    client: TcpStream,
    inside: TcpStream,
    connected: bool,
    /// Client to guest, and guest to client.
    up: Direction,
    down: Direction,
}

pub struct Splicer {
    helper: Helper,
    pairs: Vec<Option<Pair>>,
    free: Vec<usize>,
    /// Clients whose inside socket was asked for, in the order of the requests.
    waiting: VecDeque<TcpStream>,
}

impl Splicer {
    pub fn new(helper: Helper) -> Self {
        Splicer {
            helper,
            pairs: Vec::new(),
            free: Vec::new(),
            waiting: VecDeque::new(),
        }
    }

    pub fn register(&mut self, registry: &Registry) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.helper.socket().as_raw_fd();
        registry.register(
            &mut mio::unix::SourceFd(&fd),
            HELPER_TOKEN,
            Interest::READABLE,
        )
    }

    /// Whether `token` belongs to a spliced pair.
    pub fn is_pair_token(token: Token) -> bool {
        (SPLICE_TOKEN_BASE..SPLICE_TOKEN_BASE + 2 * MAX_PAIRS).contains(&token.0)
    }

    /// Starts joining `client` to `dst` inside the namespace.
    pub fn start(&mut self, client: TcpStream, dst: SocketAddr) {
        if self.pairs.len() - self.free.len() + self.waiting.len() >= MAX_PAIRS {
            log::debug!("splice: {MAX_PAIRS} connections already, refusing one");
            return;
        }
        match self.helper.request_connect(dst) {
            Ok(()) => self.waiting.push_back(client),
            Err(e) => log::warn!("splice: {e}"),
        }
    }

    /// Answers from the helper: the inside sockets for the waiting clients.
    pub fn on_helper_readable(&mut self, registry: &Registry) {
        while let Some(answer) = self.helper.try_receive() {
            let Some(client) = self.waiting.pop_front() else {
                continue;
            };
            match answer {
                Ok(fd) => self.add_pair(registry, client, fd),
                Err(e) => log::debug!("splice: {e}"),
            }
        }
    }

    fn add_pair(&mut self, registry: &Registry, client: TcpStream, inside: OwnedFd) {
        let (Ok(up), Ok(down)) = (Direction::new(), Direction::new()) else {
            return;
        };
        let mut pair = Pair {
            client,
            inside: TcpStream::from_std(std::net::TcpStream::from(inside)),
            connected: false,
            up,
            down,
        };
        let _ = pair.inside.set_nodelay(true);
        let _ = pair.client.set_nodelay(true);
        let slot = self.free.pop().unwrap_or(self.pairs.len());
        let both = Interest::READABLE | Interest::WRITABLE;
        let base = SPLICE_TOKEN_BASE + 2 * slot;
        if registry
            .register(&mut pair.client, Token(base), both)
            .is_err()
            || registry
                .register(&mut pair.inside, Token(base + 1), both)
                .is_err()
        {
            return;
        }
        if slot == self.pairs.len() {
            self.pairs.push(Some(pair));
        } else {
            self.pairs[slot] = Some(pair);
        }
    }

    /// Readiness of either socket of a pair: move what can be moved. Returns the bytes moved.
    pub fn on_pair_event(&mut self, registry: &Registry, token: Token) -> usize {
        let slot = (token.0 - SPLICE_TOKEN_BASE) / 2;
        let Some(Some(pair)) = self.pairs.get_mut(slot) else {
            return 0;
        };
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
        let up = pair.up.pump(&pair.client, &pair.inside);
        let down = pair.down.pump(&pair.inside, &pair.client);
        match (up, down) {
            (Ok(up), Ok(down)) => {
                if pair.up.done && pair.down.done {
                    self.close(registry, slot, false);
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
            self.free.push(slot);
        }
    }
}
