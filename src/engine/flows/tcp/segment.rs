//! Building TCP segments for the guest.
//!
//! Control segments (SYN-ACK, ACK, FIN, RST) are built whole. Data segments are built in place:
//! room for the headers is left at the front of a transmit slot, the payload is peeked from the
//! host socket straight into the rest, and the headers and checksum are written around it — the
//! data is copied once, kernel to frame.

use crate::engine::wire::frames::{ip_header_len, ETHERNET_HEADER, HOP_LIMIT};
use crate::engine::wire::offload::{TcpGso, TxOffload};
use crate::engine::{Cx, DropReason, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    checksum, EthernetAddress, EthernetProtocol, IpAddress, IpProtocol, IpRepr, TcpControl,
    TcpPacket, TcpRepr, TcpSeqNumber,
};
use std::io;
use std::net::{IpAddr, SocketAddr};

pub const TCP_HEADER: usize = 20;
/// Where the checksum is in a TCP header.
const CHECKSUM_OFFSET: u16 = 16;
/// The largest TCP payload one super-packet carries: an IPv4 packet's 65535 bytes less its
/// headers (IPv6's payload length leaves the same room after the TCP header, and a little
/// more, but one figure for both keeps it simple).
pub const GSO_MAX_PAYLOAD: usize = 65535 - 20 - TCP_HEADER;

/// Ethernet, IP and TCP headers in front of a data segment's payload.
fn data_headers(addr: IpAddr) -> usize {
    ETHERNET_HEADER + ip_header_len(addr) + TCP_HEADER
}

fn ethertype(addr: IpAddr) -> EthernetProtocol {
    match addr {
        IpAddr::V4(_) => EthernetProtocol::Ipv4,
        IpAddr::V6(_) => EthernetProtocol::Ipv6,
    }
}

/// The addresses and sequence state a segment to the guest carries.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    /// The guest interface's MAC.
    pub mac: EthernetAddress,
    /// The remote end as the guest sees it: the segment's source.
    pub from: SocketAddr,
    /// The guest end: the segment's destination.
    pub to: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    /// SACK blocks for a control segment: guest data held beyond `ack` (data segments carry
    /// none).
    pub sack: [Option<(u32, u32)>; 3],
}

/// Options of a SYN or SYN-ACK.
#[derive(Debug, Clone, Copy)]
pub struct SynOptions {
    pub mss: u16,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
}

fn ip(seg: &Segment, tcp_len: usize) -> IpRepr {
    IpRepr::new(
        seg.from.ip().into(),
        seg.to.ip().into(),
        IpProtocol::Tcp,
        tcp_len,
        HOP_LIMIT,
    )
}

/// Queues a segment without data: `control` says SYN, FIN or RST (or none: a bare ACK).
/// `ack` is left out only for a RST answering a segment that had none.
pub fn emit_control(
    cx: &mut Cx,
    tx: &mut TxQueue,
    seg: &Segment,
    control: TcpControl,
    with_ack: bool,
    syn: Option<SynOptions>,
) -> Result<(), DropReason> {
    let repr = TcpRepr {
        src_port: seg.from.port(),
        dst_port: seg.to.port(),
        control,
        seq_number: TcpSeqNumber(seg.seq as i32),
        ack_number: with_ack.then_some(TcpSeqNumber(seg.ack as i32)),
        window_len: seg.window,
        window_scale: syn.and_then(|s| s.window_scale),
        max_seg_size: syn.map(|s| s.mss),
        sack_permitted: syn.is_some_and(|s| s.sack_permitted),
        sack_ranges: seg.sack,
        timestamp: None,
        payload: &[],
    };
    let ip = ip(seg, repr.buffer_len());
    let checksums = ChecksumCapabilities::default();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    cx.emit_frame(
        tx,
        seg.from.ip(),
        seg.mac,
        ethertype(seg.from.ip()),
        ip.header_len() + repr.buffer_len(),
        |buf| {
            ip.emit(&mut *buf, &checksums);
            repr.emit(
                &mut TcpPacket::new_unchecked(&mut buf[ip.header_len()..]),
                &src,
                &dst,
                &checksums,
            );
        },
    )
}

