//! One guest TCP connection and its host socket: the state machine of the module above
//! (handshakes, ACK processing, timers); the data paths are in `to_host` and `to_guest`.

use super::segment::{emit_control, emit_data, Segment, SynOptions, GSO_MAX_PAYLOAD};
use super::PendingWrites;
use crate::engine::flow::{FlowKey, Verdict};
use crate::engine::{sockets, Core, Drop, Readiness, TxQueue, Unreachable};
use smoltcp::wire::{EthernetAddress, TcpControl, TcpRepr};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

mod to_guest;
mod to_host;

/// MSS assumed when the guest's SYN names none (RFC 9293).
const DEFAULT_MSS: usize = 536;
/// Our window scale: windows up to 2^30 bytes, in steps of 128 bytes.
const OUR_WINDOW_SCALE: u8 = 7;
const RTO_INITIAL_MS: u32 = 200;
const RTO_MAX_MS: u32 = 30_000;
const MAX_RETRIES: u8 = 12;
/// A connection closed in one direction only, with nothing moving either way for this long, is
/// taken for dead and reset (a peer that vanished mid-close would otherwise hold it forever).
const HALF_CLOSED_IDLE: Duration = Duration::from_secs(120);
/// Below this, the window we advertised may starve the guest: the host socket drains without
/// telling us (no write of ours failed, so no wake-up comes), so we look again after a while.
const LOW_WINDOW_MIN: u32 = 256 << 10;
const WINDOW_CHECK_FIRST_MS: u32 = 1;
/// How soon to ask again for a guest's MAC that a port forward needs.
const ARP_RETRY: Duration = Duration::from_millis(20);
const WINDOW_CHECK_MAX_MS: u32 = 32;
/// Data from the guest between two ACKs at most (within a batch; every batch ends with one):
/// two full segments, but no less than ACK_EVERY_BYTES, where small segments would make
/// the ACKs cost more than they bring.
const ACK_EVERY_SEGMENTS: u32 = 2;
const ACK_EVERY_BYTES: u32 = 128 << 10;
/// How much of the host socket's send buffer we offer the guest as window.
const SNDBUF_SHARE_NUM: usize = 3;
const SNDBUF_SHARE_DEN: usize = 4;
/// Duplicate ACKs sent with a window update after the host socket drained, so the guest
/// retransmits what it could not hand over at once instead of waiting for its timer.
const DUP_ACKS_ON_REOPEN: usize = 3;

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
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

