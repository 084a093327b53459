//! `--socks5 [ADDR:]PORT`: an inbound SOCKS5 server (RFC 1928) on the host, through which host
//! programs reach the guest's own services — `curl --socks5 127.0.0.1:1080
//! http://10.0.2.100:8080/`. Only CONNECT without authentication, and only to the guest's own
//! addresses: anything else gets the SOCKS5 error code that says why.
//!
//! The handshake runs on the event loop, each client in a slot of its own with a deadline. It is
//! read with MSG_PEEK and consumed a message at a time, so that bytes a client sends right after
//! its request stay in the socket for the guest. An accepted request makes the connection the
//! engine's: a TCP flow toward the guest, as a port forward's, which sends the SOCKS5 reply once
//! the guest has answered our SYN — succeeded, connection refused, or host unreachable.

use crate::engine::flows::tcp::ConnectReplies;
use crate::engine::{Engine, TxQueue};
use crate::host::client_slots::ClientSlots;
use crate::tokens;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// System calls of the SOCKS5 server (for --enable-seccomp): accepting, peeking and reading
/// the handshake, replying.
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    libc::SYS_accept4,
    libc::SYS_recvfrom,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_sendto,
    libc::SYS_setsockopt,
    libc::SYS_close,
];

/// Clients in the handshake at once; more wait in the listen backlog.
pub const MAX_CLIENTS: usize = 256;
/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest handshake message: a request naming 255 bytes of domain.
const MAX_MESSAGE: usize = 4 + 1 + 255 + 2;
const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0;
const NO_ACCEPTABLE_METHODS: u8 = 0xff;
const CONNECT: u8 = 1;
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// Reply codes (RFC 1928, section 6).
pub mod code {
    pub const SUCCEEDED: u8 = 0;
    pub const NOT_ALLOWED: u8 = 2;
    pub const HOST_UNREACHABLE: u8 = 4;
    pub const CONNECTION_REFUSED: u8 = 5;
    pub const COMMAND_NOT_SUPPORTED: u8 = 7;
    pub const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 8;
}

/// What the start of a handshake buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<T> {
    /// Not all of it yet.
    Incomplete,
    /// A whole message of this many bytes.
    Complete(T, usize),
    /// Not SOCKS5.
    Invalid,
}

/// The greeting: whether the client offers to go without authentication.
pub fn parse_greeting(buf: &[u8]) -> Message<bool> {
    match buf {
        [] | [_] => Message::Incomplete,
        [version, ..] if *version != VERSION => Message::Invalid,
        [_, count, methods @ ..] => {
            let count = usize::from(*count);
            if methods.len() < count {
                return Message::Incomplete;
            }
            let no_auth = methods[..count].contains(&NO_AUTHENTICATION);
            Message::Complete(no_auth, 2 + count)
        }
    }
}

/// Where a request wants to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Ip(SocketAddr),
    Name(String, u16),
}

/// A request: its command and destination, or the reply code for an address type we do not
/// know (its length unknown, the connection cannot go on).
pub fn parse_request(buf: &[u8]) -> Message<Result<(u8, Destination), u8>> {
    let [version, command, _reserved, atyp, rest @ ..] = buf else {
        return if buf.first().is_some_and(|&v| v != VERSION) {
            Message::Invalid
        } else {
            Message::Incomplete
        };
    };
    if *version != VERSION {
        return Message::Invalid;
    }
    let (address_len, skip) = match *atyp {
        ATYP_IPV4 => (4, 0),
        ATYP_IPV6 => (16, 0),
        ATYP_DOMAIN => match rest.first() {
            Some(&len) => (usize::from(len), 1),
            None => return Message::Incomplete,
        },
        _ => return Message::Complete(Err(code::ADDRESS_TYPE_NOT_SUPPORTED), buf.len()),
    };
    let len = 4 + skip + address_len + 2;
    if buf.len() < len {
        return Message::Incomplete;
    }
    let address = &rest[skip..skip + address_len];
    let port = u16::from_be_bytes([rest[skip + address_len], rest[skip + address_len + 1]]);
    let destination = match *atyp {
        ATYP_IPV4 => {
            let octets: [u8; 4] = address.try_into().unwrap_or_default();
            Destination::Ip(SocketAddr::new(Ipv4Addr::from(octets).into(), port))
        }
        ATYP_IPV6 => {
            let octets: [u8; 16] = address.try_into().unwrap_or_default();
            Destination::Ip(SocketAddr::new(Ipv6Addr::from(octets).into(), port))
        }
        _ => Destination::Name(String::from_utf8_lossy(address).into_owned(), port),
    };
    Message::Complete(Ok((*command, destination)), len)
}

