//! Engine tests on IPv6 frames: neighbour and router discovery, echo, DHCPv6, and what is
//! dropped (and counted) instead of answered.

use crate::engine::testutil::*;
use crate::engine::Engine;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv6Packet, Icmpv6Repr,
    IpProtocol, Ipv6Packet, Ipv6Repr, NdiscNeighborFlags, NdiscPrefixInfoFlags, NdiscRepr,
    RawHardwareAddress,
};
use std::net::Ipv6Addr;

const GUEST_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x11, 0x22ff, 0xfe33, 0x4455);
const GUEST_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0x11, 0x22ff, 0xfe33, 0x4455);
const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const DNS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

fn engine_v6() -> Engine {
    let mut e = engine();
    e.core.cx.cfg.ipv6 = Some(Default::default());
    e
}

/// An IPv6 frame from the guest carrying `payload` after `extra` extension header bytes.
fn ipv6_frame(src: Ipv6Addr, dst: Ipv6Addr, next_header: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header,
        payload_len: payload.len(),
        hop_limit: 255,
    };
    let eth = EthernetRepr {
        src_addr: GUEST_MAC,
        dst_addr: EthernetAddress([0x33, 0x33, 0, 0, 0, 2]),
        ethertype: EthernetProtocol::Ipv6,
    };
    let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len() + payload.len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut packet = Ipv6Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet);
    packet.payload_mut().copy_from_slice(payload);
    buf
}

fn icmpv6_frame(src: Ipv6Addr, dst: Ipv6Addr, icmp: &Icmpv6Repr) -> Vec<u8> {
    let mut payload = vec![0u8; icmp.buffer_len()];
    icmp.emit(
        &src,
        &dst,
        &mut Icmpv6Packet::new_unchecked(&mut payload[..]),
        &ChecksumCapabilities::default(),
    );
    ipv6_frame(src, dst, IpProtocol::Icmpv6, &payload)
}

/// The ICMPv6 message of a frame the engine sent, with the IPv6 header.
fn parse_icmpv6(frame: &[u8]) -> (Ipv6Repr, Vec<u8>) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(eth.ethertype(), EthernetProtocol::Ipv6);
    let packet = Ipv6Packet::new_checked(eth.payload()).unwrap();
    let ip = Ipv6Repr::parse(&packet).unwrap();
    assert_eq!(ip.next_header, IpProtocol::Icmpv6);
    let icmp = Icmpv6Packet::new_checked(packet.payload()).unwrap();
    assert!(icmp.verify_checksum(&ip.src_addr, &ip.dst_addr), "checksum");
    (ip, packet.payload().to_vec())
}

fn neighbor_solicit(target: Ipv6Addr, src: Ipv6Addr) -> Vec<u8> {
    let ns = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: target,
        lladdr: (!src.is_unspecified()).then(|| RawHardwareAddress::from(GUEST_MAC)),
    });
    icmpv6_frame(src, target, &ns)
}

#[test]
fn router_solicitation_gets_a_full_advertisement() {
    let mut e = engine_v6();
    let rs = Icmpv6Repr::Ndisc(NdiscRepr::RouterSolicit {
        lladdr: Some(GUEST_MAC.into()),
    });
    let out = exchange(&mut e, &icmpv6_frame(GUEST_LL, ALL_ROUTERS, &rs));
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][..6], &GUEST_MAC.0, "to the soliciting guest");
    let (ip, message) = parse_icmpv6(&out[0]);
    assert_eq!(ip.hop_limit, 255, "neighbour discovery needs hop limit 255");
    assert_eq!(ip.src_addr, crate::engine::link::ndp::ROUTER_LINK_LOCAL);
    assert_eq!(ip.dst_addr, GUEST_LL);
    let packet = Icmpv6Packet::new_checked(&message[..]).unwrap();
    let repr = Icmpv6Repr::parse(&ip.src_addr, &ip.dst_addr, &packet, &Default::default()).unwrap();
    let Icmpv6Repr::Ndisc(NdiscRepr::RouterAdvert {
        router_lifetime,
        lladdr,
        mtu,
        prefix_info,
        ..
    }) = repr
    else {
        panic!("not a router advertisement: {repr:?}");
    };
    assert!(router_lifetime.secs() > 0, "a default router");
    assert_eq!(lladdr, Some(e.core.cx.gateway_mac.into()));
    assert_eq!(mtu, Some(1500));
    let prefix = prefix_info.expect("prefix information");
    assert_eq!(prefix.prefix, Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0));
    assert_eq!(prefix.prefix_len, 64);
    assert!(prefix
        .flags
        .contains(NdiscPrefixInfoFlags::ON_LINK | NdiscPrefixInfoFlags::ADDRCONF));
    // RDNSS (type 25) naming fd00::3.
    let rdnss = message
        .windows(24)
        .find(|w| w[0] == 25 && w[1] == 3)
        .expect("an RDNSS option");
    assert_eq!(&rdnss[8..24], &DNS_V6.octets());
    assert_eq!(e.counters().ndp_adverts, 1);
}

