//! --socks5: curl on the host reaches a server in the guest through slirp-ns's SOCKS5 server,
//! byte for byte, and is refused, with the SOCKS5 code that says why, for every destination
//! that is not the guest's own.

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;

const SOCKS: &str = "127.0.0.1:1080";

/// An HTTP server in the guest on `port` (IPv6 and IPv4) answering every request with `body`.
fn serve_http(net: &Net, port: u16, body: Vec<u8>) {
    let listener = net.in_guest(move || TcpListener::bind(("::", port)).unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            });
        }
    });
}

/// curl in host-sim through the SOCKS5 server (`--socks5` or `--socks5-hostname`).
fn curl(net: &Net, mode: &str, url: &str) -> Output {
    net.hs
        .command("curl")
        .args(["-sS", "--max-time", "20", mode, SOCKS, url])
        .output()
        .expect("run curl")
}

/// A raw SOCKS5 exchange from host-sim: the greeting's answer and, if it went on, the
/// request's reply code.
fn raw_exchange(net: &Net, greeting: &'static [u8], request: &'static [u8]) -> (Vec<u8>, u8) {
    net.host(move || {
        let mut conn = TcpStream::connect(SOCKS).unwrap();
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        conn.write_all(greeting).unwrap();
        let mut choice = [0u8; 2];
        conn.read_exact(&mut choice).unwrap();
        if choice != [5, 0] {
            return (choice.to_vec(), 0xff);
        }
        conn.write_all(request).unwrap();
        let mut reply = [0u8; 10];
        conn.read_exact(&mut reply).unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "nothing after a refusal; then the connection closes"
        );
        (choice.to_vec(), reply[1])
    })
}

#[test]
fn curl_reaches_the_guest_server_through_socks5_and_nothing_else() {
    // Under the sandbox and the seccomp filter, as a careful user runs it.
    let net = Net::new(&[
        "--socks5",
        "1080",
        "-6",
        "--enable-sandbox",
        "--enable-seccomp",
    ]);
    let body = pattern(3 << 20, 7);
    serve_http(&net, 8080, body.clone());
    net.guest.ip("-6 addr add fd00::100/64 dev tap0 nodad");

    for (mode, url) in [
        ("--socks5", "http://10.0.2.100:8080/"),
        ("--socks5-hostname", "http://10.0.2.100:8080/"),
        ("--socks5", "http://[fd00::100]:8080/"),
    ] {
        let out = curl(&net, mode, url);
        assert!(
            out.status.success(),
            "{mode} {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == body, "{mode} {url}: the body differs");
    }

    // Host-sim's own servers, the host's loopback, the gateway, DNS and names: refused by
    // rule (code 2), never connected to.
    let decoy = net.listen("0.0.0.0:8081");
    decoy.set_nonblocking(true).unwrap();
    for url in [
        "http://192.0.2.1:8081/",
        "http://127.0.0.1:8081/",
        "http://10.0.2.2:8081/",
        "http://10.0.2.3:8081/",
        "http://10.0.2.255:8081/",
        "http://[::1]:8081/",
        "http://[fd00::2]:8081/",
    ] {
        let out = curl(&net, "--socks5", url);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(97),
            "{url}: curl's proxy error: {stderr}"
        );
        assert!(stderr.contains("(2)"), "{url}: SOCKS5 code 2: {stderr}");
    }
    let out = curl(&net, "--socks5-hostname", "http://example.test:8081/");
    assert!(String::from_utf8_lossy(&out.stderr).contains("(2)"));
    assert!(
        decoy.accept().is_err(),
        "no refused destination was connected to"
    );

    // The guest's address, but nothing listens there: the guest's refusal, code 5.
    let out = curl(&net, "--socks5", "http://10.0.2.100:8099/");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(97), "{stderr}");
    assert!(stderr.contains("(5)"), "SOCKS5 code 5: {stderr}");

    // What curl does not send: BIND and UDP ASSOCIATE (7), an unknown address type (8), and
    // a client that will not go without authentication.
    let bind: &[u8] = &[5, 2, 0, 1, 10, 0, 2, 100, 0, 80];
    let udp: &[u8] = &[5, 3, 0, 1, 10, 0, 2, 100, 0, 80];
    let bad_type: &[u8] = &[5, 1, 0, 7, 10, 0, 2, 100, 0, 80];
    assert_eq!(raw_exchange(&net, &[5, 1, 0], bind).1, 7);
    assert_eq!(raw_exchange(&net, &[5, 1, 0], udp).1, 7);
    assert_eq!(raw_exchange(&net, &[5, 1, 0], bad_type).1, 8);
    assert_eq!(raw_exchange(&net, &[5, 1, 2], bind).0, vec![5, 0xff]);

    // A client that never finishes its handshake does not hold up the others.
    let _silent = net.host(|| {
        let mut conn = TcpStream::connect(SOCKS).unwrap();
        conn.write_all(&[5]).unwrap();
        conn
    });
    let out = curl(&net, "--socks5", "http://10.0.2.100:8080/");
    assert!(out.status.success() && out.stdout == body);
}

#[test]
fn a_bad_socks5_address_is_a_clear_error() {
    let out = std::process::Command::new(BIN)
        .args(["--socks5", "localhost:1080", "1", "tap0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected [ADDR:]PORT"), "{stderr}");
}
