//! The guest's frames, from Ethernet to the protocol that handles them: checked, addressed to
//! a host the engine stands for, then by IP protocol (and port, for the services on the
//! virtual hosts); consecutive data of one flow gathered to be passed on in one call.

pub mod ipv4;
pub mod ipv6;

use super::*;

impl Engine {
    pub(super) fn dispatch<'a>(
        &mut self,
        now: Instant,
        frame: &'a [u8],
        offload: RxOffload,
        tx: &mut TxQueue,
        pending: &mut Pending<'a>,
    ) -> Result<(), DropReason> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
        let src = eth.src_addr();
        if !src.is_unicast() {
            return Err(DropReason::Malformed);
        }
        let dst = eth.dst_addr();
        let core = &mut self.core;
        let virtual_address = || match dst.0 {
            [0x52, 0x55, a, b, c, d] => core.stands_for(Ipv4Addr::new(a, b, c, d).into()),
            _ => false,
        };
        if !(dst.is_broadcast()
            || dst.is_multicast()
            || dst == core.cx.gateway_mac
            || dst == core.cx.dns_mac
            || virtual_address())
        {
            return Err(DropReason::NotForUs);
        }
        match eth.ethertype() {
            EthernetProtocol::Arp => arp::handle(core, eth.payload(), tx),
            EthernetProtocol::Ipv4 => {
                let parsed = ipv4::parse(&mut self.core.cx, src, eth.payload(), offload)?;
                self.handle_parsed(now, parsed, tx, pending)
            }
            EthernetProtocol::Ipv6 if self.core.cx.cfg.ipv6.is_some() => {
                let parsed = ipv6::parse(&mut self.core.cx, src, eth.payload(), offload)?;
                self.handle_parsed(now, parsed, tx, pending)
            }
            _ => Err(DropReason::Unsupported),
        }
    }

    /// A checked IPv4 or IPv6 packet from the guest, whole or a piece of one.
    fn handle_parsed<'a>(
        &mut self,
        now: Instant,
        parsed: reassembly::Parsed<'a>,
        tx: &mut TxQueue,
        pending: &mut Pending<'a>,
    ) -> Result<(), DropReason> {
        match parsed {
            reassembly::Parsed::Whole(packet) => self.handle_ip(now, packet, tx, pending),
            reassembly::Parsed::Piece(mac, piece) => {
                self.handle_piece(now, mac, &piece, tx, pending)
            }
        }
    }

    /// A checked IPv4 or IPv6 packet from the guest: to the protocol that handles it.
    pub(super) fn handle_ip<'a>(
        &mut self,
        now: Instant,
        packet: GuestPacket<'a>,
        tx: &mut TxQueue,
        pending: &mut Pending<'a>,
    ) -> Result<(), DropReason> {
        let (core, flows) = (&mut self.core, &mut self.flows);
        // Keep the guest's order: what was gathered goes out before anything else.
        if packet.protocol != IpProtocol::Tcp {
            tcp::flush_pending(core, flows, &mut pending.tcp, now, tx);
        }
        if packet.protocol != IpProtocol::Udp {
            udp::flush_pending(core, flows, &mut pending.udp, now, tx);
        }
        // ICMP of the packet's own IP version; the other one is nonsense here.
        let icmp = if packet.src.is_ipv4() {
            IpProtocol::Icmp
        } else {
            IpProtocol::Icmpv6
        };
        let served = core.cx.cfg.served;
        match packet.protocol {
            p if p == icmp && ndp::is_ndp(&packet) && packet.src.is_ipv6() => {
                if !served.ndp {
                    return Err(DropReason::Unsupported);
                }
                ndp::handle(core, now, &packet, tx)
            }
            p if p == icmp && !served.icmp_echo => Err(DropReason::Unsupported),
            p if p == icmp && core.cx.is_virtual_host(packet.dst) => {
                icmp::answer_echo(core, &packet, tx)
            }
            p if p == icmp => echo::handle(core, flows, now, &packet, tx),
            IpProtocol::Tcp if !served.tcp => Err(DropReason::Unsupported),
            IpProtocol::Tcp => tcp::handle(core, flows, now, &packet, tx, &mut pending.tcp),
            IpProtocol::Udp if dhcpv6::is_dhcpv6(&packet) && !served.dhcpv6 => {
                Err(DropReason::Unsupported)
            }
            IpProtocol::Udp if dhcpv6::is_dhcpv6(&packet) => dhcpv6::handle(core, now, &packet, tx),
            IpProtocol::Udp if dhcp::is_dhcp(&core.cx, &packet) => {
                dhcp::handle(core, now, &packet, tx)
            }
            IpProtocol::Udp if tftp::is_tftp(core, &packet) => tftp::handle(core, now, &packet, tx),
            IpProtocol::Udp if virtual_net::is_for_endpoint(core, &packet) => {
                virtual_net::deliver_udp(core, &packet)
            }
            // Nothing else may come from an unconfigured guest.
            _ if packet.src == IpAddr::V4(Ipv4Addr::UNSPECIFIED) => Err(DropReason::Refused),
            IpProtocol::Udp if !served.udp => Err(DropReason::Unsupported),
            IpProtocol::Udp => udp::handle(core, flows, now, &packet, tx, &mut pending.udp),
            _ => Err(DropReason::Unsupported),
        }
    }
}

/// Guest data gathered over consecutive frames of a batch, to be passed on with fewer system
/// calls: TCP segments of one connection (one writev), UDP datagrams of one flow (one
/// sendmmsg).
#[derive(Default)]
pub(super) struct Pending<'a> {
    tcp: tcp::PendingWrites<'a>,
    udp: udp::PendingDatagrams<'a>,
}

impl Pending<'_> {
    pub(super) fn flush(
        &mut self,
        core: &mut Core,
        flows: &mut Flows,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        tcp::flush_pending(core, flows, &mut self.tcp, now, tx);
        udp::flush_pending(core, flows, &mut self.udp, now, tx);
    }
}
