//! spliced - connections the host loop joins in the kernel (its splice path), as flows of the
//! table: each holds a slot under the same `max_flows` as the flows the engine carries, and the
//! slot names its sockets' tokens. The sockets and pipes are the loop's; the entry here is its
//! place in the table, taken when the connection arrives and given back when the loop closes it.

use crate::engine::flows::table::InsertError;
use crate::engine::wire::key::{FlowKey, Proto};
use crate::engine::{open_flow, DropReason, Engine, Flow, TxQueue};
use std::net::SocketAddr;
use std::time::Instant;

/// A forwarded connection from host loopback for the splice path, with where it goes in the
/// guest and its flow slot.
pub(crate) struct SpliceCandidate {
    pub(crate) client: mio::net::TcpStream,
    pub(crate) guest: SocketAddr,
    pub(crate) slot: usize,
}

impl Engine {
    /// Takes a slot of the flow table for a connection from `client` to `server` that the loop
    /// splices; `None` (counted) when the table is full or the pair is in use.
    pub(crate) fn open_spliced(&mut self, client: SocketAddr, server: SocketAddr) -> Option<usize> {
        let key = FlowKey {
            proto: Proto::Tcp,
            guest: server,
            remote: client,
        };
        if self.flows.lookup(&key).is_some() {
            self.core.cx.counters.count_drop(DropReason::Refused);
            return None;
        }
        match open_flow(&mut self.core.cx, &mut self.flows, key, || {
            Ok(Flow::Spliced(Box::new(key)))
        }) {
            Ok(slot) => Some(slot),
            Err(InsertError::Full) => {
                self.core.cx.counters.count_drop(DropReason::FlowTableFull);
                None
            }
            Err(InsertError::Open(_)) => None,
        }
    }

    /// The loop closed the spliced connection in `slot`: its slot is free again.
    pub(crate) fn close_spliced(&mut self, slot: usize) {
        if let Some(Flow::Spliced(_)) = self.flows.get_mut(slot) {
            self.flows.remove(slot);
        }
    }

    /// Forwarded connections to be spliced (when `splice_loopback` is on), taken.
    pub(crate) fn take_splice_candidates(&mut self) -> Vec<SpliceCandidate> {
        std::mem::take(&mut self.core.splice_candidates)
    }

    /// A forwarded connection handed to the splice path that cannot take it (the namespace
    /// helper is gone): its slot is given back and it goes through the TAP like the others.
    pub(crate) fn open_unspliced(
        &mut self,
        now: Instant,
        candidate: SpliceCandidate,
        tx: &mut TxQueue,
    ) {
        self.close_spliced(candidate.slot);
        let Ok(client) = candidate.client.peer_addr() else {
            return;
        };
        // Counted once already, when it was handed over.
        let counters = &mut self.core.cx.counters;
        counters.forwarded_connections = counters.forwarded_connections.saturating_sub(1);
        let _ = self.open_toward_guest(now, candidate.client, client, candidate.guest, None, tx);
    }

    /// Sends forwarded connections from loopback through the TAP from now on, not to the
    /// splice path.
    pub(crate) fn stop_splicing(&mut self) {
        self.core.cx.cfg.splice_loopback = false;
    }
}
