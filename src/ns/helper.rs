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
use std::os::fd::OwnedFd;
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

fn helper_main(
    ns: &NamespaceFiles,
    tapname: &str,
    setup: Option<&LinkSetup>,
) -> Result<OwnedFd, String> {
    // The helper must not outlive slirp-ns, whatever happens to it.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("prctl(PR_SET_PDEATHSIG): {e}"))?;
    join(ns)?;
    let tap = tap::open_tap(tapname)?;
    if let Some(setup) = setup {
        netlink::configure(setup)?;
    }
    Ok(tap)
}

/// Opens TAP device `tapname` inside the namespaces `ns` (configuring it when `setup` is given)
/// and returns its descriptor. Must be called while the process is single-threaded.
pub fn open_tap_in(
    ns: NamespaceFiles,
    tapname: &str,
    setup: Option<&LinkSetup>,
) -> Result<OwnedFd, String> {
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
            let result = helper_main(&ns, tapname, setup);
            let sent = match &result {
                Ok(fd) => fdpass::send_result(&theirs, Ok(fd)),
                Err(text) => fdpass::send_result(&theirs, Err(text)),
            };
            super::exit_child(if result.is_ok() && sent.is_ok() { 0 } else { 1 });
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            drop(ns);
            let result = fdpass::recv_result(&ours);
            // The helper exits right after answering; reap it so nothing is left behind.
            let _ = waitpid(child, None);
            result
        }
    }
}
