//! congestion - how long to wait for the guest's acknowledgement, and how much may be in flight
//! toward it: the RTT estimate and retransmission timeout of RFC 6298 (with Karn's rule and
//! exponential backoff), and NewReno congestion control (RFC 5681, RFC 6582) counted in bytes.
//!
//! Pure arithmetic: the connection feeds it samples and events, time is an argument.

use std::time::Duration;

/// The retransmission timeout before any RTT sample, and its floor (Linux's 200 ms, rather
/// than RFC 6298's one second: these links are short, and the floor keeps delayed ACKs safe).
pub const RTO_INITIAL_MS: u32 = 200;
pub const RTO_MIN_MS: u32 = 200;
pub const RTO_MAX_MS: u32 = 30_000;
/// A tail loss probe waits twice the smoothed RTT, but at least this long; for a flight of
/// one segment, which the guest may hold its ACK for, this much longer (Linux's least
/// delayed-ACK time; RFC 8985's WCDelAckT).
const PROBE_MIN_US: u32 = 10_000;
const DELAYED_ACK_US: u32 = 40_000;
/// Segments in the initial window (RFC 6928).
const INITIAL_WINDOW_SEGMENTS: u32 = 10;
/// The congestion window never grows beyond this.
const MAX_CWND: u32 = 1 << 30;

/// The round-trip time estimate and the retransmission timeout it gives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rtt {
    /// Smoothed RTT and its mean deviation, microseconds; 0 before the first sample.
    srtt_us: u32,
    rttvar_us: u32,
    /// How often the timer fired since the last acknowledgement of new data.
    backoff: u8,
}

impl Rtt {
    /// Takes one measurement (RFC 6298 2.2 and 2.3).
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_micros().clamp(1, u128::from(u32::MAX / 8)) as u32;
        if self.srtt_us == 0 {
            self.srtt_us = r;
            self.rttvar_us = r / 2;
        } else {
            let delta = self.srtt_us.abs_diff(r);
            // rttvar = 3/4 rttvar + 1/4 |srtt - r|; srtt = 7/8 srtt + 1/8 r
            self.rttvar_us = (3 * (self.rttvar_us / 4)).saturating_add(delta / 4);
            self.srtt_us = (7 * (self.srtt_us / 8)).saturating_add(r / 8);
        }
    }

    /// The smoothed RTT, if measured.
    pub fn srtt(&self) -> Option<Duration> {
        (self.srtt_us > 0).then(|| Duration::from_micros(self.srtt_us.into()))
    }

    /// The timeout without backoff: srtt + 4 rttvar, within bounds.
    fn base_ms(&self) -> u32 {
        if self.srtt_us == 0 {
            return RTO_INITIAL_MS;
        }
        let us = self
            .srtt_us
            .saturating_add(self.rttvar_us.saturating_mul(4));
        (us / 1000).clamp(RTO_MIN_MS, RTO_MAX_MS)
    }

    /// The retransmission timeout now, backed off.
    pub fn rto(&self) -> Duration {
        let ms = (u64::from(self.base_ms()) << self.backoff.min(16)).min(RTO_MAX_MS.into());
        Duration::from_millis(ms)
    }

    /// When a tail loss probe goes out: twice the smoothed RTT, at least 10 ms (plus the
    /// guest's delayed ACK for a lone segment), never later than the retransmission timeout.
    pub fn probe_timeout(&self, lone_segment: bool) -> Duration {
        let mut us = self.srtt_us.saturating_mul(2).max(PROBE_MIN_US);
        if lone_segment {
            us = us.saturating_add(DELAYED_ACK_US);
        }
        Duration::from_micros(us.into()).min(self.rto())
    }

    /// The timer fired: double the timeout (RFC 6298 5.5). Returns how often it has fired.
    pub fn back_off(&mut self) -> u8 {
        self.backoff = self.backoff.saturating_add(1);
        self.backoff
    }

    /// New data was acknowledged: the timeout is the estimate's again.
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }
}

/// The congestion window: slow start, congestion avoidance, and the responses to loss.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub cwnd: u32,
    pub ssthresh: u32,
    /// Bytes acknowledged toward the next segment of congestion-avoidance growth.
    avoidance_acked: u32,
}

impl Window {
    /// The initial window for segments of `mss` bytes.
    pub fn new(mss: u32) -> Self {
        Window {
            cwnd: INITIAL_WINDOW_SEGMENTS.saturating_mul(mss),
            ssthresh: u32::MAX,
            avoidance_acked: 0,
        }
    }

