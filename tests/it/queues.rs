//! A multi-queue TAP (--queues): flows spread over the queues' engines, each on its own thread,
//! and every transfer still arrives intact.

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};

#[test]
fn parallel_transfers_over_two_queues_arrive_intact() {
    // Locked down too: the seccomp filter must not meet a queue thread still starting up.
    let net = Net::new(&[
        "--queues",
        "2",
        "--enable-ipv6",
        "--enable-seccomp",
        "--enable-sandbox",
    ]);
    const CONNECTIONS: usize = 8;
    let listener = net.listen("198.51.100.1:0");
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || serve_each(listener, CONNECTIONS));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let mut conn = net.connect(addr).expect("connect");
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(TIMEOUT)).unwrap();
                let upload = pattern(2 << 20, 100 + i as u64);
                conn.write_all(&upload).unwrap();
                conn.shutdown(Shutdown::Write).unwrap();
                let mut echoed = Vec::new();
                conn.read_to_end(&mut echoed).unwrap();
                assert!(
                    echoed == upload,
                    "connection {i}: {} bytes back",
                    echoed.len()
                );
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    server.join().unwrap();
    // The first queue's engine still serves the API, and the virtual hosts answer.
    let info: serde_json::Value =
        serde_json::from_str(&request(&net.sock, r#"{"execute":"get_info"}"#)).unwrap();
    assert!(info["return"]["version"].is_string());
    assert!(net.guest.ping("10.0.2.2"));
}

/// Echoes each of `count` connections back to its client, each on a thread.
fn serve_each(listener: TcpListener, count: usize) {
    let handlers: Vec<_> = (0..count)
        .map(|_| {
            let (mut conn, _) = listener.accept().unwrap();
            std::thread::spawn(move || {
                let mut data = Vec::new();
                conn.read_to_end(&mut data).unwrap();
                conn.write_all(&data).unwrap();
            })
        })
        .collect();
    for handler in handlers {
        handler.join().unwrap();
    }
}

#[test]
fn queues_are_checked() {
    let out = std::process::Command::new(BIN)
        .args(["--queues", "0", "1", "tap0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--queues must be 1 to 8"));
}
