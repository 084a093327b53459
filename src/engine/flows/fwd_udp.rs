//! fwd_udp - datagrams at UDP forwards: taken a batch per system call, each to the guest on
//! its client's flow (opened for the client's first), from the client's own address where the
//! guest can answer it.

use crate::engine::flows::fwd::{guest_view, ForwardSpec};
use crate::engine::flows::table::ForwardRef;
use crate::engine::flows::udp::{batch_slots, UdpFlow, RECV_BATCH, RECV_SLOT, UDP_HEADER};
use crate::engine::wire::key::{FlowKey, Proto};
use crate::engine::{open_flow, Engine, Flow, TxQueue};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Instant;

impl Engine {
    /// Takes a batch of datagrams from UDP forward `forward` to the guest; whether the batch
    /// was full (more may wait).
    pub(in crate::engine) fn forward_datagrams(
        &mut self,
        now: Instant,
        forward: ForwardRef,
        spec: ForwardSpec,
        tx: &mut TxQueue,
    ) -> bool {
        let mut batch = std::mem::take(&mut self.core.udp_batch);
        if batch.is_empty() {
            batch = vec![0; RECV_BATCH * RECV_SLOT];
        }
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
                for i in 0..count {
                    let Some(client) = from[i] else {
                        continue;
                    };
                    let start = i * RECV_SLOT;
                    let datagram = &mut batch[start..start + UDP_HEADER + lens[i]];
                    self.forward_datagram(now, forward, spec, client, datagram, tx);
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
        let key = FlowKey {
            proto: Proto::Udp,
            guest: SocketAddr::new(spec.guest_addr, spec.guest_port),
            remote: guest_view(&core.cx, client, spec.guest_addr),
        };
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
        let slot = match self.flows.lookup(&key) {
            Some(slot) => slot,
            None => {
                let idle = core.cx.cfg.udp_idle_timeout;
                let opened = open_flow(&mut core.cx, &mut self.flows, key, || {
                    Ok(Flow::Udp(Box::new(UdpFlow::forwarded(
                        key, guest_mac, forward, client, now, idle,
                    ))))
                });
                match opened {
                    Ok(slot) => slot,
                    Err(_) => {
                        core.cx
                            .counters
                            .count_drop(crate::engine::DropReason::FlowTableFull);
                        return;
                    }
                }
            }
        };
        if let Some(Flow::Udp(flow)) = self.flows.get_mut(slot) {
            flow.answer_through(forward);
            flow.deliver_from_host(&mut self.core.cx, now, datagram, tx);
        }
    }
}
