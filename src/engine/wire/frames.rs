//! Building frames for the guest: Ethernet from a virtual host, IPv4 and IPv6 (fragmented when
//! larger than the MTU), ICMP and ICMPv6 errors.

use crate::engine::wire::key::FlowKey;
use crate::engine::{Cx, DropReason, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4DstUnreachable,
    Icmpv4Packet, Icmpv4Repr, Icmpv6DstUnreachable, Icmpv6Packet, Icmpv6Repr, IpProtocol,
    Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpPacket, UdpRepr,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A UDP header.
pub const UDP_HEADER: usize = 8;

pub const ETHERNET_HEADER: usize = 14;
pub const IPV4_HEADER: usize = 20;
pub const IPV6_HEADER: usize = 40;
const IPV6_FRAGMENT_HEADER: usize = 8;
/// TTL of packets the virtual hosts send.
pub const HOP_LIMIT: u8 = 64;

/// The IP header in front of a packet from or to `addr`.
pub fn ip_header_len(addr: IpAddr) -> usize {
    match addr {
        IpAddr::V4(_) => IPV4_HEADER,
        IpAddr::V6(_) => IPV6_HEADER,
    }
}

/// Why a packet could not be delivered, in terms both ICMP versions have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// No route: the guest's connect() fails with ENETUNREACH.
    Net,
    /// The host (or address) does not answer: EHOSTUNREACH.
    Host,
    /// Nothing listens on the port: ECONNREFUSED.
    Port,
}

impl Unreachable {
    fn v4(self) -> Icmpv4DstUnreachable {
        match self {
            Unreachable::Net => Icmpv4DstUnreachable::NetUnreachable,
            Unreachable::Host => Icmpv4DstUnreachable::HostUnreachable,
            Unreachable::Port => Icmpv4DstUnreachable::PortUnreachable,
        }
    }

    fn v6(self) -> Icmpv6DstUnreachable {
        match self {
            Unreachable::Net => Icmpv6DstUnreachable::NoRoute,
            Unreachable::Host => Icmpv6DstUnreachable::AddrUnreachable,
            Unreachable::Port => Icmpv6DstUnreachable::PortUnreachable,
        }
    }
}

/// The header of a packet an ICMP error quotes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpProtocol,
    pub payload_len: usize,
}

impl Cx {
    /// The MAC a frame from `addr` carries: the DNS relay's for its addresses, else the
    /// gateway's (everything beyond the virtual network is reached through the gateway).
    pub(crate) fn source_mac(&self, addr: IpAddr) -> EthernetAddress {
        if self.is_dns(addr) {
            self.dns_mac
        } else {
            self.gateway_mac
        }
    }

    /// Queues a frame of `payload_len` bytes after an Ethernet header from `from` to `to`,
    /// letting `fill` write the payload.
    pub(crate) fn emit_frame(
        &mut self,
        tx: &mut TxQueue,
        from: impl Into<IpAddr>,
        to: EthernetAddress,
        ethertype: EthernetProtocol,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), DropReason> {
        let eth_repr = EthernetRepr {
            src_addr: self.source_mac(from.into()),
            dst_addr: to,
            ethertype,
        };
        let len = eth_repr.buffer_len() + payload_len;
        let buf = tx.push(len).ok_or(DropReason::TxQueueFull)?;
        let mut frame = EthernetFrame::new_unchecked(buf);
        eth_repr.emit(&mut frame);
        fill(frame.payload_mut());
        self.counters.frames_out += 1;
        self.counters.bytes_out += len as u64;
        Ok(())
    }

