//! A ready-made topology: host-sim, a guest below it, and slirp-ns (`-c`, an API socket, and
//! the caller's extra arguments) joining them.

use super::*;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Net {
    pub hs: HostSim,
    pub guest: Guest,
    pub slirp: Slirp,
    /// The API socket (none when made `from_parts`).
    pub sock: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Net {
    pub fn new(extra: &[&str]) -> Net {
        let hs = HostSim::new();
        let guest = hs.guest();
        let dir = tempfile::tempdir().unwrap();
        let sock = socket_path(dir.path());
        let pid = guest.pid.to_string();
        let mut args = vec!["-c", "-a", sock.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&pid, "tap0"]);
        let slirp = Slirp::start(&hs, &args);
        Net {
            hs,
            guest,
            slirp,
            sock,
            _dir: Some(dir),
        }
    }

    /// A topology whose slirp-ns the caller started in its own way.
    pub fn from_parts(hs: HostSim, guest: Guest, slirp: Slirp) -> Net {
        Net {
            hs,
            guest,
            slirp,
            sock: PathBuf::new(),
            _dir: None,
        }
    }

    /// Runs `f` in host-sim.
    pub fn host<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.hs.netns_path(), f)
    }

    /// Runs `f` in the guest.
    pub fn in_guest<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.guest.netns_path(), f)
    }

    /// A TCP listener in host-sim.
    pub fn listen(&self, addr: &str) -> TcpListener {
        let addr = addr.to_string();
        self.host(move || TcpListener::bind(addr).expect("bind in host-sim"))
    }

    /// Downloads `down` bytes from a server in host-sim listening on `listen`, then uploads
    /// `up` bytes, and checks both arrive byte for byte.
    pub fn transfer_both_ways(&self, listen: &str, down: usize, up: usize) {
        let listener = self.listen(listen);
        let addr = listener.local_addr().unwrap();
        let download = pattern(down, 1);
        let upload = pattern(up, 2);
        let (down, up) = (download.clone(), upload.clone());
        let server = serve_once(listener, move |mut conn| {
            // No call may wait for ever on an engine that died: each fails after TIMEOUT
            // without progress.
            conn.set_write_timeout(Some(TIMEOUT)).unwrap();
            conn.set_read_timeout(Some(TIMEOUT)).unwrap();
            conn.write_all(&down).unwrap();
            conn.shutdown(Shutdown::Write).unwrap();
            let mut got = Vec::new();
            conn.read_to_end(&mut got).unwrap();
            assert!(
                got == up,
                "upload differs (len {} vs {})",
                got.len(),
                up.len()
            );
        });
        let mut conn = self.connect(addr).expect("connect through slirp-ns");
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        conn.set_write_timeout(Some(TIMEOUT)).unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        assert!(
            got == download,
            "download differs (len {} vs {})",
            got.len(),
            download.len()
        );
        conn.write_all(&upload).unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        server.join().unwrap();
    }

    /// Has a server in host-sim, listening on `listen`, send `greeting` to one client; connects
    /// to it from the guest at address `via` (the server's port) and returns what arrived.
    pub fn greeting_via(&self, listen: &str, via: &str, greeting: &'static [u8]) -> String {
        let listener = self.listen(listen);
        let port = listener.local_addr().unwrap().port();
        let server = serve_once(listener, move |mut conn| conn.write_all(greeting).unwrap());
        let addr = SocketAddr::new(via.parse().expect("an IP address"), port);
        let mut conn = self.connect(addr).expect("connect from the guest");
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        server.join().unwrap();
        got
    }

    /// A UDP server in host-sim, bound to `listen`, that echoes `datagrams` datagrams (of up to
    /// 64 KiB) and ends; its address and thread.
    pub fn udp_echo(
        &self,
        listen: &str,
        datagrams: usize,
    ) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let listen = listen.to_string();
        let server = self.host(move || UdpSocket::bind(listen).expect("bind in host-sim"));
        let addr = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            for _ in 0..datagrams {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        (addr, echo)
    }

    /// A UDP socket in the guest connected to `addr` (IPv4 or IPv6), its reads bounded by
    /// [`TIMEOUT`].
    pub fn udp_client(&self, addr: SocketAddr) -> UdpSocket {
        let any = if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let client = self.in_guest(move || UdpSocket::bind(any).unwrap());
        client.set_read_timeout(Some(TIMEOUT)).unwrap();
        client.connect(addr).unwrap();
        client
    }

    /// A TCP connection from the guest.
    pub fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        self.in_guest(move || TcpStream::connect_timeout(&addr, TIMEOUT))
    }
}

