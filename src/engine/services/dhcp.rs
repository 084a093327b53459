//! dhcp - a DHCPv4 server on the gateway (RFC 2131), for guests that configure themselves:
//! emulators, and namespaces without `--configure`. Sixteen addresses, network+15 to
//! network+30, are leased by MAC address; the options are the subnet mask, the router (the
//! gateway), the DNS relay, the search domains, the MTU, the lease time and, if set, a host
//! name. DECLINE takes an address out of use for a while, RELEASE frees it, INFORM is
//! answered with the options alone. `--disable-dhcp` turns the server off.

use crate::engine::{Core, Cx, DropReason, GuestPacket, TxQueue};
use smoltcp::wire::{DhcpMessageType, DhcpOption, DhcpPacket, DhcpRepr, EthernetAddress};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// How many addresses are leased, from network+15.
pub const POOL_SIZE: usize = 16;
pub const LEASE_TIME: Duration = Duration::from_secs(24 * 3600);
/// How long an offered address is kept for the client that was offered it.
const OFFER_HOLD: Duration = Duration::from_secs(60);
/// How long a declined address (someone else uses it) stays out of the pool.
const DECLINED_FOR: Duration = Duration::from_secs(600);

const OPTION_HOSTNAME: u8 = 12;
const OPTION_DNS: u8 = 6;
const OPTION_MTU: u8 = 26;
const OPTION_DOMAIN_SEARCH: u8 = 119;
const OPTION_BOOTFILE: u8 = 67;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    Leased {
        mac: EthernetAddress,
        until: Instant,
    },
    Declined {
        until: Instant,
    },
}

/// The pool: slot i is network+15+i.
#[derive(Debug)]
pub struct Leases {
    slots: [Slot; POOL_SIZE],
}

impl Default for Leases {
    fn default() -> Self {
        Leases {
            slots: [Slot::Free; POOL_SIZE],
        }
    }
}

impl Leases {
    fn usable(slot: Slot, now: Instant) -> bool {
        match slot {
            Slot::Free => true,
            Slot::Leased { until, .. } | Slot::Declined { until } => until <= now,
        }
    }

    /// The slot `mac` holds, or that `wanted` names and is free, or the first free one.
    fn choose(&self, mac: EthernetAddress, wanted: Option<usize>, now: Instant) -> Option<usize> {
        self.held_by(mac, now)
            .or_else(|| wanted.filter(|&i| Self::usable(self.slots[i], now)))
            .or_else(|| self.slots.iter().position(|slot| Self::usable(*slot, now)))
    }

    /// The slot whose lease (or offer) `mac` holds.
    fn held_by(&self, mac: EthernetAddress, now: Instant) -> Option<usize> {
        self.slots.iter().position(
            |slot| matches!(*slot, Slot::Leased { mac: m, until } if m == mac && until > now),
        )
    }

    fn holder(&self, index: usize, now: Instant) -> Option<EthernetAddress> {
        match self.slots[index] {
            Slot::Leased { mac, until } if until > now => Some(mac),
            _ => None,
        }
    }

    fn lease(&mut self, index: usize, mac: EthernetAddress, until: Instant) {
        self.slots[index] = Slot::Leased { mac, until };
    }

    fn release(&mut self, index: usize, mac: EthernetAddress) {
        if matches!(self.slots[index], Slot::Leased { mac: m, .. } if m == mac) {
            self.slots[index] = Slot::Free;
        }
    }

    fn decline(&mut self, index: usize, now: Instant) {
        self.slots[index] = Slot::Declined {
            until: now + DECLINED_FOR,
        };
    }
}

/// Whether `packet` is a DHCP request for our server.
pub(in crate::engine) fn is_dhcp(cx: &Cx, packet: &GuestPacket) -> bool {
    let IpAddr::V4(dst) = packet.dst else {
        return false;
    };
    cx.cfg.dhcp
        && packet.udp_dst_port() == Some(SERVER_PORT)
        && (dst == Ipv4Addr::BROADCAST || dst == cx.cfg.net.gateway())
}

/// Whether the UDP datagram `udp` goes to a DHCP server: the one packet a guest may send
/// before it has an address (from 0.0.0.0).
pub(in crate::engine) fn is_to_server_port(udp: &[u8]) -> bool {
    crate::engine::udp_dst_port(udp) == Some(SERVER_PORT)
}