    /// Queues a UDP datagram for the guest from `from` to `to`: `datagram` is 8 bytes of room
    /// for the header (written here, with its checksum), then the payload.
    pub(crate) fn emit_udp(
        &mut self,
        tx: &mut TxQueue,
        guest_mac: EthernetAddress,
        from: SocketAddr,
        to: SocketAddr,
        datagram: &mut [u8],
    ) -> Result<(), DropReason> {
        let repr = UdpRepr {
            src_port: from.port(),
            dst_port: to.port(),
        };
        let payload_len = datagram
            .len()
            .checked_sub(UDP_HEADER)
            .ok_or(DropReason::Malformed)?;
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut *datagram),
            &from.ip().into(),
            &to.ip().into(),
            payload_len,
            |_| {},
            &ChecksumCapabilities::default(),
        );
        self.emit_ip(tx, guest_mac, from.ip(), to.ip(), IpProtocol::Udp, datagram)
    }

    /// Queues an IP packet for the guest carrying `payload` (the transport header and data,
    /// checksummed by the caller), fragmented when it exceeds the MTU.
    pub(crate) fn emit_ip(
        &mut self,
        tx: &mut TxQueue,
        guest_mac: EthernetAddress,
        src: IpAddr,
        dst: IpAddr,
        protocol: IpProtocol,
        payload: &[u8],
    ) -> Result<(), DropReason> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                self.emit_ipv4(tx, guest_mac, src, dst, protocol, payload)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                self.emit_ipv6(tx, guest_mac, src, dst, protocol, payload)
            }
            _ => Err(DropReason::Unsupported),
        }
    }

    /// Queues an IPv4 packet for the guest carrying `payload` (the transport header and data,
    /// checksummed by the caller), split into fragments when it exceeds the MTU.
    fn emit_ipv4(
        &mut self,
        tx: &mut TxQueue,
        guest_mac: EthernetAddress,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        payload: &[u8],
    ) -> Result<(), DropReason> {
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: protocol,
            payload_len: payload.len(),
            hop_limit: HOP_LIMIT,
        };
        let checksums = ChecksumCapabilities::default();
        if IPV4_HEADER + payload.len() <= self.mtu() {
            return self.emit_frame(
                tx,
                src,
                guest_mac,
                EthernetProtocol::Ipv4,
                IPV4_HEADER + payload.len(),
                |buf| {
                    let mut packet = Ipv4Packet::new_unchecked(buf);
                    repr.emit(&mut packet, &checksums);
                    packet.payload_mut().copy_from_slice(payload);
                },
            );
        }
        // Fragment: every fragment but the last carries a multiple of 8 bytes.
        let per_fragment = (self.mtu() - IPV4_HEADER) & !7;
        if per_fragment == 0 {
            return Err(DropReason::Unsupported);
        }
        let ident = self.random_u32() as u16;
        for (index, chunk) in payload.chunks(per_fragment).enumerate() {
            let offset = index * per_fragment;
            let last = offset + chunk.len() == payload.len();
            let fragment = Ipv4Repr {
                payload_len: chunk.len(),
                ..repr
            };
            self.emit_frame(
                tx,
                src,
                guest_mac,
                EthernetProtocol::Ipv4,
                IPV4_HEADER + chunk.len(),
                |buf| {
                    let mut packet = Ipv4Packet::new_unchecked(buf);
                    fragment.emit(&mut packet, &checksums);
                    packet.set_ident(ident);
                    packet.set_dont_frag(false);
                    packet.set_more_frags(!last);
                    packet.set_frag_offset(offset as u16);
                    packet.payload_mut().copy_from_slice(chunk);
                    packet.fill_checksum();
                },
            )?;
        }
        Ok(())
    }

    fn emit_ipv6(
        &mut self,
        tx: &mut TxQueue,
        guest_mac: EthernetAddress,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        protocol: IpProtocol,
        payload: &[u8],
    ) -> Result<(), DropReason> {
        let repr = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: protocol,
            payload_len: payload.len(),
            hop_limit: HOP_LIMIT,
        };
        if IPV6_HEADER + payload.len() <= self.mtu() {
            return self.emit_frame(
                tx,
                src,
                guest_mac,
                EthernetProtocol::Ipv6,
                IPV6_HEADER + payload.len(),
                |buf| {
                    let mut packet = Ipv6Packet::new_unchecked(buf);
                    repr.emit(&mut packet);
                    packet.payload_mut().copy_from_slice(payload);
                },
            );
        }
        // Fragment (RFC 8200, 4.5): every fragment but the last carries a multiple of 8 bytes.
        let per_fragment = self
            .mtu()
            .saturating_sub(IPV6_HEADER + IPV6_FRAGMENT_HEADER)
            & !7;
        if per_fragment == 0 {
            return Err(DropReason::Unsupported);
        }
        let ident = self.random_u32();
        for (index, chunk) in payload.chunks(per_fragment).enumerate() {
            let offset = index * per_fragment;
            let more = offset + chunk.len() < payload.len();
            let fragment = Ipv6Repr {
                next_header: IpProtocol::Ipv6Frag,
                payload_len: IPV6_FRAGMENT_HEADER + chunk.len(),
                ..repr
            };
            let len = IPV6_HEADER + IPV6_FRAGMENT_HEADER + chunk.len();
            self.emit_frame(tx, src, guest_mac, EthernetProtocol::Ipv6, len, |buf| {
                let mut packet = Ipv6Packet::new_unchecked(buf);
                fragment.emit(&mut packet);
                let body = packet.payload_mut();
                body[0] = u8::from(protocol);
                body[1] = 0;
                let offset_and_flag = (offset as u16) | u16::from(more);
                body[2..4].copy_from_slice(&offset_and_flag.to_be_bytes());
                body[4..8].copy_from_slice(&ident.to_be_bytes());
                body[IPV6_FRAGMENT_HEADER..].copy_from_slice(chunk);
            })?;
        }
        Ok(())
    }

    /// Tells the guest a packet of flow `key` could not be delivered, quoting what a router
    /// on the way would: its IP header (`protocol`, `payload_len`), its ports and the four
    /// bytes after them (`rest`). A frame that cannot be queued is counted.
    pub(crate) fn emit_flow_unreachable(
        &mut self,
        tx: &mut TxQueue,
        guest_mac: EthernetAddress,
        key: &FlowKey,
        (protocol, payload_len): (IpProtocol, usize),
        rest: [u8; 4],
        reason: Unreachable,
    ) {
        let original = Quoted {
            src: key.guest.ip(),
            dst: key.remote.ip(),
            protocol,
            payload_len,
        };
        let mut quoted = [0u8; 8];
        quoted[0..2].copy_from_slice(&key.guest.port().to_be_bytes());
        quoted[2..4].copy_from_slice(&key.remote.port().to_be_bytes());
        quoted[4..8].copy_from_slice(&rest);
        let from = key.remote.ip();
        if let Err(drop) = self.emit_unreachable(tx, guest_mac, from, reason, &original, &quoted) {
            self.counters.count_drop(drop);
        }
    }

    /// Tells the guest its packet could not be delivered: an ICMP or ICMPv6 destination
    /// unreachable from `from`, quoting the packet's header (`original`) and first bytes
    /// (`quoted`, at most 8 are used).
    pub(crate) fn emit_unreachable(
        &mut self,
        tx: &mut TxQueue,
        guest_mac: EthernetAddress,
        from: IpAddr,
        reason: Unreachable,
        original: &Quoted,
        quoted: &[u8],
    ) -> Result<(), DropReason> {
        let checksums = ChecksumCapabilities::default();
        let quoted = &quoted[..quoted.len().min(8)];
        let mut buf = [0u8; 96];
        let (len, protocol) = match (from, original.src, original.dst) {
            (IpAddr::V4(_), IpAddr::V4(src), IpAddr::V4(dst)) => {
                let header = Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: original.protocol,
                    payload_len: original.payload_len,
                    hop_limit: HOP_LIMIT,
                };
                let icmp = Icmpv4Repr::DstUnreachable {
                    reason: reason.v4(),
                    header,
                    data: quoted,
                };
                let len = icmp.buffer_len();
                icmp.emit(
                    &mut Icmpv4Packet::new_unchecked(&mut buf[..len]),
                    &checksums,
                );
                (len, IpProtocol::Icmp)
            }
            (IpAddr::V6(from_v6), IpAddr::V6(src), IpAddr::V6(dst)) => {
                let header = Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: original.protocol,
                    payload_len: original.payload_len,
                    hop_limit: HOP_LIMIT,
                };
                let icmp = Icmpv6Repr::DstUnreachable {
                    reason: reason.v6(),
                    header,
                    data: quoted,
                };
                let len = icmp.buffer_len();
                icmp.emit(
                    &from_v6,
                    &src,
                    &mut Icmpv6Packet::new_unchecked(&mut buf[..len]),
                    &checksums,
                );
                (len, IpProtocol::Icmpv6)
            }
            _ => return Err(DropReason::Unsupported),
        };
        self.counters.icmp_errors_sent += 1;
        self.emit_ip(tx, guest_mac, from, original.src, protocol, &buf[..len])
    }
}
