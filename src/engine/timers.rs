//! Flow deadlines: a heap of (when, flow slot), cleaned lazily.
//!
//! A flow that moves its deadline later leaves its old entry in the heap; when that entry comes
//! up, the engine sees the flow's real deadline is later and schedules it again. So each flow
//! has few entries at a time, and moving a deadline later (every ACK) costs nothing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Timers {
    pub fn schedule(&mut self, when: Instant, slot: usize) {
        // Skip an entry that an identical one already covers.
        if self.heap.peek() != Some(&Reverse((when, slot))) {
            self.heap.push(Reverse((when, slot)));
        }
    }

    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((when, _))| *when)
    }

    /// The slot of an entry due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<usize> {
        match self.heap.peek() {
            Some(Reverse((when, _))) if *when <= now => self.heap.pop().map(|Reverse((_, s))| s),
            _ => None,
        }
    }
}
