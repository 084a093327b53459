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
