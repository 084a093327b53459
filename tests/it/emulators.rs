//! Real emulators, run as their users run them: a User Mode Linux guest on slirp-ns over
//! `vec0:transport=bess`, and over a vde switch through `dpipe vde_plug SWITCH = slirp-ns
//! --target-type=stdio --framing=len16`. The guest's own kernel, behind its short device queue,
//! downloads 32 MiB from a server in host-sim and sends it back; every byte must arrive, and a
//! full link must push slirp-ns back rather than lose its frames (dropped_tx_queue_full = 0).
//! The guest's network is 203.0.113.0/24; host-sim holds documentation addresses only.

use crate::common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SERVER: &str = "198.51.100.1";
const TRANSFER: usize = 32 << 20;
const LIMIT: Duration = Duration::from_secs(180);

/// The guest's init (its environment comes from the kernel command line). bash's /dev/tcp
/// needs nothing installed beyond what the tests already use.
const GUEST_INIT: &str = r#"#!/bin/bash
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
ip link set lo up
ip link set "$IF" up
ip addr add 203.0.113.100/24 dev "$IF"
ip route add default via 203.0.113.2
exec 3<>"/dev/tcp/$SERVER/$DOWN_PORT" && cat <&3 >/tmp/data
exec 3>&-
echo "DOWNLOADED $(wc -c </tmp/data)"
exec 3<>"/dev/tcp/$SERVER/$UP_PORT" && cat /tmp/data >&3
exec 3>&-
echo UPLOADED
echo DONE
sleep 2
poweroff -f
"#;

fn require_emulators() {
    require_namespace_support();
    for tool in ["linux", "vde_switch", "vde_plug", "dpipe", "bash"] {
        assert!(
            on_path(tool),
            "missing {tool}: run .ci/setup (apt-get install user-mode-linux vde2)"
        );
    }
}

/// A process group killed when dropped: User Mode Linux runs as many host processes.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// The servers in host-sim: one sends the data and closes, one takes it back and checks it.
fn start_servers(hs: &HostSim) -> (u16, u16, std::thread::JoinHandle<()>) {
    let listen = |hs: &HostSim| {
        let addr = format!("{SERVER}:0");
        in_netns(&hs.netns_path(), move || {
            TcpListener::bind(addr).expect("bind in host-sim")
        })
    };
    let (down, up) = (listen(hs), listen(hs));
    let ports = (
        down.local_addr().unwrap().port(),
        up.local_addr().unwrap().port(),
    );
    let servers = std::thread::spawn(move || {
        let data = pattern(TRANSFER, 17);
        let (mut conn, _) = down.accept().unwrap();
        conn.write_all(&data).expect("the download is sent");
        conn.shutdown(Shutdown::Write).unwrap();
        drop(conn);
        let (mut conn, _) = up.accept().unwrap();
        conn.set_read_timeout(Some(LIMIT)).unwrap();
        let mut back = Vec::with_capacity(TRANSFER);
        conn.read_to_end(&mut back).expect("the upload arrives");
        assert!(
            back == data,
            "what the guest sent back differs from what it was sent (len {} of {TRANSFER})",
            back.len()
        );
    });
    (ports.0, ports.1, servers)
}

/// Boots User Mode Linux in host-sim with `device` (its network option, the device named
/// `ifname`), runs GUEST_INIT, and returns once the guest is done and powered off. When the
/// guest prints DONE (and before it powers off), `at_done` runs.
/// What Debian's User Mode Linux (6.1) prints when it cannot restore its processes' registers:
/// the host kernel asks for its whole XSAVE area, and on CPUs with AMX that is larger than
/// the buffer this UML passes. Its init dies before it runs a line.
const UML_CANNOT_RUN_HERE: &str = "ptrace set fp regs failed";