/// Queues a data segment of up to `max_payload` bytes that `read` fills (peeking from the host
/// socket). Returns how many bytes went in; `Ok(0)` (nothing queued) is what `read` returned
/// at end of stream.
///
/// With `offload_mss` (the TAP takes offloads), the checksum is left partial for the guest's
/// kernel, and a payload longer than that MSS goes as one TCP super-packet that the guest takes
/// whole (or would segment at that size).
pub fn emit_data(
    cx: &mut Cx,
    tx: &mut TxQueue,
    seg: &Segment,
    max_payload: usize,
    offload_mss: Option<u16>,
    read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
) -> Result<io::Result<usize>, DropReason> {
    let gateway_mac = cx.gateway_mac;
    let headers = data_headers(seg.from.ip());
    let buf = tx
        .push(headers + max_payload)
        .ok_or(DropReason::TxQueueFull)?;
    let n = match read(&mut buf[headers..]) {
        Ok(n) if n > 0 => n.min(max_payload),
        other => {
            tx.pop_last();
            return Ok(other);
        }
    };
    tx.truncate_last(headers + n);
    let Some(frame) = tx.last_mut() else {
        return Err(DropReason::TxQueueFull);
    };
    frame[0..6].copy_from_slice(&seg.mac.0);
    frame[6..12].copy_from_slice(&gateway_mac.0);
    frame[12..14].copy_from_slice(&u16::from(ethertype(seg.from.ip())).to_be_bytes());
    let ip = ip(seg, TCP_HEADER + n);
    let ip_buf = &mut frame[ETHERNET_HEADER..];
    ip.emit(&mut *ip_buf, &ChecksumCapabilities::default());
    let (src, dst): (IpAddress, IpAddress) = (ip.src_addr(), ip.dst_addr());
    let mut tcp = TcpPacket::new_unchecked(&mut ip_buf[ip.header_len()..]);
    tcp.set_src_port(seg.from.port());
    tcp.set_dst_port(seg.to.port());
    tcp.set_seq_number(TcpSeqNumber(seg.seq as i32));
    tcp.set_ack_number(TcpSeqNumber(seg.ack as i32));
    tcp.set_header_len(TCP_HEADER as u8);
    tcp.clear_flags();
    tcp.set_ack(true);
    tcp.set_psh(true);
    tcp.set_window_len(seg.window);
    tcp.set_urgent_at(0);
    match offload_mss {
        Some(mss) => {
            // The pseudo-header sum, uncomplemented: what "hardware" completes.
            let tcp_len = (TCP_HEADER + n) as u32;
            tcp.set_checksum(checksum::pseudo_header(
                &src,
                &dst,
                IpProtocol::Tcp,
                tcp_len,
            ));
            let transport_start = (ETHERNET_HEADER + ip.header_len()) as u16;
            cx.counters.super_packets_out += u64::from(n > usize::from(mss));
            tx.set_last_offload(TxOffload {
                partial_checksum: Some((transport_start, CHECKSUM_OFFSET)),
                tcp_segments: (n > usize::from(mss)).then_some(TcpGso {
                    segment_size: mss,
                    ipv6: seg.from.is_ipv6(),
                    header_len: headers as u16,
                }),
                udp_segments: None,
            });
        }
        None => tcp.fill_checksum(&src, &dst),
    }
    cx.counters.frames_out += 1;
    cx.counters.bytes_out += (headers + n) as u64;
    cx.counters.tcp_bytes_to_guest += n as u64;
    Ok(Ok(n))
}

impl Cx {
    /// The TCP payload that fits a packet of the MTU to or from `addr`'s family.
    pub fn mtu_mss(&self, addr: IpAddr) -> usize {
        let headers = ip_header_len(addr) + TCP_HEADER;
        self.mtu()
            .saturating_sub(headers)
            .clamp(64, u16::MAX as usize)
    }
}
