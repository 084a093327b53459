//! Test topology: a throwaway "host-sim" network namespace per test (loopback plus a veth pair
//! holding documentation addresses only), a guest namespace created from inside it, and
//! slirp-ns running in host-sim. Nothing a test sends can leave the machine.
//!
//! These tests need root (or an equivalent set of capabilities) to create namespaces, plus
//! /dev/net/tun, iproute2, util-linux (unshare, nsenter, setpriv) and iputils-ping. When one of
//! them is missing the test fails and says what is missing.

#![allow(dead_code)]

pub mod dns;
mod net;
pub mod pasta;
mod procs;
pub mod rootless;
pub mod wire;
pub use net::{add_tcp, request, request_with, serve_once, Ending, Net, TIMEOUT};
#[allow(unused_imports)]
pub use procs::{assert_idle, cpu_ticks, helper_of, processes, processes_with_arg, status_field};

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_slirp-ns");

/// Fails the test, saying what the machine lacks, unless everything the namespace tests need
/// is there.
pub fn require_namespace_support() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create network namespaces and need root: run them as root (e.g. sudo -E cargo test)"
    );
    assert!(
        Path::new("/dev/net/tun").exists(),
        "/dev/net/tun is missing: load the tun module (modprobe tun)"
    );
    for tool in ["ip", "unshare", "nsenter", "setpriv", "ping"] {
        assert!(
            on_path(tool),
            "`{tool}` is missing: install iproute2, util-linux and iputils-ping"
        );
    }
}

