//! A seeded faulty wire: one direction of a link, on the virtual clock.
//!
//! Frames offered to the wire wait in a queue of bounded length, leave it one at a time at the
//! line's rate, and arrive after a delay. On the way a frame may be lost, duplicated or held
//! back (so that later frames overtake it), each with its own probability. A full queue either
//! pushes back (the sender must keep the frame and try again later: a bess socket, a stream) or
//! drops the frame (a TAP whose queue overflows). Every decision comes from the seed, so a run
//! replays exactly.

use crate::engine::testutil::Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

/// What the wire does to frames, in parts per million where it is a probability.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub loss_ppm: u32,
    pub duplicate_ppm: u32,
    /// A frame held back by up to `reorder_delay` more than the others.
    pub reorder_ppm: u32,
    pub reorder_delay: Duration,
    /// Frames waiting to go on the line, at most.
    pub queue_frames: usize,
    /// Whether a full queue refuses frames (true) or drops them (false).
    pub push_back: bool,
    /// The line's rate.
    pub bytes_per_second: u64,
    /// From leaving the queue to arriving.
    pub delay: Duration,
}

impl Faults {
    /// A clean, fast, shallow wire that pushes back.
    pub fn clean() -> Self {
        Faults {
            loss_ppm: 0,
            duplicate_ppm: 0,
            reorder_ppm: 0,
            reorder_delay: Duration::ZERO,
            queue_frames: 64,
            push_back: true,
            bytes_per_second: 1 << 30,
            delay: Duration::from_micros(50),
        }
    }
}

/// What happened on the wire.
#[derive(Debug, Clone, Copy, Default)]
pub struct WireStats {
    pub offered: u64,
    pub refused: u64,
    pub dropped_full: u64,
    pub lost: u64,
    pub lost_bytes: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub delivered: u64,
}

pub struct Wire {
    faults: Faults,
    rng: Rng,
    queue: VecDeque<Vec<u8>>,
    /// When the line finishes sending the frame it is sending (the queue's head leaves then).
    line_free_at: Duration,
    /// Frames on their way: arrival time, then an order number so that equal times keep order.
    arriving: BinaryHeap<Reverse<(Duration, u64, Vec<u8>)>>,
    order: u64,
    pub stats: WireStats,
}