/// Accepts one connection on `listener` and hands it to `f`, on a thread.
pub fn serve_once(
    listener: TcpListener,
    f: impl FnOnce(TcpStream) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        f(conn)
    })
}

/// How a client ends its request.
#[derive(Clone, Copy)]
pub enum Ending {
    /// Shuts down its write side (slirp4netns's own tests do this).
    Shutdown,
    /// Sends the JSON and waits (podman).
    Nothing,
    /// Sends the JSON and a newline and waits (rootlesskit).
    Newline,
}

pub fn request_with(path: &Path, json: &str, ending: Ending) -> String {
    let mut conn = UnixStream::connect(path).expect("connect to the API socket");
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    conn.write_all(json.as_bytes()).unwrap();
    match ending {
        Ending::Shutdown => conn.shutdown(Shutdown::Write).unwrap(),
        Ending::Nothing => {}
        Ending::Newline => conn.write_all(b"\n").unwrap(),
    }
    let mut reply = String::new();
    conn.read_to_string(&mut reply)
        .expect("a reply, then the connection closes");
    reply
}

pub fn request(path: &Path, json: &str) -> String {
    request_with(path, json, Ending::Shutdown)
}

/// add_hostfwd of a TCP port to the guest's address.
pub fn add_tcp(path: &Path, host_addr: &str, host_port: u16, guest_port: u16) -> String {
    request(
        path,
        &format!(
            r#"{{"execute":"add_hostfwd","arguments":{{"proto":"tcp","host_addr":"{host_addr}","host_port":{host_port},"guest_addr":"","guest_port":{guest_port}}}}}"#
        ),
    )
}

impl Net {
    /// A port free in host-sim now.
    pub fn free_port(&self) -> u16 {
        in_netns(&self.hs.netns_path(), || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
    }

    /// A TCP server in the guest on `port`: each connection gets the client's address as the
    /// guest sees it, a newline, then `body`.
    pub fn guest_server(
        &self,
        port: u16,
        connections: usize,
        body: Vec<u8>,
    ) -> std::thread::JoinHandle<()> {
        let listener = in_netns(&self.guest.netns_path(), move || {
            TcpListener::bind(("0.0.0.0", port)).unwrap()
        });
        std::thread::spawn(move || {
            for _ in 0..connections {
                let (mut conn, peer) = listener.accept().unwrap();
                let body = body.clone();
                std::thread::spawn(move || {
                    let _ = conn.write_all(format!("{}\n", peer.ip()).as_bytes());
                    let _ = conn.write_all(&body);
                });
            }
        })
    }

    /// Connects from host-sim to `addr` and reads the guest server's answer: (who, body).
    pub fn fetch(&self, addr: SocketAddr) -> std::io::Result<(String, Vec<u8>)> {
        let mut conn = in_netns(&self.hs.netns_path(), move || {
            TcpStream::connect_timeout(&addr, TIMEOUT)
        })?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        let mut all = Vec::new();
        conn.read_to_end(&mut all)?;
        let newline = all.iter().position(|b| *b == b'\n').unwrap_or(all.len());
        let who = String::from_utf8_lossy(&all[..newline]).into_owned();
        let body = all.get(newline + 1..).unwrap_or_default().to_vec();
        Ok((who, body))
    }
}