/// Runs the guest to its end; false if User Mode Linux cannot run on this host at all.
#[must_use]
fn run_guest(hs: &HostSim, dir: &Path, device: &str, ifname: &str, at_done: impl FnOnce()) -> bool {
    let init = dir.join("init");
    std::fs::write(&init, GUEST_INIT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (down_port, up_port, servers) = start_servers(hs);

    let mut cmd = hs.command("linux");
    cmd.args([
        "mem=256M",
        "root=/dev/root",
        "rootfstype=hostfs",
        "rootflags=/",
        "ro",
    ])
    .arg(format!("init={}", init.display()))
    .arg(format!("IF={ifname}"))
    .arg(format!("SERVER={SERVER}"))
    .arg(format!("DOWN_PORT={down_port}"))
    .arg(format!("UP_PORT={up_port}"))
    .args([device, "con=null", "con0=fd:0,fd:1"])
    .env("TMPDIR", dir)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut uml = Group(cmd.spawn().expect("start User Mode Linux"));
    let console = uml.0.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(console).lines().map_while(Result::ok) {
            if lines_tx.send(line.trim_end().to_string()).is_err() {
                break;
            }
        }
    });

    let start = Instant::now();
    let mut seen = Vec::new();
    let mut at_done = Some(at_done);
    loop {
        let left = LIMIT.saturating_sub(start.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if line.starts_with("DOWNLOADED") {
                    assert_eq!(
                        line,
                        format!("DOWNLOADED {TRANSFER}"),
                        "the guest's download"
                    );
                }
                if line == "DONE" {
                    at_done.take().unwrap()();
                }
                seen.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "the guest did not finish within {LIMIT:?}; its console:\n{}",
                seen.join("\n")
            ),
        }
    }
    if at_done.is_some() && seen.iter().any(|l| l.contains(UML_CANNOT_RUN_HERE)) {
        eprintln!(
            "SKIPPED: this host's CPU state is larger than User Mode Linux 6.1 can save \
             (\"{UML_CANNOT_RUN_HERE}\", e.g. on CPUs with AMX): the guest cannot run here"
        );
        return false;
    }
    assert!(
        at_done.is_none(),
        "the guest ended before it was done; its console:\n{}",
        seen.join("\n")
    );
    servers.join().expect("the servers saw every byte");
    let _ = uml.0.wait();
    true
}

fn dropped_on_full_link(api: &Path) -> u64 {
    let reply = request(api, r#"{"execute":"get_info"}"#);
    let info: serde_json::Value = serde_json::from_str(&reply).expect("JSON reply");
    info["return"]["counters"]["dropped_tx_queue_full"]
        .as_u64()
        .expect("dropped_tx_queue_full")
}

fn engine_args(api: &Path) -> Vec<String> {
    ["-r", "3", "--cidr", "203.0.113.0/24", "-a"]
        .iter()
        .map(|s| s.to_string())
        .chain([api.display().to_string()])
        .collect()
}

/// User Mode Linux's vector device on slirp-ns's bess socket, as slirp4netns users run it.
#[test]
fn user_mode_linux_over_bess_moves_32_mib_both_ways_without_dropping_a_frame() {
    require_emulators();
    let hs = HostSim::new();
    let dir = tempfile::tempdir().unwrap();
    let api = socket_path(dir.path());
    let bess = dir.path().join("bess.sock");
    let mut cmd = hs.command(BIN);
    cmd.args(engine_args(&api))
        .args(["--target-type=bess", bess.to_str().unwrap()]);
    let mut slirp = Slirp::spawn(cmd, StartOptions::default());
    wait_until(Duration::from_secs(10), "the bess socket", || bess.exists());
    let device = format!(
        "vec0:transport=bess,dst={},src={}",
        bess.display(),
        dir.path().join("uml.sock").display()
    );
    if !run_guest(&hs, dir.path(), &device, "vec0", || {
        assert_eq!(dropped_on_full_link(&api), 0, "frames dropped on bess");
    }) {
        return;
    }
    let status = slirp
        .wait_exit(Duration::from_secs(10))
        .expect("slirp-ns ends when the guest leaves its bess socket");
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        slirp.stderr()
    );
}

/// A vde switch between User Mode Linux and slirp-ns on vde_plug's stdio, as vde2's slirpvde
/// users run it; slirp-ns ends once the switch is gone.
#[test]
fn user_mode_linux_over_a_vde_switch_and_stdio_moves_32_mib_both_ways_without_dropping_a_frame() {
    require_emulators();
    let hs = HostSim::new();
    let dir = tempfile::tempdir().unwrap();
    let api = socket_path(dir.path());
    let switch: PathBuf = dir.path().join("switch");
    // In the foreground, as a test can own it: it ends when its console (stdin) closes.
    let mut cmd = Command::new("vde_switch");
    cmd.args(["-s", switch.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut vde_switch = Group(cmd.spawn().expect("start vde_switch"));
    let console = vde_switch.0.stdin.take().unwrap();
    wait_until(Duration::from_secs(10), "the vde switch", || {
        switch.join("ctl").exists()
    });
    let mut cmd = hs.command("dpipe");
    cmd.args(["vde_plug", switch.to_str().unwrap(), "=", BIN])
        .args(engine_args(&api))
        .args(["--target-type=stdio", "--framing=len16"]);
    let mut slirp = Slirp::spawn(cmd, StartOptions::default());
    slirp.expect_ready();
    let device = format!("eth0=vde,{}", switch.display());
    if !run_guest(&hs, dir.path(), &device, "eth0", || {
        assert_eq!(dropped_on_full_link(&api), 0, "frames dropped on stdio");
    }) {
        return;
    }
    drop(console);
    let _ = vde_switch.0.wait();
    let status = slirp
        .wait_exit(Duration::from_secs(10))
        .expect("slirp-ns (and dpipe) end when the switch is gone");
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        slirp.stderr()
    );
}