/// The pool index of `addr`, if it is in the pool.
fn index_of(cx: &Cx, addr: Ipv4Addr) -> Option<usize> {
    let offset = u32::from(addr).checked_sub(u32::from(cx.cfg.net.dhcp_start()))?;
    let index = usize::try_from(offset).ok()?;
    (index < POOL_SIZE && cx.cfg.net.contains(addr)).then_some(index)
}

fn address_of(cx: &Cx, index: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cx.cfg.net.dhcp_start()) + index as u32)
}

pub(in crate::engine) fn handle(
    core: &mut Core,
    now: Instant,
    packet: &GuestPacket,
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    let (udp_repr, udp) = packet.parse_udp()?;
    if udp_repr.src_port != CLIENT_PORT {
        return Err(DropReason::Unsupported);
    }
    let dhcp = DhcpPacket::new_checked(udp.payload()).map_err(|_| DropReason::Malformed)?;
    let request = DhcpRepr::parse(&dhcp).map_err(|_| DropReason::Malformed)?;
    let mac = request.client_hardware_address;
    if !mac.is_unicast() {
        return Err(DropReason::Malformed);
    }
    let gateway = core.cx.cfg.net.gateway();
    let ours = request.server_identifier.is_none_or(|id| id == gateway);
    let wanted = request
        .requested_ip
        .or_else(|| Some(request.client_ip).filter(|a| !a.is_unspecified()));
    let wanted_index = wanted.and_then(|addr| index_of(&core.cx, addr));
    let (reply_type, yiaddr) = match request.message_type {
        DhcpMessageType::Discover => {
            let index = core
                .dhcp_leases
                .choose(mac, wanted_index, now)
                // Every address is leased.
                .ok_or(DropReason::Refused)?;
            core.dhcp_leases.lease(index, mac, now + OFFER_HOLD);
            (DhcpMessageType::Offer, address_of(&core.cx, index))
        }
        DhcpMessageType::Request if !ours => {
            // The client took another server's offer: forget ours.
            if let Some(index) = core.dhcp_leases.held_by(mac, now) {
                core.dhcp_leases.release(index, mac);
            }
            return Err(DropReason::NotForUs);
        }
        DhcpMessageType::Request => {
            let leases = &core.dhcp_leases;
            let granted = wanted_index.filter(|&index| match leases.holder(index, now) {
                Some(holder) => holder == mac,
                None => Leases::usable(leases.slots[index], now),
            });
            match granted {
                Some(index) => {
                    core.dhcp_leases.lease(index, mac, now + LEASE_TIME);
                    (DhcpMessageType::Ack, address_of(&core.cx, index))
                }
                None => (DhcpMessageType::Nak, Ipv4Addr::UNSPECIFIED),
            }
        }
        DhcpMessageType::Decline => {
            if let (true, Some(index)) = (ours, wanted_index) {
                core.dhcp_leases.decline(index, now);
            }
            return Ok(());
        }
        DhcpMessageType::Release => {
            if let Some(index) = index_of(&core.cx, request.client_ip) {
                core.dhcp_leases.release(index, mac);
            }
            return Ok(());
        }
        DhcpMessageType::Inform => (DhcpMessageType::Ack, Ipv4Addr::UNSPECIFIED),
        _ => return Err(DropReason::Unsupported),
    };
    send_reply(core, now, tx, &request, reply_type, yiaddr)
}

