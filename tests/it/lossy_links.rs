//! TCP over links that lose frames and read slowly, as the links of emulators and real networks
//! do: a real kernel's connections through slirp-ns, with iptables dropping a share of the
//! frames on the guest's device both ways (this kernel has no netem), over a TAP and over the
//! emulator transports (bess, stdio with lengths or SLIP) whose peer reads slowly. Every byte
//! must arrive, once and in order, in both directions; slirp-ns itself must drop nothing: a
//! full link pushes back.
//!
//! The connections come from a host behind the guest, which routes (and masquerades) onto its
//! device: a drop there, in iptables' FORWARD chain, is loss the sending kernel cannot see, as
//! on a real network. (A drop in OUTPUT is reported to the sender, whose TCP just tries again.)

use crate::common;

use common::wire::{self, connect_seqpacket, guest_device, Framing, Mangling, Wire};
use common::*;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Makes `guest` a router for a host behind it, masquerading onto `device`, and drops each
/// frame it forwards through `device`, either way, with `probability`. Returns the host.
fn lossy_router(guest: &Guest, device: &str, probability: &str) -> Guest {
    let behind = guest.behind();
    let pid = behind.pid.to_string();
    guest.ip(&format!("link add rt0 type veth peer name rt1 netns {pid}"));
    for args in ["addr add 203.0.113.1/24 dev rt0", "link set rt0 up"] {
        guest.ip(args);
    }
    for args in [
        "link set lo up",
        "addr add 203.0.113.2/24 dev rt1",
        "link set rt1 up",
        "route add default via 203.0.113.1",
    ] {
        behind.ip(args);
    }
    let iptables = |rule: &[&str]| {
        let out = guest.run("iptables", rule);
        assert!(
            out.status.success(),
            "iptables {rule:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let forwarding = guest.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    assert!(forwarding.status.success(), "ip_forward in the guest");
    iptables(&[
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        device,
        "-j",
        "MASQUERADE",
    ]);
    for direction in ["-i", "-o"] {
        let rule = [
            "-A",
            "FORWARD",
            direction,
            device,
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            probability,
            "-j",
            "DROP",
        ];
        iptables(&rule);
    }
    behind
}

/// What the frames to the guest go over.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    Tap,
    Bess,
    Len16,
    Slip,
}

/// A reader that takes 40 MB/s at most: an emulator busy with its guest.
const SLOW_READER: u64 = 40_000_000;

/// slirp-ns over `link`, the guest's device losing `probability` of the frames both ways;
/// `net`'s guest is the host behind the guest.
struct Lossy {
    net: Net,
    api: PathBuf,
    _router: Guest,
    _wire: Option<Wire>,
    _dir: tempfile::TempDir,
}

fn start(link: Link, probability: &str) -> Lossy {
    let hs = HostSim::new();
    let guest = hs.guest();
    let dir = tempfile::tempdir().unwrap();
    let api = socket_path(dir.path());
    let mut cmd = hs.command(BIN);
    cmd.args(["-r", "3", "-a", api.to_str().unwrap()]);
    let mangling = Mangling {
        read_rate: SLOW_READER,
        ..Default::default()
    };
    let (slirp, wire) = match link {
        Link::Tap => {
            cmd.args(["-c", &guest.pid.to_string(), "tap0"]);
            let mut slirp = Slirp::spawn(cmd, StartOptions::default());
            slirp.expect_ready();
            (slirp, None)
        }
        Link::Bess => {
            let bess = dir.path().join("bess.sock");
            cmd.args(["--target-type=bess", bess.to_str().unwrap()]);
            let mut slirp = Slirp::spawn(cmd, StartOptions::default());
            wait_until(Duration::from_secs(10), "the bess socket", || bess.exists());
            let conn = std::fs::File::from(connect_seqpacket(&bess).expect("connect to bess"));
            slirp.expect_ready();
            let device = guest_device(&guest, false);
            let reader = Box::new(conn.try_clone().unwrap());
            let wire = Wire::start(device, Framing::Messages, Box::new(conn), reader, mangling);
            (slirp, Some(wire))
        }
        Link::Len16 => {
            let (stdin_r, stdin_w) = wire::pipe();
            let (stdout_r, stdout_w) = wire::pipe();
            cmd.arg("--target-type=stdio");
            let opts = StartOptions {
                fds: vec![(0, stdin_r.as_raw_fd()), (1, stdout_w.as_raw_fd())],
                ..Default::default()
            };
            let mut slirp = Slirp::spawn(cmd, opts);
            drop((stdin_r, stdout_w));
            slirp.expect_ready();
            let device = guest_device(&guest, false);
            let (to, from) = (Box::new(stdin_w), Box::new(stdout_r));
            let wire = Wire::start(device, Framing::Len16, to, from, mangling);
            (slirp, Some(wire))
        }
        Link::Slip => {
            let (ours, theirs) = UnixStream::pair().unwrap();
            cmd.args(["--target-type=stdio", "--framing=slip"]);
            let opts = StartOptions {
                fds: vec![(0, theirs.as_raw_fd()), (1, theirs.as_raw_fd())],
                ..Default::default()
            };
            let mut slirp = Slirp::spawn(cmd, opts);
            drop(theirs);
            slirp.expect_ready();
            let device = guest_device(&guest, true);
            let reader = Box::new(ours.try_clone().unwrap());
            let wire = Wire::start(device, Framing::Slip, Box::new(ours), reader, mangling);
            (slirp, Some(wire))
        }
    };
    let device = if link == Link::Tap { "tap0" } else { "wire0" };
    let behind = lossy_router(&guest, device, probability);
    Lossy {
        net: Net::from_parts(hs, behind, slirp),
        api,
        _router: guest,
        _wire: wire,
        _dir: dir,
    }
}

fn counters(api: &Path) -> serde_json::Value {
    let reply = request(api, r#"{"execute":"get_info"}"#);
    let info: serde_json::Value = serde_json::from_str(&reply).expect("JSON reply");
    info["return"]["counters"].clone()
}

/// 64 MiB down then 64 MiB up, byte for byte, with nothing dropped by slirp-ns.
fn both_ways_intact(link: Link, probability: &str) {
    let lossy = start(link, probability);
    let started = Instant::now();
    lossy
        .net
        .transfer_both_ways("192.0.2.1:0", 64 << 20, 64 << 20);
    let c = counters(&lossy.api);
    eprintln!(
        "{link:?}, {probability} loss: 128 MiB in {:.1} s; retransmitted {} bytes, {} timeouts, \
         {} recoveries, {} segments held",
        started.elapsed().as_secs_f64(),
        c["tcp_bytes_retransmitted"],
        c["tcp_timeouts"],
        c["tcp_loss_recoveries"],
        c["tcp_segments_held"],
    );
    assert_eq!(
        c["dropped_tx_queue_full"], 0,
        "slirp-ns dropped frames: {c}"
    );
    assert!(
        c["tcp_segments_held"].as_u64().unwrap() > 0,
        "the guest's segments beyond a loss were held: {c}"
    );
}

#[test]
fn tap_with_3_percent_loss() {
    both_ways_intact(Link::Tap, "0.03");
}

#[test]
fn tap_with_10_percent_loss() {
    both_ways_intact(Link::Tap, "0.10");
}

#[test]
fn bess_with_a_slow_reader_and_3_percent_loss() {
    both_ways_intact(Link::Bess, "0.03");
}

#[test]
fn bess_with_a_slow_reader_and_10_percent_loss() {
    both_ways_intact(Link::Bess, "0.10");
}

#[test]
fn stdio_len16_with_a_slow_reader_and_3_percent_loss() {
    both_ways_intact(Link::Len16, "0.03");
}

#[test]
fn stdio_len16_with_a_slow_reader_and_10_percent_loss() {
    both_ways_intact(Link::Len16, "0.10");
}

#[test]
fn stdio_slip_with_a_slow_reader_and_3_percent_loss() {
    both_ways_intact(Link::Slip, "0.03");
}

#[test]
fn stdio_slip_with_a_slow_reader_and_10_percent_loss() {
    both_ways_intact(Link::Slip, "0.10");
}