pub struct TcpConn {
    key: FlowKey,
    /// Where the guest's segments last came from.
    guest_mac: EthernetAddress,
    stream: mio::net::TcpStream,
    state: State,
    rcv_nxt: u32,
    iss: u32,
    snd_una: u32,
    snd_nxt: u32,
    snd_wnd: u32,
    guest_wscale: u8,
    /// Our window scale, 0 when the guest did not offer scaling.
    our_wscale: u8,
    /// Payload bytes per segment to the guest.
    mss: usize,
    /// The guest's FIN was received and passed on (shutdown of the host side).
    guest_fin: bool,
    /// The host sent its end of stream.
    host_eof: bool,
    /// The sequence number of our FIN, once sent.
    fin_seq: Option<u32>,
    fin_acked: bool,
    /// The last look found the host socket's receive queue empty beyond what is in flight:
    /// until it reports new data (or a rewind), there is nothing to peek for.
    host_drained: bool,
    /// The host socket reported its peer's end of stream (which a short peek does not show).
    host_read_closed: bool,
    /// The guest data we could not hand to the host socket (it was full): when it drains, the
    /// guest must hear of it.
    host_full: bool,
    dup_acks: u8,
    /// Retransmission timeout, milliseconds (a Duration would take 16 bytes per connection).
    rto_ms: u32,
    retries: u8,
    /// Retransmission or probe deadline.
    timer: Option<Instant>,
    /// Whether SO_PEEK_OFF is set on the socket (else the bytes in flight are skipped).
    peek_offset: bool,
    /// An ACK is owed at the end of the batch (the flow is in the engine's list).
    ack_owed: bool,
    /// The acknowledgement number of the last segment sent: a data segment already carries
    /// an ACK that a bare one would repeat.
    ack_sent: u32,
    /// When the guest or the host last sent anything.
    last_activity: Instant,
    /// The window in the last segment sent.
    window_sent: u32,
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
    window_check_ms: u32,
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
        TcpConn {
            rcv_nxt: (syn.seq_number.0 as u32).wrapping_add(1),
            snd_wnd: u32::from(syn.window_len),
            guest_wscale: syn.window_scale.unwrap_or(0).min(14),
            our_wscale: if scaling { OUR_WINDOW_SCALE } else { 0 },
            mss: usize::from(syn.max_seg_size.unwrap_or(DEFAULT_MSS as u16)).clamp(64, mtu_mss),
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
            send_buffer,
            // A new socket's send buffer is empty: all of it is room.
            room_measured: (send_buffer as usize * SNDBUF_SHARE_NUM / SNDBUF_SHARE_DEN) as u32,
            written_since_measure: 0,
            key,
            guest_mac,
            stream,
            state,
            rcv_nxt: 0,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_wnd: 0,
            guest_wscale: 0,
            our_wscale: OUR_WINDOW_SCALE,
            mss: mtu_mss,
            guest_fin: false,
            host_eof: false,
            fin_seq: None,
            fin_acked: false,
            host_full: false,
            host_drained: false,
            host_read_closed: false,
            dup_acks: 0,
            rto_ms: RTO_INITIAL_MS,
            retries: 0,
            timer: None,
            peek_offset: false,
            ack_owed: false,
            ack_sent: 0,
            last_activity: now,
            window_sent: 0,
            low_window: LOW_WINDOW_MIN.max(4 * mtu_mss as u32),
            window_check: None,
            window_check_ms: WINDOW_CHECK_FIRST_MS,
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

    /// Sends our SYN to the guest, or asks for the guest's MAC first.
    pub(crate) fn send_syn(&mut self, core: &mut Core, now: Instant, tx: &mut TxQueue) {
        let guest = self.key.guest.ip();
        let Some(mac) = core.neighbor(guest) else {
            core.solicit(tx, guest);
            self.timer = Some(now + ARP_RETRY);
            return;
        };
        self.guest_mac = mac;
        let options = SynOptions {
            mss: core.mtu_mss(guest) as u16,
            window_scale: Some(self.our_wscale),
        };
        let seg = Segment {
            window: self.receive_window().min(u16::MAX as u32) as u16,
            ..self.segment(self.iss, 0)
        };
        if let Err(reason) = emit_control(core, tx, &seg, TcpControl::Syn, false, Some(options)) {
            core.counters.count_drop(reason);
        }
        self.arm_timer(now);
    }

    /// The guest's SYN-ACK to our SYN: the connection is open.
    fn on_syn_ack(&mut self, core: &mut Core, now: Instant, seg: &TcpRepr, tx: &mut TxQueue) {
        self.rcv_nxt = (seg.seq_number.0 as u32).wrapping_add(1);
        self.snd_una = self.iss.wrapping_add(1);
        self.snd_nxt = self.snd_una;
        self.snd_wnd = u32::from(seg.window_len);
        match seg.window_scale {
            Some(scale) => self.guest_wscale = scale.min(14),
            None => self.our_wscale = 0,
        }
        let mtu_mss = core.mtu_mss(self.key.guest.ip());
        self.mss = usize::from(seg.max_seg_size.unwrap_or(DEFAULT_MSS as u16)).clamp(64, mtu_mss);
        if core.cfg.tcp_peek_offset {
            self.peek_offset = crate::sys::set_peek_offset(self.stream.as_fd(), 0).is_ok();
        }
        self.state = State::Established;
        self.timer = None;
        self.retries = 0;
        self.rto_ms = RTO_INITIAL_MS;
        self.last_activity = now;
        self.reply_to_host(|r| &r.accepted);
        self.send_ack(core, tx);
    }

    pub fn deadline(&self) -> Option<Instant> {
        match (self.timer, self.window_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn in_flight(&self) -> u32 {
        self.snd_nxt.wrapping_sub(self.snd_una)
    }

    fn segment(&self, seq: u32, window: u32) -> Segment {
        let scaled = (window >> self.our_wscale).min(u16::MAX as u32) as u16;
        Segment {
            mac: self.guest_mac,
            from: self.key.remote,
            to: self.key.guest,
            seq,
            ack: self.rcv_nxt,
            window: scaled,
        }
    }

    fn send_control(&mut self, core: &mut Core, tx: &mut TxQueue, control: TcpControl, seq: u32) {
        let window = self.receive_window();
        let seg = self.segment(seq, window);
        match emit_control(core, tx, &seg, control, true, None) {
            Ok(()) => {
                self.ack_sent = seg.ack;
                self.window_sent = window;
            }
            Err(reason) => core.counters.count_drop(reason),
        }
    }

    fn send_ack(&mut self, core: &mut Core, tx: &mut TxQueue) {
        self.send_control(core, tx, TcpControl::None, self.snd_nxt);
    }

    fn send_syn_ack(&mut self, core: &mut Core, tx: &mut TxQueue) {
        let mss = core.mtu_mss(self.key.guest.ip()) as u16;
        let options = SynOptions {
            mss,
            window_scale: (self.our_wscale > 0).then_some(self.our_wscale),
        };
        // The window in a SYN is never scaled.
        let window = self.receive_window().min(u16::MAX as u32) as u16;
        let seg = Segment {
            window,
            ..self.segment(self.iss, 0)
        };
        if let Err(reason) = emit_control(core, tx, &seg, TcpControl::Syn, true, Some(options)) {
            core.counters.count_drop(reason);
        }
    }

    /// Resets the guest's side.
    fn reset_guest(&mut self, core: &mut Core, tx: &mut TxQueue) {
        self.send_control(core, tx, TcpControl::Rst, self.snd_nxt);
        core.counters.tcp_resets += 1;
    }

    /// Resets the host's side (the socket is closed when the flow is dropped).
    fn reset_host(&self) {
        sockets::reset_on_close(&self.stream);
    }

    fn arm_timer(&mut self, now: Instant) {
        self.timer = Some(now + Duration::from_millis(self.rto_ms.into()));
    }

    fn half_closed(&self) -> bool {
        self.guest_fin != self.host_eof
    }

    /// Keeps the timers in step with what is outstanding.
    fn update_timer(&mut self, now: Instant) {
        if !self.window_is_low() {
            self.window_check = None;
            self.window_check_ms = WINDOW_CHECK_FIRST_MS;
        } else if self.window_check.is_none() {
            self.window_check = Some(now + Duration::from_millis(self.window_check_ms.into()));
        }
        let outstanding = self.in_flight() > 0
            || matches!(self.state, State::SynReceived | State::SynSent)
            || (self.snd_wnd == 0 && self.state == State::Established && !self.host_eof);
        if outstanding {
            if self.timer.is_none() {
                self.arm_timer(now);
            }
            return;
        }
        self.retries = 0;
        self.rto_ms = RTO_INITIAL_MS;
        self.timer = self
            .half_closed()
            .then(|| self.last_activity + HALF_CLOSED_IDLE);
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
            return self.connect_done(core, now, readiness.error, tx);
        }
        if self.state == State::SynSent {
            // The host side is connected already; its data waits until the guest answers.
            if readiness.error {
                return Verdict::Close;
            }
            return Verdict::Keep;
        }
        if readiness.writable && self.host_full {
            self.host_full = false;
            // Window update, then duplicates so the guest resends what it still holds.
            for _ in 0..=DUP_ACKS_ON_REOPEN {
                self.send_ack(core, tx);
            }
        }
        if readiness.readable || readiness.error {
            self.host_drained = false;
            return self.send_data(core, slot, now, tx);
        }
        Verdict::Keep
    }

    fn connect_done(
        &mut self,
        core: &mut Core,
        now: Instant,
        failed: bool,
        tx: &mut TxQueue,
    ) -> Verdict {
        // Linux reports a connecting TCP socket writable only once it is connected (tcp_poll
        // reports nothing in SYN-SENT) and a failed one with EPOLLERR, so without an error event
        // it is connected: the error is fetched (one system call) only when there is one.
        let error = match failed.then(|| self.stream.take_error()) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(e)) | Err(e)) => Some(e),
        };
        if let Some(e) = error {
            log::debug!("tcp {:?}: connect: {e}", self.key);
            self.refuse(core, tx, &e);
            return Verdict::Close;
        }
        if core.cfg.tcp_peek_offset {
            self.peek_offset = crate::sys::set_peek_offset(self.stream.as_fd(), 0).is_ok();
        }
        self.state = State::SynReceived;
        self.snd_nxt = self.iss.wrapping_add(1);
        self.send_syn_ack(core, tx);
        self.arm_timer(now);
        Verdict::Keep
    }

    /// The host connection failed: tell the guest as a real network would.
    fn refuse(&mut self, core: &mut Core, tx: &mut TxQueue, error: &io::Error) {
        let unreachable = match error.raw_os_error() {
            Some(libc::ENETUNREACH) => Some(Unreachable::Net),
            Some(libc::EHOSTUNREACH | libc::ETIMEDOUT) => Some(Unreachable::Host),
            _ => None,
        };
        match unreachable {
            // Quoting the guest's SYN: its headers, ports and sequence number.
            Some(reason) => core.emit_flow_unreachable(
                tx,
                self.guest_mac,
                &self.key,
                (smoltcp::wire::IpProtocol::Tcp, super::segment::TCP_HEADER),
                self.rcv_nxt.wrapping_sub(1).to_be_bytes(),
                reason,
            ),
            None => self.reset_guest(core, tx),
        }
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
                    self.on_syn_ack(core, now, seg, tx);
                    let verdict = self.send_data(core, slot, now, tx);
                    self.update_timer(now);
                    return verdict;
                }
                return Verdict::Keep;
            }
            State::SynReceived => {
                if seg.control == TcpControl::Syn {
                    self.send_syn_ack(core, tx);
                    return Verdict::Keep;
                }
                if seg.ack_number.map(|a| a.0 as u32) != Some(self.iss.wrapping_add(1)) {
                    return Verdict::Keep;
                }
                self.state = State::Established;
                self.snd_una = self.iss.wrapping_add(1);
                self.timer = None;
                self.rto_ms = RTO_INITIAL_MS;
                self.retries = 0;
            }
            State::Established => {
                if seg.control == TcpControl::Syn {
                    // A stale SYN: answer with an ACK of where we are.
                    self.owe_ack(core, slot);
                    return Verdict::Keep;
                }
            }
        }
        if let Some(ack) = seg.ack_number {
            if let Some(verdict) = self.on_ack(core, now, ack.0 as u32, seg, tx) {
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
                self.send_ack(core, tx);
            }
            return Verdict::Close;
        }
        // An ACK may open the window for more; a drained socket has nothing more to give.
        let verdict = if self.host_drained {
            Verdict::Keep
        } else {
            self.send_data(core, slot, now, tx)
        };
        self.update_timer(now);
        verdict
    }

    /// The guest acknowledged up to `ack` and advertised a window.
    fn on_ack(
        &mut self,
        core: &mut Core,
        now: Instant,
        ack: u32,
        seg: &TcpRepr,
        tx: &mut TxQueue,
    ) -> Option<Verdict> {
        if seq_lt(self.snd_nxt, ack) {
            // Acknowledges what we never sent: tell the guest where we are.
            self.send_ack(core, tx);
            return None;
        }
        let window = u32::from(seg.window_len) << self.guest_wscale;
        if seq_lt(self.snd_una, ack) {
            let mut acked = ack.wrapping_sub(self.snd_una);
            if let Some(fin) = self.fin_seq {
                if seq_lt(fin, ack) {
                    self.fin_acked = true;
                    acked -= 1;
                }
            }
            if acked > 0 {
                if let Err(e) = crate::sys::discard(self.stream.as_fd(), acked as usize) {
                    log::debug!("tcp {:?}: discard: {e}", self.key);
                    self.reset_guest(core, tx);
                    self.reset_host();
                    return Some(Verdict::Close);
                }
            }
            self.snd_una = ack;
            self.dup_acks = 0;
            self.retries = 0;
            self.rto_ms = RTO_INITIAL_MS;
            self.timer = None;
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && seg.control == TcpControl::None
            && self.in_flight() > 0
            && window == self.snd_wnd
        {
            self.dup_acks = self.dup_acks.saturating_add(1);
            if self.dup_acks == 3 {
                core.counters.tcp_fast_retransmits += 1;
                self.rewind();
            }
        }
        self.snd_wnd = window;
        self.update_timer(now);
        None
    }

    /// The retransmission or probe timer fired.
    pub(crate) fn on_timer(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        tx: &mut TxQueue,
    ) -> Verdict {
        if self.window_check.is_some_and(|at| at <= now) {
            self.window_check = None;
            self.check_window(core, tx);
        }
        if self.timer.is_none_or(|at| at > now) {
            self.update_timer(now);
            return Verdict::Keep;
        }
        self.timer = None;
        let idle = self.in_flight() == 0 && self.state == State::Established;
        if idle && self.half_closed() && self.snd_wnd > 0 {
            if now < self.last_activity + HALF_CLOSED_IDLE {
                self.update_timer(now);
                return Verdict::Keep;
            }
            log::debug!("tcp {:?}: half-closed and idle, resetting", self.key);
            self.reset_guest(core, tx);
            self.reset_host();
            return Verdict::Close;
        }
        self.retries += 1;
        if self.retries > MAX_RETRIES {
            log::debug!("tcp {:?}: guest unresponsive, resetting", self.key);
            self.reset_guest(core, tx);
            let unanswered = self.state == State::SynSent && self.reply_to_host(|r| &r.unanswered);
            if !unanswered {
                self.reset_host();
            }
            return Verdict::Close;
        }
        self.rto_ms = (self.rto_ms * 2).min(RTO_MAX_MS);
        match self.state {
            State::SynSent => {
                self.send_syn(core, now, tx);
                return Verdict::Keep;
            }
            State::Connecting => {}
            State::SynReceived => self.send_syn_ack(core, tx),
            State::Established if self.in_flight() > 0 => {
                core.counters.tcp_retransmits += 1;
                self.rewind();
                let verdict = self.send_data(core, slot, now, tx);
                if verdict == Verdict::Close {
                    return verdict;
                }
            }
            State::Established => {
                // Zero window: probe with an out-of-window ACK, which the guest answers with its
                // current window.
                self.send_control(core, tx, TcpControl::None, self.snd_una.wrapping_sub(1));
            }
        }
        self.arm_timer(now);
        self.update_timer(now);
        Verdict::Keep
    }
}
