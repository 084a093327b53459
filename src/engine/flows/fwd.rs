//! fwd - port forwards: listeners on the host whose connections are carried into the guest.
//!
//! A UDP forward binds `host_addr:host_port`; each client address it hears from gets a UDP
//! flow to the guest (idle timeout as any UDP flow), whose replies leave from the forward's
//! socket, so the client sees them come from the address it sent to.
//!
//! A TCP forward listens on `host_addr:host_port`. Each connection it accepts becomes a TCP
//! flow opened *toward* the guest (our SYN to `guest_addr:guest_port`), with the client's
//! address as its source, so the guest's server sees who connects; a client the guest could not
//! answer directly (on the host's loopback, or of the other IP family) appears as the gateway.
//! The guest address may be IPv4 or IPv6, whatever the listener's family. From then on the
//! flow is like any other (see [`crate::engine::flows::tcp`]).
//!
//! Ids count up from 1 and are never reused. Removing a forward closes its listener at once;
//! connections already made through it go on until they end.

use crate::engine::flows::spliced::SpliceCandidate;
use crate::engine::flows::table::ForwardRef;
use crate::engine::flows::tcp::{ConnectReplies, TcpConn};
use crate::engine::wire::key::{FlowKey, Proto};
use crate::engine::{open_flow, Cx, Flow};
use crate::engine::{Engine, TxQueue};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Instant;

/// Most forwards at once, unless the engine's configuration allows more.
pub const MAX_FORWARDS: usize = 4096;
/// The most any configuration allows (pasta's `-t all`: every non-ephemeral port, twice).
pub const MAX_FORWARDS_ANY: usize = 1 << 17;

/// The protocol a port forward carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardProto {
    /// TCP: a listener on the host.
    Tcp,
    /// UDP: a bound socket on the host.
    Udp,
}

impl ForwardProto {
    /// "tcp" or "udp", as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            ForwardProto::Tcp => "tcp",
            ForwardProto::Udp => "udp",
        }
    }
}

/// A port forward as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardSpec {
    /// TCP or UDP.
    pub proto: ForwardProto,
    /// Where to listen on the host (0.0.0.0 when not given).
    pub host_addr: IpAddr,
    /// 0 lets the kernel pick a free port; the forward's entry shows which.
    pub host_port: u16,
    /// Where connections go in the guest (network+100 when not given).
    pub guest_addr: IpAddr,
    /// The port in the guest.
    pub guest_port: u16,
    /// The host interface the listener is bound to, by index (pasta's `ADDR%IF`); `None`:
    /// every interface.
    pub device: Option<NonZeroU32>,
}

/// A forward as listed: its id and what it is bound to (with the real port when 0 was asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardEntry {
    /// The forward's id (from 1, never reused).
    pub id: u64,
    /// What it forwards, with the port the kernel chose for host port 0.
    pub spec: ForwardSpec,
}

enum Listener {
    Tcp(mio::net::TcpListener),
    Udp(mio::net::UdpSocket),
}

struct Forward {
    entry: ForwardEntry,
    listener: Listener,
}

/// What is wrong with a forward asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidForward {
    /// The guest's address is no unicast host (loopback, multicast, broadcast, unspecified,
    /// link-local, IPv4-mapped).
    GuestAddr,
    /// The guest's port is 0.
    GuestPort,
}

impl std::fmt::Display for InvalidForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvalidForward::GuestAddr => "the guest address is not a unicast host",
            InvalidForward::GuestPort => "the guest port is 0",
        })
    }
}

impl ForwardSpec {
    /// What any forward needs, whoever asks for it (the API, `-p`, pasta's `-t`, a library
    /// caller): a guest address connections can go to, and a guest port.
    pub fn validate(&self) -> Result<(), InvalidForward> {
        if !crate::engine::flows::route::is_forwardable(self.guest_addr) {
            return Err(InvalidForward::GuestAddr);
        }
        if self.guest_port == 0 {
            return Err(InvalidForward::GuestPort);
        }
        Ok(())
    }
}

impl std::fmt::Display for ForwardSpec {
    /// `tcp 0.0.0.0:8080 -> 10.0.2.100:80` (`%INDEX` after the host address when bound to an
    /// interface).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = SocketAddr::new(self.host_addr, self.host_port);
        let guest = SocketAddr::new(self.guest_addr, self.guest_port);
        write!(f, "{} {host}", self.proto.name())?;
        if let Some(index) = self.device {
            write!(f, " (interface {index})")?;
        }
        write!(f, " -> {guest}")
    }
}

