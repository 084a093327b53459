//! ndp - IPv6 neighbour discovery for the virtual hosts (RFC 4861): neighbour advertisements
//! for the gateway (prefix::2 and its link-local fe80::2) and the DNS relay (prefix::3), and
//! router advertisements from fe80::2 that let the guest configure itself by SLAAC.
//!
//! Router advertisements carry the prefix (on-link, autonomous), the MTU, our MAC and, with DNS
//! on, the relay's address (RDNSS, RFC 8106) and the host's search domains (DNSSL). They go to
//! a guest that solicits one, and unsolicited to all nodes: a few at start (the guest's link may
//! come up after us), then every few minutes, well within their lifetime.
//!
//! Every solicitation and advertisement from the guest teaches the engine its MAC, as ARP does
//! for IPv4; a port forward to a guest address whose MAC is unknown asks by [`solicit`].

use crate::engine::{Core, Cx, DropReason, GuestPacket, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetProtocol, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr,
    NdiscNeighborFlags, NdiscRepr, RawHardwareAddress,
};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The router's (gateway's) link-local address: the source of router advertisements.
pub const ROUTER_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Neighbour discovery messages must arrive with the largest hop limit, proof they were not
/// routed; receivers drop any other.
const NDP_HOP_LIMIT: u8 = 255;

const ROUTER_SOLICIT: u8 = 133;
const ROUTER_ADVERT: u8 = 134;
const REDIRECT: u8 = 137;

/// Unsolicited advertisements: a few quickly at start, then this often.
const INITIAL_ADVERTS: u32 = 3;
const INITIAL_INTERVAL: Duration = Duration::from_secs(2);
const ADVERT_INTERVAL: Duration = Duration::from_secs(200);
/// How long the guest keeps us as its default router, and the prefix, without hearing again.
const ROUTER_LIFETIME_SECS: u16 = 1800;
const PREFIX_VALID_SECS: u32 = 86400;
const PREFIX_PREFERRED_SECS: u32 = 14400;
/// How long the DNS options hold (RFC 8106 asks for at least 3 × the advert interval).
const DNS_LIFETIME_SECS: u32 = 3 * ADVERT_INTERVAL.as_secs() as u32;

/// Whether `packet` is a neighbour discovery message (ICMPv6 types 133 to 137).
pub(in crate::engine) fn is_ndp(packet: &GuestPacket) -> bool {
    packet
        .payload
        .first()
        .is_some_and(|t| (ROUTER_SOLICIT..=REDIRECT).contains(t))
}

fn ethernet_of(raw: Option<RawHardwareAddress>) -> Option<EthernetAddress> {
    let raw = raw?;
    let mac = (raw.len() == 6).then(|| EthernetAddress::from_bytes(raw.as_bytes()))?;
    mac.is_unicast().then_some(mac)
}

/// The multicast MAC an IPv6 multicast address maps to (RFC 2464, 7).
fn multicast_mac(addr: Ipv6Addr) -> EthernetAddress {
    let o = addr.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

pub(in crate::engine) fn handle(
    core: &mut Core,
    now: Instant,
    packet: &GuestPacket,
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (packet.src, packet.dst) else {
        return Err(DropReason::Malformed);
    };
    let icmp = Icmpv6Packet::new_checked(packet.payload).map_err(|_| DropReason::Malformed)?;
    let repr = Icmpv6Repr::parse(&src, &dst, &icmp, &ChecksumCapabilities::default())
        .map_err(|_| DropReason::Malformed)?;
    let Icmpv6Repr::Ndisc(ndisc) = repr else {
        return Err(DropReason::Malformed);
    };
    let learnable = !src.is_unspecified();
    match ndisc {
        NdiscRepr::RouterSolicit { .. } if !core.cx.cfg.served.router_adverts => {
            Err(DropReason::Unsupported)
        }
        NdiscRepr::RouterSolicit { lladdr } => {
            let mac = ethernet_of(lladdr).unwrap_or(packet.mac);
            if learnable {
                core.cx.learn_neighbor(IpAddr::V6(src), mac);
            }
            // A solicitation from the unspecified address is answered to all nodes.
            let to = if learnable { src } else { ALL_NODES };
            let to_mac = if learnable {
                mac
            } else {
                multicast_mac(ALL_NODES)
            };
            router_advert(core, now, tx, to, to_mac)?;
            schedule_next(core, now);
            Ok(())
        }
        NdiscRepr::NeighborSolicit {
            target_addr,
            lladdr,
        } => {
            if !learnable {
                // Duplicate address detection by the guest: none of ours are its to take.
                return Err(DropReason::NotForUs);
            }
            let mac = ethernet_of(lladdr).unwrap_or(packet.mac);
            core.cx.learn_neighbor(IpAddr::V6(src), mac);
            let target = IpAddr::V6(target_addr);
            if !core.stands_for(target) {
                return Err(DropReason::NotForUs);
            }
            let mut flags = NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE;
            if core.cx.is_gateway(target) {
                flags |= NdiscNeighborFlags::ROUTER;
            }
            let target_mac = core.cx.source_mac(target);
            let advert = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr: Some(target_mac.into()),
            });
            emit_icmpv6(&mut core.cx, tx, target_addr, src, mac, &advert)?;
            core.cx.counters.ndp_adverts += 1;
            Ok(())
        }
        NdiscRepr::NeighborAdvert {
            target_addr,
            lladdr,
            ..
        } => {
            let target = IpAddr::V6(target_addr);
            let mac = ethernet_of(lladdr).unwrap_or(packet.mac);
            if core.cx.in_guest_network(target) || target_addr.is_unicast_link_local() {
                core.cx.learn_neighbor(target, mac);
            }
            Ok(())
        }
        // Another router on the guest's link, or a redirect: not ours to act on.
        NdiscRepr::RouterAdvert { .. } | NdiscRepr::Redirect { .. } => Err(DropReason::NotForUs),
    }
}

