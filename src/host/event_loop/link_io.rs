//! Frames between the link and the engine: a turn's frames read from the guest in one batch
//! into the receive arena, and the engine's frames written out, as far as the link takes them
//! (a link that is full pushes back: what it did not take stays queued, in order).

use super::*;

impl EventLoop {
    /// The link can take frames again: what it holds goes first, then what waits here; the
    /// engine goes on at the end of the turn.
    pub(super) fn link_writable(&mut self) {
        self.flush_link();
        if !self.tx.is_empty() {
            self.flush();
        }
    }

    /// Reads a batch of frames (until EAGAIN, the per-turn limit, or a full arena) and hands
    /// them to the engine together.
    pub(super) fn read_link(&mut self, now: Instant) -> Option<Exit> {
        self.link_backlog = true;
        self.rx_ends.clear();
        self.rx_offloads.clear();
        let mut used = 0;
        let mut exit = None;
        while self.rx_ends.len() < FRAMES_PER_TURN && used + MAX_FRAME <= self.rx_arena.len() {
            match self.link.recv(&mut self.rx_arena[used..used + MAX_FRAME]) {
                Recv::Frame(len, offload) => {
                    used += len;
                    self.turn_bytes += len;
                    self.rx_ends.push(used);
                    self.rx_offloads.push(offload);
                }
                Recv::Empty => {
                    self.link_backlog = false;
                    break;
                }
                Recv::Gone(why) => {
                    log::warn!("{why}; exiting");
                    exit = Some(Exit::LinkGone);
                    break;
                }
            }
        }
        let link_drops = self.link.take_dropped();
        if link_drops > 0 {
            self.engine.count_link_drops(link_drops, 0);
        }
        if !self.tx.is_empty() {
            self.flush();
        }
        let arena = &self.rx_arena;
        let frames = self.rx_ends.iter().scan(0, |start, &end| {
            let frame = &arena[*start..end];
            *start = end;
            Some(frame)
        });
        let frames = frames.zip(self.rx_offloads.iter().copied());
        self.engine.handle_frames(now, frames, &mut self.tx);
        exit
    }

    /// Hands the queued frames to the link until it refuses one; those stay queued.
    pub(super) fn flush(&mut self) {
        if self.tx.is_empty() {
            self.flush_link();
            return;
        }
        let (mut taken, mut unsent, mut full) = (0, 0, false);
        for (frame, offload) in self.tx.frames_with_offload() {
            let mut sent = self.link.send(frame, offload);
            if sent == Err(nix::errno::Errno::EAGAIN) {
                // A stream holds what it was given until it is written: write it, and only
                // if the stream then still has no room is the link full (and will say when
                // it has room again).
                if !self.link.flush() {
                    self.link_backlog = true;
                }
                sent = self.link.send(frame, offload);
            }
            match sent {
                Err(nix::errno::Errno::EAGAIN) => {
                    full = true;
                    break;
                }
                Err(e) => {
                    log::debug!("write to the guest failed: {e}");
                    unsent += 1;
                }
                Ok(()) => {
                    self.turn_bytes += frame.len();
                }
            }
            taken += 1;
        }
        if unsent > 0 {
            self.engine.count_link_drops(0, unsent);
        }
        self.tx.consume_front(taken);
        if full {
            self.tx.link_full();
        }
        self.flush_link();
    }

    /// Writes what a stream link holds; a link broken for good is noticed by the next read.
    pub(super) fn flush_link(&mut self) {
        if !self.link.flush() {
            self.link_backlog = true;
        }
    }
}
