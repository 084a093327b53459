//! sack - selective acknowledgements, both ways.
//!
//! - [`Scoreboard`]: what the guest says it holds beyond its cumulative ACK (RFC 2018 SACK
//!   blocks), so that loss recovery resends the holes only (RFC 6675), not everything after
//!   the first unacknowledged byte.
//! - [`Reassembly`]: guest data that arrived beyond a hole, held until the hole fills, and the
//!   blocks our ACKs report for it. Without it every lost segment would cost the guest all it
//!   sent after it. Bounded per connection (bytes and pieces), and by the engine's total.
//!
//! Sequence numbers wrap; every comparison is made as an offset from a base the caller gives
//! (the first unacknowledged byte, or the next expected one), never on raw numbers.

use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn offset(seq: u32, base: u32) -> u32 {
    seq.wrapping_sub(base)
}

/// SACKed ranges above the first unacknowledged byte, sorted and merged.
#[derive(Debug, Clone, Default)]
pub struct Scoreboard {
    ranges: Vec<(u32, u32)>,
    sacked: u32,
}

/// Ranges kept at most; beyond, the highest are forgotten (which only costs a retransmission
/// the guest did not need).
const MAX_RANGES: usize = 32;

impl Scoreboard {
    /// Records the guest's block [left, right), if it lies within [una, nxt). Returns whether
    /// it said anything new.
    pub fn add(&mut self, una: u32, nxt: u32, left: u32, right: u32) -> bool {
        let (l, r, end) = (offset(left, una), offset(right, una), offset(nxt, una));
        if l >= r || r > end {
            return false;
        }
        let before = self.sacked;
        let mut merged = (l, r);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, b) in &self.ranges {
            let (a, b) = (offset(a, una), offset(b, una));
            if b < merged.0 || a > merged.1 {
                kept.push((a, b));
            } else {
                merged = (merged.0.min(a), merged.1.max(b));
            }
        }
        kept.push(merged);
        kept.sort_unstable();
        kept.truncate(MAX_RANGES);
        self.sacked = kept.iter().map(|(a, b)| b - a).sum();
        self.ranges = kept
            .into_iter()
            .map(|(a, b)| (una.wrapping_add(a), una.wrapping_add(b)))
            .collect();
        self.sacked != before
    }

    /// The guest acknowledged everything below `una`: forget those ranges.
    pub fn advance(&mut self, una: u32) {
        let mut sacked = 0;
        self.ranges.retain_mut(|(a, b)| {
            // A range wholly below una is gone; one straddling it keeps its upper part.
            if offset(*b, una) as i32 <= 0 {
                return false;
            }
            if (offset(*a, una) as i32) < 0 {
                *a = una;
            }
            sacked += offset(*b, *a);
            true
        });
        self.sacked = sacked;
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Bytes SACKed.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// The byte after the highest one SACKed.
    pub fn highest(&self) -> Option<u32> {
        self.ranges.last().map(|&(_, b)| b)
    }

    /// The first hole at or after `from` (relative to `una`): its start, and where the next
    /// SACKed range begins (None: no range above it).
    pub fn next_hole(&self, una: u32, from: u32) -> (u32, Option<u32>) {
        let mut at = offset(from, una);
        for &(a, b) in &self.ranges {
            let (a, b) = (offset(a, una), offset(b, una));
            if b <= at {
                continue;
            }
            if a <= at {
                at = b;
                continue;
            }
            return (una.wrapping_add(at), Some(una.wrapping_add(a)));
        }
        (una.wrapping_add(at), None)
    }

    /// Bytes in [from, to) that are not SACKed (all relative to `una`).
    pub fn unsacked_in(&self, una: u32, from: u32, to: u32) -> u32 {
        let (from, to) = (offset(from, una), offset(to, una));
        if from >= to {
            return 0;
        }
        let covered: u32 = self
            .ranges
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (offset(a, una).max(from), offset(b, una).min(to));
                b.saturating_sub(a)
            })
            .sum();
        (to - from).saturating_sub(covered)
    }
}

/// A piece of guest data held out of order.
#[derive(Debug)]
struct Block {
    seq: u32,
    data: Vec<u8>,
}

/// The memory all connections of an engine may hold out of order together.
#[derive(Debug, Clone)]
pub struct HoldBudget {
    used: Arc<AtomicUsize>,
    limit: usize,
}

