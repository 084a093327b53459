//! --busy-poll: exchanges and transfers are the same with polling off and at its longest, and
//! sparse traffic does not keep the engine polling.

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Many small request/response exchanges over TCP and UDP, the traffic polling is for.
fn exchanges(net: &Net, rounds: usize) {
    let listener = net.listen("198.51.100.1:0");
    let addr = listener.local_addr().unwrap();
    let server = serve_once(listener, move |mut conn| {
        let mut buf = [0u8; 64];
        loop {
            match conn.read(&mut buf).unwrap() {
                0 => break,
                n => conn.write_all(&buf[..n]).unwrap(),
            }
        }
    });
    let mut conn: TcpStream = net.connect(addr).expect("connect through slirp-ns");
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    conn.set_nodelay(true).unwrap();
    for round in 0..rounds {
        let request = [round as u8; 8];
        conn.write_all(&request).unwrap();
        let mut answer = [0u8; 8];
        conn.read_exact(&mut answer).unwrap();
        assert_eq!(answer, request, "TCP round {round}");
    }
    drop(conn);
    server.join().unwrap();

    let (udp_addr, echo) = net.udp_echo("198.51.100.1:0", rounds);
    let client = net.udp_client(udp_addr);
    for round in 0..rounds {
        let request = (round as u32).to_be_bytes();
        client.send(&request).unwrap();
        let mut answer = [0u8; 4];
        assert_eq!(client.recv(&mut answer).unwrap(), 4);
        assert_eq!(answer, request, "UDP round {round}");
    }
    echo.join().unwrap();
}

#[test]
fn exchanges_and_transfers_with_polling_off_and_at_its_longest() {
    for limit in ["0", "10000"] {
        let net = Net::new(&["--busy-poll", limit]);
        exchanges(&net, 500);
        net.transfer_both_ways("198.51.100.1:0", 4 << 20, 4 << 20);
    }
}

#[test]
fn sparse_traffic_costs_no_polling() {
    // The longest window, and traffic that gives it something to learn from first.
    let net = Net::new(&["--busy-poll", "10000"]);
    exchanges(&net, 500);
    // Then an exchange every 20 ms for two seconds: each gap is longer than the limit, so the
    // window must shrink away rather than burn up to 10 ms of every 20.
    let (addr, echo) = net.udp_echo("198.51.100.1:0", 100);
    let client = net.udp_client(addr);
    let before = cpu_ticks(net.slirp.pid());
    for round in 0..100u32 {
        client.send(&round.to_be_bytes()).unwrap();
        let mut answer = [0u8; 4];
        client.recv(&mut answer).unwrap();
        assert_eq!(answer, round.to_be_bytes());
        std::thread::sleep(Duration::from_millis(20));
    }
    let spent = cpu_ticks(net.slirp.pid()) - before;
    echo.join().unwrap();
    // Polling its full window after each exchange would be about 100 ticks; the exchanges
    // themselves take next to none.
    assert!(spent < 40, "{spent} ticks of CPU for 100 sparse exchanges");
}
