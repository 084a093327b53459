//! Unix sockets slirp-ns listens on at a path (the API socket, bess and QEMU transports): made
//! for the owner only, replacing a stale socket but never another kind of file, and removed at
//! exit through a descriptor of their directory, so that it works from a sandbox that no longer
//! sees the path.

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// Removes the socket file when dropped.
#[derive(Debug)]
pub struct SocketPath {
    dir: OwnedFd,
    name: OsString,
}

impl SocketPath {
    /// Removes a stale socket at `path` and creates a listening socket of `kind` there (mode
    /// 0600, non-blocking). `what` names it in errors.
    pub fn listen(path: &Path, kind: SockType, what: &str) -> Result<(OwnedFd, Self), String> {
        remove_stale(path, what)?;
        let fd = socket::socket(
            AddressFamily::Unix,
            kind,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| format!("cannot create {what} {}: {e}", path.display()))?;
        let addr = UnixAddr::new(path)
            .map_err(|e| format!("cannot create {what} {}: {e}", path.display()))?;
        let ((), created) = Self::bound(path, what, || socket::bind(fd.as_raw_fd(), &addr))?;
        socket::listen(
            &fd,
            socket::Backlog::new(16).unwrap_or(socket::Backlog::MAXCONN),
        )
        .map_err(|e| format!("cannot listen on {what} {}: {e}", path.display()))?;
        Ok((fd, created))
    }

    /// Runs `bind` (which creates the socket file at `path`) so that the file gets mode 0600,
    /// and returns what removes it again.
    pub fn bound<T, E: std::fmt::Display>(
        path: &Path,
        what: &str,
        bind: impl FnOnce() -> Result<T, E>,
    ) -> Result<(T, Self), String> {
        let old_mask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = bind();
        nix::sys::stat::umask(old_mask);
        let bound = bound.map_err(|e| format!("cannot create {what} {}: {e}", path.display()))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let dir = nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| format!("cannot open the directory of {}: {e}", path.display()))?;
        let socket_path = SocketPath {
            dir,
            name: path.file_name().unwrap_or_default().to_owned(),
        };
        Ok((bound, socket_path))
    }
}

/// Removes a socket left at `path` by an earlier run; refuses to touch any other kind of file.
pub fn remove_stale(path: &Path, what: &str) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale {what} {}: {e}", path.display())),
        Ok(_) => Err(format!(
            "cannot create {what} {}: a file that is not a socket is there",
            path.display()
        )),
        Err(_) => Ok(()),
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = nix::unistd::unlinkat(
            &self.dir,
            self.name.as_os_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}
