//! echo - ICMP echo to the outside through unprivileged ping sockets.
//!
//! One ping socket per (guest, echo identifier, destination). The kernel gives the socket an
//! identifier of its own and rewrites requests with it; replies come back with it and are
//! rewritten with the guest's before they are delivered. Where the host's
//! net.ipv4.ping_group_range leaves this user out, only the virtual hosts answer (said once
//! in the log).

use super::flow::{open_flow, Flow, FlowKey, FlowTable, InsertError, Proto, Verdict};
use super::{sockets, Core, Drop, GuestPacket, Readiness, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{EthernetAddress, Icmpv4Packet, Icmpv4Repr, IpProtocol};
use std::io;
use std::time::{Duration, Instant};

/// How long an echo flow lives without traffic.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct EchoFlow {
    sock: Option<mio::net::UdpSocket>,
    key: FlowKey,
    guest_mac: EthernetAddress,
    last_seen: Instant,
}

impl EchoFlow {
    /// A flow with no socket, for table tests.
    #[cfg(test)]
    pub fn placeholder(_slot: usize) -> Self {
        EchoFlow {
            sock: None,
            key: FlowKey {
                proto: Proto::Icmp,
                guest: "10.0.2.100:1".parse().unwrap(),
                remote: "192.0.2.1:0".parse().unwrap(),
            },
            guest_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            last_seen: Instant::now(),
        }
    }

    pub(crate) fn socket_mut(&mut self) -> Option<&mut mio::net::UdpSocket> {
        self.sock.as_mut()
    }

    pub fn deadline(&self) -> Instant {
        self.last_seen + IDLE_TIMEOUT
    }

    pub(crate) fn on_socket_event(
        &mut self,
        core: &mut Core,
        now: Instant,
        readiness: Readiness,
        tx: &mut TxQueue,
    ) -> Verdict {
        let Some(sock) = &self.sock else {
            return Verdict::Close;
        };
        if !(readiness.readable || readiness.error) {
            return Verdict::Keep;
        }
        let mut buf = std::mem::take(&mut core.scratch);
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => {
                    self.last_seen = now;
                    if let Err(reason) = self.deliver(core, &buf[..n], tx) {
                        core.counters.count_drop(reason);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        core.scratch = buf;
        Verdict::Keep
    }

    /// Passes an echo reply on to the guest with the guest's identifier.
    fn deliver(&self, core: &mut Core, reply: &[u8], tx: &mut TxQueue) -> Result<(), Drop> {
        let packet = Icmpv4Packet::new_checked(reply).map_err(|_| Drop::Malformed)?;
        let Ok(Icmpv4Repr::EchoReply { seq_no, data, .. }) =
            Icmpv4Repr::parse(&packet, &ChecksumCapabilities::ignored())
        else {
            return Err(Drop::Unsupported);
        };
        let repr = Icmpv4Repr::EchoReply {
            ident: self.key.guest.port(),
            seq_no,
            data,
        };
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(&mut out[..]),
            &ChecksumCapabilities::default(),
        );
        core.counters.icmp_echo_replies += 1;
        let (src, dst) = (*self.key.remote.ip(), *self.key.guest.ip());
        core.emit_ipv4(tx, self.guest_mac, src, dst, IpProtocol::Icmp, &out)
    }

    fn send(&mut self, core: &mut Core, now: Instant, request: &[u8]) {
        self.last_seen = now;
        let Some(sock) = &self.sock else { return };
        if sock.send(request).is_err() {
            core.counters.count_drop(Drop::HostSocket);
        }
    }
}

/// An ICMP message from the guest to a destination beyond the virtual hosts.
pub(crate) fn handle(
    core: &mut Core,
    flows: &mut FlowTable,
    now: Instant,
    guest: &GuestPacket,
    tx: &mut TxQueue,
) -> Result<(), Drop> {
    let (ip, payload) = (&guest.ip, guest.payload);
    let packet = Icmpv4Packet::new_checked(payload).map_err(|_| Drop::Malformed)?;
    let repr = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default())
        .map_err(|_| Drop::Malformed)?;
    let Icmpv4Repr::EchoRequest { ident, .. } = repr else {
        return Err(Drop::Unsupported);
    };
    let key = super::key(Proto::Icmp, ip, ident, 0);
    let slot = match flows.lookup(&key) {
        Some(slot) => slot,
        None => open(core, flows, now, key, guest, tx)?,
    };
    if let Some(Flow::Echo(flow)) = flows.get_mut(slot) {
        flow.guest_mac = guest.mac;
        // The request goes out as the guest sent it; the kernel sets identifier and checksum.
        flow.send(core, now, payload);
    }
    Ok(())
}

fn open(
    core: &mut Core,
    flows: &mut FlowTable,
    now: Instant,
    key: FlowKey,
    guest: &GuestPacket,
    tx: &mut TxQueue,
) -> Result<usize, Drop> {
    let Some(dst) = guest.route_new_flow(core, now, Proto::Icmp, key.remote, tx)? else {
        return Err(Drop::Refused);
    };
    let source = core.cfg.outbound_addr.map(Into::into);
    let opened = open_flow(core, flows, key, || {
        Ok(Flow::Echo(Box::new(EchoFlow {
            sock: Some(sockets::ping_connect(dst, source)?),
            key,
            guest_mac: guest.mac,
            last_seen: now,
        })))
    });
    match opened {
        Ok(slot) => Ok(slot),
        Err(InsertError::Full) => Err(Drop::FlowTableFull),
        Err(InsertError::Open(e)) => {
            if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) {
                if !core.ping_refused_logged {
                    core.ping_refused_logged = true;
                    log::warn!(
                        "ICMP echo beyond the gateway is unavailable: the host refuses ping \
                         sockets to this user (net.ipv4.ping_group_range); only {} and {} answer",
                        core.cfg.net.gateway(),
                        core.cfg.net.dns()
                    );
                }
            } else {
                log::debug!("echo {key:?}: cannot open a ping socket: {e}");
            }
            Err(Drop::HostSocket)
        }
    }
}
