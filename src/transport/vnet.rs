//! The virtio-net header (struct virtio_net_hdr, 10 bytes) a TAP opened with IFF_VNET_HDR puts
//! in front of every frame, both ways. It is what makes offloads possible:
//!
//! - from the guest, a frame may carry a partial transport checksum (NEEDS_CSUM: the guest's
//!   kernel left it to "hardware", which we are) and may be a TCP or UDP super-packet of up to
//!   64 KiB (GSO), whatever the MTU;
//! - to the guest, we may do the same: one 64 KiB TCP frame, segmented by nobody (the guest's
//!   stack takes it whole, as from GRO), its checksum left partial.
//!
//! Fields are little-endian: the TAP is set to that explicitly where the kernel allows, and it
//! is the default on little-endian machines.

pub use crate::engine::wire::offload::{RxOffload, TxOffload};

pub const VNET_HDR_LEN: usize = 10;

const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_UDP_L4: u8 = 5;
const GSO_TCPV6: u8 = 4;
const GSO_ECN: u8 = 0x80;

/// What the header of a frame from the guest says.
pub fn parse(header: &[u8; VNET_HDR_LEN]) -> RxOffload {
    let flags = header[0];
    let gso_type = header[1] & !GSO_ECN;
    let gso_size = u16::from_le_bytes([header[4], header[5]]);
    RxOffload {
        checksum_trusted: flags & (F_NEEDS_CSUM | F_DATA_VALID) != 0,
        udp_segment: (gso_type == GSO_UDP_L4 && gso_size > 0).then_some(gso_size),
    }
}

/// A frame whose header leaves a checksum to us beyond its outer transport header (a packet
/// the guest tunnels, VXLAN or GENEVE, whose inner TCP or UDP checksum its kernel left
/// partial): that checksum is completed here, since the engine passes such payloads on as
/// data and their receiver checks it. A partial checksum of the outer header is left as it
/// is: the engine terminates that protocol and never needs it.
pub fn complete_inner_checksum(header: &[u8; VNET_HDR_LEN], frame: &mut [u8]) {
    if header[0] & F_NEEDS_CSUM == 0 {
        return;
    }
    let start = usize::from(u16::from_le_bytes([header[6], header[7]]));
    let offset = usize::from(u16::from_le_bytes([header[8], header[9]]));
    if outer_transport_start(frame) == Some(start) || start + offset + 2 > frame.len() {
        return;
    }
    // The field holds the pseudo-header sum; the sum over everything from `start` on, that
    // field included, complemented, is the checksum.
    let sum = !smoltcp::wire::checksum::data(&frame[start..]);
    frame[start + offset..start + offset + 2].copy_from_slice(&sum.to_be_bytes());
}

/// Where the transport header of an Ethernet frame carrying IPv4 or IPv6 starts (IPv6
/// extension headers are not followed: such a frame is checked as tunnelled, which costs a
/// checksum only).
fn outer_transport_start(frame: &[u8]) -> Option<usize> {
    const ETHERNET: usize = 14;
    match frame.get(12..14)? {
        [0x08, 0x00] => Some(ETHERNET + usize::from(frame.get(ETHERNET)? & 0x0f) * 4),
        [0x86, 0xdd] => Some(ETHERNET + 40),
        _ => None,
    }
}

/// The header for a frame to the guest.
pub fn header(offload: &TxOffload) -> [u8; VNET_HDR_LEN] {
    let mut header = [0u8; VNET_HDR_LEN];
    if let Some((start, offset)) = offload.partial_checksum {
        header[0] = F_NEEDS_CSUM;
        header[6..8].copy_from_slice(&start.to_le_bytes());
        header[8..10].copy_from_slice(&offset.to_le_bytes());
    }
    header[1] = GSO_NONE;
    if let Some(gso) = offload.tcp_segments {
        header[1] = if gso.ipv6 { GSO_TCPV6 } else { GSO_TCPV4 };
        header[2..4].copy_from_slice(&gso.header_len.to_le_bytes());
        header[4..6].copy_from_slice(&gso.segment_size.to_le_bytes());
    }
    if let Some(gso) = offload.udp_segments {
        header[1] = GSO_UDP_L4;
        header[2..4].copy_from_slice(&gso.header_len.to_le_bytes());
        header[4..6].copy_from_slice(&gso.segment_size.to_le_bytes());
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::wire::offload::{TcpGso, UdpGso};

    #[test]
    fn rx_headers() {
        assert_eq!(parse(&[0; 10]), RxOffload::default());
        let partial_tso = [1, GSO_TCPV4 | GSO_ECN, 54, 0, 0xa8, 5, 34, 0, 16, 0];
        assert_eq!(
            parse(&partial_tso),
            RxOffload {
                checksum_trusted: true,
                udp_segment: None
            }
        );
        let uso = [1, GSO_UDP_L4, 42, 0, 0xc0, 5, 34, 0, 6, 0];
        assert_eq!(parse(&uso).udp_segment, Some(1472));
        assert!(parse(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0]).checksum_trusted);
    }

    /// A partial checksum inside a tunnelled packet is completed; the outer one is left.
    #[test]
    fn inner_checksums_are_completed() {
        // Ethernet, IPv4 (20 bytes), UDP (8), then an "inner" transport header at 42 whose
        // checksum field (at +16) holds a seed, and data.
        let mut frame = vec![0u8; 42 + 20 + 100];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        for (i, byte) in frame[62..].iter_mut().enumerate() {
            *byte = i as u8;
        }
        frame[42 + 16..42 + 18].copy_from_slice(&0x1234u16.to_be_bytes());
        let partial = |start: u16, offset: u16| {
            let mut header = [0u8; VNET_HDR_LEN];
            header[0] = F_NEEDS_CSUM;
            header[6..8].copy_from_slice(&start.to_le_bytes());
            header[8..10].copy_from_slice(&offset.to_le_bytes());
            header
        };
        let before = frame.clone();
        complete_inner_checksum(&partial(34, 6), &mut frame);
        assert_eq!(frame, before, "the outer UDP checksum is not ours to fill");
        complete_inner_checksum(&partial(42, 16), &mut frame);
        assert_ne!(frame, before);
        // Complete: the covered bytes and the pseudo-header (the seed) sum to all ones.
        let covered = smoltcp::wire::checksum::data(&frame[42..]);
        assert_eq!(smoltcp::wire::checksum::combine(&[covered, 0x1234]), 0xffff);
        // Out of the frame: nothing is touched.
        let mut short = before.clone();
        complete_inner_checksum(&partial(200, 16), &mut short);
        assert_eq!(short, before);
    }

    #[test]
    fn tx_header_layout() {
        let offload = TxOffload {
            partial_checksum: Some((34, 16)),
            tcp_segments: Some(TcpGso {
                segment_size: 1460,
                ipv6: false,
                header_len: 54,
            }),
            udp_segments: None,
        };
        assert_eq!(
            header(&offload),
            [1, GSO_TCPV4, 54, 0, 0xb4, 0x05, 34, 0, 16, 0]
        );
        assert_eq!(header(&TxOffload::default()), [0; 10]);
        let uso = TxOffload {
            partial_checksum: Some((34, 6)),
            udp_segments: Some(UdpGso {
                segment_size: 1400,
                header_len: 42,
            }),
            ..TxOffload::default()
        };
        assert_eq!(
            header(&uso),
            [1, GSO_UDP_L4, 42, 0, 0x78, 0x05, 34, 0, 6, 0]
        );
    }
}
