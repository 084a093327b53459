//! Engine tests on real frame bytes: what the guest's kernel sends and what it must get back.

use crate::engine::testutil::*;
use crate::engine::{virtual_mac, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    Icmpv4Packet, Icmpv4Repr, Ipv4Packet, Ipv4Repr,
};
use std::net::Ipv4Addr;

/// An ARP request as Linux sends it: who-has 10.0.2.2 tell 10.0.2.100, from 02:11:22:33:44:55.
const ARP_WHO_HAS_GATEWAY: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x06, // eth
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // htype, ptype, hlen, plen, op=request
    0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x0a, 0x00, 0x02, 0x64, // sender
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x02, 0x02, // target
];

/// The reply it must get: 10.0.2.2 is-at 52:55:0a:00:02:02.
const ARP_GATEWAY_IS_AT: [u8; 42] = [
    0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x06, // eth
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // op=reply
    0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x0a, 0x00, 0x02, 0x02, // sender: the gateway
    0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x0a, 0x00, 0x02, 0x64, // target: the guest
];

#[test]
fn arp_request_for_gateway_gets_exact_reply() {
    let mut e = engine();
    let out = exchange(&mut e, &ARP_WHO_HAS_GATEWAY);
    assert_eq!(out, vec![ARP_GATEWAY_IS_AT.to_vec()]);
    assert_eq!(e.counters().arp_replies, 1);
}

#[test]
fn arp_padded_to_ethernet_minimum_is_accepted() {
    let mut frame = ARP_WHO_HAS_GATEWAY.to_vec();
    frame.resize(60, 0);
    assert_eq!(exchange(&mut engine(), &frame).len(), 1);
}

#[test]
fn arp_for_dns_answers_with_its_own_mac() {
    let mut frame = ARP_WHO_HAS_GATEWAY;
    frame[41] = 3;
    let out = exchange(&mut engine(), &frame);
    assert_eq!(out.len(), 1);
    let reply = ArpRepr::parse(&ArpPacket::new_checked(&out[0][14..]).unwrap()).unwrap();
    let ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr,
        ..
    } = reply
    else {
        unreachable!()
    };
    assert_eq!(operation, ArpOperation::Reply);
    assert_eq!(source_hardware_addr, virtual_mac(DNS_IP));
}

#[test]
fn arp_for_dns_is_answered_when_dns_is_disabled() {
    // As slirp4netns does: the guest's packets to the address then vanish (a connection times
    // out) instead of failing at once with "no route to host".
    let mut e = engine();
    e.core.cx.cfg.dns_enabled = false;
    let mut frame = ARP_WHO_HAS_GATEWAY;
    frame[41] = 3;
    assert_eq!(exchange(&mut e, &frame).len(), 1);
}

#[test]
fn arp_for_other_addresses_is_ignored_and_replies_are_learnt() {
    let mut e = engine();
    let mut other = ARP_WHO_HAS_GATEWAY;
    other[41] = 9;
    assert!(exchange(&mut e, &other).is_empty());
    assert_eq!(e.counters().dropped_not_for_us, 1);
    // 10.0.2.100 is-at 02:11:22:33:44:55, as the guest answers our request.
    let mut reply = ARP_WHO_HAS_GATEWAY;
    reply[21] = 2;
    assert!(exchange(&mut e, &reply).is_empty());
    assert_eq!(e.counters().arp_replies_received, 1);
    assert_eq!(e.core.cx.neighbor(GUEST_IP.into()), Some(GUEST_MAC));
    assert_eq!(e.counters().frames_out, 0);
}

#[test]
fn echo_to_gateway_and_dns_is_answered_in_kind() {
    for dst in [GATEWAY_IP, DNS_IP] {
        let mut e = engine();
        let data: Vec<u8> = (0..=255).collect();
        let out = exchange(&mut e, &echo_request(virtual_mac(dst), dst, &data));
        assert_eq!(out.len(), 1);
        let frame = EthernetFrame::new_checked(&out[0][..]).unwrap();
        assert_eq!(frame.dst_addr(), GUEST_MAC);
        assert_eq!(frame.src_addr(), virtual_mac(dst));
        assert_eq!(frame.ethertype(), EthernetProtocol::Ipv4);
        let caps = ChecksumCapabilities::default();
        let ip_packet = Ipv4Packet::new_checked(frame.payload()).unwrap();
        let ip = Ipv4Repr::parse(&ip_packet, &caps).expect("valid IPv4 checksum");
        assert_eq!((ip.src_addr, ip.dst_addr), (dst, GUEST_IP));
        let icmp_packet = Icmpv4Packet::new_checked(ip_packet.payload()).unwrap();
        let icmp = Icmpv4Repr::parse(&icmp_packet, &caps).expect("valid ICMP checksum");
        assert_eq!(
            icmp,
            Icmpv4Repr::EchoReply {
                ident: 0x1234,
                seq_no: 7,
                data: &data
            }
        );
        assert_eq!(e.counters().icmp_echo_replies, 1);
    }
}

#[test]
fn echo_with_bad_checksum_is_dropped_as_malformed() {
    let mut e = engine();
    let mut frame = echo_request(virtual_mac(GATEWAY_IP), GATEWAY_IP, b"ping");
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    assert!(exchange(&mut e, &frame).is_empty());
    assert_eq!(e.counters().dropped_malformed, 1);
}

