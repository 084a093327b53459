//! Exec mode: a new network namespace (and, for an unprivileged caller, a new user namespace
//! mapping the caller to root) for a command that slirp-ns then connects and runs.
//!
//! The child makes the namespaces, reports back, and waits for the word to exec; the parent
//! sets the network up in between, so the command starts with tap0 already configured.

use nix::sched::{unshare, CloneFlags};
use nix::unistd::{execvp, fork, getgid, getuid, pipe, read, write, ForkResult, Pid};
use std::ffi::{CString, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

/// System calls of exec mode once the command runs (for --enable-seccomp): the word to start.
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[libc::SYS_write, libc::SYS_close];

/// The command's process, created and waiting for [`ExecChild::start`].
pub struct ExecChild {
    pid: Pid,
    /// The write end the child waits on; `None` once the command was started.
    go: Option<OwnedFd>,
}

const GO: &[u8] = b"g";

fn make_namespaces() -> Result<(), String> {
    let (uid, gid) = (getuid(), getgid());
    if uid.is_root() {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
        return Ok(());
    }
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!("cannot create user and network namespaces: {e} (are unprivileged user namespaces enabled?)")
    })?;
    let write_file = |path: &str, text: String| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))
    };
    write_file("/proc/self/setgroups", "deny".into())?;
    write_file("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write_file("/proc/self/gid_map", format!("0 {gid} 1"))
}

fn child_main(ready: OwnedFd, go: OwnedFd, argv: &[CString]) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let report = match make_namespaces() {
        Ok(()) => "ok".to_string(),
        Err(e) => e,
    };
    let _ = write(&ready, report.as_bytes());
    drop(ready);
    if report != "ok" {
        super::exit_child(1);
    }
    let mut word = [0u8; 1];
    match read(&go, &mut word) {
        Ok(1) if word == GO => {}
        // slirp-ns failed or died before the network was up: do not run the command.
        _ => super::exit_child(1),
    }
    drop(go);
    // Rust starts with SIGPIPE ignored, and exec keeps ignored signals ignored: give the
    // command the default a shell would.
    // SAFETY: resetting a disposition to SIG_DFL installs no handler.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let err = execvp(&argv[0], argv).unwrap_err();
    eprintln!("slirp-ns: cannot run {}: {err}", argv[0].to_string_lossy());
    super::exit_child(127);
}

impl ExecChild {
    /// Forks the command's process and waits until its namespaces exist.
    /// Must be called while the process is single-threaded.
    pub fn spawn(command: &[OsString]) -> Result<ExecChild, String> {
        let argv = command
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "the command contains a NUL byte".to_string())?;
        if argv.is_empty() {
            return Err("no command given after --".into());
        }
        let (ready_r, ready_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
        let (go_r, go_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
        // SAFETY: single-threaded at this point, see above; the child ends in exec or _exit.
        match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
            ForkResult::Child => {
                drop(ready_r);
                drop(go_w);
                child_main(ready_w, go_r, &argv)
            }
            ForkResult::Parent { child } => {
                drop(ready_w);
                drop(go_r);
                let mut buf = [0u8; 1024];
                let mut report = Vec::new();
                loop {
                    match read(&ready_r, &mut buf) {
                        Ok(0) => break,
                        Ok(n) => report.extend_from_slice(&buf[..n]),
                        Err(nix::errno::Errno::EINTR) => continue,
                        Err(e) => return Err(format!("read: {e}")),
                    }
                }
                if report != b"ok" {
                    let _ = nix::sys::wait::waitpid(child, None);
                    let text = String::from_utf8_lossy(&report);
                    return Err(if text.is_empty() {
                        "the command's process died before its namespaces were made".into()
                    } else {
                        text.into_owned()
                    });
                }
                Ok(ExecChild {
                    pid: child,
                    go: Some(go_w),
                })
            }
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Lets the command run.
    pub fn start(&mut self) -> Result<Pid, String> {
        let go = self.go.take().ok_or("the command was already started")?;
        write(&go, GO).map_err(|e| format!("cannot start the command: {e}"))?;
        Ok(self.pid)
    }
}

impl Drop for ExecChild {
    /// A child never started (set-up failed) sees its pipe close, exits, and is reaped here.
    fn drop(&mut self) {
        if self.go.take().is_some() {
            let _ = nix::sys::wait::waitpid(self.pid, None);
        }
    }
}
