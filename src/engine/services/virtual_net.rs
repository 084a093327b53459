//! virtual_net - servers and clients of the program embedding the engine, in place of host
//! sockets: the guest reaches them, and they reach the guest, without any network socket.
//!
//! - [`Engine::listen`]: a TCP listener on a virtual `address:port`. A guest SYN to it makes a
//!   unix stream socket pair; the engine keeps one end as the flow's "host socket" (the TCP
//!   data path is the same as for a real host connection: the pair's kernel buffers are the
//!   only buffers), the other end goes to the [`VirtualListener`] over a SOCK_SEQPACKET pair
//!   with SCM_RIGHTS, with the guest's address. Accepting is a `recvmsg`, so the listener can
//!   block, or be polled by any event loop through its descriptor.
//! - [`Engine::connect`]: the other way, a connection opened toward a guest server, as a port
//!   forward's; the program holds a unix stream.
//! - [`Engine::bind_udp`]: a UDP endpoint on a virtual `address:port`, a unix datagram pair
//!   whose messages carry the guest's address before the payload ([`VirtualUdpSocket`] hides it).
//!
//! A virtual address inside the guest's network is answered for in ARP (with a MAC of its own),
//! as the gateway is; one outside it is reached through the gateway.

use crate::engine::flows::udp::UDP_HEADER;
use crate::engine::wire::key::{FlowKey, Proto};
use crate::engine::{Core, Cx, DropReason, Engine, GuestPacket, TxQueue};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Instant;

/// Most virtual UDP endpoints at once.
pub const MAX_UDP_ENDPOINTS: usize = 1024;
/// A guest address and port, as carried before each message: family (4 or 6), port, address.
const ADDR_HEADER: usize = 1 + 2 + 16;

/// The engine's side: listeners and endpoints by their virtual address.
#[derive(Default)]
pub(crate) struct Virtuals {
    /// The engine's end of each listener's descriptor channel.
    listeners: HashMap<SocketAddr, OwnedFd>,
    udp: Vec<Option<(SocketAddr, mio::net::UnixDatagram)>>,
}

impl Virtuals {
    /// Whether the engine answers for `addr` on some port (ARP, the Ethernet destination).
    pub(crate) fn has_address(&self, addr: IpAddr) -> bool {
        self.listeners.keys().any(|a| a.ip() == addr)
            || self.udp.iter().flatten().any(|(a, _)| a.ip() == addr)
    }

    fn udp_slot(&self, addr: SocketAddr) -> Option<usize> {
        self.udp
            .iter()
            .position(|e| e.as_ref().is_some_and(|(a, _)| *a == addr))
    }

    /// Whether a guest datagram to `addr` goes to a virtual endpoint.
    pub(crate) fn has_udp(&self, addr: SocketAddr) -> bool {
        self.udp_slot(addr).is_some()
    }

    /// For a guest SYN to `to` from `from`: the engine's end of a new connection if a listener
    /// is there (its other end passed to the listener), an error if the listener cannot take
    /// it (gone, or its backlog full), None if no listener is there.
    pub(crate) fn incoming(
        &mut self,
        to: SocketAddr,
        from: SocketAddr,
    ) -> Option<io::Result<mio::net::TcpStream>> {
        let channel = self.listeners.get(&to)?;
        let connection = (|| -> io::Result<mio::net::TcpStream> {
            let (ours, theirs) = stream_pair()?;
            let header = encode_addr(from);
            let fds = [theirs.as_raw_fd()];
            let cmsg = [ControlMessage::ScmRights(&fds)];
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            sendmsg::<()>(
                channel.as_raw_fd(),
                &[IoSlice::new(&header)],
                &cmsg,
                flags,
                None,
            )?;
            Ok(ours)
        })();
        if let Err(e) = &connection {
            if e.kind() != io::ErrorKind::WouldBlock {
                log::debug!("virtual listener {to} is gone: {e}");
                self.listeners.remove(&to);
            }
        }
        Some(connection)
    }
}