#[test]
fn neighbour_solicitations_for_the_virtual_hosts_are_answered() {
    let mut e = engine_v6();
    for (target, mac, router) in [
        (GATEWAY_V6, e.core.cx.gateway_mac, true),
        (
            crate::engine::link::ndp::ROUTER_LINK_LOCAL,
            e.core.cx.gateway_mac,
            true,
        ),
        (DNS_V6, e.core.cx.dns_mac, false),
    ] {
        let out = exchange(&mut e, &neighbor_solicit(target, GUEST_V6));
        assert_eq!(out.len(), 1, "{target}");
        let (ip, message) = parse_icmpv6(&out[0]);
        assert_eq!(
            (ip.src_addr, ip.dst_addr, ip.hop_limit),
            (target, GUEST_V6, 255)
        );
        let packet = Icmpv6Packet::new_checked(&message[..]).unwrap();
        let repr =
            Icmpv6Repr::parse(&ip.src_addr, &ip.dst_addr, &packet, &Default::default()).unwrap();
        let Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags,
            target_addr,
            lladdr,
        }) = repr
        else {
            panic!("not a neighbour advertisement: {repr:?}");
        };
        assert_eq!(target_addr, target);
        assert_eq!(lladdr, Some(mac.into()));
        assert!(flags.contains(NdiscNeighborFlags::SOLICITED));
        assert_eq!(
            flags.contains(NdiscNeighborFlags::ROUTER),
            router,
            "{target}"
        );
    }
    assert_eq!(
        e.core.cx.neighbor(GUEST_V6.into()),
        Some(GUEST_MAC),
        "learnt"
    );
}

#[test]
fn other_solicitations_and_duplicate_address_detection_are_ignored() {
    let mut e = engine_v6();
    let other = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x77);
    assert!(exchange(&mut e, &neighbor_solicit(other, GUEST_V6)).is_empty());
    assert!(exchange(&mut e, &neighbor_solicit(GATEWAY_V6, Ipv6Addr::UNSPECIFIED)).is_empty());
    assert_eq!(e.counters().dropped_not_for_us, 2);
}

#[test]
fn echo_to_the_ipv6_gateway_is_answered() {
    let mut e = engine_v6();
    let echo = Icmpv6Repr::EchoRequest {
        ident: 7,
        seq_no: 3,
        data: b"ping6",
    };
    let out = exchange(&mut e, &icmpv6_frame(GUEST_V6, GATEWAY_V6, &echo));
    assert_eq!(out.len(), 1);
    let (ip, message) = parse_icmpv6(&out[0]);
    assert_eq!((ip.src_addr, ip.dst_addr), (GATEWAY_V6, GUEST_V6));
    let packet = Icmpv6Packet::new_checked(&message[..]).unwrap();
    let repr = Icmpv6Repr::parse(&ip.src_addr, &ip.dst_addr, &packet, &Default::default()).unwrap();
    assert_eq!(
        repr,
        Icmpv6Repr::EchoReply {
            ident: 7,
            seq_no: 3,
            data: b"ping6"
        }
    );
}

