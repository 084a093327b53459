//! pasta's `-U`: UDP from ports of the namespace's 127.0.0.1 to the host's loopback. Each
//! client (its address and port in the namespace) gets a socket of its own on the host,
//! connected to the host's port, so that replies find their way back to it; a client idle for
//! the UDP flow timeout loses its socket.

use crate::tokens::{self, Kind};
use mio::net::UdpSocket;
use mio::{Interest, Registry};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Most namespace-side sockets (one per -U port).
pub const MAX_SOCKETS: usize = 1024;
/// Most clients at once; more are dropped (counted in the log) until one goes idle.
pub const MAX_FLOWS: usize = 1 << 14;
/// The largest datagram.
const DATAGRAM: usize = 65535;
/// How often idle clients are looked for.
const SWEEP: Duration = Duration::from_secs(1);

struct Flow {
    host: UdpSocket,
    socket: usize,
    client: SocketAddr,
    last: Instant,
}

pub struct UdpOutward {
    /// The namespace-side sockets, each with the host address its clients reach; a slot is
    /// empty once its port is dropped (`-U auto`).
    sockets: Vec<Option<(UdpSocket, SocketAddr)>>,
    flows: Vec<Option<Flow>>,
    free: Vec<usize>,
    by_client: HashMap<(usize, SocketAddr), usize>,
    idle: Duration,
    next_sweep: Instant,
    buf: Vec<u8>,
}

impl UdpOutward {
    pub fn new(sockets: Vec<(OwnedFd, SocketAddr)>, idle: Duration) -> Self {
        let sockets = sockets
            .into_iter()
            .take(MAX_SOCKETS)
            .map(|(fd, host)| Some((UdpSocket::from_std(std::net::UdpSocket::from(fd)), host)))
            .collect();
        UdpOutward {
            sockets,
            flows: Vec::new(),
            free: Vec::new(),
            by_client: HashMap::new(),
            idle,
            next_sweep: Instant::now() + SWEEP,
            buf: vec![0; DATAGRAM],
        }
    }

    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        for (index, entry) in self.sockets.iter_mut().enumerate() {
            if let Some((socket, _)) = entry {
                registry.register(
                    socket,
                    tokens::token(Kind::OutwardUdpSocket, index),
                    Interest::READABLE,
                )?;
            }
        }
        Ok(())
    }

    /// A namespace-side socket made while running (`-U auto`), relaying to `host`.
    pub fn add_socket(&mut self, registry: &Registry, fd: OwnedFd, host: SocketAddr) {
        let mut socket = UdpSocket::from_std(std::net::UdpSocket::from(fd));
        let index = match self.sockets.iter().position(Option::is_none) {
            Some(index) => index,
            None if self.sockets.len() < MAX_SOCKETS => self.sockets.len(),
            None => return,
        };
        let token = tokens::token(Kind::OutwardUdpSocket, index);
        if registry
            .register(&mut socket, token, Interest::READABLE)
            .is_err()
        {
            return;
        }
        if index == self.sockets.len() {
            self.sockets.push(Some((socket, host)));
        } else {
            self.sockets[index] = Some((socket, host));
        }
    }

    /// Closes the namespace-side socket relaying to `host`; its clients' sockets go idle.
    pub fn drop_socket(&mut self, registry: &Registry, host: SocketAddr) {
        for entry in &mut self.sockets {
            if entry.as_ref().is_some_and(|(_, to)| *to == host) {
                if let Some((mut socket, _)) = entry.take() {
                    let _ = registry.deregister(&mut socket);
                }
            }
        }
    }

    /// Readiness of a namespace-side socket or of a client's host socket.
    pub fn on_event(&mut self, registry: &Registry, kind: Kind, index: usize, now: Instant) {
        match kind {
            Kind::OutwardUdpSocket => self.relay_to_host(registry, index, now),
            Kind::OutwardUdpFlow => self.relay_to_namespace(index, now),
            _ => {}
        }
    }

    /// Datagrams from the namespace's clients, each sent on from the client's host socket.
    fn relay_to_host(&mut self, registry: &Registry, index: usize, now: Instant) {
        loop {
            let Some(Some((socket, host))) = self.sockets.get(index) else {
                return;
            };
            let host = *host;
            let (len, client) = match socket.recv_from(&mut self.buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock, or an error queued by an ICMP message: nothing more to read now.
                Err(_) => return,
            };
            let slot = match self.by_client.get(&(index, client)) {
                Some(&slot) => slot,
                None => match self.open(registry, index, client, host, now) {
                    Some(slot) => slot,
                    None => continue,
                },
            };
            if let Some(flow) = self.flows[slot].as_mut() {
                flow.last = now;
                let _ = flow.host.send(&self.buf[..len]);
            }
        }
    }

    fn open(
        &mut self,
        registry: &Registry,
        socket: usize,
        client: SocketAddr,
        host: SocketAddr,
        now: Instant,
    ) -> Option<usize> {
        if self.by_client.len() >= MAX_FLOWS {
            log::debug!("-U: {MAX_FLOWS} clients already, dropping a datagram of {client}");
            return None;
        }
        let any = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        let mut udp = UdpSocket::bind(any).ok()?;
        udp.connect(host).ok()?;
        let slot = self.free.pop().unwrap_or(self.flows.len());
        let token = tokens::token(Kind::OutwardUdpFlow, slot);
        registry
            .register(&mut udp, token, Interest::READABLE)
            .ok()?;
        let flow = Flow {
            host: udp,
            socket,
            client,
            last: now,
        };
        if slot == self.flows.len() {
            self.flows.push(Some(flow));
        } else {
            self.flows[slot] = Some(flow);
        }
        self.by_client.insert((socket, client), slot);
        Some(slot)
    }

    /// Replies from the host, sent to the client from the namespace-side socket.
    fn relay_to_namespace(&mut self, slot: usize, now: Instant) {
        let Some(Some(flow)) = self.flows.get_mut(slot) else {
            return;
        };
        loop {
            match flow.host.recv(&mut self.buf) {
                Ok(len) => {
                    flow.last = now;
                    if let Some(Some((socket, _))) = self.sockets.get(flow.socket) {
                        let _ = socket.send_to(&self.buf[..len], flow.client);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock, or a refusal (ICMP) from the host's port: the client hears it as
                // silence, as from a lost datagram.
                Err(_) => return,
            }
        }
    }

    /// When idle clients are looked for next (while there are clients).
    pub fn next_deadline(&self) -> Option<Instant> {
        (!self.by_client.is_empty()).then_some(self.next_sweep)
    }

    /// Lets idle clients' sockets go (looked for once a second).
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP;
        for (slot, entry) in self.flows.iter_mut().enumerate() {
            if entry.as_ref().is_some_and(|f| f.last + self.idle <= now) {
                if let Some(mut flow) = entry.take() {
                    let _ = registry.deregister(&mut flow.host);
                    self.by_client.remove(&(flow.socket, flow.client));
                    self.free.push(slot);
                }
            }
        }
    }
}
