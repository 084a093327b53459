//! The connection's one timer (handshake, loss probe, retransmission, persist), its window
//! check and the idle limit of a half-closed connection: which is armed, and what each does
//! when due.

use super::*;

/// What the connection's timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Our SYN or SYN-ACK (or the ARP request before the SYN) again.
    Handshake,
    /// A loss probe: the last segment again (or in recovery, the first hole), so that the
    /// guest's answer shows a loss at the end of a flight, or a resend lost again, sooner
    /// than the retransmission timeout would.
    Probe,
    /// The retransmission timeout.
    Retransmit,
    /// The guest's window is closed: ask it for news.
    Persist,
}

impl TcpConn {
    pub fn deadline(&self) -> Option<Instant> {
        [self.timer, self.window_check, self.idle_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// When a half-closed connection with nothing outstanding is taken for dead.
    pub(super) fn idle_deadline(&self) -> Option<Instant> {
        let idle = self.state == State::Established && self.snd_nxt == self.snd_una;
        (idle && self.half_closed()).then(|| self.last_activity + HALF_CLOSED_IDLE)
    }

    pub(super) fn arm(&mut self, now: Instant, kind: Timer, after: Duration) {
        self.timer = Some(now + after);
        self.timer_kind = kind;
    }

    pub(super) fn half_closed(&self) -> bool {
        self.guest_fin != self.host_eof
    }

    /// Keeps the timers in step with what is outstanding.
    pub(super) fn update_timer(&mut self, now: Instant) {
        if !self.window_is_low() {
            self.window_check = None;
            self.window_check_ms = WINDOW_CHECK_FIRST_MS;
        } else if self.window_check.is_none() {
            self.window_check = Some(now + Duration::from_millis(self.window_check_ms.into()));
        }
        match self.state {
            State::SynSent | State::SynReceived => {
                if self.timer.is_none() {
                    self.arm(now, Timer::Handshake, self.rtt.rto());
                }
            }
            State::Connecting => self.timer = None,
            State::Established if self.outstanding() > 0 => {
                if self.timer.is_none() || self.timer_kind == Timer::Persist {
                    // A probe first, while one may help: the guest's SACKs or duplicate
                    // ACKs then start (or go on with) recovery long before the timeout would.
                    if self.probes < MAX_PROBES && self.rtt.srtt().is_some() {
                        let lone = self.outstanding() <= self.mss;
                        let after = self.rtt.probe_timeout(lone) * (u32::from(self.probes) + 1);
                        self.arm(now, Timer::Probe, after);
                    } else {
                        self.arm(now, Timer::Retransmit, self.rtt.rto());
                    }
                }
            }
            State::Established if self.snd_wnd == 0 && !self.host_eof => {
                if self.timer.is_none() || self.timer_kind != Timer::Persist {
                    self.arm(now, Timer::Persist, self.rtt.rto());
                }
            }
            State::Established => {
                self.timer = None;
                self.unanswered = 0;
                self.rtt.reset_backoff();
            }
        }
    }

    /// The connection's timer, or its window check, is due.
    pub(crate) fn on_timer(
        &mut self,
        core: &mut Core,
        slot: usize,
        now: Instant,
        tx: &mut TxQueue,
    ) -> Verdict {
        if self.window_check.is_some_and(|at| at <= now) {
            self.window_check = None;
            self.check_window(&mut core.cx, tx);
        }
        if self.idle_deadline().is_some_and(|at| at <= now) {
            log::debug!("tcp {:?}: half-closed and idle, resetting", self.key);
            self.reset_guest(&mut core.cx, tx);
            self.reset_host();
            return Verdict::Close;
        }
        if self.timer.is_none_or(|at| at > now) {
            self.update_timer(now);
            return Verdict::Keep;
        }
        self.timer = None;
        if self.timer_kind == Timer::Probe {
            self.probes += 1;
            self.send_probe(core, now, tx);
            self.update_timer(now);
            return Verdict::Keep;
        }
        self.unanswered = self.unanswered.saturating_add(1);
        if self.unanswered > MAX_RETRIES {
            log::debug!("tcp {:?}: guest unresponsive, resetting", self.key);
            self.reset_guest(&mut core.cx, tx);
            let unanswered = self.state == State::SynSent && self.reply_to_host(|r| &r.unanswered);
            if !unanswered {
                self.reset_host();
            }
            return Verdict::Close;
        }
        self.rtt.back_off();
        let kind = self.timer_kind;
        match (self.state, kind) {
            (State::SynSent, _) => {
                self.send_syn(core, now, tx);
                return Verdict::Keep;
            }
            (State::Connecting, _) => {}
            (State::SynReceived, _) => self.send_syn_ack(&mut core.cx, tx),
            (State::Established, Timer::Persist) => {
                // Zero window: probe with an out-of-window ACK, which the guest answers with its
                // current window.
                self.send_control(
                    &mut core.cx,
                    tx,
                    TcpControl::None,
                    self.snd_una.wrapping_sub(1),
                );
                self.arm(now, Timer::Persist, self.rtt.rto());
                return Verdict::Keep;
            }
            (State::Established, _) => {
                self.on_retransmission_timeout(&mut core.cx);
                let verdict = self.send_data(core, slot, now, tx);
                if verdict == Verdict::Close {
                    return verdict;
                }
            }
        }
        if self.state == State::Established {
            // Probes first (see MAX_PROBES), then the timeout, backed off.
            self.update_timer(now);
        } else {
            self.arm(now, kind, self.rtt.rto());
        }
        Verdict::Keep
    }
}
