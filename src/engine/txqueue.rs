//! Frames waiting to be written to the guest, in reusable buffers.
//!
//! The queue has a fixed number of slots; a slot's buffer keeps its capacity between turns, so
//! a steady flow of replies allocates nothing after warm-up.

pub struct TxQueue {
    slots: Vec<Vec<u8>>,
    used: usize,
    max_frames: usize,
}

impl TxQueue {
    pub fn new(max_frames: usize) -> Self {
        TxQueue {
            slots: Vec::new(),
            used: 0,
            max_frames,
        }
    }

    /// A zeroed buffer of `len` bytes at the end of the queue, or `None` when the queue is full.
    pub fn push(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.used == self.max_frames {
            return None;
        }
        if self.used == self.slots.len() {
            self.slots.push(Vec::new());
        }
        let slot = &mut self.slots[self.used];
        slot.clear();
        slot.resize(len, 0);
        self.used += 1;
        Some(slot.as_mut_slice())
    }

    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    pub fn is_full(&self) -> bool {
        self.used == self.max_frames
    }

    /// The queued frames, oldest first.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.slots[..self.used].iter().map(Vec::as_slice)
    }

    /// Forgets the first `count` frames (those written), keeping the rest in order.
    pub fn consume(&mut self, count: usize) {
        let count = count.min(self.used);
        self.slots[..self.used].rotate_left(count);
        self.used -= count;
    }

    pub fn clear(&mut self) {
        self.used = 0;
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
        q.consume(1);
        assert_eq!(q.frames().collect::<Vec<_>>(), vec![&b"de"[..]]);
        let again = q.push(4).unwrap();
        assert_eq!(again, &[0, 0, 0, 0], "a reused slot comes back zeroed");
        q.clear();
        assert!(q.is_empty());
    }
}
