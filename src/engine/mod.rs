//! The NAT engine: Ethernet frames from the guest in, frames for the guest out, host sockets in
//! between.
//!
//! # Theory of operation
//!
//! The engine sits between the guest's TAP device and the host. It knows nothing of namespaces
//! or the command line: the event loop hands it each frame the guest sent
//! ([`Engine::handle_frames`], a batch at a time), each readiness event of a host socket it registered
//! ([`Engine::handle_socket_event`]) and the passing of time ([`Engine::handle_timers`],
//! [`Engine::poll_at`]); the engine answers by queueing frames in a [`TxQueue`], which the loop
//! writes to the TAP.
//!
//! The guest sees one virtual network (10.0.2.0/24 unless --cidr moves it) holding two hosts
//! besides itself: the gateway (network+2), which stands for the host, and the DNS relay
//! (network+3). Each virtual host has a MAC made from its IPv4 address, `52:55:a:b:c:d`.
//! Everything the guest sends beyond them is translated onto host sockets, one per flow:
//!
//! - [`tcp`]: a guest connection becomes a host connection; no TCP buffers of our own — the
//!   host socket's kernel buffers are the only ones (see that module).
//! - [`udp`]: a guest flow becomes a connected host UDP socket, forgotten when idle.
//! - [`echo`]: echo requests go out through unprivileged ping sockets.
//! - [`route`](flows::route): where a destination really is: the gateway is host loopback, the DNS address is
//!   the host's resolver ([`dns`]), some destinations are refused.
//! - [`arp`] and [`icmp`]: the virtual hosts' own answers.
//! - [`ipv6`](dispatch::ipv6), [`ndp`] and [`dhcpv6`]: with IPv6 on, the same for the guest's /64 (fd00::/64
//!   unless --cidr6 moves it): gateway prefix::2 (link-local fe80::2, the router), DNS
//!   prefix::3; the guest picks its address by SLAAC from our router advertisements.
//!
//! Flows live in a bounded table ([`flows::table`]); when it is full, new flows are refused and counted.
//!
//! # Robustness contract
//!
//! Every frame comes from an untrusted guest. Parsing goes through `smoltcp::wire`'s checked
//! constructors (`new_checked`, `Repr::parse`), after which no accessor panics; whatever fails a
//! check is dropped and counted in [`Counters`] by the reason [`DropReason`] names. Nothing a frame
//! says can make the engine allocate without bound: frames go out through a fixed number of
//! reusable [`TxQueue`] slots, and flows are bounded by the table.
#![forbid(unsafe_code)]

mod config;
mod context;
mod counters;
mod dispatch;
pub mod flows;
pub mod link;
pub mod network;
pub mod services;
mod timers;
pub mod wire;

pub use counters::Counters;
pub use flows::sockets::reset_on_close;
pub use wire::txqueue::TxQueue;

pub use config::{EngineConfig, HostNetwork, Served};
pub(crate) use context::Cx;
use dispatch::Pending;
use flows::echo::EchoFlow;
use flows::table::{FlowTable, InsertError, Verdict};
use flows::{dns, echo, fwd, tcp, udp};
use link::{arp, icmp, ndp};
pub use network::{Ipv4Network, Ipv6Prefix, NetworkError};
use services::{dhcp, dhcpv6, tftp, virtual_net};
use smoltcp::wire::{EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;
use tcp::TcpConn;
use udp::UdpFlow;
pub(crate) use wire::frames::Unreachable;
pub(crate) use wire::guest_packet::{key, udp_dst_port, GuestPacket};
use wire::key::{FlowKey, Proto};
use wire::offload::RxOffload;
use wire::reassembly;

/// Why a frame was dropped; each reason has its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Truncated, bad checksum, inconsistent lengths: not a well-formed frame.
    Malformed,
    /// Well-formed, but of a kind the engine does not handle.
    Unsupported,
    /// Addressed to somebody the engine does not stand for.
    NotForUs,
    /// A frame could not be queued because the transmit queue was full.
    TxQueueFull,
    /// A new flow was refused because the flow table is full.
    FlowTableFull,
    /// The destination is not allowed (loopback, broadcast, host loopback when disabled...).
    Refused,
    /// A host socket could not be made or used for the flow.
    HostSocket,
    /// An IP fragment's datagram was given up: overlapping pieces, too many, no room.
    Fragments,
    /// A datagram for the guest waited for the guest's MAC in vain, or found no room to wait.
    Unresolved,
}

