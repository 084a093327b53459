//! `-t auto` / `-u auto`: forward the host's port P to the guest's port P for each port the
//! namespace listens on (TCP) or has bound (UDP), rescanned every second from the namespace's
//! /proc/net tables, as pasta does. A port that stops being listened on loses its forward.

use crate::engine::flows::fwd::{ForwardProto, ForwardSpec};
use crate::engine::Engine;
use crate::host::event_loop::{Periodic, Tick};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the namespace's sockets are looked at.
const RESCAN: Duration = Duration::from_secs(1);
/// TCP_LISTEN in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";
/// TCP_CLOSE: how an unconnected, bound UDP socket shows in /proc/net/udp.
const UDP_UNCONNECTED: &str = "07";

/// One `auto` specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoSpec {
    pub proto: ForwardProto,
    /// Host addresses each port is bound on.
    pub listen: Vec<IpAddr>,
    /// The host interface the listeners are bound to (`ADDR%IF`).
    pub device: Option<NonZeroU32>,
    /// The ports that may be forwarded (`None`: any).
    pub only: Option<Vec<RangeInclusive<u16>>>,
    pub excluded: Vec<RangeInclusive<u16>>,
}

impl AutoSpec {
    fn wants(&self, port: u16) -> bool {
        self.only
            .as_ref()
            .is_none_or(|ranges| ranges.iter().any(|r| r.contains(&port)))
            && !self.excluded.iter().any(|r| r.contains(&port))
    }
}

/// One `all` specification: every non-ephemeral port but the excluded ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllSpec {
    pub proto: ForwardProto,
    pub listen: Vec<IpAddr>,
    /// The host interface the listeners are bound to (`ADDR%IF`).
    pub device: Option<NonZeroU32>,
    pub excluded: Vec<RangeInclusive<u16>>,
    /// Where in the guest (`None`: the guest's own address of the listener's family).
    pub to_addr: Option<IpAddr>,
}

/// The first ephemeral port: `all` stops below it.
fn first_ephemeral_port() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// Binds what `specs` ask for, as pasta does: a port that cannot be bound (taken, or below
/// 1024 without the capability) is skipped. At most `budget` listeners, so that flows keep
/// descriptors. Fails only when nothing could be bound.
pub fn forward_all(
    engine: &mut Engine,
    specs: &[AllSpec],
    guest: (IpAddr, Option<IpAddr>),
    budget: usize,
) -> Result<(), String> {
    let last = first_ephemeral_port().saturating_sub(1);
    let mut listeners = engine.forwards_count();
    for spec in specs {
        let (mut bound, mut tried) = (0, 0);
        'ports: for port in 1..=last {
            if spec.excluded.iter().any(|r| r.contains(&port)) {
                continue;
            }
            for &listen in &spec.listen {
                if listeners >= budget {
                    log::warn!("all: stopped at port {port}: the descriptor budget keeps {budget} for listeners");
                    break 'ports;
                }
                tried += 1;
                let guest_addr = spec.to_addr.unwrap_or(match (listen, guest.1) {
                    (IpAddr::V6(_), Some(v6)) => v6,
                    _ => guest.0,
                });
                let forward = ForwardSpec {
                    proto: spec.proto,
                    host_addr: listen,
                    host_port: port,
                    guest_addr,
                    guest_port: port,
                    device: spec.device,
                };
                if engine.add_forward(forward).is_ok() {
                    bound += 1;
                    listeners += 1;
                }
            }
        }
        log::info!("all: {bound} of {tried} {:?} ports bound", spec.proto);
        if bound == 0 {
            return Err(format!("no {:?} port could be forwarded", spec.proto));
        }
    }
    Ok(())
}

/// A forward `auto` made: protocol, host address, interface and port.
type AutoKey = (ForwardProto, IpAddr, Option<NonZeroU32>, u16);

/// The scanner: its specifications, where the namespace's tables are, and the forwards it made.
pub struct AutoPorts {
    specs: Vec<AutoSpec>,
    /// /proc/PID/net of a process in the namespace (the helper, or the target).
    proc_net: PathBuf,
    /// The guest's address in each family the forwards go to.
    guest: (IpAddr, Option<IpAddr>),
    made: HashMap<AutoKey, u64>,
    /// `-T auto`: host loopback ports offered in the namespace's loopback while the host
    /// listens on them.
    to_host: Vec<AutoSpec>,
    /// The namespace-side ports asked for so far.
    offered: BTreeSet<u16>,
    /// `-U auto`: the same for UDP ports bound on the host.
    udp_to_host: Vec<AutoSpec>,
    offered_udp: BTreeSet<u16>,
    /// Ports whose forward could not be bound: not tried again until they go away and return.
    failed: HashSet<AutoKey>,
    due: Instant,
}

impl AutoPorts {
    pub fn new(
        specs: Vec<AutoSpec>,
        to_host: Vec<AutoSpec>,
        proc_net: PathBuf,
        guest: (IpAddr, Option<IpAddr>),
    ) -> Self {
        AutoPorts {
            specs,
            proc_net,
            guest,
            made: HashMap::new(),
            udp_to_host: to_host
                .iter()
                .filter(|s| s.proto == ForwardProto::Udp)
                .cloned()
                .collect(),
            to_host: to_host
                .into_iter()
                .filter(|s| s.proto == ForwardProto::Tcp)
                .collect(),
            offered: BTreeSet::new(),
            offered_udp: BTreeSet::new(),
            failed: HashSet::new(),
            due: Instant::now(),
        }
    }

