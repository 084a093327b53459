//! --enable-sandbox and --enable-seccomp: what slirp-ns gives up once started, and that the
//! network keeps working without it.

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// CAP_NET_BIND_SERVICE alone, as /proc/PID/status shows a capability set.
const NET_BIND_SERVICE_ONLY: &str = "0000000000000400";

/// The mount points slirp-ns sees, with their options.
fn mounts(pid: u32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (fields[4].to_string(), fields[5].to_string())
        })
        .collect()
}

/// The root is an empty read-only tmpfs, and all that shows through it, read-only too, is
/// /etc and /run (and what is mounted below them).
fn assert_sandboxed_mounts(pid: u32) {
    let mounts = mounts(pid);
    assert_eq!(mounts[0].0, "/", "{mounts:?}");
    for (point, options) in &mounts {
        assert!(
            point == "/" || point.starts_with("/etc") || point.starts_with("/run"),
            "only /etc and /run are visible: {point}"
        );
        assert!(
            options.split(',').any(|o| o == "ro"),
            "{point} is read-only: {options}"
        );
    }
    let root: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/root"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut root = root;
    root.sort();
    assert_eq!(root, ["etc", "run"]);
}

fn assert_locked_down(pid: u32) {
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "CapEff"), NET_BIND_SERVICE_ONLY);
    assert_eq!(status_field(pid, "CapPrm"), NET_BIND_SERVICE_ONLY);
    assert_eq!(status_field(pid, "CapBnd"), NET_BIND_SERVICE_ONLY);
    assert_eq!(status_field(pid, "CapInh"), "0000000000000000");
    assert_eq!(status_field(pid, "CapAmb"), "0000000000000000");
}

#[test]
fn sandbox_and_seccomp_lock_down_while_everything_keeps_working() {
    let hs = HostSim::new();
    hs.allow_ping_sockets();
    let conf = hs.resolv_conf("nameserver 127.0.0.53\n");
    let guest = hs.guest();
    let dir = tempfile::tempdir().unwrap();
    let sock = socket_path(dir.path());
    let mut cmd = hs.command(BIN);
    cmd.args([
        "-r",
        "3",
        "-c",
        "-6",
        "--enable-sandbox",
        "--enable-seccomp",
        "-a",
    ])
    .arg(&sock)
    .args([&guest.pid.to_string(), "tap0"]);
    let mut slirp = Slirp::spawn(
        cmd,
        StartOptions {
            env: vec![("SLIRP_NS_SECCOMP_SELFTEST".into(), "1".into())],
            ..StartOptions::default()
        },
    );
    slirp.expect_ready();
    let net = Net::from_parts(hs, guest, slirp);
    let pid = net.slirp.pid();

    assert_locked_down(pid);
    assert_eq!(status_field(pid, "Seccomp"), "2", "a seccomp filter is on");
    assert_sandboxed_mounts(pid);
    let helper = helper_of(pid);
    assert_eq!(status_field(helper, "NoNewPrivs"), "1");
    assert_eq!(status_field(helper, "CapEff"), "0000000000000000");
    assert_eq!(status_field(helper, "Seccomp"), "2");
    wait_until(TIMEOUT, "the seccomp self-test", || {
        net.slirp
            .stderr()
            .contains("seccomp self-test: packet socket")
    });
    for refused in ["execve", "packet socket"] {
        assert!(
            net.slirp.stderr().contains(&format!(
                "seccomp self-test: {refused} refused: Operation not permitted"
            )),
            "{}",
            net.slirp.stderr()
        );
    }

    // With that refused, the network works: TCP both ways, ping, DNS through the resolver of
    // /etc/resolv.conf, re-read after it changes.
    net.transfer_both_ways("198.51.100.1:0", 4 << 20, 1 << 20);
    assert!(net.guest.ping("192.0.2.1"));
    dns::serve(&net.hs.netns_path(), "127.0.0.53:53");
    dns::check_both_ways(&net, "10.0.2.3:53", dns::A, &dns::ANSWER_A);
    conf.rewrite("nameserver 192.0.2.1\n");
    dns::serve(&net.hs.netns_path(), "192.0.2.1:53");
    std::thread::sleep(Duration::from_millis(1500));
    dns::check_both_ways(&net, "10.0.2.3:53", dns::A, &dns::ANSWER_A);

    // A forward added through the API now: reached through the TAP and spliced (the helper).
    let port = in_netns(&net.hs.netns_path(), || {
        let l = TcpListener::bind("0.0.0.0:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let reply = request(
        &sock,
        &format!(
            r#"{{"execute":"add_hostfwd","arguments":{{"proto":"tcp","host_addr":"0.0.0.0","host_port":{port},"guest_port":8080}}}}"#
        ),
    );
    assert_eq!(reply, r#"{"return":{"id":1}}"#);
    let listener = in_netns(&net.guest.netns_path(), || {
        TcpListener::bind("0.0.0.0:8080").unwrap()
    });
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"from the guest").unwrap();
        }
    });
    for client in ["192.0.2.1", "127.0.0.1"] {
        let addr = format!("{client}:{port}");
        let mut conn = in_netns(&net.hs.netns_path(), move || {
            TcpStream::connect(addr).unwrap()
        });
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        assert_eq!(got, "from the guest", "through the forward from {client}");
    }
    server.join().unwrap();

    // The API socket is removed at exit, though the sandbox no longer sees its path.
    let mut net = net;
    assert!(net.slirp.stop().success());
    assert!(!sock.exists(), "API socket removed");
}

