//! unresolved - datagrams from UDP forwards that wait for the guest's MAC. A kernel routing
//! to a neighbour it has not resolved yet queues the packets meanwhile (its unres_qlen) rather
//! than dropping them; so does the engine: the guest is asked (ARP or neighbour solicitation),
//! and what came for it goes on once it answers. What waits is bounded, and what waits too
//! long (the guest never answered) is dropped and counted.

use crate::engine::flows::fwd::ForwardSpec;
use crate::engine::flows::table::ForwardRef;
use crate::engine::flows::udp::UDP_HEADER;
use crate::engine::{Cx, DropReason, Engine, TxQueue};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most payload bytes waiting, all guest addresses together (the kernel's default
/// unres_qlen_bytes).
const MAX_BYTES: usize = 212_992;
/// A datagram waits this long for its guest's MAC at most (a kernel gives up resolving after
/// about as long: 3 probes a second apart).
const MAX_WAIT: Duration = Duration::from_secs(3);

struct Waiting {
    forward: ForwardRef,
    spec: ForwardSpec,
    client: SocketAddr,
    payload: Vec<u8>,
    since: Instant,
}

/// The datagrams waiting, oldest first.
#[derive(Default)]
pub(crate) struct Unresolved {
    queue: VecDeque<Waiting>,
    bytes: usize,
}

impl Unresolved {
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether a datagram for `spec`'s guest address waits already (its MAC was asked for).
    pub(crate) fn waits_for(&self, spec: &ForwardSpec) -> bool {
        self.queue
            .iter()
            .any(|w| w.spec.guest_addr == spec.guest_addr)
    }

    /// Keeps a datagram's payload until its guest's MAC is known; false (nothing kept) when
    /// there is no room.
    pub(crate) fn push(
        &mut self,
        now: Instant,
        forward: ForwardRef,
        spec: ForwardSpec,
        client: SocketAddr,
        payload: &[u8],
    ) -> bool {
        if self.bytes + payload.len() > MAX_BYTES {
            return false;
        }
        self.bytes += payload.len();
        self.queue.push_back(Waiting {
            forward,
            spec,
            client,
            payload: payload.to_vec(),
            since: now,
        });
        true
    }

    /// Takes the datagrams whose guest's MAC is known now, in order; drops (and counts) those
    /// that waited too long.
    fn take_ready(&mut self, cx: &mut Cx, now: Instant) -> Vec<Waiting> {
        let mut ready = Vec::new();
        let mut kept = VecDeque::new();
        for waiting in self.queue.drain(..) {
            if cx.neighbor(waiting.spec.guest_addr).is_some() {
                ready.push(waiting);
            } else if now.duration_since(waiting.since) > MAX_WAIT {
                cx.counters.count_drop(DropReason::Unresolved);
                self.bytes -= waiting.payload.len();
            } else {
                kept.push_back(waiting);
            }
        }
        for waiting in &ready {
            self.bytes -= waiting.payload.len();
        }
        self.queue = kept;
        ready
    }
}

impl Engine {
    /// Sends on the datagrams whose guest has answered since they came (called after frames
    /// from the guest, which teach the engine MACs, and from the timers).
    pub(in crate::engine) fn resolve_waiting(&mut self, now: Instant, tx: &mut TxQueue) {
        if self.core.unresolved.is_empty() {
            return;
        }
        let ready = self.core.unresolved.take_ready(&mut self.core.cx, now);
        let mut datagram = Vec::new();
        for waiting in ready {
            datagram.clear();
            datagram.resize(UDP_HEADER, 0);
            datagram.extend_from_slice(&waiting.payload);
            let (forward, spec, client) = (waiting.forward, waiting.spec, waiting.client);
            self.forward_datagram(now, forward, spec, client, &mut datagram, tx);
        }
    }

    /// When the oldest waiting datagram is given up, if none is sent on before.
    pub(in crate::engine) fn unresolved_deadline(&self) -> Option<Instant> {
        self.core
            .unresolved
            .queue
            .front()
            .map(|w| w.since + MAX_WAIT)
    }
}
