//! Frames waiting to be written to the guest, in reusable buffers.
//!
//! The queue has a fixed number of slots; a slot's buffer keeps its size between turns, so a
//! steady flow of frames allocates nothing after warm-up. A slot handed out by [`TxQueue::push`]
//! still holds an older frame's bytes: builders write every byte of the frame they claim.
//!
//! # Backpressure
//!
//! A link that cannot take a frame now (a bess socket or a stream whose peer reads slowly)
//! is not dropped on: the caller takes the frames that went ([`TxQueue::consume_front`]) and
//! says the link is full ([`TxQueue::link_full`]); the rest wait here, in order, and bulk data
//! stops being queued until the link has taken all of them. Data for the guest then waits in
//! the host sockets' receive queues, not in ours. The bytes of bulk data one turn may queue
//! (the bulk budget) adapt as TCP's small queues do: halved each time the link is found full,
//! grown again while it takes everything, so a shallow link holds about what it can take and
//! a TAP the most.

use crate::engine::wire::offload::TxOffload;

/// Bulk data stops being queued beyond this many bytes in one turn: with 64 KiB frames the
/// slots would otherwise keep tens of MiB around, and the TAP takes what it takes anyway.
const BULK_BYTES: usize = 2 << 20;
/// The bulk budget never goes below this: a little more than one 64 KiB super-packet.
const MIN_BULK_BYTES: usize = 96 << 10;

/// Frames for the guest, queued by the engine until the caller sends them
/// ([`TxQueue::frames_with_offload`]) and clears the queue.
pub struct TxQueue {
    slots: Vec<Vec<u8>>,
    bytes: usize,
    lens: Vec<usize>,
    offloads: Vec<TxOffload>,
    used: usize,
    max_frames: usize,
    /// Bytes of bulk data one turn may queue (see Backpressure above).
    bulk_budget: usize,
    /// The link refused a frame; the queued ones wait until it is writable again.
    blocked: bool,
}

impl TxQueue {
    /// A queue for at most `max_frames` frames.
    pub fn new(max_frames: usize) -> Self {
        TxQueue {
            slots: Vec::new(),
            lens: Vec::new(),
            bytes: 0,
            offloads: Vec::new(),
            used: 0,
            max_frames,
            bulk_budget: BULK_BYTES,
            blocked: false,
        }
    }

    /// A buffer of `len` bytes at the end of the queue, or `None` when the queue is full.
    pub fn push(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.used == self.max_frames {
            return None;
        }
        if self.used == self.slots.len() {
            self.slots.push(Vec::new());
            self.lens.push(0);
            self.offloads.push(TxOffload::default());
        }
        let slot = &mut self.slots[self.used];
        if slot.len() < len {
            slot.resize(len, 0);
        }
        self.lens[self.used] = len;
        self.bytes += len;
        self.offloads[self.used] = TxOffload::default();
        self.used += 1;
        Some(&mut slot[..len])
    }

    /// Shortens the last frame pushed (when less payload arrived than room was made for).
    pub fn truncate_last(&mut self, len: usize) {
        if let Some(last) = self.used.checked_sub(1) {
            let new = self.lens[last].min(len);
            self.bytes -= self.lens[last] - new;
            self.lens[last] = new;
        }
    }

    /// The last frame pushed.
    pub fn last_mut(&mut self) -> Option<&mut [u8]> {
        let last = self.used.checked_sub(1)?;
        Some(&mut self.slots[last][..self.lens[last]])
    }

    /// Says what the last frame pushed leaves to the guest's kernel.
    pub fn set_last_offload(&mut self, offload: TxOffload) {
        if let Some(last) = self.used.checked_sub(1) {
            self.offloads[last] = offload;
        }
    }

    /// Takes back the last frame pushed (nothing was there to send after all).
    pub fn pop_last(&mut self) {
        if let Some(last) = self.used.checked_sub(1) {
            self.bytes -= self.lens[last];
            self.used = last;
        }
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Whether the queue takes no more frames: send them and [`clear`](Self::clear) it.
    pub fn is_full(&self) -> bool {
        self.used == self.max_frames
    }

    /// Whether bulk data may take more slots: not while the link is full, a quarter of the
    /// queue stays free for the replies (ACKs, ARP, ICMP) that the rest of a batch of guest
    /// frames may need, and the bytes queued stay within the bulk budget.
    pub fn has_room_for_bulk(&self) -> bool {
        !self.blocked
            && self.used < self.max_frames - self.max_frames / 4
            && self.bytes < self.bulk_budget
    }

    /// Whether a reply (an ACK) may be queued now: there is a slot, and the link is not so far
    /// behind that replies would only pile up. A reply that may not be queued is owed instead,
    /// and sent when there is room.
    pub fn has_room_for_control(&self) -> bool {
        self.used < self.max_frames - self.max_frames / 8
    }

    /// The link refused the frame at the front: the queued frames wait for it to be writable
    /// again, and the bulk budget shrinks (the link holds less than it was given).
    pub fn link_full(&mut self) {
        if !self.blocked {
            self.blocked = true;
            self.bulk_budget = (self.bulk_budget / 2).max(MIN_BULK_BYTES);
        }
    }

    /// Whether the link refused a frame that still waits here.
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// The bytes of bulk data a turn may queue now.
    pub fn bulk_budget(&self) -> usize {
        self.bulk_budget
    }

    /// Forgets the first `n` frames (the link took them), keeping the rest in order and every
    /// slot's room. Taking all of them ends a blocked state.
    pub fn consume_front(&mut self, n: usize) {
        let n = n.min(self.used);
        if n == self.used {
            self.clear();
            return;
        }
        let gone: usize = self.lens[..n].iter().sum();
        // Slots are rotated, not copied: the frames' buffers move, their bytes stay put.
        self.slots[..self.used].rotate_left(n);
        self.lens[..self.used].rotate_left(n);
        self.offloads[..self.used].rotate_left(n);
        self.used -= n;
        self.bytes -= gone;
    }

    /// The queued frames, oldest first.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.slots[..self.used]
            .iter()
            .zip(&self.lens)
            .map(|(slot, &len)| &slot[..len])
    }

