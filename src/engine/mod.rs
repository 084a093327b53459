//! The NAT engine: Ethernet frames from the guest in, frames for the guest out.
//!
//! # Theory of operation
//!
//! The engine sits between the guest's TAP device and the host. It knows nothing of namespaces,
//! file descriptors or the command line: the event loop hands it each frame the guest sent
//! ([`Engine::handle_frame`]) and a [`TxQueue`] to put replies in, and flushes that queue to the
//! TAP at the end of the loop turn.
//!
//! The guest sees one virtual network (10.0.2.0/24 unless --cidr moves it) holding two hosts
//! besides itself: the gateway (network+2), which stands for the host, and the DNS relay
//! (network+3). Each virtual host has a MAC made from its IPv4 address, `52:55:a:b:c:d`, so a
//! capture shows at a glance who is who.
//!
//! Protocols, one module each:
//! - [`arp`]: answers requests for the virtual hosts.
//! - [`icmp`]: answers echo requests addressed to the virtual hosts.
//!
//! # Robustness contract
//!
//! Every frame comes from an untrusted guest. Parsing goes through `smoltcp::wire`'s checked
//! constructors (`new_checked`, `Repr::parse`), after which no accessor panics; whatever fails a
//! check is dropped and counted in [`Counters`] by the reason [`Drop`] names. Nothing a frame
//! says can make the engine allocate without bound: replies go into a fixed number of reusable
//! [`TxQueue`] slots, and a full queue drops (and counts) further replies.
#![forbid(unsafe_code)]

pub mod arp;
mod counters;
pub mod icmp;
mod txqueue;

pub use counters::Counters;
pub use txqueue::TxQueue;

use crate::config::Ipv4Network;
use smoltcp::wire::{EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr};
use std::net::Ipv4Addr;

/// Why a frame was dropped; each reason has its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Truncated, bad checksum, inconsistent lengths: not a well-formed frame.
    Malformed,
    /// Well-formed, but of a kind the engine does not handle (yet).
    Unsupported,
    /// Addressed to somebody the engine does not stand for.
    NotForUs,
    /// A reply could not be queued because the transmit queue was full.
    TxQueueFull,
}

/// What the engine needs to know about the virtual network.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub net: Ipv4Network,
    pub mtu: u32,
    /// Whether the DNS relay address exists (false with --disable-dns).
    pub dns_enabled: bool,
}

/// The MAC address of a virtual host: `52:55` followed by its IPv4 address.
pub fn virtual_mac(addr: Ipv4Addr) -> EthernetAddress {
    let [a, b, c, d] = addr.octets();
    EthernetAddress([0x52, 0x55, a, b, c, d])
}

pub struct Engine {
    cfg: EngineConfig,
    gateway_mac: EthernetAddress,
    dns_mac: EthernetAddress,
    /// The guest's MAC, learnt from the frames it sends.
    guest_mac: Option<EthernetAddress>,
    counters: Counters,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            gateway_mac: virtual_mac(cfg.net.gateway()),
            dns_mac: virtual_mac(cfg.net.dns()),
            guest_mac: None,
            counters: Counters::default(),
            cfg,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn guest_mac(&self) -> Option<EthernetAddress> {
        self.guest_mac
    }

    /// Whether `addr` is one of the virtual hosts the engine answers for.
    pub fn is_virtual_host(&self, addr: Ipv4Addr) -> bool {
        addr == self.cfg.net.gateway() || (self.cfg.dns_enabled && addr == self.cfg.net.dns())
    }

    /// Handles one frame from the guest, queueing any replies in `tx`.
    pub fn handle_frame(&mut self, frame: &[u8], tx: &mut TxQueue) {
        self.counters.frames_in += 1;
        self.counters.bytes_in += frame.len() as u64;
        if let Err(reason) = self.dispatch(frame, tx) {
            self.counters.count_drop(reason);
        }
    }

    fn dispatch(&mut self, frame: &[u8], tx: &mut TxQueue) -> Result<(), Drop> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| Drop::Malformed)?;
        let src = eth.src_addr();
        if !src.is_unicast() {
            return Err(Drop::Malformed);
        }
        let dst = eth.dst_addr();
        if !(dst.is_broadcast()
            || dst.is_multicast()
            || dst == self.gateway_mac
            || dst == self.dns_mac)
        {
            return Err(Drop::NotForUs);
        }
        self.guest_mac = Some(src);
        match eth.ethertype() {
            EthernetProtocol::Arp => arp::handle(self, eth.payload(), tx),
            EthernetProtocol::Ipv4 => self.handle_ipv4(src, eth.payload(), tx),
            _ => Err(Drop::Unsupported),
        }
    }

    fn handle_ipv4(
        &mut self,
        guest_mac: EthernetAddress,
        packet: &[u8],
        tx: &mut TxQueue,
    ) -> Result<(), Drop> {
        icmp::handle_ipv4(self, guest_mac, packet, tx)
    }

    /// Queues a frame of `payload_len` bytes after an Ethernet header from the virtual host
    /// `from` to `to`, and lets `fill` write the payload.
    pub(crate) fn emit_frame(
        &mut self,
        tx: &mut TxQueue,
        from: Ipv4Addr,
        to: EthernetAddress,
        ethertype: EthernetProtocol,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), Drop> {
        let eth_repr = EthernetRepr {
            src_addr: virtual_mac(from),
            dst_addr: to,
            ethertype,
        };
        let len = eth_repr.buffer_len() + payload_len;
        let buf = tx.push(len).ok_or(Drop::TxQueueFull)?;
        let mut frame = EthernetFrame::new_unchecked(buf);
        eth_repr.emit(&mut frame);
        fill(frame.payload_mut());
        self.counters.frames_out += 1;
        self.counters.bytes_out += len as u64;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests;
