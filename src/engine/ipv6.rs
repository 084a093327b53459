//! ipv6 - checking an IPv6 packet from the guest and finding its upper-layer header.
//!
//! Sources are the guest's own: an address of its /64 or a link-local one (neighbour discovery,
//! DHCPv6), or the unspecified address while it checks its own address for duplicates.
//! Hop-by-hop, routing and destination options headers are stepped over (MLD reports carry
//! one); a fragment goes to [`super::reassembly`] (one that is the whole datagram, an atomic
//! fragment, is taken as it is).

use super::reassembly::{Parsed, Piece};
use super::{offload::RxOffload, Core, DropReason, GuestPacket};
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv6FragmentHeader, Ipv6Packet, Ipv6Repr};
use std::net::IpAddr;

/// Most extension headers stepped over before giving up on a packet.
const MAX_EXTENSION_HEADERS: usize = 8;

pub(super) fn parse<'a>(
    core: &mut Core,
    mac: EthernetAddress,
    packet: &'a [u8],
    offload: RxOffload,
) -> Result<Parsed<'a>, DropReason> {
    let packet = Ipv6Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
    let ip = Ipv6Repr::parse(&packet).map_err(|_| DropReason::Malformed)?;
    let src = ip.src_addr;
    let (mut protocol, mut payload) = upper_layer(ip.next_header, packet.payload())?;
    let own_network = core.in_guest_network(IpAddr::V6(src));
    if own_network || src.is_unicast_link_local() {
        core.learn_neighbor(IpAddr::V6(src), mac);
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

/// Steps over extension headers to the upper-layer protocol and its bytes (or to a fragment
/// header, returned as the protocol with the bytes from it on).
pub(super) fn upper_layer(
    mut next: IpProtocol,
    mut rest: &[u8],
) -> Result<(IpProtocol, &[u8]), DropReason> {
    for _ in 0..MAX_EXTENSION_HEADERS {
        match next {
            IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                // Next header, then the length in 8-byte units after the first eight.
                let [header, units, ..] = *rest else {
                    return Err(DropReason::Malformed);
                };
                let len = (usize::from(units) + 1) * 8;
                if rest.len() < len {
                    return Err(DropReason::Malformed);
                }
                next = IpProtocol::from(header);
                rest = &rest[len..];
            }
            IpProtocol::Ipv6Frag => return Ok((next, rest)),
            IpProtocol::Ipv6NoNxt => return Err(DropReason::Unsupported),
            protocol => return Ok((protocol, rest)),
        }
    }
    Err(DropReason::Unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_headers_are_stepped_over() {
        let mut chain = vec![u8::from(IpProtocol::Ipv6Opts), 0, 1, 4, 0, 0, 0, 0];
        chain.extend_from_slice(&[u8::from(IpProtocol::Udp), 1]);
        chain.extend_from_slice(&[0; 14]);
        chain.extend_from_slice(b"udp!");
        let (protocol, rest) = upper_layer(IpProtocol::HopByHop, &chain).unwrap();
        assert_eq!((protocol, rest), (IpProtocol::Udp, &b"udp!"[..]));
    }

    #[test]
    fn bad_chains_are_dropped() {
        // Length beyond the packet.
        let short = [u8::from(IpProtocol::Udp), 3, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            upper_layer(IpProtocol::HopByHop, &short),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            upper_layer(IpProtocol::HopByHop, &[0]),
            Err(DropReason::Malformed)
        );
        assert_eq!(
            upper_layer(IpProtocol::Ipv6Frag, &[0; 16]),
            Ok((IpProtocol::Ipv6Frag, &[0u8; 16][..]))
        );
        // A chain longer than we follow.
        let looping = [u8::from(IpProtocol::HopByHop), 0, 0, 0, 0, 0, 0, 0].repeat(10);
        assert_eq!(
            upper_layer(IpProtocol::HopByHop, &looping),
            Err(DropReason::Unsupported)
        );
    }
}