    /// The queued frames with their offload metadata, oldest first.
    pub fn frames_with_offload(&self) -> impl Iterator<Item = (&[u8], &TxOffload)> {
        self.frames().zip(&self.offloads)
    }

    /// Forgets the frames queued (once they are sent), keeping the room. The link took them
    /// all: a blocked state ends, and a budget the link took at least half of without
    /// refusing grows by a quarter (up to the most).
    pub fn clear(&mut self) {
        if self.blocked {
            self.blocked = false;
        } else if self.bytes >= self.bulk_budget / 2 {
            self.bulk_budget = (self.bulk_budget + self.bulk_budget / 4).min(BULK_BYTES);
        }
        self.used = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::TxQueue;

    #[test]
    fn bounded_and_reusable() {
        let mut q = TxQueue::new(2);
        q.push(3).unwrap().copy_from_slice(b"abc");
        q.push(2).unwrap().copy_from_slice(b"de");
        assert!(q.push(1).is_none());
        assert!(q.is_full());
        assert_eq!(
            q.frames().collect::<Vec<_>>(),
            vec![&b"abc"[..], &b"de"[..]]
        );
        q.clear();
        assert!(q.is_empty());
        let again = q.push(2).unwrap();
        assert_eq!(again.len(), 2, "a reused slot has the length asked for");
        q.push(5).unwrap().copy_from_slice(b"fghij");
        q.truncate_last(3);
        assert_eq!(q.frames().nth(1), Some(&b"fgh"[..]));
        q.pop_last();
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn bulk_stops_at_the_byte_budget_and_offloads_reset() {
        let mut q = TxQueue::new(1024);
        while q.has_room_for_bulk() {
            q.push(64 << 10).unwrap();
        }
        assert_eq!(
            q.len(),
            super::BULK_BYTES / (64 << 10),
            "64 KiB frames up to the budget"
        );
        q.set_last_offload(super::TxOffload {
            partial_checksum: Some((34, 16)),
            tcp_segments: None,
            udp_segments: None,
        });
        q.pop_last();
        assert!(q.has_room_for_bulk(), "taking a frame back frees its bytes");
        q.push(10).unwrap();
        let (_, offload) = q.frames_with_offload().last().unwrap();
        assert_eq!(
            *offload,
            super::TxOffload::default(),
            "a reused slot starts plain"
        );
        q.clear();
        assert!(q.has_room_for_bulk());
    }

    #[test]
    fn a_full_link_keeps_the_rest_in_order_and_shrinks_the_budget() {
        let mut q = TxQueue::new(8);
        for (i, len) in [3, 4, 5, 6].into_iter().enumerate() {
            q.push(len).unwrap().fill(i as u8);
        }
        q.set_last_offload(super::TxOffload {
            partial_checksum: Some((1, 2)),
            tcp_segments: None,
            udp_segments: None,
        });
        // The link took two frames and refused the third.
        q.consume_front(2);
        q.link_full();
        assert!(q.is_blocked());
        assert!(!q.has_room_for_bulk(), "no bulk while the link is full");
        assert!(q.has_room_for_control());
        let left: Vec<_> = q.frames_with_offload().collect();
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].0, &[2u8; 5][..]);
        assert_eq!(left[1].0, &[3u8; 6][..]);
        assert_eq!(
            left[1].1.partial_checksum,
            Some((1, 2)),
            "offloads move along"
        );
        assert_eq!(super::BULK_BYTES / 2, q.bulk_budget());
        // A frame pushed now goes behind them; slots keep their room.
        q.push(2).unwrap().copy_from_slice(b"zz");
        assert_eq!(q.frames().last(), Some(&b"zz"[..]));
        q.consume_front(3);
        assert!(q.is_empty());
        assert!(!q.is_blocked(), "all taken: unblocked");
        assert_eq!(q.bulk_budget(), super::BULK_BYTES / 2);
        // A turn that used half the budget or more, all taken, grows it.
        q.push(super::BULK_BYTES / 4).unwrap();
        q.clear();
        assert_eq!(
            q.bulk_budget(),
            super::BULK_BYTES / 2 * 5 / 4,
            "the budget grows"
        );
        q.push(10).unwrap();
        q.clear();
        assert_eq!(
            q.bulk_budget(),
            super::BULK_BYTES / 2 * 5 / 4,
            "not on a small turn"
        );
        // Refusals shrink the budget down to its floor, not below.
        for _ in 0..20 {
            q.push(1).unwrap();
            q.link_full();
            q.clear();
            q.push(1).unwrap();
            q.link_full();
            q.consume_front(0);
            q.consume_front(1);
        }
        assert!(q.bulk_budget() >= super::MIN_BULK_BYTES);
    }
}
