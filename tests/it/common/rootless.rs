//! An unprivileged user's session inside host-sim, for the real clients (rootless podman,
//! rootlesskit): commands run as TEST_USER with host-sim's network, a 0666 /dev/net/tun of
//! their own (in a private mount namespace) and a runtime directory of this test's own, so
//! that tests running at once do not share podman's pause process.
//!
//! The machine needs podman, rootlesskit, runc, uidmap and busybox-static, and TEST_USER with
//! subordinate IDs: `.ci/setup` installs them and makes that user.

use super::*;
use std::io::Write;
use std::net::{Shutdown, TcpListener};

/// The user the client tests run as (made by .ci/setup).
pub const TEST_USER: &str = "slirpns-test";

/// What a test's HTTP server answers, and what busybox httpd serves in the image.
pub const PAGE: &str = "hello from slirp-ns";

pub struct Rootless {
    pub hs: HostSim,
    pub uid: u32,
    /// Owned by TEST_USER: podman's storage and configuration.
    pub dir: tempfile::TempDir,
    /// XDG_RUNTIME_DIR, owned by TEST_USER; short, like /run/user/UID: podman puts the API
    /// socket of slirp4netns in it under a 93-byte name, and a socket path must fit in 108.
    pub run: tempfile::TempDir,
    devdir: tempfile::TempDir,
}

fn user_id(user: &str) -> Option<u32> {
    let out = Command::new("id").args(["-u", user]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Fails the test, saying what is missing, unless the machine can run the client tests.
pub fn require_clients(tools: &[&str]) -> u32 {
    require_namespace_support();
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| !super::on_path(tool))
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}: run .ci/setup (apt-get install podman rootlesskit runc uidmap busybox-static)"
    );
    let uid = user_id(TEST_USER);
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    assert!(
        uid.is_some()
            && subuid
                .lines()
                .any(|l| l.starts_with(&format!("{TEST_USER}:"))),
        "no user {TEST_USER} with subordinate IDs: run .ci/setup"
    );
    uid.unwrap()
}

impl Rootless {
    pub fn new(tools: &[&str]) -> Rootless {
        let uid = require_clients(tools);
        let hs = HostSim::new();
        let dir = tempfile::Builder::new()
            .prefix("slirpns-rootless")
            .tempdir()
            .unwrap();
        let run = tempfile::Builder::new()
            .prefix("sr")
            .tempdir_in("/tmp")
            .unwrap();
        let owner = Some(nix::unistd::Uid::from_raw(uid));
        for path in [dir.path(), run.path()] {
            nix::unistd::chown(path, owner, None).unwrap();
        }
        let devdir = tempfile::tempdir().unwrap();
        Rootless {
            hs,
            uid,
            dir,
            run,
            devdir,
        }
    }

    /// `args` run as TEST_USER in host-sim, with the environment `env` too.
    pub fn command(&self, env: &[(&str, String)], args: &[&str]) -> Command {
        let script = format!(
            "mount -t tmpfs -o mode=0755 none {dev} && mknod -m 0666 {dev}/tun c 10 200 && \
             mount --bind {dev}/tun /dev/net/tun && \
             exec nsenter --net={netns} runuser -u {TEST_USER} -- \"$@\"",
            dev = self.devdir.path().display(),
            netns = self.hs.netns_path(),
        );
        let home = self.dir.path().display().to_string();
        let mut cmd = Command::new("unshare");
        // nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup mounts runc needs.
        cmd.args(["--mount", "--", "sh", "-c", &script, "sh", "env"])
            .arg(format!("HOME={home}"))
            .arg(format!("XDG_RUNTIME_DIR={}", self.run.path().display()))
            .arg(format!(
                "PATH={}",
                std::env::var("PATH").unwrap_or_default()
            ));
        for (key, value) in env {
            cmd.arg(format!("{key}={value}"));
        }
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    /// Runs `args` as TEST_USER and returns what it printed; fails the test unless it succeeds.
    pub fn run_ok(&self, env: &[(&str, String)], args: &[&str]) -> String {
        let out = self.command(env, args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A minimal HTTP server in host-sim on `addr`, answering PAGE to every request.
    pub fn http_server(&self, addr: &str) -> std::net::SocketAddr {
        let addr = addr.to_string();
        let listener = in_netns(&self.hs.netns_path(), move || {
            TcpListener::bind(addr).expect("bind in host-sim")
        });
        let local = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 2048];
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = conn.read(&mut buf);
                    let reply = format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{PAGE}",
                        PAGE.len()
                    );
                    let _ = conn.write_all(reply.as_bytes());
                    let _ = conn.shutdown(Shutdown::Write);
                });
            }
        });
        local
    }

    /// Fetches http://`addr`/ from host-sim (plain HTTP/1.0 over a socket); the body, if any.
    pub fn fetch(&self, addr: &str) -> Option<String> {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let conn = in_netns(&self.hs.netns_path(), move || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        });
        let mut conn = conn.ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        conn.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut all = String::new();
        conn.read_to_string(&mut all).ok()?;
        all.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
    }

    /// The slirp-ns processes of this test (their command lines name its runtime directory).
    pub fn slirp_processes(&self) -> Vec<(u32, String)> {
        let marker = self.run.path().display().to_string();
        processes(|args| {
            args.first().is_some_and(|a| a == BIN) && args.iter().any(|a| a.contains(&marker))
        })
        .into_iter()
        .map(|(pid, args)| (pid, args.join(" ")))
        .collect()
    }

    /// A busybox image tarball (sh, wget, ip, httpd; /www/index.html holds PAGE), readable by
    /// TEST_USER.
    pub fn busybox_rootfs_tar(&self) -> PathBuf {
        let root = self.dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static");
        for applet in ["sh", "wget", "ip", "httpd", "sleep", "cat", "grep", "ping"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.join("www/index.html"), PAGE).unwrap();
        let tar = self.dir.path().join("busybox.tar");
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&root)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        );
        run_ok(
            Command::new("chmod")
                .args(["-R", "a+rX"])
                .arg(self.dir.path()),
        );
        tar
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        // Whatever the test left running as TEST_USER under this directory: podman's pause
        // process and conmon, containers, slirp-ns.
        let pause = self.run.path().join("libpod/tmp/pause.pid");
        if let Ok(pid) = std::fs::read_to_string(pause) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for dir in [&self.dir, &self.run] {
            let marker = dir.path().display().to_string();
            let _ = Command::new("pkill")
                .args(["-KILL", "-u", &self.uid.to_string(), "-f", &marker])
                .status();
        }
    }
}
