//! Frames waiting to be written to the guest, in reusable buffers.
//!
//! The queue has a fixed number of slots; a slot's buffer keeps its size between turns, so a
//! steady flow of frames allocates nothing after warm-up. A slot handed out by [`TxQueue::push`]
//! still holds an older frame's bytes: builders write every byte of the frame they claim.

use super::offload::TxOffload;

/// Bulk data stops being queued beyond this many bytes in one turn: with 64 KiB frames the
/// slots would otherwise keep tens of MiB around, and the TAP takes what it takes anyway.
const BULK_BYTES: usize = 2 << 20;

/// Frames for the guest, queued by the engine until the caller sends them
/// ([`TxQueue::frames_with_offload`]) and clears the queue.
pub struct TxQueue {
    slots: Vec<Vec<u8>>,
    bytes: usize,
    lens: Vec<usize>,
    offloads: Vec<TxOffload>,
    used: usize,
    max_frames: usize,
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

    /// Whether bulk data may take more slots: a quarter of the queue stays free for the
    /// replies (ACKs, ARP, ICMP) that the rest of a batch of guest frames may need, and the
    /// bytes queued stay within a budget.
    pub fn has_room_for_bulk(&self) -> bool {
        self.used < self.max_frames - self.max_frames / 4 && self.bytes < BULK_BYTES
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

    /// Forgets the frames queued (once they are sent), keeping the room.
    pub fn clear(&mut self) {
        self.used = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::TxQueue;

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
}
