//! The IP packet from the guest as the protocol handlers see it: checked, with its sender's MAC
//! and what the TAP said of it.

use crate::engine::wire::frames::{self, Unreachable};
use crate::engine::wire::key::{FlowKey, Proto};
use crate::engine::wire::offload::RxOffload;
use crate::engine::{Cx, DropReason, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{EthernetAddress, IpProtocol, UdpPacket, UdpRepr};
use std::net::{IpAddr, SocketAddr};

/// An IP packet from the guest, checked: its sender's MAC, addresses, protocol and payload
/// (after any IPv6 extension headers).
pub(crate) struct GuestPacket<'a> {
    pub mac: EthernetAddress,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpProtocol,
    pub payload: &'a [u8],
    /// What the TAP said of the frame.
    pub offload: RxOffload,
}

/// The destination port of `udp`, if it is long enough to be a UDP datagram (not checked).
pub(crate) fn udp_dst_port(udp: &[u8]) -> Option<u16> {
    udp.get(2..4).map(|p| u16::from_be_bytes([p[0], p[1]]))
}

impl<'a> GuestPacket<'a> {
    /// The destination port, if the payload is long enough to be a UDP datagram.
    pub(crate) fn udp_dst_port(&self) -> Option<u16> {
        udp_dst_port(self.payload)
    }

    /// The packet as a UDP datagram, its checksum checked as [`Self::transport_checksums`]
    /// says: the header, and the datagram (whose payload is the data).
    pub(crate) fn parse_udp(&self) -> Result<(UdpRepr, UdpPacket<&'a [u8]>), DropReason> {
        let packet = UdpPacket::new_checked(self.payload).map_err(|_| DropReason::Malformed)?;
        let repr = UdpRepr::parse(
            &packet,
            &self.src.into(),
            &self.dst.into(),
            &self.transport_checksums(),
        )
        .map_err(|_| DropReason::Malformed)?;
        Ok((repr, packet))
    }

    /// How to check the transport header: its checksum is skipped when the guest's kernel left
    /// it partial or had it verified.
    pub(crate) fn transport_checksums(&self) -> ChecksumCapabilities {
        let mut caps = ChecksumCapabilities::default();
        if self.offload.checksum_trusted {
            caps.tcp = smoltcp::phy::Checksum::Tx;
            caps.udp = smoltcp::phy::Checksum::Tx;
        }
        caps
    }

    /// Tells the guest this packet could not be delivered, from its destination.
    pub(crate) fn unreachable(
        &self,
        cx: &mut Cx,
        tx: &mut TxQueue,
        reason: Unreachable,
    ) -> Result<(), DropReason> {
        let original = frames::Quoted {
            src: self.src,
            dst: self.dst,
            protocol: self.protocol,
            payload_len: self.payload.len(),
        };
        cx.emit_unreachable(tx, self.mac, self.dst, reason, &original, self.payload)
    }
}

/// A flow key from the guest's point of view.
pub(crate) fn key(proto: Proto, packet: &GuestPacket, src_port: u16, dst_port: u16) -> FlowKey {
    FlowKey {
        proto,
        guest: SocketAddr::new(packet.src, src_port),
        remote: SocketAddr::new(packet.dst, dst_port),
    }
}
