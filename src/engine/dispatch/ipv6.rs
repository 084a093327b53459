//! ipv6 - checking an IPv6 packet from the guest and finding its upper-layer header.
//!
//! Sources are the guest's own: an address of its /64 or a link-local one (neighbour discovery,
//! DHCPv6), or the unspecified address while it checks its own address for duplicates.
//! Hop-by-hop, routing and destination options headers are stepped over (MLD reports carry
//! one); a fragment goes to [`crate::engine::wire::reassembly`] (one that is the whole datagram, an atomic
//! fragment, is taken as it is).

use crate::engine::wire::ipv6_headers::upper_layer;
use crate::engine::wire::reassembly::{Parsed, Piece};
use crate::engine::{wire::offload::RxOffload, Cx, DropReason, GuestPacket};
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv6FragmentHeader, Ipv6Packet, Ipv6Repr};
use std::net::IpAddr;

pub(in crate::engine) fn parse<'a>(
    cx: &mut Cx,
    mac: EthernetAddress,
    packet: &'a [u8],
    offload: RxOffload,
) -> Result<Parsed<'a>, DropReason> {
    let packet = Ipv6Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
    let ip = Ipv6Repr::parse(&packet).map_err(|_| DropReason::Malformed)?;
    let src = ip.src_addr;
    let (mut protocol, mut payload) = upper_layer(ip.next_header, packet.payload())?;
    let own_network = cx.in_guest_network(IpAddr::V6(src));
    if own_network || src.is_unicast_link_local() {
        cx.learn_neighbor(IpAddr::V6(src), mac);
    } else if !(src.is_unspecified() && protocol == IpProtocol::Icmpv6) {
        // Anything else is spoofed.
        return Err(DropReason::Refused);
    }
    if protocol == IpProtocol::Ipv6Frag {
        // Next header, a reserved byte, then the fields smoltcp's view covers.
        let (Some(fields), Some(bytes)) = (payload.get(2..8), payload.get(8..)) else {
            return Err(DropReason::Malformed);
        };
        let header = Ipv6FragmentHeader::new_checked(fields).map_err(|_| DropReason::Malformed)?;
        let next = IpProtocol::from(payload[0]);
        if header.more_frags() || header.frag_offset() != 0 {
            return Ok(Parsed::Piece(
                mac,
                Piece {
                    src: IpAddr::V6(src),
                    dst: IpAddr::V6(ip.dst_addr),
                    protocol: next.into(),
                    id: header.ident(),
                    offset: usize::from(header.frag_offset()) * 8,
                    more: header.more_frags(),
                    bytes,
                },
            ));
        }
        (protocol, payload) = upper_layer(next, bytes)?;
    }
    Ok(Parsed::Whole(GuestPacket {
        mac,
        src: IpAddr::V6(src),
        dst: IpAddr::V6(ip.dst_addr),
        protocol,
        payload,
        offload,
    }))
}
