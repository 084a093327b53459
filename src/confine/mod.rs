//! Confinement: entering the guest's namespaces (and the helper that stays there), the
//! sandbox slirp-ns locks itself into, and the seccomp filters of both.

pub mod ns;
pub mod sandbox;
pub mod seccomp;
