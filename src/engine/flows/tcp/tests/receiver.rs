//! Guest to host: what the engine acknowledges, holds and writes.

use super::*;

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
    let answers = s.send(std::slice::from_ref(&first));
    assert_eq!(acks_of(&answers), vec![s.snd_nxt], "{answers:?}");
    // And again, with the next segment in the same batch: one ACK for all of it at least.
    let next = s.seg(b"abc");
    s.snd_nxt = s.snd_nxt.wrapping_add(3);
    let answers = s.send(&[first, next]);
    assert!(acks_of(&answers).contains(&s.snd_nxt), "{answers:?}");
    assert_eq!(s.host_read(), b"0123456789abc", "each byte once");
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
fn segments_beyond_a_hole_are_held_and_written_when_it_fills() {
    let mut s = Script::new(1500);
    s.open(true);
    let base = s.snd_nxt;
    let piece = |i: u32| {
        let mut seg = s.seg(&[b'a' + i as u8; 100]);
        seg.seq = base.wrapping_add(i * 100);
        seg
    };
    let (first, second, third) = (piece(0), piece(1), piece(2));
    let answers = s.send(&[third.clone(), second]);
    assert_eq!(acks_of(&answers), vec![base; 2], "{answers:?}");
    let third_block = (base.wrapping_add(200), base.wrapping_add(300));
    let both = (base.wrapping_add(100), base.wrapping_add(300));
    assert_eq!(answers[0].sack, vec![third_block], "SACK of what is held");
    assert_eq!(answers[1].sack, vec![both], "merged, the latest first");
    assert!(s.host_read().is_empty(), "nothing written past the hole");
    // A duplicate of held data changes nothing but is acknowledged.
    let answers = s.send(&[third]);
    assert_eq!(acks_of(&answers), vec![base]);
    // The hole fills: everything goes, in order, and one ACK covers it all.
    s.snd_nxt = base.wrapping_add(300);
    let answers = s.send(&[first]);
    assert_eq!(acks_of(&answers), vec![s.snd_nxt], "{answers:?}");
    assert!(answers[0].sack.is_empty());
    let mut expected = vec![b'a'; 100];
    expected.extend([b'b'; 100]);
    expected.extend([b'c'; 100]);
    assert_eq!(s.host_read(), expected);
    let counters = s.side.engine.counters();
    assert_eq!(counters.tcp_segments_held, 2);
    assert_eq!(s.side.engine.tcp_held_bytes(), 0, "all given back");
}

#[test]
fn without_sack_the_guest_still_gets_its_hole_filled_and_no_blocks() {
    let mut s = Script::new(1500);
    let syn_ack = s.open(false);
    assert!(
        !syn_ack.sack_permitted,
        "SACK only when the guest offers it"
    );
    let base = s.snd_nxt;
    let late = Seg {
        seq: base.wrapping_add(5),
        ..s.seg(b"fghij")
    };
    let answers = s.send(&[late]);
    assert_eq!(acks_of(&answers), vec![base]);
    assert!(answers[0].sack.is_empty());
    guest_sends(&mut s, b"abcde");
    s.snd_nxt = base.wrapping_add(10);
    assert_eq!(s.host_read(), b"abcdefghij");
}

#[test]
fn every_second_segment_is_acknowledged() {
    let mut s = Script::new(1500);
    s.open(true);
    let base = s.snd_nxt;
    let segs: Vec<Seg> = (0..10)
        .map(|i| {
            let mut seg = s.seg(&[i as u8; 1460]);
            seg.seq = base.wrapping_add(i * 1460);
            seg
        })
        .collect();
    let answers = s.send(&segs);
    let expected: Vec<u32> = (1..=5).map(|i| base.wrapping_add(i * 2920)).collect();
    assert_eq!(acks_of(&answers), expected, "one ACK per two segments");
    // An odd one out is acknowledged at the end of its batch.
    s.snd_nxt = base.wrapping_add(10 * 1460);
    let answers = guest_sends(&mut s, &[1; 1460]);
    assert_eq!(acks_of(&answers), vec![s.snd_nxt]);
    assert_eq!(s.host_read().len(), 11 * 1460);
}

#[test]
fn a_full_host_socket_closes_the_window_and_a_probe_hears_it() {
    let mut s = Script::new(1500);
    s.open(true);
    // The program does not read: the guest fills the window we offer.
    let mut window = u32::MAX;
    let mut sent = 0u32;
    for _ in 0..10_000 {
        let seg = s.seg(&[7; 1000]);
        let answers = s.send(&[seg]);
        s.snd_nxt = s.snd_nxt.wrapping_add(1000);
        sent += 1000;
        if let Some(last) = answers.last() {
            window = u32::from(last.window) << 7;
        }
        if window < 1000 {
            break;
        }
    }
    assert!(window < 1000, "the window closed after {sent} bytes");
    // A zero-window probe (one byte beyond the window) is answered at once.
    let probe = s.seg(&[9]);
    let answers = s.send(&[probe]);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(u32::from(answers[0].window) << 7 < 1000);
    let acked = answers[0].ack.unwrap();
    // The program reads: the guest hears the window open.
    let mut got = s.host_read().len();
    let news = until_sent(&mut s, ms(1000));
    assert!(
        news.iter().any(|a| u32::from(a.window) << 7 > 64 << 10),
        "{news:?}"
    );
    // Nothing was lost or doubled: what was acknowledged is what the program gets.
    got += s.host_read().len();
    assert_eq!(got as u32, acked.wrapping_sub(1001));
}

#[test]
fn a_fin_beyond_a_hole_waits_for_the_data_before_it() {
    let mut s = Script::new(1500);
    s.open(true);
    let base = s.snd_nxt;
    let tail = Seg {
        seq: base.wrapping_add(3),
        fin: true,
        ..s.seg(b"def")
    };
    s.send(&[tail]);
    assert!(s.host_read().is_empty());
    let answers = guest_sends(&mut s, b"abc");
    assert_eq!(
        acks_of(&answers).last(),
        Some(&base.wrapping_add(7)),
        "data and FIN"
    );
    let mut got = [0u8; 16];
    let n = std::io::Read::read(&mut s.host(), &mut got).unwrap();
    assert_eq!(&got[..n], b"abcdef");
    assert_eq!(
        std::io::Read::read(&mut s.host(), &mut got).unwrap(),
        0,
        "then its end"
    );
}

#[test]
fn a_connection_idle_for_long_still_answers_keepalives_and_carries_data() {
    let mut s = Script::new(1500);
    s.open(true);
    guest_sends(&mut s, b"x");
    for _ in 0..3 {
        let answers = s.advance(Duration::from_secs(75));
        assert!(
            answers.is_empty(),
            "an idle connection sends nothing: {answers:?}"
        );
        let probe = Seg {
            seq: s.snd_nxt.wrapping_sub(1),
            ..s.seg(&[])
        };
        assert_eq!(acks_of(&s.send(&[probe])), vec![s.snd_nxt]);
    }
    guest_sends(&mut s, b"yz");
    assert_eq!(s.host_read(), b"xyz");
    s.host_write(b"back");
    let answers = s.advance(ms(1));
    assert_eq!(answers[0].payload, b"back");
}
