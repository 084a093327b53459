//! TCP on the virtual clock: single cases against a scripted guest, then whole transfers
//! between two engines through faulty wires.

use crate::engine::sim::guest::{Script, Seg};
use crate::engine::sim::wire::Faults;
use crate::engine::sim::{Pair, Transfer};
use std::io::Write;
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Sends `data` from the guest in order and returns the engine's answers.
fn guest_sends(s: &mut Script, data: &[u8]) -> Vec<Seg> {
    let seg = s.seg(data);
    s.snd_nxt = s.snd_nxt.wrapping_add(data.len() as u32);
    s.send(&[seg])
}

fn acks_of(answers: &[Seg]) -> Vec<u32> {
    answers.iter().filter_map(|a| a.ack).collect()
}

#[test]
fn keepalive_probes_are_answered() {
    let mut s = Script::new(1500);
    s.open(false);
    guest_sends(&mut s, b"hello");
    for payload in [&[][..], &[0u8][..]] {
        // A keepalive probe: one below the next expected, empty or with one old byte.
        let probe = Seg {
            seq: s.snd_nxt.wrapping_sub(1),
            ..s.seg(payload)
        };
        let answers = s.send(&[probe]);
        assert!(
            answers
                .iter()
                .any(|a| a.is_pure_ack() && a.ack == Some(s.snd_nxt)),
            "probe with {} bytes: answers {answers:?}",
            payload.len()
        );
    }
}

#[test]
fn duplicate_and_old_segments_are_acknowledged() {
    let mut s = Script::new(1500);
    s.open(false);
    let first = s.seg(b"0123456789");
    guest_sends(&mut s, b"0123456789");
    // The guest did not hear our ACK and sends the same segment again: it must hear one now.
    let answers = s.send(&[first.clone()]);
    assert_eq!(acks_of(&answers), vec![s.snd_nxt], "{answers:?}");
    // And again, with the next segment in the same batch: one ACK for all of it at least.
    let next = s.seg(b"abc");
    s.snd_nxt = s.snd_nxt.wrapping_add(3);
    let answers = s.send(&[first, next]);
    assert!(acks_of(&answers).contains(&s.snd_nxt), "{answers:?}");
    let mut got = vec![0u8; 64];
    let n = std::io::Read::read(&mut s.host.as_ref().unwrap(), &mut got).unwrap();
    assert_eq!(&got[..n], b"0123456789abc", "each byte once");
}

#[test]
fn out_of_order_segments_get_an_immediate_duplicate_ack_each() {
    let mut s = Script::new(1500);
    s.open(false);
    let base = s.snd_nxt;
    // Segment 1 is lost; 2, 3 and 4 arrive: three duplicate ACKs, so the guest retransmits.
    let segs: Vec<Seg> = (1..4)
        .map(|i| Seg {
            seq: base.wrapping_add(i * 100),
            ..s.seg(&[7u8; 100])
        })
        .collect();
    let answers = s.send(&segs);
    assert_eq!(acks_of(&answers), vec![base; 3], "{answers:?}");
}

#[test]
fn the_retransmission_timer_runs_after_a_fast_retransmit_on_a_half_closed_flow() {
    let mut s = Script::new(1500);
    s.open(false);
    // The guest is done sending (half-closed), the host sends it 20 segments.
    let fin = Seg {
        fin: true,
        ..s.seg(&[])
    };
    s.snd_nxt = s.snd_nxt.wrapping_add(1);
    s.send(&[fin]);
    s.host
        .as_ref()
        .unwrap()
        .write_all(&[5u8; 20 * 1460])
        .unwrap();
    let data = s.advance(ms(1));
    let first = data
        .iter()
        .find(|d| !d.payload.is_empty())
        .expect("data")
        .seq;
    assert_eq!(first, s.rcv_nxt);
    // The first segment was lost: three duplicate ACKs.
    let dup = s.seg(&[]);
    let answers = s.send(&[dup.clone(), dup.clone(), dup]);
    assert!(
        answers
            .iter()
            .any(|a| a.seq == first && !a.payload.is_empty()),
        "fast retransmit: {answers:?}"
    );
    // That retransmission is lost too: the timer must bring it again within a second, not
    // after the two minutes a half-closed idle flow waits.
    let (at, resent) = s.next_timer(ms(5_000)).expect("a timer within 5 s");
    assert!(at < s.now + ms(1_100), "timer at {at:?}");
    assert!(resent.iter().any(|a| a.seq == first), "{resent:?}");
}

fn lossy(loss_ppm: u32) -> Faults {
    Faults {
        loss_ppm,
        queue_frames: 128,
        bytes_per_second: 100 << 20,
        delay: ms(1),
        ..Faults::clean()
    }
}

#[test]
fn a_megabyte_each_way_through_three_percent_loss() {
    let mut pair = Pair::new(1500, lossy(30_000), lossy(30_000), 1);
    let outcome = pair.transfer(&Transfer::new(1 << 20, 1 << 20));
    eprintln!(
        "{outcome:?} steps {} turns {}\n{:?}\n{:?}\n{:?} {:?}",
        pair.steps,
        pair.turns,
        pair.a.engine.counters(),
        pair.b.engine.counters(),
        pair.ab.stats,
        pair.ba.stats
    );
    outcome.unwrap();
}
