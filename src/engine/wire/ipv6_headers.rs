//! IPv6 extension headers: stepping over them to the upper-layer protocol, for a packet as
//! it came (ipv6) and for a datagram put back together from fragments (reassembly).

use crate::engine::DropReason;
use smoltcp::wire::IpProtocol;

/// Most extension headers stepped over before giving up on a packet.
const MAX_EXTENSION_HEADERS: usize = 8;

/// Steps over extension headers to the upper-layer protocol and its bytes (or to a fragment
/// header, returned as the protocol with the bytes from it on).
pub(in crate::engine) fn upper_layer(
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