/// A unix stream pair: the engine's end non-blocking, as a mio stream; the program's end
/// blocking.
fn stream_pair() -> io::Result<(mio::net::TcpStream, OwnedFd)> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let ours = UnixStream::from(ours);
    ours.set_nonblocking(true)?;
    // The flow's data path wants a stream socket and nothing TCP-specific; a unix stream is one.
    let ours = mio::net::TcpStream::from_std(std::net::TcpStream::from(OwnedFd::from(ours)));
    Ok((ours, theirs))
}

fn encode_addr(addr: SocketAddr) -> [u8; ADDR_HEADER] {
    let mut header = [0u8; ADDR_HEADER];
    let (family, octets) = match addr.ip() {
        IpAddr::V4(v4) => (4, v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) => (6, v6.octets()),
    };
    header[0] = family;
    header[1..3].copy_from_slice(&addr.port().to_be_bytes());
    header[3..].copy_from_slice(&octets);
    header
}

fn decode_addr(header: &[u8]) -> Option<SocketAddr> {
    let header: &[u8; ADDR_HEADER] = header.get(..ADDR_HEADER)?.try_into().ok()?;
    let port = u16::from_be_bytes([header[1], header[2]]);
    let octets: [u8; 16] = header[3..].try_into().ok()?;
    let v6 = Ipv6Addr::from(octets);
    let ip = match header[0] {
        4 => IpAddr::V4(v6.to_ipv4_mapped()?),
        6 => IpAddr::V6(v6),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A TCP listener on a virtual address, made by [`Engine::listen`]. Each guest connection to
/// the address arrives as a [`UnixStream`] carrying the connection's bytes both ways.
///
/// [`accept`](Self::accept) blocks unless [`set_nonblocking`](Self::set_nonblocking) was
/// called; the descriptor ([`AsFd`]) turns readable when a connection is waiting, so the
/// listener can sit in any event loop. Dropping it makes the engine refuse further connections
/// to the address (the guest gets a reset).
#[derive(Debug)]
pub struct VirtualListener {
    channel: OwnedFd,
    addr: SocketAddr,
}

impl VirtualListener {
    /// The next connection, and the guest's address and port it comes from.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let mut header = [0u8; ADDR_HEADER];
        let (bytes, fds) =
            crate::sys::recv_with_fds(self.channel.as_fd(), &mut header, MsgFlags::empty())?;
        let peer = decode_addr(&header[..bytes]);
        match (fds.into_iter().next(), peer) {
            (Some(fd), Some(peer)) => Ok((UnixStream::from(fd), peer)),
            _ if bytes == 0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the engine is gone",
            )),
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, "bad message")),
        }
    }

    /// Makes [`accept`](Self::accept) return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        crate::sys::set_nonblocking(self.channel.as_fd(), nonblocking)
    }

    /// The virtual address and port listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl AsFd for VirtualListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.channel.as_fd()
    }
}

impl AsRawFd for VirtualListener {
    fn as_raw_fd(&self) -> RawFd {
        self.channel.as_raw_fd()
    }
}

/// A UDP endpoint on a virtual address, made by [`Engine::bind_udp`]: datagrams the guest sends
/// to the address, and datagrams to the guest from it. Blocking unless
/// [`set_nonblocking`](Self::set_nonblocking) was called; pollable through its descriptor.
#[derive(Debug)]
pub struct VirtualUdpSocket {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl VirtualUdpSocket {
    /// The next datagram from the guest, and where in the guest it came from. A datagram longer
    /// than `buf` is cut short.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut header = [0u8; ADDR_HEADER];
        let mut iov = [IoSliceMut::new(&mut header), IoSliceMut::new(buf)];
        let msg = recvmsg::<()>(self.socket.as_raw_fd(), &mut iov, None, MsgFlags::empty())?;
        let len = msg.bytes;
        let from = decode_addr(&header)
            .filter(|_| len >= ADDR_HEADER)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad message"))?;
        Ok((len - ADDR_HEADER, from))
    }

