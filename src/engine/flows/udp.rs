//! udp - guest UDP flows onto connected host UDP sockets.
//!
//! A flow is (guest address:port, destination address:port); its host socket is connected to
//! the routed destination, so replies need no lookup and ICMP errors arrive as ECONNREFUSED,
//! which becomes an ICMP port unreachable for the guest. A flow without traffic for the idle
//! timeout is closed. A flow to the DNS address fails over between resolvers ([`crate::engine::flows::dns`]).
//! Datagrams larger than the MTU reach the guest as IP fragments.

use crate::engine::flows::dns::{Relay, Step};
use crate::engine::flows::table::{InsertError, Verdict};
use crate::engine::wire::key::{FlowKey, Proto};
use crate::engine::{
    flows::sockets, Core, Cx, DropReason, GuestPacket, Readiness, TxQueue, Unreachable,
};
use crate::engine::{open_flow, Flow, Flows};
use smoltcp::wire::{EthernetAddress, IpProtocol};
use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// System calls moving datagrams, UDP and ICMP echo alike (for --enable-seccomp).
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    libc::SYS_recvfrom,
    libc::SYS_recvmmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_sendmmsg,
];

pub(crate) use crate::engine::wire::frames::UDP_HEADER;
use crate::engine::wire::uso::{same_size_run, uso_run, USO_MAX_PAYLOAD};

/// The slots of a datagram batch buffer.
pub(super) fn batch_slots(batch: &mut [u8]) -> [&mut [u8]; RECV_BATCH] {
    let mut chunks = batch.chunks_mut(RECV_SLOT);
    std::array::from_fn(|_| chunks.next().unwrap_or_default())
}

/// The buffer of a recvmmsg batch, `RECV_BATCH` slots of `RECV_SLOT` bytes: kept in `core`
/// between turns, allocated on first use (untouched slot pages cost no memory).
pub(super) fn take_batch(core: &mut Core) -> Vec<u8> {
    let batch = std::mem::take(&mut core.udp_batch);
    if batch.is_empty() {
        vec![0; RECV_BATCH * RECV_SLOT]
    } else {
        batch
    }
}

/// The payloads of datagrams `lens` in a batch's slots from slot `first` on.
pub(super) fn batch_datagrams<'a>(
    batch: &'a [u8],
    first: usize,
    lens: &[usize],
) -> [&'a [u8]; RECV_BATCH] {
    let mut datagrams: [&[u8]; RECV_BATCH] = [&[]; RECV_BATCH];
    for (i, len) in lens.iter().enumerate().take(RECV_BATCH) {
        let start = (first + i) * RECV_SLOT + UDP_HEADER;
        datagrams[i] = &batch[start..start + len];
    }
    datagrams
}

/// Datagrams taken from a host socket per system call.
pub(super) const RECV_BATCH: usize = 64;
/// Room per datagram: a UDP header, then the largest UDP payload (65535 less the IPv4 and UDP
/// headers).
pub(super) const RECV_SLOT: usize = UDP_HEADER + 65507;

/// Where a flow's datagrams to the host go.
pub(crate) enum HostSide {
    /// A socket of its own, connected to the destination (flows the guest starts).
    Own(mio::net::UdpSocket),
    /// The listening socket of UDP forward `forward`, to the client `client` (flows a client
    /// of a port forward starts): replies leave from the forwarded address, as clients expect.
    Forward {
        forward: crate::engine::flows::table::ForwardRef,
        client: std::net::SocketAddr,
    },
}

pub struct UdpFlow {
    host: HostSide,
    /// For a flow to the DNS address: the resolver it relays to, and its last query.
    dns: Option<Box<Relay>>,
    key: FlowKey,
    /// Where the guest's datagrams last came from.
    guest_mac: EthernetAddress,
    last_seen: Instant,
    idle_timeout: Duration,
    /// Reading from the host stopped on a full transmit queue; the engine resumes it
    /// (`send_pending`) once the queue has room.
    waiting_for_room: bool,
    /// Runs of datagrams of one size go to the host socket as one UDP GSO send, until the
    /// kernel refuses one (too old, or a segment larger than the route's MTU).
    gso: bool,
}

