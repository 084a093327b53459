//! `--enable-sandbox`: once the TAP, the helper and the API socket exist, slirp-ns needs no
//! file but the resolver configuration, and no privilege but binding low ports for forwards.
//! So it moves into a mount namespace of its own whose root is an empty read-only tmpfs
//! holding read-only binds of /etc and /run (and of the directory that /etc/resolv.conf
//! points into, when that lies elsewhere), sets no_new_privs, and drops every capability but
//! CAP_NET_BIND_SERVICE.
//!
//! Must run while the process is single-threaded: a new mount namespace cannot be entered by
//! one thread of many, and capabilities are per thread (threads made later inherit them).

use caps::{CapSet, Capability, CapsHashSet};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::{chdir, chroot, pivot_root};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Where the new root is assembled, in the private mount namespace (so the host's /tmp is
/// only covered for slirp-ns).
const NEW_ROOT: &str = "/tmp";
/// What stays visible, read-only.
const KEPT: [&str; 2] = ["/etc", "/run"];

/// Enters the sandbox. Returns a warning for the caller to print when it had to settle for
/// less than a pivot_root (the new root is then reached by chroot).
/// `also_visible`: further directories to keep, read-only (the TFTP directory).
pub fn enter(resolv_conf: &Path, also_visible: &[&Path]) -> Result<Option<String>, String> {
    // Binding low ports is kept only where it was held: in a user namespace of our own it
    // would be granted anew, and worth nothing (that namespace owns no network namespace).
    let could_bind_low_ports =
        caps::has_cap(None, CapSet::Permitted, Capability::CAP_NET_BIND_SERVICE).unwrap_or(false);
    enter_mount_namespace()?;
    make_mounts_private()?;
    build_root(resolv_conf, also_visible)?;
    let warning = switch_root()?;
    nix::sys::prctl::set_no_new_privs()
        .map_err(|e| format!("sandbox: prctl(PR_SET_NO_NEW_PRIVS): {e}"))?;
    let keep: &[Capability] = if could_bind_low_ports {
        &[Capability::CAP_NET_BIND_SERVICE]
    } else {
        &[]
    };
    drop_capabilities(keep)?;
    Ok(warning)
}

/// A mount namespace of our own; where creating one takes privileges we lack (an
/// unprivileged user, as under rootlesskit), inside a user namespace of our own that maps
/// just our IDs.
fn enter_mount_namespace() -> Result<(), String> {
    match unshare(CloneFlags::CLONE_NEWNS) {
        Ok(()) => return Ok(()),
        Err(nix::errno::Errno::EPERM) => {}
        Err(e) => return Err(format!("sandbox: cannot make a mount namespace: {e}")),
    }
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("sandbox: cannot make a user and mount namespace: {e}"))?;
    let write = |file: &str, text: String| {
        std::fs::write(file, text).map_err(|e| format!("sandbox: cannot write {file}: {e}"))
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1"))
}

/// Keeps what is mounted from here on from propagating back to the namespace we came from.
fn make_mounts_private() -> Result<(), String> {
    let private =
        |point: &str, flags: MsFlags| mount(None::<&str>, point, None::<&str>, flags, None::<&str>);
    match private("/", MsFlags::MS_REC | MsFlags::MS_PRIVATE) {
        Ok(()) => return Ok(()),
        Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(format!("sandbox: cannot make the mounts private: {e}")),
    }
    // The root is no mount point (slirp-ns runs in a chroot): make private each mount that
    // is visible. The tmpfs goes on NEW_ROOT, so that must be one of them: otherwise it would
    // join a mount we cannot see, let alone make private.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("sandbox: cannot read /proc/self/mountinfo: {e}"))?;
    let points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_point)
        .collect();
    if !points.iter().any(|p| p == NEW_ROOT) {
        return Err(format!(
            "sandbox: neither / nor {NEW_ROOT} is a mount point: cannot keep the sandbox's \
             mounts from propagating"
        ));
    }
    for point in &points {
        private(point, MsFlags::MS_PRIVATE)
            .map_err(|e| format!("sandbox: cannot make {point} private: {e}"))?;
    }
    Ok(())
}

/// A mount point as /proc/self/mountinfo writes it, with space, tab, newline and backslash
/// as octal escapes.
fn unescape_mount_point(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts a tmpfs at NEW_ROOT holding read-only binds of what must stay visible.
fn build_root(resolv_conf: &Path, also_visible: &[&Path]) -> Result<(), String> {
    let mut sources: Vec<PathBuf> = KEPT.iter().map(PathBuf::from).collect();
    if let Some(dir) = resolv_conf_dir(resolv_conf) {
        sources.push(dir);
    }
    sources.extend(
        also_visible
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok()),
    );
    // Held open from before the tmpfs goes on NEW_ROOT, which would hide a source below it.
    let held: Vec<(PathBuf, std::os::fd::OwnedFd)> = sources
        .into_iter()
        .filter_map(|source| {
            let flags = nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC;
            let fd = nix::fcntl::open(&source, flags, nix::sys::stat::Mode::empty()).ok()?;
            Some((source, fd))
        })
        .collect();
    let root = Path::new(NEW_ROOT);
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0755,size=64k"),
    )
    .map_err(|e| format!("sandbox: cannot mount a tmpfs on {NEW_ROOT}: {e}"))?;
    for (source, fd) in &held {
        let target = root.join(source.strip_prefix("/").unwrap_or(source));
        std::fs::create_dir_all(&target)
            .map_err(|e| format!("sandbox: cannot create {}: {e}", target.display()))?;
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        bind_read_only(&by_fd, &target).map_err(|e| format!("{e} ({})", source.display()))?;
    }
    Ok(())
}