/// The guest's MAC on a point-to-point link, where it has none: frames from it are given this
/// source address, and frames to it carry it.
pub const POINT_TO_POINT_PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);

/// The MAC address of a virtual host: `52:55` followed by its IPv4 address.
pub fn virtual_mac(addr: Ipv4Addr) -> EthernetAddress {
    let [a, b, c, d] = addr.octets();
    EthernetAddress([0x52, 0x55, a, b, c, d])
}

/// Everything but the flow table, so that a flow and the engine's shared state can be
/// borrowed at once: the shared context, and each layer's own state beside it.
pub(crate) struct Core {
    pub(crate) cx: Cx,
    /// Which resolvers the DNS address relays to (flows/dns.rs).
    pub(crate) resolver: dns::Resolver,
    pub(crate) dhcp_leases: dhcp::Leases,
    pub(crate) tftp: tftp::Server,
    /// Flows that owe the guest an ACK at the end of the batch.
    pub(crate) ack_pending: Vec<usize>,
    /// Flows that stopped sending because the transmit queue was full.
    pub(crate) send_pending: Vec<usize>,
    /// UDP forwards (by slot) that stopped reading because the transmit queue was full.
    pub(crate) forwards_pending: Vec<usize>,
    /// A datagram's worth of room for UDP and ICMP payloads.
    pub(crate) scratch: Vec<u8>,
    /// Room for a batch of datagrams from a host UDP socket (allocated on first use).
    pub(crate) udp_batch: Vec<u8>,
    /// Where TCP peeks put the bytes in flight when the kernel lacks SO_PEEK_OFF.
    pub(crate) peek_skip: Vec<u8>,
    /// What TCP connections may hold of guest data out of order, together.
    pub(crate) hold_budget: tcp::HoldBudget,
    pub(crate) ping_refused_logged: bool,
    /// When the next unsolicited router advertisement is due (IPv6 on).
    pub(crate) next_router_advert: Option<Instant>,
    pub(crate) router_adverts_sent: u32,
    /// Port forwards: listeners on the host for connections into the guest.
    pub(crate) forwards: fwd::Forwards,
    /// Forwarded connections for the splice path, with where they go in the guest.
    pub(crate) splice_candidates: Vec<flows::spliced::SpliceCandidate>,
    /// The embedding program's listeners and UDP endpoints.
    pub(crate) virtuals: virtual_net::Virtuals,
    /// The guest's fragmented datagrams, being put back together.
    pub(crate) reassembly: reassembly::Reassembly,
    /// Datagrams from UDP forwards waiting for the guest's MAC.
    pub(crate) unresolved: flows::unresolved::Unresolved,
}

impl Core {
    /// Asks the guest which MAC has `addr` (ARP or neighbour solicitation).
    pub(crate) fn solicit(&mut self, tx: &mut TxQueue, addr: IpAddr) {
        match addr {
            IpAddr::V4(v4) => arp::request(&mut self.cx, tx, v4),
            IpAddr::V6(v6) => ndp::solicit(&mut self.cx, tx, v6),
        }
    }
}

/// The NAT engine: frames from the guest in, frames for the guest out, host sockets in between
/// (see the crate documentation, and [`crate::Stack`] for the engine with a poll of its own).
pub struct Engine {
    core: Core,
    flows: Flows,
}

/// What a host socket's readiness event said.
#[derive(Debug, Clone, Copy, Default)]
pub struct Readiness {
    /// Readable (or its peer closed).
    pub readable: bool,
    /// Writable.
    pub writable: bool,
    /// Error or hang-up.
    pub error: bool,
    /// The peer ended its stream (or hung up).
    pub read_closed: bool,
}

impl Readiness {
    /// What `event` says.
    pub fn of(event: &mio::event::Event) -> Self {
        Readiness {
            readable: event.is_readable() || event.is_read_closed(),
            writable: event.is_writable(),
            error: event.is_error(),
            read_closed: event.is_read_closed(),
        }
    }
}

