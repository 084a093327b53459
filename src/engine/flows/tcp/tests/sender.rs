//! Host to guest: what the engine sends, when it sends it again, and when it gives up.

use super::*;

/// The guest's data segments among `answers`.
fn data(answers: &[Seg]) -> Vec<&Seg> {
    answers.iter().filter(|a| !a.payload.is_empty()).collect()
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
    s.host_write(&[5u8; 20 * 1460]);
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
    let start = s.now;
    let resent = until_sent(&mut s, ms(5_000));
    assert!(
        s.now < start + ms(1_100),
        "resent after {:?}",
        s.now - start
    );
    assert!(resent.iter().any(|a| a.seq == first), "{resent:?}");
}

#[test]
fn only_the_holes_the_guest_sacks_are_sent_again() {
    let mut s = Script::new(1500);
    s.open(true);
    s.host_write(&[1u8; 10 * 1460]);
    let sent = s.advance(ms(1));
    let segs = data(&sent);
    assert_eq!(segs.len(), 10, "the initial window: ten segments");
    let start = s.rcv_nxt;
    let at = |i: u32| start.wrapping_add(i * 1460);
    // Segment 1 (of 0..10) was lost: the guest acknowledges 0 and SACKs 2..10, growing.
    let dups: Vec<Seg> = (3..=5)
        .map(|i| Seg {
            sack: vec![(at(2), at(i))],
            ..s.ack(at(1), 65535)
        })
        .collect();
    let answers = s.send(&dups);
    let resent = data(&answers);
    assert_eq!(resent.len(), 1, "{answers:?}");
    assert_eq!(resent[0].seq, at(1));
    // The rest of the flight, SACKed, is never sent again; the next ACK covers everything.
    let answers = s.send(&[Seg {
        sack: vec![(at(2), at(10))],
        ..s.ack(at(1), 65535)
    }]);
    assert!(data(&answers).iter().all(|d| d.seq != at(2)), "{answers:?}");
    s.send(&[s.ack(at(10), 65535)]);
    let counters = s.side.engine.counters();
    assert_eq!(counters.tcp_bytes_retransmitted, 1460);
    assert_eq!(counters.tcp_loss_recoveries, 1);
}

#[test]
fn a_zero_window_is_probed_with_backoff_and_the_guest_is_kept_while_it_answers() {
    let mut s = Script::new(1500);
    s.open(true);
    let una = s.rcv_nxt;
    s.send(&[s.ack(una, 0)]);
    s.host_write(b"waiting");
    assert!(
        data(&s.advance(ms(1))).is_empty(),
        "nothing beyond a closed window"
    );
    let mut times = Vec::new();
    for _ in 0..20 {
        let start = s.now;
        let probe = until_sent(&mut s, Duration::from_secs(60));
        times.push(s.now - start);
        assert_eq!(probe.len(), 1);
        assert_eq!(probe[0].seq, una.wrapping_sub(1), "an out-of-window probe");
        // The guest answers, still closed.
        s.send(&[s.ack(una, 0)]);
    }
    assert!(times[1] >= times[0] * 2 - ms(1), "backoff: {times:?}");
    assert_eq!(s.side.engine.flow_count(), 1, "kept while it answers");
    let answers = s.send(&[s.ack(una, 100)]);
    assert_eq!(data(&answers)[0].payload, b"waiting");
}

#[test]
fn the_fin_goes_again_until_it_is_acknowledged() {
    let mut s = Script::new(1500);
    s.open(true);
    s.host_write(b"bye");
    s.host().shutdown(std::net::Shutdown::Write).unwrap();
    let sent = s.advance(ms(1));
    let fin = sent.iter().find(|a| a.fin).expect("a FIN").clone();
    let data_end = s.rcv_nxt.wrapping_add(3);
    assert_eq!(fin.seq, data_end);
    // The guest has the data, not the FIN.
    s.send(&[s.ack(data_end, 65535)]);
    let again = until_sent(&mut s, Duration::from_secs(5));
    assert!(
        again.iter().any(|a| a.fin && a.seq == data_end),
        "{again:?}"
    );
    assert!(data(&again).is_empty(), "only the FIN: {again:?}");
    s.send(&[s.ack(data_end.wrapping_add(1), 65535)]);
    assert!(s
        .next_timer(Duration::from_secs(5))
        .is_none_or(|(_, sent)| sent.is_empty()));
}

