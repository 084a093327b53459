//! icmp - answers echo requests to the virtual hosts locally.
//!
//! The reply carries the request's identifier, sequence number and data unchanged, from the
//! address that was pinged. Echo to other destinations goes through the NAT (not handled here).

use super::{Drop, Engine, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetProtocol, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
};

/// TTL of packets the virtual hosts originate.
const HOP_LIMIT: u8 = 64;

pub(super) fn handle_ipv4(
    engine: &mut Engine,
    guest_mac: EthernetAddress,
    payload: &[u8],
    tx: &mut TxQueue,
) -> Result<(), Drop> {
    let checksums = ChecksumCapabilities::default();
    let packet = Ipv4Packet::new_checked(payload).map_err(|_| Drop::Malformed)?;
    if packet.more_frags() || packet.frag_offset() != 0 {
        return Err(Drop::Unsupported);
    }
    let ip = Ipv4Repr::parse(&packet, &checksums).map_err(|_| Drop::Malformed)?;
    if !engine.is_virtual_host(ip.dst_addr) {
        return Err(Drop::Unsupported);
    }
    if ip.next_header != IpProtocol::Icmp {
        return Err(Drop::Unsupported);
    }
    let icmp_packet = Icmpv4Packet::new_checked(packet.payload()).map_err(|_| Drop::Malformed)?;
    let icmp = Icmpv4Repr::parse(&icmp_packet, &checksums).map_err(|_| Drop::Malformed)?;
    let Icmpv4Repr::EchoRequest {
        ident,
        seq_no,
        data,
    } = icmp
    else {
        return Err(Drop::Unsupported);
    };
    let reply = Icmpv4Repr::EchoReply {
        ident,
        seq_no,
        data,
    };
    let reply_ip = Ipv4Repr {
        src_addr: ip.dst_addr,
        dst_addr: ip.src_addr,
        next_header: IpProtocol::Icmp,
        payload_len: reply.buffer_len(),
        hop_limit: HOP_LIMIT,
    };
    engine.emit_frame(
        tx,
        ip.dst_addr,
        guest_mac,
        EthernetProtocol::Ipv4,
        reply_ip.buffer_len() + reply.buffer_len(),
        |buf| {
            let mut ip_out = Ipv4Packet::new_unchecked(buf);
            reply_ip.emit(&mut ip_out, &checksums);
            reply.emit(
                &mut Icmpv4Packet::new_unchecked(ip_out.payload_mut()),
                &checksums,
            );
        },
    )?;
    engine.counters.icmp_echo_replies += 1;
    Ok(())
}
