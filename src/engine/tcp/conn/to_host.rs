//! Guest to host: the guest's data written into the host socket, its ACKs, and the window we
//! advertise (the room left in the host socket's send buffer).

use super::*;

impl TcpConn {
    /// Data and FIN from the guest.
    pub(super) fn on_data<'a>(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        seg: &TcpRepr<'a>,
        tx: &mut TxQueue,
        pending: &mut PendingWrites<'a>,
    ) -> Option<Verdict> {
        let seq = seg.seq_number.0 as u32;
        let payload = seg.payload;
        let fin = seg.control == TcpControl::Fin;
        if payload.is_empty() && !fin {
            // An empty segment out of sequence (a keepalive, a window probe) wants an ACK.
            if seq != self.rcv_nxt {
                self.owe_ack(core, slot);
            }
            return None;
        }
        self.owe_ack(core, slot);
        if !fin && !self.guest_fin && seq == pending.end_for(slot, self.rcv_nxt) {
            // In sequence after what is gathered already: gather it too.
            pending.push(slot, payload);
            if pending.is_full() {
                return self.write_pending(core, slot, pending, now, tx);
            }
            return None;
        }
        // Anything else must see the gathered data written first.
        if let Some(verdict) = self.write_pending(core, slot, pending, now, tx) {
            return Some(verdict);
        }
        if self.guest_fin || seq_lt(self.rcv_nxt, seq) {
            // Already closed by the guest, or out of order: the ACK tells it what we miss.
            return None;
        }
        let skip = self.rcv_nxt.wrapping_sub(seq) as usize;
        if skip < payload.len() {
            let rest = &payload[skip..];
            match self.write_to_host(core, &[io::IoSlice::new(rest)], rest.len(), tx) {
                Err(verdict) => return Some(verdict),
                Ok(false) => return None,
                Ok(true) => {}
            }
        }
        let end = seq.wrapping_add(payload.len() as u32);
        if fin && end == self.rcv_nxt {
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            self.guest_fin = true;
            let _ = self.stream.shutdown(std::net::Shutdown::Write);
        }
        None
    }

    /// Writes guest data to the host socket; `Ok(true)` if it took all `len` bytes.
    pub(super) fn write_to_host(
        &mut self,
        core: &mut Core,
        bufs: &[io::IoSlice],
        len: usize,
        tx: &mut TxQueue,
    ) -> Result<bool, Verdict> {
        let written = match self.stream.write_vectored(bufs) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => {
                log::debug!("tcp {:?}: write: {e}", self.key);
                self.reset_guest(core, tx);
                return Err(Verdict::Close);
            }
        };
        self.rcv_nxt = self.rcv_nxt.wrapping_add(written as u32);
        self.written_since_measure = self
            .written_since_measure
            .saturating_add(written as u32)
            .min(self.room_measured);
        core.counters.tcp_bytes_from_guest += written as u64;
        if written < len {
            self.host_full = true;
            return Ok(false);
        }
        // An ACK at least every two full segments, as a receiving kernel would: the guest's
        // congestion control grows with ACKs, and a batch can hold many segments.
        let unacked = self.rcv_nxt.wrapping_sub(self.ack_sent);
        let segments = ACK_EVERY_SEGMENTS * self.mss as u32;
        if unacked >= segments.max(ACK_EVERY_BYTES) {
            self.send_ack(core, tx);
        }
        Ok(true)
    }

    /// Writes the data gathered for this connection, if any.
    pub(in crate::engine::tcp) fn write_pending(
        &mut self,
        core: &mut Core,
        slot: usize,
        pending: &mut PendingWrites,
        now: Instant,
        tx: &mut TxQueue,
    ) -> Option<Verdict> {
        if pending.slot != Some(slot) || pending.bufs.is_empty() {
            return None;
        }
        let result = self.write_to_host(core, &pending.bufs, pending.bytes, tx);
        pending.clear();
        self.update_timer(now);
        result.err()
    }

    /// Queues one ACK for the end of the batch, however many segments asked for it.
    pub(super) fn owe_ack(&mut self, core: &mut Core, slot: usize) {
        if !self.ack_owed {
            self.ack_owed = true;
            core.ack_pending.push(slot);
        }
    }

    /// Sends the ACK owed at the end of a batch.
    pub(crate) fn flush_ack(&mut self, core: &mut Core, now: Instant, tx: &mut TxQueue) -> Verdict {
        if !std::mem::take(&mut self.ack_owed) {
            return Verdict::Keep;
        }
        // Skip the ACK when a data segment sent since carried the same acknowledgement and
        // the guest is not waiting on a window update.
        if self.state == State::Established && (self.ack_sent != self.rcv_nxt || self.host_full) {
            self.send_ack(core, tx);
        }
        if self.guest_fin && self.fin_acked {
            return Verdict::Close;
        }
        self.update_timer(now);
        Verdict::Keep
    }

    /// The window we offer the guest: the room left in the host socket's send buffer. While
    /// most of the room last measured is left, it is estimated from what was written since
    /// (data leaving the socket only adds room); otherwise it is measured.
    pub(super) fn receive_window(&mut self) -> u32 {
        let estimate = self.room_measured - self.written_since_measure;
        if self.room_measured >= self.low_window && estimate >= self.room_measured / 2 {
            return estimate;
        }
        self.measure_window()
    }

    pub(super) fn measure_window(&mut self) -> u32 {
        let size = self.send_buffer as usize;
        let queued = crate::sys::send_queue_len(self.stream.as_fd()).unwrap_or(usize::MAX);
        let room = (size * SNDBUF_SHARE_NUM / SNDBUF_SHARE_DEN).saturating_sub(queued);
        self.room_measured = room.min(u32::MAX as usize) as u32;
        self.written_since_measure = 0;
        self.room_measured
    }

    pub(super) fn window_is_low(&self) -> bool {
        self.state == State::Established && !self.guest_fin && self.window_sent < self.low_window
    }

    /// A low window may have opened: if it has, tell the guest.
    pub(super) fn check_window(&mut self, core: &mut Core, tx: &mut TxQueue) {
        let window = self.measure_window();
        let mss = core.mtu_mss(self.key.guest.ip()) as u32;
        if window >= self.low_window || window >= self.window_sent.saturating_add(2 * mss) {
            self.send_ack(core, tx);
            self.window_check_ms = WINDOW_CHECK_FIRST_MS;
        } else {
            self.window_check_ms = (self.window_check_ms * 2).min(WINDOW_CHECK_MAX_MS);
        }
    }
}
