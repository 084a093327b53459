//! slirp-ns: rootless user-space networking for network namespaces.
//!
//! The binary is a thin wrapper around [`run::run`]. The pieces:
//! - [`cli`] and [`config`]: the slirp4netns-compatible command line and the settings it resolves to;
//! - [`ns`]: entering namespaces, opening and configuring the TAP device, exec mode;
//! - [`transport`]: frame I/O on the TAP descriptor;
//! - [`engine`]: the NAT engine, frames in and frames out, free of I/O;
//! - [`event_loop`]: one mio poll driving all of it;
//! - [`sandbox`] and [`seccomp`]: what slirp-ns gives up once started (--enable-sandbox,
//!   --enable-seccomp).

pub mod api;
pub mod capture;
pub mod cli;
pub mod client_slots;
pub mod config;
pub mod engine;
pub mod event_loop;
pub mod ns;
pub mod run;
pub mod sandbox;
pub mod seccomp;
pub mod socket_path;
pub mod socks5;
pub mod splice;
pub mod stack;
pub mod sys;
pub mod transport;

pub use config::{Ipv4Network, Ipv6Prefix};
pub use engine::fwd::{ForwardEntry, ForwardProto, ForwardSpec};
pub use engine::virtual_net::{VirtualListener, VirtualUdpSocket};
pub use engine::{Counters, Engine, EngineConfig, Readiness, TxQueue};
pub use stack::Stack;