    /// `acked` new bytes were acknowledged outside loss recovery. The window grows only while
    /// it was what limited the sender (RFC 7661): an idle or window-limited sender proves
    /// nothing about the path. In slow start by what was acknowledged (doubling each round
    /// trip; stretch ACKs count whole), then by one segment per window.
    pub fn on_ack(&mut self, acked: u32, mss: u32, cwnd_limited: bool) {
        if !cwnd_limited {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = self.cwnd.saturating_add(acked).min(self.ssthresh.max(mss));
            return;
        }
        self.avoidance_acked = self.avoidance_acked.saturating_add(acked);
        while self.avoidance_acked >= self.cwnd {
            self.avoidance_acked -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(mss);
        }
        self.cwnd = self.cwnd.min(MAX_CWND);
    }

    /// Loss found by duplicate or selective acknowledgements: half the window.
    pub fn on_loss(&mut self, mss: u32) {
        self.ssthresh = (self.cwnd / 2).max(2 * mss);
        self.cwnd = self.ssthresh;
        self.avoidance_acked = 0;
    }

    /// The retransmission timer fired: half the window as threshold, one segment to send. A
    /// timeout repeated before any recovery keeps the threshold it set.
    pub fn on_timeout(&mut self, mss: u32, first: bool) {
        if first {
            self.ssthresh = (self.cwnd / 2).max(2 * mss);
        }
        self.cwnd = mss;
        self.avoidance_acked = 0;
    }

    /// Recovery is over: go on from the threshold.
    pub fn end_recovery(&mut self) {
        self.cwnd = self.ssthresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_timeout_follows_rfc_6298() {
        let mut rtt = Rtt::default();
        assert_eq!(rtt.rto(), ms(200), "before a sample");
        rtt.sample(ms(100));
        // srtt 100, rttvar 50: 100 + 4 * 50 = 300 ms.
        assert_eq!(rtt.rto(), ms(300));
        rtt.sample(ms(100));
        // rttvar 3/4 * 50 + 0 = 37.5; srtt 100: 250 ms.
        assert_eq!(rtt.rto(), ms(250));
        assert_eq!(rtt.srtt(), Some(ms(100)));
        // Backoff doubles, to the ceiling, and a new acknowledgement ends it.
        assert_eq!(rtt.back_off(), 1);
        assert_eq!(rtt.rto(), ms(500));
        for _ in 0..20 {
            rtt.back_off();
        }
        assert_eq!(rtt.rto(), ms(RTO_MAX_MS.into()));
        rtt.reset_backoff();
        assert_eq!(rtt.rto(), ms(250));
    }

    #[test]
    fn short_links_keep_the_floor_and_probe_sooner() {
        let mut rtt = Rtt::default();
        for _ in 0..10 {
            rtt.sample(Duration::from_micros(80));
        }
        assert_eq!(rtt.rto(), ms(200), "the floor");
        assert_eq!(rtt.probe_timeout(false), ms(10), "the probe's floor");
        assert_eq!(
            rtt.probe_timeout(true),
            ms(50),
            "a lone segment may wait for its ACK"
        );
        rtt.sample(ms(40));
        assert!(rtt.probe_timeout(false) > ms(10));
        assert!(rtt.probe_timeout(true) <= rtt.rto());
    }

    #[test]
    fn the_window_opens_in_slow_start_and_halves_on_loss() {
        let mss = 1000;
        let mut w = Window::new(mss);
        assert_eq!(w.cwnd, 10_000);
        w.on_ack(10_000, mss, true);
        assert_eq!(w.cwnd, 20_000, "slow start: doubles per window");
        w.on_ack(10_000, mss, false);
        assert_eq!(w.cwnd, 20_000, "not limited by the window: no growth");
        w.on_loss(mss);
        assert_eq!((w.cwnd, w.ssthresh), (10_000, 10_000));
        // Congestion avoidance: one segment per window acknowledged.
        w.on_ack(5_000, mss, true);
        assert_eq!(w.cwnd, 10_000);
        w.on_ack(5_000, mss, true);
        assert_eq!(w.cwnd, 11_000);
        w.on_timeout(mss, true);
        assert_eq!((w.cwnd, w.ssthresh), (1_000, 5_500));
        w.on_timeout(mss, false);
        assert_eq!(w.ssthresh, 5_500, "a repeated timeout keeps the threshold");
        w.on_ack(2_000, mss, true);
        assert_eq!(w.cwnd, 3_000);
        w.on_loss(mss);
        assert_eq!(w.ssthresh, 2_000, "never below two segments");
    }
}