impl Wire {
    pub fn new(faults: Faults, seed: u64) -> Self {
        Wire {
            faults,
            rng: Rng::new(seed),
            queue: VecDeque::new(),
            line_free_at: Duration::ZERO,
            arriving: BinaryHeap::new(),
            order: 0,
            stats: WireStats::default(),
        }
    }

    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && (self.rng.next_u64() % 1_000_000) < u64::from(ppm)
    }

    fn line_time(&self, len: usize) -> Duration {
        let rate = self.faults.bytes_per_second.max(1);
        Duration::from_nanos((len as u64 * 1_000_000_000) / rate)
    }

    /// Offers a frame at `now`; false if the wire refuses it (full, pushing back). A frame the
    /// wire drops for want of room is taken (true).
    pub fn offer(&mut self, now: Duration, frame: &[u8]) -> bool {
        self.advance(now);
        self.stats.offered += 1;
        if self.queue.len() >= self.faults.queue_frames {
            if self.faults.push_back {
                self.stats.refused += 1;
                return false;
            }
            self.stats.dropped_full += 1;
            return true;
        }
        if self.queue.is_empty() && self.line_free_at < now {
            self.line_free_at = now;
        }
        self.queue.push_back(frame.to_vec());
        self.advance(now);
        true
    }

    /// Whether a frame offered now would be taken.
    pub fn has_room(&mut self, now: Duration) -> bool {
        self.advance(now);
        !self.faults.push_back || self.queue.len() < self.faults.queue_frames
    }

    /// Moves frames from the queue onto the line as time passes.
    fn advance(&mut self, now: Duration) {
        while let Some(len) = self.queue.front().map(Vec::len) {
            let leaves = self.line_free_at + self.line_time(len);
            if leaves > now {
                break;
            }
            let Some(frame) = self.queue.pop_front() else {
                break;
            };
            self.line_free_at = leaves;
            self.launch(leaves, frame);
        }
        if self.queue.is_empty() && self.line_free_at < now {
            self.line_free_at = now;
        }
    }

    fn launch(&mut self, left: Duration, frame: Vec<u8>) {
        if self.chance(self.faults.loss_ppm) {
            self.stats.lost += 1;
            self.stats.lost_bytes += frame.len() as u64;
            return;
        }
        if self.chance(self.faults.duplicate_ppm) {
            self.stats.duplicated += 1;
            self.schedule(left, frame.clone());
        }
        self.schedule(left, frame);
    }

    fn schedule(&mut self, left: Duration, frame: Vec<u8>) {
        let mut arrives = left + self.faults.delay;
        if self.chance(self.faults.reorder_ppm) {
            self.stats.reordered += 1;
            let max = self.faults.reorder_delay.as_nanos().max(1) as u64;
            arrives += Duration::from_nanos(self.rng.next_u64() % max);
        }
        self.order += 1;
        self.arriving.push(Reverse((arrives, self.order, frame)));
    }

    /// The frames that have arrived by `now`, in order of arrival.
    pub fn arrived(&mut self, now: Duration) -> Vec<Vec<u8>> {
        self.advance(now);
        let mut out = Vec::new();
        while let Some(Reverse((at, _, _))) = self.arriving.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, _, frame))) = self.arriving.pop() {
                out.push(frame);
            }
        }
        self.stats.delivered += out.len() as u64;
        out
    }

    /// When something next happens on the wire (a frame leaves the queue or arrives).
    pub fn next_event(&self) -> Option<Duration> {
        let leaving = self
            .queue
            .front()
            .map(|f| self.line_free_at + self.line_time(f.len()));
        let arriving = self.arriving.peek().map(|Reverse((at, _, _))| *at);
        [leaving, arriving].into_iter().flatten().min()
    }

    /// Whether nothing is queued or on its way.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.arriving.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn frames_arrive_after_the_line_time_and_the_delay_in_order() {
        let faults = Faults {
            bytes_per_second: 1000,
            delay: ms(5),
            queue_frames: 2,
            ..Faults::clean()
        };
        let mut wire = Wire::new(faults, 1);
        assert!(wire.offer(ms(0), &[1; 10]));
        assert!(wire.offer(ms(0), &[2; 10]));
        assert!(!wire.offer(ms(0), &[3; 10]), "two frames fill the queue");
        // 10 bytes at 1000 B/s: 10 ms each on the line.
        assert_eq!(wire.next_event(), Some(ms(10)));
        assert!(wire.arrived(ms(14)).is_empty());
        assert_eq!(wire.arrived(ms(15)), vec![vec![1; 10]]);
        assert!(wire.has_room(ms(15)));
        assert_eq!(wire.arrived(ms(25)), vec![vec![2; 10]]);
        assert!(wire.is_idle());
    }

    #[test]
    fn faults_follow_the_seed() {
        let faults = Faults {
            loss_ppm: 100_000,
            duplicate_ppm: 100_000,
            reorder_ppm: 100_000,
            reorder_delay: ms(3),
            queue_frames: 10_000,
            ..Faults::clean()
        };
        let run = |seed| {
            let mut wire = Wire::new(faults, seed);
            for i in 0..1000u32 {
                wire.offer(ms(u64::from(i)), &i.to_be_bytes());
            }
            let got = wire.arrived(ms(10_000));
            (got, wire.stats)
        };
        let (a, stats) = run(7);
        let (b, _) = run(7);
        assert_eq!(a, b, "same seed, same run");
        assert!((50..150).contains(&stats.lost), "{stats:?}");
        assert!((50..150).contains(&stats.duplicated), "{stats:?}");
        assert!(stats.reordered > 50, "{stats:?}");
        let out_of_order = a.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(out_of_order > 0, "some frames overtake others");
        assert_eq!(a.len() as u64, 1000 - stats.lost + stats.duplicated);
    }
}