impl UdpFlow {
    pub(crate) fn key(&self) -> &FlowKey {
        &self.key
    }

    /// Replies go out through forward `to` from now on (a forward's client flow whose latest
    /// datagram came through it).
    pub(crate) fn answer_through(&mut self, to: crate::engine::flows::table::ForwardRef) {
        if let HostSide::Forward { forward, .. } = &mut self.host {
            *forward = to;
        }
    }

    /// A flow for the client of a UDP port forward.
    pub(crate) fn forwarded(
        key: FlowKey,
        guest_mac: EthernetAddress,
        forward: crate::engine::flows::table::ForwardRef,
        client: std::net::SocketAddr,
        now: Instant,
        idle_timeout: Duration,
    ) -> Self {
        UdpFlow {
            host: HostSide::Forward { forward, client },
            dns: None,
            key,
            guest_mac,
            last_seen: now,
            idle_timeout,
            waiting_for_room: false,
            gso: true,
        }
    }

    /// The flow's own socket (none for a forward's client).
    pub(crate) fn socket_mut(&mut self) -> Option<&mut mio::net::UdpSocket> {
        match &mut self.host {
            HostSide::Own(sock) => Some(sock),
            HostSide::Forward { .. } => None,
        }
    }

    /// A datagram from the host side for the guest (UDP header room first, payload after).
    pub(crate) fn deliver_from_host(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        datagram: &mut [u8],
        tx: &mut TxQueue,
    ) {
        self.last_seen = now;
        cx.counters.udp_datagrams_to_guest += 1;
        if let Err(reason) = self.deliver(cx, datagram, tx) {
            cx.counters.count_drop(reason);
        }
    }

    /// A run of datagrams of one size (the last may be shorter) from the host side to the
    /// guest, as one super-datagram.
    pub(crate) fn deliver_run(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        datagrams: &[&[u8]],
        tx: &mut TxQueue,
    ) {
        self.last_seen = now;
        cx.counters.udp_datagrams_to_guest += datagrams.len() as u64;
        let (from, to) = (self.key.remote, self.key.guest);
        let size = datagrams.first().map_or(0, |d| d.len());
        if let Err(reason) = cx.emit_udp_segments(tx, self.guest_mac, from, to, datagrams, size) {
            for _ in datagrams {
                cx.counters.count_drop(reason);
            }
        }
    }

    pub fn deadline(&self) -> Instant {
        self.last_seen + self.idle_timeout
    }

    pub(crate) fn on_socket_event(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        readiness: Readiness,
        tx: &mut TxQueue,
    ) -> Verdict {
        if !(readiness.readable || readiness.error) {
            return Verdict::Keep;
        }
        self.receive(core, slot, now, tx);
        Verdict::Keep
    }

    /// Reading stopped on a full transmit queue: go on.
    pub(crate) fn resume_receiving(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        tx: &mut TxQueue,
    ) -> Verdict {
        self.waiting_for_room = false;
        self.receive(core, slot, now, tx);
        Verdict::Keep
    }

