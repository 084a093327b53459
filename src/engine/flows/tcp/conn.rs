//! One guest TCP connection and its host socket: the state machine of the module above
//! (handshakes, segment dispatch, timers, closing); the data paths are in `to_host` (guest data
//! to the host socket, and our ACKs) and `to_guest` (host data to the guest, the guest's ACKs,
//! loss recovery).

use super::congestion::{Rtt, Window};
use super::sack::{Reassembly, Scoreboard};
use super::segment::{emit_control, emit_data, Segment, SynOptions, GSO_MAX_PAYLOAD};
use super::PendingWrites;
use crate::engine::flows::table::Verdict;
use crate::engine::wire::key::FlowKey;
use crate::engine::{flows::sockets, Core, Cx, DropReason, Readiness, TxQueue, Unreachable};
use smoltcp::wire::{EthernetAddress, TcpControl, TcpRepr};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};
use timers::Timer;

mod handshake;
mod timers;
mod to_guest;
mod to_host;

/// MSS assumed when the guest's SYN names none (RFC 9293).
const DEFAULT_MSS: usize = 536;
/// Our window scale: windows up to 2^30 bytes, in steps of 128 bytes.
const OUR_WINDOW_SCALE: u8 = 7;
/// Timeouts in a row (retransmissions, handshake or zero-window probes unanswered) before the
/// guest is taken for gone: with the backoff, about two minutes.
const MAX_RETRIES: u8 = 12;
/// A connection closed in one direction only, with nothing moving either way for this long, is
/// taken for dead and reset (a peer that vanished mid-close would otherwise hold it forever).
const HALF_CLOSED_IDLE: Duration = Duration::from_secs(120);
/// Below this, the window we advertised may starve the guest: the host socket drains without
/// telling us (no write of ours failed, so no wake-up comes), so we look again after a while.
const LOW_WINDOW_MIN: u32 = 256 << 10;
const WINDOW_CHECK_FIRST_MS: u8 = 1;
/// How soon to ask again for a guest's MAC that a port forward needs.
const ARP_RETRY: Duration = Duration::from_millis(20);
const WINDOW_CHECK_MAX_MS: u8 = 32;
/// Duplicate ACKs, or segments' worth of SACKed data above a hole, that start loss recovery
/// (RFC 5681, RFC 6675); SACKs that show more reordering than this raise it, up to the most.
const DUP_THRESH: u32 = 3;
const MAX_REORDERING_SEGMENTS: u32 = 127;
/// Loss probes before the retransmission timeout takes over: one finds a lost tail, the
/// second a lost probe or resend, each after a couple of round trips rather than the 200 ms
/// (and more, backed off) of the timeout, which these short links make look long.
const MAX_PROBES: u8 = 2;
/// How much of the host socket's send buffer we offer the guest as window.
const SNDBUF_SHARE_NUM: usize = 3;
const SNDBUF_SHARE_DEN: usize = 4;
/// Duplicate ACKs sent with a window update after the host socket drained, when guest data it
/// could not take was neither written nor held: the guest then resends it at once instead of
/// waiting for its timer.
const DUP_ACKS_ON_REOPEN: usize = 3;

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The later of two sequence numbers.
fn seq_max(a: u32, b: u32) -> u32 {
    if seq_lt(a, b) {
        b
    } else {
        a
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// A port forward's connection: our SYN is out to the guest (or, its MAC unknown yet, an
    /// ARP request for it).
    SynSent,
    /// The host connect() is under way; the guest waits for its SYN-ACK.
    Connecting,
    /// The SYN-ACK is out; waiting for the guest's ACK of it.
    SynReceived,
    Established,
}

#[derive(Debug)]
pub struct TcpConn {
    key: FlowKey,
    /// Where the guest's segments last came from.
    guest_mac: EthernetAddress,
    stream: mio::net::TcpStream,
    state: State,

    // Guest to host.
    rcv_nxt: u32,
    /// The guest's FIN was received and passed on (shutdown of the host side).
    guest_fin: bool,
    /// The guest offered SACK: our ACKs report the data held out of order.
    sack_permitted: bool,
    /// An ACK is owed at the end of the batch (the flow is in the engine's list).
    ack_owed: bool,
    /// The owed ACK goes even if it repeats the last one (the guest sent something old, out of
    /// order or probing, and must hear where we are).
    ack_forced: bool,
    /// The acknowledgement number of the last segment sent: a data segment already carries
    /// an ACK that a bare one would repeat.
    ack_sent: u32,
    /// Guest segments taken since our last ACK (one goes for every second).
    segments_unacked: u8,
    /// The window in the last segment sent.
    window_sent: u32,
    /// Guest data the host socket did not take was dropped (not held): when the socket
    /// drains, the guest must hear of it.
    host_full: bool,
    /// The host socket's send buffer, in bytes: fixed when the socket was made (its size was
    /// set, which stops the kernel from tuning it), so read once.
    send_buffer: u32,
    /// The room in the host socket's send buffer when last measured, and the guest bytes
    /// written to it since: their difference is a safe (low) estimate of the room now, which
    /// saves the measuring system call while it stays large.
    room_measured: u32,
    written_since_measure: u32,
    /// Below this the advertised window counts as low (see LOW_WINDOW_MIN).
    low_window: u32,
    /// When to look whether a low window has opened, and how long to wait after that.
    window_check: Option<Instant>,
    window_check_ms: u8,
    /// Guest data beyond a hole (or that the host socket could not take yet), held until it
    /// can be written in order; allocated only while there is some.
    held: Option<Box<Reassembly>>,

    // Host to guest.
    iss: u32,
    snd_una: u32,
    /// The next new byte to send: everything before it was sent at least once.
    snd_nxt: u32,
    snd_wnd: u32,
    guest_wscale: u8,
    /// Our window scale, 0 when the guest did not offer scaling.
    our_wscale: u8,
    /// Payload bytes per segment to the guest.
    mss: u32,
    /// The host sent its end of stream.
    host_eof: bool,
    /// Our FIN was sent: it is the last sequence number, `snd_nxt - 1`.
    fin_sent: bool,
    fin_acked: bool,
    /// The last look found the host socket's receive queue empty beyond what was sent: until
    /// it reports new data, there is nothing new to peek for.
    host_drained: bool,
    /// The host socket reported its peer's end of stream (which a short peek does not show).
    host_read_closed: bool,
    /// Whether SO_PEEK_OFF is set on the socket (else the bytes before a peek are skipped),
    /// and the sequence number the socket's peek offset stands at.
    peek_offset: bool,
    peek_at: u32,
    rtt: Rtt,
    window: Window,
    /// The RTT measurement under way: when the segment timed was sent, and its end (Karn:
    /// none is taken across a retransmission).
    timing: Option<Instant>,
    timing_end: u32,
    /// Loss recovery: on since loss was found (by ACKs, or the timer) until everything sent
    /// before then (`recover`) is acknowledged. Bytes below `rtx_end` that the guest has not
    /// SACKed are taken for lost and resent from `rtx_next` on, as the window allows.
    in_recovery: bool,
    recovery_by_timeout: bool,
    recover: u32,
    rtx_next: u32,
    rtx_end: u32,
    /// `snd_nxt` when something was last resent: a SACK beyond it with the hole still there
    /// means that resent data was lost again.
    rtx_mark: u32,
    /// The first lost segment goes at once, whatever the congestion window (RFC 6675 5(3),
    /// and NewReno's partial ACK): the window catches up with the flight afterwards.
    rtx_now: bool,
    /// What the guest SACKed; allocated once it SACKs something.
    sacked: Option<Box<Scoreboard>>,
    dup_acks: u8,
    /// How much data the guest may SACK above a hole before the hole is taken for lost, in
    /// bytes: three segments until the guest shows more reordering than that (RFC 4653's
    /// idea, as Linux's tcp_reordering, but counted in bytes: a super-packet is one frame).
    reordering: u32,
    /// The highest byte ever sent again: a hole the guest fills below it may have been filled
    /// by a resend, which says nothing of reordering.
    high_rxt: u32,
    /// Loss probes sent since the last acknowledgement of new data (see MAX_PROBES).
    probes: u8,
    /// Timeouts since the guest last answered (see MAX_RETRIES).
    unanswered: u8,

    timer: Option<Instant>,
    timer_kind: Timer,
    /// When the guest or the host last sent anything.
    last_activity: Instant,
    /// What to tell the host client once the guest answers our SYN (an inbound SOCKS5
    /// connection), boxed: most connections have none.
    replies: Option<Box<ConnectReplies>>,
}

/// Bytes for the host client of a connection opened toward the guest, by how the guest
/// answered: accepted, refused (RST), or never (our SYNs timed out). The connection is closed
/// gracefully after either failure, so that the client reads its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectReplies {
    pub accepted: [u8; 10],
    pub refused: [u8; 10],
    pub unanswered: [u8; 10],
}

