//! slirp-ns: rootless user-space networking — a NAT that turns a guest's Ethernet frames into
//! host sockets and back.
//!
//! The `slirp-ns` binary serves network namespaces (a drop-in slirp4netns), User Mode Linux,
//! QEMU and tunnels; its whole command line is [`main`]. This library is the same engine for
//! programs that bring their own guest: an emulator, a test harness, a sandbox. It takes
//! Ethernet frames in and gives Ethernet frames out; between them every guest flow becomes a
//! host socket (TCP without buffers of its own, UDP, ICMP echo), and DNS, DHCP, router
//! advertisements and ARP/NDP are answered as slirp4netns would.
//!
//! # Pieces
//! - [`Stack`]: the engine with its own poll — hand it frames ([`Stack::input`]), take frames
//!   through a closure, call [`Stack::poll`] between them (or when its descriptor is readable).
//! - [`Engine`]: the engine alone, for programs with a mio loop of their own: it registers its
//!   host sockets with the [`mio::Registry`] it is given and is told of their events
//!   ([`Engine::handle_event`]), of time ([`Engine::handle_timers`]) and of frames
//!   ([`Engine::handle_frames`]); frames for the guest collect in a [`TxQueue`].
//! - [`EngineConfig`]: the virtual network and its limits, with the binary's defaults
//!   ([`EngineConfig::new`]): 10.0.2.0/24, gateway .2, DNS .3, MTU 1500.
//! - Virtual servers ([`Engine::listen`], [`Engine::bind_udp`]) and clients
//!   ([`Engine::connect`]): the guest talks to the program itself, no host socket involved —
//!   each connection is an in-process [`std::os::unix::net::UnixStream`].
//! - [`Counters`]: what the engine saw, sent and dropped.
//!
//! # Example: a guest served in memory
//!
//! Two stacks back to back — the frames of one are the other's guest. A program connects
//! through one to a virtual listener on the other:
//!
//! ```
//! use slirp_ns::{EngineConfig, Ipv4Network, Stack};
//! use std::io::{Read, Write};
//! use std::time::Duration;
//!
//! let config = EngineConfig::new(Ipv4Network::default());
//! let (mut server_side, mut client_side) = (Stack::new(config.clone())?, Stack::new(config)?);
//! let listener = server_side.engine_mut().listen("10.0.2.100:80".parse()?)?;
//!
//! let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
//! let mut stream = client_side.connect("10.0.2.100:80".parse()?, &mut |f| to_server.push(f.to_vec()))?;
//! stream.write_all(b"ping")?;
//! let server = std::thread::spawn(move || -> std::io::Result<()> {
//!     let (mut conn, _guest) = listener.accept()?;
//!     let mut request = [0u8; 4];
//!     conn.read_exact(&mut request)?;
//!     conn.write_all(b"pong")
//! });
//! stream.set_nonblocking(true)?;
//! let mut answer = Vec::new();
//! while answer.len() < 4 {
//!     for frame in std::mem::take(&mut to_server) {
//!         server_side.input(&frame, &mut |f| to_client.push(f.to_vec()));
//!     }
//!     server_side.poll(Some(Duration::from_millis(1)), &mut |f| to_client.push(f.to_vec()))?;
//!     for frame in std::mem::take(&mut to_client) {
//!         client_side.input(&frame, &mut |f| to_server.push(f.to_vec()));
//!     }
//!     client_side.poll(Some(Duration::ZERO), &mut |f| to_server.push(f.to_vec()))?;
//!     let mut buf = [0u8; 16];
//!     match stream.read(&mut buf) {
//!         Ok(n) => answer.extend_from_slice(&buf[..n]),
//!         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! assert_eq!(answer, b"pong");
//! server.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! More in `examples/`: `in_memory.rs` (the same, with a UDP echo), `tap_server.rs` (a stack
//! serving a TAP device, with a virtual web server).
//!
//! # Stability
//! The items at the crate root are the library. The modules marked hidden exist for the
//! binary, its tests and fuzz targets, and may change at any time.
#![warn(missing_docs)]

// The layers, each using only those below it (checked by the `layers` test):
// run (and pasta, config) > host > confine, transport > engine > tokens, sys.
#[doc(hidden)]
pub use config::cli;
mod config;
mod confine;
mod engine;
mod host;
mod pasta;
mod run;
mod stack;
mod sys;
mod tokens;
mod transport;

pub use engine::flows::fwd::{AddError, ForwardEntry, ForwardProto, ForwardSpec, InvalidForward};
pub use engine::services::virtual_net::{VirtualListener, VirtualUdpSocket};
pub use engine::wire::offload::{RxOffload, TcpGso, TxOffload};
pub use engine::{Counters, DropReason, Engine, EngineConfig, Readiness, TxQueue};
pub use engine::{Ipv4Network, Ipv6Prefix, NetworkError};
pub use stack::Stack;
pub use transport::capture::Capture;

/// The parsers of untrusted input besides frames, for the fuzz targets: the stream framing
/// decoder, the API socket's requests, SOCKS5's handshake. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::host::api::protocol::{
        error_reply as api_error_reply, is_complete as api_request_is_complete,
        parse as parse_api_request, Request as ApiRequest,
    };
    pub use crate::host::socks5::{
        decide as socks5_decide, parse_greeting as socks5_greeting,
        parse_request as socks5_request, Message as Socks5Message,
    };
    pub use crate::transport::framing::{Decoded, Decoder, Framing};
}

use clap::error::ErrorKind;
use clap::Parser;
use cli::{version_text, Cli};
use config::Config;
use std::io::Write;
use std::process::ExitCode;

/// Runs the slirp-ns command line — what the `slirp-ns` binary does: parses the arguments of
/// this process (exit status 1 and one line on stderr for a bad one, as slirp4netns), sets
/// up logging (`RUST_LOG`, warnings by default), runs until the guest or a signal ends it, and
/// returns the exit status.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if pasta::invoked_as_pasta(args.first()) {
        return match pasta::prepare(args) {
            Ok((cfg, pasta)) => exit_status(run::run(cfg, Some(pasta)), "pasta"),
            Err(code) => code,
        };
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp) => {
            let _ = write!(std::io::stdout(), "{}", e.render());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line naming the problem, exit 1 as slirp4netns does (clap's default is 2).
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            let problem = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("slirp-ns: {problem} (see --help)");
            return ExitCode::FAILURE;
        }
    };
    if cli.version {
        print!("{}", version_text());
        return ExitCode::SUCCESS;
    }
    let cfg = match Config::from_cli(cli) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    exit_status(run::run(cfg, None), "slirp-ns")
}

/// The process's exit status for a run's end; a failure is one line, prefixed with `name`.
fn exit_status(result: Result<i32, run::RunError>, name: &str) -> ExitCode {
    match result {
        Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(1)),
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
