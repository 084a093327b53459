//! A scripted guest: TCP segments built one by one and the engine's answers read back, for unit
//! tests of single cases (a keepalive probe, a duplicate segment, a zero window...).

use super::Side;
use crate::engine::testutil::{GATEWAY_IP, GUEST_IP, GUEST_MAC};
use crate::engine::virtual_mac;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl,
    TcpPacket, TcpRepr, TcpSeqNumber,
};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A TCP segment, as sent or received by the scripted guest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seg {
    pub seq: u32,
    pub ack: Option<u32>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub window: u16,
    pub payload: Vec<u8>,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub sack: Vec<(u32, u32)>,
}

impl Seg {
    /// Whether it is a bare ACK.
    pub fn is_pure_ack(&self) -> bool {
        !(self.syn || self.fin || self.rst) && self.payload.is_empty() && self.ack.is_some()
    }
}

/// Builds an Ethernet frame from the guest (`GUEST_MAC`, `from`) to the gateway's MAC.
pub fn frame(from: SocketAddr, to: SocketAddr, seg: &Seg) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (from.ip(), to.ip()) else {
        panic!("IPv4 only");
    };
    let mut ranges = [None; 3];
    for (range, &(l, r)) in ranges.iter_mut().zip(&seg.sack) {
        *range = Some((l, r));
    }
    let control = match (seg.syn, seg.fin, seg.rst) {
        (true, _, _) => TcpControl::Syn,
        (_, true, _) => TcpControl::Fin,
        (_, _, true) => TcpControl::Rst,
        _ => TcpControl::None,
    };
    let tcp = TcpRepr {
        src_port: from.port(),
        dst_port: to.port(),
        control,
        seq_number: TcpSeqNumber(seg.seq as i32),
        ack_number: seg.ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: seg.window,
        window_scale: seg.window_scale,
        max_seg_size: seg.mss,
        sack_permitted: seg.sack_permitted,
        sack_ranges: ranges,
        timestamp: None,
        payload: &seg.payload,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: GUEST_MAC,
        dst_addr: virtual_mac(GATEWAY_IP),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0xa5; eth.buffer_len() + ip.buffer_len() + tcp.buffer_len()];
    let caps = ChecksumCapabilities::default();
    let mut ethernet = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut ethernet);
    let mut packet = Ipv4Packet::new_unchecked(ethernet.payload_mut());
    ip.emit(&mut packet, &caps);
    let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
    tcp.emit(&mut segment, &src.into(), &dst.into(), &caps);
    buf
}

/// The TCP segment in a frame to the guest, with its addresses (from, to); None for anything
/// else (ARP, ICMP).
pub fn parse(frame: &[u8]) -> Option<(SocketAddr, SocketAddr, Seg)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let packet = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ip = Ipv4Repr::parse(&packet, &ChecksumCapabilities::default()).ok()?;
    if ip.next_header != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(packet.payload()).ok()?;
    let repr = TcpRepr::parse(
        &tcp,
        &ip.src_addr.into(),
        &ip.dst_addr.into(),
        &ChecksumCapabilities::default(),
    )
    .ok()?;
    let seg = Seg {
        seq: repr.seq_number.0 as u32,
        ack: repr.ack_number.map(|a| a.0 as u32),
        syn: repr.control == TcpControl::Syn,
        fin: repr.control == TcpControl::Fin,
        rst: repr.control == TcpControl::Rst,
        window: repr.window_len,
        payload: repr.payload.to_vec(),
        mss: repr.max_seg_size,
        window_scale: repr.window_scale,
        sack_permitted: repr.sack_permitted,
        sack: repr.sack_ranges.iter().flatten().copied().collect(),
    };
    Some((
        SocketAddr::new(ip.src_addr.into(), tcp.src_port()),
        SocketAddr::new(ip.dst_addr.into(), tcp.dst_port()),
        seg,
    ))
}

/// Where the scripted guest's connections go: a virtual listener beyond the gateway.
pub const REMOTE: &str = "192.0.2.10:80";

/// One engine and a guest connection to its virtual listener, stepped by hand on a virtual
/// clock.
pub struct Script {
    pub side: Side,
    pub base: Instant,
    pub now: Duration,
    pub guest: SocketAddr,
    pub remote: SocketAddr,
    /// The next sequence number the guest sends, and the next it expects.
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    /// The program's end of the connection (after [`Script::open`]).
    pub host: Option<UnixStream>,
    listener: crate::engine::services::virtual_net::VirtualListener,
}

