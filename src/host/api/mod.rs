//! The API socket (`-a PATH`): a unix stream listener at PATH (mode 0600, removed on exit)
//! serving the JSON protocol of [`protocol`] on the event loop.
//!
//! Each client sends one request and gets one reply, then the connection closes. A request is
//! complete when the client shuts down its side, or as soon as the bytes read form a whole JSON
//! value (clients that wait for the reply without closing, with or without a newline). Every
//! client is served without blocking: a slow or silent one holds only its own slot, and is
//! dropped after [`CLIENT_TIMEOUT`]; at most [`MAX_CLIENTS`] are served at once, the rest wait
//! in the listen backlog.
//!
//! After its reply a client gets the end of the stream (shutdown of our side), and what it
//! still sends (the rest of a request too large, say) is read and thrown away, up to
//! [`MAX_DISCARD`], until it closes: closing with its bytes unread would reset the connection
//! under the client before it read the reply.

pub mod protocol;

use crate::host::client_slots::ClientSlots;
use crate::tokens;
use crate::transport::socket_path::{remove_stale, SocketPath};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// System calls of the API server (for --enable-seccomp): accepting, the client's
/// credentials, reading and replying, removing the socket at exit.
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    libc::SYS_accept4,
    libc::SYS_getsockopt,
    libc::SYS_read,
    libc::SYS_recvfrom,
    libc::SYS_write,
    libc::SYS_sendto,
    libc::SYS_shutdown,
    libc::SYS_unlinkat,
    libc::SYS_close,
];

/// Most clients served at once.
pub const MAX_CLIENTS: usize = 512;
/// Most bytes read and thrown away after a reply, waiting for the client to close.
pub const MAX_DISCARD: usize = 1 << 20;
/// A client that has not sent a whole request (or taken its reply) by then is dropped.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

struct Client {
    stream: UnixStream,
    request: Vec<u8>,
    /// The reply and how much of it is written.
    reply: Option<(Vec<u8>, usize)>,
    /// The reply is written and our side shut down: the client's bytes are thrown away.
    lingering: bool,
    discarded: usize,
}

pub struct ApiServer {
    listener: UnixListener,
    /// Removes the socket at exit.
    _socket_path: SocketPath,
    /// Our user, read once (geteuid is not among the calls --enable-seccomp allows).
    owner: u32,
    clients: ClientSlots<Client>,
}

impl ApiServer {
    /// Binds PATH, replacing a stale socket left there (but never any other kind of file).
    pub fn bind(path: &Path) -> Result<Self, String> {
        const WHAT: &str = "API socket";
        remove_stale(path, WHAT)?;
        // Only the owner may talk to the API: mode 0600.
        let (listener, socket_path) = SocketPath::bound(path, WHAT, || UnixListener::bind(path))?;
        Ok(ApiServer {
            listener,
            _socket_path: socket_path,
            owner: nix::unistd::geteuid().as_raw(),
            clients: ClientSlots::new(MAX_CLIENTS),
        })
    }

    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(&mut self.listener, tokens::API_LISTENER, Interest::READABLE)
    }

    /// Accepts waiting clients, as many as there is room for.
    pub fn accept(&mut self, registry: &Registry, now: Instant) {
        while let Some(slot) = self.clients.vacant() {
            let (mut stream, _) = match self.listener.accept() {
                Ok(client) => client,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            // The socket's mode keeps other users out; should it not (root, a directory
            // opened up), they still get nothing but an error.
            let refused = !is_trusted_peer(&stream, self.owner);
            let token = tokens::token(tokens::Kind::ApiClient, slot);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if registry.register(&mut stream, token, interest).is_err() {
                continue;
            }
            let client = Client {
                stream,
                request: Vec::new(),
                reply: refused.then(|| (PERMISSION_DENIED.as_bytes().to_vec(), 0)),
                lingering: false,
                discarded: 0,
            };
            self.clients.insert(client, now + CLIENT_TIMEOUT);
        }
    }

    /// Reads and answers the client in `slot`; `execute` turns a whole request into the
    /// reply.
    pub fn on_client_event(
        &mut self,
        registry: &Registry,
        slot: usize,
        execute: &mut dyn FnMut(&[u8]) -> String,
    ) {
        let Some(client) = self.clients.get_mut(slot) else {
            return;
        };
        let done = match client.reply {
            None => client.read_request(execute),
            Some(_) => false,
        } || client.write_reply()
            || (client.lingering && client.discard());
        if done {
            self.drop_client(registry, slot);
        }
    }

    fn drop_client(&mut self, registry: &Registry, slot: usize) {
        if let Some(mut client) = self.clients.remove(slot) {
            let _ = registry.deregister(&mut client.stream);
            // Unread bytes at close would reset the connection under the client before it
            // reads the reply (a request too large, say): read them away first.
            let mut sink = [0u8; 4096];
            while matches!(client.stream.read(&mut sink), Ok(n) if n > 0) {}
        }
    }

    /// When the next silent client times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients.next_deadline()
    }

    /// Drops the clients whose time is up.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        for slot in self.clients.expired(now) {
            self.drop_client(registry, slot);
        }
    }
}

