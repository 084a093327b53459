//! Arbitrary bytes as a SOCKS5 client's greeting and request: the parsers must never panic,
//! never claim more bytes than they were given, and read a message the same from a buffer
//! that holds just it; the decision never lets a request out of the guest's addresses.

#![no_main]

use libfuzzer_sys::fuzz_target;
use slirp_ns::fuzzing::{socks5_decide, socks5_greeting, socks5_request, Socks5Message};
use std::net::{IpAddr, Ipv4Addr};

fn is_guest(ip: IpAddr) -> bool {
    ip == IpAddr::V4(Ipv4Addr::new(10, 0, 2, 100))
}

fuzz_target!(|data: &[u8]| {
    if let Socks5Message::Complete(no_auth, len) = socks5_greeting(data) {
        assert!(len <= data.len());
        assert_eq!(socks5_greeting(&data[..len]), Socks5Message::Complete(no_auth, len));
    }
    match socks5_request(data) {
        Socks5Message::Complete(Ok((command, destination)), len) => {
            assert!(len <= data.len());
            assert_eq!(
                socks5_request(&data[..len]),
                Socks5Message::Complete(Ok((command, destination.clone())), len)
            );
            if let Ok(target) = socks5_decide(command, &destination, is_guest) {
                assert!(is_guest(target.ip()) && target.port() != 0);
            }
        }
        Socks5Message::Complete(Err(_), len) => assert!(len <= data.len()),
        Socks5Message::Incomplete | Socks5Message::Invalid => {}
    }
});
