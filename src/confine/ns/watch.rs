//! watch - notice that the target namespace is gone: its bind-mounted file removed (podman
//! removes /run/user/UID/netns/netns-ID when the container stops) or its process exited. pasta
//! exits then, and so does slirp-ns started as pasta (unless --no-netns-quit).

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// What ends the namespace's life as far as we are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuitWhen {
    /// This file (a namespace bind mount) is removed or renamed away, or its directory goes.
    FileRemoved(std::path::PathBuf),
    /// This process exits.
    ProcessExits(i32),
}

/// A descriptor that becomes readable when the target may be gone; [`QuitWatch::target_gone`]
/// says whether it is.
pub enum QuitWatch {
    File { inotify: Inotify, name: OsString },
    Process(OwnedFd),
}

impl QuitWatch {
    pub fn new(when: &QuitWhen) -> io::Result<Self> {
        match when {
            QuitWhen::FileRemoved(path) => {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                let dir = dir.unwrap_or(Path::new("."));
                let name = path.file_name().unwrap_or_default().to_os_string();
                let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
                inotify.add_watch(
                    dir,
                    AddWatchFlags::IN_DELETE
                        | AddWatchFlags::IN_MOVED_FROM
                        | AddWatchFlags::IN_DELETE_SELF
                        | AddWatchFlags::IN_MOVE_SELF,
                )?;
                if !path.exists() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{} is gone already", path.display()),
                    ));
                }
                Ok(QuitWatch::File { inotify, name })
            }
            QuitWhen::ProcessExits(pid) => {
                // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
                let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, *pid, 0) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: the descriptor was just made and is owned by nothing else.
                Ok(QuitWatch::Process(unsafe {
                    OwnedFd::from_raw_fd(fd as RawFd)
                }))
            }
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }

    /// Called when the descriptor is readable: reads what there is and says whether the target
    /// is gone (a process's descriptor becomes readable only when it exits).
    pub fn target_gone(&self) -> bool {
        match self {
            QuitWatch::Process(_) => true,
            QuitWatch::File { inotify, name } => {
                let mut gone = false;
                while let Ok(events) = inotify.read_events() {
                    if events.is_empty() {
                        break;
                    }
                    gone |= events.iter().any(|event| {
                        let whole_dir = AddWatchFlags::IN_DELETE_SELF
                            | AddWatchFlags::IN_MOVE_SELF
                            | AddWatchFlags::IN_IGNORED;
                        event.mask.intersects(whole_dir) || event.name.as_deref() == Some(name)
                    });
                }
                gone
            }
        }
    }
}

impl AsFd for QuitWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            QuitWatch::File { inotify, .. } => inotify.as_fd(),
            QuitWatch::Process(fd) => fd.as_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_watched_file_going_counts() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("netns-a");
        let other = dir.path().join("netns-b");
        std::fs::write(&watched, b"").unwrap();
        std::fs::write(&other, b"").unwrap();
        let watch = QuitWatch::new(&QuitWhen::FileRemoved(watched.clone())).unwrap();
        std::fs::remove_file(&other).unwrap();
        assert!(!watch.target_gone());
        std::fs::remove_file(&watched).unwrap();
        assert!(watch.target_gone());
    }

    #[test]
    fn a_process_exit_is_seen() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let watch = QuitWatch::new(&QuitWhen::ProcessExits(child.id() as i32)).unwrap();
        child.wait().unwrap();
        let mut fds = [nix::poll::PollFd::new(
            watch.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        assert_eq!(nix::poll::poll(&mut fds, 1000u16).unwrap(), 1);
        assert!(watch.target_gone());
    }
}