    /// Takes the datagrams waiting in the flow's own socket to the guest, a batch per system
    /// call, while the transmit queue has room: a full one leaves them in the socket (whose
    /// kernel buffer, not ours, then fills) until the engine resumes the flow.
    fn receive(&mut self, core: &mut Core, slot: usize, now: Instant, tx: &mut TxQueue) {
        if !matches!(self.host, HostSide::Own(_)) {
            return;
        }
        // Several datagrams per system call, each into a slot with room for a UDP header in
        // front and the largest datagram after it.
        let mut batch = take_batch(core);
        let mut lens = [0usize; RECV_BATCH];
        while let HostSide::Own(sock) = &self.host {
            if !tx.has_room_for_bulk() {
                if !self.waiting_for_room {
                    self.waiting_for_room = true;
                    core.send_pending.push(slot);
                }
                break;
            }
            let mut slots: [&mut [u8]; RECV_BATCH] =
                batch_slots(&mut batch).map(|slot| &mut slot[UDP_HEADER..]);
            let received = crate::sys::recv_datagrams(sock.as_fd(), &mut slots, &mut lens);
            match received {
                Ok(count) => {
                    self.deliver_batch(core, slot, now, &mut batch, &lens[..count], tx);
                    if count < RECV_BATCH {
                        // The queue was empty at that moment: new datagrams wake us again.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    let servers = core.resolver.servers(now).len();
                    let fail_over = self
                        .dns
                        .as_ref()
                        .is_some_and(|relay| relay.on_refused(servers) == Step::FailOver);
                    if !(fail_over && self.fail_over(core, slot, now)) {
                        self.port_unreachable(&mut core.cx, tx);
                    }
                }
                Err(e) => {
                    log::debug!("udp {:?}: {e}", self.key);
                    break;
                }
            }
        }
        core.udp_batch = batch;
    }

    /// Datagrams from one recvmmsg (in `batch`'s slots, of `lens`) to the guest: runs of one
    /// size as super-datagrams where the TAP takes them, the others one frame each.
    fn deliver_batch(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        batch: &mut [u8],
        lens: &[usize],
        tx: &mut TxQueue,
    ) {
        let mut at = 0;
        while at < lens.len() {
            let run = if self.dns.is_none() {
                uso_run(&core.cx, self.key.remote.ip(), &lens[at..])
            } else {
                1
            };
            if run > 1 {
                let datagrams = batch_datagrams(batch, at, &lens[at..at + run]);
                self.deliver_run(&mut core.cx, now, &datagrams[..run], tx);
            } else {
                let start = at * RECV_SLOT;
                let datagram = &mut batch[start..start + UDP_HEADER + lens[at]];
                if !self.answer_refused(core, slot, now, &datagram[UDP_HEADER..]) {
                    self.deliver_from_host(&mut core.cx, now, datagram, tx);
                }
            }
            at += run;
        }
    }

    /// For a DNS flow: whether `answer` is a refusal that went on to the next resolver
    /// instead (and is not for the guest). Otherwise the resolver that answered is noted.
    fn answer_refused(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        answer: &[u8],
    ) -> bool {
        let Some(relay) = &mut self.dns else {
            return false;
        };
        let servers = core.resolver.servers(now).len();
        if relay.on_answer(answer, servers) == Step::FailOver && self.fail_over(core, slot, now) {
            return true;
        }
        if let Some(relay) = &self.dns {
            core.resolver.answered(relay.server);
        }
        false
    }

    /// A query from the guest on a DNS flow: to the resolver, or first on to the next one
    /// when this is the query again, unanswered.
    fn relay_query(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        query: &[u8],
        tx: &mut TxQueue,
    ) {
        let step = self.dns.as_mut().map(|relay| relay.on_query(query));
        if step == Some(Step::FailOver) && self.fail_over(core, slot, now) {
            self.last_seen = now;
            core.cx.counters.udp_datagrams_from_guest += 1;
            return;
        }
        self.send(core, now, query, tx);
        if let Some(relay) = &self.dns {
            core.resolver.query_sent(relay.server, now);
        }
    }

    /// Moves a DNS flow to the next resolver (a socket of its own, registered under the
    /// flow's token) and sends the kept query there. False when there is no other resolver or
    /// no socket for it: the flow stays as it was.
    fn fail_over(&mut self, core: &mut Core, slot: usize, now: Instant) -> bool {
        let Some(relay) = &mut self.dns else {
            return false;
        };
        let Some(next) = core.resolver.next_after(now, relay.server) else {
            return false;
        };
        let dst = std::net::SocketAddr::new(next, crate::engine::flows::route::DNS_PORT);
        let Ok(mut sock) = sockets::udp_connect(dst, core.cx.outbound_source(next)) else {
            return false;
        };
        // The new socket is registered before the old one leaves: a failure keeps the flow
        // as it was, still heard.
        let token = crate::tokens::token(crate::tokens::Kind::Flow, slot);
        if core
            .cx
            .registry
            .register(&mut sock, token, mio::Interest::READABLE)
            .is_err()
        {
            return false;
        }
        if let HostSide::Own(old) = &mut self.host {
            let _ = core.cx.registry.deregister(old);
        }
        log::debug!("dns: {} did not answer; relaying to {next}", relay.server);
        let _ = sock.send(relay.moved_to(next));
        core.resolver.query_sent(next, now);
        self.host = HostSide::Own(sock);
        true
    }

    /// Sends a datagram (UDP header first, payload after) to the guest from the flow's remote.
    fn deliver(
        &self,
        cx: &mut Cx,
        datagram: &mut [u8],
        tx: &mut TxQueue,
    ) -> Result<(), DropReason> {
        cx.emit_udp(
            tx,
            self.guest_mac,
            self.key.remote,
            self.key.guest,
            datagram,
        )
    }

    /// The destination refused: tell the guest as its kernel would hear it from a real host.
    fn port_unreachable(&self, cx: &mut Cx, tx: &mut TxQueue) {
        let [len_hi, len_lo] = (UDP_HEADER as u16).to_be_bytes();
        cx.emit_flow_unreachable(
            tx,
            self.guest_mac,
            &self.key,
            (IpProtocol::Udp, UDP_HEADER),
            [len_hi, len_lo, 0, 0],
            Unreachable::Port,
        );
    }

    /// Sends gathered datagrams on the flow's own socket, as few calls as the kernel allows.
    fn send_batch(&mut self, core: &mut Core, now: Instant, datagrams: &[&[u8]], tx: &mut TxQueue) {
        self.last_seen = now;
        let HostSide::Own(sock) = &self.host else {
            for datagram in datagrams {
                self.send(core, now, datagram, tx);
            }
            return;
        };
        let mut rest = datagrams;
        while !rest.is_empty() {
            // A run of one size at the front goes in one GSO send; the rest with sendmmsg.
            let run = if self.gso {
                same_size_run(rest.iter().map(|d| d.len()), USO_MAX_PAYLOAD)
            } else {
                1
            };
            let sent = if run > 1 {
                let size = rest[0].len() as u16;
                let sent = crate::sys::send_segmented(sock.as_fd(), &rest[..run], size);
                core.cx.counters.udp_segmented_sends += u64::from(sent.is_ok());
                sent.map(|()| run)
            } else {
                crate::sys::send_datagrams(sock.as_fd(), rest)
            };
            match sent {
                Ok(n) => {
                    core.cx.counters.udp_datagrams_from_guest += n as u64;
                    rest = &rest[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if run > 1
                        && !matches!(
                            e.raw_os_error(),
                            Some(libc::ECONNREFUSED | libc::EAGAIN | libc::ENOBUFS)
                        ) =>
                {
                    // The kernel takes no GSO here: datagram by datagram from now on.
                    log::debug!("udp {:?}: no UDP GSO ({e})", self.key);
                    self.gso = false;
                }
                Err(e) => {
                    // The first datagrams could not go: answer for them and go on.
                    if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                        self.port_unreachable(&mut core.cx, tx);
                    } else {
                        log::debug!("udp {:?}: send: {e}", self.key);
                        for _ in 0..run {
                            core.cx.counters.count_drop(DropReason::HostSocket);
                        }
                    }
                    rest = &rest[run..];
                }
            }
        }
    }

    fn send(&mut self, core: &mut Core, now: Instant, payload: &[u8], tx: &mut TxQueue) {
        self.last_seen = now;
        let sent = match &self.host {
            HostSide::Own(sock) => sock.send(payload),
            HostSide::Forward { forward, client } => {
                core.forwards.send_udp(*forward, payload, *client)
            }
        };
        match sent {
            Ok(_) => core.cx.counters.udp_datagrams_from_guest += 1,
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                self.port_unreachable(&mut core.cx, tx)
            }
            Err(e) => {
                log::debug!("udp {:?}: send: {e}", self.key);
                core.cx.counters.count_drop(DropReason::HostSocket);
            }
        }
    }
}

/// Guest datagrams of one flow gathered from consecutive frames of a batch, to be sent with one
/// sendmmsg instead of one send each.
#[derive(Default)]
pub(crate) struct PendingDatagrams<'a> {
    slot: Option<usize>,
    datagrams: Vec<&'a [u8]>,
}

