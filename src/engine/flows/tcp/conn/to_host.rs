//! Guest to host: the guest's data written into the host socket (or held, when it came beyond
//! a hole or the socket was full), our ACKs, and the window we advertise (the room left in the
//! host socket's send buffer).
//!
//! ACKs go as a receiving kernel's would: one for every second segment taken (so the guest's
//! congestion window grows by small steps and it never bursts what a whole batch acknowledged),
//! one for whatever is left at the end of a batch, and one at once for anything that was not
//! in order (a duplicate, an old segment, a keepalive or window probe, a segment beyond a hole
//! — each of those its own, so the guest counts its duplicate ACKs), with SACK blocks for what
//! is held.

use super::*;
use crate::engine::Cx;
use std::io::IoSlice;

/// Pieces of guest data held per connection at most (each may be a single byte).
const MAX_HELD_PIECES: usize = 512;

/// The connection's held data, made (empty, on the engine's budget) if it has none.
fn held_data<'a>(held: &'a mut Option<Box<Reassembly>>, core: &Core) -> &'a mut Reassembly {
    held.get_or_insert_with(|| Box::new(Reassembly::new(core.hold_budget.clone())))
}

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
                self.force_ack(core, slot, tx, None);
            }
            return None;
        }
        if !fin && !self.guest_fin && seq == pending.end_for(slot, self.rcv_nxt) {
            // In sequence after what is gathered already: gather it too.
            self.owe_ack(core, slot);
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
        let end = seq.wrapping_add(payload.len() as u32);
        if self.guest_fin {
            // Nothing comes after the guest's FIN: it did not hear our ACK of it.
            self.force_ack(core, slot, tx, Some((seq, end)));
            return None;
        }
        if seq_lt(self.rcv_nxt, seq) {
            let duplicate = !self.hold(core, seq, payload, fin);
            self.force_ack(core, slot, tx, duplicate.then_some((seq, end)));
            return None;
        }
        let skip = self.rcv_nxt.wrapping_sub(seq) as usize;
        if skip < payload.len() {
            self.owe_ack(core, slot);
            match self.write_to_host(core, &[IoSlice::new(&payload[skip..])], tx) {
                Err(verdict) => return Some(verdict),
                Ok(false) => return None,
                Ok(true) => {}
            }
        } else if !(fin && end == self.rcv_nxt) {
            // All of it came before: a duplicate.
            self.force_ack(core, slot, tx, Some((seq, end)));
            return None;
        }
        if fin && end == self.rcv_nxt {
            self.owe_ack(core, slot);
            self.take_fin();
        }
        None
    }

    /// The guest's FIN is next: pass it on.
    fn take_fin(&mut self) {
        self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
        self.guest_fin = true;
        self.held = None;
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Holds guest data that came beyond the next expected byte (a segment before it was lost)
    /// or that the host socket could not take yet, within the window we advertised and the
    /// bounds of the engine. Returns false if all of it was held already (a duplicate).
    fn hold(&mut self, core: &mut Core, seq: u32, data: &[u8], fin: bool) -> bool {
        let window_end = self.rcv_nxt.wrapping_add(self.window_sent);
        let end = seq.wrapping_add(data.len() as u32);
        let data = if seq_lt(window_end, end) {
            // Beyond the window: what is there is refused.
            &data[..window_end.wrapping_sub(seq).min(data.len() as u32) as usize]
        } else {
            data
        };
        let max = (self.window_sent as usize).max(data.len());
        let held = held_data(&mut self.held, core);
        let got = held.insert(self.rcv_nxt, seq, data, max, MAX_HELD_PIECES);
        if got.held > 0 {
            core.cx.counters.tcp_segments_held += 1;
        }
        if got.refused > 0 || data.len() < end.wrapping_sub(seq) as usize {
            core.cx.counters.tcp_segments_not_held += 1;
        } else if fin {
            held.fin = Some(end);
        }
        let duplicate = got.held == 0 && got.refused == 0 && !data.is_empty();
        if held.is_empty() && held.fin.is_none() {
            self.held = None;
        }
        !duplicate
    }

    /// Writes guest data to the host socket; `Ok(true)` if it took all of it. What it did not
    /// take is held, so it need not come again, while there is room for it.
    pub(super) fn write_to_host(
        &mut self,
        core: &mut Core,
        bufs: &[IoSlice],
        tx: &mut TxQueue,
    ) -> Result<bool, Verdict> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let start = self.rcv_nxt;
        let result = self.stream.write_vectored(bufs);
        let written = self.bytes_written(&mut core.cx, tx, result)?;
        self.taken(&mut core.cx, written);
        self.ack_every_second_segment(&mut core.cx, tx, start, bufs, written);
        if written < len {
            let mut skip = written;
            let mut at = self.rcv_nxt;
            let mut all_held = true;
            for buf in bufs {
                if skip >= buf.len() {
                    skip -= buf.len();
                    continue;
                }
                let part = &buf[skip..];
                skip = 0;
                let max = (self.window_sent as usize).max(len);
                all_held &= held_data(&mut self.held, core)
                    .insert(self.rcv_nxt, at, part, max, MAX_HELD_PIECES)
                    .refused
                    == 0;
                at = at.wrapping_add(part.len() as u32);
            }
            if !all_held {
                self.host_full = true;
            }
            return Ok(false);
        }
        self.drain_held(&mut core.cx, tx)?;
        Ok(true)
    }

    /// How much a write of guest data to the host socket took: nothing when it was full; a
    /// socket that failed resets the guest's side and ends the flow.
    fn bytes_written(
        &mut self,
        cx: &mut Cx,
        tx: &mut TxQueue,
        result: io::Result<usize>,
    ) -> Result<usize, Verdict> {
        match result {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => {
                log::debug!("tcp {:?}: write: {e}", self.key);
                self.reset_guest(cx, tx);
                Err(Verdict::Close)
            }
        }
    }

    /// `written` guest bytes went into the host socket.
    fn taken(&mut self, cx: &mut Cx, written: usize) {
        self.rcv_nxt = self.rcv_nxt.wrapping_add(written as u32);
        self.written_since_measure = self
            .written_since_measure
            .saturating_add(written as u32)
            .min(self.room_measured);
        cx.counters.tcp_bytes_from_guest += written as u64;
    }

    /// After `written` bytes of `bufs` (one segment each, from `start` on) were taken: an ACK
    /// for every second segment, as a receiving kernel sends them.
    fn ack_every_second_segment(
        &mut self,
        cx: &mut Cx,
        tx: &mut TxQueue,
        start: u32,
        bufs: &[IoSlice],
        written: usize,
    ) {
        let mut taken = 0;
        for buf in bufs {
            taken += buf.len();
            if taken > written {
                break;
            }
            self.segments_unacked = self.segments_unacked.saturating_add(1);
            if self.segments_unacked >= 2 && tx.has_room_for_control() {
                let ack = start.wrapping_add(taken as u32);
                let next = std::mem::replace(&mut self.rcv_nxt, ack);
                self.send_ack(cx, tx);
                self.rcv_nxt = next;
            }
        }
    }

    /// Writes held data that is in order now, and takes a held FIN that is next.
    fn drain_held(&mut self, cx: &mut Cx, tx: &mut TxQueue) -> Result<(), Verdict> {
        loop {
            let Some(held) = self.held.as_mut() else {
                return Ok(());
            };
            held.discard_below(self.rcv_nxt);
            let ready = held.ready(self.rcv_nxt);
            if ready.is_empty() {
                if held.fin == Some(self.rcv_nxt) {
                    self.take_fin();
                } else if held.is_empty() && held.fin.is_none() {
                    self.held = None;
                }
                return Ok(());
            }
            let len: usize = ready.iter().map(|b| b.len()).sum();
            let result = (&self.stream).write_vectored(&ready);
            drop(ready);
            let written = self.bytes_written(cx, tx, result)?;
            let Some(held) = self.held.as_mut() else {
                return Ok(());
            };
            held.consumed(self.rcv_nxt, written);
            self.taken(cx, written);
            if written < len {
                // The socket is full: the rest waits for it to drain (it says when).
                return Ok(());
            }
        }
    }

    /// Writes the data gathered for this connection, if any.
    pub(in crate::engine::flows::tcp) fn write_pending(
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
        let result = self.write_to_host(core, &pending.bufs, tx);
        pending.clear();
        self.update_timer(now);
        result.err()
    }

    /// The host socket has room again: held data goes, and the guest hears of the window.
    pub(super) fn on_host_writable(&mut self, cx: &mut Cx, tx: &mut TxQueue) -> Option<Verdict> {
        let before = self.rcv_nxt;
        if self.held.is_some() {
            if let Err(verdict) = self.drain_held(cx, tx) {
                return Some(verdict);
            }
        }
        if self.host_full {
            self.host_full = false;
            // Window update, then duplicates so the guest resends what we could not keep.
            for _ in 0..=DUP_ACKS_ON_REOPEN {
                self.send_ack(cx, tx);
            }
        } else if self.rcv_nxt != before {
            self.send_ack(cx, tx);
        }
        None
    }

    /// Queues one ACK for the end of the batch, however many segments asked for it.
    pub(super) fn owe_ack(&mut self, core: &mut Core, slot: usize) {
        if !self.ack_owed {
            self.ack_owed = true;
            core.ack_pending.push(slot);
        }
    }

    /// An ACK now, even one that repeats the last: the guest sent something out of order, old,
    /// or probing (`duplicate`: data it sent twice, reported as a D-SACK block when SACK is
    /// on). When the link is too far behind for it, it is owed instead.
    pub(super) fn force_ack(
        &mut self,
        core: &mut Core,
        slot: usize,
        tx: &mut TxQueue,
        duplicate: Option<(u32, u32)>,
    ) {
        if self.state == State::Established && tx.has_room_for_control() {
            match duplicate.filter(|_| self.sack_permitted) {
                Some(range) => self.send_dsack(&mut core.cx, tx, range),
                None => self.send_ack(&mut core.cx, tx),
            }
        } else {
            self.ack_forced = true;
            self.owe_ack(core, slot);
        }
    }

    /// Sends the ACK owed at the end of a batch; one that cannot be queued stays owed.
    pub(crate) fn flush_ack(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        tx: &mut TxQueue,
    ) -> Verdict {
        if !self.ack_owed {
            return Verdict::Keep;
        }
        if !tx.has_room_for_control() {
            core.ack_pending.push(slot);
            return Verdict::Keep;
        }
        self.ack_owed = false;
        // Skip the ACK when a segment sent since carried the same acknowledgement, unless the
        // guest must hear it again or waits on a window update.
        let news = self.ack_forced || self.ack_sent != self.rcv_nxt || self.host_full;
        if self.state == State::Established && news {
            self.send_ack(&mut core.cx, tx);
        }
        self.ack_forced = false;
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
    pub(super) fn check_window(&mut self, cx: &mut Cx, tx: &mut TxQueue) {
        let window = self.measure_window();
        let mss = cx.mtu_mss(self.key.guest.ip()) as u32;
        if window >= self.low_window || window >= self.window_sent.saturating_add(2 * mss) {
            self.send_ack(cx, tx);
            self.window_check_ms = WINDOW_CHECK_FIRST_MS;
        } else {
            self.window_check_ms = (self.window_check_ms * 2).min(WINDOW_CHECK_MAX_MS);
        }
    }
}
