//! The DNS relay moves on from a resolver that does not answer, as the guest's own resolver
//! library would: one that refuses (ICMP port unreachable, or a REFUSED answer) at once, one
//! that stays silent when the guest asks again; and it remembers which one answered.

use crate::common;

use common::*;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A resolver in host-sim at `addr` that counts the queries it gets and answers each with
/// `rcode` (no answer at all with `None`).
fn odd_resolver(net: &Net, addr: &str, rcode: Option<u8>) -> Arc<AtomicUsize> {
    let addr = addr.to_string();
    let sock = net.host(move || UdpSocket::bind(addr).unwrap());
    let queries = Arc::new(AtomicUsize::new(0));
    let counted = queries.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            counted.fetch_add(1, Ordering::SeqCst);
            if let Some(rcode) = rcode {
                let mut reply = buf[..n].to_vec();
                reply[2] |= 0x80; // a response
                reply[3] = (reply[3] & 0xf0) | rcode;
                let _ = sock.send_to(&reply, from);
            }
        }
    });
    queries
}

/// Asks the DNS address for example.test with `id` from `client` (a guest socket), waiting
/// `wait` for the answer.
fn ask(client: &UdpSocket, id: u16, wait: Duration) -> Option<Vec<u8>> {
    client.set_read_timeout(Some(wait)).unwrap();
    client
        .send_to(&dns::query(id, "example.test", dns::A), "10.0.2.3:53")
        .unwrap();
    let mut buf = [0u8; 512];
    client.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

fn guest_socket(net: &Net) -> UdpSocket {
    net.in_guest(|| UdpSocket::bind("0.0.0.0:0").unwrap())
}

#[test]
fn refusing_resolvers_are_passed_over_at_once() {
    // 192.0.2.1: nothing listens (ICMP port unreachable); 127.0.0.2 answers REFUSED.
    let net = Net::new(&[
        "--dns-server=192.0.2.1",
        "--dns-server=127.0.0.2",
        "--dns-server=127.0.0.3",
    ]);
    let refusing = odd_resolver(&net, "127.0.0.2:53", Some(5));
    dns::serve(&net.hs.netns_path(), "127.0.0.3:53");
    let client = guest_socket(&net);
    let answer = ask(&client, 0x0101, Duration::from_secs(2))
        .expect("an answer without the guest asking again");
    dns::assert_answer(&answer, 0x0101, &dns::ANSWER_A);
    assert_eq!(refusing.load(Ordering::SeqCst), 1);
    // The one that answered is where the next flow goes.
    let answer = ask(&guest_socket(&net), 0x0202, Duration::from_secs(2)).unwrap();
    dns::assert_answer(&answer, 0x0202, &dns::ANSWER_A);
    assert_eq!(refusing.load(Ordering::SeqCst), 1, "not asked again");
}

#[test]
fn a_silent_resolver_is_left_when_the_guest_asks_again() {
    let net = Net::new(&["--dns-server=198.51.100.1", "--dns-server=127.0.0.3"]);
    let silent = odd_resolver(&net, "198.51.100.1:53", None);
    dns::serve(&net.hs.netns_path(), "127.0.0.3:53");
    let client = guest_socket(&net);
    assert_eq!(ask(&client, 0x0303, Duration::from_millis(500)), None);
    // The guest's resolver times out and asks again: now the second server answers.
    let answer = ask(&client, 0x0303, Duration::from_secs(2)).expect("answer");
    dns::assert_answer(&answer, 0x0303, &dns::ANSWER_A);
    assert_eq!(silent.load(Ordering::SeqCst), 1);
    let answer = ask(&guest_socket(&net), 0x0404, Duration::from_secs(2)).unwrap();
    dns::assert_answer(&answer, 0x0404, &dns::ANSWER_A);
    assert_eq!(silent.load(Ordering::SeqCst), 1, "not asked again");
}

/// A guest resolver that asks again from a new port (a new flow each time): once the first
/// server has left a query unanswered for two seconds, new flows go to the next.
#[test]
fn a_silent_resolver_is_left_for_new_flows_too() {
    let net = Net::new(&["--dns-server=198.51.100.1", "--dns-server=127.0.0.3"]);
    let silent = odd_resolver(&net, "198.51.100.1:53", None);
    dns::serve(&net.hs.netns_path(), "127.0.0.3:53");
    assert_eq!(
        ask(&guest_socket(&net), 0x0606, Duration::from_millis(2500)),
        None
    );
    let answer = ask(&guest_socket(&net), 0x0606, Duration::from_secs(2)).expect("answer");
    dns::assert_answer(&answer, 0x0606, &dns::ANSWER_A);
    assert_eq!(silent.load(Ordering::SeqCst), 1);
}

#[test]
fn with_every_resolver_refusing_the_guest_hears_so() {
    let net = Net::new(&["--dns-server=127.0.0.2", "--dns-server=127.0.0.4"]);
    let first = odd_resolver(&net, "127.0.0.2:53", Some(5));
    let second = odd_resolver(&net, "127.0.0.4:53", Some(5));
    let answer = ask(&guest_socket(&net), 0x0505, Duration::from_secs(2)).expect("answer");
    assert_eq!(
        answer[3] & 0x0f,
        5,
        "REFUSED passed on once every server said it"
    );
    assert_eq!(
        first.load(Ordering::SeqCst) + second.load(Ordering::SeqCst),
        2
    );
}