/// Where a request may go: a guest address (`is_guest` says which are), by CONNECT only.
pub fn decide(
    command: u8,
    destination: &Destination,
    is_guest: impl Fn(IpAddr) -> bool,
) -> Result<SocketAddr, u8> {
    if command != CONNECT {
        return Err(code::COMMAND_NOT_SUPPORTED);
    }
    let target = match destination {
        Destination::Ip(addr) => *addr,
        // A name that is an address literal is taken; the guest's names are nobody's to resolve.
        Destination::Name(name, port) => match name.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, *port),
            Err(_) => return Err(code::NOT_ALLOWED),
        },
    };
    let ip = target.ip().to_canonical();
    if target.port() == 0 || !is_guest(ip) {
        return Err(code::NOT_ALLOWED);
    }
    Ok(SocketAddr::new(ip, target.port()))
}

/// A reply with `code`; the bound address is left unspecified (clients do not use it).
pub fn reply(code: u8) -> [u8; 10] {
    [VERSION, code, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Greeting,
    Request,
}

struct Client {
    stream: TcpStream,
    addr: SocketAddr,
    stage: Stage,
}

pub struct Socks5Server {
    listener: TcpListener,
    clients: ClientSlots<Client>,
}

impl Socks5Server {
    pub fn bind(addr: SocketAddr) -> Result<Self, String> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen for SOCKS5 on {addr}: {e}"))?;
        Ok(Socks5Server {
            listener,
            clients: ClientSlots::new(MAX_CLIENTS),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(
            &mut self.listener,
            tokens::SOCKS5_LISTENER,
            Interest::READABLE,
        )
    }

    /// Takes the clients waiting, as many as there are free slots for.
    pub fn accept(&mut self, registry: &Registry, now: Instant) {
        while let Some(slot) = self.clients.vacant() {
            let (mut stream, addr) = match self.listener.accept() {
                Ok(client) => client,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let token = tokens::token(tokens::Kind::Socks5Client, slot);
            if registry
                .register(&mut stream, token, Interest::READABLE)
                .is_err()
            {
                continue;
            }
            let client = Client {
                stream,
                addr,
                stage: Stage::Greeting,
            };
            self.clients.insert(client, now + HANDSHAKE_TIMEOUT);
        }
    }

    /// Goes on with the handshake of the client in `slot`; an accepted request goes to
    /// `engine` as a connection toward the guest.
    pub fn on_client_event(
        &mut self,
        registry: &Registry,
        slot: usize,
        now: Instant,
        engine: &mut Engine,
        tx: &mut TxQueue,
    ) {
        let Some(client) = self.clients.get_mut(slot) else {
            return;
        };
        match client.advance(engine) {
            Step::Wait => {}
            Step::Close => self.release(registry, slot),
            Step::Connect(target) => {
                if let Some(mut client) = self.clients.remove(slot) {
                    let _ = registry.deregister(&mut client.stream);
                    let replies = ConnectReplies {
                        accepted: reply(code::SUCCEEDED),
                        refused: reply(code::CONNECTION_REFUSED),
                        unanswered: reply(code::HOST_UNREACHABLE),
                    };
                    let opened =
                        engine.open_inbound(now, client.stream, client.addr, target, replies, tx);
                    if let Err(reason) = opened {
                        log::debug!("SOCKS5 {}: {target} refused ({reason:?})", client.addr);
                    }
                }
            }
        }
    }

    fn release(&mut self, registry: &Registry, slot: usize) {
        if let Some(mut client) = self.clients.remove(slot) {
            let _ = registry.deregister(&mut client.stream);
        }
    }

    /// When the next handshake times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients.next_deadline()
    }

    /// Drops the clients whose handshake took too long.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        for slot in self.clients.expired(now) {
            self.release(registry, slot);
        }
    }
}

/// What the handshake came to for now.
enum Step {
    Wait,
    Close,
    Connect(SocketAddr),
}

impl Client {
    /// Reads what the handshake has to offer so far and answers it.
    fn advance(&mut self, engine: &Engine) -> Step {
        let mut buf = [0u8; MAX_MESSAGE];
        loop {
            let peeked = match self.stream.peek(&mut buf) {
                Ok(0) => return Step::Close,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(_) => return Step::Close,
            };
            let input = &buf[..peeked];
            match self.stage {
                Stage::Greeting => match parse_greeting(input) {
                    Message::Incomplete => return Step::Wait,
                    Message::Invalid => return Step::Close,
                    Message::Complete(no_auth, len) => {
                        self.consume(len);
                        if !no_auth {
                            self.send(&[VERSION, NO_ACCEPTABLE_METHODS]);
                            return Step::Close;
                        }
                        self.send(&[VERSION, NO_AUTHENTICATION]);
                        self.stage = Stage::Request;
                    }
                },
                Stage::Request => match parse_request(input) {
                    Message::Incomplete => return Step::Wait,
                    Message::Invalid => return Step::Close,
                    Message::Complete(request, len) => {
                        self.consume(len);
                        let decision = request.and_then(|(command, destination)| {
                            decide(command, &destination, |ip| engine.is_guest_address(ip))
                        });
                        return match decision {
                            Ok(target) => Step::Connect(target),
                            Err(code) => {
                                log::debug!("SOCKS5 {}: refused with code {code}", self.addr);
                                self.send(&reply(code));
                                Step::Close
                            }
                        };
                    }
                },
            }
        }
    }

