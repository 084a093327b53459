//! The API socket (`-a PATH`): a unix stream listener at PATH, created with mode 0600 and
//! removed again when slirp-ns exits.
//!
//! The JSON protocol (add_hostfwd, list_hostfwd, remove_hostfwd) is not served yet: a client
//! that connects is closed at once rather than left waiting.

use mio::net::UnixListener;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

pub struct ApiSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ApiSocket {
    /// Binds PATH, replacing a stale socket left there (but never any other kind of file).
    pub fn bind(path: &Path) -> Result<Self, String> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                std::fs::remove_file(path).map_err(|e| {
                    format!("cannot remove stale API socket {}: {e}", path.display())
                })?;
            }
            Ok(_) => {
                return Err(format!(
                    "cannot create API socket {}: a file that is not a socket is there",
                    path.display()
                ))
            }
            Err(_) => {}
        }
        // Only the owner may talk to the API: bind with a umask that leaves mode 0600.
        let old_mask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        nix::sys::stat::umask(old_mask);
        let listener =
            bound.map_err(|e| format!("cannot create API socket {}: {e}", path.display()))?;
        Ok(ApiSocket {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn listener_mut(&mut self) -> &mut UnixListener {
        &mut self.listener
    }

    /// Accepts and closes every pending connection.
    pub fn handle_ready(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((conn, _)) => drop(conn),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }
}

impl Drop for ApiSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
