//! Going into the background as pasta does: the process the caller started exits 0 only once
//! the one that runs on says it is ready (podman and rootlesskit wait for that exit), or 1 when
//! that one fails first (its message is already on the shared stderr).

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe2, read, setsid, ForkResult};
use std::os::fd::{IntoRawFd, RawFd};
use std::process::ExitCode;

pub enum Side {
    /// The caller's process: exit with this.
    Parent(ExitCode),
    /// The process that runs on: write "1" to this descriptor when ready.
    Child(RawFd),
}

/// Forks; must be called while the process has one thread.
pub fn fork_into_background() -> Result<Side, String> {
    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: single-threaded here (start-up has made no thread yet), so the child may run on.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { child } => {
            drop(ready_w);
            let mut byte = [0u8; 1];
            let ready = loop {
                match read(&ready_r, &mut byte) {
                    Err(Errno::EINTR) => continue,
                    Ok(1) => break byte[0] == b'1',
                    _ => break false,
                }
            };
            if ready {
                return Ok(Side::Parent(ExitCode::SUCCESS));
            }
            // It failed and said why; collect it.
            let _ = waitpid(child, None);
            Ok(Side::Parent(ExitCode::FAILURE))
        }
        ForkResult::Child => {
            drop(ready_r);
            // Out of the caller's session: its terminal's signals are not ours.
            let _ = setsid();
            Ok(Side::Child(ready_w.into_raw_fd()))
        }
    }
}
