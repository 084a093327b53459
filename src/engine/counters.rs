//! Counters of what the engine saw, sent and dropped; cheap enough to bump on every frame.

use super::Drop;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub dropped_malformed: u64,
    pub dropped_unsupported: u64,
    pub dropped_not_for_us: u64,
    pub dropped_tx_queue_full: u64,
    pub arp_replies: u64,
    pub icmp_echo_replies: u64,
}

impl Counters {
    pub fn count_drop(&mut self, reason: Drop) {
        let counter = match reason {
            Drop::Malformed => &mut self.dropped_malformed,
            Drop::Unsupported => &mut self.dropped_unsupported,
            Drop::NotForUs => &mut self.dropped_not_for_us,
            Drop::TxQueueFull => &mut self.dropped_tx_queue_full,
        };
        *counter += 1;
    }

    pub fn dropped(&self) -> u64 {
        self.dropped_malformed
            + self.dropped_unsupported
            + self.dropped_not_for_us
            + self.dropped_tx_queue_full
    }
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frames in {} ({} bytes), out {} ({} bytes); dropped: malformed {}, unsupported {}, \
             not for us {}, tx queue full {}; arp replies {}, echo replies {}",
            self.frames_in,
            self.bytes_in,
            self.frames_out,
            self.bytes_out,
            self.dropped_malformed,
            self.dropped_unsupported,
            self.dropped_not_for_us,
            self.dropped_tx_queue_full,
            self.arp_replies,
            self.icmp_echo_replies
        )
    }
}
