//! The flow table: every TCP connection, UDP flow and echo flow the guest has open, each with
//! the host socket it maps to.
//!
//! A flow is found by its key (protocol, guest address and port, remote address and port as
//! the guest sees them) and by its slot, whose number is also its mio token
//! (in [`crate::tokens::FLOWS`]). The table holds at most `max` flows: a new flow beyond that is
//! refused, never a reason to grow. A thirty-second of it, 8 at least (none in a table under
//! 64), is kept for DNS and ping: with the table full of connections, names still resolve and
//! ping works.

use super::{echo::EchoFlow, tcp::TcpConn, udp::UdpFlow, Core};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP echo: the "port" is the echo identifier.
    Icmp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub proto: Proto,
    pub guest: SocketAddr,
    pub remote: SocketAddr,
}

pub enum Flow {
    Tcp(Box<TcpConn>),
    // Boxed like TCP: the table's slots stay small, whatever the kind of flow.
    Udp(Box<UdpFlow>),
    Echo(Box<EchoFlow>),
}

impl Flow {
    /// Registers the flow's host socket with the poll, under the token of its slot.
    fn register(&mut self, registry: &mio::Registry, slot: usize) -> std::io::Result<()> {
        let token = crate::tokens::FLOWS.token(slot);
        let readable = mio::Interest::READABLE;
        match self {
            Flow::Tcp(conn) => conn.register(registry, token),
            Flow::Udp(udp) => match udp.socket_mut() {
                Some(sock) => registry.register(sock, token, readable),
                None => Ok(()),
            },
            Flow::Echo(echo) => match echo.socket_mut() {
                Some(sock) => registry.register(sock, token, readable),
                None => Ok(()),
            },
        }
    }

    /// The flow's key (kept by the flow itself, not twice in the table).
    pub fn key(&self) -> &FlowKey {
        match self {
            Flow::Tcp(conn) => conn.key(),
            Flow::Udp(udp) => udp.key(),
            Flow::Echo(echo) => echo.key(),
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Flow::Tcp(conn) => conn.deadline(),
            Flow::Udp(udp) => Some(udp.deadline()),
            Flow::Echo(echo) => Some(echo.deadline()),
        }
    }
}

/// Adds the flow `make` opens, registers its host socket and schedules its first deadline.
pub(crate) fn open_flow(
    core: &mut Core,
    flows: &mut FlowTable,
    key: FlowKey,
    make: impl FnOnce() -> std::io::Result<Flow>,
) -> Result<usize, InsertError<std::io::Error>> {
    let registry = &core.registry;
    let priority = key.proto == Proto::Icmp || core.is_dns(key.remote.ip());
    let slot = flows.insert(key, priority, |slot| {
        let mut flow = make()?;
        flow.register(registry, slot)?;
        Ok(flow)
    })?;
    core.counters.flows_opened += 1;
    let deadline = flows.get_mut(slot).and_then(|flow| flow.deadline());
    if let Some(deadline) = deadline {
        if flows.needs_timer(slot, deadline) {
            core.timers.schedule(deadline, slot);
        }
    }
    Ok(slot)
}

/// What a flow handler says about its flow afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Close,
}

struct Entry {
    flow: Flow,
    /// The earliest timer entry this flow has in the heap.
    scheduled: Option<Instant>,
}

pub struct FlowTable {
    slots: Vec<Option<Entry>>,
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

impl FlowTable {
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

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Flow> {
        self.slots.get_mut(slot)?.as_mut().map(|e| &mut e.flow)
    }

    /// Adds a flow made by `open`, which is told the slot (and so the token) it will have.
    /// A `priority` flow (DNS, ping) may take the reserved slots.
    pub fn insert<E>(
        &mut self,
        key: FlowKey,
        priority: bool,
        open: impl FnOnce(usize) -> Result<Flow, E>,
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
    pub fn remove(&mut self, slot: usize) -> Option<(FlowKey, Flow)> {
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

    fn key(port: u16) -> FlowKey {
        FlowKey {
            proto: Proto::Udp,
            guest: SocketAddr::new([10, 0, 2, 100].into(), port),
            remote: SocketAddr::new([192, 0, 2, 1].into(), 53),
        }
    }

    /// Inserts a socketless flow under `key(port)`.
    fn add(table: &mut FlowTable, port: u16) -> Result<usize, InsertError<()>> {
        add_as(table, port, false)
    }

    fn add_as(table: &mut FlowTable, port: u16, priority: bool) -> Result<usize, InsertError<()>> {
        table.insert(key(port), priority, |_| {
            Ok(Flow::Echo(Box::new(EchoFlow::placeholder(key(port)))))
        })
    }

    #[test]
    fn dns_and_ping_have_slots_of_their_own() {
        let mut table = FlowTable::new(64);
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
        let mut table = FlowTable::new(2);
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
        let mut table = FlowTable::new(4);
        let failed = table.insert(key(1), false, |_| Err::<Flow, _>("no socket"));
        assert!(matches!(failed, Err(InsertError::Open("no socket"))));
        assert_eq!(table.len(), 0);
        assert_eq!(add(&mut table, 1).unwrap(), 0);
    }

    #[test]
    fn one_timer_entry_per_earlier_deadline() {
        let mut table = FlowTable::new(1);
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
        let slot = std::mem::size_of::<Option<Entry>>();
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