#[test]
fn malformed_ipv6_is_dropped_and_counted() {
    let mut e = engine_v6();
    let rs = Icmpv6Repr::Ndisc(NdiscRepr::RouterSolicit { lladdr: None });
    let good = icmpv6_frame(GUEST_LL, ALL_ROUTERS, &rs);
    // Bad ICMPv6 checksum.
    let mut bad_sum = good.clone();
    let last = bad_sum.len() - 1;
    bad_sum[last] ^= 0xff;
    // IPv6 payload length beyond the frame.
    let mut long = good.clone();
    long[14 + 5] = 0xff;
    // An option of length zero.
    let mut zero_option = icmpv6_frame(GUEST_LL, ALL_ROUTERS, &rs);
    zero_option.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    zero_option[14 + 5] += 8;
    // A hop-by-hop header longer than the packet.
    let bad_hbh = ipv6_frame(
        GUEST_LL,
        ALL_ROUTERS,
        IpProtocol::HopByHop,
        &[58, 4, 0, 0, 0, 0, 0, 0],
    );
    // Truncated Ethernet and IPv6 headers.
    let truncated = good[..30].to_vec();
    for frame in [&bad_sum, &long, &zero_option, &bad_hbh, &truncated] {
        assert!(exchange(&mut e, frame).is_empty());
    }
    assert_eq!(e.counters().dropped_malformed, 5, "{}", e.counters());
    // A fragment holding nothing though more follow, and a fragment header cut short.
    for header in [&[17, 0, 0, 1, 0, 0, 0, 1][..], &[17, 0, 0, 1]] {
        let fragment = ipv6_frame(GUEST_V6, GATEWAY_V6, IpProtocol::Ipv6Frag, header);
        assert!(exchange(&mut e, &fragment).is_empty());
    }
    assert_eq!(e.counters().dropped_malformed, 7, "{}", e.counters());
    // A spoofed source is refused.
    let spoofed = Icmpv6Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: b"",
    };
    let other: Ipv6Addr = "2001:db8::7".parse().unwrap();
    assert!(exchange(&mut e, &icmpv6_frame(other, GATEWAY_V6, &spoofed)).is_empty());
    assert_eq!(e.counters().dropped_unsupported, 0);
    assert_eq!(e.counters().dropped_refused, 1);
}

#[test]
fn without_ipv6_nothing_is_answered() {
    let mut e = engine();
    let rs = Icmpv6Repr::Ndisc(NdiscRepr::RouterSolicit { lladdr: None });
    assert!(exchange(&mut e, &icmpv6_frame(GUEST_LL, ALL_ROUTERS, &rs)).is_empty());
    assert!(exchange(&mut e, &neighbor_solicit(GATEWAY_V6, GUEST_V6)).is_empty());
    assert_eq!(e.counters().dropped_unsupported, 2);
    assert_eq!(e.poll_at(), None, "no advertisements scheduled");
}

#[test]
fn dhcpv6_information_request_gets_the_dns_address() {
    let mut e = engine_v6();
    let message = [11, 1, 2, 3, 0, 8, 0, 2, 0, 0];
    let mut udp = vec![0u8; 8 + message.len()];
    let repr = smoltcp::wire::UdpRepr {
        src_port: 546,
        dst_port: 547,
    };
    let dhcp_servers: Ipv6Addr = "ff02::1:2".parse().unwrap();
    repr.emit(
        &mut smoltcp::wire::UdpPacket::new_unchecked(&mut udp[..]),
        &GUEST_LL.into(),
        &dhcp_servers.into(),
        message.len(),
        |p| p.copy_from_slice(&message),
        &ChecksumCapabilities::default(),
    );
    let out = exchange(
        &mut e,
        &ipv6_frame(GUEST_LL, dhcp_servers, IpProtocol::Udp, &udp),
    );
    assert_eq!(out.len(), 1);
    let reply = &out[0][14 + 40 + 8..];
    assert_eq!(&reply[..4], &[7, 1, 2, 3]);
    let dns = reply
        .windows(20)
        .find(|w| w[..4] == [0, 23, 0, 16])
        .expect("DNS option");
    assert_eq!(&dns[4..], &DNS_V6.octets());
    assert_eq!(e.counters().dhcpv6_replies, 1);
}

#[test]
fn the_fuzzing_seeds_are_frames_the_engine_takes() {
    // Each seed: a 2-byte length, then a frame as Linux sends it.
    let seeds: [(&[u8], usize); 5] = [
        (include_bytes!("../../fuzz/seeds/frames/v6_rs"), 1),
        (include_bytes!("../../fuzz/seeds/frames/v6_ns"), 1),
        (include_bytes!("../../fuzz/seeds/frames/v6_ping"), 1),
        (include_bytes!("../../fuzz/seeds/frames/v6_dhcp"), 1),
        (include_bytes!("../../fuzz/seeds/frames/v6_mld"), 0),
    ];
    let mut e = engine_v6();
    for (seed, answers) in seeds {
        assert_eq!(exchange(&mut e, &seed[2..]).len(), answers);
    }
    assert_eq!(e.counters().dropped_malformed, 0, "{}", e.counters());
}

#[test]
fn a_point_to_point_link_gets_no_router_advertisements() {
    let poll = mio::Poll::new().unwrap();
    let with = |point_to_point| {
        let cfg = crate::engine::EngineConfig {
            ipv6: Some(Default::default()),
            point_to_point,
            max_flows: 0,
            ..crate::engine::EngineConfig::new(Default::default())
        };
        Engine::new(cfg, poll.registry().try_clone().unwrap())
    };
    assert!(with(false).poll_at().is_some(), "advertisements scheduled");
    assert_eq!(with(true).poll_at(), None, "none on a point-to-point link");
}
