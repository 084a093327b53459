//! context - what every layer's handlers share ([`Cx`]).

use crate::engine::{timers, virtual_mac, Counters, EngineConfig, POINT_TO_POINT_PEER_MAC};
use smoltcp::wire::EthernetAddress;
use std::collections::HashMap;
use std::net::IpAddr;

/// Most guest addresses whose MACs are remembered.
const MAX_NEIGHBORS: usize = 256;

/// What every layer's handlers share, borrowed apart from the rest of
/// [`Core`](crate::engine::Core) (as smoltcp passes its `Context`): the settings, the
/// counters, the poll and the timer wheel, the virtual hosts' MACs and the guest's, and the
/// source of unpredictable numbers. Frames are built (wire/) and addresses told apart
/// (link/addresses.rs) with this alone; a handler that needs a layer's own state (a flow's
/// TCP queues, the DHCP leases) takes `Core`, and passes `&mut core.cx` on.
pub(crate) struct Cx {
    pub(crate) cfg: EngineConfig,
    pub(crate) gateway_mac: EthernetAddress,
    pub(crate) dns_mac: EthernetAddress,
    pub(crate) counters: Counters,
    pub(crate) registry: mio::Registry,
    pub(crate) timers: timers::Timers,
    /// Source of initial sequence numbers and other unpredictable values.
    pub(crate) rng_state: u64,
    /// MACs of the guest's addresses, learnt from its frames (bounded).
    neighbors: HashMap<IpAddr, EthernetAddress>,
}

impl Cx {
    pub(super) fn new(cfg: EngineConfig, registry: mio::Registry) -> Self {
        let seed = std::collections::hash_map::RandomState::new();
        Cx {
            gateway_mac: virtual_mac(cfg.net.gateway()),
            dns_mac: virtual_mac(cfg.net.dns()),
            counters: Counters::default(),
            registry,
            timers: timers::Timers::default(),
            rng_state: std::hash::BuildHasher::hash_one(&seed, std::time::Instant::now()),
            neighbors: HashMap::new(),
            cfg,
        }
    }

    /// The largest IP packet the guest takes.
    pub fn mtu(&self) -> usize {
        self.cfg.mtu as usize
    }

    /// The MAC the guest uses for `addr`, if it has been seen.
    pub fn neighbor(&self, addr: IpAddr) -> Option<EthernetAddress> {
        if self.cfg.point_to_point {
            return Some(POINT_TO_POINT_PEER_MAC);
        }
        self.neighbors.get(&addr).copied()
    }

    pub(crate) fn learn_neighbor(&mut self, addr: IpAddr, mac: EthernetAddress) {
        // Called for every packet: the steady state (nothing new) costs one lookup.
        if self.neighbors.get(&addr) == Some(&mac) {
            return;
        }
        if self.neighbors.len() >= MAX_NEIGHBORS && !self.neighbors.contains_key(&addr) {
            // A guest with this many addresses is unusual: start over rather than grow.
            self.neighbors.clear();
        }
        self.neighbors.insert(addr, mac);
    }

    pub fn random_u32(&mut self) -> u32 {
        // splitmix64: good spread, no state beyond one word.
        self.rng_state = self.rng_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    }
}
