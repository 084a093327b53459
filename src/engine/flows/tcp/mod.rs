//! tcp - guest TCP connections translated onto host TCP sockets, without buffers of our own.
//!
//! # Theory of operation
//!
//! Each guest connection is paired with one host socket. The engine terminates neither side's
//! stream in a buffer: it translates sequence numbers and lets the two kernels do the work. To
//! the guest it is a TCP peer its kernel would recognise: it acknowledges as a receiving
//! kernel does, and sends as a kernel sends, with an RTT estimate, a congestion window and
//! SACK-driven loss recovery, because the links it runs on (an emulator's queue, a slow cable,
//! a TAP whose kernel drops) lose and delay frames.
//!
//! Opening: a SYN from the guest starts a non-blocking `connect()` on the host. The SYN-ACK goes
//! to the guest only once the host connection is established; a refused connection becomes a
//! RST, an unreachable network or host an ICMP error, so the guest's `connect()` fails the way
//! it would on a real network. MSS, window scaling and SACK are negotiated with the guest.
//!
//! Guest to host (`conn`'s `to_host`): segments in sequence are written to the host socket
//! with a non-blocking send — consecutive ones of a batch of frames gathered into one `writev`
//! (`PendingWrites`); only what the socket took is acknowledged, and the window advertised is
//! the room left in the socket's send buffer. One ACK goes for every second segment taken (as
//! a receiving kernel sends them: the guest's window grows by small steps, it never bursts a
//! whole batch's worth), one for what is left at the end of a batch, and one at once, even if
//! it repeats the last, for anything not in order: a duplicate or old segment (reported as a
//! D-SACK), a keepalive or window probe, a segment beyond a hole. Data beyond a hole is held
//! (bounded per connection and by `tcp_hold_memory` for the engine; SACK blocks report it)
//! until the hole fills, then written with it: a lost segment costs the guest that segment
//! only. So is data the socket could not take yet, until it drains; a window update follows.
//!
//! Host to guest (`conn`'s `to_guest`): data stays in the host socket's receive queue until
//! the guest acknowledges it. It is peeked (MSG_PEEK) straight into frames — with SO_PEEK_OFF
//! at any offset where the kernel has it, else by skipping what comes before — never beyond
//! the guest's window nor the congestion window, and only while the link takes frames (see
//! `TxQueue`): translate, don't buffer. A guest ACK of N bytes discards N bytes from the queue
//! (MSG_TRUNC). Loss shows by three duplicate ACKs, or SACKed data above a hole beyond the
//! reordering the connection has seen; recovery then resends the holes only, from the queue
//! (NewReno without SACK). A loss probe goes a couple of round trips after the last ACK if
//! nothing else moved (the tail, or in recovery the first hole: twice at most), and the
//! retransmission timeout (RFC 6298) comes last, resending everything not SACKed.
//!
//! Closing: the guest's FIN becomes `shutdown(SHUT_WR)` once its data is all written; the
//! host's end of stream becomes a FIN to the guest after the last byte. A RST either way resets
//! the other side. The flow ends when both FINs are acknowledged, or on a reset.
//!
//! # Sequence variables
//!
//! - `rcv_nxt`: the next sequence number expected from the guest (what we ACK); data held
//!   lies beyond it.
//! - `iss`: our initial sequence number towards the guest.
//! - `snd_una`: the oldest byte sent to the guest and not acknowledged; it is the first byte of
//!   the host socket's receive queue.
//! - `snd_nxt`: the next new byte to send: everything before it was sent at least once, and
//!   `snd_nxt - snd_una` bytes are outstanding. It never goes back: resends go from `rtx_next`
//!   up to `rtx_end`, skipping what the guest SACKed.
//! - `snd_wnd`: the guest's receive window, in bytes (scaled); `cwnd` (in `congestion`) the
//!   congestion window.
//!
//! # Timeouts
//!
//! The SYN-ACK and data outstanding are retransmitted on the RTO of RFC 6298 (200 ms to 30 s,
//! backed off; loss probes come before it); after 12 fruitless timeouts in a row (over two
//! minutes) both sides are reset. A zero window is probed on the same timer for as long as the
//! guest answers. A half-closed connection idle for two minutes is reset; established
//! connections have no idle timeout, as on a real network (keepalives are the guest's own, and
//! answered).

