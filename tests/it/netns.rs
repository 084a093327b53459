//! slirp-ns against real namespaces: set-up, configuration, life cycle.

use crate::common;

use common::*;
use nix::sys::signal::Signal;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

fn tap_info(guest: &Guest, dev: &str) -> serde_json::Value {
    let links = guest.ip_json(&["addr", "show", "dev", dev]);
    links[0].clone()
}

fn inet_addr(link: &serde_json::Value) -> (String, u64) {
    let info = link["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .find(|a| a["family"] == "inet")
        .unwrap_or_else(|| panic!("no IPv4 address on {link}"));
    (
        info["local"].as_str().unwrap().to_string(),
        info["prefixlen"].as_u64().unwrap(),
    )
}

fn default_gateway(guest: &Guest) -> String {
    let routes = guest.ip_json(&["-4", "route", "show", "default"]);
    routes[0]["gateway"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn configure_sets_address_mtu_route_and_gateway_answers() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let mut slirp = Slirp::start(&hs, &["-c", "-m", "9000", &guest.pid.to_string(), "tap0"]);

    let tap = tap_info(&guest, "tap0");
    assert_eq!(inet_addr(&tap), ("10.0.2.100".to_string(), 24));
    assert_eq!(tap["mtu"], 9000);
    assert_eq!(
        tap["txqlen"], 5000,
        "a transmit queue for the guest's bursts"
    );
    assert!(tap["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    let lo = tap_info(&guest, "lo");
    assert!(lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert_eq!(default_gateway(&guest), "10.0.2.2");

    assert!(guest.ping("10.0.2.2"), "gateway answers ping");
    assert!(guest.ping("10.0.2.3"), "DNS address answers ping");
    assert!(
        !guest.ping("10.0.2.9"),
        "nobody else is on the virtual network"
    );
    assert!(slirp.stdout().contains("Starting slirp-ns"));
    assert!(slirp.stop().success());
}

#[test]
fn cidr_moves_the_network() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let pid = guest.pid.to_string();
    let mut slirp = Slirp::start(&hs, &["-c", &pid, "--cidr", "10.0.135.128/25", "tap0"]);
    let tap = tap_info(&guest, "tap0");
    assert_eq!(inet_addr(&tap), ("10.0.135.228".to_string(), 25));
    assert_eq!(tap["mtu"], 1500, "default MTU");
    assert_eq!(default_gateway(&guest), "10.0.135.130");
    assert!(guest.ping("10.0.135.130"));
    assert!(guest.ping("10.0.135.131"));
    assert!(!guest.ping("10.0.2.2"), "the default network is gone");
    slirp.stop();
}

#[test]
fn macaddress_sets_the_tap_mac() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let pid = guest.pid.to_string();
    let mut slirp = Slirp::start(
        &hs,
        &["-c", "--macaddress", "02:5a:00:00:12:34", &pid, "tap0"],
    );
    assert_eq!(tap_info(&guest, "tap0")["address"], "02:5a:00:00:12:34");
    assert!(guest.ping("10.0.2.2"));
    slirp.stop();
}

#[test]
fn ready_fd_gets_exactly_one_byte_then_closes() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let mut cmd = hs.command(BIN);
    cmd.args(["-c", "--ready-fd=3", &guest.pid.to_string(), "tap0"]);
    let mut slirp = Slirp::spawn(cmd, StartOptions::default());
    // read_ready reads until the writer closes: "1" and nothing more means written and closed.
    assert_eq!(slirp.read_ready(Duration::from_secs(10)), b"1");
    // Once ready, the network is usable at once.
    assert!(guest.ping("10.0.2.2"));
    slirp.stop();
}

#[test]
fn exit_fd_hangup_ends_the_process() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let (exit_r, exit_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut cmd = hs.command(BIN);
    cmd.args(["-r", "3", "-e", "4", "-c", &guest.pid.to_string(), "tap0"]);
    let mut slirp = Slirp::spawn(
        cmd,
        StartOptions {
            fds: vec![(4, exit_r.as_raw_fd())],
            ..Default::default()
        },
    );
    slirp.expect_ready();
    drop(exit_r);
    assert!(slirp.is_running());
    assert!(guest.ping("10.0.2.2"));
    drop(exit_w);
    let status = slirp
        .wait_exit(Duration::from_secs(5))
        .expect("slirp-ns exits once exit-fd hangs up");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn sigterm_exits_and_removes_the_api_socket() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let dir = tempfile::tempdir().unwrap();
    let sock = socket_path(dir.path());
    let sock_arg = sock.to_str().unwrap();
    let mut slirp = Slirp::start(&hs, &["-c", "-a", sock_arg, &guest.pid.to_string(), "tap0"]);
    let meta = std::fs::metadata(&sock).expect("API socket exists once ready");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(slirp.stop().success());
    assert!(!sock.exists(), "API socket removed on SIGTERM");
    // The namespace helper (kept for the splice path) went with it.
    assert!(
        processes_with_arg(sock_arg).is_empty(),
        "no process left behind"
    );
}

#[test]
fn sigint_exits_too() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let mut slirp = Slirp::start(&hs, &["-c", &guest.pid.to_string(), "tap0"]);
    slirp.signal(Signal::SIGINT);
    let status = slirp
        .wait_exit(Duration::from_secs(5))
        .expect("exits on SIGINT");
    assert!(status.success());
}

#[test]
fn attaches_to_a_persistent_tap_made_beforehand() {
    let hs = HostSim::new();
    let guest = hs.guest();
    // As rootlesskit does: the TAP exists and is configured before slirp-ns starts (no -c).
    guest.ip("tuntap add dev tap0 mode tap");
    guest.ip("addr add 10.0.2.100/24 dev tap0");
    guest.ip("link set tap0 up");
    let mut slirp = Slirp::start(&hs, &[&guest.pid.to_string(), "tap0"]);
    assert!(guest.ping("10.0.2.2"));
    slirp.stop();
    // The device outlives slirp-ns, and a second run attaches again.
    assert_eq!(tap_info(&guest, "tap0")["ifname"], "tap0");
    let mut again = Slirp::start(&hs, &[&guest.pid.to_string(), "tap0"]);
    assert!(guest.ping("10.0.2.2"));
    again.stop();
}

#[test]
fn netns_type_path_with_userns_path() {
    let hs = HostSim::new();
    let guest = hs.guest_in_userns();
    let userns = format!("--userns-path={}", guest.userns_path());
    let netns = guest.netns_path();
    let mut slirp = Slirp::start(&hs, &["-c", &userns, "--netns-type=path", &netns, "tap0"]);
    assert_eq!(inet_addr(&tap_info(&guest, "tap0")).0, "10.0.2.100");
    assert!(guest.ping("10.0.2.2"));
    slirp.stop();
}

#[test]
fn netns_type_path_to_a_named_namespace() {
    let hs = HostSim::new();
    let name = unique_name("slirpns-g");
    let ok = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap();
    assert!(ok.success());
    let path = format!("/run/netns/{name}");
    let mut slirp = Slirp::start(&hs, &["-c", "--netns-type=path", &path, "tap0"]);
    let ping = Command::new("ip")
        .args([
            "netns", "exec", &name, "ping", "-c", "1", "-W", "2", "10.0.2.2",
        ])
        .status()
        .unwrap();
    slirp.stop();
    let _ = Command::new("ip").args(["netns", "del", &name]).status();
    assert!(ping.success());
}

#[test]
fn runs_rootless_as_an_unprivileged_user() {
    const UID: u32 = 40123;
    let hs = HostSim::new();
    let guest = hs.unprivileged_guest(UID);
    let devdir = tempfile::tempdir().unwrap();
    let uid = UID.to_string();
    let cmd = hs.rootless_command(
        UID,
        devdir.path(),
        &format!("{BIN} -r 3 -c {} tap0", guest.pid),
    );
    let mut slirp = Slirp::spawn(cmd, StartOptions::default());
    slirp.expect_ready();
    let uids = status_field(slirp.pid(), "Uid");
    assert!(uids.contains(&uid), "slirp-ns runs as {UID}: {uids}");
    assert_eq!(
        status_field(slirp.pid(), "CapEff"),
        "0000000000000000",
        "no capabilities"
    );
    assert_eq!(inet_addr(&tap_info(&guest, "tap0")).0, "10.0.2.100");
    assert!(guest.ping("10.0.2.2"));
    assert!(slirp.stop().success());
}

#[test]
fn tap_deleted_under_it_ends_the_process() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let mut slirp = Slirp::start(&hs, &["-c", &guest.pid.to_string(), "tap0"]);
    assert!(guest.run("ip", &["link", "del", "tap0"]).status.success());
    let status = slirp
        .wait_exit(Duration::from_secs(5))
        .expect("slirp-ns notices the TAP is gone");
    assert!(status.success());
    assert!(slirp.stderr().contains("TAP device is gone"));
}

