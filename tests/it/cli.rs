//! The command line as callers of slirp4netns see it: probes, messages, exit codes.

use crate::common;

use common::*;
use std::process::{Command, Output};

fn slirp(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run slirp-ns")
}

/// Runs with `args`, expects exit 1 and `message` as a line of stderr, and nothing on stdout
/// but what slirp4netns would print.
fn expect_error(args: &[&str], message: &str) {
    let out = slirp(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.lines().any(|l| l.contains(message)),
        "{args:?}: expected {message:?} in {stderr:?}"
    );
}

#[test]
fn help_goes_to_stdout_exits_0_and_names_every_flag() {
    for flag in ["-h", "--help"] {
        let out = slirp(&[flag]);
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8_lossy(&out.stdout);
        for long in [
            "--configure",
            "--exit-fd",
            "--ready-fd",
            "--mtu",
            "--enable-ipv6",
            "--api-socket",
            "--cidr",
            "--disable-host-loopback",
            "--netns-type",
            "--userns-path",
            "--enable-sandbox",
            "--enable-seccomp",
            "--outbound-addr",
            "--outbound-addr6",
            "--disable-dns",
            "--macaddress",
            "--target-type",
            "--help",
            "--version",
        ] {
            assert!(help.contains(long), "--help lacks {long}");
        }
    }
}

#[test]
fn version_lines_are_machine_parsable() {
    for flag in ["-v", "--version"] {
        let out = slirp(&[flag]);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("slirp-ns version "), "{text}");
        assert!(lines.iter().any(|l| l.starts_with("commit: ")), "{text}");
        let max: u32 = lines
            .iter()
            .find_map(|l| l.strip_prefix("SLIRP_CONFIG_VERSION_MAX: "))
            .expect("SLIRP_CONFIG_VERSION_MAX line")
            .parse()
            .unwrap();
        assert!(max >= 4);
    }
}

#[test]
fn every_compat_error_text() {
    let cases: &[(&[&str], &str)] = &[
        (&["--cidr", "24", "1", "tap0"], "invalid CIDR: 24"),
        (&["--cidr", "foo", "1", "tap0"], "invalid CIDR: foo"),
        (
            &["--cidr", "10.0.2.0", "1", "tap0"],
            "invalid CIDR: 10.0.2.0",
        ),
        (
            &["--cidr", "10.0.2.100/26", "1", "tap0"],
            "prefix length needs to be 1-25",
        ),
        (
            &["--cidr", "10.0.2.100/24", "1", "tap0"],
            "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24",
        ),
        (
            &["-m", "0", "1", "tap0"],
            "MTU must be a positive integer (< 65522)",
        ),
        (
            &["--mtu=65522", "1", "tap0"],
            "MTU must be a positive integer (< 65522)",
        ),
        (
            &["--mtu", "big", "1", "tap0"],
            "MTU must be a positive integer (< 65522)",
        ),
        (
            &["--macaddress", "02:00:00:00:00:01", "1", "tap0"],
            "--macaddr cannot be specified when --configure or -c is not specified",
        ),
        (
            &["-c", "--macaddress", "02:00:00:00:01", "1", "tap0"],
            "\"02:00:00:00:01\" is an invalid MAC address.",
        ),
        (
            &["-e", "x", "1", "tap0"],
            "exit-fd must be a non-negative integer",
        ),
        (
            &["-r", "-1", "1", "tap0"],
            "ready-fd must be a non-negative integer",
        ),
        (&["0", "tap0"], "PID must be a positive integer"),
        (
            &["--netns-type=tapfd", "x"],
            "TAPFD must be a file descriptor",
        ),
        (
            &["--netns-type=path", "/nonexistent/netns", "tap0"],
            "existing path expected when --netns-type=path",
        ),
        (
            &[
                "--userns-path=/nonexistent",
                "--netns-type=path",
                "/proc/self/ns/net",
                "t",
            ],
            "userns path doesn't exist: /nonexistent",
        ),
        (&["1234"], "missing TAPNAME"),
        (&[], "missing PID|PATH|FD"),
    ];
    for (args, message) in cases {
        expect_error(args, message);
    }
    let long = format!("/tmp/{}", "s".repeat(120));
    expect_error(
        &["-a", &long, "1", "tap0"],
        "the specified API socket path is too long (>= 108)",
    );
}

#[test]
fn unknown_flags_and_bad_enum_values_exit_1() {
    for args in [
        &["--no-such-flag", "1", "tap0"][..],
        &["--netns-type=bogus", "1", "tap0"],
        &["--target-type=bogus", "1", "tap0"],
    ] {
        let out = slirp(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn out_of_range_tuning_values_name_the_range() {
    expect_error(
        &["--busy-poll=10001", "1", "tap0"],
        "10001 is not in 0..=10000",
    );
    expect_error(&["--busy-poll=-1", "1", "tap0"], "--busy-poll");
    expect_error(
        &["--tcp-hold-memory=0", "1", "tap0"],
        "0 is not in 1..=4096",
    );
    expect_error(
        &["--tcp-hold-memory=lots", "1", "tap0"],
        "--tcp-hold-memory",
    );
}

#[test]
fn lockdown_options_are_accepted_without_warnings() {
    // Accepted by the parser: the run then fails only on the bogus PID.
    let out = slirp(&["--enable-sandbox", "--enable-seccomp", "999999999", "tap0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("WARNING"), "{stderr}");
    assert!(stderr.contains("no process with PID 999999999"));
}

#[test]
fn bad_targets_fail_cleanly_and_leave_nothing_behind() {
    require_namespace_support();
    let dir = tempfile::tempdir().unwrap();
    let sock = socket_path(dir.path());
    let sock_arg = sock.to_str().unwrap().to_string();
    let not_a_netns = dir.path().join("plain-file");
    std::fs::write(&not_a_netns, b"").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["999999999".into(), "tap0".into()],
            "no process with PID 999999999",
        ),
        (
            vec![
                "--netns-type=path".into(),
                not_a_netns.to_str().unwrap().into(),
                "tap0".into(),
            ],
            "is not a network namespace",
        ),
        (
            vec!["--netns-type=tapfd".into(), "77".into()],
            "TAP fd 77 is not an open file descriptor",
        ),
        (
            vec!["-r".into(), "78".into(), "1".into(), "tap0".into()],
            "ready-fd 78 is not an open file descriptor",
        ),
    ];
    for (mut args, message) in cases {
        args.splice(0..0, ["-a".to_string(), sock_arg.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_error(&args, message);
        assert!(!sock.exists(), "{args:?} left the API socket behind");
        assert!(
            processes_with_arg(&sock_arg).is_empty(),
            "{args:?} left a process behind"
        );
    }
}

#[test]
fn a_file_in_the_api_socket_path_is_not_clobbered() {
    require_namespace_support();
    let hs = HostSim::new();
    let guest = hs.guest();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious");
    std::fs::write(&path, b"keep me").unwrap();
    let out = hs
        .command(BIN)
        .args(["-a", path.to_str().unwrap(), &guest.pid.to_string(), "tap0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}