#[test]
fn unanswered_data_backs_off_then_both_sides_are_reset() {
    let mut s = Script::new(1500);
    s.open(true);
    s.host_write(&[3u8; 1000]);
    s.advance(ms(1));
    let mut gaps = Vec::new();
    let mut last = s.now;
    let reset = loop {
        let sent = until_sent(&mut s, Duration::from_secs(120));
        gaps.push(s.now - last);
        last = s.now;
        if let Some(rst) = sent.iter().find(|a| a.rst) {
            break rst.clone();
        }
        assert_eq!(data(&sent).len(), 1, "{sent:?}");
    };
    assert_eq!(reset.seq, s.rcv_nxt.wrapping_add(1000));
    assert_eq!(
        gaps.len(),
        13,
        "twelve retransmissions, then the reset: {gaps:?}"
    );
    for pair in gaps[..8].windows(2) {
        assert!(pair[1] >= pair[0] * 2 - ms(1), "backoff: {gaps:?}");
    }
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_secs(30)),
        "{gaps:?}"
    );
    assert_eq!(s.side.engine.flow_count(), 0);
    let mut buf = [0u8; 8];
    let ended = std::io::Read::read(&mut s.host(), &mut buf);
    assert!(
        matches!(ended, Ok(0) | Err(_)),
        "the program's end is closed: {ended:?}"
    );
}

#[test]
fn a_lost_tail_is_probed_long_before_the_timeout() {
    let mut s = Script::new(1500);
    s.open(true);
    // One exchange measures the round trip (a millisecond).
    s.host_write(b"ping");
    s.advance(ms(1));
    s.advance(ms(1));
    s.send(&[s.ack(s.rcv_nxt.wrapping_add(4), 65535)]);
    s.rcv_nxt = s.rcv_nxt.wrapping_add(4);
    // Three segments; the guest gets the first only, and says so.
    s.host_write(&[4u8; 3 * 1460]);
    s.advance(ms(1));
    s.send(&[s.ack(s.rcv_nxt.wrapping_add(1460), 65535)]);
    let start = s.now;
    let probe = until_sent(&mut s, Duration::from_secs(1));
    assert!(s.now - start <= ms(20), "probe after {:?}", s.now - start);
    let last = s.rcv_nxt.wrapping_add(2 * 1460);
    assert_eq!(data(&probe)[0].seq, last, "the last segment");
    assert_eq!(s.side.engine.counters().tcp_tail_probes, 1);
    // Its SACK shows the hole before it, which goes at once.
    let sack = Seg {
        sack: vec![(last, last.wrapping_add(1460))],
        ..s.ack(s.rcv_nxt.wrapping_add(1460), 65535)
    };
    let answers = s.send(&[sack]);
    assert_eq!(
        data(&answers)[0].seq,
        s.rcv_nxt.wrapping_add(1460),
        "{answers:?}"
    );
}

#[test]
fn a_lone_segment_is_probed_after_the_guest_s_delayed_ack() {
    let mut s = Script::new(1500);
    s.open(true);
    s.host_write(b"ping");
    s.advance(ms(1));
    s.send(&[s.ack(s.rcv_nxt.wrapping_add(4), 65535)]);
    s.rcv_nxt = s.rcv_nxt.wrapping_add(4);
    s.host_write(b"pong");
    s.advance(ms(1));
    let start = s.now;
    until_sent(&mut s, Duration::from_secs(1));
    let waited = s.now - start;
    assert!(
        waited >= ms(40) && waited < ms(100),
        "probe after {waited:?}"
    );
}

#[test]
fn resets_end_the_connection_in_every_state() {
    // Before the handshake completes (SYN-ACK sent).
    let mut s = Script::new(1500);
    let syn = Seg {
        syn: true,
        ack: None,
        window: 65535,
        ..s.seg(&[])
    };
    let syn_ack = s.send(&[syn]);
    assert!(syn_ack.iter().any(|a| a.syn), "{syn_ack:?}");
    s.send(&[Seg {
        rst: true,
        seq: s.snd_nxt.wrapping_add(1),
        ..Seg::default()
    }]);
    assert_eq!(s.side.engine.flow_count(), 0, "after SYN-ACK");
    // Established, with data each way in flight.
    let mut s = Script::new(1500);
    s.open(true);
    s.host_write(b"data");
    s.advance(ms(1));
    s.send(&[Seg {
        rst: true,
        ..s.seg(&[])
    }]);
    assert_eq!(s.side.engine.flow_count(), 0, "established");
    // Half closed by the guest.
    let mut s = Script::new(1500);
    s.open(true);
    s.send(&[Seg {
        fin: true,
        ..s.seg(&[])
    }]);
    s.snd_nxt = s.snd_nxt.wrapping_add(1);
    s.send(&[Seg {
        rst: true,
        ..s.seg(&[])
    }]);
    assert_eq!(s.side.engine.flow_count(), 0, "half closed");
    // A segment for no connection gets a reset.
    let mut s = Script::new(1500);
    let stray = s.seg(b"stray");
    let answers = s.send(&[stray]);
    assert!(answers.iter().any(|a| a.rst), "{answers:?}");
}
