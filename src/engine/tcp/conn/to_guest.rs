//! Host to guest: data peeked from the host socket into segments, as far as the guest's
//! window allows, and going back for what the guest did not acknowledge.

use super::*;

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

    /// Peeks the next `buf.len()` unsent bytes from the host socket.
    pub(super) fn peek(&mut self, buf: &mut [u8], skip_buf: &mut Vec<u8>) -> io::Result<usize> {
        if self.peek_offset {
            return self.stream.peek(buf);
        }
        // Without SO_PEEK_OFF every peek starts at the first unacknowledged byte: read the
        // bytes in flight into a scratch area and keep what follows.
        let in_flight = self.in_flight() as usize;
        if skip_buf.len() < in_flight {
            skip_buf.resize(in_flight, 0);
        }
        let mut iov = [
            io::IoSliceMut::new(&mut skip_buf[..in_flight]),
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
        match n.checked_sub(in_flight) {
            // Only end of stream empties a peek at the front of the queue.
            Some(0) if in_flight > 0 => Err(io::ErrorKind::WouldBlock.into()),
            Some(new) => Ok(new),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Sends the guest what the host has, as far as its window allows.
    pub(super) fn send_data(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        tx: &mut TxQueue,
    ) -> Verdict {
        if self.state != State::Established || self.fin_seq.is_some() {
            return Verdict::Keep;
        }
        let mut skip_buf = std::mem::take(&mut core.peek_skip);
        // The window we advertise costs two system calls: once per burst is enough.
        let window = self.receive_window();
        let verdict = loop {
            let room = self.snd_wnd.saturating_sub(self.in_flight()) as usize;
            if room == 0 && !self.host_eof {
                break Verdict::Keep;
            }
            if !tx.has_room_for_bulk() {
                core.send_pending.push(slot);
                break Verdict::Keep;
            }
            let seg = self.segment(self.snd_nxt, window);
            // With offloads, whole segments of the guest's MSS in one super-packet.
            let (max, offload_mss) = if core.cfg.tap_offload {
                let segments = (GSO_MAX_PAYLOAD / self.mss).max(1);
                ((segments * self.mss).min(room), Some(self.mss as u16))
            } else {
                (self.mss.min(room), None)
            };
            let result = if max == 0 {
                Ok(Ok(0))
            } else {
                emit_data(core, tx, &seg, max, offload_mss, |buf| {
                    self.peek(buf, &mut skip_buf)
                })
            };
            match result {
                Err(Drop::TxQueueFull) => {
                    core.send_pending.push(slot);
                    break Verdict::Keep;
                }
                Err(reason) => {
                    core.counters.count_drop(reason);
                    break Verdict::Keep;
                }
                Ok(Ok(0)) => {
                    if max > 0 {
                        self.host_eof = true;
                    }
                    if self.host_eof && self.fin_seq.is_none() {
                        self.fin_seq = Some(self.snd_nxt);
                        self.send_control(core, tx, TcpControl::Fin, self.snd_nxt);
                        self.snd_nxt = self.snd_nxt.wrapping_add(1);
                    }
                    break Verdict::Keep;
                }
                Ok(Ok(n)) => {
                    self.last_activity = now;
                    self.ack_sent = seg.ack;
                    self.window_sent = window;
                    self.snd_nxt = self.snd_nxt.wrapping_add(n as u32);
                    if self.timer.is_none() {
                        self.arm_timer(now);
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
                    self.host_drained = self.peek_offset || self.in_flight() == 0;
                    break Verdict::Keep;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => {
                    log::debug!("tcp {:?}: read: {e}", self.key);
                    self.reset_guest(core, tx);
                    break Verdict::Close;
                }
            }
        };
        core.peek_skip = skip_buf;
        verdict
    }

    /// Goes back to the first unacknowledged byte, to send everything after it again.
    pub(super) fn rewind(&mut self) {
        self.host_drained = false;
        if self.peek_offset && crate::sys::set_peek_offset(self.stream.as_fd(), 0).is_err() {
            self.peek_offset = false;
        }
        self.snd_nxt = self.snd_una;
        if !self.fin_acked {
            self.fin_seq = None;
        }
    }
}
