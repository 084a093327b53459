//! Building frames for the guest: Ethernet from a virtual host, IPv4 (fragmented when larger
//! than the MTU), ICMP errors.

use super::flow::FlowKey;
use super::{virtual_mac, Core, Drop, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4DstUnreachable,
    Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
};
use std::net::Ipv4Addr;

pub const ETHERNET_HEADER: usize = 14;
pub const IPV4_HEADER: usize = 20;
/// TTL of packets the virtual hosts send.
pub const HOP_LIMIT: u8 = 64;

impl Core {
    /// The MAC a frame from `addr` carries: its own for a virtual host, else the gateway's
    /// (everything beyond the virtual network is reached through the gateway).
    fn source_mac(&self, addr: Ipv4Addr) -> EthernetAddress {
        if self.is_virtual_host(addr) {
            virtual_mac(addr)
        } else {
            self.gateway_mac
        }
    }

    /// Queues a frame of `payload_len` bytes after an Ethernet header from `from` to `to`,
    /// letting `fill` write the payload.
    pub(crate) fn emit_frame(
        &mut self,
        tx: &mut TxQueue,
        from: Ipv4Addr,
        to: EthernetAddress,
        ethertype: EthernetProtocol,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), Drop> {
        let eth_repr = EthernetRepr {
            src_addr: self.source_mac(from),
            dst_addr: to,
            ethertype,
        };
        let len = eth_repr.buffer_len() + payload_len;
        let buf = tx.push(len).ok_or(Drop::TxQueueFull)?;
        let mut frame = EthernetFrame::new_unchecked(buf);
        eth_repr.emit(&mut frame);
        fill(frame.payload_mut());
        self.counters.frames_out += 1;
        self.counters.bytes_out += len as u64;
        Ok(())
    }

    /// Queues an IPv4 packet for the guest carrying `payload` (the transport header and data,
    /// checksummed by the caller), split into fragments when it exceeds the MTU.
    pub(crate) fn emit_ipv4(
        &mut self,
        tx: &mut TxQueue,
        guest_mac: EthernetAddress,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        payload: &[u8],
    ) -> Result<(), Drop> {
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
            return Err(Drop::Unsupported);
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

    /// Tells the guest a packet of flow `key` could not be delivered, quoting what a router
    /// on the way would: its IPv4 header (`protocol`, `payload_len`), its ports and the four
    /// bytes after them (`rest`). A frame that cannot be queued is counted.
    pub(crate) fn emit_flow_unreachable(
        &mut self,
        tx: &mut TxQueue,
        guest_mac: EthernetAddress,
        key: &FlowKey,
        (protocol, payload_len): (IpProtocol, usize),
        rest: [u8; 4],
        reason: Icmpv4DstUnreachable,
    ) {
        let original = Ipv4Repr {
            src_addr: *key.guest.ip(),
            dst_addr: *key.remote.ip(),
            next_header: protocol,
            payload_len,
            hop_limit: HOP_LIMIT,
        };
        let mut quoted = [0u8; 8];
        quoted[0..2].copy_from_slice(&key.guest.port().to_be_bytes());
        quoted[2..4].copy_from_slice(&key.remote.port().to_be_bytes());
        quoted[4..8].copy_from_slice(&rest);
        let from = *key.remote.ip();
        if let Err(drop) = self.emit_unreachable(tx, guest_mac, from, reason, &original, &quoted) {
            self.counters.count_drop(drop);
        }
    }

    /// Tells the guest its packet could not be delivered: an ICMP destination unreachable from
    /// `from`, quoting the packet's IPv4 header (`original`) and first bytes (`quoted`, at most
    /// 8 are used).
    pub(crate) fn emit_unreachable(
        &mut self,
        tx: &mut TxQueue,
        guest_mac: EthernetAddress,
        from: Ipv4Addr,
        reason: Icmpv4DstUnreachable,
        original: &Ipv4Repr,
        quoted: &[u8],
    ) -> Result<(), Drop> {
        let checksums = ChecksumCapabilities::default();
        let quoted = &quoted[..quoted.len().min(8)];
        let icmp = Icmpv4Repr::DstUnreachable {
            reason,
            header: *original,
            data: quoted,
        };
        let mut buf = [0u8; 64];
        let len = icmp.buffer_len();
        icmp.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[..len]),
            &checksums,
        );
        self.counters.icmp_errors_sent += 1;
        self.emit_ipv4(
            tx,
            guest_mac,
            from,
            original.src_addr,
            IpProtocol::Icmp,
            &buf[..len],
        )
    }
}