impl Script {
    /// An engine (MTU `mtu`) listening on [`REMOTE`].
    pub fn new(mtu: u32) -> Self {
        let cfg = crate::engine::EngineConfig {
            mtu,
            tcp_peek_offset: true,
            ..crate::engine::EngineConfig::new(crate::engine::Ipv4Network::default())
        };
        let mut side = Side::new(cfg);
        let remote: SocketAddr = REMOTE.parse().expect("address");
        let listener = side.engine.listen(remote).expect("listen");
        listener.set_nonblocking(true).expect("nonblocking");
        Script {
            side,
            base: Instant::now(),
            now: Duration::ZERO,
            guest: SocketAddr::new(GUEST_IP.into(), 40000),
            remote,
            snd_nxt: 1000,
            rcv_nxt: 0,
            host: None,
            listener,
        }
    }

    pub fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// Sends `segs` as one batch and returns the engine's answers (everything it sends in that
    /// turn and those following at the same instant).
    pub fn send(&mut self, segs: &[Seg]) -> Vec<Seg> {
        let frames: Vec<Vec<u8>> = segs
            .iter()
            .map(|s| frame(self.guest, self.remote, s))
            .collect();
        self.turns(&frames)
    }

    /// Runs turns at this instant until the engine rests; returns the segments it sent.
    pub fn turns(&mut self, first: &[Vec<u8>]) -> Vec<Seg> {
        let mut out = Vec::new();
        let now = self.instant();
        let mut frames = first.to_vec();
        for _ in 0..100 {
            let mut sent = Vec::new();
            let busy = self.side.turn(now, &frames, &mut |f| {
                sent.push(f.to_vec());
                true
            });
            frames.clear();
            out.extend(sent.iter().filter_map(|f| parse(f)).map(|(_, _, s)| s));
            if !busy {
                return out;
            }
        }
        panic!("the engine does not rest");
    }

    /// Moves the clock by `by` and runs the turns due then.
    pub fn advance(&mut self, by: Duration) -> Vec<Seg> {
        self.now += by;
        self.turns(&[])
    }

    /// Moves the clock to the engine's next timer (at most `limit` on); returns when, and the
    /// segments sent then.
    pub fn next_timer(&mut self, limit: Duration) -> Option<(Duration, Vec<Seg>)> {
        let at = self
            .side
            .engine
            .poll_at()?
            .saturating_duration_since(self.base);
        if at > self.now + limit {
            return None;
        }
        self.now = at.max(self.now);
        Some((at, self.turns(&[])))
    }

    /// The program's end of the connection.
    pub fn host(&self) -> &UnixStream {
        self.host.as_ref().expect("an open connection")
    }

    /// Writes `data` into the program's end (all of it: the socket has room).
    pub fn host_write(&mut self, data: &[u8]) {
        std::io::Write::write_all(&mut self.host(), data).expect("host write");
    }

    /// Reads what the program's end has.
    pub fn host_read(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match std::io::Read::read(&mut self.host(), &mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return out,
                Err(e) => panic!("host read: {e}"),
            }
        }
    }

    /// A bare ACK from the guest of `ack`, with a window of `window` (before scaling).
    pub fn ack(&self, ack: u32, window: u16) -> Seg {
        Seg {
            ack: Some(ack),
            window,
            ..self.seg(&[])
        }
    }

    /// A segment from the guest with the current sequence numbers and an ACK.
    pub fn seg(&self, payload: &[u8]) -> Seg {
        Seg {
            seq: self.snd_nxt,
            ack: Some(self.rcv_nxt),
            window: 65535,
            payload: payload.to_vec(),
            ..Seg::default()
        }
    }

    /// Opens a connection: SYN (with window scale 7 and SACK permitted when `sack`), SYN-ACK,
    /// ACK; the listener's end is in `host`. Returns the SYN-ACK.
    pub fn open(&mut self, sack: bool) -> Seg {
        let syn = Seg {
            seq: self.snd_nxt,
            syn: true,
            window: 65535,
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: sack,
            ..Seg::default()
        };
        let answers = self.send(&[syn]);
        let syn_ack = answers
            .into_iter()
            .find(|s| s.syn && s.ack.is_some())
            .expect("a SYN-ACK");
        assert_eq!(syn_ack.ack, Some(self.snd_nxt.wrapping_add(1)));
        self.snd_nxt = self.snd_nxt.wrapping_add(1);
        self.rcv_nxt = syn_ack.seq.wrapping_add(1);
        let ack = self.seg(&[]);
        self.send(&[ack]);
        let (stream, _) = self.listener.accept().expect("the listener's connection");
        stream.set_nonblocking(true).expect("nonblocking");
        self.host = Some(stream);
        syn_ack
    }
}
