//! rootlesskit with slirp-ns as its slirp4netns (`--slirp4netns-binary`) and port driver:
//! the network of its child, host loopback (and --disable-host-loopback), sandbox, seccomp,
//! IPv6, and `rootlessctl add-ports` / `remove-ports`.

use crate::common;

use common::rootless::{Rootless, PAGE};
use common::*;
use std::path::PathBuf;
use std::process::Child;

struct Kit {
    session: Rootless,
    child: Child,
    state: PathBuf,
    /// What the child's script wrote once its checks were done.
    report: PathBuf,
}

impl Kit {
    /// Starts rootlesskit with `flags`; its child runs `checks` (a shell script whose output
    /// goes to the report), then serves the image's /www on port 80 until stopped.
    fn start(flags: &[&str], checks: impl FnOnce(&Rootless) -> String) -> Kit {
        let session = Rootless::new(&["rootlesskit", "rootlessctl", "newuidmap", "busybox"]);
        session.busybox_rootfs_tar();
        let state = session.run.path().join("rk");
        let report = session.dir.path().join("report");
        let www = session.dir.path().join("rootfs/www");
        let script = format!(
            "( {} ) >{report}.tmp 2>&1; mv {report}.tmp {report}; exec busybox httpd -f -p 80 -h {www}",
            checks(&session),
            report = report.display(),
            www = www.display(),
        );
        let binary = format!("--slirp4netns-binary={BIN}");
        let state_dir = format!("--state-dir={}", state.display());
        let mut args = vec![
            "rootlesskit",
            "--net=slirp4netns",
            &binary,
            "--port-driver=slirp4netns",
            &state_dir,
        ];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["sh", "-c", &script]);
        let child = session
            .command(&[], &args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let kit = Kit {
            session,
            child,
            state,
            report,
        };
        wait_until(TIMEOUT, "rootlesskit's child to report", || {
            kit.report.exists()
        });
        kit
    }

    fn report(&self) -> String {
        std::fs::read_to_string(&self.report).unwrap()
    }

    fn rootlessctl(&self, args: &[&str]) -> String {
        let socket = format!("--socket={}", self.state.join("api.sock").display());
        let mut all = vec!["rootlessctl", &socket];
        all.extend_from_slice(args);
        self.session.run_ok(&[], &all)
    }

    /// The slirp-ns that rootlesskit started: its PID and command line.
    fn slirp(&self) -> (u32, String) {
        self.session
            .slirp_processes()
            .into_iter()
            .next()
            .expect("slirp-ns runs under rootlesskit")
    }
}

impl Drop for Kit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn rootlesskit_child_reaches_host_loopback_and_rootlessctl_forwards_ports() {
    let mut port = 0;
    let kit = Kit::start(&[], |session| {
        port = session.http_server("127.0.0.1:0").port();
        format!("wget -qO- http://10.0.2.2:{port}/")
    });
    assert!(kit.report().contains(PAGE), "{}", kit.report());
    let (_, command_line) = kit.slirp();
    eprintln!("rootlesskit started: {command_line}");

    let added = kit.rootlessctl(&["add-ports", "0.0.0.0:18090:80/tcp"]);
    let id = added.trim();
    assert!(kit.rootlessctl(&["list-ports"]).contains("18090"));
    for client in ["127.0.0.1:18090", "192.0.2.1:18090"] {
        assert_eq!(kit.session.fetch(client).as_deref(), Some(PAGE), "{client}");
    }
    kit.rootlessctl(&["remove-ports", id]);
    assert!(!kit.rootlessctl(&["list-ports"]).contains("18090"));
    assert_eq!(
        kit.session.fetch("192.0.2.1:18090"),
        None,
        "forward removed"
    );
}

#[test]
fn rootlesskit_with_sandbox_seccomp_ipv6_and_no_host_loopback() {
    let kit = Kit::start(
        &[
            "--disable-host-loopback",
            "--slirp4netns-sandbox=true",
            "--slirp4netns-seccomp=true",
            "--ipv6",
        ],
        |session| {
            let loopback = session.http_server("127.0.0.1:0").port();
            let outside = session.http_server("198.51.100.1:0").port();
            format!(
                "wget -qO- http://198.51.100.1:{outside}/; echo; \
                 wget -T 5 -qO- http://10.0.2.2:{loopback}/ || echo loopback refused; \
                 for i in $(seq 50); do ip -6 addr | grep -q 'inet6 fd00::' && break; sleep 0.1; done; \
                 ip -6 addr"
            )
        },
    );
    let report = kit.report();
    assert!(report.contains(PAGE), "outbound: {report}");
    assert!(report.contains("loopback refused"), "{report}");
    assert!(report.contains("inet6 fd00::"), "a SLAAC address: {report}");
    let (pid, command_line) = kit.slirp();
    eprintln!("rootlesskit started: {command_line}");
    for flag in [
        "--enable-sandbox",
        "--enable-seccomp",
        "--disable-host-loopback",
    ] {
        assert!(
            command_line.split(' ').any(|a| a == flag),
            "{flag}: {command_line}"
        );
    }
    assert_eq!(status_field(pid, "Seccomp"), "2");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    kit.rootlessctl(&["add-ports", "127.0.0.1:18091:80/tcp"]);
    assert_eq!(kit.session.fetch("127.0.0.1:18091").as_deref(), Some(PAGE));
}