#[test]
fn sandbox_works_with_userns_path_and_netns_type_path() {
    let hs = HostSim::new();
    let guest = hs.guest_in_userns();
    let userns = format!("--userns-path={}", guest.userns_path());
    let netns = guest.netns_path();
    let mut slirp = Slirp::start(
        &hs,
        &[
            "-c",
            "--enable-sandbox",
            "--enable-seccomp",
            &userns,
            "--netns-type=path",
            &netns,
            "tap0",
        ],
    );
    assert_locked_down(slirp.pid());
    assert_sandboxed_mounts(slirp.pid());
    assert!(guest.ping("10.0.2.2"));
    assert!(slirp.stop().success());
}

#[test]
fn sandbox_of_an_unprivileged_user_makes_its_own_user_namespace() {
    const UID: u32 = 40124;
    let hs = HostSim::new();
    let guest = hs.unprivileged_guest(UID);
    let devdir = tempfile::tempdir().unwrap();
    let cmd = hs.rootless_command(
        UID,
        devdir.path(),
        &format!(
            "{BIN} -r 3 -c --enable-sandbox --enable-seccomp {} tap0",
            guest.pid
        ),
    );
    let mut slirp = Slirp::spawn(cmd, StartOptions::default());
    slirp.expect_ready();
    let pid = slirp.pid();
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "Seccomp"), "2");
    assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
    assert_eq!(status_field(pid, "CapBnd"), "0000000000000000");
    assert_sandboxed_mounts(pid);
    assert!(guest.ping("10.0.2.2"));
    assert!(slirp.stop().success());
}

#[test]
fn sandbox_falls_back_to_chroot_where_pivot_root_is_refused() {
    // slirp-ns started inside a chroot (whose root is no mount point): the kernel refuses
    // pivot_root there. The jail is built in a private mount namespace of its own.
    let hs = HostSim::new();
    let guest = hs.guest();
    let jail = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let script = format!(
        r#"set -e
mount --make-rprivate /
J={jail}
for d in usr etc run proc sys dev tmp; do mkdir -p $J/$d; mount --rbind /$d $J/$d; done
for l in bin sbin lib lib64; do
    if [ -L /$l ]; then ln -s "$(readlink /$l)" $J/$l
    elif [ -d /$l ]; then mkdir -p $J/$l; mount --rbind /$l $J/$l; fi
done
mkdir -p $J{bin_dir}
mount --bind {bin_dir} $J{bin_dir}
exec chroot $J {BIN} -r 3 -c --enable-sandbox --enable-seccomp {pid} tap0"#,
        jail = jail.path().display(),
        bin_dir = bin_dir.display(),
        pid = guest.pid,
    );
    // In host-sim first (`ip netns exec` needs a real root), then into the jail.
    let mut cmd = hs.command("unshare");
    cmd.args(["--mount", "--", "sh", "-c", &script]);
    let mut slirp = Slirp::spawn(cmd, StartOptions::default());
    slirp.expect_ready();
    let warnings: Vec<String> = slirp
        .stderr()
        .lines()
        .filter(|l| l.starts_with("WARNING"))
        .map(str::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("pivot_root refused") && warnings[0].contains("chroot"),
        "{warnings:?}"
    );
    assert_locked_down(slirp.pid());
    assert!(guest.ping("10.0.2.2"));
    assert!(slirp.stop().success());
}

#[test]
fn sandbox_unmounts_nothing_in_the_mount_namespace_it_was_started_from() {
    // Shared mounts propagate unmounts to their peers: the sandbox must cut that link before
    // it detaches the old root, or a mount below a shared one vanishes for everyone.
    let hs = HostSim::new();
    let guest = hs.guest();
    let shared = tempfile::tempdir().unwrap();
    let keeper_pid_file = shared.path().with_extension("keeper");
    let script = format!(
        r#"set -e
mount --make-rprivate /
S={shared}
mount -t tmpfs outer $S
mkdir $S/inner
mount -t tmpfs inner $S/inner
mount --make-rshared $S
sleep 600 & echo $! > {keeper}
exec {BIN} -r 3 -c --enable-sandbox {pid} tap0"#,
        shared = shared.path().display(),
        keeper = keeper_pid_file.display(),
        pid = guest.pid,
    );
    let mut cmd = hs.command("unshare");
    cmd.args(["--mount", "--", "sh", "-c", &script]);
    let mut slirp = Slirp::spawn(cmd, StartOptions::default());
    slirp.expect_ready();
    let keeper: u32 = std::fs::read_to_string(&keeper_pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let inner = shared.path().join("inner").display().to_string();
    let still_mounted = mounts(keeper).iter().any(|(point, _)| *point == inner);
    let _ = std::process::Command::new("kill")
        .arg(keeper.to_string())
        .status();
    let _ = std::fs::remove_file(&keeper_pid_file);
    assert!(
        still_mounted,
        "{inner} is still mounted where slirp-ns started"
    );
    assert_sandboxed_mounts(slirp.pid());
    assert!(guest.ping("10.0.2.2"));
    assert!(slirp.stop().success());
}
