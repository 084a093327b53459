//! `--enable-seccomp`: an allow-list of the system calls slirp-ns makes once it runs. Every
//! other call fails with EPERM (rather than killing the process: a call missed here degrades
//! one operation, it does not take the guest's network down).
//!
//! The lists live next to the code that makes the calls (`SYSCALLS` in each module) and the
//! caller gathers them; this module adds what the Rust runtime and the allocator need and
//! installs the filter on every thread at once.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

use crate::sys::Syscall;

/// What any Rust thread may call: memory, futexes, signals, time, exit, and aborting on a
/// panic.
const RUNTIME: &[Syscall] = &[
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_mprotect,
    libc::SYS_futex,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_sched_yield,
    libc::SYS_getrandom,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // Logging to stderr.
    libc::SYS_write,
    libc::SYS_close,
];

/// ioctl requests allowed (the call is refused for any other): the unsent bytes of a socket
/// (the TCP window estimate), and the non-blocking and close-on-exec flags the standard library
/// may set with ioctl.
const IOCTLS: &[libc::c_ulong] = &[libc::TIOCOUTQ, libc::FIONBIO, libc::FIOCLEX, libc::FIONREAD];
/// Socket families that may be made once running: the host sockets of flows and forwards
/// (and, in the helper, the sockets it connects). No packet, netlink or unix sockets.
const SOCKET_FAMILIES: &[u64] = &[libc::AF_INET as u64, libc::AF_INET6 as u64];

/// A call allowed only when one argument (by index) has one of some values.
struct Restricted {
    call: Syscall,
    arg: u8,
    values: &'static [u64],
}

const RESTRICTED: &[Restricted] = &[
    Restricted {
        call: libc::SYS_ioctl,
        arg: 1,
        values: IOCTLS,
    },
    Restricted {
        call: libc::SYS_socket,
        arg: 0,
        values: SOCKET_FAMILIES,
    },
];
const HELPER_RESTRICTED: &[Restricted] = &[Restricted {
    call: libc::SYS_socket,
    arg: 0,
    values: SOCKET_FAMILIES,
}];

/// The filter of the main process: what the runtime needs and the calls in `lists` (each
/// module's own, gathered by the caller), ioctl and socket only with the arguments above; EPERM
/// for the rest.
pub fn filter(lists: &[&[Syscall]]) -> Result<BpfProgram, String> {
    let mut all = vec![RUNTIME];
    all.extend_from_slice(lists);
    build(&all, RESTRICTED)
}

/// The filter of the helper that stays in the guest's namespace: it makes connecting sockets
/// and passes them back, nothing else.
pub fn helper_filter(calls: &[Syscall]) -> Result<BpfProgram, String> {
    build(&[RUNTIME, calls], HELPER_RESTRICTED)
}

fn build(lists: &[&[Syscall]], restricted: &[Restricted]) -> Result<BpfProgram, String> {
    let fail = |e: seccompiler::BackendError| format!("seccomp: {e}");
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for list in lists {
        for &call in *list {
            rules.insert(call, Vec::new());
        }
    }
    // One rule per allowed value (rules are alternatives); this replaces the unconditional
    // entry a module's list made.
    for entry in restricted {
        let alternatives = entry
            .values
            .iter()
            .map(|&value| {
                let condition = SeccompCondition::new(
                    entry.arg,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    value,
                )?;
                SeccompRule::new(vec![condition])
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        rules.insert(entry.call, alternatives);
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp: {e} ({})", std::env::consts::ARCH))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(fail)?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("seccomp: {e}"))
}

/// Installs `program` on every thread of the process (threads made later inherit it too).
pub fn install(program: &BpfProgram) -> Result<(), String> {
    seccompiler::apply_filter_all_threads(program)
        .map_err(|e| format!("cannot install the seccomp filter: {e}"))
}

/// Tries calls the filter forbids and reports on stderr how they were refused: for tests,
/// which ask for it with SLIRP_NS_SECCOMP_SELFTEST. Without the filter the execve would fail
/// with ENOENT (the file does not exist) and the packet socket would be made (as root).
pub fn self_test() {
    let path = c"/nonexistent/slirp-ns-seccomp-self-test";
    let result = nix::unistd::execv(path, &[path]);
    match result {
        Err(errno) => eprintln!("seccomp self-test: execve refused: {}", errno.desc()),
        Ok(never) => match never {},
    }
    // SAFETY: socket() takes no pointers; a descriptor made is closed at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd >= 0 {
        // SAFETY: closing the descriptor just made, which nothing else holds.
        unsafe { libc::close(fd) };
        eprintln!("seccomp self-test: packet socket made");
    } else {
        let errno = nix::errno::Errno::last();
        eprintln!("seccomp self-test: packet socket refused: {}", errno.desc());
    }
}