/// Why a forward could not be added.
#[derive(Debug)]
pub enum AddError {
    /// The most forwards ([`EngineConfig::max_forwards`](crate::engine::EngineConfig::max_forwards))
    /// exist already.
    TooMany(usize),
    /// Binding or listening failed (port in use, address not local...).
    Bind(io::Error),
    /// The forward cannot be (see [`ForwardSpec::validate`]).
    Invalid(InvalidForward),
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::TooMany(max) => write!(f, "too many forwards (at most {max})"),
            AddError::Bind(e) => write!(f, "{e}"),
            AddError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

#[derive(Default)]
pub struct Forwards {
    slots: Vec<Option<Forward>>,
    /// Empty slots below `slots.len()`, to fill first (pasta's `all` adds tens of thousands).
    free: Vec<usize>,
    last_id: u64,
}

impl Forwards {
    fn entries(&self) -> impl Iterator<Item = &Forward> {
        self.slots.iter().flatten()
    }

    /// Sends a guest's datagram to `client` from UDP forward `forward`'s address; fails once
    /// that forward is removed.
    /// The socket of UDP forward `forward`, if it is still there.
    pub(super) fn udp_socket(&self, forward: ForwardRef) -> Option<&mio::net::UdpSocket> {
        match self.slots.get(forward.slot) {
            Some(Some(Forward {
                listener: Listener::Udp(sock),
                entry,
            })) if entry.id == forward.id => Some(sock),
            _ => None,
        }
    }