    /// Sends `buf` to `to` in the guest, from this endpoint's address.
    pub fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        let header = encode_addr(to);
        let iov = [IoSlice::new(&header), IoSlice::new(buf)];
        let sent = sendmsg::<()>(self.socket.as_raw_fd(), &iov, &[], MsgFlags::empty(), None)?;
        Ok(sent.saturating_sub(ADDR_HEADER))
    }

    /// Makes [`recv_from`](Self::recv_from) and [`send_to`](Self::send_to) return
    /// `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.socket.set_nonblocking(nonblocking)
    }

    /// The virtual address and port bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl AsFd for VirtualUdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for VirtualUdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// Whether `addr` can be a virtual address: a port, and a unicast address other than the guest
/// network's own and broadcast addresses.
fn check_virtual(cx: &Cx, addr: SocketAddr) -> io::Result<()> {
    let ip = addr.ip();
    let network_or_broadcast = match ip {
        IpAddr::V4(v4) => cx.cfg.net.is_network_or_broadcast(v4),
        IpAddr::V6(_) => false,
    };
    if addr.port() == 0 || ip.is_unspecified() || ip.is_multicast() || network_or_broadcast {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr} cannot be a virtual address"),
        ));
    }
    Ok(())
}

impl Engine {
    /// Listens for the guest's TCP connections to `addr`, a virtual address and port: any
    /// unicast address but the guest network's own and broadcast addresses — the gateway's too,
    /// taking that port over from the host's loopback. See [`VirtualListener`].
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<VirtualListener> {
        check_virtual(&self.core.cx, addr)?;
        let virtuals = &mut self.core.virtuals;
        if virtuals.listeners.contains_key(&addr) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{addr} is listened on already"),
            ));
        }
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        virtuals.listeners.insert(addr, ours);
        Ok(VirtualListener {
            channel: theirs,
            addr,
        })
    }

    /// Binds a UDP endpoint on `addr`, a virtual address and port (as for
    /// [`Engine::listen`]). See [`VirtualUdpSocket`].
    pub fn bind_udp(&mut self, addr: SocketAddr) -> io::Result<VirtualUdpSocket> {
        check_virtual(&self.core.cx, addr)?;
        let core = &mut self.core;
        if core.virtuals.has_udp(addr) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{addr} is bound already"),
            ));
        }
        let slot = match core.virtuals.udp.iter().position(Option::is_none) {
            Some(slot) => slot,
            None if core.virtuals.udp.len() < MAX_UDP_ENDPOINTS => core.virtuals.udp.len(),
            None => return Err(io::Error::other("too many virtual UDP endpoints")),
        };
        let (ours, theirs) = UnixDatagram::pair()?;
        ours.set_nonblocking(true)?;
        let mut ours = mio::net::UnixDatagram::from_std(ours);
        let token = crate::tokens::token(crate::tokens::Kind::VirtualUdp, slot);
        core.cx
            .registry
            .register(&mut ours, token, mio::Interest::READABLE)?;
        if slot == core.virtuals.udp.len() {
            core.virtuals.udp.push(Some((addr, ours)));
        } else {
            core.virtuals.udp[slot] = Some((addr, ours));
        }
        Ok(VirtualUdpSocket {
            socket: theirs,
            addr,
        })
    }

    /// Opens a TCP connection to a server in the guest at `guest` (one of its own addresses),
    /// as a port forward would; the guest sees it come from the gateway. The stream is usable
    /// at once: what is written waits until the guest accepts; a guest that refuses or never
    /// answers ends it (end of stream, or a reset).
    pub fn connect(
        &mut self,
        now: Instant,
        guest: SocketAddr,
        tx: &mut TxQueue,
    ) -> io::Result<UnixStream> {
        if !self.is_guest_address(guest.ip()) || guest.port() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{guest} is not a guest address"),
            ));
        }
        let (ours, theirs) = stream_pair()?;
        // The guest sees the gateway, from a port of the dynamic range no flow uses yet.
        let loopback: IpAddr = match guest {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        };
        let mut free_port = None;
        for _ in 0..64 {
            let port = 49152 + (self.core.cx.random_u32() % 16384) as u16;
            let remote = SocketAddr::new(self.core.cx.gateway_like(guest.ip()), port);
            let key = FlowKey {
                proto: Proto::Tcp,
                guest,
                remote,
            };
            if self.flows.lookup(&key).is_none() {
                free_port = Some(port);
                break;
            }
        }
        let port =
            free_port.ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port"))?;
        let client = SocketAddr::new(loopback, port);
        self.open_toward_guest(now, ours, client, guest, None, tx)
            .map_err(|reason| io::Error::other(format!("cannot connect: {reason:?}")))?;
        Ok(UnixStream::from(theirs))
    }

    /// Handles a readiness event of the virtual UDP endpoint in `slot`: its datagrams go to
    /// the guest.
    pub(crate) fn handle_virtual_event(&mut self, slot: usize, tx: &mut TxQueue) {
        let core = &mut self.core;
        let mut buf = std::mem::take(&mut core.scratch);
        let mut header = [0u8; ADDR_HEADER];
        while let Some(Some((from, socket))) = core.virtuals.udp.get(slot) {
            let from = *from;
            let payload = &mut buf[UDP_HEADER..];
            let mut iov = [IoSliceMut::new(&mut header), IoSliceMut::new(payload)];
            let len = match recvmsg::<()>(socket.as_raw_fd(), &mut iov, None, MsgFlags::empty()) {
                Ok(msg) => msg.bytes,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(_) => {
                    core.virtuals.udp[slot] = None;
                    break;
                }
            };
            let Some(to) = decode_addr(&header).filter(|_| len >= ADDR_HEADER) else {
                core.cx.counters.count_drop(DropReason::Malformed);
                continue;
            };
            let Some(mac) = core.cx.neighbor(to.ip()) else {
                core.solicit(tx, to.ip());
                core.cx.counters.count_drop(DropReason::Unsupported);
                continue;
            };
            let datagram = &mut buf[..UDP_HEADER + len - ADDR_HEADER];
            if let Err(reason) = core.cx.emit_udp(tx, mac, from, to, datagram) {
                core.cx.counters.count_drop(reason);
            } else {
                core.cx.counters.udp_datagrams_to_guest += 1;
            }
        }
        core.scratch = buf;
    }
}

