//! The flow table: every TCP connection, UDP flow and echo flow the guest has open, each with
//! the host socket it maps to.
//!
//! A flow is found by its key (protocol, guest address and port, remote address and port as
//! the guest sees them) and by its slot, whose number is also its mio token
//! (of kind [`crate::tokens::Kind::Flow`]). The table holds at most `max` flows: a new flow beyond that is
//! refused, never a reason to grow. A thirty-second of it, 8 at least (none in a table under
//! 64), is kept for DNS and ping: with the table full of connections, names still resolve and
//! ping works.

use crate::engine::wire::key::FlowKey;
use std::collections::HashMap;
use std::time::Instant;

/// Which forward a UDP flow's replies leave from: its slot, and its id, which is never reused
/// (a slot is), so that a flow outliving its forward never answers from the next one's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ForwardRef {
    pub(crate) slot: usize,
    pub(crate) id: u64,
}

/// What a flow handler says about its flow afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Close,
}

struct Entry<F> {
    flow: F,
    /// The earliest timer entry this flow has in the heap.
    scheduled: Option<Instant>,
}

/// What the table needs of a flow: the key it is found by (kept by the flow itself, not twice
/// in the table).
pub trait Keyed {
    fn key(&self) -> &FlowKey;
}

pub struct FlowTable<F> {
    slots: Vec<Option<Entry<F>>>,
    free: Vec<usize>,
    index: HashMap<FlowKey, usize>,
    max: usize,
    /// Slots only DNS and ping flows may take.
    reserved: usize,
}

/// Why a flow could not be added.
#[derive(Debug)]
pub enum InsertError<E> {
    Full,
    Open(E),
}

impl<F: Keyed> FlowTable<F> {
    pub fn new(max: usize) -> Self {
        FlowTable {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            max,
            reserved: if max >= 64 { (max / 32).max(8) } else { 0 },
        }
    }

