//! Everything that touches namespaces.
//!
//! A process that has started threads may not join a user namespace, and joining changes the
//! whole process's view of the network; so the work inside the target namespace is done by a
//! helper, forked while slirp-ns is still single-threaded ([`helper`]). It joins the user
//! namespace (when it differs from ours) and then the network namespace, opens the TAP device
//! ([`tap`]), configures the links over rtnetlink when asked ([`netlink`]) and passes the TAP
//! descriptor back over SCM_RIGHTS (`fdpass`). Then it either exits or, for the splice path of
//! port forwards, stays to make sockets inside the namespace on request; it holds nothing but
//! its socket to slirp-ns and goes when slirp-ns does. (Keeping it does not keep the namespace
//! alive any longer than the TAP descriptor already does.)
//!
//! [`exec`] is slirp-ns's own mode: make a fresh namespace for a command and run it there.

pub mod exec;
pub(crate) mod fdpass;
pub mod helper;
pub mod netlink;
pub mod tap;
pub mod watch;

/// Ends a forked child at once: no destructors, no atexit handlers, no flushing of stdio
/// buffers it shares with slirp-ns.
fn exit_child(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and takes no pointers.
    unsafe { libc::_exit(code) }
}

/// Closes every descriptor above stderr but those in `keep`, in a forked child.
fn close_other_fds(keep: &[std::os::fd::RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    keep.sort_unstable();
    // One close_range per gap between the descriptors kept (Linux 5.9 and later)...
    let mut gaps = Vec::new();
    let mut first = 3u32;
    for &kept in &keep {
        if kept > first {
            gaps.push((first, kept - 1));
        }
        first = first.max(kept.saturating_add(1));
    }
    gaps.push((first, u32::MAX));
    // SAFETY: in a forked child that never returns to the code owning these descriptors;
    // close_range takes no pointers.
    let supported = gaps
        .iter()
        .all(|&(first, last)| unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) } == 0);
    if supported {
        return;
    }
    // ...else one close per descriptor /proc lists.
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: as above; closing one that read_dir's own descriptor was is harmless.
            unsafe { libc::close(fd as i32) };
        }
    }
}