/// The directory the resolver configuration really lives in, when it is not under a directory
/// kept anyway (a symlink to /mnt/wsl/resolv.conf, say). The directory, not the file: a file
/// replaced by renaming (as resolver managers do) would leave a bind of it on the old copy.
fn resolv_conf_dir(resolv_conf: &Path) -> Option<PathBuf> {
    let target = std::fs::canonicalize(resolv_conf).ok()?;
    let dir = target.parent()?.to_path_buf();
    let kept = KEPT.iter().any(|kept| dir.starts_with(kept));
    (!kept && dir != Path::new("/")).then_some(dir)
}

fn bind_read_only(source: &Path, target: &Path) -> Result<(), String> {
    let fail = |e| format!("sandbox: cannot bind {}: {e}", source.display());
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(fail)?;
    if make_tree_read_only(target).is_ok() {
        return Ok(());
    }
    // Before Linux 5.12, only the top mount of the tree can be made read-only. A remount must
    // repeat the flags the mount already has: in a user namespace, those
    // inherited from a more privileged one (nosuid, nodev...) are locked and may not be
    // cleared.
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    if let Ok(stat) = statvfs(target) {
        let kept = [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ];
        for (has, flag) in kept {
            if stat.flags().contains(has) {
                flags |= flag;
            }
        }
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(fail)
}

/// Makes the mount at `target` and every mount below it read-only (mount_setattr, Linux 5.12).
fn make_tree_read_only(target: &Path) -> Result<(), nix::errno::Errno> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const AT_RECURSIVE: libc::c_int = 0x8000;
    let path = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| nix::errno::Errno::EINVAL)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a valid C string and the attribute struct is the kernel's
    // `struct mount_attr` (version 0, its size passed along); both outlive the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    nix::errno::Errno::result(result).map(drop)
}

/// Makes NEW_ROOT the root: pivot_root, with the old root detached, or where the kernel
/// refuses that (slirp-ns started in a chroot, say), chroot.
fn switch_root() -> Result<Option<String>, String> {
    chdir(NEW_ROOT).map_err(|e| format!("sandbox: cannot enter {NEW_ROOT}: {e}"))?;
    // pivot_root(".", "."): the old root ends up on top of the new one, and is detached at once.
    let warning = match pivot_root(".", ".") {
        Ok(()) => {
            umount2(".", MntFlags::MNT_DETACH)
                .map_err(|e| format!("sandbox: cannot detach the old root: {e}"))?;
            None
        }
        Err(e) => {
            chroot(".").map_err(|e| format!("sandbox: cannot chroot to {NEW_ROOT}: {e}"))?;
            Some(format!(
                "sandbox: pivot_root refused ({e}), using chroot: the old root stays mounted"
            ))
        }
    };
    chdir("/").map_err(|e| format!("sandbox: cannot enter the new root: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("sandbox: cannot make the new root read-only: {e}"))?;
    Ok(warning)
}

/// Leaves the calling thread (and the threads it makes later) only the capabilities in `keep`
/// that it has: effective, permitted, inheritable, ambient and bounding sets.
pub fn drop_capabilities(keep: &[Capability]) -> Result<(), String> {
    let fail = |e: caps::errors::CapsError| format!("cannot drop capabilities: {e}");
    let permitted = caps::read(None, CapSet::Permitted).map_err(fail)?;
    let kept: CapsHashSet = keep
        .iter()
        .copied()
        .filter(|cap| permitted.contains(cap))
        .collect();
    caps::clear(None, CapSet::Ambient).map_err(fail)?;
    // Shrinking the bounding set takes CAP_SETPCAP; without it (an unprivileged process) there
    // is nothing in it a process without privileges could use, no_new_privs being set.
    if permitted.contains(&Capability::CAP_SETPCAP) {
        for cap in caps::read(None, CapSet::Bounding).map_err(fail)? {
            if !kept.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(fail)?;
            }
        }
    }
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(fail)?;
    caps::set(None, CapSet::Effective, &kept).map_err(fail)?;
    caps::set(None, CapSet::Permitted, &kept).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_elsewhere_keeps_its_directory_visible() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("resolver");
        std::fs::create_dir(&real_dir).unwrap();
        std::fs::write(real_dir.join("resolv.conf"), "nameserver 192.0.2.1\n").unwrap();
        let link = dir.path().join("resolv.conf");
        std::os::unix::fs::symlink(real_dir.join("resolv.conf"), &link).unwrap();
        let real_dir = std::fs::canonicalize(&real_dir).unwrap();
        assert_eq!(resolv_conf_dir(&link), Some(real_dir));
        // Under a directory kept anyway, or missing: nothing more to bind.
        assert_eq!(resolv_conf_dir(Path::new("/etc/hostname")), None);
        assert_eq!(resolv_conf_dir(&dir.path().join("missing")), None);
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount_point("/run/user/1000"), "/run/user/1000");
        assert_eq!(unescape_mount_point("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(
            unescape_mount_point("/mnt/back\\134slash"),
            "/mnt/back\\slash"
        );
        assert_eq!(unescape_mount_point("/odd\\9"), "/odd\\9");
    }
}
