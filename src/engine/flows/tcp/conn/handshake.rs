//! Opening a connection: our SYN-ACK once the host connect() completes (or how it failed, as
//! a real network would say it), and for port forwards our SYN and the guest's SYN-ACK.

use super::*;
use crate::engine::Cx;

impl TcpConn {
    /// Sends our SYN to the guest, or asks for the guest's MAC first.
    pub(crate) fn send_syn(&mut self, core: &mut Core, now: Instant, tx: &mut TxQueue) {
        let guest = self.key.guest.ip();
        self.timer_kind = Timer::Handshake;
        let Some(mac) = core.cx.neighbor(guest) else {
            core.solicit(tx, guest);
            self.timer = Some(now + ARP_RETRY);
            return;
        };
        self.guest_mac = mac;
        let options = SynOptions {
            mss: core.cx.mtu_mss(guest) as u16,
            window_scale: Some(self.our_wscale),
            sack_permitted: true,
        };
        let seg = Segment {
            window: self.receive_window().min(u16::MAX as u32) as u16,
            ..self.segment(self.iss, 0)
        };
        if let Err(reason) = emit_control(
            &mut core.cx,
            tx,
            &seg,
            TcpControl::Syn,
            false,
            Some(options),
        ) {
            core.cx.counters.count_drop(reason);
        }
        self.timer = Some(now + self.rtt.rto());
    }

    /// The guest's SYN-ACK to our SYN: the connection is open.
    pub(super) fn on_syn_ack(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        seg: &TcpRepr,
        tx: &mut TxQueue,
    ) {
        self.rcv_nxt = (seg.seq_number.0 as u32).wrapping_add(1);
        self.snd_una = self.iss.wrapping_add(1);
        self.snd_nxt = self.snd_una;
        self.peek_at = self.snd_una;
        self.snd_wnd = u32::from(seg.window_len);
        match seg.window_scale {
            Some(scale) => self.guest_wscale = scale.min(14),
            None => self.our_wscale = 0,
        }
        self.sack_permitted = seg.sack_permitted;
        let mtu_mss = cx.mtu_mss(self.key.guest.ip());
        self.mss =
            u32::from(seg.max_seg_size.unwrap_or(DEFAULT_MSS as u16)).clamp(64, mtu_mss as u32);
        self.window = Window::new(self.mss);
        if cx.cfg.tcp_peek_offset {
            self.peek_offset = crate::sys::set_peek_offset(self.stream.as_fd(), 0).is_ok();
        }
        self.established(now);
        self.reply_to_host(|r| &r.accepted);
        self.send_ack(cx, tx);
    }

    pub(super) fn send_syn_ack(&mut self, cx: &mut Cx, tx: &mut TxQueue) {
        let mss = cx.mtu_mss(self.key.guest.ip()) as u16;
        let options = SynOptions {
            mss,
            window_scale: (self.our_wscale > 0).then_some(self.our_wscale),
            sack_permitted: self.sack_permitted,
        };
        // The window in a SYN is never scaled.
        let window = self.receive_window().min(u16::MAX as u32) as u16;
        let seg = Segment {
            window,
            ..self.segment(self.iss, 0)
        };
        if let Err(reason) = emit_control(cx, tx, &seg, TcpControl::Syn, true, Some(options)) {
            cx.counters.count_drop(reason);
        }
    }

    pub(super) fn connect_done(
        &mut self,
        cx: &mut Cx,
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
            self.refuse(cx, tx, &e);
            return Verdict::Close;
        }
        if cx.cfg.tcp_peek_offset {
            self.peek_offset = crate::sys::set_peek_offset(self.stream.as_fd(), 0).is_ok();
        }
        self.state = State::SynReceived;
        self.snd_nxt = self.iss.wrapping_add(1);
        self.send_syn_ack(cx, tx);
        self.arm(now, Timer::Handshake, self.rtt.rto());
        Verdict::Keep
    }

    /// The host connection failed: tell the guest as a real network would.
    pub(super) fn refuse(&mut self, cx: &mut Cx, tx: &mut TxQueue, error: &io::Error) {
        let unreachable = match error.raw_os_error() {
            Some(libc::ENETUNREACH) => Some(Unreachable::Net),
            Some(libc::EHOSTUNREACH | libc::ETIMEDOUT) => Some(Unreachable::Host),
            _ => None,
        };
        match unreachable {
            // Quoting the guest's SYN: its headers, ports and sequence number.
            Some(reason) => cx.emit_flow_unreachable(
                tx,
                self.guest_mac,
                &self.key,
                (
                    smoltcp::wire::IpProtocol::Tcp,
                    super::super::segment::TCP_HEADER,
                ),
                self.rcv_nxt.wrapping_sub(1).to_be_bytes(),
                reason,
            ),
            None => self.reset_guest(cx, tx),
        }
    }
}