impl TcpConn {
    pub(crate) fn key(&self) -> &FlowKey {
        &self.key
    }

    /// Registers the host socket: readable for data, writable for the connect and a drained
    /// send buffer.
    pub(crate) fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
    ) -> io::Result<()> {
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        registry.register(&mut self.stream, token, interest)
    }

    /// Replies go where the guest's segments last came from.
    pub(super) fn set_guest_mac(&mut self, mac: EthernetAddress) {
        self.guest_mac = mac;
    }

    /// A connection for the guest's `syn`, whose host socket `stream` is connecting.
    pub(crate) fn new(
        key: FlowKey,
        guest_mac: EthernetAddress,
        (stream, send_buffer): (mio::net::TcpStream, u32),
        syn: &TcpRepr,
        iss: u32,
        mtu_mss: usize,
        now: Instant,
    ) -> Self {
        let scaling = syn.window_scale.is_some();
        let mss =
            u32::from(syn.max_seg_size.unwrap_or(DEFAULT_MSS as u16)).clamp(64, mtu_mss as u32);
        TcpConn {
            rcv_nxt: (syn.seq_number.0 as u32).wrapping_add(1),
            snd_wnd: u32::from(syn.window_len),
            guest_wscale: syn.window_scale.unwrap_or(0).min(14),
            our_wscale: if scaling { OUR_WINDOW_SCALE } else { 0 },
            sack_permitted: syn.sack_permitted,
            mss,
            window: Window::new(mss),
            ..Self::base(
                key,
                guest_mac,
                (stream, send_buffer),
                State::Connecting,
                iss,
                mtu_mss,
                now,
            )
        }
    }

    /// A connection a port forward accepted on the host (`stream`), to be opened toward the
    /// guest as `key` says.
    pub(crate) fn forwarded(
        key: FlowKey,
        stream: (mio::net::TcpStream, u32),
        iss: u32,
        mtu_mss: usize,
        now: Instant,
    ) -> Self {
        let unknown_mac = EthernetAddress::BROADCAST;
        TcpConn {
            // Our SYN takes a sequence number.
            snd_nxt: iss.wrapping_add(1),
            timer_kind: Timer::Handshake,
            ..Self::base(key, unknown_mac, stream, State::SynSent, iss, mtu_mss, now)
        }
    }

    /// What every connection starts from; the constructors set what the handshake knows.
    fn base(
        key: FlowKey,
        guest_mac: EthernetAddress,
        (stream, send_buffer): (mio::net::TcpStream, u32),
        state: State,
        iss: u32,
        mtu_mss: usize,
        now: Instant,
    ) -> Self {
        TcpConn {
            key,
            guest_mac,
            stream,
            state,
            rcv_nxt: 0,
            guest_fin: false,
            sack_permitted: false,
            ack_owed: false,
            ack_forced: false,
            ack_sent: 0,
            segments_unacked: 0,
            window_sent: 0,
            host_full: false,
            send_buffer,
            // A new socket's send buffer is empty: all of it is room.
            room_measured: (send_buffer as usize * SNDBUF_SHARE_NUM / SNDBUF_SHARE_DEN) as u32,
            written_since_measure: 0,
            low_window: LOW_WINDOW_MIN.max(4 * mtu_mss as u32),
            window_check: None,
            window_check_ms: WINDOW_CHECK_FIRST_MS,
            held: None,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_wnd: 0,
            guest_wscale: 0,
            our_wscale: OUR_WINDOW_SCALE,
            mss: mtu_mss as u32,
            host_eof: false,
            fin_sent: false,
            fin_acked: false,
            host_drained: false,
            host_read_closed: false,
            peek_offset: false,
            peek_at: iss,
            rtt: Rtt::default(),
            window: Window::new(mtu_mss as u32),
            timing: None,
            timing_end: iss,
            in_recovery: false,
            recovery_by_timeout: false,
            recover: iss,
            rtx_next: iss,
            rtx_end: iss,
            rtx_mark: iss,
            rtx_now: false,
            sacked: None,
            dup_acks: 0,
            reordering: 0,
            high_rxt: iss,
            probes: 0,
            unanswered: 0,
            timer: None,
            timer_kind: Timer::Handshake,
            last_activity: now,
            replies: None,
        }
    }

    /// Tells the host client how the guest answered (see [`ConnectReplies`]).
    pub(crate) fn with_replies(mut self, replies: ConnectReplies) -> Self {
        self.replies = Some(Box::new(replies));
        self
    }

    /// Writes the reply `pick` chooses to the host client, if one is owed; returns whether one
    /// was.
    fn reply_to_host(&mut self, pick: fn(&ConnectReplies) -> &[u8; 10]) -> bool {
        let Some(replies) = self.replies.take() else {
            return false;
        };
        // Ten bytes into a fresh socket's empty send buffer: written whole or not at all.
        if let Err(e) = (&self.stream).write(pick(&replies)) {
            log::debug!("tcp {:?}: reply to the host client: {e}", self.key);
        }
        true
    }

    /// The handshake is over.
    fn established(&mut self, now: Instant) {
        self.state = State::Established;
        self.timer = None;
        self.unanswered = 0;
        self.rtt.reset_backoff();
        self.last_activity = now;
    }

    /// The sequence number of our FIN, once sent.
    fn fin_seq(&self) -> Option<u32> {
        self.fin_sent.then(|| self.snd_nxt.wrapping_sub(1))
    }

    /// Bytes (and a FIN) sent and not yet acknowledged.
    fn outstanding(&self) -> u32 {
        self.snd_nxt.wrapping_sub(self.snd_una)
    }

    fn segment(&self, seq: u32, window: u32) -> Segment {
        let scaled = (window >> self.our_wscale).min(u16::MAX as u32) as u16;
        let sack = match &self.held {
            Some(held) if self.sack_permitted => held.sack_blocks(self.rcv_nxt),
            _ => [None; 3],
        };
        Segment {
            mac: self.guest_mac,
            from: self.key.remote,
            to: self.key.guest,
            seq,
            ack: self.rcv_nxt,
            window: scaled,
            sack,
        }
    }

    fn send_control(&mut self, cx: &mut Cx, tx: &mut TxQueue, control: TcpControl, seq: u32) {
        self.send_control_reporting(cx, tx, control, seq, None);
    }

    /// A control segment, its SACK blocks led by `duplicate` when there is one (see
    /// [`TcpConn::send_dsack`]).
    fn send_control_reporting(
        &mut self,
        cx: &mut Cx,
        tx: &mut TxQueue,
        control: TcpControl,
        seq: u32,
        duplicate: Option<(u32, u32)>,
    ) {
        let window = self.receive_window();
        let mut seg = self.segment(seq, window);
        if duplicate.is_some() {
            seg.sack = [duplicate, seg.sack[0], seg.sack[1]];
        }
        match emit_control(cx, tx, &seg, control, true, None) {
            Ok(()) => self.told(&seg, window),
            Err(reason) => cx.counters.count_drop(reason),
        }
    }

    /// A segment carrying `seg`'s acknowledgement and `window` went to the guest.
    fn told(&mut self, seg: &Segment, window: u32) {
        self.ack_sent = seg.ack;
        self.segments_unacked = 0;
        self.window_sent = window;
    }

    fn send_ack(&mut self, cx: &mut Cx, tx: &mut TxQueue) {
        self.send_control(cx, tx, TcpControl::None, self.snd_nxt);
    }

    /// An ACK whose first SACK block reports `duplicate`, data the guest sent twice (D-SACK,
    /// RFC 2883): its kernel learns that a retransmission was not needed.
    fn send_dsack(&mut self, cx: &mut Cx, tx: &mut TxQueue, duplicate: (u32, u32)) {
        let seq = self.snd_nxt;
        self.send_control_reporting(cx, tx, TcpControl::None, seq, Some(duplicate));
    }

    /// Resets the guest's side.
    fn reset_guest(&mut self, cx: &mut Cx, tx: &mut TxQueue) {
        self.send_control(cx, tx, TcpControl::Rst, self.snd_nxt);
        cx.counters.tcp_resets += 1;
    }

    /// Resets the host's side (the socket is closed when the flow is dropped).
    fn reset_host(&self) {
        sockets::reset_on_close(&self.stream);
    }

    /// Readiness of the host socket.
    pub(crate) fn on_socket_event(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        readiness: Readiness,
        tx: &mut TxQueue,
    ) -> Verdict {
        self.host_read_closed |= readiness.read_closed;
        if self.state == State::Connecting {
            if !(readiness.writable || readiness.error) {
                return Verdict::Keep;
            }
            // Until the guest's ACK opens the connection, only this event can tell of data.
            self.host_drained = !readiness.readable;
            return self.connect_done(&mut core.cx, now, readiness.error, tx);
        }
        if self.state == State::SynSent {
            // The host side is connected already; its data waits until the guest answers.
            if readiness.error {
                return Verdict::Close;
            }
            return Verdict::Keep;
        }
        if readiness.writable {
            if let Some(verdict) = self.on_host_writable(&mut core.cx, tx) {
                return verdict;
            }
        }
        if readiness.readable || readiness.error {
            self.host_drained = false;
            let verdict = self.send_data(core, slot, now, tx);
            self.update_timer(now);
            return verdict;
        }
        self.update_timer(now);
        Verdict::Keep
    }

    /// A segment from the guest for this connection.
    pub(super) fn on_segment<'a>(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        seg: &TcpRepr<'a>,
        tx: &mut TxQueue,
        pending: &mut PendingWrites<'a>,
    ) -> Verdict {
        if seg.control == TcpControl::Rst {
            let refused = self.state == State::SynSent && self.reply_to_host(|r| &r.refused);
            if !refused {
                self.reset_host();
            }
            return Verdict::Close;
        }
        self.last_activity = now;
        match self.state {
            // The guest retransmits its SYN while the host connects: nothing to say yet.
            State::Connecting => return Verdict::Keep,
            State::SynSent => {
                if seg.control == TcpControl::Syn
                    && seg.ack_number.map(|a| a.0 as u32) == Some(self.iss.wrapping_add(1))
                {
                    self.on_syn_ack(&mut core.cx, now, seg, tx);
                    let verdict = self.send_data(core, slot, now, tx);
                    self.update_timer(now);
                    return verdict;
                }
                return Verdict::Keep;
            }
            State::SynReceived => {
                if seg.control == TcpControl::Syn {
                    self.send_syn_ack(&mut core.cx, tx);
                    return Verdict::Keep;
                }
                if seg.ack_number.map(|a| a.0 as u32) != Some(self.iss.wrapping_add(1)) {
                    return Verdict::Keep;
                }
                self.snd_una = self.iss.wrapping_add(1);
                self.peek_at = self.snd_una;
                self.established(now);
            }
            State::Established => {
                if seg.control == TcpControl::Syn {
                    // A stale SYN: answer with an ACK of where we are.
                    self.force_ack(core, slot, tx, None);
                    return Verdict::Keep;
                }
            }
        }
        if let Some(ack) = seg.ack_number {
            if let Some(verdict) = self.on_ack(&mut core.cx, now, ack.0 as u32, seg, tx) {
                return verdict;
            }
        }
        if let Some(verdict) = self.on_data(core, slot, now, seg, tx, pending) {
            return verdict;
        }
        if self.guest_fin && self.fin_acked {
            // Both directions are done; the ACK of the guest's FIN cannot wait for the batch
            // to end, the flow is going now.
            if std::mem::take(&mut self.ack_owed) {
                self.send_ack(&mut core.cx, tx);
            }
            return Verdict::Close;
        }
        let verdict = self.send_data(core, slot, now, tx);
        self.update_timer(now);
        verdict
    }
}
