//! Frame builders and a deterministic random source for the engine's unit tests.

use crate::engine::Ipv4Network;
use crate::engine::{Engine, EngineConfig, TxQueue};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet, Icmpv4Repr,
    IpProtocol, Ipv4Packet, Ipv4Repr,
};
use std::net::Ipv4Addr;

pub const GUEST_MAC: EthernetAddress = EthernetAddress([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
pub const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

/// An engine that can open no flows: unit tests run in the host's own network namespace, and
/// a frame must never make them send anything anywhere.
pub fn engine() -> Engine {
    let poll = mio::Poll::new().expect("epoll");
    let cfg = EngineConfig {
        max_flows: 0,
        ..EngineConfig::new(Ipv4Network::default())
    };
    Engine::new(cfg, poll.registry().try_clone().expect("registry"))
}

/// Feeds one frame and returns the frames the engine queued in answer.
pub fn exchange(engine: &mut Engine, frame: &[u8]) -> Vec<Vec<u8>> {
    let mut tx = TxQueue::new(64);
    engine.handle_frame(std::time::Instant::now(), frame, &mut tx);
    tx.frames().map(<[u8]>::to_vec).collect()
}

pub fn echo_request(dst_mac: EthernetAddress, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 0x1234,
        seq_no: 7,
        data,
    };
    let ip = Ipv4Repr {
        src_addr: GUEST_IP,
        dst_addr: dst,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: GUEST_MAC,
        dst_addr: dst_mac,
        ethertype: EthernetProtocol::Ipv4,
    };
    // 0xa5 everywhere first, so that a field the builders forget shows.
    let mut buf = vec![0xa5; eth.buffer_len() + ip.buffer_len() + icmp.buffer_len()];
    let caps = ChecksumCapabilities::default();
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet, &caps);
    icmp.emit(
        &mut Icmpv4Packet::new_unchecked(packet.payload_mut()),
        &caps,
    );
    buf
}

/// xorshift64*: a few lines, deterministic, good enough to shake a parser.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
}
