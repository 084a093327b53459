//! The helper process: joins the target namespaces, opens (and configures) the TAP device and
//! hands its descriptor back.

use super::fdpass;
use super::netlink::{self, LinkSetup};
use super::tap;
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::stat::{fstat, stat};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The namespaces to join, opened by the parent so that a bad PID or path is reported before
/// anything is forked.
pub struct NamespaceFiles {
    userns: Option<(PathBuf, OwnedFd)>,
    netns: (PathBuf, OwnedFd),
}

fn open_ns(path: &Path, what: &str) -> Result<OwnedFd, String> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| format!("cannot open {what} {}: {e}", path.display()))
}

impl NamespaceFiles {
    /// Refuses slirp-ns's own network namespace as the target: its TAP would become the
    /// route of slirp-ns's own sockets (and --configure would replace the host's default
    /// route), a loop that is never what was meant.
    fn not_our_own(self) -> Result<Self, String> {
        let (path, fd) = &self.netns;
        if is_own_namespace(fd, "/proc/self/ns/net") {
            return Err(format!(
                "{} is slirp-ns's own network namespace; the target must be another one",
                path.display()
            ));
        }
        Ok(self)
    }

    /// The namespaces of process `pid`.
    pub fn of_pid(pid: i32) -> Result<Self, String> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        if !proc_dir.exists() {
            return Err(format!("no process with PID {pid}"));
        }
        let netns = proc_dir.join("ns/net");
        let userns = proc_dir.join("ns/user");
        NamespaceFiles {
            netns: (netns.clone(), open_ns(&netns, "network namespace")?),
            userns: Some((userns.clone(), open_ns(&userns, "user namespace")?)),
        }
        .not_our_own()
    }

    /// The network namespace at `netns` and, if given, the user namespace at `userns`.
    pub fn of_paths(netns: &Path, userns: Option<&Path>) -> Result<Self, String> {
        NamespaceFiles {
            netns: (netns.to_owned(), open_ns(netns, "network namespace")?),
            userns: match userns {
                Some(p) => Some((p.to_owned(), open_ns(p, "user namespace")?)),
                None => None,
            },
        }
        .not_our_own()
    }
}

