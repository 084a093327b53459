//! fwd_udp - datagrams at UDP forwards: taken a batch per system call, each to the guest on
//! its client's flow (opened for the client's first), from the client's own address where the
//! guest can answer it.

use crate::engine::flows::fwd::{guest_view, ForwardSpec};
use crate::engine::flows::table::ForwardRef;
use crate::engine::flows::udp::{
    batch_datagrams, batch_slots, take_batch, UdpFlow, RECV_BATCH, RECV_SLOT, UDP_HEADER,
};
use crate::engine::wire::key::{FlowKey, Proto};
use crate::engine::wire::uso::uso_run;
use crate::engine::{open_flow, Engine, Flow, TxQueue};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Instant;

impl Engine {
    /// Takes a batch of datagrams from UDP forward `forward` to the guest; whether the batch
    /// was full (more may wait). With no room in the transmit queue, the datagrams wait in the
    /// socket, and the forward is read again once the queue drains (`forwards_pending`).
    pub(in crate::engine) fn forward_datagrams(
        &mut self,
        now: Instant,
        forward: ForwardRef,
        spec: ForwardSpec,
        tx: &mut TxQueue,
    ) -> bool {
        if !tx.has_room_for_bulk() {
            if !self.core.forwards_pending.contains(&forward.slot) {
                self.core.forwards_pending.push(forward.slot);
            }
            return false;
        }
        let mut batch = take_batch(&mut self.core);
        let mut lens = [0usize; RECV_BATCH];
        let mut from = [None; RECV_BATCH];
        let received = match self.core.forwards.udp_socket(forward) {
            Some(sock) => {
                let mut slots: [&mut [u8]; RECV_BATCH] =
                    batch_slots(&mut batch).map(|slot| &mut slot[UDP_HEADER..]);
                crate::sys::recv_datagrams_from(sock.as_fd(), &mut slots, &mut lens, &mut from)
            }
            None => Ok(0),
        };
        let full = match received {
            Ok(count) => {
                let mut at = 0;
                while at < count {
                    let Some(client) = from[at] else {
                        at += 1;
                        continue;
                    };
                    // A run from one client, of one size: one super-datagram to the guest.
                    let same_client = from[at..count]
                        .iter()
                        .take_while(|f| **f == Some(client))
                        .count();
                    let run = uso_run(&self.core.cx, spec.guest_addr, &lens[at..at + same_client]);
                    if run > 1 {
                        let datagrams = batch_datagrams(&batch, at, &lens[at..at + run]);
                        if self.forward_run(now, forward, spec, client, &datagrams[..run], tx) {
                            at += run;
                            continue;
                        }
                    }
                    let start = at * RECV_SLOT;
                    let datagram = &mut batch[start..start + UDP_HEADER + lens[at]];
                    self.forward_datagram(now, forward, spec, client, datagram, tx);
                    at += 1;
                }
                count == RECV_BATCH
            }
            Err(e) => e.kind() == io::ErrorKind::Interrupted,
        };
        self.core.udp_batch = batch;
        full
    }

    /// A datagram from `client` at UDP forward `forward`: to the guest, on the client's flow
    /// (which answers through `forward` from now on, should it have come through another).
    pub(in crate::engine) fn forward_datagram(
        &mut self,
        now: Instant,
        forward: ForwardRef,
        spec: ForwardSpec,
        client: SocketAddr,
        datagram: &mut [u8],
        tx: &mut TxQueue,
    ) {
        let core = &mut self.core;
        let Some(guest_mac) = core.cx.neighbor(spec.guest_addr) else {
            // Ask where the guest is (once for the datagrams waiting), and keep this one
            // until it answers.
            if !core.unresolved.waits_for(&spec) {
                core.solicit(tx, spec.guest_addr);
            }
            let payload = &datagram[UDP_HEADER..];
            if !core.unresolved.push(now, forward, spec, client, payload) {
                core.cx
                    .counters
                    .count_drop(crate::engine::DropReason::Unresolved);
            }
            return;
        };
        let Some(slot) = self.client_flow(now, forward, spec, client, guest_mac) else {
            return;
        };
        if let Some(Flow::Udp(flow)) = self.flows.get_mut(slot) {
            flow.answer_through(forward);
            flow.deliver_from_host(&mut self.core.cx, now, datagram, tx);
        }
    }

    /// `datagrams`, all from `client` and a run of one size, to the guest as one
    /// super-datagram on the client's flow; false (nothing done) when the guest's MAC is not
    /// known yet, for the datagrams to wait one by one.
    fn forward_run(
        &mut self,
        now: Instant,
        forward: ForwardRef,
        spec: ForwardSpec,
        client: SocketAddr,
        datagrams: &[&[u8]],
        tx: &mut TxQueue,
    ) -> bool {
        let Some(guest_mac) = self.core.cx.neighbor(spec.guest_addr) else {
            return false;
        };
        let Some(slot) = self.client_flow(now, forward, spec, client, guest_mac) else {
            return true;
        };
        if let Some(Flow::Udp(flow)) = self.flows.get_mut(slot) {
            flow.answer_through(forward);
            flow.deliver_run(&mut self.core.cx, now, datagrams, tx);
        }
        true
    }

    /// The flow of forward `spec`'s client `client`, opened for its first datagram; `None`
    /// (counted) when the table has no room.
    fn client_flow(
        &mut self,
        now: Instant,
        forward: ForwardRef,
        spec: ForwardSpec,
        client: SocketAddr,
        guest_mac: smoltcp::wire::EthernetAddress,
    ) -> Option<usize> {
        let key = FlowKey {
            proto: Proto::Udp,
            guest: SocketAddr::new(spec.guest_addr, spec.guest_port),
            remote: guest_view(&self.core.cx, client, spec.guest_addr),
        };
        if let Some(slot) = self.flows.lookup(&key) {
            return Some(slot);
        }
        let core = &mut self.core;
        let idle = core.cx.cfg.udp_idle_timeout;
        let opened = open_flow(&mut core.cx, &mut self.flows, key, || {
            Ok(Flow::Udp(Box::new(UdpFlow::forwarded(
                key, guest_mac, forward, client, now, idle,
            ))))
        });
        match opened {
            Ok(slot) => Some(slot),
            Err(_) => {
                core.cx
                    .counters
                    .count_drop(crate::engine::DropReason::FlowTableFull);
                None
            }
        }
    }
}
