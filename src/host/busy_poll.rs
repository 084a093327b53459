//! Adaptive busy polling of the event loop.
//!
//! A request/response exchange through the engine wakes it twice per round trip: once for the
//! guest's request, once for the server's answer. On a virtual machine a sleeping thread's
//! wake-up costs tens of microseconds (the idle vCPU halts and must be kicked), which is most of
//! a short round trip. So, while traffic is light, the loop polls without sleeping for a short
//! window before it sleeps in `epoll_wait`; an event that comes within the window is handled
//! at once.
//!
//! The window adapts as the kernel's haltpoll governor does: it grows (doubling, from
//! [`GROW_START`]) while the loop keeps finding events just after its window ended but within
//! the limit, and it shrinks (halving, then to nothing) each time the loop sat idle for longer
//! than the limit. Traffic that comes in quick exchanges keeps a window; sparse traffic, or none,
//! costs no polling.
//!
//! Heavy traffic never polls: a turn that moved more than [`LIGHT_TURN_BYTES`], or any turn
//! while the loop moves more than [`HEAVY_BYTES_PER_SEC`]. A stream is bound by throughput, not
//! by wake-ups; a loop that sleeps lets frames gather into larger batches, and on a small machine
//! the core a poll would burn is the one the sender or receiver needs (measured: a UDP flood to
//! the guest lost a fifth of its rate to polling before this gate).

use std::time::{Duration, Instant};

/// The first window a growing one takes.
pub const GROW_START: Duration = Duration::from_micros(10);

/// A turn that moved more than this over the link (or through splice pairs) is bulk: no poll
/// after it.
pub const LIGHT_TURN_BYTES: usize = 16 * 1024;

/// A loop moving more than this is streaming: no poll while it does.
pub const HEAVY_BYTES_PER_SEC: u64 = 32 << 20;

/// How often the rate is taken.
const RATE_PERIOD: Duration = Duration::from_millis(1);

/// The default limit of the window (`--busy-poll`).
pub const DEFAULT_LIMIT_MICROS: u64 = 50;

#[derive(Debug, Clone)]
pub struct BusyPoll {
    limit: Duration,
    window: Duration,
    period_start: Instant,
    period_bytes: u64,
    /// The last full period moved more than [`HEAVY_BYTES_PER_SEC`].
    heavy: bool,
}

impl BusyPoll {
    /// A window that may grow up to `limit` (zero: never poll).
    pub fn new(limit: Duration) -> Self {
        BusyPoll {
            limit,
            window: Duration::ZERO,
            period_start: Instant::now(),
            period_bytes: 0,
            heavy: false,
        }
    }

    /// How long to poll before sleeping, after a turn that ended at `now` and moved
    /// `turn_bytes`.
    pub fn window(&mut self, turn_bytes: usize, now: Instant) -> Duration {
        self.period_bytes = self.period_bytes.saturating_add(turn_bytes as u64);
        let elapsed = now.saturating_duration_since(self.period_start);
        if elapsed >= RATE_PERIOD {
            let rate = u128::from(self.period_bytes) * 1_000_000_000 / elapsed.as_nanos();
            self.heavy = rate > u128::from(HEAVY_BYTES_PER_SEC);
            self.period_start = now;
            self.period_bytes = 0;
        }
        if self.heavy || turn_bytes > LIGHT_TURN_BYTES {
            Duration::ZERO
        } else {
            self.window
        }
    }

    /// Learns from how long the loop waited for its next event (polling and sleeping together).
    pub fn record_idle(&mut self, idle: Duration) {
        if idle <= self.window {
            return;
        }
        if idle <= self.limit {
            self.window = (self.window * 2).max(GROW_START).min(self.limit);
        } else {
            self.window /= 2;
            if self.window < GROW_START {
                self.window = Duration::ZERO;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn quick_exchanges_grow_the_window_to_the_limit_and_keep_it() {
        let now = Instant::now();
        let mut poll = BusyPoll::new(micros(50));
        assert_eq!(poll.window(64, now), Duration::ZERO);
        // (idle before the next event, the window after it); an event caught within the
        // window teaches nothing.
        for (idle, window) in [(30, 10), (30, 20), (30, 40), (30, 40), (45, 50), (49, 50)] {
            poll.record_idle(micros(idle));
            assert_eq!(poll.window(64, now), micros(window), "after {idle} µs idle");
        }
    }

    #[test]
    fn long_idle_periods_shrink_the_window_to_nothing() {
        let now = Instant::now();
        let mut poll = BusyPoll::new(micros(50));
        for _ in 0..4 {
            poll.record_idle(micros(45));
        }
        assert_eq!(poll.window(0, now), micros(50));
        poll.record_idle(Duration::from_millis(3));
        assert_eq!(poll.window(0, now), micros(25));
        poll.record_idle(Duration::from_secs(1));
        assert_eq!(poll.window(0, now), Duration::from_nanos(12_500));
        poll.record_idle(Duration::from_secs(1));
        assert_eq!(poll.window(0, now), Duration::ZERO);
        poll.record_idle(Duration::from_secs(1));
        assert_eq!(poll.window(0, now), Duration::ZERO);
    }

    #[test]
    fn bulk_turns_never_poll() {
        let now = Instant::now();
        let mut poll = BusyPoll::new(micros(50));
        poll.record_idle(micros(5));
        assert_eq!(poll.window(LIGHT_TURN_BYTES, now), micros(10));
        assert_eq!(poll.window(LIGHT_TURN_BYTES + 1, now), Duration::ZERO);
    }

    #[test]
    fn a_zero_limit_never_polls() {
        let now = Instant::now();
        let mut poll = BusyPoll::new(Duration::ZERO);
        for idle in [0, 1, 5, 100, 10_000] {
            poll.record_idle(micros(idle));
            assert_eq!(poll.window(0, now), Duration::ZERO);
        }
    }

    #[test]
    fn a_stream_of_light_turns_stops_polling_until_it_slows_down() {
        let mut now = Instant::now();
        let mut poll = BusyPoll::new(micros(50));
        for _ in 0..4 {
            poll.record_idle(micros(45));
        }
        // 8 KiB every 20 µs: 400 MB/s, light turns all.
        let mut windows = Vec::new();
        for _ in 0..200 {
            now += micros(20);
            windows.push(poll.window(8 * 1024, now));
        }
        assert_eq!(windows[0], micros(50), "the first period is not over yet");
        assert!(windows[100..].iter().all(|w| w.is_zero()));
        // Then one small exchange per 100 µs: a full period later it polls again.
        for _ in 0..20 {
            now += micros(100);
            poll.window(100, now);
        }
        assert_eq!(poll.window(100, now), micros(50));
    }
}