/// Queues an ICMPv6 message with the neighbour discovery hop limit.
fn emit_icmpv6(
    cx: &mut Cx,
    tx: &mut TxQueue,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    dst_mac: EthernetAddress,
    icmp: &Icmpv6Repr,
) -> Result<(), DropReason> {
    let len = icmp.buffer_len();
    emit_raw_icmpv6(cx, tx, src, dst, dst_mac, len, |buf| {
        icmp.emit(
            &src,
            &dst,
            &mut Icmpv6Packet::new_unchecked(buf),
            &ChecksumCapabilities::default(),
        )
    })
}

fn emit_raw_icmpv6(
    cx: &mut Cx,
    tx: &mut TxQueue,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    dst_mac: EthernetAddress,
    len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Result<(), DropReason> {
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: len,
        hop_limit: NDP_HOP_LIMIT,
    };
    cx.emit_frame(
        tx,
        src,
        dst_mac,
        EthernetProtocol::Ipv6,
        ip.buffer_len() + len,
        |buf| {
            let mut packet = Ipv6Packet::new_unchecked(buf);
            ip.emit(&mut packet);
            fill(packet.payload_mut());
        },
    )
}

/// Asks the guest, from the router, which MAC has `target`.
pub(in crate::engine) fn solicit(cx: &mut Cx, tx: &mut TxQueue, target: Ipv6Addr) {
    let o = target.octets();
    // The solicited-node multicast group of the target (RFC 4291, 2.7.1).
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    );
    let gateway_mac = cx.gateway_mac;
    let solicitation = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: target,
        lladdr: Some(gateway_mac.into()),
    });
    let sent = emit_icmpv6(
        cx,
        tx,
        ROUTER_LINK_LOCAL,
        group,
        multicast_mac(group),
        &solicitation,
    );
    if let Err(reason) = sent {
        cx.counters.count_drop(reason);
    }
}

/// Sends the periodic unsolicited advertisement to all nodes and schedules the next.
pub(in crate::engine) fn advertise_unsolicited(core: &mut Core, now: Instant, tx: &mut TxQueue) {
    if let Err(reason) = router_advert(core, now, tx, ALL_NODES, multicast_mac(ALL_NODES)) {
        core.cx.counters.count_drop(reason);
    }
    core.router_adverts_sent = core.router_adverts_sent.saturating_add(1);
    schedule_next(core, now);
}

fn schedule_next(core: &mut Core, now: Instant) {
    if !core.cx.cfg.router_adverts {
        return;
    }
    let interval = if core.router_adverts_sent < INITIAL_ADVERTS {
        INITIAL_INTERVAL
    } else {
        ADVERT_INTERVAL
    };
    let next = now + interval;
    // A solicited advert does not delay the initial burst.
    core.next_router_advert = Some(match core.next_router_advert {
        Some(at) if at > now => at.min(next),
        _ => next,
    });
}