impl HoldBudget {
    pub fn new(limit: usize) -> Self {
        HoldBudget {
            used: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// Bytes held now, by all connections.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn room(&self) -> usize {
        self.limit.saturating_sub(self.used())
    }

    fn take(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Guest data beyond the next expected byte, held until it can be written in order. What it
/// holds counts against its [`HoldBudget`] until it is written or dropped.
#[derive(Debug)]
pub struct Reassembly {
    budget: HoldBudget,
    /// Sorted by offset from the next expected byte; never overlapping (adjacent is allowed).
    blocks: Vec<Block>,
    /// Memory held: the blocks' capacities.
    memory: usize,
    /// The left edge of the piece that arrived last (reported first, RFC 2018).
    latest: Option<u32>,
    /// A FIN that arrived out of order: its sequence number.
    pub fin: Option<u32>,
}

/// What [`Reassembly::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inserted {
    /// Bytes that were new and are held now.
    pub held: usize,
    /// New bytes that were not held for want of room.
    pub refused: usize,
}

impl Drop for Reassembly {
    fn drop(&mut self) {
        self.budget.give(self.memory);
    }
}

impl Reassembly {
    pub fn new(budget: HoldBudget) -> Self {
        Reassembly {
            budget,
            blocks: Vec::new(),
            memory: 0,
            latest: None,
            fin: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Memory held, in bytes.
    #[cfg(test)]
    pub fn memory(&self) -> usize {
        self.memory
    }

    /// Holds what of `data` (at `seq`) is new, beyond `next` (the next expected byte), while
    /// the memory held stays within `max_memory` and the budget, and the pieces within
    /// `max_blocks`.
    pub fn insert(
        &mut self,
        next: u32,
        seq: u32,
        data: &[u8],
        max_memory: usize,
        max_blocks: usize,
    ) -> Inserted {
        let mut result = Inserted::default();
        // Pieces below `next` were written since (the offsets below must not wrap).
        self.discard_below(next);
        // Where the data starts and ends, as offsets from `next`; what lies before is old.
        let start = offset(seq, next) as i32;
        let skip = if start < 0 { start.unsigned_abs() } else { 0 };
        if skip as usize >= data.len() {
            return result;
        }
        let mut cur = start.max(0) as u32;
        let end = cur + (data.len() - skip as usize) as u32;
        let base_in_data = |at: u32| (skip + at - start.max(0) as u32) as usize;
        let mut i = 0;
        while cur < end {
            while i < self.blocks.len() && self.block_end(i, next) <= cur {
                i += 1;
            }
            if i < self.blocks.len() && offset(self.blocks[i].seq, next) <= cur {
                cur = self.block_end(i, next);
                i += 1;
                continue;
            }
            let gap_end = match self.blocks.get(i) {
                Some(b) => end.min(offset(b.seq, next)),
                None => end,
            };
            let piece = &data[base_in_data(cur)..base_in_data(gap_end)];
            let appends = i > 0 && self.block_end(i - 1, next) == cur;
            let grow = if appends {
                let block = &self.blocks[i - 1].data;
                if block.capacity() - block.len() >= piece.len() {
                    0
                } else {
                    (block.len() + piece.len()).max(block.capacity() * 2) - block.capacity()
                }
            } else {
                piece.len()
            };
            let too_many = !appends && self.blocks.len() >= max_blocks;
            if self.memory + grow > max_memory || grow > self.budget.room() || too_many {
                result.refused += (end - cur) as usize;
                break;
            }
            if appends {
                let block = &mut self.blocks[i - 1].data;
                let before = block.capacity();
                block.extend_from_slice(piece);
                self.memory += block.capacity() - before;
                self.budget.take(block.capacity() - before);
            } else {
                let block = Block {
                    seq: next.wrapping_add(cur),
                    data: piece.to_vec(),
                };
                self.memory += block.data.capacity();
                self.budget.take(block.data.capacity());
                self.blocks.insert(i, block);
                i += 1;
            }
            self.latest = Some(next.wrapping_add(cur));
            result.held += piece.len();
            cur = gap_end;
        }
        result
    }

    fn block_end(&self, i: usize, next: u32) -> u32 {
        offset(self.blocks[i].seq, next).saturating_add(self.blocks[i].data.len() as u32)
    }

    /// Up to three SACK blocks for an ACK of `next`: the one holding the latest arrival first,
    /// then the others from the lowest. Adjacent pieces make one block; a piece at `next`
    /// itself (data held because the host could not take it) is not reported, nor what lies
    /// below `next` (an ACK of less than all that was taken, or pieces written but not yet
    /// discarded).
    pub fn sack_blocks(&self, next: u32) -> [Option<(u32, u32)>; 3] {
        let mut merged: Vec<(u32, u32)> = Vec::new();
        for b in &self.blocks {
            let start = offset(b.seq, next) as i32;
            let len = b.data.len() as u32;
            let (l, r) = if start >= 0 {
                (start as u32, (start as u32).saturating_add(len))
            } else if start.unsigned_abs() < len {
                (0, len - start.unsigned_abs())
            } else {
                continue;
            };
            match merged.last_mut() {
                Some(last) if last.1 == l => last.1 = r,
                _ => merged.push((l, r)),
            }
        }
        merged.retain(|&(l, _)| l > 0);
        let latest = self.latest.map(|s| offset(s, next));
        if let Some(pos) = latest.and_then(|s| merged.iter().position(|&(l, r)| l <= s && s < r)) {
            let first = merged.remove(pos);
            merged.insert(0, first);
        }
        let mut out = [None; 3];
        for (slot, (l, r)) in out.iter_mut().zip(merged) {
            *slot = Some((next.wrapping_add(l), next.wrapping_add(r)));
        }
        out
    }

    /// Forgets what lies before `next` (written since, from a retransmission that covered it).
    pub fn discard_below(&mut self, next: u32) {
        let mut freed = 0;
        self.blocks.retain_mut(|b| {
            let start = offset(b.seq, next) as i32;
            if start >= 0 {
                return true;
            }
            let old = start.unsigned_abs() as usize;
            if old >= b.data.len() {
                freed += b.data.capacity();
                return false;
            }
            b.data.drain(..old);
            b.seq = next;
            true
        });
        self.memory -= freed;
        self.budget.give(freed);
    }

    /// The data that can be written now, from `next` on: slices of the contiguous pieces.
    pub fn ready(&self, next: u32) -> Vec<IoSlice<'_>> {
        let mut at = next;
        let mut out = Vec::new();
        for b in &self.blocks {
            if b.seq != at {
                break;
            }
            out.push(IoSlice::new(&b.data));
            at = at.wrapping_add(b.data.len() as u32);
        }
        out
    }

    /// `written` bytes from `next` on were written: drop them (`next` is where they began).
    pub fn consumed(&mut self, next: u32, written: usize) {
        self.discard_below(next.wrapping_add(written as u32));
        if self.blocks.is_empty() {
            self.latest = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scoreboard_merges_trims_and_finds_holes() {
        let una = u32::MAX - 1000; // across the wrap
        let at = |n: u32| una.wrapping_add(n);
        let mut sb = Scoreboard::default();
        assert!(sb.add(una, at(10_000), at(3000), at(4000)));
        assert!(!sb.add(una, at(10_000), at(3000), at(4000)), "nothing new");
        assert!(
            !sb.add(una, at(10_000), at(9000), at(11_000)),
            "beyond what was sent"
        );
        assert!(sb.add(una, at(10_000), at(1000), at(2000)));
        assert!(sb.add(una, at(10_000), at(2000), at(3000)), "joins both");
        assert_eq!(sb.sacked_bytes(), 3000);
        assert!(sb.add(una, at(10_000), at(6000), at(7000)));
        assert_eq!(sb.highest(), Some(at(7000)));
        assert_eq!(sb.next_hole(una, una), (una, Some(at(1000))));
        assert_eq!(sb.next_hole(una, at(1500)), (at(4000), Some(at(6000))));
        assert_eq!(sb.next_hole(una, at(6500)), (at(7000), None));
        assert_eq!(sb.unsacked_in(una, una, at(7000)), 3000);
        assert_eq!(sb.unsacked_in(una, at(3500), at(6500)), 2000);
        sb.advance(at(2500));
        assert_eq!(sb.sacked_bytes(), 2500);
        assert_eq!(sb.next_hole(at(2500), at(2500)), (at(4000), Some(at(6000))));
        sb.advance(at(8000));
        assert!(sb.is_empty());
        assert_eq!(sb.sacked_bytes(), 0);
    }

    #[test]
    fn the_scoreboard_stays_bounded() {
        let mut sb = Scoreboard::default();
        for i in 0..100u32 {
            sb.add(0, 1_000_000, 10 + i * 100, 20 + i * 100);
        }
        assert_eq!(sb.ranges.len(), MAX_RANGES);
        assert_eq!(sb.sacked_bytes(), 10 * MAX_RANGES as u32);
    }

    #[test]
    fn pieces_below_the_acked_point_are_neither_reported_nor_in_the_way() {
        // An ACK for less than what was taken (every second segment), or a piece written from
        // a retransmission but not yet discarded: blocks lie below `next`.
        let next = u32::MAX - 5;
        let at = |n: u32| next.wrapping_add(n);
        let mut r = Reassembly::new(HoldBudget::new(1 << 30));
        let big = 1 << 20;
        assert_eq!(r.insert(next, at(10), b"klmno", big, 8).held, 5);
        assert_eq!(r.insert(next, at(20), b"uv", big, 8).held, 2);
        assert_eq!(
            r.sack_blocks(at(12)),
            [Some((at(20), at(22))), None, None],
            "a block that began below is reported from next on, not at all when it starts there"
        );
        assert_eq!(r.sack_blocks(at(11)), [Some((at(20), at(22))), None, None]);
        assert_eq!(
            r.sack_blocks(next.wrapping_sub(1000)),
            [Some((at(20), at(22))), Some((at(10), at(15))), None]
        );
        assert_eq!(r.sack_blocks(at(30)), [None, None, None]);
        // Inserting at a later `next` first lets go of what lies below it.
        assert_eq!(r.insert(at(16), at(30), b"EF", big, 8).held, 2);
        assert_eq!(r.blocks.len(), 2);
        assert_eq!(
            r.sack_blocks(at(16)),
            [Some((at(30), at(32))), Some((at(20), at(22))), None]
        );
    }

    #[test]
    fn reassembly_holds_new_bytes_once_and_reports_blocks() {
        let next = u32::MAX - 5; // across the wrap
        let at = |n: u32| next.wrapping_add(n);
        let budget = HoldBudget::new(1 << 30);
        let mut r = Reassembly::new(budget.clone());
        let big = 1 << 20;
        assert_eq!(r.insert(next, at(10), b"klmno", big, 8).held, 5);
        assert_eq!(r.insert(next, at(15), b"pqr", big, 8).held, 3, "appended");
        assert_eq!(r.blocks.len(), 1);
        assert_eq!(
            r.insert(next, at(12), b"mnopqrst", big, 8).held,
            2,
            "only st"
        );
        assert_eq!(r.insert(next, at(30), b"EF", big, 8).held, 2);
        assert_eq!(
            r.sack_blocks(next),
            [Some((at(30), at(32))), Some((at(10), at(20))), None],
            "the latest first"
        );
        // Data before `next` is old; what fills the gap joins.
        assert_eq!(
            r.insert(next, next.wrapping_sub(3), b"xyzabc", big, 8).held,
            3
        );
        assert_eq!(r.insert(next, at(3), b"defghij", big, 8).held, 7);
        let ready: Vec<u8> = r.ready(next).iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(ready, b"abcdefghijklmnopqrst");
        assert_eq!(
            r.sack_blocks(next)[0],
            Some((at(30), at(32))),
            "none at next"
        );
        r.consumed(next, 12);
        let ready: Vec<u8> = r.ready(at(12)).iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(ready, b"mnopqrst");
        r.consumed(at(12), 8);
        assert!(r.ready(at(20)).is_empty());
        assert_eq!(budget.used(), r.memory());
        r.discard_below(at(40));
        assert!(r.is_empty());
        assert_eq!(r.memory(), 0);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn reassembly_refuses_beyond_its_bounds() {
        let budget = HoldBudget::new(20_000);
        let mut r = Reassembly::new(budget.clone());
        let got = r.insert(0, 100, &[1; 1000], 1500, 2);
        assert_eq!(got.held, 1000);
        let got = r.insert(0, 3000, &[2; 1000], 1500, 2);
        assert_eq!(
            got,
            Inserted {
                held: 0,
                refused: 1000
            },
            "memory"
        );
        let got = r.insert(0, 2000, &[3; 10], 100_000, 2);
        assert_eq!(got.held, 10);
        let got = r.insert(0, 5000, &[4; 10], 100_000, 2);
        assert_eq!(got.refused, 10, "pieces");
        let mut other = Reassembly::new(budget.clone());
        let got = other.insert(0, 100, &[5; 30_000], 100_000, 8);
        assert_eq!(got.refused, 30_000, "the engine's budget");
        assert!(other.insert(0, 100, &[5; 1000], 100_000, 8).held > 0);
        let held = budget.used();
        assert!(held >= 2010);
        drop(r);
        drop(other);
        assert_eq!(budget.used(), 0, "dropping gives it all back");
    }
}