/// Whether `fd` is the namespace this process is in already (`own` is its /proc/self/ns link).
fn is_own_namespace(fd: &OwnedFd, own: &str) -> bool {
    match (fstat(fd), stat(own)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

fn join(ns: &NamespaceFiles) -> Result<(), String> {
    if let Some((path, fd)) = &ns.userns {
        if !is_own_namespace(fd, "/proc/self/ns/user") {
            setns(fd, CloneFlags::CLONE_NEWUSER)
                .map_err(|e| format!("cannot join user namespace {}: {e}", path.display()))?;
        }
    }
    let (path, fd) = &ns.netns;
    setns(fd, CloneFlags::CLONE_NEWNET).map_err(|e| match e {
        Errno::EINVAL => format!("{} is not a network namespace", path.display()),
        _ => format!("cannot join network namespace {}: {e}", path.display()),
    })
}

fn open_tap_inside(ns: &NamespaceFiles, tap: &TapRequest) -> Result<Vec<OwnedFd>, String> {
    // The helper must not outlive slirp-ns, whatever happens to it.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("prctl(PR_SET_PDEATHSIG): {e}"))?;
    join(ns)?;
    let mut fds = tap::open_tap(&tap.name, tap.vnet_hdr, tap.queues)?;
    for &port in &tap.loopback_listeners {
        fds.push(bind_loopback(SockType::Stream, port)?);
    }
    for &port in &tap.loopback_udp {
        fds.push(bind_loopback(SockType::Datagram, port)?);
    }
    Ok(fds)
}

/// A TCP listener or a UDP socket on 127.0.0.1:`port` in the namespace (IP_FREEBIND: lo may
/// not be up yet).
fn bind_loopback(kind: SockType, port: u16) -> Result<OwnedFd, String> {
    use nix::sys::socket::{bind, listen, setsockopt, socket, sockopt, Backlog, SockaddrIn};
    let what = |e: nix::Error| format!("cannot bind 127.0.0.1:{port} in the namespace: {e}");
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(AddressFamily::Inet, kind, flags, None).map_err(what)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(what)?;
    setsockopt(&fd, sockopt::IpFreebind, &true).map_err(what)?;
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).map_err(what)?;
    if kind == SockType::Stream {
        listen(&fd, Backlog::MAXCONN).map_err(what)?;
    }
    Ok(fd)
}

/// What the helper does once slirp-ns has the TAP: configure it, and lock itself down if it
/// stays.
fn finish_inside(setup: Option<&LinkSetup>, keep_helper: Option<Lockdown>) -> Result<(), String> {
    if let Some(setup) = setup {
        netlink::configure(setup)?;
    }
    if let Some(lockdown) = keep_helper {
        lockdown
            .apply()
            .map_err(|e| format!("cannot lock down the helper: {e}"))?;
    }
    Ok(())
}

/// The TAP device to open: its name, whether its frames carry a virtio-net header (for
/// offloads, if the kernel allows), and how many queues (descriptors) it has.
#[derive(Debug, Clone)]
pub struct TapRequest {
    pub name: String,
    pub vnet_hdr: bool,
    pub queues: usize,
    /// Ports to listen on at the namespace's 127.0.0.1 (pasta's -T); their listeners follow
    /// the TAP's descriptors.
    pub loopback_listeners: Vec<u16>,
    /// The same for UDP (pasta's -U), after the TCP listeners.
    pub loopback_udp: Vec<u16>,
}

/// The helper kept alive inside the target namespaces, making sockets there on request (for
/// the splice path of port forwards). It exits when slirp-ns closes its end or dies.
pub struct Helper {
    sock: OwnedFd,
    pid: nix::unistd::Pid,
}

/// A request: b'c', an IPv4 address and a port: a TCP socket connecting to them.
const CONNECT_REQUEST: u8 = b'c';
/// A request: b'l', 127.0.0.1 and a port: a TCP listener there (pasta's `-T auto`).
const LISTEN_REQUEST: u8 = b'l';
/// A request: b'u', 127.0.0.1 and a port: a UDP socket bound there (pasta's `-U auto`).
const BIND_UDP_REQUEST: u8 = b'u';

impl Helper {
    /// The helper's process, which sits in the namespace.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// The socket to talk to the helper over (register it for readability).
    pub fn socket(&self) -> &OwnedFd {
        &self.sock
    }

    /// Asks for a non-blocking TCP socket inside the namespace, connecting to `dst`; the
    /// answer comes through [`Helper::try_receive`], in the order of the requests.
    pub fn request_connect(&self, dst: std::net::SocketAddr) -> Result<(), String> {
        // Request byte, port, then the 4 or 16 bytes of the address.
        let mut msg = [0u8; 19];
        msg[0] = CONNECT_REQUEST;
        msg[1..3].copy_from_slice(&dst.port().to_be_bytes());
        let len = match dst.ip() {
            std::net::IpAddr::V4(v4) => {
                msg[3..7].copy_from_slice(&v4.octets());
                7
            }
            std::net::IpAddr::V6(v6) => {
                msg[3..19].copy_from_slice(&v6.octets());
                19
            }
        };
        nix::sys::socket::send(
            std::os::fd::AsRawFd::as_raw_fd(&self.sock),
            &msg[..len],
            nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        )
        .map(drop)
        .map_err(|e| format!("namespace helper: {e}"))
    }

    /// Asks for a TCP listener (`udp`: a bound UDP socket) on the namespace's
    /// 127.0.0.1:`port`; answered as connects are.
    pub fn request_listen(&self, port: u16, udp: bool) -> Result<(), String> {
        let mut msg = [0u8; 7];
        msg[0] = if udp {
            BIND_UDP_REQUEST
        } else {
            LISTEN_REQUEST
        };
        msg[1..3].copy_from_slice(&port.to_be_bytes());
        msg[3..7].copy_from_slice(&[127, 0, 0, 1]);
        nix::sys::socket::send(
            std::os::fd::AsRawFd::as_raw_fd(&self.sock),
            &msg,
            nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        )
        .map(drop)
        .map_err(|e| format!("namespace helper: {e}"))
    }

    /// The next answer, if one is there, or that the helper is gone.
    pub fn try_receive(&self) -> fdpass::Reply {
        fdpass::try_recv_result(&self.sock)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing our end makes the helper exit; reap it. One that does not go at once
        // (stopped, say) is killed: dropping must never wait on it.
        let _ = nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&self.sock),
            nix::sys::socket::Shutdown::Both,
        );
        for _ in 0..20 {
            match waitpid(self.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                _ => return,
            }
        }
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// System calls of the helper once it serves (for --enable-seccomp).
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    libc::SYS_recvfrom,
    libc::SYS_socket,
    libc::SYS_connect,
    libc::SYS_sendmsg,
    libc::SYS_shutdown,
    libc::SYS_close,
];