/// Sends what was gathered, if anything.
pub(crate) fn flush_pending(
    core: &mut Core,
    flows: &mut Flows,
    pending: &mut PendingDatagrams,
    now: Instant,
    tx: &mut TxQueue,
) {
    let Some(slot) = pending.slot.take() else {
        return;
    };
    if let Some(Flow::Udp(flow)) = flows.get_mut(slot) {
        flow.send_batch(core, now, &pending.datagrams, tx);
    }
    pending.datagrams.clear();
}

/// A UDP datagram from the guest.
pub(crate) fn handle<'a>(
    core: &mut Core,
    flows: &mut Flows,
    now: Instant,
    guest: &GuestPacket<'a>,
    tx: &mut TxQueue,
    pending: &mut PendingDatagrams<'a>,
) -> Result<(), DropReason> {
    let (repr, packet) = guest.parse_udp()?;
    let key = crate::engine::key(Proto::Udp, guest, repr.src_port, repr.dst_port);
    let slot = match flows.lookup(&key) {
        Some(slot) => slot,
        None => open(core, flows, now, key, guest, tx)?,
    };
    if pending.slot.is_some_and(|gathering| gathering != slot) {
        flush_pending(core, flows, pending, now, tx);
    }
    match flows.get_mut(slot) {
        Some(Flow::Udp(flow)) if flow.dns.is_some() => {
            // Queries one by one: a failover needs each as it comes.
            flush_pending(core, flows, pending, now, tx);
            if let Some(Flow::Udp(flow)) = flows.get_mut(slot) {
                flow.guest_mac = guest.mac;
                flow.relay_query(core, slot, now, packet.payload(), tx);
            }
            return Ok(());
        }
        Some(Flow::Udp(flow)) => flow.guest_mac = guest.mac,
        _ => return Err(DropReason::Unsupported),
    }
    pending.slot = Some(slot);
    // A super-datagram (UDP segmentation offload) is the datagrams it stands for.
    let payload: &'a [u8] = packet.payload();
    let size = guest.offload.udp_segment.map_or(usize::MAX, usize::from);
    if payload.is_empty() {
        pending.datagrams.push(payload);
    }
    for datagram in payload.chunks(size.max(1)) {
        pending.datagrams.push(datagram);
        if pending.datagrams.len() >= crate::sys::MAX_DATAGRAM_BATCH {
            flush_pending(core, flows, pending, now, tx);
            pending.slot = Some(slot);
        }
    }
    Ok(())
}