    /// Whether a new flow (but a DNS or ping one) would be refused.
    pub fn is_full(&self) -> bool {
        self.len() + self.reserved >= self.max
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn lookup(&self, key: &FlowKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut F> {
        self.slots.get_mut(slot)?.as_mut().map(|e| &mut e.flow)
    }

    /// Adds a flow made by `open`, which is told the slot (and so the token) it will have.
    /// A `priority` flow (DNS, ping) may take the reserved slots.
    pub fn insert<E>(
        &mut self,
        key: FlowKey,
        priority: bool,
        open: impl FnOnce(usize) -> Result<F, E>,
    ) -> Result<usize, InsertError<E>> {
        let room = if priority {
            self.max
        } else {
            self.max - self.reserved
        };
        if self.len() >= room {
            return Err(InsertError::Full);
        }
        let slot = self.free.pop().unwrap_or(self.slots.len());
        let flow = match open(slot) {
            Ok(flow) => flow,
            Err(e) => {
                if slot < self.slots.len() {
                    self.free.push(slot);
                }
                return Err(InsertError::Open(e));
            }
        };
        debug_assert_eq!(flow.key(), &key);
        let entry = Entry {
            flow,
            scheduled: None,
        };
        if slot == self.slots.len() {
            self.slots.push(Some(entry));
        } else {
            self.slots[slot] = Some(entry);
        }
        self.index.insert(key, slot);
        Ok(slot)
    }

    /// Removes the flow in `slot`; dropping it closes its host socket.
    pub fn remove(&mut self, slot: usize) -> Option<(FlowKey, F)> {
        let entry = self.slots.get_mut(slot)?.take()?;
        self.index.remove(entry.flow.key());
        self.free.push(slot);
        Some((*entry.flow.key(), entry.flow))
    }

    /// Whether a timer entry for `when` is needed, given what the flow already has; records it.
    pub fn needs_timer(&mut self, slot: usize, when: Instant) -> bool {
        let Some(Some(entry)) = self.slots.get_mut(slot) else {
            return false;
        };
        if entry.scheduled.is_some_and(|s| s <= when) {
            return false;
        }
        entry.scheduled = Some(when);
        true
    }

    /// The flow's timer entry came due.
    pub fn timer_fired(&mut self, slot: usize) {
        if let Some(Some(entry)) = self.slots.get_mut(slot) {
            entry.scheduled = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::wire::key::Proto;
    use std::net::SocketAddr;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            proto: Proto::Udp,
            guest: SocketAddr::new([10, 0, 2, 100].into(), port),
            remote: SocketAddr::new([192, 0, 2, 1].into(), 53),
        }
    }

    /// A flow that is its key alone.
    struct Bare(FlowKey);

    impl Keyed for Bare {
        fn key(&self) -> &FlowKey {
            &self.0
        }
    }

    fn add(table: &mut FlowTable<Bare>, port: u16) -> Result<usize, InsertError<()>> {
        add_as(table, port, false)
    }

    fn add_as(
        table: &mut FlowTable<Bare>,
        port: u16,
        priority: bool,
    ) -> Result<usize, InsertError<()>> {
        table.insert(key(port), priority, |_| Ok(Bare(key(port))))
    }

    #[test]
    fn dns_and_ping_have_slots_of_their_own() {
        let mut table = FlowTable::<Bare>::new(64);
        for port in 0..56 {
            add(&mut table, port).unwrap();
        }
        assert!(table.is_full());
        assert!(matches!(add(&mut table, 56), Err(InsertError::Full)));
        for port in 56..64 {
            add_as(&mut table, port, true).unwrap();
        }
        assert!(matches!(
            add_as(&mut table, 64, true),
            Err(InsertError::Full)
        ));
    }

    #[test]
    fn bounded_and_slots_reused() {
        let mut table = FlowTable::<Bare>::new(2);
        let a = add(&mut table, 1).unwrap();
        let b = add(&mut table, 2).unwrap();
        assert!(matches!(add(&mut table, 3), Err(InsertError::Full)));
        assert_eq!(table.lookup(&key(2)), Some(b));
        table.remove(a);
        assert_eq!(table.lookup(&key(1)), None);
        assert_eq!(add(&mut table, 3).unwrap(), a, "freed slot reused");
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn failed_open_leaves_no_trace() {
        let mut table = FlowTable::<Bare>::new(4);
        let failed = table.insert(key(1), false, |_| Err::<Bare, _>("no socket"));
        assert!(matches!(failed, Err(InsertError::Open("no socket"))));
        assert_eq!(table.len(), 0);
        assert_eq!(add(&mut table, 1).unwrap(), 0);
    }

    #[test]
    fn one_timer_entry_per_earlier_deadline() {
        let mut table = FlowTable::<Bare>::new(1);
        let slot = add(&mut table, 1).unwrap();
        let t = Instant::now();
        assert!(table.needs_timer(slot, t + std::time::Duration::from_secs(2)));
        assert!(!table.needs_timer(slot, t + std::time::Duration::from_secs(3)));
        assert!(table.needs_timer(slot, t + std::time::Duration::from_secs(1)));
        table.timer_fired(slot);
        assert!(table.needs_timer(slot, t + std::time::Duration::from_secs(3)));
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// The engine's own state per flow, as bench/README.md states it: the table slot and index
    /// entry, plus the TCP connection state on the heap (a sender's RTT estimate, congestion window
    /// and recovery state included; SACK scoreboards and held data are allocated only while a
    /// connection has some). The kernel's socket comes on top.
    #[test]
    fn per_flow_state_stays_small() {
        use crate::engine::{flows::tcp::TcpConn, flows::udp::UdpFlow, Flow};
        let slot = std::mem::size_of::<Option<Entry<Flow>>>();
        let index = std::mem::size_of::<(FlowKey, usize)>() + 1; // hashbrown: entry + control byte
        let tcp = std::mem::size_of::<TcpConn>();
        let udp = std::mem::size_of::<UdpFlow>();
        eprintln!("slot {slot} B, index {index} B, TCP connection {tcp} B, UDP flow {udp} B");
        assert!(slot <= 48, "flow table slot is {slot} bytes");
        assert!(
            slot + index + tcp <= 440,
            "a TCP flow costs {} bytes",
            slot + index + tcp
        );
        assert!(
            slot + index + udp <= 288,
            "a UDP flow costs {} bytes",
            slot + index + udp
        );
    }
}
