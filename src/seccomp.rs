//! `--enable-seccomp`: an allow-list of the system calls slirp-ns makes once it runs. Every
//! other call fails with EPERM (rather than killing the process: a call missed here degrades
//! one operation, it does not take the guest's network down).
//!
//! The lists live next to the code that makes the calls (`SYSCALLS` in each module); this
//! module adds what the Rust runtime and the allocator need and installs the filter on every
//! thread at once.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// A system call number, as the filter takes it.
pub type Syscall = libc::c_long;

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

/// Every list of the main process, by who needs it.
fn main_lists() -> [&'static [Syscall]; 10] {
    [
        RUNTIME,
        crate::event_loop::SYSCALLS,
        crate::transport::tap::SYSCALLS,
        crate::engine::sockets::SYSCALLS,
        crate::engine::tcp::SYSCALLS,
        crate::engine::udp::SYSCALLS,
        crate::engine::dns::SYSCALLS,
        crate::splice::SYSCALLS,
        crate::api::SYSCALLS,
        crate::ns::exec::SYSCALLS,
    ]
}

/// The filter of the main process: the allowed calls (ioctl only with the requests above),
/// EPERM for the rest.
pub fn filter() -> Result<BpfProgram, String> {
    build(&main_lists(), IOCTLS)
}

/// The filter of the helper that stays in the guest's namespace: it makes connecting sockets
/// and passes them back, nothing else.
pub fn helper_filter() -> Result<BpfProgram, String> {
    build(&[RUNTIME, crate::ns::helper::SYSCALLS], &[])
}

fn build(lists: &[&[Syscall]], ioctls: &[libc::c_ulong]) -> Result<BpfProgram, String> {
    let fail = |e: seccompiler::BackendError| format!("seccomp: {e}");
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for list in lists {
        for &call in *list {
            rules.insert(call, Vec::new());
        }
    }
    let ioctl_rules = ioctls
        .iter()
        .map(|&request| {
            let condition =
                SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, request)?;
            SeccompRule::new(vec![condition])
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    if !ioctl_rules.is_empty() {
        rules.insert(libc::SYS_ioctl, ioctl_rules);
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

/// Tries a call the filter forbids and reports on stderr how it was refused: for tests, which
/// ask for it with SLIRP_NS_SECCOMP_SELFTEST (the file does not exist; without the filter the
/// answer would be ENOENT, with it EPERM).
pub fn self_test() {
    let path = c"/nonexistent/slirp-ns-seccomp-self-test";
    let result = nix::unistd::execv(path, &[path]);
    match result {
        Err(errno) => eprintln!("seccomp self-test: execve refused: {}", errno.desc()),
        Ok(never) => match never {},
    }
}

/// Whether the main process's filter allows `call` outright (ioctl, allowed for some requests,
/// is not).
pub fn allows(call: Syscall) -> bool {
    main_lists().iter().any(|list| list.contains(&call))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_builds_and_allows_the_data_path_but_not_exec_or_mount() {
        assert!(filter().is_ok());
        assert!(helper_filter().is_ok());
        for call in [
            libc::SYS_readv,
            libc::SYS_writev,
            libc::SYS_connect,
            libc::SYS_splice,
        ] {
            assert!(allows(call), "{call}");
        }
        for call in [
            libc::SYS_execve,
            libc::SYS_mount,
            libc::SYS_ptrace,
            libc::SYS_setns,
            libc::SYS_unshare,
            libc::SYS_ioctl,
        ] {
            assert!(!allows(call), "{call}");
        }
    }
}
