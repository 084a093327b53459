//! A DNS server of the tests' own, answering every A query with 192.0.2.99 and every AAAA
//! query with 2001:db8::99, over UDP and TCP.

use super::in_netns;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};

pub const A: u16 = 1;
pub const AAAA: u16 = 28;
pub const ANSWER_A: [u8; 4] = [192, 0, 2, 99];
pub const ANSWER_AAAA: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99,
];

/// A query for `name` of type `qtype` (class IN).
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// The answer to `query`: one record of the type asked for.
fn answer(query: &[u8]) -> Vec<u8> {
    let qtype = u16::from_be_bytes([query[query.len() - 4], query[query.len() - 3]]);
    let rdata: &[u8] = if qtype == AAAA {
        &ANSWER_AAAA
    } else {
        &ANSWER_A
    };
    let mut a = query.to_vec();
    a[2] = 0x81;
    a[3] = 0x80;
    a[7] = 1; // one answer
    a.extend_from_slice(&[0xc0, 12]);
    a.extend_from_slice(&qtype.to_be_bytes());
    a.extend_from_slice(&[0, 1, 0, 0, 0, 60, 0, rdata.len() as u8]);
    a.extend_from_slice(rdata);
    a
}

/// Serves DNS at `addr` (UDP and TCP) inside the namespace at `netns_path`.
pub fn serve(netns_path: &str, addr: &str) {
    let addr = addr.to_string();
    let (udp, tcp) = in_netns(netns_path, move || {
        (
            UdpSocket::bind(&addr).expect("bind the DNS server (UDP)"),
            TcpListener::bind(&addr).expect("bind the DNS server (TCP)"),
        )
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            if n >= 17 {
                let _ = udp.send_to(&answer(&buf[..n]), from);
            }
        }
    });
    std::thread::spawn(move || {
        for conn in tcp.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut len = [0u8; 2];
            if conn.read_exact(&mut len).is_err() {
                continue;
            }
            let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
            if conn.read_exact(&mut query).is_err() || query.len() < 17 {
                continue;
            }
            let answer = answer(&query);
            let _ = conn.write_all(&(answer.len() as u16).to_be_bytes());
            let _ = conn.write_all(&answer);
        }
    });
}

/// Checks `answer` answers query `id` with `rdata`.
pub fn assert_answer(answer: &[u8], id: u16, rdata: &[u8]) {
    assert_eq!(&answer[..2], &id.to_be_bytes(), "answer to our query");
    assert_eq!(&answer[answer.len() - rdata.len()..], rdata, "the record");
}

/// Asks the DNS address `server` from the guest of `net`, over UDP and then over TCP, and
/// checks both answers.
pub fn check_both_ways(net: &super::Net, server: &str, qtype: u16, rdata: &[u8]) {
    let server: std::net::SocketAddr = server.parse().expect("a socket address");
    let any = if server.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let client = net.in_guest(move || UdpSocket::bind(any).unwrap());
    client.set_read_timeout(Some(super::TIMEOUT)).unwrap();
    let mut tcp = net.connect(server).expect("TCP to the DNS address");
    tcp.set_read_timeout(Some(super::TIMEOUT)).unwrap();
    client
        .send_to(&query(0x1234, "example.test", qtype), server)
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, from) = client.recv_from(&mut buf).expect("UDP answer");
    assert_eq!(from, server, "the answer comes from the DNS address");
    assert_answer(&buf[..n], 0x1234, rdata);

    let q = query(0x4321, "example.test", qtype);
    tcp.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    tcp.write_all(&q).unwrap();
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).unwrap();
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    tcp.read_exact(&mut answer).unwrap();
    assert_answer(&answer, 0x4321, rdata);
}
