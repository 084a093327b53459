//! arp - answers the guest's requests for the virtual hosts (gateway and DNS), and asks the
//! guest for its MAC when a port forward needs it.
//!
//! Every request or reply from an address of the virtual network teaches the engine that
//! address's MAC (the neighbour table, [`Cx::neighbor`]). Only requests for an address the
//! engine stands for get a reply; other requests are dropped and counted as not for us.

use crate::engine::{Core, Cx, DropReason, TxQueue};
use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetProtocol};

pub(in crate::engine) fn handle(
    core: &mut Core,
    payload: &[u8],
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    let packet = ArpPacket::new_checked(payload).map_err(|_| DropReason::Malformed)?;
    let repr = ArpRepr::parse(&packet).map_err(|_| DropReason::Unsupported)?;
    let ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = repr
    else {
        return Err(DropReason::Unsupported);
    };
    if !source_hardware_addr.is_unicast() {
        return Err(DropReason::Malformed);
    }
    if core.cx.cfg.net.contains(source_protocol_addr) {
        core.cx
            .learn_neighbor(source_protocol_addr.into(), source_hardware_addr);
    }
    if operation == ArpOperation::Reply && core.cx.cfg.net.contains(source_protocol_addr) {
        core.cx.counters.arp_replies_received += 1;
        return Ok(());
    }
    if operation != ArpOperation::Request || !core.stands_for(target_protocol_addr.into()) {
        return Err(DropReason::NotForUs);
    }
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: crate::engine::virtual_mac(target_protocol_addr),
        source_protocol_addr: target_protocol_addr,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    };
    core.cx.emit_frame(
        tx,
        target_protocol_addr,
        source_hardware_addr,
        EthernetProtocol::Arp,
        reply.buffer_len(),
        |buf| reply.emit(&mut ArpPacket::new_unchecked(buf)),
    )?;
    core.cx.counters.arp_replies += 1;
    Ok(())
}

/// Asks the guest, from the gateway, which MAC has `target`.
pub(in crate::engine) fn request(cx: &mut Cx, tx: &mut TxQueue, target: std::net::Ipv4Addr) {
    let gateway = cx.cfg.net.gateway();
    let request = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: crate::engine::virtual_mac(gateway),
        source_protocol_addr: gateway,
        target_hardware_addr: smoltcp::wire::EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let sent = cx.emit_frame(
        tx,
        gateway,
        smoltcp::wire::EthernetAddress::BROADCAST,
        EthernetProtocol::Arp,
        request.buffer_len(),
        |buf| request.emit(&mut ArpPacket::new_unchecked(buf)),
    );
    if let Err(reason) = sent {
        cx.counters.count_drop(reason);
    }
}
