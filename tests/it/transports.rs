//! The transports beyond a TAP in a namespace (--target-type stdio, qemu, bess): a real kernel's
//! traffic, from a device in a guest namespace carried by the tests' own adapter
//! (common::wire), must cross each one byte for byte — TCP both ways and DNS over UDP and TCP —
//! whatever noise and splits the stream holds.

use crate::common;

use common::wire::{self, connect_seqpacket, guest_device, Framing, Mangling, Wire};
use common::*;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// slirp-ns in host-sim with `args`, an API socket, and DNS relayed to host-sim's server.
fn slirp_args<'a>(args: &[&'a str], api: &'a Path) -> Vec<&'a str> {
    let mut all = vec!["-a", api.to_str().unwrap(), "--dns-server", "192.0.2.1"];
    all.extend_from_slice(args);
    all
}

fn get_info(api: &Path) -> serde_json::Value {
    let reply = request(api, r#"{"execute":"get_info"}"#);
    let info: serde_json::Value = serde_json::from_str(&reply).expect("JSON reply");
    info["return"].clone()
}

/// A TCP transfer both ways and DNS over UDP and TCP, from the guest through the transport.
fn check_traffic(net: &Net, down: usize, up: usize) {
    net.transfer_both_ways("192.0.2.1:0", down, up);
    dns::check_both_ways(net, "10.0.2.3:53", dns::A, &dns::ANSWER_A);
}

/// Checks the noise the adapter sent was dropped and counted, not passed on or fatal.
fn check_noise_counted(api: &Path, wire: &Wire) {
    let sent = wire.noise_sent.load(std::sync::atomic::Ordering::Relaxed) as u64;
    assert!(sent >= 10, "the adapter sent noise ({sent} pieces)");
    let info = get_info(api);
    let malformed = info["counters"]["dropped_malformed"].as_u64().unwrap();
    assert!(
        malformed >= sent,
        "every piece of noise is counted: {malformed} malformed drops for {sent} pieces"
    );
}

/// stdio with 2-byte lengths, over two pipes as `ssh host slirp-ns --target-type=stdio` gives
/// vde_plug; then stdin closing ends slirp-ns cleanly.
#[test]
fn stdio_len16_carries_tcp_and_dns_through_noise_and_split_writes() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let device = guest_device(&guest, false);
    let (stdin_r, stdin_w) = wire::pipe();
    let (stdout_r, stdout_w) = wire::pipe();
    let dir = tempfile::tempdir().unwrap();
    let api = socket_path(dir.path());
    let mut cmd = hs.command(BIN);
    cmd.args(["-r", "3"])
        .args(slirp_args(&["--target-type=stdio"], &api));
    let opts = StartOptions {
        fds: vec![(0, stdin_r.as_raw_fd()), (1, stdout_w.as_raw_fd())],
        ..Default::default()
    };
    let mut slirp = Slirp::spawn(cmd, opts);
    drop((stdin_r, stdout_w));
    slirp.expect_ready();
    let mangling = Mangling {
        noise_every: 7,
        split: true,
        ..Default::default()
    };
    let mut wire = Wire::start(
        device,
        Framing::Len16,
        Box::new(stdin_w),
        Box::new(stdout_r),
        mangling,
    );
    let net = Net::from_parts(hs, guest, slirp);
    dns::serve(&net.hs.netns_path(), "192.0.2.1:53");
    check_traffic(&net, 4 << 20, 1 << 20);
    check_noise_counted(&api, &wire);
    assert!(
        net.slirp.stderr().contains("Starting slirp-ns"),
        "the banner goes to stderr, off the stream"
    );

    wire.close();
    let mut slirp = net.slirp;
    let status = slirp
        .wait_exit(Duration::from_secs(5))
        .expect("slirp-ns exits when stdin closes");
    assert!(status.success(), "exit status {status:?}");
    assert!(!api.exists(), "the API socket is removed");
}

/// SLIP on one socket that is both stdin and stdout, as User Mode Linux's slirp transport runs
/// slirp-ns: IP packets, no Ethernet, no ARP. Sandboxed and filtered, as a careful user runs it.
#[test]
fn stdio_slip_carries_tcp_and_dns_through_bad_escapes_and_split_writes() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let device = guest_device(&guest, true);
    let (ours, theirs) = UnixStream::pair().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let api = socket_path(dir.path());
    let mut cmd = hs.command(BIN);
    cmd.args(["-r", "3"])
        .args(slirp_args(&["--target-type=stdio", "--framing=slip"], &api));
    let opts = StartOptions {
        fds: vec![(0, theirs.as_raw_fd()), (1, theirs.as_raw_fd())],
        ..Default::default()
    };
    let mut slirp = Slirp::spawn(cmd, opts);
    drop(theirs);
    slirp.expect_ready();
    let mangling = Mangling {
        noise_every: 5,
        split: true,
        ..Default::default()
    };
    let reader = ours.try_clone().unwrap();
    let wire = Wire::start(
        device,
        Framing::Slip,
        Box::new(ours),
        Box::new(reader),
        mangling,
    );
    let net = Net::from_parts(hs, guest, slirp);
    dns::serve(&net.hs.netns_path(), "192.0.2.1:53");
    check_traffic(&net, 4 << 20, 1 << 20);
    assert!(net.guest.ping("10.0.2.2"), "ICMP echo over SLIP");
    check_noise_counted(&api, &wire);
}