fn send_reply(
    core: &mut Core,
    now: Instant,
    tx: &mut TxQueue,
    request: &DhcpRepr,
    reply_type: DhcpMessageType,
    yiaddr: Ipv4Addr,
) -> Result<(), DropReason> {
    let gateway = core.cx.cfg.net.gateway();
    let nak = reply_type == DhcpMessageType::Nak;
    let inform = request.message_type == DhcpMessageType::Inform;
    let mtu = (core.cx.cfg.mtu.min(u32::from(u16::MAX)) as u16).to_be_bytes();
    let dns = core.cx.cfg.net.dns().octets();
    let domains = crate::engine::link::ndp::encode_domains(core.resolver.search_domains(now), 255);
    let hostname = core.cx.cfg.dhcp_hostname.clone().unwrap_or_default();
    let bootfile = core.cx.cfg.dhcp_bootfile.clone().unwrap_or_default();
    let mut options = Vec::new();
    if !nak {
        options.push(DhcpOption {
            kind: OPTION_MTU,
            data: &mtu,
        });
        if core.cx.cfg.dns_enabled {
            options.push(DhcpOption {
                kind: OPTION_DNS,
                data: &dns,
            });
        }
        if !domains.is_empty() {
            options.push(DhcpOption {
                kind: OPTION_DOMAIN_SEARCH,
                data: &domains,
            });
        }
        if !hostname.is_empty() && hostname.len() <= 255 {
            options.push(DhcpOption {
                kind: OPTION_HOSTNAME,
                data: hostname.as_bytes(),
            });
        }
        if !bootfile.is_empty() && bootfile.len() <= 255 {
            // The TFTP server is the gateway (siaddr below).
            options.push(DhcpOption {
                kind: OPTION_BOOTFILE,
                data: bootfile.as_bytes(),
            });
        }
    }
    let lease = (!nak && !inform).then_some(LEASE_TIME.as_secs() as u32);
    let reply = DhcpRepr {
        message_type: reply_type,
        transaction_id: request.transaction_id,
        secs: 0,
        client_hardware_address: request.client_hardware_address,
        client_ip: if inform {
            request.client_ip
        } else {
            Ipv4Addr::UNSPECIFIED
        },
        your_ip: yiaddr,
        server_ip: if bootfile.is_empty() {
            Ipv4Addr::UNSPECIFIED
        } else {
            gateway
        },
        router: (!nak).then_some(gateway),
        subnet_mask: (!nak).then_some(core.cx.cfg.net.netmask()),
        relay_agent_ip: Ipv4Addr::UNSPECIFIED,
        broadcast: request.broadcast,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(gateway),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: lease,
        renew_duration: lease.map(|l| l / 2),
        rebind_duration: lease.map(|l| l / 8 * 7),
        additional_options: &options,
    };
    let dhcp_len = reply.buffer_len();
    let mut datagram = vec![0u8; 8 + dhcp_len];
    reply
        .emit(&mut DhcpPacket::new_unchecked(&mut datagram[8..]))
        .map_err(|_| DropReason::Malformed)?;
    // To the client's address once it has one; otherwise broadcast, which a client without an
    // address takes (at the link layer, to its own MAC unless it asked for broadcast).
    let to = if inform && !request.client_ip.is_unspecified() {
        request.client_ip
    } else {
        Ipv4Addr::BROADCAST
    };
    let link_to = if request.broadcast {
        EthernetAddress::BROADCAST
    } else {
        request.client_hardware_address
    };
    core.cx.emit_udp(
        tx,
        link_to,
        SocketAddr::new(IpAddr::V4(gateway), SERVER_PORT),
        SocketAddr::new(IpAddr::V4(to), CLIENT_PORT),
        &mut datagram,
    )?;
    core.cx.counters.dhcp_replies += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> EthernetAddress {
        EthernetAddress([0x02, 0, 0, 0, 0, n])
    }

    #[test]
    fn a_client_keeps_its_address_and_others_get_the_next() {
        let now = Instant::now();
        let mut leases = Leases::default();
        let first = leases.choose(mac(1), None, now).unwrap();
        leases.lease(first, mac(1), now + LEASE_TIME);
        assert_eq!(first, 0);
        assert_eq!(
            leases.choose(mac(1), Some(5), now),
            Some(0),
            "its own lease wins"
        );
        assert_eq!(
            leases.choose(mac(2), Some(0), now),
            Some(1),
            "taken: the next one"
        );
        assert_eq!(
            leases.choose(mac(2), Some(7), now),
            Some(7),
            "a free one asked for"
        );
        assert_eq!(leases.holder(0, now), Some(mac(1)));
        assert_eq!(leases.holder(0, now + LEASE_TIME), None, "expired");
    }

    #[test]
    fn release_decline_and_a_full_pool() {
        let now = Instant::now();
        let mut leases = Leases::default();
        for n in 0..POOL_SIZE {
            let index = leases.choose(mac(n as u8), None, now).unwrap();
            leases.lease(index, mac(n as u8), now + LEASE_TIME);
        }
        assert_eq!(
            leases.choose(mac(99), None, now),
            None,
            "every address leased"
        );
        leases.release(3, mac(42));
        assert_eq!(
            leases.choose(mac(99), None, now),
            None,
            "only the holder releases"
        );
        leases.release(3, mac(3));
        assert_eq!(leases.choose(mac(99), None, now), Some(3));
        leases.decline(3, now);
        assert_eq!(
            leases.choose(mac(99), None, now),
            None,
            "declined: out of use"
        );
        assert_eq!(leases.choose(mac(99), None, now + DECLINED_FOR), Some(3));
    }
}