    pub(crate) fn send_udp(
        &self,
        forward: ForwardRef,
        payload: &[u8],
        client: SocketAddr,
    ) -> io::Result<usize> {
        match self.slots.get(forward.slot) {
            Some(Some(Forward {
                listener: Listener::Udp(sock),
                entry,
            })) if entry.id == forward.id => sock.send_to(payload, client),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// A forward's non-blocking listener (TCP, with SO_REUSEADDR as any server's) or socket (UDP)
/// bound to `addr`; an IPv6 one takes IPv6 only when `v6_only` (its IPv4 twin is another
/// forward).
fn bind(
    addr: SocketAddr,
    proto: ForwardProto,
    v6_only: bool,
    device: Option<NonZeroU32>,
) -> io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{bind, listen, setsockopt, socket, sockopt, Backlog};
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let kind = match proto {
        ForwardProto::Tcp => SockType::Stream,
        ForwardProto::Udp => SockType::Datagram,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(family, kind, flags, None)?;
    if proto == ForwardProto::Tcp {
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    if v6_only && addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    if let Some(index) = device {
        crate::sys::bind_to_interface(&fd, index)?;
    }
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )?;
    if proto == ForwardProto::Tcp {
        listen(&fd, Backlog::MAXCONN)?;
    }
    Ok(fd)
}

/// The address the guest at `guest` sees for a host-side client.
pub(super) fn guest_view(cx: &Cx, client: SocketAddr, guest: IpAddr) -> SocketAddr {
    let client_ip = client.ip().to_canonical();
    // On pasta's network the guest's link is the host's real one: only the host's own address
    // (which the guest has too) must be shown as something else.
    let elsewhere = match &cx.cfg.host_network {
        Some(_) => !cx.is_guest_own(client_ip),
        None => !cx.in_guest_network(client_ip),
    };
    let visible = client_ip.is_ipv4() == guest.is_ipv4()
        && crate::engine::flows::route::is_forwardable(client_ip)
        && elsewhere
        && !cx.is_virtual_host(client_ip);
    let ip = if visible {
        client_ip
    } else {
        cx.stand_in_for_host(guest)
    };
    SocketAddr::new(ip, client.port())
}

impl Engine {
    /// Starts listening for a forward; returns its entry (with the port bound).
    pub fn add_forward(&mut self, spec: ForwardSpec) -> Result<ForwardEntry, AddError> {
        spec.validate().map_err(AddError::Invalid)?;
        let forwards = &mut self.core.forwards;
        let slot = match forwards.free.last() {
            Some(&slot) => slot,
            None if forwards.slots.len() < self.core.cx.cfg.max_forwards.min(MAX_FORWARDS_ANY) => {
                forwards.slots.len()
            }
            None => return Err(AddError::TooMany(self.core.cx.cfg.max_forwards)),
        };
        let addr = SocketAddr::new(spec.host_addr, spec.host_port);
        let token = crate::tokens::token(crate::tokens::Kind::Forward, slot);
        let registry = &self.core.cx.registry;
        let readable = mio::Interest::READABLE;
        let (listener, bound) = match spec.proto {
            ForwardProto::Tcp => {
                let v6_only = self.core.cx.cfg.forwards_v6_only;
                let mut listener = bind(addr, ForwardProto::Tcp, v6_only, spec.device)
                    .map(|fd| mio::net::TcpListener::from_std(fd.into()))
                    .map_err(AddError::Bind)?;
                let bound = listener.local_addr().map_err(AddError::Bind)?;
                registry
                    .register(&mut listener, token, readable)
                    .map_err(AddError::Bind)?;
                (Listener::Tcp(listener), bound)
            }
            ForwardProto::Udp => {
                let v6_only = self.core.cx.cfg.forwards_v6_only;
                let mut sock = bind(addr, ForwardProto::Udp, v6_only, spec.device)
                    .map(|fd| mio::net::UdpSocket::from_std(fd.into()))
                    .map_err(AddError::Bind)?;
                let bound = sock.local_addr().map_err(AddError::Bind)?;
                registry
                    .register(&mut sock, token, readable)
                    .map_err(AddError::Bind)?;
                (Listener::Udp(sock), bound)
            }
        };
        let forwards = &mut self.core.forwards;
        forwards.last_id += 1;
        let entry = ForwardEntry {
            id: forwards.last_id,
            spec: ForwardSpec {
                host_port: bound.port(),
                ..spec
            },
        };
        let forward = Forward { entry, listener };
        if slot == forwards.slots.len() {
            forwards.slots.push(Some(forward));
        } else {
            // The slot was the last free one.
            forwards.free.pop();
            forwards.slots[slot] = Some(forward);
        }
        Ok(entry)
    }

    /// Stops the forward `id` (its listener closes now); whether there was one.
    pub fn remove_forward(&mut self, id: u64) -> bool {
        let slots = &mut self.core.forwards.slots;
        let Some(slot) = slots
            .iter()
            .position(|f| f.as_ref().is_some_and(|f| f.entry.id == id))
        else {
            return false;
        };
        if let Some(forward) = slots[slot].take() {
            self.core.forwards.free.push(slot);
            let _ = match forward.listener {
                Listener::Tcp(mut l) => self.core.cx.registry.deregister(&mut l),
                Listener::Udp(mut s) => self.core.cx.registry.deregister(&mut s),
            };
        }
        true
    }

    /// How many forwards there are.
    pub fn forwards_count(&self) -> usize {
        self.core.forwards.slots.len() - self.core.forwards.free.len()
    }

    /// The forwards, in the order they were added.
    pub fn forwards(&self) -> Vec<ForwardEntry> {
        let mut entries: Vec<ForwardEntry> =
            self.core.forwards.entries().map(|f| f.entry).collect();
        entries.sort_by_key(|e| e.id);
        entries
    }

    /// Takes what waits at the listener of the forward in `slot`: connections (each opened
    /// into the guest) or datagrams (each passed to the guest on its client's flow).
    pub(crate) fn handle_forward_event(&mut self, now: Instant, slot: usize, tx: &mut TxQueue) {
        while let Some(Some(forward)) = self.core.forwards.slots.get(slot) {
            let spec = forward.entry.spec;
            let forward_ref = ForwardRef {
                slot,
                id: forward.entry.id,
            };
            match &forward.listener {
                Listener::Tcp(listener) => match listener.accept() {
                    Ok((stream, client)) => self.open_forwarded(now, spec, stream, client, tx),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                },
                Listener::Udp(_) => {
                    if self.forward_datagrams(now, forward_ref, spec, tx) {
                        continue;
                    }
                    break;
                }
            }
        }
    }

    fn open_forwarded(
        &mut self,
        now: Instant,
        spec: ForwardSpec,
        stream: mio::net::TcpStream,
        client: SocketAddr,
        tx: &mut TxQueue,
    ) {
        let guest = SocketAddr::new(spec.guest_addr, spec.guest_port);
        if self.core.cx.cfg.splice_loopback && client.ip().is_loopback() {
            self.core.cx.counters.forwarded_connections += 1;
            match self.open_spliced(client, guest) {
                Some(slot) => self.core.splice_candidates.push(SpliceCandidate {
                    client: stream,
                    guest,
                    slot,
                }),
                None => crate::engine::flows::sockets::reset_on_close(&stream),
            }
            return;
        }
        // A failure is counted, and the client sees its connection reset.
        let _ = self.open_toward_guest(now, stream, client, guest, None, tx);
    }

    /// Opens a connection to `guest` for the host client `client` (whose connection is
    /// `stream`) that a SOCKS5 CONNECT asked for; `replies` tells the client how the guest
    /// answered. Fails when the connection cannot be opened at all.
    pub fn open_inbound(
        &mut self,
        now: Instant,
        stream: mio::net::TcpStream,
        client: SocketAddr,
        guest: SocketAddr,
        replies: ConnectReplies,
        tx: &mut TxQueue,
    ) -> Result<(), crate::engine::DropReason> {
        self.open_toward_guest(now, stream, client, guest, Some(replies), tx)
    }

    /// A TCP flow toward the guest for a host client: our SYN goes out to the guest. A client
    /// owed replies gets the refusal when the flow cannot be opened, others a reset.
    pub(in crate::engine) fn open_toward_guest(
        &mut self,
        now: Instant,
        stream: mio::net::TcpStream,
        client: SocketAddr,
        guest: SocketAddr,
        replies: Option<ConnectReplies>,
        tx: &mut TxQueue,
    ) -> Result<(), crate::engine::DropReason> {
        let core = &mut self.core;
        let key = FlowKey {
            proto: Proto::Tcp,
            guest,
            remote: guest_view(&core.cx, client, guest.ip()),
        };
        let refuse = |stream: &mio::net::TcpStream, reason| {
            match &replies {
                Some(replies) => {
                    use std::io::Write;
                    let _ = (&*stream).write(&replies.refused);
                }
                None => crate::engine::flows::sockets::reset_on_close(stream),
            }
            Err(reason)
        };
        if self.flows.lookup(&key).is_some() {
            // The same four-tuple is in use already (a guest connection to that client):
            // refuse this one.
            core.cx
                .counters
                .count_drop(crate::engine::DropReason::Refused);
            return refuse(&stream, crate::engine::DropReason::Refused);
        }
        let _ = stream.set_nodelay(true);
        let send_buffer = crate::engine::flows::sockets::size_send_buffer(&stream);
        let iss = core.cx.random_u32();
        let mtu_mss = core.cx.mtu_mss(guest.ip());
        if self.flows.is_full() {
            core.cx
                .counters
                .count_drop(crate::engine::DropReason::FlowTableFull);
            return refuse(&stream, crate::engine::DropReason::FlowTableFull);
        }
        let opened = open_flow(&mut core.cx, &mut self.flows, key, || {
            let conn = TcpConn::forwarded(key, (stream, send_buffer), iss, mtu_mss, now);
            Ok(Flow::Tcp(Box::new(match replies {
                Some(replies) => conn.with_replies(replies),
                None => conn,
            })))
        });
        let Ok(slot) = opened else {
            core.cx
                .counters
                .count_drop(crate::engine::DropReason::FlowTableFull);
            return Err(crate::engine::DropReason::FlowTableFull);
        };
        core.cx.counters.forwarded_connections += 1;
        self.with_flow(slot, |core, flow| {
            if let Flow::Tcp(conn) = flow {
                conn.send_syn(core, now, tx);
            }
            crate::engine::flows::table::Verdict::Keep
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(guest: &str, port: u16) -> ForwardSpec {
        ForwardSpec {
            proto: ForwardProto::Tcp,
            host_addr: "0.0.0.0".parse().unwrap(),
            host_port: 0,
            guest_addr: guest.parse().unwrap(),
            guest_port: port,
            device: None,
        }
    }

    #[test]
    fn every_forward_is_checked_alike() {
        assert_eq!(spec("10.0.2.100", 80).validate(), Ok(()));
        assert_eq!(spec("2001:db8::1", 80).validate(), Ok(()));
        assert_eq!(
            spec("10.0.2.100", 0).validate(),
            Err(InvalidForward::GuestPort)
        );
        for guest in [
            "127.0.0.1",
            "::1",
            "224.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            assert_eq!(
                spec(guest, 80).validate(),
                Err(InvalidForward::GuestAddr),
                "{guest}"
            );
        }
        // The library's add_forward refuses the same, before binding anything.
        let poll = mio::Poll::new().unwrap();
        let cfg = crate::engine::EngineConfig::new(Default::default());
        let mut engine = Engine::new(cfg, poll.registry().try_clone().unwrap());
        assert!(matches!(
            engine.add_forward(spec("127.0.0.1", 80)),
            Err(AddError::Invalid(InvalidForward::GuestAddr))
        ));
        assert_eq!(engine.forwards_count(), 0);
    }
}
