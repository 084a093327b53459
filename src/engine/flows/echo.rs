//! echo - ICMP and ICMPv6 echo to the outside through unprivileged ping sockets.
//!
//! One ping socket per (guest, echo identifier, destination). The kernel gives the socket an
//! identifier of its own and rewrites requests with it; replies come back with it and are
//! rewritten with the guest's before they are delivered. Where the host's
//! net.ipv4.ping_group_range leaves this user out, only the virtual hosts answer (said once
//! in the log).

use crate::engine::flows::table::{InsertError, Verdict};
use crate::engine::wire::key::{FlowKey, Proto};
use crate::engine::{flows::sockets, Core, Cx, DropReason, GuestPacket, Readiness, TxQueue};
use crate::engine::{open_flow, Flow, Flows};
use smoltcp::wire::{
    EthernetAddress, Icmpv4Message, Icmpv4Packet, Icmpv6Message, Icmpv6Packet, IpProtocol,
};
use std::io;
use std::net::IpAddr;
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
    pub(crate) fn key(&self) -> &FlowKey {
        &self.key
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
                    if let Err(reason) = self.deliver(&mut core.cx, &mut buf[..n], tx) {
                        core.cx.counters.count_drop(reason);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        core.scratch = buf;
        Verdict::Keep
    }

    /// Passes an echo reply on to the guest with the guest's identifier (rewritten in place).
    fn deliver(&self, cx: &mut Cx, reply: &mut [u8], tx: &mut TxQueue) -> Result<(), DropReason> {
        let (src, dst) = (self.key.remote.ip(), self.key.guest.ip());
        let ident = self.key.guest.port();
        let protocol = match (src, dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => {
                let mut packet =
                    Icmpv4Packet::new_checked(&mut *reply).map_err(|_| DropReason::Malformed)?;
                if packet.msg_type() != Icmpv4Message::EchoReply {
                    return Err(DropReason::Unsupported);
                }
                packet.set_echo_ident(ident);
                packet.fill_checksum();
                IpProtocol::Icmp
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let mut packet =
                    Icmpv6Packet::new_checked(&mut *reply).map_err(|_| DropReason::Malformed)?;
                if packet.msg_type() != Icmpv6Message::EchoReply {
                    return Err(DropReason::Unsupported);
                }
                packet.set_echo_ident(ident);
                packet.fill_checksum(&src, &dst);
                IpProtocol::Icmpv6
            }
            _ => return Err(DropReason::Unsupported),
        };
        cx.counters.icmp_echo_replies += 1;
        cx.emit_ip(tx, self.guest_mac, src, dst, protocol, reply)
    }

    fn send(&mut self, cx: &mut Cx, now: Instant, request: &[u8]) {
        self.last_seen = now;
        let Some(sock) = &self.sock else { return };
        if sock.send(request).is_err() {
            cx.counters.count_drop(DropReason::HostSocket);
        }
    }
}

/// An ICMP or ICMPv6 message from the guest to a destination beyond the virtual hosts.
pub(crate) fn handle(
    core: &mut Core,
    flows: &mut Flows,
    now: Instant,
    guest: &GuestPacket,
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    let payload = guest.payload;
    let ident = crate::engine::link::icmp::parse_echo_request(guest)?.ident;
    let key = crate::engine::key(Proto::Icmp, guest, ident, 0);
    let slot = match flows.lookup(&key) {
        Some(slot) => slot,
        None => open(core, flows, now, key, guest, tx)?,
    };
    if let Some(Flow::Echo(flow)) = flows.get_mut(slot) {
        flow.guest_mac = guest.mac;
        // The request goes out as the guest sent it; the kernel sets identifier and checksum.
        flow.send(&mut core.cx, now, payload);
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
    let Some(dst) = guest.route_new_flow(core, now, Proto::Icmp, key.remote, tx)? else {
        return Err(DropReason::Refused);
    };
    if dst.is_ipv4() != key.guest.is_ipv4() {
        // Echo is not translated between IPv4 and IPv6.
        return Err(DropReason::Refused);
    }
    let source = core.cx.outbound_source(dst.ip());
    let opened = open_flow(&mut core.cx, flows, key, || {
        Ok(Flow::Echo(Box::new(EchoFlow {
            sock: Some(sockets::ping_connect(dst, source)?),
            key,
            guest_mac: guest.mac,
            last_seen: now,
        })))
    });
    match opened {
        Ok(slot) => Ok(slot),
        Err(InsertError::Full) => Err(DropReason::FlowTableFull),
        Err(InsertError::Open(e)) => {
            if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) {
                if !core.ping_refused_logged {
                    core.ping_refused_logged = true;
                    log::warn!(
                        "ICMP echo beyond the gateway is unavailable: the host refuses ping \
                         sockets to this user (net.ipv4.ping_group_range); only the gateway \
                         and the DNS address answer"
                    );
                }
            } else {
                log::debug!("echo {key:?}: cannot open a ping socket: {e}");
            }
            Err(DropReason::HostSocket)
        }
    }
}