#[test]
fn echo_to_loopback_is_refused() {
    let mut e = engine();
    let dst = std::net::Ipv4Addr::LOCALHOST;
    assert!(exchange(&mut e, &echo_request(virtual_mac(GATEWAY_IP), dst, b"x")).is_empty());
    assert_eq!(e.counters().dropped_refused, 1);
}

#[test]
fn echo_beyond_the_gateway_needs_a_flow() {
    // The test engine has room for no flows: nothing may leave the test process.
    let mut e = engine();
    let dst = std::net::Ipv4Addr::new(192, 0, 2, 1);
    assert!(exchange(&mut e, &echo_request(virtual_mac(GATEWAY_IP), dst, b"x")).is_empty());
    assert_eq!(e.counters().dropped_flow_table_full, 1);
    assert_eq!(e.flow_count(), 0);
}

#[test]
fn frames_to_other_macs_are_not_for_us() {
    let mut e = engine();
    let frame = echo_request(EthernetAddress([2, 0, 0, 0, 0, 9]), GATEWAY_IP, b"x");
    assert!(exchange(&mut e, &frame).is_empty());
    assert_eq!(e.counters().dropped_not_for_us, 1);
}

#[test]
fn truncations_of_valid_frames_never_panic_and_are_counted() {
    let frames = [
        ARP_WHO_HAS_GATEWAY.to_vec(),
        echo_request(virtual_mac(GATEWAY_IP), GATEWAY_IP, &[0x5a; 100]),
    ];
    for frame in &frames {
        let mut e = engine();
        for len in 0..frame.len() {
            assert!(exchange(&mut e, &frame[..len]).is_empty(), "len {len}");
        }
        assert_eq!(e.counters().dropped(), frame.len() as u64);
    }
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let mut rng = Rng::new(0x5eed);
    let seeds = [
        ARP_WHO_HAS_GATEWAY.to_vec(),
        echo_request(virtual_mac(GATEWAY_IP), GATEWAY_IP, &[1; 64]),
    ];
    let mut e = engine();
    let mut tx = TxQueue::new(8);
    let mut buf = vec![0u8; 2048];
    let now = std::time::Instant::now();
    for round in 0..200_000 {
        let frame: &[u8] = if round % 2 == 0 {
            let len = rng.below(buf.len());
            rng.fill(&mut buf[..len]);
            &buf[..len]
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            buf[..seed.len()].copy_from_slice(seed);
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(seed.len());
                buf[at] = rng.next_u64() as u8;
            }
            &buf[..seed.len() - rng.below(4)]
        };
        e.handle_frame(now, frame, &mut tx);
        tx.clear();
    }
    let c = e.counters();
    assert_eq!(c.frames_in, 200_000);
    assert_eq!(
        c.dropped() + c.arp_replies + c.arp_replies_received + c.icmp_echo_replies,
        c.frames_in
    );
    assert_eq!(e.flow_count(), 0);
}

#[test]
fn a_full_tx_queue_drops_and_counts() {
    let mut e = engine();
    let mut tx = TxQueue::new(1);
    let now = std::time::Instant::now();
    e.handle_frame(now, &ARP_WHO_HAS_GATEWAY, &mut tx);
    e.handle_frame(now, &ARP_WHO_HAS_GATEWAY, &mut tx);
    assert_eq!(tx.len(), 1);
    assert_eq!(e.counters().dropped_tx_queue_full, 1);
}

/// The DHCP message type option of a reply frame (Ethernet, IPv4, UDP, BOOTP, options).
fn dhcp_reply(frame: &[u8]) -> (u8, Ipv4Addr) {
    let dhcp = &frame[14 + 20 + 8..];
    let yiaddr = Ipv4Addr::new(dhcp[16], dhcp[17], dhcp[18], dhcp[19]);
    let options = &dhcp[240..];
    let message_type = options
        .windows(3)
        .find(|w| w[0] == 53 && w[1] == 1)
        .map(|w| w[2])
        .expect("message type option");
    (message_type, yiaddr)
}

#[test]
fn dhcp_discover_and_request_from_the_fuzzing_seeds_get_offer_and_ack() {
    let mut e = engine();
    let discover = include_bytes!("../../fuzz/seeds/frames/dhcp_discover");
    let request = include_bytes!("../../fuzz/seeds/frames/dhcp_request");
    let offer = exchange(&mut e, &discover[2..]);
    assert_eq!(offer.len(), 1, "{}", e.counters());
    assert_eq!(dhcp_reply(&offer[0]), (2, Ipv4Addr::new(10, 0, 2, 15)));
    let ack = exchange(&mut e, &request[2..]);
    assert_eq!(ack.len(), 1, "{}", e.counters());
    assert_eq!(dhcp_reply(&ack[0]), (5, Ipv4Addr::new(10, 0, 2, 15)));
    assert_eq!(e.counters().dhcp_replies, 2);
    // Nothing but DHCP may come from 0.0.0.0.
    let mut not_dhcp = request[2..].to_vec();
    not_dhcp[14 + 20 + 3] = 68; // UDP destination port 67 -> 68
    assert!(exchange(&mut e, &not_dhcp).is_empty());
    assert_eq!(e.counters().dropped_refused, 1, "{}", e.counters());
}
