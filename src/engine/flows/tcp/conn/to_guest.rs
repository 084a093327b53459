//! Host to guest: data peeked from the host socket into segments, as far as the guest's window
//! and the congestion window allow; the guest's ACKs and SACKs; loss recovery that resends the
//! holes only, from the host socket's receive queue, where the data waits until acknowledged.

use super::*;
use crate::engine::Cx;

impl TcpConn {
    /// Sending stopped on a full transmit queue: go on.
    pub(crate) fn resume_sending(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        tx: &mut TxQueue,
    ) -> Verdict {
        let verdict = self.send_data(core, slot, now, tx);
        self.update_timer(now);
        verdict
    }

    /// Peeks the bytes from sequence number `seq` (at or after `snd_una`) on into `buf`.
    fn peek(&mut self, seq: u32, buf: &mut [u8], skip_buf: &mut Vec<u8>) -> io::Result<usize> {
        let skip = seq.wrapping_sub(self.snd_una) as usize;
        if self.peek_offset && self.peek_at != seq {
            match crate::sys::set_peek_offset(self.stream.as_fd(), skip as i32) {
                Ok(()) => self.peek_at = seq,
                Err(_) => self.peek_offset = false,
            }
        }
        if self.peek_offset {
            let n = self.stream.peek(buf)?;
            self.peek_at = seq.wrapping_add(n as u32);
            return Ok(n);
        }
        // Without SO_PEEK_OFF every peek starts at the first unacknowledged byte: read the
        // bytes before `seq` into a scratch area and keep what follows.
        if skip_buf.len() < skip {
            skip_buf.resize(skip, 0);
        }
        let mut iov = [
            io::IoSliceMut::new(&mut skip_buf[..skip]),
            io::IoSliceMut::new(buf),
        ];
        let n = nix::sys::socket::recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&self.stream),
            &mut iov,
            None,
            nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?
        .bytes;
        match n.checked_sub(skip) {
            // Only end of stream empties a peek at the front of the queue.
            Some(0) if skip > 0 => Err(io::ErrorKind::WouldBlock.into()),
            Some(new) => Ok(new),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Bytes the network holds for this connection, as far as the guest's ACKs and SACKs tell
    /// (RFC 6675's pipe): what is outstanding, less what it SACKed and what is taken for lost
    /// and not sent again yet. Without SACK, each duplicate ACK in recovery stands for a
    /// segment that left the network.
    fn pipe(&self) -> u32 {
        let mut pipe = self.outstanding();
        if let Some(sacked) = &self.sacked {
            pipe = pipe.saturating_sub(sacked.sacked_bytes());
        }
        if self.in_recovery {
            let from = seq_max(self.rtx_next, self.snd_una);
            let lost = match &self.sacked {
                Some(sacked) => sacked.unsacked_in(self.snd_una, from, self.rtx_end),
                None if seq_lt(from, self.rtx_end) => self.rtx_end.wrapping_sub(from),
                None => 0,
            };
            pipe = pipe.saturating_sub(lost);
            if self.sacked.is_none() {
                pipe = pipe.saturating_sub(u32::from(self.dup_acks) * self.mss);
            }
        }
        pipe
    }

    /// The next range taken for lost and not resent yet: from its start to the end of its
    /// hole, if recovery has one.
    fn next_lost(&self) -> Option<(u32, u32)> {
        if !self.in_recovery {
            return None;
        }
        let from = seq_max(self.rtx_next, self.snd_una);
        if !seq_lt(from, self.rtx_end) {
            return None;
        }
        let (start, hole_end) = match &self.sacked {
            Some(sacked) => sacked.next_hole(self.snd_una, from),
            None => (from, None),
        };
        if !seq_lt(start, self.rtx_end) {
            return None;
        }
        let end = match hole_end {
            Some(hole_end) if seq_lt(hole_end, self.rtx_end) => hole_end,
            _ => self.rtx_end,
        };
        Some((start, end))
    }

    /// The most payload one segment (or offloaded super-packet) to the guest carries, and the
    /// MSS it is cut at by the guest's kernel when offloaded.
    fn max_payload(&self, cx: &Cx) -> (usize, Option<u16>) {
        let mss = self.mss as usize;
        if cx.cfg.tap_offload {
            let segments = (GSO_MAX_PAYLOAD / mss).max(1);
            (segments * mss, Some(mss as u16))
        } else {
            (mss, None)
        }
    }

    /// Sends one segment of the bytes in [start, end) again (or the FIN, if `start` is its
    /// sequence number); returns the sequence number after what went, or None if nothing could.
    fn resend(
        &mut self,
        cx: &mut Cx,
        tx: &mut TxQueue,
        (start, end): (u32, u32),
        skip_buf: &mut Vec<u8>,
    ) -> Option<u32> {
        // Karn: no RTT sample across a retransmission.
        self.timing = None;
        if self.fin_seq() == Some(start) {
            self.send_control(cx, tx, TcpControl::Fin, start);
            self.high_rxt = seq_max(self.high_rxt, start.wrapping_add(1));
            return Some(start.wrapping_add(1));
        }
        let end = match self.fin_seq() {
            Some(fin) if seq_lt(fin, end) => fin,
            _ => end,
        };
        let (most, offload_mss) = self.max_payload(cx);
        let len = (end.wrapping_sub(start) as usize).min(most);
        let window = self.receive_window();
        let seg = self.segment(start, window);
        let result = emit_data(cx, tx, &seg, len, offload_mss, |buf| {
            self.peek(start, buf, skip_buf)
        });
        match result {
            Ok(Ok(n)) if n > 0 => {
                self.told(&seg, window);
                self.rtx_mark = self.snd_nxt;
                self.high_rxt = seq_max(self.high_rxt, start.wrapping_add(n as u32));
                if self.recovery_by_timeout {
                    cx.counters.tcp_retransmits += 1;
                } else {
                    cx.counters.tcp_fast_retransmits += 1;
                }
                cx.counters.tcp_bytes_retransmitted += n as u64;
                Some(start.wrapping_add(n as u32))
            }
            Err(reason) => {
                if reason != DropReason::TxQueueFull {
                    cx.counters.count_drop(reason);
                }
                None
            }
            // The bytes are in the receive queue until the guest acknowledges them; a socket
            // that no longer has them is broken, and the next peek of new data says so.
            Ok(_) => None,
        }
    }

    /// Sends the guest what is taken for lost, then what the host has that it has not seen,
    /// as far as the windows allow.
    pub(super) fn send_data(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        tx: &mut TxQueue,
    ) -> Verdict {
        if self.state != State::Established {
            return Verdict::Keep;
        }
        let mut skip_buf = std::mem::take(&mut core.peek_skip);
        let mss = self.mss;
        let verdict = loop {
            let lost = self.next_lost();
            let new_data = !self.fin_sent && !self.host_drained;
            if lost.is_none() && !new_data {
                break Verdict::Keep;
            }
            let pipe = self.pipe();
            // Less than a segment of congestion window is not worth a segment, unless
            // nothing is in flight at all.
            let cwnd_room = self.window.cwnd.saturating_sub(pipe);
            let urgent = lost.is_some() && self.rtx_now;
            if cwnd_room < mss.min(self.window.cwnd) && pipe > 0 && !urgent {
                break Verdict::Keep;
            }
            if !tx.has_room_for_bulk() {
                core.send_pending.push(slot);
                break Verdict::Keep;
            }
            if let Some(range) = lost {
                match self.resend(&mut core.cx, tx, range, &mut skip_buf) {
                    Some(next) => {
                        self.rtx_next = next;
                        self.rtx_now = false;
                        continue;
                    }
                    None if !tx.has_room_for_bulk() => {
                        core.send_pending.push(slot);
                        break Verdict::Keep;
                    }
                    None => {
                        // Nothing to resend there after all: move past it.
                        self.rtx_next = range.1;
                        continue;
                    }
                }
            }
            // New data: within the guest's window and the congestion window.
            let window_end = self.snd_una.wrapping_add(self.snd_wnd);
            let send_room = if seq_lt(self.snd_nxt, window_end) {
                window_end.wrapping_sub(self.snd_nxt)
            } else {
                0
            };
            let room = send_room.min(cwnd_room.max(mss.min(self.window.cwnd))) as usize;
            let (most, offload_mss) = self.max_payload(&core.cx);
            let max = room.min(most);
            if max == 0 {
                break Verdict::Keep;
            }
            let window = self.receive_window();
            let seq = self.snd_nxt;
            let seg = self.segment(seq, window);
            let result = emit_data(&mut core.cx, tx, &seg, max, offload_mss, |buf| {
                self.peek(seq, buf, &mut skip_buf)
            });
            match result {
                Err(DropReason::TxQueueFull) => {
                    core.send_pending.push(slot);
                    break Verdict::Keep;
                }
                Err(reason) => {
                    core.cx.counters.count_drop(reason);
                    break Verdict::Keep;
                }
                Ok(Ok(0)) => {
                    self.host_eof = true;
                    self.fin_sent = true;
                    self.send_control(&mut core.cx, tx, TcpControl::Fin, self.snd_nxt);
                    self.snd_nxt = self.snd_nxt.wrapping_add(1);
                    break Verdict::Keep;
                }
                Ok(Ok(n)) => {
                    self.last_activity = now;
                    self.told(&seg, window);
                    self.snd_nxt = self.snd_nxt.wrapping_add(n as u32);
                    if self.timing.is_none() && !self.in_recovery {
                        self.timing = Some(now);
                        self.timing_end = self.snd_nxt;
                    }
                    // A short peek emptied the receive queue (TCP copies on while data is
                    // queued), and new data raises a new edge: peeking again would only meet
                    // EAGAIN. Not so for an end of stream already queued behind the data.
                    if n < max && self.peek_offset && !self.host_read_closed {
                        self.host_drained = true;
                        break Verdict::Keep;
                    }
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Without SO_PEEK_OFF, a peek behind bytes in flight cannot tell the end
                    // of the stream from no news: only the other case counts as drained.
                    self.host_drained = self.peek_offset || self.outstanding() == 0;
                    break Verdict::Keep;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => {
                    log::debug!("tcp {:?}: read: {e}", self.key);
                    self.reset_guest(&mut core.cx, tx);
                    break Verdict::Close;
                }
            }
        };
        core.peek_skip = skip_buf;
        verdict
    }

    /// The guest acknowledged up to `ack`, advertised a window and perhaps SACKed some ranges.
    pub(super) fn on_ack(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        ack: u32,
        seg: &TcpRepr,
        tx: &mut TxQueue,
    ) -> Option<Verdict> {
        if seq_lt(self.snd_nxt, ack) {
            // Acknowledges what we never sent: tell the guest where we are.
            self.send_ack(cx, tx);
            return None;
        }
        let window = u32::from(seg.window_len) << self.guest_wscale;
        let new_sack = self.on_sack_blocks(&seg.sack_ranges);
        if seq_lt(self.snd_una, ack) {
            if let Some(verdict) = self.on_new_ack(cx, now, ack, tx) {
                return Some(verdict);
            }
        } else if ack == self.snd_una
            && self.outstanding() > 0
            && seg.payload.is_empty()
            && seg.control == TcpControl::None
            && (new_sack || (window == self.snd_wnd && !self.sack_permitted))
        {
            // With SACK on, only an ACK that SACKs something new counts (RFC 6675): a
            // duplicate the network made is answered by a duplicate ACK that says nothing.
            self.dup_acks = self.dup_acks.saturating_add(1);
        }
        if self.timer_kind == Timer::Persist {
            // The guest answered a zero-window probe: it is there.
            self.unanswered = 0;
        }
        self.snd_wnd = window;
        self.detect_loss(cx);
        None
    }

    /// Takes the guest's SACK blocks into the scoreboard; returns whether they said anything
    /// new. A block that fills a hole below the highest one SACKed before, where nothing was
    /// ever sent again, shows reordering: the threshold grows to the distance seen.
    fn on_sack_blocks(&mut self, blocks: &[Option<(u32, u32)>; 3]) -> bool {
        if blocks[0].is_none() || self.outstanding() == 0 {
            return false;
        }
        let highest = self.sacked.as_ref().and_then(|s| s.highest());
        let sacked = self.sacked.get_or_insert_with(Box::default);
        let mut new = false;
        for &(left, right) in blocks.iter().flatten() {
            let added = sacked.add(self.snd_una, self.snd_nxt, left, right);
            new |= added;
            let never_resent = seq_lt(self.high_rxt, left);
            if let Some(high) = highest.filter(|&h| added && never_resent && seq_lt(left, h)) {
                let most = MAX_REORDERING_SEGMENTS * self.mss;
                self.reordering = self.reordering.max(high.wrapping_sub(left).min(most));
            }
        }
        if sacked.is_empty() {
            self.sacked = None;
        }
        new
    }

    /// SACKed bytes above a hole that make it lost.
    fn reordering_threshold(&self) -> u32 {
        self.reordering.max(DUP_THRESH * self.mss)
    }

    /// New data was acknowledged: it leaves the host socket's receive queue.
    fn on_new_ack(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        ack: u32,
        tx: &mut TxQueue,
    ) -> Option<Verdict> {
        let flight = self.outstanding();
        let mut acked = ack.wrapping_sub(self.snd_una);
        if let Some(fin) = self.fin_seq() {
            if seq_lt(fin, ack) {
                self.fin_acked = true;
                acked -= 1;
            }
        }
        if acked > 0 {
            if let Err(e) = crate::sys::discard(self.stream.as_fd(), acked as usize) {
                log::debug!("tcp {:?}: discard: {e}", self.key);
                self.reset_guest(cx, tx);
                self.reset_host();
                return Some(Verdict::Close);
            }
        }
        if let Some(sent) = self.timing {
            if !seq_lt(ack, self.timing_end) {
                self.rtt.sample(now.saturating_duration_since(sent));
                self.timing = None;
            }
        }
        self.snd_una = ack;
        // Consuming bytes moves the socket's peek offset back by as many, down to the front.
        self.peek_at = seq_max(self.peek_at, ack);
        if let Some(sacked) = &mut self.sacked {
            sacked.advance(ack);
            if sacked.is_empty() {
                self.sacked = None;
            }
        }
        self.dup_acks = 0;
        self.unanswered = 0;
        self.probes = 0;
        self.rtt.reset_backoff();
        // The retransmission timer restarts from now (RFC 6298 5.3).
        self.timer = None;
        let mss = self.mss;
        if !self.in_recovery {
            self.window
                .on_ack(acked, mss, flight.saturating_mul(2) >= self.window.cwnd);
            return None;
        }
        if self.recovery_by_timeout {
            // Slow start again after a timeout.
            self.window.on_ack(acked, mss, true);
        }
        if !seq_lt(ack, self.recover) {
            self.in_recovery = false;
            if !std::mem::take(&mut self.recovery_by_timeout) {
                self.window.end_recovery();
            }
        } else if self.sacked.is_none() && !self.recovery_by_timeout {
            // NewReno's partial ACK: the segment after it was lost too.
            self.rtx_next = ack;
            let segment = mss.min(self.outstanding());
            self.rtx_end = seq_max(self.rtx_end, ack.wrapping_add(segment));
            self.rtx_now = true;
        }
        None
    }

    /// Starts loss recovery when the guest's duplicate ACKs or SACKs show a hole; in recovery,
    /// takes more for lost as SACKs arrive, and a retransmission for lost again when the guest
    /// SACKs what was sent after it while the hole stays.
    fn detect_loss(&mut self, cx: &mut Cx) {
        let outstanding = self.outstanding();
        if outstanding == 0 {
            return;
        }
        let mss = self.mss;
        let highest = self.sacked.as_ref().and_then(|s| s.highest());
        if self.in_recovery {
            let (Some(high), Some(sacked)) = (highest, &self.sacked) else {
                return;
            };
            self.rtx_end = seq_max(self.rtx_end, high);
            if seq_lt(self.rtx_mark, high) {
                let (hole, _) = sacked.next_hole(self.snd_una, self.snd_una);
                if seq_lt(hole, self.rtx_next) && seq_lt(hole, high) {
                    self.rtx_next = self.snd_una;
                    self.rtx_mark = self.snd_nxt;
                    cx.counters.tcp_lost_retransmits += 1;
                }
            }
            return;
        }
        let segments = outstanding.div_ceil(mss);
        let nothing_new = self.host_drained || self.fin_sent;
        // Early retransmit: a flight too short to bring three duplicates needs fewer.
        let early = segments <= DUP_THRESH && nothing_new;
        let dup_threshold = if early {
            (segments - 1).max(1)
        } else {
            DUP_THRESH
        };
        let sack_threshold = if early {
            dup_threshold * mss
        } else {
            self.reordering_threshold()
        };
        let sacked = self.sacked.as_ref().map_or(0, |s| s.sacked_bytes());
        // After a tail probe, its SACK above a hole is enough: the probe went after everything
        // else, so what is still missing below it was lost (RFC 8985's reasoning).
        let probed = self.probes > 0 && sacked > 0;
        if u32::from(self.dup_acks) < dup_threshold && sacked < sack_threshold && !probed {
            return;
        }
        cx.counters.tcp_loss_recoveries += 1;
        self.in_recovery = true;
        self.recovery_by_timeout = false;
        self.recover = self.snd_nxt;
        self.window.on_loss(mss);
        self.rtx_next = self.snd_una;
        self.rtx_mark = self.snd_nxt;
        let first = self.snd_una.wrapping_add(mss.min(outstanding));
        self.rtx_end = seq_max(first, highest.unwrap_or(first));
        self.rtx_now = true;
        self.timing = None;
    }

    /// The retransmission timer fired: everything outstanding that the guest has not SACKed is
    /// taken for lost, and the congestion window starts again from one segment.
    pub(super) fn on_retransmission_timeout(&mut self, cx: &mut Cx) {
        log::debug!(
            "tcp {:?}: timeout, {} bytes outstanding, {} in recovery",
            self.key,
            self.outstanding(),
            if self.in_recovery { "was" } else { "was not" },
        );
        let first = !(self.in_recovery && self.recovery_by_timeout);
        self.window.on_timeout(self.mss, first);
        self.in_recovery = true;
        self.recovery_by_timeout = true;
        self.recover = self.snd_nxt;
        self.rtx_next = self.snd_una;
        self.rtx_end = self.snd_nxt;
        self.rtx_mark = self.snd_nxt;
        self.timing = None;
        self.dup_acks = 0;
        // The resend may be lost too: probes again before the next, longer, timeout.
        self.probes = 0;
        cx.counters.tcp_timeouts += 1;
    }

    /// A loss probe, outside the congestion window: in recovery, the first hole again (its
    /// resend may be lost too, and nothing sent after it would show that); otherwise the last
    /// segment sent (or the FIN), as a tail loss probe (RFC 8985), so that the guest answers
    /// with what it has.
    pub(super) fn send_probe(&mut self, core: &mut Core, now: Instant, tx: &mut TxQueue) {
        let outstanding = self.outstanding();
        if outstanding == 0 || !tx.has_room_for_bulk() {
            return;
        }
        let (most, _) = self.max_payload(&core.cx);
        let range = if self.in_recovery {
            let (hole, hole_end) = match &self.sacked {
                Some(sacked) => sacked.next_hole(self.snd_una, self.snd_una),
                None => (self.snd_una, None),
            };
            (hole, hole_end.unwrap_or(self.snd_nxt))
        } else {
            let last = match self.fin_seq() {
                Some(fin) if !self.fin_acked && outstanding == 1 => fin,
                _ => self.snd_nxt.wrapping_sub(outstanding.min(most as u32)),
            };
            (last, self.snd_nxt)
        };
        let mut skip_buf = std::mem::take(&mut core.peek_skip);
        let was = self.recovery_by_timeout;
        self.recovery_by_timeout = true;
        if self
            .resend(&mut core.cx, tx, range, &mut skip_buf)
            .is_some()
        {
            core.cx.counters.tcp_tail_probes += 1;
            self.last_activity = now;
        }
        self.recovery_by_timeout = was;
        core.peek_skip = skip_buf;
    }
}