/// Whether the shell finds `tool`.
/// The `fields` of the packets of `pcap` that `filter` selects, as tshark prints them: one row
/// per packet, one string per field.
pub fn tshark_fields(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields"]);
    for field in fields {
        cmd.args(["-e", field]);
    }
    let out = cmd.output().expect("tshark (apt-get install tshark)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

pub fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A unique short name for this test's namespaces and files.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// The host side: a named network namespace with documentation addresses only.
pub struct HostSim {
    pub name: String,
}

impl HostSim {
    pub fn new() -> Self {
        require_namespace_support();
        let name = unique_name("slirpns-hs");
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let hs = HostSim { name };
        for args in [
            "link set lo up",
            "link add hs0 type veth peer name hs1",
            "addr add 192.0.2.1/24 dev hs0",
            "addr add 198.51.100.1/24 dev hs1",
            "addr add 2001:db8::1/64 dev hs0 nodad",
            "addr add 2001:db8:1::1/64 dev hs1 nodad",
            "link set hs0 up",
            "link set hs1 up",
        ] {
            run_ok(
                Command::new("ip")
                    .args(["-n", &hs.name])
                    .args(args.split(' ')),
            );
        }
        hs
    }

    /// A command that runs inside host-sim.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Starts a guest: a process alone in a new network namespace made from host-sim.
    pub fn guest(&self) -> Guest {
        Guest::spawn(
            self.command("unshare")
                .args(["--net", "--", "sleep", "600"]),
        )
    }

    /// Starts a guest in its own user namespace too (the caller mapped to root in it).
    pub fn guest_in_userns(&self) -> Guest {
        Guest::spawn(self.command("unshare").args(USERNS_GUEST))
    }

    /// Starts a guest in its own user namespace, owned by the unprivileged `uid`.
    pub fn unprivileged_guest(&self, uid: u32) -> Guest {
        let id = uid.to_string();
        Guest::spawn(
            self.command("setpriv")
                .args([
                    "--reuid",
                    &id,
                    "--regid",
                    &id,
                    "--clear-groups",
                    "--",
                    "unshare",
                ])
                .args(USERNS_GUEST),
        )
    }

    /// A shell command line run inside host-sim as the unprivileged `uid`, in a private mount
    /// namespace where /dev/net/tun is a 0666 node of its own. Test machines often have
    /// /dev/net/tun at 0600 (most distributions ship 0666); this changes nothing outside.
    pub fn rootless_command(&self, uid: u32, devdir: &Path, command_line: &str) -> Command {
        let script = format!(
            "mount -t tmpfs -o mode=0755 none {dir} && mknod -m 0666 {dir}/tun c 10 200 && \
             mount --bind {dir}/tun /dev/net/tun && \
             exec ip netns exec {hs} setpriv --reuid {uid} --regid {uid} --clear-groups -- \
             {command_line}",
            dir = devdir.display(),
            hs = self.name,
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--", "sh", "-c", &script]);
        cmd
    }
}

/// The resolv.conf that `ip netns exec` shows as /etc/resolv.conf to what it starts in
/// host-sim (/etc/netns/NAME/resolv.conf, bind-mounted there); removed on drop.
pub struct HostResolvConf(PathBuf);

impl HostSim {
    pub fn resolv_conf(&self, text: &str) -> HostResolvConf {
        let dir = PathBuf::from(format!("/etc/netns/{}", self.name));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = HostResolvConf(dir);
        conf.rewrite(text);
        conf
    }
}

impl HostResolvConf {
    /// Writes the file in place (the same inode, which the bind mount shows).
    pub fn rewrite(&self, text: &str) {
        std::fs::write(self.0.join("resolv.conf"), text).unwrap();
    }
}

impl Drop for HostResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `unshare` arguments for a guest in new user and network namespaces.
const USERNS_GUEST: [&str; 6] = ["--user", "--map-root-user", "--net", "--", "sleep", "600"];

impl Drop for HostSim {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn netns_inode(pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// A process sitting in the guest's network namespace.
pub struct Guest {
    child: Child,
    pub pid: u32,
}

impl Guest {
    fn spawn(cmd: &mut Command) -> Guest {
        let before = netns_inode(std::process::id());
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .expect("start the guest process");
        let pid = child.id();
        let guest = Guest { child, pid };
        // `ip netns exec` and `unshare` exec in place: wait until the PID is `sleep`, by then
        // in its new namespace.
        wait_until(Duration::from_secs(5), "the guest namespace", || {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            comm.trim() == "sleep" && netns_inode(pid) != before
        });
        guest
    }

    /// Runs a command inside the guest's network namespace (as root on the host).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.pid.to_string(), "-n", "--", program]);
        cmd
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .expect("run a command in the guest")
    }

    /// `ip ARGS` in the guest (split at spaces), which must succeed.
    pub fn ip(&self, args: &str) {
        run_ok(self.command("ip").args(args.split(' ')));
    }

    /// `ip -j ARGS` in the guest, parsed.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let out = run_ok(self.command("ip").arg("-j").args(args));
        serde_json::from_slice(&out.stdout).expect("ip -j prints JSON")
    }

    /// Whether `count` pings to `addr` from the guest are all answered.
    pub fn ping(&self, addr: &str) -> bool {
        self.run("ping", &["-c", "2", "-i", "0.2", "-W", "2", addr])
            .status
            .success()
    }

    /// Whether `addr` answers ping within `limit`: after a flood, the guest's own transmit
    /// queue may still be full of it (and drop a ping or two) while slirp-ns catches up.
    pub fn ping_within(&self, addr: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.ping(addr) {
                return true;
            }
        }
        false
    }

    pub fn netns_path(&self) -> String {
        format!("/proc/{}/ns/net", self.pid)
    }

    /// Starts another guest in a new network namespace made from this one's: a host behind
    /// this guest, when this guest routes.
    pub fn behind(&self) -> Guest {
        Guest::spawn(
            self.command("unshare")
                .args(["--net", "--", "sleep", "600"]),
        )
    }

    pub fn userns_path(&self) -> String {
        format!("/proc/{}/ns/user", self.pid)
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running slirp-ns with its ready-fd (3) read end and captured output.
pub struct Slirp {
    child: Option<Child>,
    ready: File,
    pub dir: tempfile::TempDir,
}

/// Options for [`Slirp::start`] beyond the argument list.
#[derive(Default)]
pub struct StartOptions {
    /// Descriptors to hand to slirp-ns as (target fd number, our fd).
    pub fds: Vec<(RawFd, RawFd)>,
    pub env: Vec<(String, String)>,
}

fn pipe() -> (File, OwnedFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    (File::from(r), w)
}

impl Slirp {
    /// Starts `cmd` (slirp-ns, possibly wrapped) with `-r 3` wired to a pipe we read.
    pub fn spawn(mut cmd: Command, opts: StartOptions) -> Slirp {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ready_r, ready_w) = pipe();
        let mut fds = opts.fds.clone();
        fds.push((3, ready_w.as_raw_fd()));
        cmd.stdout(File::create(dir.path().join("stdout")).unwrap())
            .stderr(File::create(dir.path().join("stderr")).unwrap())
            .stdin(Stdio::null());
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        // SAFETY: only fcntl, dup2 and close between fork and exec; all async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                // Move every source out of the way first, so that no dup2 clobbers a source
                // that happens to sit on another entry's target number.
                let mut parked = [0; 16];
                for (slot, &(_, ours)) in parked.iter_mut().zip(&fds) {
                    *slot = libc::fcntl(ours, libc::F_DUPFD, 100);
                    if *slot < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (&parked_fd, &(target, _)) in parked.iter().zip(&fds) {
                    if libc::dup2(parked_fd, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(parked_fd);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start slirp-ns");
        drop(ready_w);
        Slirp {
            child: Some(child),
            ready: ready_r,
            dir,
        }
    }

    /// Starts slirp-ns inside host-sim with `args` and `-r 3`, and waits until it is ready.
    pub fn start(hs: &HostSim, args: &[&str]) -> Slirp {
        let mut cmd = hs.command(BIN);
        cmd.arg("-r").arg("3").args(args);
        let mut slirp = Slirp::spawn(cmd, StartOptions::default());
        slirp.expect_ready();
        slirp
    }

    /// Waits for the ready byte; fails with slirp-ns's stderr if it does not come.
    pub fn expect_ready(&mut self) {
        let got = self.read_ready(Duration::from_secs(10));
        assert_eq!(
            got,
            b"1",
            "slirp-ns did not report ready; exit {:?}; stdout: {}; stderr: {}",
            self.wait_exit(Duration::from_millis(100)),
            self.stdout(),
            self.stderr()
        );
    }

    /// What arrives on the ready fd until it is closed (or the time is up).
    pub fn read_ready(&mut self, limit: Duration) -> Vec<u8> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let start = Instant::now();
        let mut got = Vec::new();
        loop {
            let left = limit.saturating_sub(start.elapsed());
            let ms = PollTimeout::try_from(left.as_millis().min(60_000) as u32).unwrap();
            let mut fds = [PollFd::new(self.ready.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, ms).unwrap_or(0) == 0 {
                return got;
            }
            let mut buf = [0u8; 16];
            match self.ready.read(&mut buf) {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, sig).expect("signal slirp-ns");
    }

    /// The exit status if slirp-ns has exited within `limit`, else `None`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGTERM, then the exit status (which must come within 5 s).
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(5))
            .expect("slirp-ns exits within 5 s of SIGTERM")
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A scratch path for an API socket, short enough for sun_path.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("api.sock")
}

/// Runs `f` on a thread of its own inside the network namespace at `netns_path`; sockets it
/// makes stay in that namespace, whichever thread uses them later.
pub fn in_netns<T: Send + 'static>(netns_path: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let netns_path = netns_path.to_string();
    std::thread::spawn(move || {
        let ns = File::open(&netns_path).unwrap_or_else(|e| panic!("open {netns_path}: {e}"));
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in namespace")
}

impl HostSim {
    pub fn netns_path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Lets every group use unprivileged ICMP echo sockets in host-sim (a per-namespace knob).
    pub fn allow_ping_sockets(&self) {
        run_ok(
            self.command("sysctl")
                .args(["-q", "-w", "net.ipv4.ping_group_range=0 2147483647"]),
        );
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), for transfers whose content is checked.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}
