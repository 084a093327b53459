//! slirp-ns started as `pasta` in host-sim: the set-up podman makes for it, and what its
//! callers do next.

use super::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// host-sim with default routes to copy (pasta's defaults come from them), a resolver in it,
/// and a namespace bound to a file as podman makes one.
pub struct Setup {
    pub hs: HostSim,
    pub resolv: HostResolvConf,
    pub netns: String,
    pub dir: tempfile::TempDir,
    pub pasta: PathBuf,
}

impl Setup {
    pub fn new() -> Setup {
        let hs = HostSim::new();
        for route in [
            "route add default via 192.0.2.254",
            "-6 route add default via 2001:db8::fe",
        ] {
            run_ok(
                Command::new("ip")
                    .args(["-n", &hs.name])
                    .args(route.split(' ')),
            );
        }
        let resolv = hs.resolv_conf("nameserver 198.51.100.1\n");
        super::dns::serve(&hs.netns_path(), "198.51.100.1:53");
        let netns = unique_name("slirpns-pasta");
        run_ok(Command::new("ip").args(["netns", "add", &netns]));
        let dir = tempfile::tempdir().unwrap();
        let pasta = dir.path().join("pasta");
        std::os::unix::fs::symlink(BIN, &pasta).unwrap();
        Setup {
            hs,
            resolv,
            netns,
            dir,
            pasta,
        }
    }

    pub fn netns_path(&self) -> String {
        format!("/run/netns/{}", self.netns)
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("pasta.pid")
    }

    /// Runs pasta in host-sim as podman does: waits for it to exit, reading its combined output
    /// until it closes (which must happen by then). Returns the exit code and the output.
    pub fn run(&self, args: &[&str]) -> (i32, String) {
        let mut child = self
            .hs
            .command(&self.pasta)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            let _ = err.read_to_string(&mut text);
            text
        });
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "pasta did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        wait_until(Duration::from_secs(5), "pasta's output to close", || {
            reader.is_finished()
        });
        (status.code().unwrap_or(-1), reader.join().unwrap())
    }

    /// The PID the running pasta wrote.
    pub fn daemon(&self) -> u32 {
        let text = std::fs::read_to_string(self.pid_file()).expect("PID file");
        text.trim().parse().expect("a PID")
    }

    pub fn in_guest<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.netns_path(), f)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(self.pid_file()) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether process `pid` has exited (gone, or a zombie nobody has reaped yet).
pub fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

pub fn wait_exited(pid: u32, limit: Duration) {
    wait_until(limit, "pasta to exit", || exited(pid));
}

/// A server in the guest on `port` that tells each client the address it sees it from.
pub fn guest_tells_client_address(setup: &Setup, addr: &str) {
    let listener = {
        let addr = addr.to_string();
        setup.in_guest(move || TcpListener::bind(addr).unwrap())
    };
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let peer = conn.peer_addr().unwrap().ip();
            let _ = (&conn).write_all(peer.to_string().as_bytes());
        }
    });
}

/// Connects from host-sim, from `source`, to `dst`; returns what the server says.
pub fn ask_from_host(setup: &Setup, source: &str, dst: &str) -> String {
    let (source, dst): (SocketAddr, SocketAddr) = (source.parse().unwrap(), dst.parse().unwrap());
    let stream = in_netns(&setup.hs.netns_path(), move || {
        let socket = match dst {
            SocketAddr::V4(_) => nix::sys::socket::AddressFamily::Inet,
            SocketAddr::V6(_) => nix::sys::socket::AddressFamily::Inet6,
        };
        let fd = nix::sys::socket::socket(
            socket,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        let source = nix::sys::socket::SockaddrStorage::from(source);
        nix::sys::socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &source).unwrap();
        let stream = TcpStream::from(fd);
        let target = nix::sys::socket::SockaddrStorage::from(dst);
        nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&stream), &target)
            .expect("connect to the published port");
        stream
    });
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut text = String::new();
    (&stream).read_to_string(&mut text).unwrap();
    text
}

/// A TCP server in host-sim at `addr` that says `greeting` to each client.
pub fn host_server(setup: &Setup, addr: &str, greeting: &'static str) {
    let addr = addr.to_string();
    let listener = in_netns(&setup.hs.netns_path(), move || {
        TcpListener::bind(addr).unwrap()
    });
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let _ = (&conn).write_all(greeting.as_bytes());
        }
    });
}

pub fn read_from_guest(setup: &Setup, dst: &str) -> String {
    let dst: SocketAddr = dst.parse().unwrap();
    let stream = setup.in_guest(move || TcpStream::connect_timeout(&dst, TIMEOUT));
    let stream = stream.unwrap_or_else(|e| panic!("connect to {dst} from the guest: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut text = String::new();
    (&stream).read_to_string(&mut text).unwrap();
    text
}

/// A DNS query from the guest to `server` over UDP, answered by host-sim's resolver.
pub fn guest_resolves_through(setup: &Setup, server: &str) {
    let server: SocketAddr = server.parse().unwrap();
    let client = setup.in_guest(|| UdpSocket::bind("0.0.0.0:0").unwrap());
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    let query = super::dns::query(0x2a2a, "example.test", super::dns::A);
    client.send_to(&query, server).unwrap();
    let mut buf = [0u8; 512];
    let (n, from) = client.recv_from(&mut buf).expect("a DNS answer");
    assert_eq!(from, server);
    super::dns::assert_answer(&buf[..n], 0x2a2a, &super::dns::ANSWER_A);
}

pub fn podman_args<'a>(netns: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--config-net"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--netns", netns]);
    args
}

pub fn ip_json_in(netns: &str, args: &[&str]) -> serde_json::Value {
    let out = run_ok(
        Command::new("nsenter")
            .arg(format!("--net={netns}"))
            .args(["ip", "-j"])
            .args(args),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