impl Client {
    /// Reads what is there; once the request is whole, sets the reply. Returns whether the
    /// client is finished with (it went away).
    fn read_request(&mut self, execute: &mut dyn FnMut(&[u8]) -> String) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    // The client closed its side: what came is the request, whole or not.
                    self.reply = Some((execute(&self.request).into_bytes(), 0));
                    return false;
                }
                Ok(n) => {
                    self.request.extend_from_slice(&buf[..n]);
                    if self.request.len() >= protocol::MAX_REQUEST
                        || protocol::is_complete(&self.request)
                    {
                        let request = std::mem::take(&mut self.request);
                        self.reply = Some((execute(&request).into_bytes(), 0));
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    /// Writes what is left of the reply, then shuts our side down and starts lingering;
    /// returns whether the client is gone.
    fn write_reply(&mut self) -> bool {
        let Some((reply, written)) = &mut self.reply else {
            return false;
        };
        if self.lingering {
            return false;
        }
        while *written < reply.len() {
            match self.stream.write(&reply[*written..]) {
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        self.lingering = true;
        false
    }

    /// Reads and throws away what the client still sends; returns whether it is done with
    /// (it closed, failed, or sent more than [`MAX_DISCARD`]).
    fn discard(&mut self) -> bool {
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(n) => {
                    self.discarded += n;
                    if self.discarded > MAX_DISCARD {
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }
}

/// The reply to a client of another user.
const PERMISSION_DENIED: &str = r#"{"error":{"desc":"bad request: permission denied"}}"#;

/// Whether the client runs as `owner` (or as root, who could do anything anyway).
fn is_trusted_peer(stream: &UnixStream, owner: u32) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    match getsockopt(stream, PeerCredentials) {
        Ok(cred) => cred.uid() == 0 || cred.uid() == owner,
        Err(_) => false,
    }
}

/// Carries out one request against the engine and returns the reply.
pub fn execute(engine: &mut crate::engine::Engine, request: &[u8]) -> String {
    use protocol::{BadRequest, Request};
    let guest = engine.config().net.guest();
    match protocol::parse(request, guest) {
        Err(error) => protocol::error_reply(&error),
        Ok(Request::AddHostFwd(spec)) => match engine.add_forward(spec) {
            Ok(entry) => {
                log::info!("forward {} added: {}", entry.id, entry.spec);
                protocol::add_reply(entry.id)
            }
            Err(e) => {
                log::warn!("add_hostfwd {spec}: {e}");
                protocol::error_reply(match e {
                    crate::engine::flows::fwd::AddError::TooMany(_) => {
                        &BadRequest::TOO_MANY_FORWARDS
                    }
                    _ => &BadRequest::ADD_FAILED,
                })
            }
        },
        Ok(Request::ListHostFwd) => protocol::list_reply(&engine.forwards()),
        Ok(Request::RemoveHostFwd(id)) => {
            if engine.remove_forward(id) {
                protocol::remove_reply()
            } else {
                protocol::error_reply(&BadRequest::REMOVE_UNKNOWN)
            }
        }
        Ok(Request::GetInfo) => protocol::info_reply(info(engine)),
    }
}

/// What `get_info` reports: version, addresses, MTU, flows and counters.
fn info(engine: &crate::engine::Engine) -> serde_json::Value {
    let cfg = engine.config();
    let c = engine.counters();
    let counters: serde_json::Map<String, serde_json::Value> = c
        .named()
        .map(|(name, value)| (name.to_string(), value.into()))
        .collect();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": option_env!("SLIRP_NS_COMMIT").unwrap_or("unknown"),
        "network": cfg.net.to_string(),
        "gateway": cfg.net.gateway().to_string(),
        "dns": if cfg.dns_enabled { serde_json::json!(cfg.net.dns().to_string()) } else { serde_json::Value::Null },
        "guest": cfg.net.guest().to_string(),
        "mtu": cfg.mtu,
        "host_loopback": cfg.host_loopback,
        "offload": cfg.tap_offload,
        "ipv6": cfg.ipv6.map(|p| p.to_string()),
        "gateway6": cfg.ipv6.map(|p| p.gateway().to_string()),
        "dns6": cfg.ipv6.filter(|_| cfg.dns_enabled).and_then(|p| p.dns()).map(|dns| dns.to_string()),
        "flows": engine.flow_count(),
        "max_flows": cfg.max_flows,
        "tcp_held_bytes": engine.tcp_held_bytes(),
        "tcp_hold_memory": cfg.tcp_hold_memory,
        "reassembly_bytes": engine.reassembly_memory(),
        "reassembly_memory": cfg.reassembly_memory,
        "forwards": engine.forwards().len(),
        "counters": counters,
    })
}
