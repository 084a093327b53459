//! dhcpv6 - stateless DHCPv6 (RFC 8415, 6.1) on the gateway: an Information-Request is answered
//! with the DNS relay's address and the host's search domains, for guests that take their DNS
//! settings from DHCPv6 rather than from router advertisements. Addresses come from SLAAC, so
//! nothing is leased; other messages are dropped and counted.

use crate::engine::{link::ndp, Core, DropReason, GuestPacket, TxQueue};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

const CLIENT_PORT: u16 = 546;
const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers.
const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

const REPLY: u8 = 7;
const INFORMATION_REQUEST: u8 = 11;

const OPTION_CLIENT_ID: u16 = 1;
const OPTION_SERVER_ID: u16 = 2;
const OPTION_DNS_SERVERS: u16 = 23;
const OPTION_DOMAIN_LIST: u16 = 24;
/// DUID-LL (RFC 8415, 11.4) of an Ethernet address.
const DUID_LL: u16 = 3;
const HARDWARE_ETHERNET: u16 = 1;
/// A client identifier longer than this is not a DUID (RFC 8415, 11.1: at most 130 bytes).
const MAX_DUID: usize = 130;

/// Whether `packet` is a UDP datagram for a DHCPv6 server we stand for.
pub(in crate::engine) fn is_dhcpv6(packet: &GuestPacket) -> bool {
    let IpAddr::V6(dst) = packet.dst else {
        return false;
    };
    packet.udp_dst_port() == Some(SERVER_PORT)
        && (dst == ALL_SERVERS || dst == ndp::ROUTER_LINK_LOCAL)
}

/// The options of a DHCPv6 message: (code, data) pairs; `None` if they run past the end.
fn options(mut bytes: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut found = Vec::new();
    while !bytes.is_empty() {
        let [c0, c1, l0, l1, ref rest @ ..] = *bytes else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let data = rest.get(..len)?;
        found.push((u16::from_be_bytes([c0, c1]), data));
        bytes = &rest[len..];
    }
    Some(found)
}

fn push_option(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
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
    let (repr, udp) = packet.parse_udp()?;
    let message = udp.payload();
    let [msg_type, t0, t1, t2, ref body @ ..] = *message else {
        return Err(DropReason::Malformed);
    };
    let options = options(body).ok_or(DropReason::Malformed)?;
    if msg_type != INFORMATION_REQUEST || repr.src_port != CLIENT_PORT {
        return Err(DropReason::Unsupported);
    }
    let prefix = core.cx.cfg.ipv6.ok_or(DropReason::Unsupported)?;

    let mut reply = Vec::with_capacity(128);
    reply.extend_from_slice(&[0; 8]); // UDP header, filled below
    reply.extend_from_slice(&[REPLY, t0, t1, t2]);
    if let Some((_, client_id)) = options.iter().find(|(code, _)| *code == OPTION_CLIENT_ID) {
        if client_id.len() > MAX_DUID {
            return Err(DropReason::Malformed);
        }
        push_option(&mut reply, OPTION_CLIENT_ID, client_id);
    }
    let mut server_id = Vec::with_capacity(10);
    server_id.extend_from_slice(&DUID_LL.to_be_bytes());
    server_id.extend_from_slice(&HARDWARE_ETHERNET.to_be_bytes());
    server_id.extend_from_slice(&core.cx.gateway_mac.0);
    push_option(&mut reply, OPTION_SERVER_ID, &server_id);
    if let Some(dns) = prefix.dns().filter(|_| core.cx.cfg.dns_enabled) {
        push_option(&mut reply, OPTION_DNS_SERVERS, &dns.octets());
        let domains = ndp::encode_domains(core.resolver.search_domains(now), 1024);
        if !domains.is_empty() {
            push_option(&mut reply, OPTION_DOMAIN_LIST, &domains);
        }
    }

    // The reply comes from the address the request went to, or the router's for multicast.
    let from = if dst == ALL_SERVERS {
        ndp::ROUTER_LINK_LOCAL
    } else {
        dst
    };
    core.cx.emit_udp(
        tx,
        packet.mac,
        SocketAddr::new(IpAddr::V6(from), SERVER_PORT),
        SocketAddr::new(IpAddr::V6(src), CLIENT_PORT),
        &mut reply,
    )?;
    core.cx.counters.dhcpv6_replies += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_split_and_checked() {
        let bytes = [0, 1, 0, 2, 0xaa, 0xbb, 0, 6, 0, 0];
        assert_eq!(
            options(&bytes),
            Some(vec![(1, &[0xaa, 0xbb][..]), (6, &[][..])])
        );
        assert_eq!(options(&[0, 1, 0, 3, 0xaa]), None);
        assert_eq!(options(&[0, 1, 0]), None);
        assert_eq!(options(&[]), Some(vec![]));
    }
}
