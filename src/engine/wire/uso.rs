//! UDP super-datagrams for the guest (USO): datagrams of one flow, all of one size but the
//! last, carried in one frame that the guest's kernel splits back into them. One TAP write
//! then stands for up to a frame's worth of datagrams, as TCP's super-packets do for segments.

use crate::engine::wire::frames::{ip_header_len, ETHERNET_HEADER, HOP_LIMIT, UDP_HEADER};
use crate::engine::wire::offload::{TxOffload, UdpGso};
use crate::engine::{Cx, DropReason, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    checksum, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress,
    IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
};
use std::net::{IpAddr, SocketAddr};

/// Where the checksum is in a UDP header.
const CHECKSUM_OFFSET: u16 = 6;
/// The most payload one super-datagram carries: what an IPv4 packet leaves after its headers
/// (IPv6 leaves a little more; one figure keeps it simple).
pub const USO_MAX_PAYLOAD: usize = 65535 - 20 - UDP_HEADER;
/// The most datagrams one super-datagram stands for (the kernel's UDP_MAX_SEGMENTS is larger
/// on recent kernels, 64 on older ones).
pub const USO_MAX_SEGMENTS: usize = 64;

impl Cx {
    /// Whether datagrams of `size` bytes from or to `addr` may go to the guest in a
    /// super-datagram: the TAP takes them, and each fits the MTU whole.
    pub(crate) fn may_segment_udp(&self, addr: IpAddr, size: usize) -> bool {
        self.cfg.tap_uso && size > 0 && ip_header_len(addr) + UDP_HEADER + size <= self.mtu()
    }

    /// Queues `datagrams` (payloads: all `segment_size` bytes long but the last, which is at
    /// most that; together at most [`USO_MAX_PAYLOAD`]) from `from` to the guest's `to` as one
    /// super-datagram. The UDP checksum is left partial, for the guest's kernel to complete in
    /// each datagram it splits off.
    pub(crate) fn emit_udp_segments(
        &mut self,
        tx: &mut TxQueue,
        guest_mac: EthernetAddress,
        from: SocketAddr,
        to: SocketAddr,
        datagrams: &[&[u8]],
        segment_size: usize,
    ) -> Result<(), DropReason> {
        let payload: usize = datagrams.iter().map(|d| d.len()).sum();
        if payload > USO_MAX_PAYLOAD || datagrams.len() > USO_MAX_SEGMENTS {
            return Err(DropReason::Unsupported);
        }
        let ip_header = ip_header_len(from.ip());
        let headers = ETHERNET_HEADER + ip_header + UDP_HEADER;
        let udp_len = UDP_HEADER + payload;
        let (ethertype, src, dst): (_, IpAddress, IpAddress) = match (from.ip(), to.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (EthernetProtocol::Ipv4, s.into(), d.into()),
            (IpAddr::V6(s), IpAddr::V6(d)) => (EthernetProtocol::Ipv6, s.into(), d.into()),
            _ => return Err(DropReason::Unsupported),
        };
        let eth = EthernetRepr {
            src_addr: self.source_mac(from.ip()),
            dst_addr: guest_mac,
            ethertype,
        };
        let buf = tx.push(headers + payload).ok_or(DropReason::TxQueueFull)?;
        let mut frame = EthernetFrame::new_unchecked(&mut *buf);
        eth.emit(&mut frame);
        let ip = frame.payload_mut();
        match (src, dst) {
            (IpAddress::Ipv4(src_addr), IpAddress::Ipv4(dst_addr)) => Ipv4Repr {
                src_addr,
                dst_addr,
                next_header: IpProtocol::Udp,
                payload_len: udp_len,
                hop_limit: HOP_LIMIT,
            }
            .emit(
                &mut Ipv4Packet::new_unchecked(&mut *ip),
                &ChecksumCapabilities::default(),
            ),
            (IpAddress::Ipv6(src_addr), IpAddress::Ipv6(dst_addr)) => Ipv6Repr {
                src_addr,
                dst_addr,
                next_header: IpProtocol::Udp,
                payload_len: udp_len,
                hop_limit: HOP_LIMIT,
            }
            .emit(&mut Ipv6Packet::new_unchecked(&mut *ip)),
            _ => unreachable!("families matched above"),
        }
        let udp = &mut ip[ip_header..];
        udp[0..2].copy_from_slice(&from.port().to_be_bytes());
        udp[2..4].copy_from_slice(&to.port().to_be_bytes());
        udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        // The pseudo-header sum over the whole length, uncomplemented: the guest's kernel
        // adjusts it to each datagram's length and completes it.
        let pseudo = checksum::pseudo_header(&src, &dst, IpProtocol::Udp, udp_len as u32);
        udp[6..8].copy_from_slice(&pseudo.to_be_bytes());
        let mut at = UDP_HEADER;
        for datagram in datagrams {
            udp[at..at + datagram.len()].copy_from_slice(datagram);
            at += datagram.len();
        }
        tx.set_last_offload(TxOffload {
            partial_checksum: Some(((ETHERNET_HEADER + ip_header) as u16, CHECKSUM_OFFSET)),
            udp_segments: Some(UdpGso {
                segment_size: segment_size as u16,
                header_len: headers as u16,
            }),
            ..TxOffload::default()
        });
        self.counters.frames_out += 1;
        self.counters.bytes_out += (headers + payload) as u64;
        self.counters.super_packets_out += 1;
        Ok(())
    }
}

/// How many of the datagrams of `lens` (from the front) go to the guest as one super-datagram
/// from or to `addr`; 1 when it would stand for one datagram only, or the TAP takes none.
pub(crate) fn uso_run(cx: &Cx, addr: std::net::IpAddr, lens: &[usize]) -> usize {
    if lens.len() < 2 || !cx.may_segment_udp(addr, lens[0]) {
        return 1;
    }
    same_size_run(lens.iter().copied(), USO_MAX_PAYLOAD)
}

/// How many datagrams of `lens` (from the front) one segmented send may carry: those of the
/// first one's size, then at most one shorter, within `max_payload` bytes and
/// [`USO_MAX_SEGMENTS`] datagrams (at least the first).
pub(crate) fn same_size_run(lens: impl IntoIterator<Item = usize>, max_payload: usize) -> usize {
    let mut lens = lens.into_iter();
    let Some(size) = lens.next() else {
        return 0;
    };
    let mut run = 1;
    let mut total = size;
    for len in lens {
        if size == 0
            || len == 0
            || len > size
            || total + len > max_payload
            || run == USO_MAX_SEGMENTS
        {
            break;
        }
        run += 1;
        total += len;
        if len < size {
            break;
        }
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_one_size_then_at_most_one_shorter() {
        assert_eq!(same_size_run([], 1000), 0);
        assert_eq!(same_size_run([100], 1000), 1);
        assert_eq!(same_size_run([100, 100, 100, 40, 100], 1000), 4);
        assert_eq!(same_size_run([100, 200], 1000), 1, "a longer one ends it");
        assert_eq!(
            same_size_run([100, 100, 0], 1000),
            2,
            "an empty one ends it"
        );
        assert_eq!(same_size_run([0, 0], 1000), 1);
        assert_eq!(
            same_size_run([400, 400, 400], 1000),
            2,
            "within the payload limit"
        );
        assert_eq!(same_size_run([1; 100], 1000), USO_MAX_SEGMENTS);
    }
}