/// Appends a domain name in DNS wire format (RFC 1035, 3.1); false if it is not a valid name.
fn push_domain(out: &mut Vec<u8>, domain: &str) -> bool {
    let start = out.len();
    for label in domain.split('.') {
        if label.is_empty() || label.len() > 63 {
            out.truncate(start);
            return false;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    true
}

/// The search domains in DNS wire format, for the DNSSL and DHCPv6 domain list options.
pub(in crate::engine) fn encode_domains(domains: &[String], max_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for domain in domains {
        let before = out.len();
        if push_domain(&mut out, domain) && out.len() > max_len {
            out.truncate(before);
            break;
        }
    }
    out
}

/// Builds the router advertisement (ICMPv6 message, options included) into `out`.
fn build_router_advert(core: &mut Core, now: Instant, out: &mut Vec<u8>) {
    let Some(prefix) = core.cx.cfg.ipv6 else {
        return;
    };
    out.clear();
    // Header (RFC 4861, 4.2): type, code, checksum (filled later), hop limit, flags: "other
    // configuration" (DNS from DHCPv6), router lifetime, reachable time, retransmit timer.
    out.extend_from_slice(&[ROUTER_ADVERT, 0, 0, 0, 64, 0x40]);
    // With the guest's address given (pasta's network), its default route is set too: as a
    // second default router (from fe80::2) we would only stand beside it.
    let lifetime = if prefix.guest().is_some() {
        0
    } else {
        ROUTER_LIFETIME_SECS
    };
    out.extend_from_slice(&lifetime.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    // Source link-layer address.
    out.extend_from_slice(&[1, 1]);
    out.extend_from_slice(&core.cx.gateway_mac.0);
    // MTU.
    out.extend_from_slice(&[5, 1, 0, 0]);
    out.extend_from_slice(&core.cx.cfg.mtu.to_be_bytes());
    // Prefix information: on-link, and autonomous unless the guest's address is given (pasta's
    // network: a second address from SLAAC could become the source of its connections).
    let autonomous = if prefix.guest().is_some() { 0 } else { 0x40 };
    out.extend_from_slice(&[3, 4, prefix.prefix_len(), 0x80 | autonomous]);
    out.extend_from_slice(&PREFIX_VALID_SECS.to_be_bytes());
    out.extend_from_slice(&PREFIX_PREFERRED_SECS.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&prefix.prefix().octets());
    if let Some(dns) = prefix.dns().filter(|_| core.cx.cfg.dns_enabled) {
        // Recursive DNS server: one address.
        out.extend_from_slice(&[25, 3, 0, 0]);
        out.extend_from_slice(&DNS_LIFETIME_SECS.to_be_bytes());
        out.extend_from_slice(&dns.octets());
        // DNS search list, padded to a multiple of 8 bytes; an option's length is counted in
        // 8-byte units in one byte, so it holds at most 2040 bytes.
        let domains = encode_domains(core.resolver.search_domains(now), 2024);
        if !domains.is_empty() {
            let len = (8 + domains.len()).div_ceil(8) * 8;
            out.extend_from_slice(&[31, (len / 8) as u8, 0, 0]);
            out.extend_from_slice(&DNS_LIFETIME_SECS.to_be_bytes());
            out.extend_from_slice(&domains);
            out.resize(out.len() + len - 8 - domains.len(), 0);
        }
    }
}

fn router_advert(
    core: &mut Core,
    now: Instant,
    tx: &mut TxQueue,
    to: Ipv6Addr,
    to_mac: EthernetAddress,
) -> Result<(), DropReason> {
    let mut message = Vec::with_capacity(128);
    build_router_advert(core, now, &mut message);
    if message.is_empty() {
        return Err(DropReason::Unsupported);
    }
    emit_raw_icmpv6(
        &mut core.cx,
        tx,
        ROUTER_LINK_LOCAL,
        to,
        to_mac,
        message.len(),
        |buf| {
            buf.copy_from_slice(&message);
            Icmpv6Packet::new_unchecked(buf).fill_checksum(&ROUTER_LINK_LOCAL, &to);
        },
    )?;
    core.cx.counters.ndp_adverts += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_in_wire_format() {
        let domains = vec!["example.org".to_owned(), "bad..name".into(), "a.b".into()];
        assert_eq!(
            encode_domains(&domains, 100),
            b"\x07example\x03org\x00\x01a\x01b\x00".to_vec()
        );
        assert_eq!(
            encode_domains(&domains, 13),
            b"\x07example\x03org\x00".to_vec()
        );
    }

    #[test]
    fn solicited_node_multicast_mac() {
        let group: Ipv6Addr = "ff02::1:ff12:3456".parse().unwrap();
        assert_eq!(
            multicast_mac(group),
            EthernetAddress([0x33, 0x33, 0xff, 0x12, 0x34, 0x56])
        );
    }
}