impl Engine {
    /// An engine whose host sockets are registered with `registry`.
    pub fn new(cfg: EngineConfig, registry: mio::Registry) -> Self {
        // A point-to-point link has no neighbour discovery to advertise a router on.
        let cfg = EngineConfig {
            router_adverts: cfg.router_adverts && !cfg.point_to_point && cfg.served.router_adverts,
            ..cfg
        };
        Engine {
            flows: FlowTable::new(cfg.max_flows),
            core: Core {
                resolver: dns::Resolver::new(
                    cfg.dns_servers.clone(),
                    cfg.dns_search.clone(),
                    cfg.resolv_conf.clone(),
                ),
                dhcp_leases: dhcp::Leases::default(),
                tftp: tftp::Server::new(cfg.tftp_root.as_deref()),
                ack_pending: Vec::new(),
                send_pending: Vec::new(),
                forwards_pending: Vec::new(),
                scratch: vec![0; 65536],
                udp_batch: Vec::new(),
                peek_skip: Vec::new(),
                hold_budget: tcp::HoldBudget::new(cfg.tcp_hold_memory),
                reassembly: reassembly::Reassembly::new(cfg.reassembly_memory),
                ping_refused_logged: false,
                next_router_advert: cfg
                    .ipv6
                    .filter(|_| cfg.router_adverts)
                    .map(|_| Instant::now()),
                router_adverts_sent: 0,
                forwards: fwd::Forwards::default(),
                splice_candidates: Vec::new(),
                virtuals: virtual_net::Virtuals::default(),
                unresolved: Default::default(),
                cx: Cx::new(cfg, registry),
            },
        }
    }

    /// Whether `addr` can be one of the guest's own addresses: in its network, and neither a
    /// virtual host nor the network's own or broadcast address.
    pub fn is_guest_address(&self, addr: IpAddr) -> bool {
        let core = &self.core;
        let special = match addr {
            IpAddr::V4(v4) => core.cx.cfg.net.is_network_or_broadcast(v4),
            IpAddr::V6(v6) => v6.is_multicast() || v6.segments()[4..] == [0; 4],
        };
        core.cx.in_guest_network(addr) && !core.cx.is_virtual_host(addr) && !special
    }

    /// The configuration the engine was made with.
    pub fn config(&self) -> &EngineConfig {
        &self.core.cx.cfg
    }

    /// What the engine saw, sent and dropped so far.
    pub fn counters(&self) -> &Counters {
        &self.core.cx.counters
    }

    /// Frames the link dropped: from the guest before the engine saw them (bad framing, too
    /// long: malformed), to the guest because it had no room for them.
    pub(crate) fn count_link_drops(&mut self, malformed: u64, unsent: u64) {
        self.core.cx.counters.dropped_malformed += malformed;
        self.core.cx.counters.dropped_tx_queue_full += unsent;
    }

    /// Flows open now.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Bytes held now for the guest's datagrams in pieces (see
    /// [`EngineConfig::reassembly_memory`]).
    pub fn reassembly_memory(&self) -> usize {
        self.core.reassembly.memory()
    }

    /// Bytes of guest TCP data held now (see [`EngineConfig::tcp_hold_memory`]).
    pub fn tcp_held_bytes(&self) -> usize {
        self.core.hold_budget.used()
    }

