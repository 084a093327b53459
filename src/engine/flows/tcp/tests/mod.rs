//! TCP on the virtual clock: single cases against a scripted guest ([`receiver`]: guest to
//! host, [`sender`]: host to guest), then whole transfers between two engines through faulty
//! wires ([`lossy`]).

mod lossy;
mod receiver;
mod sender;

use crate::engine::sim::guest::{Script, Seg};
use std::time::Duration;

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Sends `data` from the guest in order and returns the engine's answers.
pub(super) fn guest_sends(s: &mut Script, data: &[u8]) -> Vec<Seg> {
    let seg = s.seg(data);
    s.snd_nxt = s.snd_nxt.wrapping_add(data.len() as u32);
    s.send(&[seg])
}

pub(super) fn acks_of(answers: &[Seg]) -> Vec<u32> {
    answers.iter().filter_map(|a| a.ack).collect()
}

/// Runs the engine's timers until it sends something (at most `limit` on); returns that.
pub(super) fn until_sent(s: &mut Script, limit: Duration) -> Vec<Seg> {
    let end = s.now + limit;
    while let Some((_, sent)) = s.next_timer(end - s.now) {
        if !sent.is_empty() {
            return sent;
        }
    }
    panic!("nothing sent by {end:?}");
}
