//! icmp - the virtual hosts answer echo requests (ICMP and ICMPv6) themselves.
//!
//! The reply carries the request's identifier, sequence number and data unchanged, from the
//! address that was pinged. Echo to other destinations goes through [`crate::engine::flows::echo`], which
//! reads requests with [`parse_echo_request`] too.

use crate::engine::{Core, DropReason, GuestPacket, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpProtocol};
use std::net::IpAddr;

/// An echo request from the guest, of either ICMP version.
pub(in crate::engine) struct EchoRequest<'a> {
    pub ident: u16,
    pub seq_no: u16,
    pub data: &'a [u8],
}

/// The guest's echo request, checked; any other ICMP message is not ours to handle.
pub(in crate::engine) fn parse_echo_request<'a>(
    guest: &GuestPacket<'a>,
) -> Result<EchoRequest<'a>, DropReason> {
    let checksums = ChecksumCapabilities::default();
    let payload: &'a [u8] = guest.payload;
    match (guest.src, guest.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            let packet = Icmpv4Packet::new_checked(payload).map_err(|_| DropReason::Malformed)?;
            match Icmpv4Repr::parse(&packet, &checksums).map_err(|_| DropReason::Malformed)? {
                Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                } => Ok(EchoRequest {
                    ident,
                    seq_no,
                    data,
                }),
                _ => Err(DropReason::Unsupported),
            }
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let packet = Icmpv6Packet::new_checked(payload).map_err(|_| DropReason::Malformed)?;
            // Neighbour discovery for a virtual host goes to ndp before this.
            match Icmpv6Repr::parse(&src, &dst, &packet, &checksums)
                .map_err(|_| DropReason::Malformed)?
            {
                Icmpv6Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                } => Ok(EchoRequest {
                    ident,
                    seq_no,
                    data,
                }),
                _ => Err(DropReason::Unsupported),
            }
        }
        _ => Err(DropReason::Malformed),
    }
}

pub(in crate::engine) fn answer_echo(
    core: &mut Core,
    request: &GuestPacket,
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    let EchoRequest {
        ident,
        seq_no,
        data,
    } = parse_echo_request(request)?;
    let checksums = ChecksumCapabilities::default();
    // Replies are as long as requests, which fit a frame; scratch holds 64 KiB.
    let mut buf = std::mem::take(&mut core.scratch);
    let built = match (request.dst, request.src) {
        (IpAddr::V6(from), IpAddr::V6(to)) => {
            let reply = Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            };
            let len = reply.buffer_len();
            buf.get_mut(..len).map(|out| {
                reply.emit(
                    &from,
                    &to,
                    &mut Icmpv6Packet::new_unchecked(out),
                    &checksums,
                );
                (len, IpProtocol::Icmpv6)
            })
        }
        _ => {
            let reply = Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            };
            let len = reply.buffer_len();
            buf.get_mut(..len).map(|out| {
                reply.emit(&mut Icmpv4Packet::new_unchecked(out), &checksums);
                (len, IpProtocol::Icmp)
            })
        }
    };
    let sent = built
        .ok_or(DropReason::Malformed)
        .and_then(|(len, protocol)| {
            core.cx.emit_ip(
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
    core.cx.counters.icmp_echo_replies += 1;
    Ok(())
}