fn open(
    core: &mut Core,
    flows: &mut Flows,
    now: Instant,
    key: FlowKey,
    guest: &GuestPacket,
    tx: &mut TxQueue,
) -> Result<usize, DropReason> {
    let Some(dst) = guest.route_new_flow(core, now, Proto::Udp, key.remote, tx)? else {
        guest.unreachable(&mut core.cx, tx, Unreachable::Port)?;
        return Err(DropReason::Refused);
    };
    let source = core.cx.outbound_source(dst.ip());
    let idle_timeout = core.cx.cfg.udp_idle_timeout;
    let dns = core
        .cx
        .is_dns(key.remote.ip())
        .then(|| Box::new(Relay::new(dst.ip())));
    let opened = open_flow(&mut core.cx, flows, key, || {
        Ok(Flow::Udp(Box::new(UdpFlow {
            host: HostSide::Own(sockets::udp_connect(dst, source)?),
            dns,
            key,
            guest_mac: guest.mac,
            last_seen: now,
            idle_timeout,
            waiting_for_room: false,
            gso: true,
        })))
    });
    match opened {
        Ok(slot) => Ok(slot),
        // Refused as a host without room would: the guest hears so at once.
        Err(InsertError::Full) => {
            guest.unreachable(&mut core.cx, tx, Unreachable::Port)?;
            Err(DropReason::FlowTableFull)
        }
        Err(InsertError::Open(e)) => {
            log::debug!("udp {key:?}: cannot open a host socket to {dst}: {e}");
            guest.unreachable(&mut core.cx, tx, Unreachable::Port)?;
            Err(DropReason::HostSocket)
        }
    }
}