/// What the helper gives up before serving, as slirp-ns does with --enable-sandbox and
/// --enable-seccomp.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lockdown {
    /// no_new_privs, and no capabilities at all.
    pub drop_privileges: bool,
    pub seccomp: bool,
}

impl Lockdown {
    fn apply(self) -> Result<(), String> {
        if self.drop_privileges {
            nix::sys::prctl::set_no_new_privs()
                .map_err(|e| format!("prctl(PR_SET_NO_NEW_PRIVS): {e}"))?;
            crate::confine::sandbox::drop_capabilities(&[])?;
        }
        if self.seccomp {
            crate::confine::seccomp::install(&crate::confine::seccomp::helper_filter(SYSCALLS)?)?;
        }
        Ok(())
    }
}

/// Serves connect requests inside the namespaces until slirp-ns goes away.
fn serve(sock: &OwnedFd) -> ! {
    let mut msg = [0u8; 32];
    loop {
        let n = match nix::sys::socket::recv(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            &mut msg,
            nix::sys::socket::MsgFlags::empty(),
        ) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => super::exit_child(0),
        };
        if n == 0 {
            super::exit_child(0);
        }
        let port = u16::from_be_bytes([msg[1], msg[2]]);
        let ip: Option<std::net::IpAddr> = match n {
            7 => <[u8; 4]>::try_from(&msg[3..7]).ok().map(Into::into),
            19 => <[u8; 16]>::try_from(&msg[3..19]).ok().map(Into::into),
            _ => None,
        };
        let result = match (ip, msg[0]) {
            (Some(ip), CONNECT_REQUEST) => connect_inside(std::net::SocketAddr::new(ip, port)),
            (Some(_), LISTEN_REQUEST) => bind_loopback(SockType::Stream, port),
            (Some(_), BIND_UDP_REQUEST) => bind_loopback(SockType::Datagram, port),
            _ => Err("bad request".to_string()),
        };
        let sent = match &result {
            Ok(fd) => fdpass::send_result(sock, Ok(fd)),
            Err(text) => fdpass::send_result(sock, Err(text)),
        };
        if sent.is_err() {
            super::exit_child(0);
        }
    }
}

fn connect_inside(dst: std::net::SocketAddr) -> Result<OwnedFd, String> {
    use nix::sys::socket::{connect, socket, SockaddrStorage};
    let family = match dst {
        std::net::SocketAddr::V4(_) => AddressFamily::Inet,
        std::net::SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    match connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(dst),
    ) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(fd),
        Err(e) => Err(format!("connect {dst}: {e}")),
    }
}

/// A helper at work on the TAP device: start-up goes on meanwhile, and takes its answer with
/// [`PendingTap::wait`].
pub struct PendingTap {
    sock: OwnedFd,
    child: nix::unistd::Pid,
    keep_helper: bool,
}

