//! Rootless podman with slirp-ns as its slirp4netns (`network_cmd_path` in containers.conf),
//! unchanged otherwise: outbound traffic, host loopback, port forwards with both port
//! handlers, IPv6, another network and MTU, and slirp-ns going away with the container.

use crate::common;

use common::rootless::{Rootless, PAGE};
use common::*;

struct Podman {
    session: Rootless,
    env: Vec<(&'static str, String)>,
}

impl Podman {
    /// A podman of this test's own: runc (crun fails on this machine's hybrid cgroups),
    /// storage in the test's directory, slirp-ns as the network command, and a busybox image.
    fn new() -> Podman {
        let session = Rootless::new(&["podman", "runc", "newuidmap", "busybox"]);
        let dir = session.dir.path();
        let conf = dir.join("containers.conf");
        std::fs::write(
            &conf,
            format!(
                "[engine]\nruntime = \"runc\"\nnetwork_cmd_path = \"{BIN}\"\n\
                 cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
            ),
        )
        .unwrap();
        let storage = dir.join("storage.conf");
        std::fs::write(
            &storage,
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}/storage\"\nrunroot = \"{}/storage\"\n",
                dir.display(),
                session.run.path().display()
            ),
        )
        .unwrap();
        let env = vec![
            ("CONTAINERS_CONF", conf.display().to_string()),
            ("CONTAINERS_STORAGE_CONF", storage.display().to_string()),
        ];
        let podman = Podman { session, env };
        let tar = podman.session.busybox_rootfs_tar();
        podman.ok(&["import", tar.to_str().unwrap(), "localhost/busybox"]);
        podman
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut all = vec!["podman"];
        all.extend_from_slice(args);
        self.session.command(&self.env, &all)
    }

    fn ok(&self, args: &[&str]) -> String {
        let mut all = vec!["podman"];
        all.extend_from_slice(args);
        self.session.run_ok(&self.env, &all)
    }

    /// `podman run --rm --network NETWORK busybox sh -c SCRIPT`: (success, output).
    fn run(&self, network: &str, script: &str) -> (bool, String) {
        let out = self
            .command(&[
                "run",
                "--rm",
                "--network",
                network,
                "localhost/busybox",
                "sh",
                "-c",
                script,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }
}

#[test]
fn podman_uses_slirp_ns_for_outbound_and_host_loopback() {
    let podman = Podman::new();
    let version = podman.ok(&["info", "--format", "{{.Host.Slirp4NetNS.Version}}"]);
    assert!(
        version.contains("slirp-ns version"),
        "podman info: {version}"
    );
    let port = podman.session.http_server("127.0.0.1:0").port();
    let outside = podman.session.http_server("198.51.100.1:0").port();

    let (ok, out) = podman.run(
        "slirp4netns:allow_host_loopback=true",
        &format!("wget -qO- http://198.51.100.1:{outside}/ && wget -qO- http://10.0.2.2:{port}/"),
    );
    assert!(ok, "{out}");
    assert_eq!(out.matches(PAGE).count(), 2, "{out}");
    // podman's default: host loopback off limits (it passes --disable-host-loopback).
    let (ok, out) = podman.run(
        "slirp4netns",
        &format!("wget -T 5 -qO- http://10.0.2.2:{port}/"),
    );
    assert!(!ok && !out.contains(PAGE), "{out}");
}

#[test]
fn podman_publishes_ports_with_either_port_handler() {
    let podman = Podman::new();
    // The API socket of slirp-ns, and podman's default: rootlessport, which forwards into
    // the container's namespace itself.
    for (handler, network, host_port) in [
        (
            "slirp4netns",
            "slirp4netns:port_handler=slirp4netns",
            "18081",
        ),
        ("rootlessport", "slirp4netns", "18082"),
    ] {
        let name = format!("web-{handler}");
        let publish = format!("{host_port}:80");
        podman.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            network,
            "-p",
            &publish,
            "localhost/busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ]);
        for client in ["127.0.0.1", "192.0.2.1"] {
            let addr = format!("{client}:{host_port}");
            let mut body = None;
            wait_until(TIMEOUT, &format!("{addr} through {handler}"), || {
                body = podman.session.fetch(&addr);
                body.is_some()
            });
            assert_eq!(body.as_deref(), Some(PAGE), "{addr} through {handler}");
        }
        podman.ok(&["rm", "-f", "-t", "0", &name]);
    }
}

#[test]
fn podman_with_ipv6_gets_a_slaac_address_and_reaches_host_loopback() {
    let podman = Podman::new();
    let port = podman.session.http_server("[::1]:0").port();
    let (ok, out) = podman.run(
        "slirp4netns:enable_ipv6=true,allow_host_loopback=true",
        &format!(
            "for i in $(seq 50); do ip -6 addr show tap0 | grep -q 'inet6 fd00::' && break; \
             sleep 0.1; done; ip -6 addr show tap0; wget -qO- http://[fd00::2]:{port}/"
        ),
    );
    assert!(ok, "{out}");
    assert!(out.contains("inet6 fd00::"), "a SLAAC address: {out}");
    assert!(out.contains(PAGE), "{out}");
}

#[test]
fn podman_with_another_network_and_mtu() {
    let podman = Podman::new();
    let port = podman.session.http_server("198.51.100.1:0").port();
    let (ok, out) = podman.run(
        "slirp4netns:cidr=10.41.0.0/24,mtu=1400",
        &format!("ip addr show tap0; wget -qO- http://198.51.100.1:{port}/"),
    );
    assert!(ok, "{out}");
    assert!(out.contains("inet 10.41.0.100/24"), "{out}");
    assert!(out.contains("mtu 1400"), "{out}");
    assert!(out.contains(PAGE), "{out}");
}

#[test]
fn slirp_ns_exits_when_podman_removes_the_container() {
    let podman = Podman::new();
    podman.ok(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "localhost/busybox",
        "sleep",
        "600",
    ]);
    let running = podman.session.slirp_processes();
    assert!(!running.is_empty(), "slirp-ns runs for the container");
    // podman's command line, as the test output shows it.
    eprintln!("podman started: {}", running[0].1);
    for flag in [
        "--enable-sandbox",
        "--enable-seccomp",
        "-c",
        "--netns-type=path",
    ] {
        assert!(
            running[0].1.split(' ').any(|a| a == flag),
            "{flag} in {}",
            running[0].1
        );
    }
    assert_eq!(status_field(running[0].0, "Seccomp"), "2");
    podman.ok(&["rm", "-f", "-t", "0", "sleeper"]);
    wait_until(TIMEOUT, "slirp-ns to exit", || {
        podman.session.slirp_processes().is_empty()
    });
}