/// Whether a guest datagram goes to a virtual UDP endpoint.
pub(crate) fn is_for_endpoint(core: &Core, packet: &GuestPacket) -> bool {
    !core.virtuals.udp.is_empty()
        && packet
            .udp_dst_port()
            .is_some_and(|port| core.virtuals.has_udp(SocketAddr::new(packet.dst, port)))
}

/// A guest datagram to a virtual UDP endpoint: to the program, with where it came from.
pub(crate) fn deliver_udp(core: &mut Core, packet: &GuestPacket) -> Result<(), DropReason> {
    let (repr, udp) = packet.parse_udp()?;
    let to = SocketAddr::new(packet.dst, repr.dst_port);
    let from = SocketAddr::new(packet.src, repr.src_port);
    let Some(slot) = core.virtuals.udp_slot(to) else {
        return Err(DropReason::NotForUs);
    };
    let Some((_, socket)) = &core.virtuals.udp[slot] else {
        return Err(DropReason::NotForUs);
    };
    let header = encode_addr(from);
    let iov = [IoSlice::new(&header), IoSlice::new(udp.payload())];
    match sendmsg::<()>(socket.as_raw_fd(), &iov, &[], MsgFlags::MSG_DONTWAIT, None) {
        Ok(_) => {
            core.cx.counters.udp_datagrams_from_guest += 1;
            Ok(())
        }
        // The program is not keeping up: the datagram is lost, as on a full socket.
        Err(nix::errno::Errno::EAGAIN) => Err(DropReason::TxQueueFull),
        Err(_) => {
            core.virtuals.udp[slot] = None;
            Err(DropReason::NotForUs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_survive_the_header() {
        for addr in [
            "10.0.2.100:80",
            "[fd00::100]:443",
            "0.0.0.0:0",
            "[::ffff:1.2.3.4]:9",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(decode_addr(&encode_addr(addr)), Some(addr));
        }
        assert_eq!(decode_addr(&[9; ADDR_HEADER]), None);
        assert_eq!(decode_addr(&[4; 3]), None);
    }
}
