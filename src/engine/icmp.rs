//! icmp - the virtual hosts answer echo requests (ICMP and ICMPv6) themselves.
//!
//! The reply carries the request's identifier, sequence number and data unchanged, from the
//! address that was pinged. Echo to other destinations goes through [`super::echo`].

use super::{Core, Drop, GuestPacket, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpProtocol};
use std::net::IpAddr;

pub(super) fn answer_echo(
    core: &mut Core,
    request: &GuestPacket,
    tx: &mut TxQueue,
) -> Result<(), Drop> {
    let checksums = ChecksumCapabilities::default();
    let mut buf = std::mem::take(&mut core.scratch);
    // Replies are at most as long as requests, which fit a frame; scratch holds 64 KiB.
    let built = match (request.src, request.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            let packet = Icmpv4Packet::new_checked(request.payload).map_err(|_| Drop::Malformed);
            packet
                .and_then(|p| Icmpv4Repr::parse(&p, &checksums).map_err(|_| Drop::Malformed))
                .and_then(|icmp| match icmp {
                    Icmpv4Repr::EchoRequest {
                        ident,
                        seq_no,
                        data,
                    } => {
                        let reply = Icmpv4Repr::EchoReply {
                            ident,
                            seq_no,
                            data,
                        };
                        let len = reply.buffer_len();
                        let out = buf.get_mut(..len).ok_or(Drop::Malformed)?;
                        reply.emit(&mut Icmpv4Packet::new_unchecked(out), &checksums);
                        Ok((len, IpProtocol::Icmp))
                    }
                    _ => Err(Drop::Unsupported),
                })
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let packet = Icmpv6Packet::new_checked(request.payload).map_err(|_| Drop::Malformed);
            packet
                .and_then(|p| {
                    Icmpv6Repr::parse(&src, &dst, &p, &checksums).map_err(|_| Drop::Malformed)
                })
                .and_then(|icmp| match icmp {
                    Icmpv6Repr::EchoRequest {
                        ident,
                        seq_no,
                        data,
                    } => {
                        let reply = Icmpv6Repr::EchoReply {
                            ident,
                            seq_no,
                            data,
                        };
                        let len = reply.buffer_len();
                        let out = buf.get_mut(..len).ok_or(Drop::Malformed)?;
                        reply.emit(
                            &dst,
                            &src,
                            &mut Icmpv6Packet::new_unchecked(out),
                            &checksums,
                        );
                        Ok((len, IpProtocol::Icmpv6))
                    }
                    // Neighbour discovery for a virtual host goes to ndp before this.
                    _ => Err(Drop::Unsupported),
                })
        }
        _ => Err(Drop::Malformed),
    };
    let sent = built.and_then(|(len, protocol)| {
        core.emit_ip(
            tx,
            request.mac,
            request.dst,
            request.src,
            protocol,
            &buf[..len],
        )
    });
    core.scratch = buf;
    sent?;
    core.counters.icmp_echo_replies += 1;
    Ok(())
}