    /// Reads away `len` bytes already peeked.
    fn consume(&mut self, len: usize) {
        let mut sink = [0u8; MAX_MESSAGE];
        let _ = self.stream.read(&mut sink[..len.min(MAX_MESSAGE)]);
    }

    /// A few bytes into a socket whose send buffer holds nothing else: written whole.
    fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings() {
        assert_eq!(parse_greeting(&[5]), Message::Incomplete);
        assert_eq!(parse_greeting(&[5, 2, 0]), Message::Incomplete);
        assert_eq!(parse_greeting(&[5, 2, 2, 0, 9]), Message::Complete(true, 4));
        assert_eq!(parse_greeting(&[5, 1, 2]), Message::Complete(false, 3));
        assert_eq!(parse_greeting(&[4, 1, 0]), Message::Invalid);
        assert_eq!(parse_greeting(&[5, 0]), Message::Complete(false, 2));
    }

    #[test]
    fn requests() {
        let v4 = [5, 1, 0, 1, 10, 0, 2, 100, 0x1f, 0x90];
        let want = Destination::Ip("10.0.2.100:8080".parse().unwrap());
        assert_eq!(parse_request(&v4), Message::Complete(Ok((1, want)), 10));
        for cut in 0..v4.len() {
            assert_eq!(parse_request(&v4[..cut]), Message::Incomplete, "{cut}");
        }
        let mut v6 = vec![5, 1, 0, 4];
        v6.extend_from_slice(&"fd00::100".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0, 80, 0xaa]); // and a byte of data after it
        let want = Destination::Ip("[fd00::100]:80".parse().unwrap());
        assert_eq!(parse_request(&v6), Message::Complete(Ok((1, want)), 22));
        let name = [5, 1, 0, 3, 4, b'h', b'o', b's', b't', 0, 80];
        let want = Destination::Name("host".into(), 80);
        assert_eq!(parse_request(&name), Message::Complete(Ok((1, want)), 11));
        assert_eq!(
            parse_request(&[5, 1, 0, 9, 1, 2]),
            Message::Complete(Err(code::ADDRESS_TYPE_NOT_SUPPORTED), 6)
        );
        assert_eq!(parse_request(&[4, 1, 0, 1]), Message::Invalid);
    }

    #[test]
    fn only_connect_to_the_guest_is_allowed() {
        let guest: IpAddr = "10.0.2.100".parse().unwrap();
        let is_guest = |ip: IpAddr| ip == guest;
        let to = |s: &str| Destination::Ip(s.parse().unwrap());
        assert_eq!(
            decide(1, &to("10.0.2.100:80"), is_guest),
            Ok("10.0.2.100:80".parse().unwrap())
        );
        assert_eq!(
            decide(1, &to("[::ffff:10.0.2.100]:80"), is_guest),
            Ok("10.0.2.100:80".parse().unwrap()),
            "a mapped address is the guest's too"
        );
        assert_eq!(
            decide(1, &Destination::Name("10.0.2.100".into(), 80), is_guest),
            Ok("10.0.2.100:80".parse().unwrap())
        );
        for refused in [
            "10.0.2.2:80",
            "127.0.0.1:80",
            "192.0.2.1:80",
            "10.0.2.100:0",
        ] {
            assert_eq!(
                decide(1, &to(refused), is_guest),
                Err(code::NOT_ALLOWED),
                "{refused}"
            );
        }
        assert_eq!(
            decide(1, &Destination::Name("example.test".into(), 80), is_guest),
            Err(code::NOT_ALLOWED)
        );
        assert_eq!(
            decide(2, &to("10.0.2.100:80"), is_guest),
            Err(code::COMMAND_NOT_SUPPORTED),
            "BIND"
        );
        assert_eq!(
            decide(3, &to("10.0.2.100:80"), is_guest),
            Err(code::COMMAND_NOT_SUPPORTED),
            "UDP ASSOCIATE"
        );
    }
}