/// Starts opening the TAP device `tap` asks for inside the namespaces `ns` (configuring it when
/// `setup` is given), in a child that enters them. Must be called while the process is
/// single-threaded.
///
/// With `keep_helper`, the helper stays in the namespaces afterwards to make sockets there
/// ([`Helper`]), locked down as it says.
pub fn start_opening_tap_in(
    ns: NamespaceFiles,
    tap: &TapRequest,
    setup: Option<&LinkSetup>,
    keep_helper: Option<Lockdown>,
) -> Result<PendingTap, String> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| format!("socketpair: {e}"))?;
    // SAFETY: slirp-ns is single-threaded here (the event loop and any threads come later), so
    // the child may run ordinary Rust code; it leaves with _exit and never returns.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(ours);
            // The helper may outlive start-up: it must not hold slirp-ns's other descriptors
            // (a ready-fd kept open would keep its reader waiting for the end of it).
            let mut keep = vec![theirs.as_raw_fd(), ns.netns.1.as_raw_fd()];
            keep.extend(ns.userns.as_ref().map(|(_, fd)| fd.as_raw_fd()));
            super::close_other_fds(&keep);
            // Nor its output: a caller reading slirp-ns's output until it closes (podman with
            // pasta) would wait as long as the helper lives. It reports through its socket.
            // A failure leaves them as they were.
            let _ = crate::sys::detach_stdio(None);
            // Two answers: the TAP as soon as it exists, so that slirp-ns sets up its loop
            // meanwhile; then whether the rest went well. slirp-ns says it is ready only after
            // the second: the link is configured and the helper locked down by then.
            let opened = open_tap_inside(&ns, tap);
            let sent = fdpass::send_results(&theirs, opened.as_deref().map_err(String::as_str));
            let mut ok = opened.is_ok() && sent.is_ok();
            // The TAP belongs to slirp-ns now: the helper must not keep it open.
            drop(opened);
            if ok {
                let finished = finish_inside(setup, keep_helper);
                let status = finished.as_ref().map(drop).map_err(String::as_str);
                // Sent whatever it says: a failure must reach slirp-ns as its text.
                let sent = fdpass::send_status(&theirs, status);
                ok = finished.is_ok() && sent.is_ok();
                if ok && keep_helper.is_some() {
                    serve(&theirs);
                }
            }
            super::exit_child(if ok { 0 } else { 1 });
        }
        ForkResult::Parent { child } => Ok(PendingTap {
            sock: ours,
            child,
            keep_helper: keep_helper.is_some(),
        }),
    }
}

/// The TAP device's descriptors, one per queue, and the helper if it stays.
pub struct OpenedTap {
    pub fds: Vec<OwnedFd>,
    pub helper: Option<Helper>,
    /// The helper's word that the link is configured and it is locked down, still to come.
    pub finishing: HelperFinishing,
}

impl PendingTap {
    /// Waits for the TAP.
    pub fn wait(self) -> Result<OpenedTap, String> {
        let fds = match fdpass::recv_results(&self.sock) {
            Ok(fds) => fds,
            Err(e) => {
                let _ = waitpid(self.child, None);
                return Err(e);
            }
        };
        if !self.keep_helper {
            return Ok(OpenedTap {
                fds,
                helper: None,
                finishing: HelperFinishing {
                    sock: self.sock,
                    child: Some(self.child),
                },
            });
        }
        let word = self
            .sock
            .try_clone()
            .map_err(|e| format!("cannot duplicate the helper's socket: {e}"))?;
        Ok(OpenedTap {
            fds,
            helper: Some(Helper {
                sock: self.sock,
                pid: self.child,
            }),
            finishing: HelperFinishing {
                sock: word,
                child: None,
            },
        })
    }
}

/// Where the helper's last word at start-up will come.
pub struct HelperFinishing {
    sock: OwnedFd,
    /// The helper, to reap, where it exits after that word.
    child: Option<nix::unistd::Pid>,
}

impl HelperFinishing {
    /// Waits for it. A helper that stays has a non-blocking socket from then on, for the event
    /// loop (the duplicate here shares the socket's flags).
    pub fn wait(self) -> Result<(), String> {
        let word = fdpass::recv_status(&self.sock);
        match self.child {
            Some(child) => {
                let _ = waitpid(child, None);
            }
            None if word.is_ok() => crate::sys::set_nonblocking(self.sock.as_fd(), true)
                .map_err(|e| format!("fcntl: {e}"))?,
            None => {}
        }
        word
    }
}
