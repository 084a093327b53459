//! ipv4 - checking an IPv4 packet from the guest.
//!
//! Sources are the guest's own network's (or 0.0.0.0 for a DHCP client not configured yet);
//! anything else is spoofed and dropped. A fragment goes to [`crate::engine::wire::reassembly`].

use crate::engine::wire::reassembly::{Parsed, Piece};
use crate::engine::{services::dhcp, wire::offload::RxOffload, Cx, DropReason, GuestPacket};
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv4Packet};
use std::net::IpAddr;

/// An IPv4 packet from the guest interface with MAC `mac` (where replies go).
pub(in crate::engine) fn parse<'a>(
    cx: &mut Cx,
    mac: EthernetAddress,
    packet: &'a [u8],
    offload: RxOffload,
) -> Result<Parsed<'a>, DropReason> {
    let packet = Ipv4Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
    if packet.version() != 4 || !packet.verify_checksum() {
        return Err(DropReason::Malformed);
    }
    let (src, dst) = (packet.src_addr(), packet.dst_addr());
    let protocol = packet.next_header();
    let unconfigured = src.is_unspecified()
        && protocol == IpProtocol::Udp
        && dhcp::is_to_server_port(packet.payload());
    if !cx.cfg.net.contains(src) && !unconfigured {
        // Only the guest's own network may be a source; anything else is spoofed.
        return Err(DropReason::Refused);
    }
    if !unconfigured {
        cx.learn_neighbor(IpAddr::V4(src), mac);
    }
    if packet.more_frags() || packet.frag_offset() != 0 {
        return Ok(Parsed::Piece(
            mac,
            Piece {
                src: IpAddr::V4(src),
                dst: IpAddr::V4(dst),
                protocol: protocol.into(),
                id: u32::from(packet.ident()),
                offset: usize::from(packet.frag_offset()),
                more: packet.more_frags(),
                bytes: packet.payload(),
            },
        ));
    }
    Ok(Parsed::Whole(GuestPacket {
        mac,
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        protocol,
        payload: packet.payload(),
        offload,
    }))
}
