//! arp - answers the guest's requests for the virtual hosts (gateway and DNS).
//!
//! Only requests for an address the engine stands for get a reply; everything else (requests
//! for other addresses, gratuitous ARP, replies) is dropped and counted as not for us.

use super::{Core, Drop, TxQueue};
use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetProtocol};

pub(super) fn handle(core: &mut Core, payload: &[u8], tx: &mut TxQueue) -> Result<(), Drop> {
    let packet = ArpPacket::new_checked(payload).map_err(|_| Drop::Malformed)?;
    let repr = ArpRepr::parse(&packet).map_err(|_| Drop::Unsupported)?;
    let ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = repr
    else {
        return Err(Drop::Unsupported);
    };
    if operation != ArpOperation::Request || !core.is_virtual_host(target_protocol_addr) {
        return Err(Drop::NotForUs);
    }
    if !source_hardware_addr.is_unicast() {
        return Err(Drop::Malformed);
    }
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: super::virtual_mac(target_protocol_addr),
        source_protocol_addr: target_protocol_addr,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    };
    core.emit_frame(
        tx,
        target_protocol_addr,
        source_hardware_addr,
        EthernetProtocol::Arp,
        reply.buffer_len(),
        |buf| reply.emit(&mut ArpPacket::new_unchecked(buf)),
    )?;
    core.counters.arp_replies += 1;
    Ok(())
}