mod congestion;
mod conn;
mod sack;
mod segment;

pub use conn::{ConnectReplies, TcpConn};
pub(crate) use sack::HoldBudget;

use crate::engine::flows::table::{InsertError, Verdict};
use crate::engine::wire::key::{FlowKey, Proto};
use crate::engine::{flows::sockets, Core, Cx, DropReason, GuestPacket, TxQueue, Unreachable};
use crate::engine::{open_flow, settle, Flow, Flows};

/// System calls moving TCP data (for --enable-seccomp): peeks and discards (recvfrom; recvmsg
/// without SO_PEEK_OFF), writes of guest data (writev, sendto).
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_writev,
    libc::SYS_sendto,
];
use segment::{emit_control, Segment};
use smoltcp::wire::{EthernetAddress, TcpControl, TcpPacket, TcpRepr};
use std::io;
use std::time::Instant;

/// In-order guest data gathered from consecutive frames of one batch for one connection, to
/// be written to its host socket with one `writev` instead of one `write` per segment.
#[derive(Default)]
pub(crate) struct PendingWrites<'a> {
    slot: Option<usize>,
    bufs: Vec<io::IoSlice<'a>>,
    bytes: usize,
}

/// More than this many gathered segments or bytes are written at once.
const GATHER_MAX_SEGMENTS: usize = 64;
const GATHER_MAX_BYTES: usize = 512 << 10;

impl<'a> PendingWrites<'a> {
    /// The sequence number after the data gathered for `slot`, whose next expected is `next`.
    fn end_for(&self, slot: usize, next: u32) -> u32 {
        if self.slot == Some(slot) {
            next.wrapping_add(self.bytes as u32)
        } else {
            next
        }
    }

    fn push(&mut self, slot: usize, data: &'a [u8]) {
        self.slot = Some(slot);
        self.bufs.push(io::IoSlice::new(data));
        self.bytes += data.len();
    }

    fn is_full(&self) -> bool {
        self.bufs.len() >= GATHER_MAX_SEGMENTS || self.bytes >= GATHER_MAX_BYTES
    }

    fn clear(&mut self) {
        self.slot = None;
        self.bufs.clear();
        self.bytes = 0;
    }
}

/// Writes out what was gathered, if anything.
pub(crate) fn flush_pending(
    core: &mut Core,
    flows: &mut Flows,
    pending: &mut PendingWrites,
    now: Instant,
    tx: &mut TxQueue,
) {
    let Some(slot) = pending.slot else {
        return;
    };
    if let Some(Flow::Tcp(conn)) = flows.get_mut(slot) {
        let verdict = conn
            .write_pending(core, slot, pending, now, tx)
            .unwrap_or(Verdict::Keep);
        let deadline = conn.deadline();
        settle(&mut core.cx, flows, slot, verdict, deadline);
    }
    pending.clear();
}

/// A TCP segment from the guest.
pub(crate) fn handle<'a>(
    core: &mut Core,
    flows: &mut Flows,
    now: Instant,
    guest: &GuestPacket<'a>,
    tx: &mut TxQueue,
    pending: &mut PendingWrites<'a>,
) -> Result<(), DropReason> {
    let packet = TcpPacket::new_checked(guest.payload).map_err(|_| DropReason::Malformed)?;
    let seg = TcpRepr::parse(
        &packet,
        &guest.src.into(),
        &guest.dst.into(),
        &guest.transport_checksums(),
    )
    .map_err(|_| DropReason::Malformed)?;
    let key = crate::engine::key(Proto::Tcp, guest, seg.src_port, seg.dst_port);
    let slot = flows.lookup(&key);
    if pending.slot.is_some() && pending.slot != slot {
        flush_pending(core, flows, pending, now, tx);
    }
    if let Some(slot) = slot {
        let Some(Flow::Tcp(conn)) = flows.get_mut(slot) else {
            return Err(DropReason::Unsupported);
        };
        conn.set_guest_mac(guest.mac);
        let verdict = conn.on_segment(core, slot, now, &seg, tx, pending);
        if verdict == Verdict::Close && pending.slot == Some(slot) {
            pending.clear();
        }
        let deadline = conn.deadline();
        settle(&mut core.cx, flows, slot, verdict, deadline);
        return Ok(());
    }
    match (seg.control, seg.ack_number) {
        (TcpControl::Syn, None) => open(core, flows, now, key, guest, &seg, tx),
        (TcpControl::Rst, _) => Err(DropReason::NotForUs),
        _ => {
            // No such connection: reset, as a host would.
            reset_unknown(&mut core.cx, tx, guest.mac, &key, &seg);
            Err(DropReason::NotForUs)
        }
    }
}