    /// `-T auto`: offers in the namespace's loopback each host port listened on.
    fn offer_host_ports(&mut self, tick: &mut Tick<'_>) {
        let Some(splicer) = tick.splicer.as_deref_mut() else {
            return;
        };
        let wanted = host_ports_wanted(tick.engine, ForwardProto::Tcp, &self.to_host);
        for &port in self.offered.difference(&wanted) {
            splicer.drop_outward(tick.registry, host_loopback(port));
        }
        for &port in wanted.difference(&self.offered) {
            log::info!("auto: offering host port {port} in the namespace's loopback");
            splicer.request_outward(port, host_loopback(port));
        }
        self.offered = wanted;
    }

    /// `-U auto`: the same for UDP ports bound on the host.
    fn offer_host_udp_ports(&mut self, tick: &mut Tick<'_>) {
        let (Some(splicer), Some(relay)) =
            (tick.splicer.as_deref_mut(), tick.udp_outward.as_deref_mut())
        else {
            return;
        };
        let wanted = host_ports_wanted(tick.engine, ForwardProto::Udp, &self.udp_to_host);
        for &port in self.offered_udp.difference(&wanted) {
            relay.drop_socket(tick.registry, host_loopback(port));
        }
        for &port in wanted.difference(&self.offered_udp) {
            log::info!("auto: offering host UDP port {port} in the namespace's loopback");
            splicer.request_udp(port, host_loopback(port));
        }
        self.offered_udp = wanted;
    }
}

fn host_loopback(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port))
}

/// The host's `proto` ports that `specs` want offered in the namespace: those listened on (or
/// bound), but the forwards' own, which lead back into the namespace.
fn host_ports_wanted(engine: &Engine, proto: ForwardProto, specs: &[AutoSpec]) -> BTreeSet<u16> {
    let ours: BTreeSet<u16> = engine
        .forwards()
        .iter()
        .filter(|f| f.spec.proto == proto)
        .map(|f| f.spec.host_port)
        .collect();
    listening_in(std::path::Path::new("/proc/self/net"), proto)
        .into_iter()
        .filter(|port| !ours.contains(port))
        .filter(|&port| specs.iter().any(|spec| spec.wants(port)))
        .collect()
}

/// The ports listened on (TCP) or bound (UDP), both families, per the tables under `proc_net`.
fn listening_in(proc_net: &std::path::Path, proto: ForwardProto) -> BTreeSet<u16> {
    let (files, state) = match proto {
        ForwardProto::Tcp => (["tcp", "tcp6"], TCP_LISTEN),
        ForwardProto::Udp => (["udp", "udp6"], UDP_UNCONNECTED),
    };
    files
        .iter()
        .filter_map(|file| std::fs::read_to_string(proc_net.join(file)).ok())
        .flat_map(|table| listening_ports(&table, state))
        .collect()
}

/// Local ports of the sockets in `state` in a /proc/net/{tcp,udp}{,6} table.
fn listening_ports(table: &str, state: &str) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let st = fields.nth(1)?;
            let port = local.rsplit_once(':')?.1;
            (st == state)
                .then(|| u16::from_str_radix(port, 16).ok())
                .flatten()
        })
        .collect()
}

impl Periodic for AutoPorts {
    fn due_at(&self) -> Instant {
        self.due
    }

    fn run(&mut self, mut tick: Tick<'_>, now: Instant) {
        self.due = now + RESCAN;
        if !self.to_host.is_empty() {
            self.offer_host_ports(&mut tick);
        }
        if !self.udp_to_host.is_empty() {
            self.offer_host_udp_ports(&mut tick);
        }
        let engine = &mut *tick.engine;
        let mut wanted = HashSet::new();
        for proto in [ForwardProto::Tcp, ForwardProto::Udp] {
            let specs: Vec<&AutoSpec> = self.specs.iter().filter(|s| s.proto == proto).collect();
            if specs.is_empty() {
                continue;
            }
            let ports = listening_in(&self.proc_net, proto);
            for spec in specs {
                for &port in ports.iter().filter(|&&p| spec.wants(p)) {
                    for &listen in &spec.listen {
                        wanted.insert((proto, listen, spec.device, port));
                    }
                }
            }
        }
        self.made.retain(|key, id| {
            let keep = wanted.contains(key);
            if !keep {
                engine.remove_forward(*id);
            }
            keep
        });
        self.failed.retain(|key| wanted.contains(key));
        for key @ (proto, listen, device, port) in wanted {
            if self.made.contains_key(&key) || self.failed.contains(&key) {
                continue;
            }
            let guest_addr = match (listen, self.guest.1) {
                (IpAddr::V6(_), Some(v6)) => v6,
                _ => self.guest.0,
            };
            let spec = ForwardSpec {
                proto,
                host_addr: listen,
                host_port: port,
                guest_addr,
                guest_port: port,
                device,
            };
            match engine.add_forward(spec) {
                Ok(entry) => {
                    log::info!("auto: forwarding {proto:?} port {port} on {listen}");
                    self.made.insert(key, entry.id);
                }
                Err(e) => {
                    log::warn!("auto: cannot forward {proto:?} port {port} on {listen}: {e}");
                    self.failed.insert(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_from_proc_tables() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            \x20  0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
            \x20  1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n\
            \x20  2: 0A00020F:9C40 C0000201:0050 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n";
        assert_eq!(listening_ports(tcp, TCP_LISTEN), [80, 8080]);
        let spec = AutoSpec {
            proto: ForwardProto::Tcp,
            listen: vec![],
            device: None,
            only: Some(vec![8000..=8100]),
            excluded: vec![8080..=8080],
        };
        assert!(!spec.wants(80) && spec.wants(8081) && !spec.wants(8080));
    }
}