    /// Handles one frame from the guest, queueing any replies in `tx`.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8], tx: &mut TxQueue) {
        self.handle_frames(now, [(frame, RxOffload::default())], tx);
    }

    /// Handles a batch of frames from the guest, each with what its TAP header said, in order,
    /// queueing replies in `tx`.
    ///
    /// Consecutive in-order data segments of one TCP connection are gathered and written to
    /// its host socket with one call (the frames must stay put until this returns, which
    /// their borrow guarantees).
    pub fn handle_frames<'a>(
        &mut self,
        now: Instant,
        frames: impl IntoIterator<Item = (&'a [u8], RxOffload)>,
        tx: &mut TxQueue,
    ) {
        let mut pending = Pending::default();
        for (frame, offload) in frames {
            self.core.cx.counters.frames_in += 1;
            self.core.cx.counters.partial_checksums_in += u64::from(offload.checksum_trusted);
            self.core.cx.counters.bytes_in += frame.len() as u64;
            if let Err(reason) = self.dispatch(now, frame, offload, tx, &mut pending) {
                self.core.cx.counters.count_drop(reason);
            }
        }
        pending.flush(&mut self.core, &mut self.flows, now, tx);
        self.resolve_waiting(now, tx);
    }

    /// Whether `token` is one the engine registered (a host socket, a forward's listener, a
    /// virtual endpoint): the events for it go to [`Engine::handle_event`].
    pub fn owns_token(token: mio::Token) -> bool {
        use crate::tokens::Kind;
        matches!(
            crate::tokens::decode(token),
            Some((Kind::Flow | Kind::Forward | Kind::VirtualUdp, _))
        )
    }

    /// Handles a readiness event of a token the engine registered, whichever it is, for a
    /// caller running its own mio loop over the registry the engine was made with. Events of
    /// other tokens are ignored.
    pub fn handle_event(&mut self, now: Instant, event: &mio::event::Event, tx: &mut TxQueue) {
        if let Some((kind, index)) = crate::tokens::decode(event.token()) {
            self.handle_decoded(now, kind, index, event, tx);
        }
    }

    /// [`Engine::handle_event`] for a token the caller decoded already.
    pub(crate) fn handle_decoded(
        &mut self,
        now: Instant,
        kind: crate::tokens::Kind,
        index: usize,
        event: &mio::event::Event,
        tx: &mut TxQueue,
    ) {
        use crate::tokens::Kind;
        match kind {
            Kind::Flow => self.handle_socket_event(now, index, Readiness::of(event), tx),
            Kind::Forward => self.handle_forward_event(now, index, tx),
            Kind::VirtualUdp => self.handle_virtual_event(index, tx),
            _ => {}
        }
    }

    /// Handles a readiness event for the host socket of the flow in `slot`.
    pub(crate) fn handle_socket_event(
        &mut self,
        now: Instant,
        slot: usize,
        readiness: Readiness,
        tx: &mut TxQueue,
    ) {
        self.with_flow(slot, |core, flow| match flow {
            Flow::Tcp(conn) => conn.on_socket_event(core, slot, now, readiness, tx),
            Flow::Udp(udp) => udp.on_socket_event(core, slot, now, readiness, tx),
            Flow::Echo(echo) => echo.on_socket_event(core, now, readiness, tx),
            Flow::Spliced(_) => Verdict::Keep,
        });
    }

    /// Runs `f` on the flow in `slot` and removes the flow if `f` says it is finished.
    fn with_flow(&mut self, slot: usize, f: impl FnOnce(&mut Core, &mut Flow) -> Verdict) {
        let Some(flow) = self.flows.get_mut(slot) else {
            return;
        };
        let verdict = f(&mut self.core, flow);
        let deadline = flow.deadline();
        settle(&mut self.core.cx, &mut self.flows, slot, verdict, deadline);
    }

    /// Work left over at the end of a batch of guest frames: the ACKs owed, and sending that
    /// stopped because the transmit queue filled. Call with an emptied queue; returns whether
    /// more remains (call again after flushing).
    pub fn end_of_batch(&mut self, now: Instant, tx: &mut TxQueue) -> bool {
        let acks = std::mem::take(&mut self.core.ack_pending);
        for &slot in &acks {
            self.with_flow(slot, |core, flow| match flow {
                Flow::Tcp(conn) => conn.flush_ack(core, slot, now, tx),
                _ => Verdict::Keep,
            });
        }
        // Hand the (now empty) list back so its capacity is reused.
        let mut acks = acks;
        acks.clear();
        if self.core.ack_pending.is_empty() {
            self.core.ack_pending = acks;
        }
        let pending = std::mem::take(&mut self.core.send_pending);
        for &slot in &pending {
            if !tx.has_room_for_bulk() {
                self.core.send_pending.push(slot);
                continue;
            }
            self.with_flow(slot, |core, flow| match flow {
                Flow::Tcp(conn) => conn.resume_sending(core, slot, now, tx),
                Flow::Udp(udp) => udp.resume_receiving(core, slot, now, tx),
                _ => Verdict::Keep,
            });
        }
        let forwards = std::mem::take(&mut self.core.forwards_pending);
        for slot in forwards {
            if tx.has_room_for_bulk() {
                self.handle_forward_event(now, slot, tx);
            } else {
                self.core.forwards_pending.push(slot);
            }
        }
        !self.core.send_pending.is_empty()
            || !self.core.ack_pending.is_empty()
            || !self.core.forwards_pending.is_empty()
    }

    /// When the engine next needs [`Engine::handle_timers`].
    pub fn poll_at(&self) -> Option<Instant> {
        [
            self.core.cx.timers.next(),
            self.core.next_router_advert,
            self.core.tftp.poll_at(),
            self.unresolved_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers that are due.
    pub fn handle_timers(&mut self, now: Instant, tx: &mut TxQueue) {
        if self.core.next_router_advert.is_some_and(|when| when <= now) {
            ndp::advertise_unsolicited(&mut self.core, now, tx);
        }
        if self.core.tftp.poll_at().is_some_and(|when| when <= now) {
            tftp::handle_timers(&mut self.core, now, tx);
        }
        if self.unresolved_deadline().is_some_and(|when| when <= now) {
            self.resolve_waiting(now, tx);
        }
        while let Some(slot) = self.core.cx.timers.pop_due(now) {
            self.flows.timer_fired(slot);
            let Some(flow) = self.flows.get_mut(slot) else {
                continue;
            };
            match flow.deadline() {
                Some(deadline) if deadline <= now => {}
                // Moved later since this entry was made: wait for then.
                Some(deadline) => {
                    let keep = Verdict::Keep;
                    settle(
                        &mut self.core.cx,
                        &mut self.flows,
                        slot,
                        keep,
                        Some(deadline),
                    );
                    continue;
                }
                None => continue,
            }
            self.with_flow(slot, |core, flow| match flow {
                Flow::Tcp(conn) => conn.on_timer(core, slot, now, tx),
                Flow::Udp(_) | Flow::Echo(_) => Verdict::Close,
                Flow::Spliced(_) => Verdict::Keep,
            });
        }
    }
}

/// A flow of the table: a TCP connection, a UDP flow or an echo flow, each with its host
/// socket.
pub enum Flow {
    Tcp(Box<TcpConn>),
    // Boxed like TCP: the table's slots stay small, whatever the kind of flow.
    Udp(Box<UdpFlow>),
    Echo(Box<EchoFlow>),
    /// A connection the loop splices (flows::spliced): only its place in the table.
    Spliced(Box<FlowKey>),
}

impl Flow {
    /// Registers the flow's host socket with the poll, under the token of its slot.
    fn register(&mut self, registry: &mio::Registry, slot: usize) -> std::io::Result<()> {
        let token = crate::tokens::token(crate::tokens::Kind::Flow, slot);
        let readable = mio::Interest::READABLE;
        match self {
            Flow::Tcp(conn) => conn.register(registry, token),
            Flow::Udp(udp) => match udp.socket_mut() {
                Some(sock) => registry.register(sock, token, readable),
                None => Ok(()),
            },
            Flow::Echo(echo) => match echo.socket_mut() {
                Some(sock) => registry.register(sock, token, readable),
                None => Ok(()),
            },
            // Its sockets are the loop's, under tokens of their own kinds.
            Flow::Spliced(_) => Ok(()),
        }
    }

    /// The flow's key.
    pub fn key(&self) -> &FlowKey {
        match self {
            Flow::Tcp(conn) => conn.key(),
            Flow::Udp(udp) => udp.key(),
            Flow::Echo(echo) => echo.key(),
            Flow::Spliced(key) => key,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Flow::Tcp(conn) => conn.deadline(),
            Flow::Udp(udp) => Some(udp.deadline()),
            Flow::Echo(echo) => Some(echo.deadline()),
            Flow::Spliced(_) => None,
        }
    }
}

/// Adds the flow `make` opens, registers its host socket and schedules its first deadline.
pub(crate) fn open_flow(
    cx: &mut Cx,
    flows: &mut Flows,
    key: FlowKey,
    make: impl FnOnce() -> std::io::Result<Flow>,
) -> Result<usize, InsertError<std::io::Error>> {
    let registry = &cx.registry;
    let priority = key.proto == Proto::Icmp || cx.is_dns(key.remote.ip());
    let slot = flows.insert(key, priority, |slot| {
        let mut flow = make()?;
        flow.register(registry, slot)?;
        Ok(flow)
    })?;
    cx.counters.flows_opened += 1;
    let deadline = flows.get_mut(slot).and_then(|flow| flow.deadline());
    settle(cx, flows, slot, Verdict::Keep, deadline);
    Ok(slot)
}

/// After a flow's turn: removes it when finished, or makes sure a timer entry stands for its
/// deadline (one per earlier deadline; a later one waits for the entry there is).
pub(crate) fn settle(
    cx: &mut Cx,
    flows: &mut Flows,
    slot: usize,
    verdict: Verdict,
    deadline: Option<Instant>,
) {
    if verdict == Verdict::Close {
        flows.remove(slot);
    } else if let Some(deadline) = deadline {
        if flows.needs_timer(slot, deadline) {
            cx.timers.schedule(deadline, slot);
        }
    }
}

impl flows::table::Keyed for Flow {
    fn key(&self) -> &FlowKey {
        Flow::key(self)
    }
}

/// The engine's flow table.
pub(crate) type Flows = FlowTable<Flow>;

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
pub(crate) mod sim;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ipv6_tests;
