//! Arbitrary frames from the guest into the engine, through the library's public API (the
//! caller's own mio loop), with the host sockets they open polled in between. Run it inside an empty network namespace (`unshare -n`): whatever the frames ask
//! for, nothing can then leave the machine.
//!
//! Input: a sequence of frames, each a 2-byte big-endian field and then the frame: the field's
//! low 14 bits are the frame's length, its top two bits the TAP's offload metadata (checksum
//! left partial; a UDP super-datagram to split).

#![no_main]

use libfuzzer_sys::fuzz_target;
use slirp_ns::{Engine, EngineConfig, Ipv4Network, Ipv6Prefix, RxOffload, TxQueue};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut poll = mio::Poll::new().expect("epoll");
    let cfg = EngineConfig::new(Ipv4Network::default())
        .with_max_flows(64)
        .with_ipv6(Ipv6Prefix::default())
        .with_dns_servers(vec!["127.0.0.1".parse().unwrap()]);
    let mut engine = Engine::new(cfg, poll.registry().try_clone().expect("registry"));
    // Virtual servers on the gateway, for frames that happen to reach them.
    let _listener = engine.listen("10.0.2.2:80".parse().unwrap()).expect("listen");
    let _endpoint = engine.bind_udp("10.0.2.2:53".parse().unwrap()).expect("bind");
    let mut tx = TxQueue::new(64);
    let mut events = mio::Events::with_capacity(64);
    let mut now = Instant::now();
    let mut rest = data;
    while rest.len() >= 2 {
        let field = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(field & 0x3fff).min(rest.len() - 2);
        let (frame, tail) = rest[2..].split_at(len);
        rest = tail;
        let offload = RxOffload {
            checksum_trusted: field & 0x4000 != 0,
            udp_segment: (field & 0x8000 != 0).then_some(len as u16 % 1500 + 1),
        };
        engine.handle_frames(now, [(frame, offload)], &mut tx);
        tx.clear();
        let _ = poll.poll(&mut events, Some(Duration::ZERO));
        for event in events.iter() {
            engine.handle_event(now, event, &mut tx);
            tx.clear();
        }
        while engine.end_of_batch(now, &mut tx) {
            tx.clear();
        }
        tx.clear();
        // Time moves on, so retransmission and idle timers run too.
        now += Duration::from_millis(250);
        engine.handle_timers(now, &mut tx);
        tx.clear();
    }
});