/// The helper opens the TAP, then fails to configure it (the kernel takes no MTU below 68;
/// slirp4netns's command line accepts one): slirp-ns says what failed, in the helper's words,
/// sends no ready byte and exits 1.
#[test]
fn a_failed_configure_is_reported_in_the_helpers_words() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let mut cmd = hs.command(BIN);
    cmd.args(["-r", "3", "-c", "--mtu=1", &guest.pid.to_string(), "tap0"]);
    let mut slirp = Slirp::spawn(cmd, StartOptions::default());
    assert_eq!(slirp.read_ready(Duration::from_secs(10)), b"");
    let status = slirp.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(1), "stderr: {}", slirp.stderr());
    assert!(
        slirp.stderr().contains("cannot set MTU 1"),
        "stderr: {}",
        slirp.stderr()
    );
}

/// The target process dies, then the helper too (the TAP descriptor still holds the namespace):
/// slirp-ns notices each once, spins on nothing, and SIGTERM ends it.
#[test]
fn a_dead_target_and_helper_cost_no_cpu_and_sigterm_still_ends_it() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let mut slirp = Slirp::start(&hs, &["-c", &guest.pid.to_string(), "tap0"]);
    let kill = |pid: u32| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap()
    };
    let helper = helper_of(slirp.pid());
    kill(guest.pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_idle(slirp.pid(), "after the target died");
    kill(helper);
    std::thread::sleep(Duration::from_millis(300));
    assert_idle(slirp.pid(), "after the helper died too");
    assert!(
        slirp.stop().success(),
        "SIGTERM ends it: {}",
        slirp.stderr()
    );
}

