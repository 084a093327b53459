//! icmp - the virtual hosts answer echo requests themselves.
//!
//! The reply carries the request's identifier, sequence number and data unchanged, from the
//! address that was pinged. Echo to other destinations goes through [`super::echo`].

use super::{Core, Drop, GuestPacket, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpProtocol};

pub(super) fn answer_echo(
    core: &mut Core,
    request: &GuestPacket,
    tx: &mut TxQueue,
) -> Result<(), Drop> {
    let checksums = ChecksumCapabilities::default();
    let ip = &request.ip;
    let packet = Icmpv4Packet::new_checked(request.payload).map_err(|_| Drop::Malformed)?;
    let icmp = Icmpv4Repr::parse(&packet, &checksums).map_err(|_| Drop::Malformed)?;
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
    let len = reply.buffer_len();
    let mut buf = std::mem::take(&mut core.scratch);
    if buf.len() < len {
        buf.resize(len, 0);
    }
    reply.emit(
        &mut Icmpv4Packet::new_unchecked(&mut buf[..len]),
        &checksums,
    );
    let sent = core.emit_ipv4(
        tx,
        request.mac,
        ip.dst_addr,
        ip.src_addr,
        IpProtocol::Icmp,
        &buf[..len],
    );
    core.scratch = buf;
    sent?;
    core.counters.icmp_echo_replies += 1;
    Ok(())
}