/// Answers a segment for no connection with a RST (RFC 9293, 3.10.7.1).
fn reset_unknown(
    cx: &mut Cx,
    tx: &mut TxQueue,
    mac: EthernetAddress,
    key: &FlowKey,
    seg: &TcpRepr,
) {
    let (seq, ack, with_ack) = match seg.ack_number {
        Some(ack) => (ack.0 as u32, 0, false),
        None => (
            0,
            (seg.seq_number.0 as u32).wrapping_add(seg.segment_len() as u32),
            true,
        ),
    };
    let out = Segment {
        mac,
        from: key.remote,
        to: key.guest,
        seq,
        ack,
        window: 0,
        sack: [None; 3],
    };
    if emit_control(cx, tx, &out, TcpControl::Rst, with_ack, None).is_ok() {
        cx.counters.tcp_resets += 1;
    }
}

/// Where a guest connection goes.
enum Peer {
    /// The engine's end of a virtual connection.
    Virtual(mio::net::TcpStream),
    /// A host address, and the source address to connect from.
    Host(std::net::SocketAddr, Option<std::net::IpAddr>),
}

fn open(
    core: &mut Core,
    flows: &mut Flows,
    now: Instant,
    key: FlowKey,
    guest: &GuestPacket,
    syn: &TcpRepr,
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    // The other end: a virtual listener's (one end of a stream pair, whose other end the
    // listener has now), or a host socket to where the destination really is.
    let peer = match core.virtuals.incoming(key.remote, key.guest) {
        Some(Ok(stream)) => Peer::Virtual(stream),
        Some(Err(_)) => {
            reset_unknown(&mut core.cx, tx, guest.mac, &key, syn);
            return Err(DropReason::Refused);
        }
        None => {
            let Some(dst) = guest.route_new_flow(core, now, Proto::Tcp, key.remote, tx)? else {
                reset_unknown(&mut core.cx, tx, guest.mac, &key, syn);
                return Err(DropReason::Refused);
            };
            Peer::Host(dst, core.cx.outbound_source(dst.ip()))
        }
    };
    let dst = match peer {
        Peer::Virtual(_) => key.remote,
        Peer::Host(dst, _) => dst,
    };
    let iss = core.cx.random_u32();
    let mtu_mss = core.cx.mtu_mss(key.guest.ip());
    let opened = open_flow(&mut core.cx, flows, key, || {
        let stream = match peer {
            Peer::Virtual(stream) => {
                let send_buffer = sockets::size_send_buffer(&stream);
                (stream, send_buffer)
            }
            Peer::Host(dst, source) => sockets::tcp_connect(dst, source)?,
        };
        let conn = TcpConn::new(key, guest.mac, stream, syn, iss, mtu_mss, now);
        Ok(Flow::Tcp(Box::new(conn)))
    });
    match opened {
        Ok(_) => Ok(()),
        Err(InsertError::Full) => {
            reset_unknown(&mut core.cx, tx, guest.mac, &key, syn);
            Err(DropReason::FlowTableFull)
        }
        Err(InsertError::Open(e)) => {
            log::debug!("tcp {key:?}: cannot connect to {dst}: {e}");
            // The connection failed at once: tell the guest as a real network would.
            match e.raw_os_error() {
                Some(libc::ENETUNREACH) => guest.unreachable(&mut core.cx, tx, Unreachable::Net)?,
                Some(libc::EHOSTUNREACH) => {
                    guest.unreachable(&mut core.cx, tx, Unreachable::Host)?
                }
                _ => reset_unknown(&mut core.cx, tx, guest.mac, &key, syn),
            }
            Err(DropReason::HostSocket)
        }
    }
}

#[cfg(test)]
mod tests;