#[test]
fn exec_mode_runs_the_command_with_networking() {
    let hs = HostSim::new();
    let out = hs
        .command(BIN)
        .args(["-m", "9000", "--", "sh", "-c"])
        .arg(
            "ip -br addr show tap0 && ip link show tap0 | grep -q 'mtu 9000' && \
             ping -c 1 -W 2 10.0.2.2 >/dev/null && exit 7",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "the command's status comes back; stdout {stdout} stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("10.0.2.100/24"), "{stdout}");
    assert!(
        !stdout.contains("Starting slirp-ns"),
        "no banner in exec mode"
    );
}

#[test]
fn exec_mode_reports_a_missing_command_as_127() {
    let hs = HostSim::new();
    let out = hs
        .command(BIN)
        .args(["--", "/nonexistent/command"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run /nonexistent/command"));
}

#[test]
fn exec_mode_passes_a_signal_death_on_as_128_plus_n() {
    let hs = HostSim::new();
    let out = hs
        .command(BIN)
        .args(["--", "sh", "-c", "kill -KILL $$"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + 9));
}

#[test]
fn exec_mode_command_starts_with_default_signal_dispositions() {
    let hs = HostSim::new();
    let out = hs
        .command(BIN)
        .args(["--", "grep", "SigIgn", "/proc/self/status"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mask = u64::from_str_radix(stdout.trim().trim_start_matches("SigIgn:").trim(), 16)
        .unwrap_or_else(|_| panic!("SigIgn mask in {stdout:?}"));
    let sigpipe_bit = 1u64 << (libc::SIGPIPE - 1);
    assert_eq!(mask & sigpipe_bit, 0, "SIGPIPE is not ignored: {stdout}");
}

#[test]
fn exec_mode_works_rootless() {
    const UID: u32 = 40124;
    let hs = HostSim::new();
    let devdir = tempfile::tempdir().unwrap();
    let command_line = format!(
        "{BIN} -- sh -c 'id -u; ip -br addr show tap0; ping -c 1 -W 2 10.0.2.2 >/dev/null'"
    );
    let out = hs
        .rootless_command(UID, devdir.path(), &command_line)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout {stdout} stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("0"),
        "the caller is root in its namespace"
    );
    assert!(
        lines.next().unwrap_or_default().contains("10.0.2.100/24"),
        "{stdout}"
    );
}

/// Opens a new TAP device `name` inside the guest's namespace, from a thread of our own.
fn open_tap_in_guest(guest: &Guest, name: &str) -> std::os::fd::OwnedFd {
    let netns = guest.netns_path();
    let name = name.to_string();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns).unwrap();
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let tun = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .unwrap();
        // SAFETY: ifreq is plain data; zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = *src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads a struct ifreq from a valid pointer.
        let rc = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &ifr) };
        assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        std::os::fd::OwnedFd::from(tun)
    })
    .join()
    .unwrap()
}

#[test]
fn netns_type_tapfd_uses_the_inherited_descriptor() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let tap = open_tap_in_guest(&guest, "tapx");
    guest.ip("addr add 10.0.2.100/24 dev tapx");
    guest.ip("link set tapx up");
    let mut cmd = hs.command(BIN);
    cmd.args(["-r", "3", "--netns-type=tapfd", "5"]);
    let mut slirp = Slirp::spawn(
        cmd,
        StartOptions {
            fds: vec![(5, tap.as_raw_fd())],
            ..Default::default()
        },
    );
    slirp.expect_ready();
    drop(tap);
    assert!(guest.ping("10.0.2.2"));
    slirp.stop();
}

#[test]
fn refuses_its_own_network_namespace() {
    // Run inside host-sim, so that if the refusal ever broke, only host-sim would be touched.
    let hs = HostSim::new();
    let own = hs.netns_path();
    let out = hs
        .command(BIN)
        .args(["-c", "--netns-type=path", &own, "tap0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("own network namespace"), "{stderr}");
    let links = hs.command("ip").args(["-br", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("tap0"));
}