/// QEMU's `-netdev stream` (4-byte lengths on a unix stream socket): traffic, then the guest
/// goes away and comes back; a second guest at the same time is turned away. Accepting works
/// under the sandbox and the seccomp filter, and the socket is still removed at exit.
#[test]
fn qemu_stream_socket_carries_traffic_and_takes_the_guest_back_after_a_reconnect() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let dir = tempfile::tempdir().unwrap();
    let api = socket_path(dir.path());
    let qemu_sock = dir.path().join("qemu.sock");
    let mut cmd = hs.command(BIN);
    cmd.args(["-r", "3"]).args(slirp_args(
        &[
            "--target-type=qemu",
            qemu_sock.to_str().unwrap(),
            "--enable-sandbox",
            "--enable-seccomp",
        ],
        &api,
    ));
    let mut slirp = Slirp::spawn(cmd, StartOptions::default());
    slirp.expect_ready();
    let device = guest_device(&guest, false);
    let device_again = device.try_clone().unwrap();
    let conn = UnixStream::connect(&qemu_sock).expect("connect like QEMU");
    let mut wire = Wire::start(
        device,
        Framing::Len32,
        Box::new(conn.try_clone().unwrap()),
        Box::new(conn.try_clone().unwrap()),
        Mangling::default(),
    );
    let net = Net::from_parts(hs, guest, slirp);
    dns::serve(&net.hs.netns_path(), "192.0.2.1:53");
    check_traffic(&net, 2 << 20, 1 << 20);

    // A second guest while the first is connected: closed at once.
    let mut second = UnixStream::connect(&qemu_sock).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        std::io::Read::read(&mut second, &mut byte).ok(),
        Some(0),
        "a second guest is refused"
    );

    // The guest disconnects (QEMU stopped) and connects again.
    wire.close();
    conn.shutdown(std::net::Shutdown::Both).unwrap();
    drop(conn);
    std::thread::sleep(Duration::from_millis(200));
    let conn = UnixStream::connect(&qemu_sock).expect("reconnect");
    let _wire = Wire::start(
        device_again,
        Framing::Len32,
        Box::new(conn.try_clone().unwrap()),
        Box::new(conn),
        Mangling::default(),
    );
    check_traffic(&net, 1 << 20, 1 << 20);
    let mut slirp = net.slirp;
    assert!(
        slirp.is_running(),
        "the guest's leaving did not end slirp-ns"
    );
    assert!(slirp.stop().success());
    assert!(!qemu_sock.exists(), "the socket is removed at exit");
}

/// bess (slirp4netns's --target-type=bess): slirp-ns waits for the guest on a SOCK_SEQPACKET
/// socket, carries a frame per message, and ends when the guest closes it.
#[test]
fn bess_seqpacket_socket_carries_traffic_through_junk_messages() {
    let hs = HostSim::new();
    let guest = hs.guest();
    let dir = tempfile::tempdir().unwrap();
    let api = socket_path(dir.path());
    let bess_sock = dir.path().join("bess.sock");
    let mut cmd = hs.command(BIN);
    cmd.args(["-r", "3"]).args(slirp_args(
        &["--target-type=bess", bess_sock.to_str().unwrap()],
        &api,
    ));
    let mut slirp = Slirp::spawn(cmd, StartOptions::default());
    wait_until(Duration::from_secs(10), "the bess socket", || {
        bess_sock.exists()
    });
    assert!(
        slirp.read_ready(Duration::from_millis(300)).is_empty(),
        "not ready before the guest connects"
    );
    let conn = std::fs::File::from(connect_seqpacket(&bess_sock).expect("connect to bess"));
    slirp.expect_ready();
    assert!(slirp.stderr().contains("Waiting for connection to"));
    let device = guest_device(&guest, false);
    let mangling = Mangling {
        noise_every: 9,
        split: false,
        ..Default::default()
    };
    let mut wire = Wire::start(
        device,
        Framing::Messages,
        Box::new(conn.try_clone().unwrap()),
        Box::new(conn.try_clone().unwrap()),
        mangling,
    );
    let net = Net::from_parts(hs, guest, slirp);
    dns::serve(&net.hs.netns_path(), "192.0.2.1:53");
    check_traffic(&net, 2 << 20, 1 << 20);
    check_noise_counted(&api, &wire);

    wire.close();
    nix::sys::socket::shutdown(conn.as_raw_fd(), nix::sys::socket::Shutdown::Both).unwrap();
    let mut slirp = net.slirp;
    let status = slirp
        .wait_exit(Duration::from_secs(5))
        .expect("slirp-ns exits when the guest closes the socket");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn transport_options_conflicting_with_a_namespace_are_refused() {
    for (args, message) in [
        (
            &["--target-type=stdio", "-c"][..],
            "--configure conflicts with --target-type=stdio",
        ),
        (
            &["--target-type=bess", "--netns-type=path", "/x"],
            "--netns-type conflicts with --target-type=bess",
        ),
        (
            &["--target-type=qemu"],
            "--target-type=qemu needs a socket PATH",
        ),
        (
            &["--framing=slip", "1", "tap0"],
            "--framing needs --target-type=stdio",
        ),
        (
            &["--target-type=stdio", "1234"],
            "--target-type=stdio takes no PID, PATH or TAPNAME",
        ),
        (&["--target-type=stdio", "--framing=cobs"], "--framing"),
    ] {
        let out = std::process::Command::new(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
